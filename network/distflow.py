"""Single-phase branch-flow (DistFlow) SOCP relaxation of a radial feeder (seed 004).

For every line ``i -> j`` (parent to child) and every column ``s`` (period or
scenario), with everything in per unit on the feeder's base::

    p_ij + p_ji = r l_ij                    (P = p_ij, the from-end flow)
    q_ij + q_ji = x l_ij
    v_j = v_i - 2 (r P + x Q) + (r^2 + x^2) l
    P^2 + Q^2 <= l v_i                      (the SOCP relaxation of "=")
    P^2 + Q^2 <= S^2,  (P - r l)^2 + (Q - x l)^2 <= S^2   (finite s_max)
    |P| <= p_max, |Q| <= q_max              (finite limits)
    v_min^2 <= v <= v_max^2 (non-head nodes),  v_head_node = v_head^2

and at every node the active and reactive balances, written as
``demand - supply == 0``::

    sum_{lines out of n} P  -  sum_{lines into n} (P - r l)  -  p_inj[n]  == 0

so that the duals of :attr:`BranchFlow.p_balance` / :attr:`BranchFlow.q_balance` are
the nodal prices of active / reactive power, per pu (divide by the pu size in
the case's power unit to get a price per kW or MW; see :func:`pu_per_unit`).

Conventions
-----------
- Nodes are in ``feeder.node_order`` (topological, head first), lines in
  ``feeder.lines``. Arrays are ``(n_node, S)`` / ``(n_line, S)``.
- ``p_inj``/``q_inj`` are net injections (generation minus demand) in pu. At the
  head node the injection is the power entering from upstream (the PCC exchange
  of a tso24 feeder, the substation import of a distribution feeder): with
  ``free_head=True`` the builder adds variables ``p_head``/``q_head`` to the head
  row; otherwise the caller includes the head's injection in ``p_inj``.
- Head voltage: ``head_voltage="fixed"`` (default) holds ``v_head = feeder.v_head^2``
  (a Parameter, :attr:`BranchFlow.v_head_sq`); ``"free"`` lets it move within the head
  node's own limits, ``v_min^2 <= v_head <= v_max^2`` (a feeder whose head is a
  transmission bus, e.g. the PCC terminal of a tso24 feeder).
- ``l`` is the squared current magnitude, ``v`` the squared voltage magnitude.
- Per unit: 1 pu of power is ``feeder.s_base_kva`` kW (``s_base_kva / 1000`` MW).
  The tso24 feeders have a 1 MVA base with powers in MW, so pu = MW there.

Numerics: the relaxation gap reported by :func:`relaxation_gap` is limited by the
solver's accuracy. Clarabel's default absolute duality-gap tolerance is 1e-8, so
keep the objective O(1) or larger (e.g. losses in kW rather than in pu on a
10 MVA base); the variables are scaled internally (``flow_scale``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Sequence

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from .dc import _as_2d
from .model import Feeder

__all__ = ["BranchFlow", "RelaxationGap", "branch_flow_socp", "relaxation_gap", "pu_per_unit",
           "line_incidence", "node_map"]


def pu_per_unit(feeder: Feeder, power_unit: str) -> float:
    """Per-unit value of one ``power_unit`` (kW or MW) on the feeder's base.

    For a single-phase (equivalent) feeder this applies to the three-phase totals
    of the case; for a three-phase feeder to per-phase powers.
    """
    return feeder.pu_per(power_unit)


def line_incidence(feeder: Feeder) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``(Cf, Ct)``: sparse line x node matrices with a 1 at each line's from / to node.

    Node columns follow ``feeder.node_order``; line rows follow ``feeder.lines``.
    The signed incidence is ``Cf - Ct``.
    """
    n_l, n_n = feeder.n_lines, feeder.n_nodes
    fr = np.array([feeder.node_index[ln.from_node] for ln in feeder.lines], dtype=int)
    to = np.array([feeder.node_index[ln.to_node] for ln in feeder.lines], dtype=int)
    rows = np.arange(n_l)
    cf = sp.csr_matrix((np.ones(n_l), (rows, fr)), shape=(n_l, n_n))
    ct = sp.csr_matrix((np.ones(n_l), (rows, to)), shape=(n_l, n_n))
    return cf, ct


def node_map(feeder: Feeder, nodes: Sequence[str]) -> sp.csr_matrix:
    """``(n_node, len(nodes))`` 0/1 matrix placing items located at ``nodes`` on node rows.

    ``node_map(f, [u.node for u in units]) @ p_units`` is the per-node sum.
    """
    idx = np.array([feeder.node_index[n] for n in nodes], dtype=int)
    return sp.csr_matrix((np.ones(len(idx)), (idx, np.arange(len(idx)))), shape=(feeder.n_nodes, len(idx)))




def _column(param: cp.Parameter, s: int) -> cp.Expression:
    """A (k,) parameter broadcast to (k, s)."""
    return cp.reshape(param, (param.shape[0], 1), order="F") @ np.ones((1, s))


def _selector(idx: np.ndarray, n: int) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(idx.size), (np.arange(idx.size), idx)), shape=(idx.size, n))


def _flow_scale(feeder: Feeder) -> float:
    """A typical flow size (pu): the median finite ``s_max``, else 1.

    The variables are scaled by it internally (``P = sigma P_hat``, ``l = sigma^2
    l_hat``) so that ``l_hat`` and ``v`` are of similar size in the cone
    ``P_hat^2 + Q_hat^2 <= l_hat v``; on a 1 MVA base with flows of hundreds of MW
    the unscaled cone is badly conditioned and the solver's relaxation gap grows.
    """
    smax = np.array([ln.s_max for ln in feeder.lines])
    smax = smax[np.isfinite(smax)]
    return float(np.median(smax)) if smax.size else 1.0


def _soc_columns(t: cp.Expression, rows: Sequence[cp.Expression]) -> cp.Constraint:
    """Elementwise ``||(rows[0][k], rows[1][k], ...)||_2 <= t[k]`` for matrices of one shape."""
    return cp.SOC(cp.vec(t, order="F"), cp.vstack([cp.vec(r, order="F") for r in rows]), axis=0)


@dataclass
class BranchFlow:
    """Constraints and variables of the branch-flow SOCP of one single-phase feeder.

    Variables (pu): ``P``, ``Q`` from-end flows and ``l`` squared currents
    ``(n_line, S)`` (affine expressions ``sigma * P_hat``, ``sigma * Q_hat``,
    ``sigma^2 * l_hat`` of the scaled variables, with ``sigma = flow_scale``);
    ``v`` squared voltages ``(n_node, S)``; ``p_head``, ``q_head``
    ``(S,)`` the power entering at the head (``None`` unless ``free_head``).
    Parameters: ``v_head_sq`` (scalar, ``v_head^2``; ``None`` with a free head
    voltage), ``v_min_sq``/``v_max_sq``
    (the non-head nodes, in ``node_order``), ``s_max`` (lines in ``s_limited``).
    Constraints: ``p_balance``/``q_balance`` ``(n_node, S)`` whose duals are the
    nodal prices per pu; ``cone`` the relaxed ``P^2 + Q^2 <= l v``; ``constraints``
    is everything to add to the caller's problem.
    """

    feeder: Feeder
    P: cp.Expression
    Q: cp.Expression
    l: cp.Expression
    v: cp.Variable
    p_head: cp.Variable | None
    q_head: cp.Variable | None
    p_balance: cp.Constraint
    q_balance: cp.Constraint
    cone: cp.Constraint
    v_head_sq: cp.Parameter | None
    v_min_sq: cp.Parameter | None
    v_max_sq: cp.Parameter | None
    s_max: cp.Parameter | None
    s_limited: np.ndarray
    constraints: list[cp.Constraint] = field(default_factory=list)
    r: np.ndarray = field(default_factory=lambda: np.zeros(0))
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    flow_scale: float = 1.0

    @property
    def node_ids(self) -> tuple[str, ...]:
        return self.feeder.node_order

    @property
    def line_ids(self) -> tuple[str, ...]:
        return tuple(ln.id for ln in self.feeder.lines)

    def losses(self) -> cp.Expression:
        """Active losses per column, ``sum_lines r l`` ``(S,)``, pu (an expression)."""
        return cp.sum(sp.diags(self.r) @ self.l, axis=0)

    def voltages(self) -> np.ndarray:
        """Voltage magnitudes ``sqrt(v)`` ``(n_node, S)`` in pu, after a solve."""
        return np.sqrt(np.maximum(np.asarray(self.v.value), 0.0))

    def v_from(self) -> np.ndarray:
        """Squared voltages at the lines' from nodes ``(n_line, S)``, after a solve."""
        cf, _ = line_incidence(self.feeder)
        return cf @ np.asarray(self.v.value)

    def nodal_prices(self) -> tuple[np.ndarray, np.ndarray]:
        """Duals of the active and reactive balances ``(n_node, S)``, per pu."""
        return (np.asarray(self.p_balance.dual_value, dtype=float),
                np.asarray(self.q_balance.dual_value, dtype=float))


def branch_flow_socp(feeder: Feeder, p_inj: cp.Expression | np.ndarray, q_inj: cp.Expression | np.ndarray, *,
                     free_head: bool = True, line_limits: bool = True, voltage_limits: bool = True,
                     both_ends: bool = True, flow_scale: float | None = None,
                     head_voltage: str = "fixed") -> BranchFlow:
    """Build the branch-flow SOCP relaxation of a single-phase feeder.

    Parameters
    ----------
    feeder:
        A feeder with ``n_phases == 1``.
    p_inj, q_inj:
        ``(n_node, S)`` (or ``(n_node,)``) net active / reactive injections in pu,
        rows in ``feeder.node_order``: generation minus demand; at the head, the
        power entering from upstream (added to ``p_head``/``q_head`` if
        ``free_head``).
    free_head:
        Create free variables ``p_head``/``q_head`` ``(S,)`` for the power entering
        at the head (the slack), added to the head rows of ``p_inj``/``q_inj``.
    line_limits:
        Add the finite ``s_max`` (both ends if ``both_ends``), ``p_max`` and
        ``q_max`` limits of the lines (pu).
    voltage_limits:
        Add ``v_min^2 <= v <= v_max^2`` on the non-head nodes.
    both_ends:
        Bound the apparent power at the to-end of each line as well.
    flow_scale:
        ``sigma`` (pu) for the internal scaling of ``P``, ``Q``, ``l`` (default:
        the median finite ``s_max``, else 1). It changes only the conditioning
        of the problem, not its solution.
    head_voltage:
        ``"fixed"``: ``v_head_node == v_head_sq`` (a Parameter, ``feeder.v_head^2``);
        ``"free"``: ``v_min^2 <= v_head_node <= v_max^2`` with the head node's own
        limits (the last two entries of ``constraints``; ``v_head_sq`` is ``None``).
    """
    if head_voltage not in ("fixed", "free"):
        raise ValueError(f"head_voltage must be 'fixed' or 'free', got {head_voltage!r}")
    if feeder.n_phases != 1:
        raise ValueError(f"feeder {feeder.id} has {feeder.n_phases} phases; the branch-flow model is single-phase")
    n_n, n_l = feeder.n_nodes, feeder.n_lines
    p = _as_2d(p_inj, n_n, "p_inj")
    q = _as_2d(q_inj, n_n, "q_inj")
    if q.shape != p.shape:
        raise ValueError(f"p_inj {p.shape} and q_inj {q.shape} differ in shape")
    s = p.shape[1]
    cf, ct = line_incidence(feeder)
    r = np.array([ln.r1 for ln in feeder.lines])
    x = np.array([ln.x1 for ln in feeder.lines])
    R, X, Z2 = sp.diags(r), sp.diags(x), sp.diags(r ** 2 + x ** 2)
    sig = _flow_scale(feeder) if flow_scale is None else float(flow_scale)
    Ps = cp.Variable((n_l, s), name=f"P_{feeder.id}")
    Qs = cp.Variable((n_l, s), name=f"Q_{feeder.id}")
    ls = cp.Variable((n_l, s), nonneg=True, name=f"l_{feeder.id}")
    P, Q, l = sig * Ps, sig * Qs, sig ** 2 * ls
    v = cp.Variable((n_n, s), nonneg=True, name=f"v_{feeder.id}")
    head = feeder.node_index[feeder.head]
    p_head = q_head = None
    if free_head:
        p_head = cp.Variable(s, name=f"p_head_{feeder.id}")
        q_head = cp.Variable(s, name=f"q_head_{feeder.id}")
        e_head = np.zeros((n_n, 1))
        e_head[head, 0] = 1.0
        p = p + e_head @ cp.reshape(p_head, (1, s), order="F")
        q = q + e_head @ cp.reshape(q_head, (1, s), order="F")
    # demand - supply == 0: outflow - inflow(received) - injection
    p_balance = cf.T @ P - ct.T @ (P - R @ l) - p == 0
    q_balance = cf.T @ Q - ct.T @ (Q - X @ l) - q == 0
    vf = cf @ v
    drop = ct @ v - vf + 2 * (R @ P + X @ Q) - Z2 @ l == 0
    cons: list[cp.Constraint] = [p_balance, q_balance, drop]
    v_head_sq = None
    if head_voltage == "fixed":
        v_head_sq = cp.Parameter(nonneg=True, value=feeder.v_head ** 2, name=f"v_head_sq_{feeder.id}")
        cons.append(v[head, :] == v_head_sq)
    cone = _soc_columns(ls + vf, [2 * Ps, 2 * Qs, ls - vf])
    cons.append(cone)
    v_min_sq = v_max_sq = None
    if voltage_limits and n_n > 1:
        free = np.array([i for i in range(n_n) if i != head], dtype=int)
        nodes = [feeder.node(feeder.node_order[i]) for i in free]
        v_min_sq = cp.Parameter(free.size, nonneg=True, value=np.array([nd.v_min ** 2 for nd in nodes]),
                                name=f"v_min_sq_{feeder.id}")
        v_max_sq = cp.Parameter(free.size, nonneg=True, value=np.array([nd.v_max ** 2 for nd in nodes]),
                                name=f"v_max_sq_{feeder.id}")
        vsel = _selector(free, n_n) @ v
        cons += [vsel >= _column(v_min_sq, s), vsel <= _column(v_max_sq, s)]
    s_max = None
    s_limited = np.array([], dtype=int)
    if line_limits:
        smax = np.array([ln.s_max for ln in feeder.lines])
        s_limited = np.flatnonzero(np.isfinite(smax))
        if s_limited.size:
            s_max = cp.Parameter(s_limited.size, nonneg=True, value=smax[s_limited], name=f"s_max_{feeder.id}")
            sel = _selector(s_limited, n_l)
            t = _column(s_max, s)
            cons.append(_soc_columns(t, [sel @ P, sel @ Q]))
            if both_ends:
                cons.append(_soc_columns(t, [sel @ (P - R @ l), sel @ (Q - X @ l)]))
        for name, var in (("p_max", P), ("q_max", Q)):
            lim = np.array([getattr(ln, name) for ln in feeder.lines])
            idx = np.flatnonzero(np.isfinite(lim))
            if idx.size:
                sel = _selector(idx, n_l)
                bound = lim[idx][:, None] @ np.ones((1, s))
                cons += [sel @ var <= bound, -(sel @ var) <= bound]
    if head_voltage == "free":
        hn = feeder.node(feeder.head)
        cons += [v[head, :] >= hn.v_min ** 2, v[head, :] <= hn.v_max ** 2]
    return BranchFlow(feeder, P, Q, l, v, p_head, q_head, p_balance, q_balance, cone, v_head_sq, v_min_sq, v_max_sq,
                      s_max, s_limited, cons, r, x, sig)


@dataclass(frozen=True)
class RelaxationGap:
    """Tightness of ``P^2 + Q^2 <= l v`` after a solve, per line (max over columns).

    ``absolute`` = ``max_s (l v_from - P^2 - Q^2)`` in pu^2; ``relative`` = the same
    divided by ``max(l v_from, P^2 + Q^2, floor)``. Zero means the relaxation is
    exact (the solution is a power flow solution). Small negative entries are the
    solver's feasibility tolerance on the cone; ``max_absolute``/``max_relative``
    clamp them at 0.
    """

    line_ids: tuple[str, ...]
    absolute: np.ndarray
    relative: np.ndarray
    #: ``max over lines`` per column ``(S,)`` (the same quantities per period or scenario)
    absolute_by_column: np.ndarray = field(default_factory=lambda: np.zeros(0))
    relative_by_column: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def max_absolute(self) -> float:
        return float(self.absolute.max(initial=0.0))

    @property
    def max_relative(self) -> float:
        return float(self.relative.max(initial=0.0))

    def worst_line(self) -> str | None:
        return self.line_ids[int(np.argmax(self.relative))] if len(self.line_ids) else None


def relaxation_gap(solution: BranchFlow | Mapping[str, np.ndarray], *, floor: float = 1e-9) -> RelaxationGap:
    """``l v - P^2 - Q^2`` per line (max over columns) and per column (max over lines), absolute and relative.

    ``solution`` is a solved :class:`BranchFlow`, or a mapping with arrays
    ``P``, ``Q``, ``l`` ``(n_line, S)`` and ``v_from`` (the from-node squared
    voltages, same shape) and optionally ``line_ids``.
    """
    if isinstance(solution, BranchFlow):
        if solution.l.value is None:
            raise ValueError("the branch-flow problem has not been solved")
        pv, qv, lv, vf = (np.asarray(solution.P.value), np.asarray(solution.Q.value), np.asarray(solution.l.value),
                          solution.v_from())
        ids = solution.line_ids
    else:
        pv, qv, lv, vf = (np.asarray(solution[k], dtype=float) for k in ("P", "Q", "l", "v_from"))
        pv, qv, lv, vf = (a.reshape(a.shape[0], -1) for a in (pv, qv, lv, vf))
        ids = tuple(solution.get("line_ids", [str(i) for i in range(pv.shape[0])]))  # type: ignore[arg-type]
    lvv = lv * vf
    s2 = pv ** 2 + qv ** 2
    gap = lvv - s2
    rel = gap / np.maximum(np.maximum(lvv, s2), floor)
    return RelaxationGap(ids, gap.max(axis=1) if gap.size else np.zeros(pv.shape[0]),
                         rel.max(axis=1) if rel.size else np.zeros(pv.shape[0]),
                         gap.max(axis=0) if gap.size else np.zeros(pv.shape[1]),
                         rel.max(axis=0) if rel.size else np.zeros(pv.shape[1]))
