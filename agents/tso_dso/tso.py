"""The TSO of the ``tso-dso`` protocol (seed 004): day-ahead market, Benders masters, real-time re-dispatch.

The TSO's problems live in their own modules: the day-ahead market (``day_ahead.py``),
the masters (``master.py``), the transmission real-time model and real-time master
(``realtime.py``). This module is the agent: its private data (the transmission grid,
the bus of each transmission-connected resource, the PCC bus of each area), the market
data it receives (offers and bids, and the market registration: kind and area of each
resource), and the steps it takes when the coordinator asks (see
``coordinator/tso_dso/protocol.py``):

- :meth:`TSO.start_iteration`: solve a scheme's master (and, for ``fc``, the level-bundle
  projection towards the incumbent), and open a real-time run for the in-sample set
  with the master's day-ahead decision;
- :meth:`TSO.start_evaluation`: open a real-time run for the incumbent of a scheme on a
  scenario set;
- :meth:`TSO.next_exchanges`: the PCC exchanges of the next TSO<->DSO round (the
  initial exchanges in the very first round of a set, when it holds no DSO cut yet,
  then its real-time master's);
- :meth:`TSO.add_dso_cut` and :meth:`TSO.round_bounds`: the DSOs' answers, and the
  bounds ``U_s`` (upper) and ``L_s`` (lower) of each scenario's real-time cost they give;
- :meth:`TSO.close_iteration`: one optimality cut per scenario to the master (with the
  lower value ``L_s``, always valid), the iteration's upper bound (with ``U_s``), the
  incumbent; :meth:`TSO.close_evaluation`.

It never decides when to stop: the coordinator does, from the bounds it reports. It
never sees a feeder.

Units: MW, $/MWh, $ (a minimisation of ``-SW_DA + E[real-time cost]``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from network.model import TransmissionGrid

from ..base import Agent, SolveError
from .day_ahead import DAMarket, DAResult, clear_da_market
from .master import Master, MasterResult
from .participants import DEM, GEN, WIND, Resource, ResourceSet
from .realtime import RTMaster, RTMasterResult

__all__ = ["TSO", "RealTimeRun", "Incumbent", "IterationFigures", "BENDERS", "EVALUATE"]

#: the two kinds of real-time run
BENDERS, EVALUATE = "benders", "evaluate"


@dataclass
class Incumbent:
    """A scheme's best day-ahead decision so far (lowest upper bound, $)."""

    upper: float = math.inf
    x: np.ndarray | None = None  # (n_market,) MW
    caps: np.ndarray | None = None  # (n_market,) upper bounds used (caps of capped resources), MW
    price: float = math.nan  # $/MWh (nan for fc)
    iteration: int = 0
    da_cost: float = math.nan  # -SW_DA, $
    U: np.ndarray | None = None  # (S,) real-time cost per in-sample scenario, $


@dataclass
class RealTimeRun:
    """The state of one TSO<->DSO run: a scenario set's real-time problems for one day-ahead decision.

    ``mode`` is :data:`BENDERS` (one iteration of a scheme's Benders loop, ``master`` its
    solution) or :data:`EVALUATE` (the incumbent of ``scheme`` on ``scenario_set``).
    ``D`` ``(E, S)`` holds the DSOs' costs ($) at the exchanges of the current round,
    ``seen`` which of them arrived; ``rt`` is the last real-time master solution; ``U``,
    ``L`` ``(S,)`` the last bounds.
    """

    mode: str
    scheme: str
    scenario_set: str
    S: int
    x: np.ndarray
    caps: np.ndarray
    price: float
    D: np.ndarray
    seen: np.ndarray
    iteration: int | None = None
    master: MasterResult | None = None
    t_level: float = 0.0
    t0: float = field(default_factory=time.perf_counter)
    rounds: int = 0  # exchange rounds sent (the warm-up round included)
    rt: RTMasterResult | None = None
    rt_time: float = 0.0
    U: np.ndarray | None = None
    L: np.ndarray | None = None


@dataclass(frozen=True)
class IterationFigures:
    """What closing a Benders iteration gives ($): the master's bound, the iterate's upper bound and its parts."""

    lower: float
    upper: float
    da_cost: float
    expected_rt: float
    price: float


class TSO(Agent):
    """The TSO: day-ahead market operator, masters, and the transmission real-time re-dispatch.

    Settings of its masters: ``level`` (level-bundle parameter, 0: plain Kelley steps)
    for the schemes in ``level_schemes``; ``share_cuts``: the cuts of ``Q_s(x)`` found by
    one scheme seed the others' masters. ``rt_cut_keep``, ``rt_cut_max_age``: pruning of the DSO
    cuts in its real-time master (see ``realtime.py``; ``None``: keep every cut).
    """

    role = "tso_dso.tso"

    def __init__(self, agent_id: str, grid: TransmissionGrid, locations: Mapping[str, str],
                 areas: Mapping[str, tuple[str, str, int]], registry: Mapping[str, tuple[str, int]], *,
                 voll: float = 10_000.0, lp_solver: str = "HIGHS", milp_solver: str = "HIGHS",
                 milp_options: Mapping[str, Any] | None = None, level: float = 0.5,
                 level_schemes: tuple[str, ...] = ("fc",), share_cuts: bool = False, rt_cut_keep: int | None = 24,
                 rt_cut_max_age: int = 8) -> None:
        super().__init__(agent_id)
        self.grid = grid
        self.locations = dict(locations)  # transmission resource id -> bus
        self.areas = {k: (str(v[0]), str(v[1])) for k, v in areas.items()}  # dso id -> (pcc id, bus)
        self.area_of_dso = {k: int(v[2]) for k, v in areas.items()}  # dso id -> area number
        self.registry = {k: (str(v[0]), int(v[1])) for k, v in registry.items()}  # resource -> (kind, area)
        self.voll = float(voll)
        self.lp_solver, self.milp_solver = lp_solver, milp_solver
        self.milp_options = dict(milp_options or {})
        self.level, self.level_schemes, self.share_cuts = float(level), tuple(level_schemes), bool(share_cuts)
        self.da_offers: dict[str, tuple[float, float]] = {}  # id -> (price, quantity)
        self.rt_resources: dict[str, Resource] = {}
        self.wind: dict[str, dict[str, np.ndarray]] = {}  # farm -> scenario set -> (S,) MW
        self.n_scenarios: dict[str, int] = {}  # scenario set -> S (from the wind farms' offers)
        self.rt_lower_bounds: dict[str, float] = {}  # per DSO: a lower bound of its real-time cost
        self.rt_master = RTMaster(self.id, list(self.areas), keep=rt_cut_keep, max_age=rt_cut_max_age,
                                  solver=lp_solver)
        # the Benders runs
        self.masters: dict[str, Master] = {}
        self.incumbent: dict[str, Incumbent] = {}
        self.shared: list[tuple[int, float, np.ndarray, np.ndarray]] = []  # in-sample cuts of Q_s, any scheme
        self.run: RealTimeRun | None = None
        self.iterations: list[dict[str, Any]] = []  # diagnostics per iteration (times, cuts, binaries)
        self.master_solutions: list[dict[str, Any]] = []
        self.evaluations: dict[str, dict[str, Any]] = {}
        self.level_failures = 0
        self.n_lp_solves = 0
        self.lp_time = 0.0

    # ---------------------------------------------------------------- identity
    def public_ids(self) -> frozenset[str]:
        return frozenset()

    def decision_ids(self) -> frozenset[str]:
        """Its decisions: the day-ahead quantities of every resource and the PCC exchanges."""
        return frozenset(self.registry) | frozenset(v[0] for v in self.areas.values())

    # ---------------------------------------------------------------- inputs
    def set_da_offer(self, rid: str, price: float, quantity: float) -> None:
        if rid not in self.registry:
            raise KeyError(f"{self.id}: day-ahead offer for unregistered resource {rid}")
        self.da_offers[rid] = (float(price), float(quantity))
        self.__dict__.pop("_cache_market", None)

    def set_rt_offer(self, resource: Resource, wind: Mapping[str, np.ndarray] | None = None) -> None:
        """A real-time offer of a transmission-connected resource (and, for a wind farm, its scenarios per set)."""
        if resource.id not in self.locations:
            raise KeyError(f"{self.id}: {resource.id} is not connected to the transmission grid")
        if self.registry[resource.id][0] != resource.kind:
            raise ValueError(f"{self.id}: real-time offer for {resource.id} as a {resource.kind}, registered as a "
                             f"{self.registry[resource.id][0]}")
        self.rt_resources[resource.id] = resource
        if wind:
            self.wind.setdefault(resource.id, {}).update({k: np.asarray(v, dtype=float) for k, v in wind.items()})
            self.n_scenarios.update({k: int(np.asarray(v).size) for k, v in wind.items()})
        self.__dict__.pop("_cache_rt_set", None)
        self.rt_master.invalidate()

    def set_rt_lower_bound(self, dso: str, value: float) -> None:
        self.rt_lower_bounds[dso] = float(value)

    # ---------------------------------------------------------------- market
    def market(self) -> DAMarket:
        mk = self.__dict__.get("_cache_market")
        if mk is not None:
            return mk
        ids = [k for k in self.registry if k in self.da_offers]
        missing = set(self.registry) - set(ids)
        if missing:
            raise ValueError(f"{self.id}: no day-ahead offer from {sorted(missing)[:5]}")
        kind = tuple(self.registry[k][0] for k in ids)
        area = np.array([self.registry[k][1] for k in ids], dtype=int)
        capped = np.array([(a > 0 and kd in (GEN, DEM)) for kd, a in zip(kind, area)])
        mk = DAMarket(tuple(ids), kind, np.array([self.da_offers[k][0] for k in ids]),
                      np.array([self.da_offers[k][1] for k in ids]), np.zeros(len(ids)), capped, area)
        self._cache_market = mk
        return mk

    def clear_da(self, caps: Mapping[str, float] | np.ndarray | None = None) -> DAResult:
        return clear_da_market(self.market(), caps, solver=self.lp_solver, agent=self.id)

    def trans_rt_lower_bound(self) -> float:
        return self.trans_set().rt_cost_lower_bound()

    def make_master(self, scheme: str, probabilities: np.ndarray, *, capacity: int = 32) -> Master:
        alpha_min = self.trans_rt_lower_bound() + sum(self.rt_lower_bounds.values())
        solver = self.lp_solver if scheme == "fc" else self.milp_solver
        return Master(self.market(), scheme, probabilities, alpha_min, capacity=capacity, solver=solver,
                      solver_options=self.milp_options if scheme != "fc" else None, agent=self.id)

    def probabilities(self, scenario_set: str) -> np.ndarray:
        """Equiprobable scenarios of a set."""
        S = self.n_scenarios.get(scenario_set)
        if S is None:
            raise RuntimeError(f"{self.id}: no wind scenarios for set '{scenario_set}'")
        return np.full(S, 1.0 / S)

    # ---------------------------------------------------------------- real time
    def trans_set(self) -> ResourceSet:
        rs = self.__dict__.get("_cache_rt_set")
        if rs is None:
            order = [k for k in self.locations if k in self.rt_resources]
            missing = set(self.locations) - set(order)
            if missing:
                raise ValueError(f"{self.id}: no real-time offer from {sorted(missing)[:5]}")
            rs = self._cache_rt_set = ResourceSet(self.rt_resources[k] for k in order)
        return rs

    def area_members(self, dso: str) -> list[str]:
        """Resources of the area of ``dso``, in the market's order (the keys of its cuts)."""
        a = self.area_of_dso[dso]
        return [k for k in self.market().ids if self.registry[k][1] == a]

    def pcc_bound(self, bus: str) -> float:
        """A bound on |p_pcc| (MW) implied by the TSO's own data (lines at the bus and resources there)."""
        lines = sum(ln.rating for ln in self.grid.lines if bus in (ln.from_bus, ln.to_bus))
        rs = self.trans_set()
        local = 0.0
        for r in rs.items:
            if self.locations[r.id] == bus:
                if r.kind == WIND:
                    local += max(float(np.max(v)) for v in self.wind[r.id].values())
                else:
                    local += r.p_max
        return float(lines + 2 * local + 1.0)

    def initial_exchange(self, x_market: np.ndarray) -> np.ndarray:
        """``(E,)``: each area's day-ahead net demand (demand - generation - wind), a first exchange to try."""
        mk = self.market()
        out = []
        for d in self.areas:
            a = self.area_of_dso[d]
            sel = mk.area == a
            out.append(float(-(mk.sign[sel] @ np.asarray(x_market)[sel])))
        return np.array(out)

    def rt_add_cut(self, dso: str, s: int, coefficients: Mapping[str, float], constant: float) -> bool:
        """A DSO cut ``theta_e,s >= constant + sum coef * (p or x)``; returns False if already known."""
        pcc, _ = self.areas[dso]
        members = self.area_members(dso)
        extra = set(coefficients) - (set(members) | {pcc})
        if extra:
            raise KeyError(f"{self.id}: cut from {dso} has coefficients on {sorted(extra)[:5]}")
        g = np.array([float(coefficients.get(k, 0.0)) for k in members])
        return self.rt_master.add_cut(dso, s, float(constant), float(coefficients.get(pcc, 0.0)), g)

    def rt_solve(self, x_market: np.ndarray, *, iteration: int | None = None) -> RTMasterResult:
        """Solve the real-time master of the selected scenario set for the day-ahead quantities ``x_market``."""
        rtm = self.rt_master
        mk = self.market()
        idx = mk.index
        rs = self.trans_set()
        x_market = np.asarray(x_market, dtype=float)
        x_T = np.array([x_market[idx[k]] for k in rs.ids])
        wind = (np.maximum(np.vstack([self.wind[k][rtm.scenario_set] for k in rs.wind_ids]), 0.0)
                if rs.wind_ids else None)
        members = [self.area_members(d) for d in self.areas]
        x_e = [np.array([x_market[idx[k]] for k in m]) for m in members]

        def build(K: int) -> Any:
            buses = [self.areas[d][1] for d in self.areas]
            bound = np.array([self.pcc_bound(b) for b in buses])
            return rtm.build(self.grid, rs, self.locations, buses, bound, K, voll=self.voll)

        r, fixd, contribs = rtm.solve(rs, x_T, wind, x_e, build, iteration=iteration)
        self.n_lp_solves += 1
        self.lp_time += r.solve_time
        mu = np.zeros((mk.n, r.p.shape[1]))
        for i, k in enumerate(rs.ids):
            mu[idx[k]] = fixd[i]
        for m, contrib in zip(members, contribs):
            for j, k in enumerate(m):
                mu[idx[k]] += contrib[j]
        r.mu = mu
        return r

    # ---------------------------------------------------------------- Benders steps
    def start_iteration(self, scheme: str, iteration: int) -> MasterResult:
        """Solve the master of ``scheme`` (and its level step) and open the in-sample real-time run of its decision."""
        if scheme not in self.masters:
            mst = self.make_master(scheme, self.probabilities("in_sample"))
            if self.share_cuts:
                for s, value, mu, xk in self.shared:
                    mst.add_cut(s, value, mu, xk)
            self.masters[scheme] = mst
            self.incumbent[scheme] = Incumbent()
        mst = self.masters[scheme]
        k = int(iteration)
        res = mst.solve(iteration=k)
        inc = self.incumbent[scheme]
        point = res
        t_level = 0.0
        if self.level > 0 and math.isfinite(inc.upper) and scheme in self.level_schemes:
            level = res.bound + self.level * (inc.upper - res.bound)
            try:
                point = mst.solve_level(inc.x, level, iteration=k)
                t_level = point.solve_time
            except SolveError:  # the projection is only a stabiliser: fall back to the master's point
                point = res
                self.level_failures += 1
        self.master_solutions.append({"scheme": scheme, "iteration": k, "x": point.x.copy(), "caps": point.caps.copy(),
                                      "price": point.price, "objective": res.objective, "bound": res.bound,
                                      "level_step": point is not res})
        self._open_run(BENDERS, scheme, "in_sample", point.x, point.caps, point.price, iteration=k, master=res,
                       t_level=t_level)
        return res

    def start_evaluation(self, scheme: str, scenario_set: str) -> None:
        """Open the real-time run of the incumbent of ``scheme`` on ``scenario_set``."""
        inc = self.incumbent.get(scheme)
        if inc is None or inc.x is None:
            raise RuntimeError(f"{self.id}: scheme {scheme} has no day-ahead decision to evaluate")
        self._open_run(EVALUATE, scheme, scenario_set, inc.x, inc.caps, inc.price)

    def _open_run(self, mode: str, scheme: str, scenario_set: str, x: np.ndarray, caps: np.ndarray, price: float,
                  **kw: Any) -> None:
        S = self.n_scenarios.get(scenario_set)
        if S is None:
            raise RuntimeError(f"{self.id}: no wind scenarios for set '{scenario_set}'")
        self.rt_master.select(scenario_set, S, {d: len(self.area_members(d)) for d in self.areas})
        E = len(self.areas)
        self.run = RealTimeRun(mode, scheme, scenario_set, S, x, caps, price, D=np.full((E, S), np.nan),
                               seen=np.zeros((E, S), dtype=bool), **kw)

    def _current(self) -> RealTimeRun:
        if self.run is None:
            raise RuntimeError(f"{self.id}: no real-time run is open")
        return self.run

    def area_schedule(self, dso: str) -> dict[str, float]:
        """The day-ahead quantities (MW) of the area of ``dso`` in the open run."""
        run, idx = self._current(), self.market().index
        return {k: float(run.x[idx[k]]) for k in self.area_members(dso)}

    def next_exchanges(self) -> np.ndarray:
        """``(E, S)`` PCC exchanges (MW) for the next round: the initial ones while the TSO holds no DSO cut for
        every scenario (the warm-up round of a scenario set), else its real-time master's."""
        run = self._current()
        if run.rt is None and not self.rt_master.has_cuts():
            p = np.tile(self.initial_exchange(run.x)[:, None], (1, run.S))
        else:
            t0 = time.perf_counter()
            run.rt = self.rt_solve(run.x, iteration=run.iteration)
            run.rt_time += time.perf_counter() - t0
            p = run.rt.p
        run.rounds += 1
        run.seen[:] = False
        return p

    def add_dso_cut(self, dso: str, s: int, coefficients: Mapping[str, float], constant: float, value: float) -> None:
        """A DSO's answer for scenario ``s``: a cut for the real-time master and its cost ``value`` ($) there."""
        run = self._current()
        e = list(self.areas).index(dso)
        self.rt_add_cut(dso, s, coefficients, constant)
        run.D[e, s] = value
        run.seen[e, s] = True

    def round_bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(U, L)`` ``(S,)`` ($) once every DSO answered for every scenario: ``U_s`` the transmission cost plus the
        DSOs' costs at the round's exchanges, ``L_s`` the real-time master's value. ``None`` after the warm-up round
        (no real-time master solution to bound yet)."""
        run = self._current()
        if not run.seen.all():
            dsos = list(self.areas)
            missing = [(dsos[e], int(s)) for e, s in zip(*np.nonzero(~run.seen))][:5]
            raise RuntimeError(f"{self.id}: no value for (DSO, scenario) {missing} in round {run.rounds}")
        if run.rt is None:
            return None
        run.U = run.rt.trans_cost + run.D.sum(axis=0)
        run.L = run.rt.lower
        return run.U, run.L

    def close_iteration(self) -> IterationFigures:
        """Add one optimality cut per scenario to the master (value ``L_s``), update the incumbent (upper bound
        ``-SW_DA + phi . U``) and close the run."""
        run = self._current()
        if run.mode != BENDERS or run.rt is None or run.U is None or run.master is None:
            raise RuntimeError(f"{self.id}: no Benders iteration with real-time bounds to close")
        scheme, x, r, res = run.scheme, run.x, run.rt, run.master
        mst = self.masters[scheme]
        S = run.S
        phi = np.full(S, 1.0 / S)
        for s in range(S):
            mst.add_cut(s, float(r.lower[s]), r.mu[:, s], x)
            if self.share_cuts:
                self.shared.append((s, float(r.lower[s]), r.mu[:, s].copy(), x.copy()))
        if self.share_cuts:
            for other, m2 in self.masters.items():
                if other != scheme:
                    for s in range(S):
                        m2.add_cut(s, float(r.lower[s]), r.mu[:, s], x)
        da_cost = self.market().cost(x)
        expected_rt = float(phi @ run.U)
        upper = da_cost + expected_rt
        inc = self.incumbent[scheme]
        if upper < inc.upper:
            self.incumbent[scheme] = Incumbent(upper, x.copy(), np.asarray(run.caps).copy(), run.price,
                                               int(run.iteration or 0), da_cost, run.U.copy())
        self.iterations.append({
            "scheme": scheme, "iteration": run.iteration,
            "master_time_s": res.solve_time + run.t_level, "rt_master_time_s": run.rt_time,
            "iteration_time_s": time.perf_counter() - run.t0 + res.solve_time + run.t_level,
            "n_cuts": mst.n_cuts, "binaries": res.binaries,
        })
        self.run = None
        return IterationFigures(lower=res.bound, upper=upper, da_cost=da_cost, expected_rt=expected_rt,
                                price=run.price)

    def close_evaluation(self) -> dict[str, Any]:
        """Record the evaluation of the open run (read by the analyst) and close the run."""
        run = self._current()
        if run.mode != EVALUATE or run.rt is None or run.U is None or run.L is None:
            raise RuntimeError(f"{self.id}: no evaluation with real-time bounds to close")
        r = run.rt
        ev = {"scheme": run.scheme, "set": run.scenario_set, "x": run.x.copy(), "da_cost": self.market().cost(run.x),
              "U": run.U.copy(), "L": run.L.copy(),
              "rel_gap": (run.U - run.L) / np.maximum(1.0, np.abs(run.U)), "rounds": run.rounds,
              "flows": r.flows.copy(), "p": r.p.copy(), "shed_T": r.shed.copy(),
              "ratings": self.grid.ratings().copy(), "line_ids": [ln.id for ln in self.grid.lines],
              "time_s": time.perf_counter() - run.t0, "D": run.D.copy(), "trans_cost": r.trans_cost.copy()}
        self.evaluations[f"{run.scheme}:{run.scenario_set}"] = ev
        self.run = None
        return ev
