"""Three-phase unbalanced LinDistFlow (LinDist3Flow) as an affine map.

The model is linear and lossless, so a feeder reduces to a few matrices that are
computed once:

- ``P = flow_map @ p_net`` and ``Q = flow_map @ q_net``: per-phase line flows in pu,
  positive from parent to child, equal to the sum of the downstream net loads on
  that phase (losses neglected);
- ``w = v_head**2 - vsq_p @ p_net - vsq_q @ q_net``: squared voltage magnitudes
  (pu squared) at every node-phase below the head.

Per line i->j and phase p (README of tes_feeder, section 3)::

    w_j,p = w_i,p - sum_q (MP[p,q] P_ij,q + MQ[p,q] Q_ij,q)      q over the line's phases
    MP = 2 Re(Gamma o conj(Z)),  MQ = -2 Im(Gamma o conj(Z))
    Gamma = [[1, a, a^2], [a^2, 1, a], [a, a^2, 1]],  a = exp(+j 2 pi / 3)

(``o`` is the elementwise product, ``Z = r + jx`` the line's phase-frame impedance
in pu). This Gamma equals PowerModelsDistribution's ``[1 α² α; α 1 α²; α² α 1]``
with ``α = exp(-j2π/3)``; its complex conjugate would swap the mutual-coupling
effect between the two other phases. On a single-phase feeder Gamma = [[1]], so
``MP = 2r`` and ``MQ = 2x`` (single-phase LinDistFlow).

Units and signs
---------------
- ``p_net``/``q_net`` are net loads per node-phase in pu of the feeder's per-phase
  base ``S_base = feeder.s_base_kva``: ``(load - generation) / s_base_kva`` with
  powers in kW/kVAr **per phase** (a three-phase element with a total of P kW puts
  ``P / 3 / s_base_kva`` on each of its phases). Positive = consumption.
- Line flows are in pu per phase, positive parent -> child.
- The head (slack) node is held at ``feeder.v_head`` on all its phases; head import
  is the three-phase total flow out of the head, ``sum(p_net)`` in pu (lossless), or
  ``sum(p_net) / unit_to_pu`` in the case's power unit (kW or MW). Positive = the
  feeder draws power from upstream.

Limits as affine functions
--------------------------
Every network limit is written ``u_l(p_net, q_net) <= 0`` with ``u_l`` affine, and
grouped by *limit family* (:data:`FAMILIES`)::

    voltage_min  u = v_min^2 - w          (pu^2, per node-phase)
    voltage_max  u = w - v_max^2          (pu^2, per node-phase)
    line_p_max   u = P - p_max            (pu, per line-phase with finite p_max)
    line_p_min   u = -P - p_max           (pu)
    line_q_max   u = Q - q_max            (pu)
    line_q_min   u = -Q - q_max           (pu)
    import_max   u = import - import_max  (pu, three-phase total; one row)
    import_min   u = import_min - import  (pu)

:class:`LimitFamily` gives each family's rows (which node/line and phase) and its
gradients ``du/dp_net``, ``du/dq_net`` (rows of the matrices above) and offset, so
a caller can build Benders feasibility cuts from LP duals. The apparent-power
limit ``FeederLine.s_max`` is not modelled (it is not linear).

Large feeders
-------------
:meth:`LinDist3Flow.constraints` has a dense form (affine expressions through the
matrices) and a sparse form (auxiliary P, Q, w variables and the branch
recursions). Given the node-phases that carry meters (``active``), it also drops
the limit rows that can never bind (:meth:`LinDist3Flow.reduction`: nodes inside
chains of proportional lines and meterless branches; the algorithm is in
:mod:`network.lindist3flow_reduction`); the reduction is exact, and on the
907-node IEEE European LV feeder it keeps 1 row in 8.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import cvxpy as cp
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .lindist3flow_reduction import Reduction, reduce_rows
from .model import PHASES, Feeder, MeterLocation

_A = np.exp(2j * np.pi / 3)
#: Gamma[p, q] = V_p / V_q at nominal balanced abc voltages (rows/columns a, b, c).
GAMMA = np.array([[1, _A, _A ** 2], [_A ** 2, 1, _A], [_A, _A ** 2, 1]])

#: The limit families, in the order used everywhere.
FAMILIES = ("voltage_min", "voltage_max", "line_p_max", "line_p_min", "line_q_max", "line_q_min",
            "import_max", "import_min")

#: Above this many node-phases, :meth:`LinDist3Flow.constraints` uses the sparse form.
DENSE_LIMIT = 600


def coupling_matrices(r: np.ndarray, x: np.ndarray, phases: str, frame: str = PHASES,
                      gamma: np.ndarray = GAMMA) -> tuple[np.ndarray, np.ndarray]:
    """MP and MQ (``len(phases)`` square, pu) of a line with impedance ``r + jx``.

    ``r``/``x`` are given in the phase frame ``frame`` (``"abc"`` or ``"a"``); only
    the rows/columns of ``phases`` are used. ``gamma`` is exposed for tests.
    """
    ix = [frame.index(p) for p in phases]
    gx = [PHASES.index(p) for p in phases]
    z = np.asarray(r, float)[np.ix_(ix, ix)] + 1j * np.asarray(x, float)[np.ix_(ix, ix)]
    g = gamma[np.ix_(gx, gx)] * np.conj(z)
    return 2.0 * g.real, -2.0 * g.imag


def unit_to_pu(feeder: Feeder, power_unit: str = "kW") -> float:
    """pu per unit of power (kW or MW) on one phase: ``1 / s_base`` in that unit."""
    return feeder.pu_per(power_unit)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class FlowResult:
    """LinDist3Flow state. Arrays are shaped (n, ) or (n, T) like the inputs.

    ``w`` squared voltage (pu^2) and ``v = sqrt(w)`` (pu, NaN where w < 0) per
    node-phase; ``p_flow``/``q_flow`` per line-phase (pu, parent -> child);
    ``import_pu``/``q_import_pu`` three-phase total head import (pu);
    ``import_power``/``q_import_power`` the same in the power unit (kW or MW).
    """

    w: np.ndarray
    v: np.ndarray
    p_flow: np.ndarray
    q_flow: np.ndarray
    import_pu: np.ndarray
    q_import_pu: np.ndarray
    import_power: np.ndarray
    q_import_power: np.ndarray


@dataclass(frozen=True, eq=False)
class LimitFamily:
    """One family of limits ``u = sign * (y[sel] - bound) <= 0``.

    ``y`` is the family's quantity (``"w"``, ``"P"``, ``"Q"`` or ``"import"``, all
    affine in ``p_net``/``q_net``); ``sel`` picks node-phase or line-phase indices
    (``[0]`` for import); ``rows[k] = (element, phase)`` names row k: a node id for
    voltages, a line id for flows, the head node id and the head phases for import.
    ``unit`` is the unit of u.
    """

    name: str
    quantity: str
    rows: tuple[tuple[str, str], ...]
    sel: np.ndarray
    sign: float
    bound: np.ndarray
    unit: str
    _model: "LinDist3Flow" = field(repr=False)

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    def grad_p(self) -> np.ndarray:
        """du/dp_net, (n_rows x n_node_phases)."""
        return self.sign * self._model._y_grad(self.quantity, "p", self.sel)

    def grad_q(self) -> np.ndarray:
        """du/dq_net, (n_rows x n_node_phases)."""
        return self.sign * self._model._y_grad(self.quantity, "q", self.sel)

    def offset(self) -> np.ndarray:
        """u at p_net = q_net = 0, (n_rows,)."""
        y0 = self._model.v_head ** 2 if self.quantity == "w" else 0.0
        return self.sign * (y0 - self.bound)

    def value(self, p_net: np.ndarray, q_net: np.ndarray) -> np.ndarray:
        """u for numeric net loads, (n_rows,) or (n_rows, T)."""
        y = self._model._y_value(self.quantity, np.asarray(p_net, float), np.asarray(q_net, float))
        y = y[self.sel]
        b = self.bound if y.ndim == 1 else self.bound[:, None]
        return self.sign * (y - b)


@dataclass(frozen=True, eq=False)
class FamilyConstraint:
    """A limit family turned into one cvxpy constraint ``u - slack <= 0``."""

    family: LimitFamily
    u: cp.Expression
    constraint: cp.Constraint

    def dual(self) -> np.ndarray | None:
        """LP dual (>= 0), shaped (n_rows, T); None before a solve."""
        return self.constraint.dual_value


class NetworkConstraints(Mapping[str, FamilyConstraint]):
    """The network limits of one feeder as cvxpy constraints, keyed by family.

    Families without any finite limit are absent. ``constraints`` lists every
    constraint to add to a problem (including the defining equalities of the
    auxiliary variables ``aux`` in the sparse form).
    """

    def __init__(self, families: dict[str, FamilyConstraint], aux_constraints: list[cp.Constraint],
                 aux: dict[str, cp.Variable], form: str) -> None:
        self._f = families
        self.aux_constraints = aux_constraints
        self.aux = aux
        self.form = form

    def __getitem__(self, key: str) -> FamilyConstraint:
        return self._f[key]

    def __iter__(self):
        return iter(self._f)

    def __len__(self) -> int:
        return len(self._f)

    @property
    def constraints(self) -> list[cp.Constraint]:
        return [fc.constraint for fc in self._f.values()] + list(self.aux_constraints)

    def duals(self) -> dict[str, np.ndarray]:
        """family -> dual values (n_rows, T) after a solve."""
        return {k: fc.dual() for k, fc in self._f.items()}


# --------------------------------------------------------------------------- model


class LinDist3Flow:
    """LinDist3Flow of a radial feeder (three-phase unbalanced or single-phase).

    Attributes
    ----------
    node_phases : list of (node, phase) for every non-head node, in
        ``feeder.node_order``; index i of every node-phase vector.
    line_phases : list of (line_id, phase); ``line_phases[i]`` is the line feeding
        ``node_phases[i]`` (a node has exactly its incoming line's phases).
    flow_map : scipy.sparse CSR (n x n), ``P = flow_map @ p_net``.
    vsq_p, vsq_q : dense (n x n), ``w = v_head**2 - vsq_p @ p_net - vsq_q @ q_net``.
    unit_to_pu : pu per kW (or MW) on one phase, ``1/s_base``.
    """

    def __init__(self, feeder: Feeder, *, power_unit: str = "kW") -> None:
        self.feeder = feeder
        self.power_unit = power_unit
        self.unit_to_pu = unit_to_pu(feeder, power_unit)
        self.v_head = float(feeder.v_head)
        head = feeder.head
        self.node_phases: list[tuple[str, str]] = [
            (n, p) for n in feeder.node_order if n != head for p in feeder.node(n).phases]
        self.index: dict[tuple[str, str], int] = {k: i for i, k in enumerate(self.node_phases)}
        lines = [feeder.line_by_child[n] for n, _ in self.node_phases]
        self.line_phases: list[tuple[str, str]] = [(ln.id, p) for ln, (_, p) in zip(lines, self.node_phases)]
        n = self.n = len(self.node_phases)
        # parent row of each node-phase (-1 under the head) and its depth
        parent = np.array([self.index.get((feeder.node(nd).parent, p), -1) for nd, p in self.node_phases], int)
        depth = np.zeros(n, int)
        for i in range(n):  # topological order: parents come first
            depth[i] = 0 if parent[i] < 0 else depth[parent[i]] + 1
        self._parent = parent
        self._levels = [np.flatnonzero(depth == d) for d in range(int(depth.max()) + 1 if n else 0)]
        # block-diagonal MP, MQ over line-phases
        rows, cols, mp_v, mq_v = [], [], [], []
        start = 0
        self._blocks: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # node -> MP, MQ of its incoming line
        for nd in (x for x in feeder.node_order if x != head):
            ln = feeder.line_by_child[nd]
            k = len(ln.phases)
            mp, mq = self._blocks[nd] = coupling_matrices(ln.r, ln.x, ln.phases, feeder.phase_frame)
            rows.append(start + np.repeat(np.arange(k), k))
            cols.append(start + np.tile(np.arange(k), k))
            mp_v.append(mp.ravel())
            mq_v.append(mq.ravel())
            start += k
        cat = (lambda a: np.concatenate(a)) if n else (lambda a: np.zeros(0))
        self.mp_blk = sp.csr_matrix((cat(mp_v), (cat(rows).astype(int), cat(cols).astype(int))), shape=(n, n))
        self.mq_blk = sp.csr_matrix((cat(mq_v), (cat(rows).astype(int), cat(cols).astype(int))), shape=(n, n))
        # path matrix (= flow_map.T): row i marks the line-phases on the path to node-phase i
        path = np.eye(n)
        for lev in self._levels[1:]:
            path[lev] += path[parent[lev]]
        self.flow_map = sp.csr_matrix(path.T)
        del path
        self.vsq_p = self._accumulate(self.mp_blk @ self.flow_map)
        self.vsq_q = self._accumulate(self.mq_blk @ self.flow_map)
        # limits
        self.v_min = np.array([feeder.node(nd).v_min for nd, _ in self.node_phases])
        self.v_max = np.array([feeder.node(nd).v_max for nd, _ in self.node_phases])
        self.p_max = np.array([ln.p_max for ln in lines], float)
        self.q_max = np.array([ln.q_max for ln in lines], float)
        self.head_rows = np.flatnonzero(parent < 0)  # line-phases leaving the head
        self.families: dict[str, LimitFamily] = self._families()

    def __repr__(self) -> str:
        return f"LinDist3Flow({self.feeder.id!r}, {self.n} node-phases)"

    def _accumulate(self, local: sp.spmatrix) -> np.ndarray:
        """Sum per-line voltage-drop rows down the tree: row i += row parent(i)."""
        out = local.toarray()
        for lev in self._levels[1:]:
            out[lev] += out[self._parent[lev]]
        return out

    # ------------------------------------------------------------ dimensions
    @property
    def n_node_phases(self) -> int:
        return self.n

    # ------------------------------------------------------------ injections
    def injection_matrix(self, meters: Mapping[str, MeterLocation], ids: Sequence[str],
                         power_unit_to_pu: float | None = None, *, sign: float = 1.0) -> sp.csr_matrix:
        """Map per-meter three-phase-total powers to node-phase pu (n x len(ids)).

        Column k splits meter ``ids[k]``'s power equally over its phases and
        multiplies by ``power_unit_to_pu`` (default ``self.unit_to_pu``) and ``sign``.
        With ``sign=+1`` the matrix maps *consumption* (use it for loads, and pass
        ``sign=-1`` for generators whose output is positive injection), so
        ``p_net = A_load @ p_load + A_gen @ p_gen``. Meters at the head node map to a
        zero column (the head is the slack). Raises ValueError for a meter on another
        grid or at an unknown node-phase.
        """
        k = self.unit_to_pu if power_unit_to_pu is None else float(power_unit_to_pu)
        r, c, v = [], [], []
        for j, mid in enumerate(ids):
            m = meters[mid]
            if m.grid != self.feeder.id:
                raise ValueError(f"meter '{mid}' is on grid '{m.grid}', not on feeder '{self.feeder.id}'")
            if m.node == self.feeder.head:
                continue
            for p in m.phases:
                if (m.node, p) not in self.index:
                    raise ValueError(f"meter '{mid}': node {m.node} has no phase {p} in feeder {self.feeder.id}")
                r.append(self.index[(m.node, p)])
                c.append(j)
                v.append(sign * k / len(m.phases))
        return sp.csr_matrix((v, (r, c)), shape=(self.n, len(ids)))

    # ------------------------------------------------------------ numeric evaluation
    def evaluate(self, p_net: np.ndarray, q_net: np.ndarray) -> FlowResult:
        """Voltages, flows and head import for numeric net loads (n,) or (n, T) in pu."""
        p = np.asarray(p_net, float)
        q = np.asarray(q_net, float)
        w = self.v_head ** 2 - self.vsq_p @ p - self.vsq_q @ q
        with np.errstate(invalid="ignore"):
            v = np.sqrt(w)
        imp, qimp = p.sum(axis=0), q.sum(axis=0)
        return FlowResult(w=w, v=v, p_flow=np.asarray(self.flow_map @ p), q_flow=np.asarray(self.flow_map @ q),
                          import_pu=imp, q_import_pu=qimp, import_power=imp / self.unit_to_pu,
                          q_import_power=qimp / self.unit_to_pu)

    def _y_value(self, quantity: str, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        if quantity == "w":
            return self.v_head ** 2 - self.vsq_p @ p - self.vsq_q @ q
        if quantity == "P":
            return np.asarray(self.flow_map @ p)
        if quantity == "Q":
            return np.asarray(self.flow_map @ q)
        return p.sum(axis=0, keepdims=True)

    def _y_grad(self, quantity: str, which: str, sel: np.ndarray) -> np.ndarray:
        if quantity == "w":
            return -(self.vsq_p if which == "p" else self.vsq_q)[sel]
        if quantity in ("P", "Q"):
            if (quantity == "P") != (which == "p"):
                return np.zeros((len(sel), self.n))
            return self.flow_map[sel].toarray()
        return np.ones((1, self.n)) if which == "p" else np.zeros((1, self.n))

    # ------------------------------------------------------------ limits
    def _families(self) -> dict[str, LimitFamily]:
        all_np = np.arange(self.n)
        fam: dict[str, LimitFamily] = {}

        def add(name: str, quantity: str, sel: np.ndarray, sign: float, bound: np.ndarray, rows, unit: str):
            fam[name] = LimitFamily(name, quantity, tuple(rows), np.asarray(sel, int), sign,
                                    np.asarray(bound, float), unit, self)

        add("voltage_min", "w", all_np, -1.0, self.v_min ** 2, self.node_phases, "pu^2")
        add("voltage_max", "w", all_np, 1.0, self.v_max ** 2, self.node_phases, "pu^2")
        for qty, lim, base in (("P", self.p_max, "line_p"), ("Q", self.q_max, "line_q")):
            sel = np.flatnonzero(np.isfinite(lim))
            rows = [self.line_phases[i] for i in sel]
            add(f"{base}_max", qty, sel, 1.0, lim[sel], rows, "pu")
            add(f"{base}_min", qty, sel, -1.0, -lim[sel], rows, "pu")
        head = (self.feeder.head, self.feeder.node(self.feeder.head).phases)
        for name, sign, lim in (("import_max", 1.0, self.feeder.import_max),
                                ("import_min", -1.0, self.feeder.import_min)):
            if math.isfinite(lim):
                add(name, "import", np.array([0]), sign, np.array([lim * self.unit_to_pu]), [head], "pu")
        return {k: fam[k] for k in FAMILIES if k in fam and fam[k].n_rows}

    def limit_values(self, p_net: np.ndarray, q_net: np.ndarray) -> dict[str, np.ndarray]:
        """family -> u (n_rows,) or (n_rows, T); u <= 0 is feasible."""
        return {k: f.value(p_net, q_net) for k, f in self.families.items()}

    def constraints(self, p_net_expr, q_net_expr, *, slack=None, form: str = "auto",
                    active=None) -> NetworkConstraints:
        """All network limits as cvxpy constraints ``u - slack <= 0``, one per family.

        ``p_net_expr``/``q_net_expr``: cvxpy expressions (or arrays) shaped (n,) or
        (n, T), net load per node-phase in pu. ``slack``: None (hard limits), one
        expression broadcastable to (n_rows, T) (e.g. shape (T,) for one epsilon per
        hour, or scalar), or a mapping family -> such an expression (families not in
        the mapping are hard). A (T,) slack is aligned with the hours.

        ``form``: ``"dense"`` writes ``w``, ``P``, ``Q`` as affine expressions of the
        net loads through ``vsq_p``/``vsq_q``/``flow_map``; ``"sparse"`` adds
        auxiliary variables ``P``, ``Q``, ``w`` (``aux``) defined by the sparse
        branch-flow recursions (better for large feeders); ``"auto"`` picks dense up to
        :data:`DENSE_LIMIT` node-phases. Both give the same constraints and duals.

        ``active``: the node-phases where the net loads may be non-zero (a boolean
        mask or index array over ``node_phases``, or an injection matrix whose
        non-zero rows count). The caller guarantees that the other rows of
        ``p_net_expr``/``q_net_expr`` are zero. The builder then drops the rows
        that are provably redundant (see :meth:`reduction`): the families hold
        fewer rows, and a dropped row's dual is 0. ``None`` keeps every row.
        """
        if form == "auto":
            form = "dense" if self.n <= DENSE_LIMIT else "sparse"
        if form not in ("dense", "sparse"):
            raise ValueError(f"form must be 'auto', 'dense' or 'sparse', got {form!r}")
        p = _as_expr(p_net_expr)
        q = _as_expr(q_net_expr)
        if p.shape[0] != self.n or q.shape != p.shape:
            raise ValueError(f"net loads must be shaped ({self.n},) or ({self.n}, T); got {p.shape} and {q.shape}")
        two_d = p.ndim == 2
        red = self.reduction(active)
        aux: dict[str, cp.Variable] = {}
        aux_cons: list[cp.Constraint] = []
        if form == "sparse":
            k = len(red.key)
            shape = (k, p.shape[1]) if two_d else (k,)
            P, Q, w = cp.Variable(shape, name="P"), cp.Variable(shape, name="Q"), cp.Variable(shape, name="w")
            aux = {"P": P, "Q": Q, "w": w}
            full = k == self.n
            pk, qk = (p, q) if full else (p[red.key], q[red.key])
            below = red.parent >= 0
            par = sp.csr_matrix((np.ones(int(below.sum())), (np.flatnonzero(below), red.parent[below])),
                                shape=(k, k))
            eye = sp.identity(k, format="csr")
            h = (~below).astype(float) * self.v_head ** 2
            # P_j - sum_{key children c} P_c = p_j;  w_j - w_parent + Dp P_j + Dq Q_j = 0 (v_head^2 at the top)
            aux_cons = [(eye - par.T) @ P == pk, (eye - par.T) @ Q == qk,
                        (eye - par) @ w + red.dp @ P + red.dq @ Q == (h[:, None] if two_d else h)]
            top = np.flatnonzero(~below)

            def y_expr(fam: LimitFamily) -> cp.Expression:
                if fam.quantity == "import":
                    return cp.sum(P[top], axis=0, keepdims=True) if two_d else \
                        cp.reshape(cp.sum(P[top]), (1,), order="F")
                var = {"w": w, "P": P, "Q": Q}[fam.quantity]
                return var[red.pos[fam.name]]
        else:
            def y_expr(fam: LimitFamily) -> cp.Expression:
                if fam.quantity == "w":
                    return self.v_head ** 2 - self.vsq_p[fam.sel] @ p - self.vsq_q[fam.sel] @ q
                if fam.quantity in ("P", "Q"):
                    return self.flow_map[fam.sel] @ (p if fam.quantity == "P" else q)
                return cp.sum(p, axis=0, keepdims=True) if two_d else cp.reshape(cp.sum(p), (1,), order="F")

        out: dict[str, FamilyConstraint] = {}
        for name, fam in red.families.items():
            b = fam.bound[:, None] if two_d else fam.bound
            u = fam.sign * (y_expr(fam) - b)
            s = slack.get(name) if isinstance(slack, Mapping) else slack
            out[name] = FamilyConstraint(fam, u, u <= _align_slack(s, p.shape))
        return NetworkConstraints(out, aux_cons, aux, form)

    # ------------------------------------------------------------ exact row reduction
    def reduction(self, active=None) -> Reduction:
        """The smallest tree the builder needs when only ``active`` node-phases inject.

        A node is kept (is a *key* node) if it is active, hangs directly on the
        head, has two or more children with key nodes below, or breaks a chain.
        The other nodes lie on chains between key nodes (one child with key nodes
        below, the same phases, a voltage drop matrix (MP, MQ) proportional to the
        next line's, and the same voltage limits as the nodes on either side), or
        in branches without key nodes (no flow, the same voltage limits as the
        parent). Their voltages are convex combinations of the chain ends', so
        their voltage rows are redundant; all lines of a chain carry the same flow,
        so only the tightest line limit per chain and phase is kept. The
        reduction is exact: any (p_net, q_net) with zeros outside ``active``
        meets the kept rows if and only if it meets all rows.
        """
        return reduce_rows(self, active, self._blocks)


def _as_expr(x) -> cp.Expression:
    return x if isinstance(x, cp.Expression) else cp.Constant(np.asarray(x, float))


def _align_slack(s, shape: tuple[int, ...]):
    if s is None:
        return 0.0
    s = _as_expr(s)
    if len(shape) == 2 and s.ndim == 1 and s.shape[0] == shape[1]:
        return cp.reshape(s, (1, shape[1]), order="F")
    return s


# --------------------------------------------------------------------------- diagnostics


def violations(p_net: np.ndarray, q_net: np.ndarray, feeder: Feeder | LinDist3Flow, *,
               power_unit: str = "kW") -> pd.DataFrame:
    """Every limit's value ``u`` (<= 0 is feasible) as a long table.

    Columns: ``family``, ``element`` (node or line id; the head node for import),
    ``phase``, ``hour`` (0 for 1-D inputs), ``u`` (in the family's unit: pu^2 for
    voltages, pu for flows and the three-phase-total import). Filter ``u > tol`` to
    list the violated limits.
    """
    model = feeder if isinstance(feeder, LinDist3Flow) else LinDist3Flow(feeder, power_unit=power_unit)
    frames = []
    for name, u in model.limit_values(p_net, q_net).items():
        u2 = u[:, None] if u.ndim == 1 else u
        fam = model.families[name]
        n_rows, n_t = u2.shape
        frames.append(pd.DataFrame({
            "family": name,
            "element": np.repeat([r[0] for r in fam.rows], n_t),
            "phase": np.repeat([r[1] for r in fam.rows], n_t),
            "hour": np.tile(np.arange(n_t), n_rows),
            "u": u2.ravel(),
        }))
    if not frames:
        return pd.DataFrame(columns=["family", "element", "phase", "hour", "u"])
    return pd.concat(frames, ignore_index=True)
