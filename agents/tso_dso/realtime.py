"""Real time (seed 004, problem C.1), the TSO's part: the transmission re-dispatch and the real-time master.

Per scenario: the transmission-connected resources are re-dispatched on the DC network
(``network.dc``) with the shared re-dispatch block (``agents/market_blocks.py``), the
PCC exchanges ``p_e`` (MW, positive into the feeder) are withdrawn at the PCC buses,
and one ``theta_e`` per DSO ($) is the cost-to-go of area ``e``, built from the DSO's
cuts ``theta_e >= c + beta p_e + g . x_e`` (``beta``, ``g`` in $/MWh; valid for all
``(x_e, p_e)``, kept for the whole run). The master's value ``M_s(x)`` is a convex lower
bound of the real-time cost ``Q_s(x)`` in the day-ahead schedule; the subgradient
``mu_s`` ($/MWh) that the day-ahead master's cut needs is the dual of the constraints
fixing ``x_T`` plus ``sum_k nu_k g_k`` (the duals ``nu`` of the DSO cuts times their
schedule coefficients).

The DSO cuts live in one :class:`agents.cuts.CutPool` per DSO and scenario set (columns
``[p_e, x_e]``), with activity-based pruning: a cut that stayed inactive (zero dual) in
the last ``max_age`` solves is dropped when a scenario holds more than ``keep`` cuts
(every cut is a valid lower bound, so any subset is too; dropping stale ones keeps the
LP small and well scaled).

The scenarios are independent given the day-ahead schedule, so a set larger than
:data:`RT_BLOCK` is solved in LPs of :data:`RT_BLOCK` scenarios (one LP size, built once
and re-solved with new Parameters), and a caller may ask for some scenarios only
(``cols``: an evaluation re-solves only the scenarios it has not settled yet).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from network.dc import DCFlow, dc_btheta
from network.model import TransmissionGrid

from ..cuts import CutPool
from ..market_blocks import Redispatch, redispatch
from ..solve import solve_lp
from .participants import ResourceSet

__all__ = ["TransRT", "build_transmission_rt", "RTMasterResult", "RTMaster", "RT_BLOCK"]

#: the most scenarios one real-time master LP takes (measured: HiGHS time per scenario grows with the LP's size)
RT_BLOCK = 20


@dataclass
class TransRT:
    """cvxpy pieces of the transmission part of the real-time problem (``S`` scenarios).

    ``block`` is the re-dispatch of the transmission-connected resources (``fix``: ``x -
    xv == 0``, dual = d cost / d x in $/MWh); ``dc`` the DC flow on the injections minus
    the PCC withdrawals; ``cost`` ``(S,)`` $ per scenario.
    """

    res: ResourceSet
    S: int
    block: Redispatch
    dc: DCFlow
    cost: cp.Expression  # (S,)
    constraints: list[cp.Constraint]

    @property
    def fix(self) -> cp.Constraint:
        return self.block.fix

    @property
    def y(self) -> cp.Expression:
        return self.block.y

    @property
    def shed(self) -> cp.Variable | None:
        return self.block.shed


def build_transmission_rt(grid: TransmissionGrid, res: ResourceSet, bus_of: Mapping[str, str],
                          pcc_buses: Sequence[str], S: int, x: cp.Expression, wind: cp.Expression | None,
                          p_pcc: cp.Expression | None, *, voll: float) -> TransRT:
    """The transmission real-time re-dispatch: DC flow, units, shedding, PCC withdrawals ``p_pcc`` ``(E, S)`` (MW)."""
    n = len(res)
    nb = grid.n_buses
    bidx = np.array([grid.bus_index[bus_of[k]] for k in res.ids], dtype=int)
    place = sp.csr_matrix((np.ones(n), (bidx, np.arange(n))), shape=(nb, n))
    block = redispatch(res, place, S, x, wind, voll=voll, name="T", label="transmission")
    cons: list[cp.Constraint] = block.constraints
    p_inj = block.injection
    if p_pcc is not None and len(pcc_buses):
        pidx = np.array([grid.bus_index[b] for b in pcc_buses], dtype=int)
        E = sp.csr_matrix((np.ones(pidx.size), (pidx, np.arange(pidx.size))), shape=(nb, pidx.size))
        p_inj = p_inj - E @ p_pcc
    dc = dc_btheta(grid, p_inj, power_unit="MW")
    cons += dc.constraints
    return TransRT(res, S, block, dc, block.cost, cons)


@dataclass
class RTMasterResult:
    """The TSO's real-time master for S scenarios (after a solve); $ and MW."""

    p: np.ndarray  # (E, S) PCC exchanges
    lower: np.ndarray  # (S,) M_s(x): TSO cost + sum of theta (a lower bound of Q_s(x))
    trans_cost: np.ndarray  # (S,) T_s at p
    theta: np.ndarray  # (E, S)
    mu: np.ndarray  # (n_market, S) subgradient of M_s in the day-ahead quantities ($/MWh)
    flows: np.ndarray  # (n_line, S)
    shed: np.ndarray  # (S,)
    solve_time: float
    dispatch: np.ndarray | None = None  # (n_T, S) real-time quantities of the transmission-connected resources
    shed_bus: np.ndarray | None = None  # (len(shed_rows), S) active shedding at the buses with demand
    shed_rows: np.ndarray | None = None  # bus indices of shed_bus (grid order)
    up: np.ndarray | None = None  # (n_T, S) upward regulation (MW; a demand's is a reduction)
    down: np.ndarray | None = None  # (n_T, S) downward regulation (MW)

    def with_columns(self, part: "RTMasterResult", cols: np.ndarray) -> "RTMasterResult":
        """A copy with the scenarios ``cols`` replaced by the columns of ``part`` (a solve of those scenarios)."""
        S = self.lower.size
        cols = np.asarray(cols, dtype=int)

        def put(b: Any, v: Any) -> Any:
            if not isinstance(b, np.ndarray) or b.shape[-1] != S:
                return b
            out = b.copy()
            if out.size:
                out[..., cols] = v
            return out

        kw = {k: put(getattr(self, k), getattr(part, k)) for k in self.__dataclass_fields__ if k != "shed_rows"}
        return RTMasterResult(**{**kw, "solve_time": part.solve_time, "shed_rows": self.shed_rows})


@dataclass
class _RTLP:
    """The real-time master LP with ``K`` cut slots per DSO and scenario."""

    prob: cp.Problem
    model: TransRT
    x: cp.Parameter
    wind: cp.Parameter | None
    p: cp.Variable
    theta: cp.Variable
    C: list[cp.Parameter]
    B: list[cp.Parameter]
    cuts: list[cp.Constraint]
    K: int
    S: int


class RTMaster:
    """The TSO's real-time master: per scenario set, one DSO cut pool per area; the LP, built lazily.

    ``dsos`` are the DSO ids in the order of the PCC exchanges. The DSO cuts are valid for
    every day-ahead schedule, so the pools of a scenario set are kept across schemes and
    iterations (:meth:`select`); a new set (or a new size) starts with empty pools. The LP
    holds ``K`` cut slots per DSO and scenario (a power of 2 from ``capacity``); it is
    rebuilt with twice the slots when a pool outgrows them, and after :meth:`invalidate`
    (new real-time offers).
    """

    def __init__(self, agent: str, dsos: Sequence[str], *, keep: int | None = 24, max_age: int = 8,
                 solver: str = "HIGHS") -> None:
        self.agent = agent
        self.dsos = list(dsos)
        self.keep, self.max_age = (None if keep is None else int(keep)), int(max_age)
        self.solver = solver
        self.pools_by_set: dict[str, dict[str, CutPool]] = {}
        self.scenario_set: str | None = None
        self.S: int | None = None
        self.capacity = 0
        self.version = 0  # cuts added so far (over every set): a master's bound is current at one version

    @property
    def pools(self) -> dict[str, CutPool]:
        if self.scenario_set is None:
            raise RuntimeError(f"{self.agent}: no scenario set selected for the real-time master")
        return self.pools_by_set[self.scenario_set]

    def select(self, scenario_set: str, S: int, n_x: Mapping[str, int], *, capacity: int = 16) -> None:
        """Select the scenario set ``scenario_set`` (``S`` scenarios); ``n_x[dso]``: its area's resources."""
        pools = self.pools_by_set.get(scenario_set)
        if pools is None or next(iter(pools.values())).n_index != int(S):
            pools = {d: CutPool(int(S), 1 + int(n_x[d]), rtol=1e-9, atol=1e-9, keep=self.keep,
                                max_age=self.max_age) for d in self.dsos}
            self.pools_by_set[scenario_set] = pools
        self.scenario_set, self.S = scenario_set, int(S)
        self.capacity = max(int(capacity), self.capacity)

    @property
    def pruned(self) -> int:
        """Cuts pruned so far, over every scenario set and DSO (dropped sets included)."""
        return getattr(self, "pruned_dropped", 0) + sum(p.pruned for pools in self.pools_by_set.values()
                                                        for p in pools.values())

    def drop(self, scenario_set: str) -> None:
        """Forget the cut pools of ``scenario_set`` (a set that no later decision needs: they are no longer part
        of every snapshot of the agent); selecting it again starts with empty pools."""
        pools = self.pools_by_set.pop(scenario_set, None)
        if pools is not None:
            self.pruned_dropped = getattr(self, "pruned_dropped", 0) + sum(p.pruned for p in pools.values())
        if self.scenario_set == scenario_set:
            self.scenario_set, self.S = None, None

    def invalidate(self) -> None:
        """The resources or their offers changed: nothing is held here (the builder's LPs are the caller's)."""

    def has_cuts(self) -> bool:
        """Does every DSO hold a cut for every scenario of the selected set?"""
        return all(all(p.count(s) > 0 for s in range(self.S or 0)) for p in self.pools.values())

    def add_cut(self, dso: str, s: int, constant: float, beta: float, g: np.ndarray) -> bool:
        """``theta_dso,s >= constant + beta p + g . x_e``; returns False if the pool holds it already."""
        new = self.pools[dso].add(s, float(constant), np.concatenate([[float(beta)], np.asarray(g, dtype=float)]))
        self.version += int(new)
        return new

    @property
    def n_cuts(self) -> int:
        """Cuts held for the selected set, over every DSO."""
        return sum(len(p) for p in self.pools.values())

    def _slots(self) -> int:
        """The cut slots per DSO and scenario the LP needs: ``capacity``, doubled until every pool fits."""
        K_need = max(p.count() for p in self.pools.values())
        K = self.capacity
        while K < K_need:
            K *= 2
        self.capacity = K
        return K

    def build(self, grid: TransmissionGrid, rs: ResourceSet, bus_of: Mapping[str, str], pcc_buses: Sequence[str],
              bound: np.ndarray, K: int, *, voll: float, S: int | None = None) -> _RTLP:
        """The LP for ``S`` scenarios (default: the set's): transmission re-dispatch, ``|p_e| <= bound_e`` and ``K``
        cut slots per DSO and scenario."""
        S = int(self.S or 0) if S is None else int(S)
        E = len(self.dsos)
        x = cp.Parameter(len(rs), name="x_T")
        n_w = len(rs.wind_ids)
        wind = cp.Parameter((n_w, S), nonneg=True, name="wind_T") if n_w else None
        p = cp.Variable((E, S), name="p_pcc")
        theta = cp.Variable((E, S), name="theta")
        model = build_transmission_rt(grid, rs, bus_of, pcc_buses, S, x, wind, p, voll=voll)
        cons = list(model.constraints) + [p <= bound[:, None] @ np.ones((1, S)), p >= -bound[:, None] @ np.ones((1, S))]
        Cs, Bs, cut_cons = [], [], []
        ones = np.ones((K, 1))
        for e in range(E):
            C = cp.Parameter((K, S), name=f"cut_c_{e}")
            B = cp.Parameter((K, S), name=f"cut_b_{e}")
            c = ones @ theta[e:e + 1, :] >= C + cp.multiply(B, ones @ p[e:e + 1, :])
            Cs.append(C)
            Bs.append(B)
            cut_cons.append(c)
        prob = cp.Problem(cp.Minimize(cp.sum(model.cost) + cp.sum(theta)), cons + cut_cons)
        return _RTLP(prob, model, x, wind, p, theta, Cs, Bs, cut_cons, K, S)

    def solve(self, rs: ResourceSet, x_T: np.ndarray, wind_T: np.ndarray | None, x_e: Sequence[np.ndarray],
              build: Callable[[int, int], _RTLP], *, iteration: int | None = None,
              floors: Sequence[float] | None = None, cols: np.ndarray | None = None,
              block: int | None = None) -> tuple[RTMasterResult, np.ndarray, list[np.ndarray]]:
        """Solve for the transmission schedule ``x_T`` (order of ``rs``) and each area's schedule ``x_e``.

        ``build(S, K)`` builds the LP for ``S`` scenarios (see :meth:`build`). ``cols``: the
        scenarios to solve (default: all), in LPs of ``min(block, S_set)`` scenarios (``block`` default:
        :data:`RT_BLOCK`; the last
        one padded with copies of its last scenario); the result's columns are ``cols``, in
        that order. Returns the result (with ``mu`` left empty), the duals of the constraints
        fixing ``x_T`` ``(n_T, n)`` and, per area, ``sum_k nu_k g_k`` ``(n_e, n)``: the two parts
        of ``mu``. ``floors[e]``: a lower bound of area ``e``'s cost; the unused cut slots hold
        ``theta >= floor`` (a bound the LP's presolve removes, where a repeated cut would be a
        duplicate row). The cuts of the scenarios not solved count as active (they are not
        pruned while their scenario is left alone).
        """
        S = int(self.S or 0)
        cols = np.arange(S) if cols is None else np.asarray(cols, dtype=int).reshape(-1)
        if cols.size == 0:
            raise ValueError(f"{self.agent}: no scenario to solve")
        block = RT_BLOCK if block is None else int(block)
        size = S if S <= block else block
        K = self._slots()
        lp = build(size, K)
        for pool in self.pools.values():
            pool.prune()
        lp.x.value = np.asarray(x_T, dtype=float)
        E = len(self.dsos)
        marks = [np.ones((K, S)) for _ in range(E)]
        parts: dict[str, list[np.ndarray]] = {}
        contribs: list[list[np.ndarray]] = [[] for _ in range(E)]
        dt = 0.0
        model = lp.model
        for b in range(-(-cols.size // size)):
            idx = cols[b * size:(b + 1) * size]
            m = idx.size
            pad = np.concatenate([idx, np.full(size - m, idx[-1])])
            if lp.wind is not None:
                lp.wind.value = np.asarray(wind_T)[:, pad]
            Gks, used = [], []
            for e, d in enumerate(self.dsos):
                floor = -1e9 if floors is None else float(floors[e])
                C, Bk, Gk, n = _padded_at(self.pools[d], K, np.asarray(x_e[e], dtype=float), pad, floor)
                lp.C[e].value, lp.B[e].value = C, Bk
                Gks.append(Gk)
                used.append(n)
            t0 = time.perf_counter()
            solve_lp(lp.prob, self.agent, "real-time master LP", iteration, solver=self.solver)
            dt += time.perf_counter() - t0
            col = lambda v, rows: np.asarray(v, dtype=float).reshape(rows, size)[:, :m]  # noqa: E731
            for e in range(E):
                nu = col(lp.cuts[e].dual_value, K)
                nu = np.where(np.arange(K)[:, None] < used[e][None, :m], nu, 0.0)  # the floor slots are no cuts
                marks[e][:, idx] = nu
                contribs[e].append(np.einsum("ks,ksn->ns", nu, Gks[e][:, :m]))
            for name, v, rows in (("theta", lp.theta.value, E), ("tcost", model.cost.value, 1),
                                  ("fixd", model.fix.dual_value, len(rs)), ("p", lp.p.value, E),
                                  ("flows", model.dc.flow.value, -1), ("y", model.y.value, len(rs)),
                                  ("shed", model.shed.value if model.shed is not None else np.zeros((0, size)), -1),
                                  ("up", model.block.up.value, len(rs)), ("down", model.block.dn.value, len(rs))):
                parts.setdefault(name, []).append(col(v, rows))
        for e, d in enumerate(self.dsos):
            self.pools[d].mark(marks[e])
        a = {k: np.concatenate(v, axis=1) for k, v in parts.items()}
        tcost = a["tcost"].reshape(-1)
        res = RTMasterResult(p=a["p"], lower=tcost + a["theta"].sum(axis=0), trans_cost=tcost, theta=a["theta"],
                             mu=np.zeros((0, cols.size)), flows=a["flows"], shed=a["shed"].sum(axis=0),
                             solve_time=dt, dispatch=a["y"], shed_bus=a["shed"],
                             shed_rows=np.asarray(model.block.shed_rows, dtype=int), up=a["up"], down=a["down"])
        return res, a["fixd"], [np.concatenate(c, axis=1) for c in contribs]


def _padded_at(pool: CutPool, K: int, y: np.ndarray, cols: np.ndarray, floor: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A DSO pool (columns ``[p, x_e]``) at the schedule ``y``, for the scenarios ``cols`` (column ``j`` is scenario
    ``cols[j]``): ``theta_s >= C[k, j] + B[k, j] p_s`` with ``G[k, j]`` the schedule coefficients; slots beyond a
    scenario's cuts hold ``theta_s >= floor``. Returns ``(C, B, G, n)`` with ``n[j]`` the cuts of scenario
    ``cols[j]``."""
    S = len(cols)
    C = np.full((K, S), float(floor))
    B = np.zeros((K, S))
    G = np.zeros((K, S, pool.n_vars - 1))
    n = np.zeros(S, dtype=int)
    for j, s in enumerate(cols):
        c, g = pool.rows(int(s))
        if c.size > K:
            raise ValueError(f"scenario {s} holds {c.size} cuts, more than the {K} slots")
        k = n[j] = c.size
        C[:k, j] = c + g[:, 1:] @ y
        B[:k, j] = g[:, 0]
        G[:k, j] = g[:, 1:]
    return C, B, G, n
