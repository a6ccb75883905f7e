"""The ``tso-dso`` protocol: TSO-DSO coordination under wind uncertainty (seed 004).

Schemes (``docs/tso_dso_reference.md``):

- ``pcc``: the TSO's master is the day-ahead market's optimality conditions (KKT with
  big-M, one binary per complementarity pair) with the DSO pre-qualification caps as
  decisions and one ``alpha_s`` per in-sample scenario; multi-cut Benders with the
  real-time problem of each scenario as subproblem;
- ``cm``: the same master with the caps fixed at P max (no coordination);
- ``fc``: the ideal two-stage stochastic benchmark: day-ahead quantities free (no market
  equilibrium), decomposed the same way (level-bundle stabilised LP master).

The real-time problem of a scenario is never solved in one piece: the TSO re-dispatches
the transmission-connected resources on the DC grid with a cost-to-go ``theta_e`` per
DSO built from that DSO's cuts on its PCC exchange; each DSO re-dispatches its area on
its feeder's SOCP for the exchanges it is sent and answers with its cost and cuts
(nested Benders, exact: it matches the joint SOCP, see :func:`joint_rt`). All scenarios
of a set are processed together, round by round; the DSOs answer in parallel.

One Benders iteration (coordinator messages in brackets)::

    [Status master:<scheme> -> TSO]  TSO solves its master -> Schedule (area day-ahead
        quantities) and Exchange (PCC exchange per scenario) to every DSO
    DSOs -> OptimalityCut per scenario (and per warm-up exchange on their first call)
    TSO adds the cuts; until every scenario's real-time bounds meet (or, within
        Benders, until their gap is below a fraction of the outer gap) it re-solves its
        real-time master and sends new exchanges; then it adds one optimality cut per
        scenario to its master and goes quiet.

Out-of-sample evaluation: the participants send real-time offers with the
out-of-sample wind (``Status rt:out_of_sample``) and the TSO runs the same loop with
each scheme's day-ahead decision fixed (``Status evaluate:<scheme>:<set>``).

Benchmarks (analyst tools, they see everything): :func:`joint_rt` (the real-time
problem of each scenario as one SOCP), :func:`extensive_form` (fc: one SOCP; pcc/cm:
one mixed-integer SOCP, solved with SCIP), :func:`equilibrium_check`.

Decisions (see also ``docs/tso_dso_reference.md``)
--------------------------------------------------
- Stopping rule: ``(best upper - master bound) / max(1, |best upper|) <= 1e-3`` (the
  master bound of a MILP is HiGHS's dual bound, not its incumbent), at most 100
  iterations; the gap on the current iterate (the paper's) is logged too.
- Inexact inner loop: within Benders the TSO <-> DSO loop of an iteration may stop
  once ``sum_s phi_s (U_s - L_s)`` is below a tenth of the current outer gap; the
  master's cut uses the lower value ``L_s`` (always valid), the upper bound the upper
  value ``U_s``. Final figures come from an evaluation to 1e-6 per scenario (1e-5
  out of sample).
- fc's master is stabilised by a level-bundle step (Euclidean projection, level
  ``lower + 0.5 (upper - lower)``); pcc and cm take plain Kelley steps (a level step
  in the L1 norm did not pay off for the MILP).
- DSO cuts are kept by the TSO for the whole run (they are valid for every day-ahead
  schedule); stale ones are pruned from the LP. Each DSO evaluates 5 exchanges of its
  own choice on its first call for a scenario set.
- Feeder head (PCC terminal): voltage free within the bus's limits, reactive exchange
  free (the DC transmission model has none), as in the seed's appendix (A.1).
- Day-ahead shedding is left out of the market (dominated: demands bid below VOLL
  with ``p_min = 0``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import cvxpy as cp
import numpy as np
import pandas as pd

from agents.solve import solve_conic
from agents.tso_dso.dso import DEFAULT_PENALTY_FACTOR, AreaDSO, build_area_rt
from agents.tso_dso.participants import (DEM, GEN, WIND, ResourceSet, RTDERManager, RTLoadAggregator,
                                    locations_from_case, resources_from_case)
from agents.tso_dso.tso import (TSO, DAMarket, Master, build_transmission_rt, clear_da_market, equilibrium_price_interval)
from network.model import TRANSMISSION, Case

from ..benders import IterationLog, StoppingRule
from ..boundary import COORDINATOR
from .hosts import AreaDSOHost, InnerSettings, ParticipantHost, TSOHost
from ..messages import Message, Status
from ..runtime import Runtime
from .policy import TSO_DSO_POLICY

__all__ = ["TSODSOConfig", "Roles", "make_hosts", "TSODSOProtocol", "SchemeResult", "Evaluation", "LevelResult",
           "market_from_case", "joint_rt", "extensive_form", "equilibrium_check", "congestion", "welfare_stats",
           "SCHEMES", "QUANTILES", "IN_SAMPLE", "OUT_OF_SAMPLE"]

SCHEMES = ("pcc", "cm", "fc")
QUANTILES = (0.1, 0.2, 0.3, 0.7, 0.8, 0.9)
IN_SAMPLE, OUT_OF_SAMPLE = "in_sample", "out_of_sample"


@dataclass(frozen=True)
class TSODSOConfig:
    schemes: tuple[str, ...] = SCHEMES
    gap_tol: float = 1e-3  # relative gap (best upper bound vs master bound) at which Benders stops
    max_iterations: int = 100
    inner_tol: float = 1e-6  # relative gap per scenario at which the TSO <-> DSO loop has solved it
    oos_tol: float = 1e-5  # the same in the out-of-sample evaluation
    inner_max_rounds: int = 80
    inexact: float = 0.1  # within Benders the inner loop may stop at this fraction of the outer gap
    level: float = 0.5  # fc: level-bundle parameter
    neighbours: int = 0  # DSO cuts moved from neighbouring scenarios (0: only each scenario's own)
    warmup: int = 5  # exchanges a DSO evaluates on its first call for a scenario set
    share_cuts: bool = False  # the cuts of Q_s(x) found by one scheme seed the others' masters
    penalty_factor: float = DEFAULT_PENALTY_FACTOR  # DSO slack penalty = factor x VOLL
    congestion_margin: float = 10.5  # MW: a TSO line within this of its rating is congested (paper's code)
    oos: bool = True

    def __post_init__(self) -> None:
        bad = [s for s in self.schemes if s not in SCHEMES]
        if bad:
            raise ValueError(f"unknown scheme(s) {bad}; choose from {', '.join(SCHEMES)}")
        if not (0 < self.gap_tol < 1) or self.max_iterations < 1:
            raise ValueError("gap_tol must be in (0, 1) and max_iterations >= 1")


# ------------------------------------------------------------------ set-up


@dataclass
class Roles:
    """Agent ids of the tso-dso case."""

    tso: str
    dsos: dict[str, str]  # dso id -> feeder id
    area_of_dso: dict[str, int]
    participants: dict[str, str]  # id -> role
    operator_of: dict[str, str]  # participant -> the operator of its real-time offers
    pcc_id: dict[str, str]  # dso id -> its PCC identifier

    @classmethod
    def of(cls, case: Case) -> "Roles":
        tsos = case.owners_with_role("tso")
        if len(tsos) != 1:
            raise ValueError(f"the tso-dso protocol needs exactly one TSO, the case has {len(tsos)}")
        if case.transmission is None:
            raise ValueError("the tso-dso protocol needs a transmission grid")
        owner_area = {o.id: o.area for o in case.owners}
        feeder_area: dict[str, int] = {}
        for f in case.feeders.values():
            areas = {owner_area[a.owner] for a in (*case.units, *case.loads) if a.grid == f.id}
            if len(areas) != 1 or None in areas:
                raise ValueError(f"feeder {f.id}: its resources must belong to owners of one area, got {areas}")
            feeder_area[f.id] = int(next(iter(areas)))
            if f.pcc_bus is None:
                raise ValueError(f"feeder {f.id} has no PCC bus")
        dso_of_area = {int(o.area): o.id for o in case.owners_with_role("dso") if o.area is not None}
        dsos, area_of_dso, pcc = {}, {}, {}
        for fid, a in sorted(feeder_area.items(), key=lambda kv: kv[1]):
            if a not in dso_of_area:
                raise ValueError(f"no DSO for area {a} (feeder {fid})")
            d = dso_of_area[a]
            dsos[d], area_of_dso[d], pcc[d] = fid, a, f"PCC{a}"
        parts, op = {}, {}
        for o in case.owners:
            if o.role in ("der_manager", "load_aggregator") and (case.units_of(o.id) or case.loads_of(o.id)):
                parts[o.id] = o.role
                a = int(o.area or 0)
                op[o.id] = tsos[0].id if a == 0 else dso_of_area[a]
        return cls(tsos[0].id, dsos, area_of_dso, parts, op, pcc)


def _area_of_resources(case: Case, roles: Roles) -> dict[str, int]:
    feeder_area = {f: roles.area_of_dso[d] for d, f in roles.dsos.items()}
    loc = locations_from_case(case)
    return {k: (0 if g == TRANSMISSION else feeder_area[g]) for k, (g, _) in loc.items()}


def _wind_sets(wind: Any, farm: str) -> dict[str, np.ndarray]:
    i = list(wind.farm_ids).index(farm)
    out = {IN_SAMPLE: np.asarray(wind.in_sample[i], dtype=float)}
    oos = getattr(wind, "out_of_sample", None)
    if oos is not None and np.asarray(oos).shape[1] > 0:
        out[OUT_OF_SAMPLE] = np.asarray(oos[i], dtype=float)
    return out


def make_hosts(case: Case, wind: Any, config: TSODSOConfig = TSODSOConfig()) -> tuple[list[Any], Roles]:
    """Hosts of every agent, each agent given only its own data.

    ``wind``: an object with ``farm_ids``, ``in_sample`` ``(n_farms, S)`` and
    ``out_of_sample`` ``(n_farms, S_oos)`` (e.g. ``scenarios.tso_dso.wind.WindScenarios``).
    """
    roles = Roles.of(case)
    loc = locations_from_case(case)
    area_of = _area_of_resources(case, roles)
    voll = float(case.param("voll_rt", case.param("voll", 10_000.0)))
    hosts: list[Any] = []
    # participants
    for pid, role in roles.participants.items():
        res = resources_from_case(case, pid)
        w = {r.id: _wind_sets(wind, r.id) for r in res if r.kind == WIND}
        cls = RTDERManager if role == "der_manager" else RTLoadAggregator
        owner = case.owner(pid)
        agent = cls(pid, res, area=int(owner.area or 0), wind=w)
        hosts.append(ParticipantHost(agent, roles.tso, roles.operator_of[pid]))
    # DSOs: their feeder and the node of each of their area's resources
    for d, fid in roles.dsos.items():
        feeder = case.feeders[fid]
        nodes = {k: n for k, (g, n) in loc.items() if g == fid}
        agent = AreaDSO(d, feeder, nodes, roles.pcc_id[d], voll=voll, penalty=config.penalty_factor * voll)
        hosts.append(AreaDSOHost(agent, roles.tso, neighbours=config.neighbours, warmup=config.warmup))
    # TSO: the transmission grid, the bus of each transmission-connected resource, the PCC buses;
    # market registration: the kind and area of every resource
    t_nodes = {k: n for k, (g, n) in loc.items() if g == TRANSMISSION}
    areas = {d: (roles.pcc_id[d], case.feeders[f].pcc_bus, roles.area_of_dso[d]) for d, f in roles.dsos.items()}
    registry = {r.id: (r.kind, area_of[r.id]) for r in resources_from_case(case)}
    tso = TSO(roles.tso, case.transmission, t_nodes, areas, registry, voll=voll)
    inner = InnerSettings(config.inner_tol, config.inner_max_rounds, config.inexact, config.level,
                          oos_tol=config.oos_tol)
    hosts.append(TSOHost(tso, roles.participants, inner=inner, share_cuts=config.share_cuts))
    return hosts, roles


# ------------------------------------------------------------------ results


def welfare_stats(sw: np.ndarray, quantiles: Sequence[float] = QUANTILES) -> dict[str, float]:
    sw = np.asarray(sw, dtype=float)
    out = {"expected": float(sw.mean()), "std": float(sw.std(ddof=0))}
    for q in quantiles:
        out[f"q{int(round(q * 100)):02d}"] = float(np.quantile(sw, q))
    return out


def congestion(flows: np.ndarray, ratings: np.ndarray, margin: float = 10.5) -> dict[str, Any]:
    """Both congestion metrics of the reference note, from TSO line flows ``(n_line, S)``.

    ``expected_count``: expected number of TSO lines within ``margin`` MW of their
    rating (the paper's code); ``p_two_or_more``: probability that at least two TSO
    lines are congested (the appendix caption).
    """
    f = np.abs(np.asarray(flows, dtype=float))
    r = np.asarray(ratings, dtype=float)[:, None]
    cong = (r - f) < margin
    n = cong.sum(axis=0)
    return {"expected_count": float(n.mean()), "p_two_or_more": float((n >= 2).mean()),
            "per_line": cong.mean(axis=1), "per_scenario": n}


@dataclass
class Evaluation:
    """Real-time costs of a scheme's day-ahead decision on a scenario set."""

    scheme: str
    scenario_set: str
    da_welfare: float
    rt_cost: np.ndarray  # (S,) real-time cost per scenario (decomposed, upper value)
    lower: np.ndarray  # (S,) the TSO's lower bound per scenario
    rounds: int
    congestion: dict[str, Any]
    relaxation_gap: pd.DataFrame  # feeder, scenario, abs, rel
    diagnostics: pd.DataFrame  # feeder, scenario, slack, v_min, v_max, losses, shed
    time_s: float
    pcc: np.ndarray  # (E, S)

    @property
    def welfare(self) -> np.ndarray:
        return self.da_welfare - self.rt_cost

    def stats(self) -> dict[str, float]:
        return {"da_welfare": self.da_welfare, "expected_rt_cost": float(self.rt_cost.mean()),
                **{f"sw_{k}": v for k, v in welfare_stats(self.welfare).items()}}


@dataclass
class SchemeResult:
    scheme: str
    converged: bool
    stop_reason: str
    iterations: pd.DataFrame
    lower: float
    upper: float
    gap: float
    x: np.ndarray
    caps: np.ndarray
    price: float
    market: DAMarket
    time_s: float
    in_sample: Evaluation | None = None
    out_of_sample: Evaluation | None = None
    master_solutions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_iterations(self) -> int:
        return len(self.iterations)

    @property
    def da_welfare(self) -> float:
        return -self.market.cost(self.x)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scheme": self.scheme, "iterations": self.n_iterations, "converged": self.converged,
                               "gap": self.gap, "lower": self.lower, "upper": self.upper, "time_s": self.time_s,
                               "da_price": self.price, "da_welfare": self.da_welfare}
        if self.in_sample is not None:
            out.update({f"in_{k}": v for k, v in self.in_sample.stats().items()})
        if self.out_of_sample is not None:
            out.update({f"oos_{k}": v for k, v in self.out_of_sample.stats().items()})
            out["oos_congestion_count"] = self.out_of_sample.congestion["expected_count"]
            out["oos_congestion_p2"] = self.out_of_sample.congestion["p_two_or_more"]
            out["oos_time_s"] = self.out_of_sample.time_s
        return out


@dataclass
class LevelResult:
    factor: float
    penetration_in: float
    penetration_oos: float
    schemes: dict[str, SchemeResult]
    time_s: float
    messages: list[dict]

    def summary(self) -> pd.DataFrame:
        rows = []
        for r in self.schemes.values():
            rows.append({"factor": self.factor, "penetration_in": self.penetration_in,
                         "penetration_oos": self.penetration_oos, **r.summary()})
        return pd.DataFrame(rows)


# ------------------------------------------------------------------ the protocol


class TSODSOProtocol:
    """Runs the schemes of one wind level on a runtime (Local or Ray)."""

    def __init__(self, runtime: Runtime, case: Case, wind: Any, config: TSODSOConfig = TSODSOConfig(), *,
                 progress: Callable[[str], None] | None = None) -> None:
        self.rt = runtime
        runtime.boundary.use(TSO_DSO_POLICY)
        self.case = case
        self.wind = wind
        self.config = config
        self.progress = progress or (lambda s: None)
        hosts, self.roles = make_hosts(case, wind, config)
        for h in hosts:
            self.rt.add(h)
        self._open = False
        self._sets: set[str] = set()

    # ---------------------------------------------------------------- phases
    def _run(self, msgs: list[Message]) -> int:
        """Exchange until nobody answers; returns the number of deliveries."""
        n = 0
        while msgs:
            msgs = self.rt.exchange(msgs)
            n += 1
        return n

    def _status(self, receivers: Iterable[str], note: str, rnd: int = 0, **kw: Any) -> list[Message]:
        return self.rt.send([Status(COORDINATOR, r, rnd, note=note, **kw) for r in receivers])

    def open(self) -> None:
        """Day-ahead offers, in-sample real-time offers, the DSOs' lower bounds."""
        if self._open:
            return
        r = self.roles
        self._run(self._status(r.participants, "open"))
        self.open_set(IN_SAMPLE)
        self._run(self._status(r.dsos, "bounds"))
        self._open = True

    def open_set(self, sset: str) -> None:
        """Real-time offers with the wind of scenario set ``sset``."""
        r = self.roles
        everyone = [r.tso, *r.dsos, *r.participants]
        self._run(self._status(everyone, f"rt:{sset}"))
        self._sets.add(sset)

    def run_scheme(self, scheme: str) -> SchemeResult:
        self.open()
        cfg = self.config
        t0 = time.perf_counter()
        rule = StoppingRule(gap_tol=cfg.gap_tol, max_iterations=cfg.max_iterations)
        log = IterationLog()
        tso = self.roles.tso
        done, reason = False, ""
        k = 0
        while not done:
            k += 1
            self._run(self._status([tso], f"master:{scheme}", k))
            rec = self.rt.call(tso, "last_iteration")
            log.record(k, **{kk: v for kk, v in rec.items() if kk not in ("iteration", "scheme")})
            self.progress(f"{scheme} iteration {k}: lower {rec['lower']:.2f} upper {rec['upper']:.2f} "
                          f"gap {rec['gap']:.2e} ({rec['inner_rounds']} real-time rounds)")
            done, reason = rule.check(k, gap=rec["gap"])
        t_benders = time.perf_counter() - t0
        rep = self.rt.call(tso, "report")
        inc = rep["incumbent"][scheme]
        frame = log.to_frame()
        res = SchemeResult(scheme=scheme, converged=bool(frame["gap"].iloc[-1] <= cfg.gap_tol), stop_reason=reason,
                           iterations=frame, lower=float(frame["lower"].max()), upper=float(inc["upper"]),
                           gap=float(frame["gap"].iloc[-1]), x=inc["x"], caps=inc["caps"], price=float(inc["price"]),
                           market=rep["market"], time_s=t_benders,
                           master_solutions=[m for m in rep["master_solutions"] if m["scheme"] == scheme])
        # exact in-sample figures of the final decision, then its final schedules and caps
        res.in_sample = self.evaluate(scheme, IN_SAMPLE)
        self._run(self._status([tso], f"final:{scheme}", k, converged=res.converged, iteration=k,
                               gap=res.gap))
        return res

    def evaluate(self, scheme: str, sset: str) -> Evaluation:
        if sset not in self._sets:
            self.open_set(sset)
        t0 = time.perf_counter()
        self._run(self._status([self.roles.tso], f"evaluate:{scheme}:{sset}"))
        ev = self.rt.call(self.roles.tso, "evaluation", scheme, sset)
        reports = self.rt.call_many([(d, "report") for d in self.roles.dsos])
        gaps, diag = [], []
        for d, rep in zip(self.roles.dsos, reports):
            last = rep["last"][sset]
            fid = self.roles.dsos[d]
            for s in range(len(last["value"])):
                gaps.append({"feeder": fid, "scenario": s, "abs": float(last["relaxation_gap"][s]),
                             "rel": float(last["relaxation_gap_rel"][s])})
                diag.append({"feeder": fid, "scenario": s, "slack": float(last["slack"][s]),
                             "v_min": float(last["v_min"][s]), "v_max": float(last["v_max"][s]),
                             "losses": float(last["losses"][s]), "shed": float(last["shed"][s]),
                             "rt_cost": float(last["rt_cost"][s])})
        cong = congestion(ev["flows"], ev["ratings"], self.config.congestion_margin)
        out = Evaluation(scheme=scheme, scenario_set=sset, da_welfare=-float(ev["da_cost"]), rt_cost=ev["U"],
                         lower=ev["L"], rounds=int(ev["rounds"]), congestion=cong, relaxation_gap=pd.DataFrame(gaps),
                         diagnostics=pd.DataFrame(diag), time_s=time.perf_counter() - t0, pcc=ev["p"])
        self.progress(f"{scheme} {sset}: expected welfare {out.welfare.mean():.2f} over {out.rt_cost.size} "
                      f"scenarios ({out.rounds} real-time rounds, {out.time_s:.1f} s)")
        return out

    def run(self, schemes: Sequence[str] | None = None) -> dict[str, SchemeResult]:
        schemes = list(schemes or self.config.schemes)
        out = {s: self.run_scheme(s) for s in schemes}
        if self.config.oos and getattr(self.wind, "out_of_sample", None) is not None \
                and np.asarray(self.wind.out_of_sample).shape[1] > 0:
            self.open_set(OUT_OF_SAMPLE)
            for s in schemes:
                out[s].out_of_sample = self.evaluate(s, OUT_OF_SAMPLE)
        return out

    def run_level(self) -> LevelResult:
        t0 = time.perf_counter()
        res = self.run()
        w = self.wind
        pen_in = float(np.asarray(w.in_sample).sum(axis=0).mean() / w.total_demand)
        oos = np.asarray(w.out_of_sample)
        pen_oos = float(oos.sum(axis=0).mean() / w.total_demand) if oos.shape[1] else math.nan
        return LevelResult(factor=float(w.factor), penetration_in=pen_in, penetration_oos=pen_oos, schemes=res,
                           time_s=time.perf_counter() - t0, messages=self.rt.boundary.summary())


# ------------------------------------------------------------------ benchmarks (analyst tools)


def market_from_case(case: Case, wind: Any) -> DAMarket:
    """The day-ahead market the TSO builds from the offers (same order), built directly from the case."""
    roles = Roles.of(case)
    area_of = _area_of_resources(case, roles)
    res = resources_from_case(case)
    da_w = np.asarray(wind.in_sample, dtype=float).mean(axis=1)
    ids, kind, price, qty, cap, area = [], [], [], [], [], []
    for r in res:
        ids.append(r.id)
        kind.append(r.kind)
        price.append(r.price_da)
        qty.append(float(da_w[list(wind.farm_ids).index(r.id)]) if r.kind == WIND else r.p_max)
        cap.append(area_of[r.id] > 0 and r.kind in (GEN, DEM))
        area.append(area_of[r.id])
    return DAMarket(tuple(ids), tuple(kind), np.array(price), np.array(qty), np.zeros(len(ids)), np.array(cap),
                    np.array(area, dtype=int))


def _rt_pieces(case: Case, wind_mat: np.ndarray, farm_ids: Sequence[str], x_of: Callable[[list[str]], Any], S: int
               ) -> tuple[list[cp.Constraint], cp.Expression, list[Any], Any]:
    """Constraints and per-scenario cost ``(S,)`` of the joint real-time problem (TSO + every feeder)."""
    roles = Roles.of(case)
    loc = locations_from_case(case)
    voll = float(case.param("voll_rt", case.param("voll", 10_000.0)))
    fidx = {f: i for i, f in enumerate(farm_ids)}
    tres = ResourceSet(resources_from_case(case, grid=TRANSMISSION))
    E = len(roles.dsos)
    p = cp.Variable((E, S), name="p_pcc")
    wT = np.vstack([wind_mat[fidx[k]] for k in tres.wind_ids]) if tres.wind_ids else None
    tm = build_transmission_rt(case.transmission, tres, {k: loc[k][1] for k in tres.ids},
                               [case.feeders[f].pcc_bus for f in roles.dsos.values()], S, x_of(list(tres.ids)), wT, p,
                               voll=voll)
    cons = list(tm.constraints)
    cost = tm.cost
    areas = []
    for e, (d, fid) in enumerate(roles.dsos.items()):
        rs = ResourceSet(resources_from_case(case, grid=fid))
        we = np.vstack([wind_mat[fidx[k]] for k in rs.wind_ids]) if rs.wind_ids else None
        am = build_area_rt(case.feeders[fid], rs, {k: loc[k][1] for k in rs.ids}, S, x_of(list(rs.ids)), we,
                           voll=voll)
        cons += am.constraints + [am.p_head == p[e]]
        cost = cost + am.cost
        areas.append((fid, am))
    return cons, cost, areas, tm


def joint_rt(case: Case, market: DAMarket, x: np.ndarray, wind_mat: np.ndarray, farm_ids: Sequence[str], *,
             solver: str = "CLARABEL") -> dict[str, Any]:
    """The real-time problem of each scenario solved as one SOCP (TSO and every feeder together).

    Returns per-scenario costs ``(S,)`` and the relaxation gap per feeder and scenario.
    """
    wind_mat = np.asarray(wind_mat, dtype=float)
    S = wind_mat.shape[1]
    idx = market.index
    x = np.asarray(x, dtype=float)
    cons, cost, areas, tm = _rt_pieces(case, wind_mat, farm_ids, lambda ids: np.array([x[idx[k]] for k in ids]), S)
    prob = cp.Problem(cp.Minimize(1e-3 * cp.sum(cost)), cons)  # k$ for the conic solver
    t0 = time.perf_counter()
    accurate = solve_conic(prob, "analyst", "joint real-time SOCP", solver=solver)
    gaps = {fid: am.relaxation_gap() for fid, am in areas}
    return {"cost": np.asarray(cost.value, dtype=float).reshape(-1), "relaxation_gap": gaps,
            "flows": np.asarray(tm.dc.flow.value).reshape(-1, S), "time_s": time.perf_counter() - t0,
            "accurate": accurate}


def extensive_form(case: Case, wind: Any, scheme: str, *, alpha_min: float = -1e7, time_limit: float = 600.0,
                   verbose: bool = False) -> dict[str, Any]:
    """The centralized benchmark: the scheme's day-ahead problem and every in-sample real-time problem at once.

    fc: one SOCP (Clarabel). pcc/cm: a mixed-integer SOCP (the master's KKT conditions
    with binaries), solved with SCIP. Returns the objective (a minimisation: ``-SW_DA
    + E[RT cost]``), the day-ahead quantities and, for SCIP, its dual bound.
    """
    market = market_from_case(case, wind)
    wind_mat = np.asarray(wind.in_sample, dtype=float)
    S = wind_mat.shape[1]
    phi = np.full(S, 1.0 / S)
    mst = Master(market, scheme, phi, alpha_min)
    x = mst.x
    idx = market.index
    cons, cost, areas, _ = _rt_pieces(case, wind_mat, wind.farm_ids,
                                      lambda ids: x[np.array([idx[k] for k in ids], dtype=int)], S)
    obj = (market.sign * market.price) @ x + phi @ cost
    t0 = time.perf_counter()
    if scheme == "fc":
        prob = cp.Problem(cp.Minimize(1e-3 * obj), mst.da_constraints + cons)
        solve_conic(prob, "analyst", "fc extensive form", options={"verbose": verbose})
        bound = None
    else:
        prob = cp.Problem(cp.Minimize(obj), mst.da_constraints + cons)
        prob.solve(solver="SCIP", verbose=verbose,
                   scip_params={"limits/time": float(time_limit), "limits/gap": 1e-7, "numerics/feastol": 1e-7})
        bound = None
        stats = getattr(prob.solver_stats, "extra_stats", None)
        try:
            bound = float(stats.getDualbound())  # type: ignore[union-attr]
        except Exception:
            bound = None
    if prob.status not in ("optimal", "optimal_inaccurate"):
        raise RuntimeError(f"extensive form ({scheme}): status {prob.status}")
    value = float(obj.value)
    return {"objective": value, "bound": bound, "x": np.asarray(x.value, dtype=float), "status": prob.status,
            "time_s": time.perf_counter() - t0, "rt_cost": np.asarray(cost.value, dtype=float).reshape(-1),
            "market": market}


def equilibrium_check(market: DAMarket, x: np.ndarray, upper: np.ndarray, price: float, *, tol: float = 1e-5
                      ) -> dict[str, Any]:
    """Is ``(x, price)`` a day-ahead market equilibrium for the bounds ``upper`` (the caps)?

    Re-clears the market LP with the caps fixed and compares: the welfare must be the
    LP's optimum, ``price`` must support ``x`` and the LP's price (the supporting
    prices form an interval), and every quantity must equal the LP's wherever the LP's
    optimal face is a single point (where it is not, ties exist: any point of the
    face is an equilibrium and ``x`` must lie on it).
    """
    lp = clear_da_market(market, np.asarray(upper, dtype=float))
    lo, hi = equilibrium_price_interval(market, x, upper, tol=1e-6)
    welfare_ok = abs(market.cost(x) - lp.cost) <= tol * max(1.0, abs(lp.cost))
    balance_ok = abs(market.sign @ x) <= 1e-6 * max(1.0, np.abs(x).sum())
    bounds_ok = bool(np.all(x >= market.p_min - 1e-6) and np.all(x <= upper + 1e-6))
    price_ok = lo - tol <= price <= hi + tol
    lp_price_ok = lo - tol <= lp.price <= hi + tol
    # where x differs from the LP's solution, the LP's optimal face must contain both (a tie)
    n = market.n
    differ = np.flatnonzero(np.abs(x - lp.x) > 1e-4 * np.maximum(1.0, np.abs(lp.x)))
    lo_q, hi_q = lp.x.copy(), lp.x.copy()
    if differ.size:
        xv = cp.Variable(n)
        obj_par = cp.Parameter(n)
        cons = [market.sign @ xv == 0, xv >= market.p_min, xv <= upper,
                (market.sign * market.price) @ xv <= lp.cost + 1e-7 * max(1.0, abs(lp.cost))]
        pr = cp.Problem(cp.Minimize(obj_par @ xv), cons)
        for i in differ:
            e = np.zeros(n)
            e[i] = 1.0
            for sign in (1.0, -1.0):
                obj_par.value = sign * e
                pr.solve(solver="HIGHS")
                (lo_q if sign > 0 else hi_q)[i] = xv.value[i]
    unique = hi_q - lo_q <= 1e-6
    same_where_unique = bool(np.all(np.abs(x[unique] - lp.x[unique]) <= 1e-4 * np.maximum(1.0, np.abs(lp.x[unique]))))
    on_face = bool(np.all(x >= lo_q - 1e-4) and np.all(x <= hi_q + 1e-4))
    return {"ok": bool(welfare_ok and balance_ok and bounds_ok and price_ok and lp_price_ok and same_where_unique
                       and on_face),
            "welfare_ok": welfare_ok, "balance_ok": balance_ok, "bounds_ok": bounds_ok, "price_ok": price_ok,
            "lp_price_ok": lp_price_ok, "same_where_unique": same_where_unique, "on_face": on_face,
            "price_interval": (lo, hi), "lp_price": lp.price, "lp_x": lp.x, "n_tied": int((~unique).sum()),
            "n_differ": int(differ.size)}
