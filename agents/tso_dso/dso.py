"""The real-time DSO of one distribution area (``tso-dso`` protocol, seed 004).

Given the day-ahead schedule of its area's resources ``x_e`` and, per wind
scenario ``s``, the active power ``p_s`` that the TSO exchanges with it at the PCC
(positive = into the feeder), the DSO re-dispatches its resources on the
branch-flow SOCP relaxation of its feeder (``network.distflow``) at least cost, and
returns per scenario its cost ``D_e(x_e, p_s)`` and an optimality cut

    theta_e,s >= D_e(x_e^k, p_s^k) + beta_s (p - p_s^k) + g_s . (x_e - x_e^k)

where ``beta_s`` is the dual of the constraint fixing the PCC exchange and ``g_s``
the duals of the constraints fixing the day-ahead schedule. ``D_e`` is jointly
convex in ``(x_e, p)`` (the value function of a convex program in its right-hand
side), so the cut is valid for every schedule and every exchange: the TSO keeps it
for the whole run.

Complete recourse: the exchange is fixed with a penalised slack,
``p_head = p + s_plus - s_minus``, ``penalty * (s_plus + s_minus)`` in the cost, so
the subproblem is feasible for every ``p``. With ``penalty`` above the largest PCC
price of the joint problem (default ``10 * VOLL``) the penalty is exact: the
decomposition converges to the joint optimum, where the slack is 0.

Modelling decisions (the seed's code): the feeder head is the PCC terminal on the
transmission side; its voltage is free within that bus's limits (0.8-1.1 pu;
``branch_flow_socp(..., head_voltage="free")``) and its reactive exchange is free
(the DC transmission model has no reactive power). The re-dispatch of the area's
resources is the block shared with the TSO's problem (``agents/market_blocks.py``).
Active-power shedding at a node is bounded by the demand there; reactive
shedding (a reactive injection) is allowed at every non-head node; both cost VOLL.

The DSO never sees the transmission grid or another area: it knows its feeder,
which of its area's resources sits at which node, their real-time offers, its
area's day-ahead schedule and the exchanges the TSO sends it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from network.distflow import BranchFlow, branch_flow_socp, node_map
from network.model import Feeder

from ..base import Agent, SolveError
from ..market_blocks import Redispatch, redispatch
from ..solve import CONIC_RETRIES, Attempt, solve
from .area_result import AreaResult, cut_columns, line_gaps, merge, scatter, take
from .participants import Resource, ResourceSet

__all__ = ["AreaRT", "build_area_rt", "AreaDSO", "AreaResult", "DEFAULT_PENALTY_FACTOR", "COST_SCALE", "line_gaps"]

DEFAULT_PENALTY_FACTOR = 10.0  # slack penalty = factor * VOLL
#: the most scenarios one conic solve takes (see AreaDSO._evaluate)
BLOCK = 40
#: Clarabel settings tried in turn (``agents.solve.CONIC_RETRIES`` with equilibration off first: on the area
#: problems it stops "inaccurate" about 4 times less often, measured on the case)
CONIC_ORDER = (CONIC_RETRIES[1], CONIC_RETRIES[0], *CONIC_RETRIES[2:])
#: objectives are given to the conic solver in k$ (costs reach 1e5-1e8 $ with VOLL and the slack
#: penalty; in $ Clarabel often stops "inaccurate" at degenerate points such as a PCC line at its rating)
COST_SCALE = 1e-3


@dataclass
class AreaRT:
    """cvxpy pieces of the real-time problem of one area for ``S`` scenarios (columns).

    ``block`` is the re-dispatch of the area's resources (``agents/market_blocks.py``):
    ``fix`` (``x - xv == 0``, whose dual is the sensitivity of each scenario's cost to the
    day-ahead quantities, $/MWh), ``y`` the real-time quantities, ``y_max`` their upper
    limits (a wind farm's: its availability; dual >= 0). ``q`` ``(n, S)`` the resources'
    reactive power (Mvar), ``shed_q`` the reactive shedding at the non-head nodes. ``cost``
    ``(S,)`` is each scenario's real-time cost ($, no slack penalty); ``p_head`` ``(S,)``
    the power entering the feeder at the PCC (MW).
    """

    res: ResourceSet
    S: int
    block: Redispatch
    q: cp.Variable
    shed_q: cp.Variable | None
    bf: BranchFlow
    cost: cp.Expression
    constraints: list[cp.Constraint]

    @property
    def fix(self) -> cp.Constraint:
        return self.block.fix

    @property
    def y(self) -> cp.Expression:
        return self.block.y

    @property
    def y_max(self) -> cp.Constraint:
        return self.block.upper

    @property
    def shed_p(self) -> cp.Variable | None:
        return self.block.shed

    @property
    def shed_nodes(self) -> np.ndarray:
        return self.block.shed_rows

    @property
    def p_head(self) -> cp.Variable:
        return self.bf.p_head  # type: ignore[return-value]


def build_area_rt(feeder: Feeder, res: ResourceSet, node_of: Mapping[str, str], S: int, x: cp.Expression,
                  wind: cp.Expression | np.ndarray | None, *, voll: float) -> AreaRT:
    """Build the real-time re-dispatch of one area for ``S`` scenarios.

    ``x`` ``(n,)`` are the day-ahead quantities of ``res`` (a Parameter in the DSO's
    subproblem, a Variable in an extensive form); ``wind`` ``(n_wind, S)`` the
    available wind per scenario, rows in the order of ``res.wind_ids``. Powers in
    MW (the feeders of the case have a 1 MVA base, so pu = MW).
    """
    if feeder.n_phases != 1:
        raise ValueError(f"feeder {feeder.id}: the tso-dso area model is single-phase")
    if abs(feeder.s_base_kva - 1000.0) > 1e-9:
        raise ValueError(f"feeder {feeder.id}: expected a 1 MVA base (pu = MW), got {feeder.s_base_kva} kVA")
    n = len(res)
    nodes = [node_of[k] for k in res.ids]
    head = feeder.node_index[feeder.head]
    if any(feeder.node_index[nd] == head for nd in nodes):
        raise ValueError(f"feeder {feeder.id}: a resource sits on the PCC terminal {feeder.head}")
    place = node_map(feeder, nodes)  # (n_node, n)
    block = redispatch(res, place, S, x, wind, voll=voll, name=feeder.id, label=f"feeder {feeder.id}")
    q = cp.Variable((n, S), name=f"q_{feeder.id}")
    cons: list[cp.Constraint] = [block.fix, *block.limits]
    cons += [q >= res.q_min[:, None] @ np.ones((1, S)), q <= res.q_max[:, None] @ np.ones((1, S))]
    if block.shed_limit is not None:
        cons.append(block.shed_limit)
    cost = block.cost
    # reactive shedding (a reactive injection) at every non-head node, at VOLL
    q_inj = place @ sp.diags(res.sign) @ q
    others = np.array([i for i in range(feeder.n_nodes) if i != head], dtype=int)
    shed_q = None
    if others.size:
        shed_q = cp.Variable((others.size, S), nonneg=True, name=f"shed_q_{feeder.id}")
        selq = sp.csr_matrix((np.ones(others.size), (others, np.arange(others.size))),
                             shape=(feeder.n_nodes, others.size))
        q_inj = q_inj + selq @ shed_q
        cost = cost + voll * cp.sum(shed_q, axis=0)
    # the head (PCC terminal) voltage is free within its limits (see the module docstring)
    bf = branch_flow_socp(feeder, block.injection, q_inj, free_head=True, head_voltage="free")
    cons += bf.constraints
    return AreaRT(res, S, block, q, shed_q, bf, cost, cons)


class AreaDSO(Agent):
    """The real-time operator of one distribution area."""

    role = "tso_dso.dso"

    def __init__(self, agent_id: str, feeder: Feeder, locations: Mapping[str, str], pcc_id: str, *,
                 voll: float = 10_000.0, penalty: float | None = None, solver: str = "CLARABEL",
                 solver_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(agent_id)
        self.feeder = feeder
        self.locations = dict(locations)  # resource id -> feeder node
        self.pcc_id = str(pcc_id)
        self.voll = float(voll)
        self.penalty = float(penalty) if penalty is not None else DEFAULT_PENALTY_FACTOR * self.voll
        self.solver = solver
        self.solver_options = dict(solver_options or {})
        self.resources: dict[str, Resource] = {}
        self.wind: dict[str, dict[str, np.ndarray]] = {}  # farm -> scenario set -> (S,)
        self.schedule: dict[str, float] = {}
        self.n_solves = 0
        self.n_inaccurate = 0
        self.n_shifted = 0
        self.n_wall = 0
        self.n_reused = 0  # scenario columns taken over from the last evaluation (unchanged exchanges)
        self.solve_time = 0.0

    # ------------------------------------------------------------------ identity
    def public_ids(self) -> frozenset[str]:
        return frozenset({self.pcc_id})

    def decision_ids(self) -> frozenset[str]:
        """Its decisions: the real-time re-dispatch of its area's resources."""
        return frozenset(self.locations)

    # ------------------------------------------------------------------ inputs
    def set_offer(self, resource: Resource, wind: Mapping[str, np.ndarray] | None = None) -> None:
        """A real-time offer of one of the area's resources (and its wind scenarios)."""
        if resource.id not in self.locations:
            raise KeyError(f"{self.id}: {resource.id} is not connected to feeder {self.feeder.id}")
        self.resources[resource.id] = resource
        if wind:
            self.wind.setdefault(resource.id, {}).update({k: np.asarray(v, dtype=float) for k, v in wind.items()})
        self._drop_cache()

    def set_schedule(self, quantities: Mapping[str, float]) -> None:
        for k, v in quantities.items():
            if k not in self.locations:
                raise KeyError(f"{self.id}: schedule for {k}, which is not in area {self.feeder.id}")
            self.schedule[k] = float(np.asarray(v).reshape(-1)[0])

    def _drop_cache(self) -> None:
        for k in [k for k in self.__dict__ if k.startswith("_cache")]:
            del self.__dict__[k]

    @property
    def resource_set(self) -> ResourceSet:
        rs = getattr(self, "_cache_rs", None)
        if rs is None:
            order = [k for k in self.locations if k in self.resources]  # the case's order
            rs = self._cache_rs = ResourceSet(self.resources[k] for k in order)
        return rs

    def rt_cost_lower_bound(self) -> float:
        """A lower bound of the area's real-time cost for any schedule, exchange and scenario."""
        return self.resource_set.rt_cost_lower_bound()

    def x_vector(self) -> np.ndarray:
        rs = self.resource_set
        return rs.vector(self.schedule)

    def wind_matrix(self, scenario_set: str) -> np.ndarray:
        rs = self.resource_set
        if not rs.wind_ids:
            return np.zeros((0, 0))
        try:
            return np.vstack([self.wind[k][scenario_set] for k in rs.wind_ids])
        except KeyError:
            raise KeyError(f"{self.id}: no '{scenario_set}' wind scenarios for {rs.wind_ids}") from None

    # ------------------------------------------------------------------ problem
    def _problem(self, S: int) -> dict[str, Any]:
        cache = self.__dict__.setdefault("_cache_problems", {})
        if S in cache:
            return cache[S]
        rs = self.resource_set
        x = cp.Parameter(len(rs), name=f"x_{self.id}")
        n_w = len(rs.wind_ids)
        wind = cp.Parameter((n_w, S), nonneg=True, name=f"wind_{self.id}") if n_w else None
        model = build_area_rt(self.feeder, rs, self.locations, S, x, wind, voll=self.voll)
        p = cp.Parameter(S, name=f"p_pcc_{self.id}")
        s_plus = cp.Variable(S, nonneg=True)
        s_minus = cp.Variable(S, nonneg=True)
        pcc = p - model.p_head + s_plus - s_minus == 0  # dual = weight * d cost / d p
        # the scenarios are separable: any positive weights give the same solutions; weighting each by
        # the inverse of its cost's size gives every scenario the same relative accuracy (the solver's
        # tolerances are relative to the whole objective, which one scenario's slack penalty can dominate)
        w = cp.Parameter(S, nonneg=True, name=f"weights_{self.id}")
        obj = w @ (model.cost + self.penalty * (s_plus + s_minus))
        prob = cp.Problem(cp.Minimize(COST_SCALE * obj), model.constraints + [pcc])
        cache[S] = dict(prob=prob, model=model, x=x, wind=wind, p=p, pcc=pcc, s_plus=s_plus, s_minus=s_minus, w=w)
        return cache[S]

    def evaluate(self, p: np.ndarray, scenario_set: str = "in_sample", *, iteration: int | None = None,
                 keep_dispatch: bool = False, context: Any = None, wind: np.ndarray | None = None) -> AreaResult:
        """Solve the area's real-time problem for the exchanges ``p`` (one per scenario).

        Exchanges at or beyond the PCC line's rating ``R`` are evaluated just inside it,
        at ``+/-(1 - 1e-6) R``: at the rating itself the optimum is degenerate (the line
        at its limit with no reactive flow) and interior-point solvers stop inaccurate
        there, and beyond it the cost is known exactly, ``D(p) = D(R) + penalty (|p| - R)``
        (the flow into the feeder never exceeds ``R``). The value at the requested
        exchange is extrapolated along the cut (second-order error, ~1e-3 $) plus that
        penalty, and :meth:`cuts` adds the exact "wall" cut (``AreaResult.wall_cut``).
        If the conic solver still fails, the exchanges are moved towards 0 by a tiny
        step (1e-6 of the rating, then x10, x100) and evaluated there; every such
        event is counted in ``n_shifted``.

        ``context`` (default: the scenario set) keys the solver weights carried from one
        evaluation to the next (see :meth:`_evaluate`); the host passes its scheme and set, so
        that one scheme's evaluations never depend on another's. ``wind`` ``(n_wind, len(p))``: the
        available wind of each column (default: the scenarios of ``scenario_set``).

        Unchanged exchanges are not solved again: with the default wind, a scenario whose exchange
        is the same (bit for bit) as in the last evaluation of the same ``context``, with the same
        schedule and wind, takes that evaluation's column (the same problem, so the same answer); only the
        others are solved (``n_reused`` counts the columns taken over).
        """
        p = np.asarray(p, dtype=float).reshape(-1)
        key = scenario_set if context is None else context
        W_all = np.zeros((0, p.size))
        if self.resource_set.wind_ids:
            W_all = (self.wind_matrix(scenario_set) if wind is None
                     else np.asarray(wind, dtype=float).reshape(-1, p.size))
            if W_all.shape[1] != p.size:
                raise ValueError(f"{self.id}: {p.size} exchanges but {W_all.shape[1]} '{scenario_set}' wind scenarios")
        prev = None if wind is not None else self._last_result(key, p, W_all, keep_dispatch)
        todo = np.arange(p.size) if prev is None else np.flatnonzero(p != prev.requested)
        if prev is not None and todo.size == 0:
            self.n_reused += p.size
            out = take(prev, np.arange(p.size))  # a copy
            out.solve_time = 0.0
            return out
        W = W_all[:, todo] if self.resource_set.wind_ids else None
        R = self.pcc_rating()
        lim = (1.0 - 1e-6) * R
        pt = p[todo]
        wall = np.where(pt >= lim, 1.0, np.where(pt <= -lim, -1.0, 0.0))
        q0 = np.clip(pt, -lim, lim)
        step = 1e-6 * max(R, 1.0)
        last: SolveError | None = None
        for shift in (0.0, step, 10 * step, 100 * step):
            q = q0 - shift * np.sign(q0)
            try:
                res = self._evaluate(q, scenario_set, iteration, keep_dispatch, key, W, todo, p.size)
            except SolveError as exc:
                last = exc
                continue
            if shift:
                self.n_shifted += 1
            self.n_wall += int(np.count_nonzero(wall))
            res.requested, res.shifted, res.wall, res.rating, res.penalty = pt, shift, wall, R, self.penalty
            inside = np.clip(pt, -R, R)
            res.requested_value = res.cost + res.beta * (inside - q) + self.penalty * np.maximum(np.abs(pt) - R, 0.0)
            if prev is not None:
                self.n_reused += p.size - todo.size
                res = scatter(prev, res, todo)
            if wind is None:
                self.__dict__.setdefault("_cache_last", {})[key] = (self.x_vector(), W_all, res)
            return res
        assert last is not None
        raise last

    def _last_result(self, key: Any, p: np.ndarray, W: np.ndarray, keep_dispatch: bool) -> AreaResult | None:
        """The last evaluation of ``key`` if it can lend columns to one at ``p`` with the wind ``W``: the same
        number of scenarios, schedule, wind and kept solution."""
        got = self.__dict__.get("_cache_last", {}).get(key)
        if got is None:
            return None
        x, W_last, r = got
        if r.cost.size != p.size or (r.solution is not None) != keep_dispatch or r.requested is None \
                or not np.array_equal(x, self.x_vector()) or not np.array_equal(W_last, W):
            return None
        return r

    def _evaluate(self, p: np.ndarray, scenario_set: str, iteration: int | None, keep_dispatch: bool,
                  key: Any = None, W: np.ndarray | None = None, cols: np.ndarray | None = None,
                  S_all: int | None = None) -> AreaResult:
        """The area's problem for the exchanges ``p`` (the scenarios ``cols`` of ``S_all``, wind ``W``), in blocks.

        ``key``: the context of the solver weights (default: the set); ``W`` default: the set's wind of
        ``cols`` (default: all of the set).

        The scenarios are independent; Clarabel solves a few hundred of them in one problem
        only "inaccurately" (and then again with other settings), while blocks of a few dozen
        solve to full accuracy in about the same time per scenario. The block size is set by
        ``S_all`` (at most :data:`BLOCK`), so that a subset of the scenarios is solved in problems
        of the same size (built once); a last block that is not full is padded with copies of its
        last scenario.
        """
        S = p.size
        cols = np.arange(S) if cols is None else np.asarray(cols, dtype=int)
        S_all = S if S_all is None else int(S_all)
        key = scenario_set if key is None else key
        if W is None and self.resource_set.wind_ids:
            W = self.wind_matrix(scenario_set)[:, cols]
        n_blocks = -(-S_all // BLOCK)
        size = -(-S_all // n_blocks)
        if S == size:
            return self._evaluate_block(p, W, iteration, keep_dispatch, key, cols)
        parts = []
        for b in range(-(-S // size)):
            idx = np.arange(b * size, min((b + 1) * size, S))
            pad = np.concatenate([idx, np.full(size - idx.size, idx[-1])])
            r = self._evaluate_block(p[pad], None if W is None else W[:, pad], iteration, keep_dispatch, key,
                                     cols[pad])
            parts.append((r, idx.size))
        return merge([cut_columns(r, n) for r, n in parts])

    def _evaluate_block(self, p: np.ndarray, W: np.ndarray | None, iteration: int | None, keep_dispatch: bool,
                        key: Any, cols: np.ndarray) -> AreaResult:
        S = p.size
        pr = self._problem(S)
        rs = self.resource_set
        pr["x"].value = self.x_vector()
        if pr["wind"] is not None:
            pr["wind"].value = np.maximum(W, 0.0)
        pr["p"].value = p
        # solver weights from the last costs of these scenarios in this context; a scenario without one yet takes
        # the median of the context's known costs (the blocks solved before it), or 1 if none is known
        known = self.__dict__.setdefault("_scale", {}).get(key)
        last = np.full(S, np.nan) if known is None or known.size <= cols.max() else known[cols]
        if np.isnan(last).any() and known is not None and np.isfinite(known).any():
            last = np.where(np.isnan(last), np.nanmedian(np.abs(known)), last)
        w = np.where(np.isnan(last), 1.0, 1e3 / np.maximum(1e3, np.abs(np.nan_to_num(last))))
        t0 = time.perf_counter()
        prob: cp.Problem = pr["prob"]
        m: AreaRT = pr["model"]
        for _ in range(2):  # a second pass if the weights were far from the costs' sizes
            pr["w"].value = w
            accurate = solve(prob, [Attempt(self.solver, {**self.solver_options, **extra}) for extra in CONIC_ORDER],
                             self.id, "area real-time SOCP", iteration=iteration).accurate
            self.n_solves += 1
            sp_, sm = np.asarray(pr["s_plus"].value), np.asarray(pr["s_minus"].value)
            rt_cost = np.asarray(m.cost.value, dtype=float).reshape(-1)
            cost = rt_cost + self.penalty * (sp_ + sm)
            w_new = 1e3 / np.maximum(1e3, np.abs(cost))
            if np.all(np.maximum(w_new / w, w / w_new) <= 10.0):
                break
            w = w_new
        if not accurate:
            self.n_inaccurate += 1
        dt = time.perf_counter() - t0
        self.solve_time += dt
        scale = COST_SCALE * w
        beta = np.asarray(pr["pcc"].dual_value, dtype=float).reshape(-1) / scale
        g = np.asarray(m.fix.dual_value, dtype=float).reshape(len(rs), S) / scale
        gap_abs, gap_rel = line_gaps(m.bf, S)
        v = np.sqrt(np.maximum(np.asarray(m.bf.v.value).reshape(-1, S), 0.0))
        losses = np.asarray(m.bf.losses().value).reshape(-1)
        shed = (np.asarray(m.shed_p.value).sum(axis=0) if m.shed_p is not None else np.zeros(S))
        w_idx = np.flatnonzero(rs.is_wind)
        if w_idx.size:
            wind_used = np.asarray(pr["wind"].value, dtype=float)
            nu = -np.asarray(m.y_max.dual_value, dtype=float).reshape(len(rs), S)[w_idx] / scale
        else:
            wind_used = nu = np.zeros((0, S))
        need = int(cols.max()) + 1
        if known is None or known.size < need:
            grown = np.full(need, np.nan)
            if known is not None:
                grown[:known.size] = known
            known = self._scale[key] = grown
        known[cols] = cost
        return AreaResult(cost=cost, rt_cost=rt_cost, beta=beta, g=g, p=p,
                          p_head=np.asarray(m.p_head.value).reshape(-1), slack=sp_ + sm,
                          relaxation_gap=gap_abs.max(axis=0), relaxation_gap_rel=gap_rel.max(axis=0),
                          v_min=v.min(axis=0), v_max=v.max(axis=0), losses=losses, shed=shed, solve_time=dt,
                          wind=wind_used, nu=nu, inaccurate=not accurate,
                          dispatch=np.asarray(m.y.value).reshape(len(rs), S) if keep_dispatch else None,
                          solution=self._solution(pr, m, S, v, gap_abs, gap_rel, sp_ + sm) if keep_dispatch else None)

    def _solution(self, pr: dict[str, Any], m: AreaRT, S: int, v: np.ndarray, gap_abs: np.ndarray,
                  gap_rel: np.ndarray, slack: np.ndarray) -> dict[str, Any]:
        """The whole real-time solution of an evaluation (MW, Mvar, pu), for the run folder's tables."""
        rs = self.resource_set
        f = self.feeder
        n = len(rs)
        val = lambda e, rows: np.asarray(e.value, dtype=float).reshape(rows, S)  # noqa: E731
        avail = np.full((n, S), np.nan)
        w_idx = np.flatnonzero(rs.is_wind)
        if w_idx.size:
            avail[w_idx] = np.asarray(pr["wind"].value, dtype=float)
        nodes = f.node_order
        shed_p = np.zeros((f.n_nodes, S))
        if m.shed_p is not None:
            shed_p[m.shed_nodes] = val(m.shed_p, len(m.shed_nodes))
        shed_q = np.zeros((f.n_nodes, S))
        if m.shed_q is not None:
            head = f.node_index[f.head]
            shed_q[[i for i in range(f.n_nodes) if i != head]] = val(m.shed_q, f.n_nodes - 1)
        bf = m.bf
        L = f.n_lines
        P, Q, ell = val(bf.P, L), val(bf.Q, L), val(bf.l, L)
        return {"feeder": f.id, "resources": list(rs.ids), "kinds": [str(k) for k in rs.kind],
                "nodes": [self.locations[k] for k in rs.ids], "x": self.x_vector(),
                "p": val(m.y, n), "q": val(m.q, n), "up": val(m.block.up, n), "down": val(m.block.dn, n),
                "available": avail, "cost_up": rs.cost_up.copy(), "cost_down": rs.cost_down.copy(),
                "node_ids": list(nodes), "v": v, "shed_p": shed_p, "shed_q": shed_q,
                "line_ids": list(bf.line_ids), "from": [ln.from_node for ln in f.lines],
                "to": [ln.to_node for ln in f.lines], "r": bf.r.copy(), "x_line": bf.x.copy(),
                "s_max": np.array([ln.s_max for ln in f.lines], dtype=float), "P": P, "Q": Q, "l": ell,
                "gap_abs": gap_abs, "gap_rel": gap_rel, "p_head": np.asarray(bf.p_head.value, dtype=float).reshape(-1),
                "q_head": np.asarray(bf.q_head.value, dtype=float).reshape(-1), "slack": slack.copy(),
                "voll": self.voll}

    def pcc_rating(self) -> float:
        """The rating (MW) of the PCC line (the feeder's line out of its head)."""
        r = [ln.s_max for ln in self.feeder.lines if ln.from_node == self.feeder.head]
        r = [v for v in r if math.isfinite(v)]
        return float(min(r)) if r else 1000.0

    def warmup_exchanges(self, n: int = 5) -> np.ndarray:
        """Exchanges at which the DSO evaluates itself on its first call (its own choice of points)."""
        R = self.pcc_rating()
        return np.linspace(-0.9 * R, 0.9 * R, n)

    def warmup_cuts(self, n: int, scenario_set: str, S: int, *, iteration: int | None = None,
                    context: Any = None) -> list[tuple[int, dict[str, float], float, float]]:
        """Its first cuts on a scenario set (its own choice of points): one solve of ``n`` columns, the exchanges
        :meth:`warmup_exchanges` at the set's mean wind, each cut moved to every scenario of the set with the wind
        sensitivity (``AreaResult.cut``; exact copies in an area without wind). ``value`` is NaN (no exchange was
        asked: the caller sends the value of its evaluation at the asked exchanges)."""
        q = self.warmup_exchanges(n)
        W = self.wind_matrix(scenario_set)
        if W.size and W.shape[1] != S:
            raise ValueError(f"{self.id}: {S} scenarios but {W.shape[1]} '{scenario_set}' wind scenarios")
        wbar = np.repeat(W.mean(axis=1, keepdims=True), q.size, axis=1) if W.size else None
        r = self.evaluate(q, scenario_set, iteration=iteration, context=context, wind=wbar)
        rs, x = self.resource_set, self.x_vector()
        out = []
        for s in range(S):
            for j in range(q.size):
                coef, const = r.cut(s, rs.ids, x, self.pcc_id, source=j, wind=W[:, s] if W.size else None,
                                    move=True)
                out.append((s, coef, const, math.nan))
                if r.wall is not None and r.wall[j] != 0:
                    coef, const = r.wall_cut(j, rs.ids, x, self.pcc_id)
                    if W.size:
                        const += float(r.nu[:, j] @ (W[:, s] - r.wind[:, j]))
                    out.append((s, coef, const, math.nan))
        return out

    def cuts(self, result: AreaResult, *, neighbours: int = 0) -> list[tuple[int, dict[str, float], float, float]]:
        """Optimality cuts ``(scenario, coefficients, constant, value)``; ``value`` is the scenario's cost.

        Per scenario: the cut of its own solution, plus (``neighbours`` > 0) the cuts of
        the scenarios whose exchanges are nearest below and above its own in this
        evaluation, moved to it (see :meth:`AreaResult.cut`); every one is valid.
        """
        rs = self.resource_set
        x = self.x_vector()
        S = result.cost.size
        order = np.argsort(result.p, kind="stable")
        pos = np.empty(S, dtype=int)
        pos[order] = np.arange(S)
        value = result.value
        out = []
        for s in range(S):
            sources = [s]
            for d in range(1, neighbours + 1):
                for q in (pos[s] - d, pos[s] + d):
                    if 0 <= q < S and abs(result.p[order[q]] - result.p[s]) > 1e-9:
                        sources.append(int(order[q]))
            for j in dict.fromkeys(sources):
                coef, const = result.cut(s, rs.ids, x, self.pcc_id, source=j)
                out.append((s, coef, const, float(value[s])))
            if result.wall is not None and result.wall[s] != 0:
                coef, const = result.wall_cut(s, rs.ids, x, self.pcc_id)
                out.append((s, coef, const, float(value[s])))
        return out

