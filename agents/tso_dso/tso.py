"""The TSO of the ``tso-dso`` protocol (seed 004): day-ahead market, Benders masters, real-time re-dispatch.

The TSO's problems live in their own modules: the day-ahead market (``day_ahead.py``),
the masters (``master.py``), the transmission real-time model and real-time master
(``realtime.py``). This module is the agent: its private data (the transmission grid,
the bus of each transmission-connected resource, the PCC bus of each area), the market
data it receives (offers and bids, and the market registration: kind and area of each
resource), and the steps it takes when the coordinator asks (see
``coordinator/tso_dso/protocol.py``):

- :meth:`TSO.start_iteration`: iteration 1 of a scheme evaluates the unconstrained market
  clearing (a feasible decision of every scheme, and the protocol's welfare scale); from
  iteration 2 it solves the scheme's master (``joint_master.py``: the day-ahead decisions
  with the TSO's own real-time model of every in-sample scenario and the DSOs' cuts), and
  opens a real-time run for the in-sample set with the decision;
- :meth:`TSO.start_evaluation`: open a real-time run for the incumbent of a scheme on a
  scenario set;
- :meth:`TSO.next_exchanges`: the PCC exchanges of the next TSO<->DSO round: the initial
  ones while it holds no DSO cut for the set (the warm-up round), the master's in the
  first round of a Benders iteration, then its real-time master's (``realtime.py``);
- :meth:`TSO.add_dso_cut` and :meth:`TSO.round_bounds`: the DSOs' answers, and the
  bounds ``U_s`` (upper) and ``L_s`` (lower) of each scenario's real-time cost they give;
- :meth:`TSO.close_iteration`: the iteration's upper bound (with ``U_s``) and the
  incumbent; :meth:`TSO.close_evaluation`.

The DSO cuts of a scheme are its own (one cut pool per scheme and scenario set), so a
scheme's result does not depend on which other schemes run with it; ``share_cuts`` pools
them across schemes (every cut is valid for every schedule, so sharing is exact, but the
trajectory then depends on the schemes run before).

It never decides when to stop: the coordinator does, from the bounds it reports. It
never sees a feeder. The DSO cuts of a set other than the in-sample one are dropped when
its evaluation closes (unless shared): no later decision uses them.

Units: MW, $/MWh, $ (a minimisation of ``-SW_DA + E[real-time cost]``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from network.model import TransmissionGrid

from ..base import Agent
from .day_ahead import DAMarket, DAResult, clear_da_market
from .joint_master import JointMaster, JointResult
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
    solution, ``bound`` its bound) or :data:`EVALUATE` (the incumbent of ``scheme`` on ``scenario_set``).
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
    master: JointResult | None = None  # the master's solution (None: the iteration's candidate point)
    bound: float = -math.inf  # the master's bound ($)
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

    ``share_cuts``: one pool of DSO cuts for all schemes (default: one per scheme).
    ``rt_cut_keep``, ``rt_cut_max_age``: pruning of the DSO cuts (see ``realtime.py``;
    ``None``: keep every cut). ``settle``: per scenario set, the relative gap at which an
    evaluation leaves a scenario alone (see :meth:`next_exchanges`; none: every scenario is
    solved in every round).
    """

    role = "tso_dso.tso"

    def __init__(self, agent_id: str, grid: TransmissionGrid, locations: Mapping[str, str],
                 areas: Mapping[str, tuple[str, str, int]], registry: Mapping[str, tuple[str, int]], *,
                 voll: float = 10_000.0, lp_solver: str = "HIGHS", share_cuts: bool = False,
                 rt_cut_keep: int | None = 24, rt_cut_max_age: int = 8,
                 settle: Mapping[str, float] | None = None) -> None:
        super().__init__(agent_id)
        self.grid = grid
        self.locations = dict(locations)  # transmission resource id -> bus
        self.areas = {k: (str(v[0]), str(v[1])) for k, v in areas.items()}  # dso id -> (pcc id, bus)
        self.area_of_dso = {k: int(v[2]) for k, v in areas.items()}  # dso id -> area number
        self.registry = {k: (str(v[0]), int(v[1])) for k, v in registry.items()}  # resource -> (kind, area)
        self.voll = float(voll)
        self.lp_solver = lp_solver
        self.share_cuts = bool(share_cuts)
        self.da_offers: dict[str, tuple[float, float]] = {}  # id -> (price, quantity)
        self.rt_resources: dict[str, Resource] = {}
        self.wind: dict[str, dict[str, np.ndarray]] = {}  # farm -> scenario set -> (S,) MW
        self.n_scenarios: dict[str, int] = {}  # scenario set -> S (from the wind farms' offers)
        self.rt_lower_bounds: dict[str, float] = {}  # per DSO: a lower bound of its real-time cost
        self.rt_cut_keep, self.rt_cut_max_age = rt_cut_keep, int(rt_cut_max_age)
        self.settle = {str(k): float(v) for k, v in (settle or {}).items()}
        self.scales: dict[str, float] = {}  # per scheme: max(1, |-SW_DA|) of its iteration 1 ($)
        self.rt_masters: dict[str, RTMaster] = {}  # per scheme (or one, "shared"): the DSO cut pools per set
        self._rt_key = "shared"
        # the Benders runs
        self.masters: dict[str, JointMaster] = {}
        self.incumbent: dict[str, Incumbent] = {}
        self.run: RealTimeRun | None = None
        self.iterations: list[dict[str, Any]] = []  # diagnostics per iteration (times, cuts, binaries)
        self.master_solutions: list[dict[str, Any]] = []
        self.evaluations: dict[str, dict[str, Any]] = {}
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
        self.__dict__.pop("_cache_rt_lps", None)
        for rtm in self.rt_masters.values():
            rtm.invalidate()
        for mst in self.masters.values():
            mst.invalidate()

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

    def make_master(self, scheme: str, probabilities: np.ndarray) -> JointMaster:
        """The master of ``scheme`` for the in-sample scenarios (``joint_master.py``)."""
        mk = self.market()
        idx = mk.index
        rs = self.trans_set()
        members = [np.array([idx[k] for k in self.area_members(d)], dtype=int) for d in self.areas]
        buses = [self.areas[d][1] for d in self.areas]
        bound = np.array([self.pcc_bound(b) for b in buses])
        theta_min = np.array([self.rt_lower_bounds.get(d, -1e9) for d in self.areas])
        return JointMaster(mk, scheme, probabilities, members, np.array([idx[k] for k in rs.ids], dtype=int),
                           theta_min, bound, grid=self.grid, res=rs, bus_of=self.locations, pcc_buses=buses,
                           voll=self.voll, agent=self.id, solver=self.lp_solver)

    def probabilities(self, scenario_set: str) -> np.ndarray:
        """Equiprobable scenarios of a set."""
        S = self.n_scenarios.get(scenario_set)
        if S is None:
            raise RuntimeError(f"{self.id}: no wind scenarios for set '{scenario_set}'")
        return np.full(S, 1.0 / S)

    # ---------------------------------------------------------------- real time
    @property
    def rt_master(self) -> RTMaster:
        """The real-time master (DSO cut pools) of the scheme in hand (:meth:`use_scheme`)."""
        rtm = self.rt_masters.get(self._rt_key)
        if rtm is None:
            rtm = self.rt_masters[self._rt_key] = RTMaster(self.id, list(self.areas), keep=self.rt_cut_keep,
                                                           max_age=self.rt_cut_max_age, solver=self.lp_solver)
        return rtm

    def use_scheme(self, scheme: str) -> None:
        """Work with the DSO cut pools of ``scheme`` (the shared pools with ``share_cuts``)."""
        self._rt_key = "shared" if self.share_cuts else str(scheme)

    def trans_wind(self, scenario_set: str) -> np.ndarray | None:
        """``(n_wind_T, S)`` the available output of the transmission-connected wind farms (MW), or ``None``."""
        rs = self.trans_set()
        if not rs.wind_ids:
            return None
        return np.maximum(np.vstack([self.wind[k][scenario_set] for k in rs.wind_ids]), 0.0)

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

    def rt_solve(self, x_market: np.ndarray, *, iteration: int | None = None,
                 cols: np.ndarray | None = None) -> RTMasterResult:
        """Solve the real-time master of the selected scenario set for the day-ahead quantities ``x_market``
        (the scenarios ``cols`` only, default all: the result's columns)."""
        rtm = self.rt_master
        mk = self.market()
        idx = mk.index
        rs = self.trans_set()
        x_market = np.asarray(x_market, dtype=float)
        x_T = np.array([x_market[idx[k]] for k in rs.ids])
        wind = self.trans_wind(str(rtm.scenario_set))
        members = [self.area_members(d) for d in self.areas]
        x_e = [np.array([x_market[idx[k]] for k in m]) for m in members]

        def build(S: int, K: int) -> Any:  # the LPs depend on the grid and offers only: kept for every scheme
            lps = self.__dict__.setdefault("_cache_rt_lps", {})
            if (S, K) not in lps:
                buses = [self.areas[d][1] for d in self.areas]
                bound = np.array([self.pcc_bound(b) for b in buses])
                lps[S, K] = rtm.build(self.grid, rs, self.locations, buses, bound, K, voll=self.voll, S=S)
            return lps[S, K]

        floors = [self.rt_lower_bounds.get(d, -1e9) for d in self.areas]
        r, fixd, contribs = rtm.solve(rs, x_T, wind, x_e, build, iteration=iteration, floors=floors, cols=cols)
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
    def start_iteration(self, scheme: str, iteration: int) -> tuple[float, float]:
        """Open the in-sample real-time run of iteration ``iteration`` of ``scheme``; returns the master's
        ``(bound, objective)`` ($).

        Iteration 1 takes the unconstrained day-ahead market clearing (an equilibrium with the caps
        at P max, so a decision of every scheme); the DSOs' answers around it are the masters'
        first cuts. Its bound is the clearing's ``-SW_DA`` (the least of every scheme's decisions)
        plus the lower bounds of the real-time costs. Later iterations solve the scheme's master
        (:meth:`JointMaster.solve_best`).
        """
        self.use_scheme(scheme)
        S = self.n_scenarios.get("in_sample")
        if S is None:
            raise RuntimeError(f"{self.id}: no in-sample wind scenarios")
        self.rt_master.select("in_sample", S, {d: len(self.area_members(d)) for d in self.areas})
        if scheme not in self.incumbent:
            self.incumbent[scheme] = Incumbent()
        k = int(iteration)
        if k <= 1:
            da = self.clear_da()
            price = da.price if scheme != "fc" else math.nan
            bound = da.cost + self.trans_rt_lower_bound() + sum(self.rt_lower_bounds.values())
            self.master_solutions.append({"scheme": scheme, "iteration": k, "x": da.x.copy(), "caps": da.upper.copy(),
                                          "price": price, "objective": bound, "bound": bound,
                                          "region": "market clearing", "lps": 0})
            self._open_run(BENDERS, scheme, "in_sample", da.x, da.upper, price, iteration=k, bound=bound)
            return bound, bound
        if scheme not in self.masters:
            self.masters[scheme] = self.make_master(scheme, self.probabilities("in_sample"))
        mst = self.masters[scheme]
        pools = [self.rt_master.pools[d] for d in self.areas]
        res, bound = mst.solve_best(pools, self.trans_wind("in_sample"), self.rt_master.version, iteration=k)
        self.master_solutions.append({"scheme": scheme, "iteration": k, "x": res.x.copy(), "caps": res.caps.copy(),
                                      "price": res.price, "objective": res.value, "bound": bound,
                                      "region": res.price, "lps": res.lps})
        self._open_run(BENDERS, scheme, "in_sample", res.x, res.caps, res.price, iteration=k, master=res,
                       bound=bound)
        return bound, res.value

    def start_evaluation(self, scheme: str, scenario_set: str) -> None:
        """Open the real-time run of the incumbent of ``scheme`` on ``scenario_set``."""
        inc = self.incumbent.get(scheme)
        if inc is None or inc.x is None:
            raise RuntimeError(f"{self.id}: scheme {scheme} has no day-ahead decision to evaluate")
        self.use_scheme(scheme)
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
        every scenario (the warm-up round of a scenario set), the master's in the first round of an iteration
        that solved one, else its real-time master's.

        In an evaluation, a scenario whose last bounds are within ``settle[set]`` (``(U_s - L_s) / max(|U_s|,
        W)``, ``W`` the scheme's welfare scale, as the coordinator's inner rule) is settled: its exchanges,
        real-time solution and bounds stay as they are (the DSOs answer an unchanged exchange with the same
        column), and only the other scenarios' real-time master is solved again."""
        run = self._current()
        if run.rt is None and run.master is not None:
            m = run.master
            run.rt = RTMasterResult(p=m.p, lower=m.lower, trans_cost=m.trans_cost, theta=m.theta,
                                    mu=np.zeros((0, run.S)), flows=m.flows, shed=m.shed, solve_time=0.0)
            p = m.p
        elif run.rt is None and not self.rt_master.has_cuts():
            p = self._first_exchanges(run)
        else:
            t0 = time.perf_counter()
            cols = self._unsettled(run)
            if cols is None:
                run.rt = self.rt_solve(run.x, iteration=run.iteration)
            else:
                run.rt = run.rt.with_columns(self.rt_solve(run.x, iteration=run.iteration, cols=cols), cols)
            run.rt_time += time.perf_counter() - t0
            p = run.rt.p
        run.rounds += 1
        run.seen[:] = False
        return p

    def _unsettled(self, run: RealTimeRun) -> np.ndarray | None:
        """The scenarios of an evaluation not settled yet (see :meth:`next_exchanges`); ``None``: all of them."""
        tol, scale = self.settle.get(run.scenario_set), self.scales.get(run.scheme)
        if run.mode != EVALUATE or tol is None or scale is None or run.rt is None or run.U is None or run.L is None:
            return None
        rel = (run.U - run.L) / np.maximum(max(1.0, scale), np.abs(run.U))  # as coordinator/tso_dso inner_done
        cols = np.flatnonzero(rel > tol)
        return None if cols.size in (0, run.S) else cols

    def _first_exchanges(self, run: RealTimeRun) -> np.ndarray:
        """``(E, S)`` the exchanges of the warm-up round of a set: in an evaluation of a scheme evaluated in sample
        before, each scenario takes the final exchanges of the in-sample scenario with the nearest transmission wind
        (its own data); else each area's day-ahead net demand (:meth:`initial_exchange`)."""
        ins = self.evaluations.get(f"{run.scheme}:in_sample")
        w = self.trans_wind(run.scenario_set)
        w_in = self.trans_wind("in_sample")
        if run.mode == EVALUATE and ins is not None and w is not None and w_in is not None and \
                np.allclose(ins["x"], run.x):
            d2 = ((w[:, :, None] - w_in[:, None, :]) ** 2).sum(axis=0)  # (S, S_in)
            return np.asarray(ins["p"])[:, np.argmin(d2, axis=1)]
        return np.tile(self.initial_exchange(run.x)[:, None], (1, run.S))

    def add_dso_cut(self, dso: str, s: int, coefficients: Mapping[str, float], constant: float, value: float) -> None:
        """A DSO's answer for scenario ``s``: a cut for the real-time master and its cost ``value`` ($) there."""
        run = self._current()
        e = list(self.areas).index(dso)
        self.rt_add_cut(dso, s, coefficients, constant)
        run.D[e, s] = value
        run.seen[e, s] = True

    def round_bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(U, L)`` ``(S,)`` ($) once every DSO answered for every scenario: ``U_s`` the transmission cost plus the
        DSOs' costs at the round's exchanges, ``L_s`` the real-time model's value (the master's in the first round of
        an iteration, then the real-time master's). ``None`` after the warm-up round (no solution to bound yet)."""
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
        """Update the incumbent with the iterate's upper bound ``-SW_DA + phi . U`` and close the run (the DSOs'
        cuts are already in the master's pools)."""
        run = self._current()
        if run.mode != BENDERS or run.rt is None or run.U is None:
            raise RuntimeError(f"{self.id}: no Benders iteration with real-time bounds to close")
        scheme, x = run.scheme, run.x
        phi = np.full(run.S, 1.0 / run.S)
        da_cost = self.market().cost(x)
        expected_rt = float(phi @ run.U)
        upper = da_cost + expected_rt
        if run.iteration == 1:  # the welfare scale W of the coordinator's stopping rules (see protocol.py)
            self.scales[scheme] = max(1.0, abs(da_cost)) if math.isfinite(da_cost) else 1.0
        inc = self.incumbent[scheme]
        if upper < inc.upper:
            self.incumbent[scheme] = Incumbent(upper, x.copy(), np.asarray(run.caps).copy(), run.price,
                                               int(run.iteration or 0), da_cost, run.U.copy())
        m = run.master
        self.iterations.append({
            "scheme": scheme, "iteration": run.iteration,
            "master_time_s": m.solve_time if m is not None else 0.0, "master_lps": m.lps if m is not None else 0,
            "rt_master_time_s": run.rt_time, "iteration_time_s": time.perf_counter() - run.t0,
            "n_cuts": self.rt_master.n_cuts, "price_level": run.price,
        })
        self.run = None
        return IterationFigures(lower=run.bound, upper=upper, da_cost=da_cost, expected_rt=expected_rt,
                                price=run.price)

    def close_evaluation(self) -> dict[str, Any]:
        """Record the evaluation of the open run (read by the analyst) and close the run."""
        run = self._current()
        if run.mode != EVALUATE or run.rt is None or run.U is None or run.L is None:
            raise RuntimeError(f"{self.id}: no evaluation with real-time bounds to close")
        r = run.rt
        rs = self.trans_set()
        idx = self.market().index
        x_T = np.array([run.x[idx[k]] for k in rs.ids])
        avail = np.full((len(rs), run.S), np.nan)
        w = self.trans_wind(run.scenario_set)
        if w is not None:
            avail[np.flatnonzero(rs.is_wind)] = w
        ev = {"scheme": run.scheme, "set": run.scenario_set, "x": run.x.copy(), "da_cost": self.market().cost(run.x),
              "U": run.U.copy(), "L": run.L.copy(),
              "rel_gap": (run.U - run.L) / np.maximum(1.0, np.abs(run.U)), "rounds": run.rounds,
              "flows": r.flows.copy(), "p": r.p.copy(), "shed_T": r.shed.copy(),
              "ratings": self.grid.ratings().copy(), "line_ids": [ln.id for ln in self.grid.lines],
              "line_ends": [(ln.from_bus, ln.to_bus) for ln in self.grid.lines],
              "time_s": time.perf_counter() - run.t0, "D": run.D.copy(), "trans_cost": r.trans_cost.copy(),
              # the transmission side of the final real-time dispatch (MW)
              "resources": list(rs.ids), "kinds": [str(k) for k in rs.kind],
              "buses": [self.locations[k] for k in rs.ids], "x_T": x_T, "dispatch": r.dispatch, "up": r.up,
              "down": r.down, "available": avail, "cost_up": rs.cost_up.copy(), "cost_down": rs.cost_down.copy(),
              "shed_bus": r.shed_bus, "shed_buses": [self.grid.bus_ids[i] for i in (r.shed_rows if r.shed_rows is not None
                                                                                  else [])],
              "pcc": {d: self.areas[d] for d in self.areas}, "voll": self.voll}
        self.evaluations[f"{run.scheme}:{run.scenario_set}"] = ev
        self.run = None
        if run.scenario_set != "in_sample" and not self.share_cuts:  # its cuts serve no later decision
            self.rt_master.drop(run.scenario_set)
        return ev
