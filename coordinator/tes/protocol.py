"""The ``tes`` protocol: personalized-preserving Benders on a distribution feeder (seed 000).

One market day:

1. the coordinator opens the day (``Command(OPEN)`` to the main grid);
2. the main grid posts the LMP to the DER managers and its offer to the load
   aggregator (LA); the DER managers answer with offers (day-ahead energy, strategy
   prices within ``[0, max(0.16, LMP_t)]``);
3. the LA solves its relaxed market problem (no network constraints, the cuts so
   far) to certified global optimality and sends its injections per meter to the
   TES operator (the DSO);
4. the operator checks them on LinDist3Flow; for every violated hour it returns one
   feasibility cut keyed by the LA's meter ids, or accepts;
5. repeat 3-4 until E* <= tolerance or the iteration limit; once accepted the
   coordinator closes the day (``Command(CLOSE)`` to the LA) and the LA sends each
   seller its final schedule (a day that does not converge is not closed).

Benchmarks computed in every run (they are analysts' tools, not agents, so they
may see everything): the *centralized* problem (the LA problem with the
LinDist3Flow limits inside) and the *unconstrained* market (iteration 1).
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import cvxpy as cp
import numpy as np
import pandas as pd

from agents.base import InfeasibleSetup
from agents.tes.der_manager import DERManager, der_units_from_case
from agents.tes.operator import DSO
from agents.tes.customers import customers_from_case
from agents.tes.load_aggregator import LoadAggregator
from agents.tes.main_grid import MainGrid
from agents.strategies import make_strategy
from network.model import Case

from ..benders import IterationLog, StoppingRule
from ..boundary import COORDINATOR
from .hosts import DERManagerHost, LoadAggregatorHost, MainGridHost, OperatorHost
from ..messages import Action, Command, FeasibilityCut, Injections, Offer
from ..runtime import Runtime
from .policy import TES_POLICY


@dataclass(frozen=True)
class TESConfig:
    pricing: str = "personalized"  # or "uniform"
    relaxation: str = "exact"  # or "mccormick"
    transformer_kw: float | None = None  # None: the case's import limit
    strategy: str = "marginal-cost"  # DER managers' offer strategy
    markup: float = 0.02  # $/kWh, for strategy "markup"
    tolerance: float = 1e-6  # E* (pu) at which the schedule is accepted
    max_iterations: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pricing not in ("personalized", "uniform"):
            raise ValueError(f"pricing must be 'personalized' or 'uniform', got {self.pricing!r}")
        if self.relaxation not in ("exact", "mccormick"):
            raise ValueError(f"relaxation must be 'exact' or 'mccormick', got {self.relaxation!r}")
        if self.transformer_kw is not None and not (self.transformer_kw >= 0 and math.isfinite(self.transformer_kw)):
            raise ValueError(f"transformer limit must be a finite number >= 0 kW, got {self.transformer_kw}")


def prepare_case(case: Case, config: TESConfig) -> Case:
    """The case with the transformer limit of ``config`` applied."""
    if config.transformer_kw is None:
        return case
    (feeder,) = case.feeders.values()
    from network.model import Feeder

    f2 = Feeder(feeder.id, feeder.nodes, feeder.lines, n_phases=feeder.n_phases, v_head=feeder.v_head,
                s_base_kva=feeder.s_base_kva, v_base_kv=feeder.v_base_kv, import_min=feeder.import_min,
                import_max=float(config.transformer_kw), pcc_bus=feeder.pcc_bus)
    return case.replace(feeders=(f2,))


@dataclass
class Roles:
    """Agent ids of the ``tes`` case by role (the TES operator is the case's owner with role "dso")."""

    main_grid: str
    der_managers: list[str]
    load_aggregator: str
    operator: str

    @classmethod
    def of(cls, case: Case) -> "Roles":
        def one(role: str) -> str:
            owners = case.owners_with_role(role)
            if len(owners) != 1:
                raise ValueError(f"the tes protocol needs exactly one '{role}', the case has {len(owners)}")
            return owners[0].id

        return cls(one("main_grid"), [o.id for o in case.owners_with_role("der_manager")], one("load_aggregator"),
                   one("dso"))


def make_agents(case: Case, config: TESConfig) -> dict[str, Any]:
    """The agents of a ``tes`` day, each given only its own private data."""
    roles = Roles.of(case)
    lo = case.param("retail_price_min", 0.12)
    hi = case.param("retail_price_max", 0.24)
    cap = case.param("retail_price_sum_cap", 4.32)
    mg = MainGrid.from_case(case, roles.main_grid)
    ders = [DERManager(d, der_units_from_case(case, d),
                       make_strategy(config.strategy, markup=config.markup, seed=config.seed),
                       price_min=float(case.param("der_price_min", 0.0)),
                       cap_floor=float(case.param("der_price_cap_floor", 0.16))) for d in roles.der_managers]
    suppliers = [u.id for d in ders for u in d.units] + [mg.unit_id]
    la = LoadAggregator(roles.load_aggregator, customers_from_case(case, roles.load_aggregator), case.horizon,
                        price_min=float(lo), price_max=float(hi), price_sum_cap=float(cap),
                        pricing=config.pricing, relaxation=config.relaxation, supplier_ids=suppliers)
    (feeder,) = case.feeders.values()
    op = DSO(roles.operator, feeder, case.meters, power_unit=case.power_unit, tolerance=config.tolerance)
    return {"roles": roles, "main_grid": mg, "der_managers": ders, "load_aggregator": la, "operator": op}


def make_hosts(case: Case, config: TESConfig) -> list[Any]:
    a = make_agents(case, config)
    r: Roles = a["roles"]
    hosts = [MainGridHost(a["main_grid"], {"der_manager": r.der_managers, "load_aggregator": [r.load_aggregator]})]
    hosts += [DERManagerHost(d, {"load_aggregator": [r.load_aggregator]}) for d in a["der_managers"]]
    hosts.append(LoadAggregatorHost(a["load_aggregator"], {"operator": [r.operator]}))
    hosts.append(OperatorHost(a["operator"]))
    return hosts


@dataclass
class DayResult:
    """Everything one ``tes`` market day produced."""

    day: int
    converged: bool
    stop_reason: str
    iterations: pd.DataFrame
    solution: Any  # LASolution of the final iteration
    unconstrained: Any  # LASolution of iteration 1 (no cuts)
    centralized: Any  # LASolution of the centralized benchmark
    offers: dict[str, tuple[np.ndarray, np.ndarray]]
    voltages: pd.DataFrame  # node, phase, hour, stage (before/after), v_pu
    violations_unconstrained: list[dict]
    settlement: pd.DataFrame
    wall_time_s: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def objective_gap(self) -> float:
        """Relative difference between the decomposed and the centralized LA objective."""
        c = self.centralized.objective
        return abs(self.solution.objective - c) / max(1.0, abs(c))


class TESProtocol:
    """Runs ``tes`` market days on a runtime (Local or Ray) and computes the benchmarks."""

    def __init__(self, runtime: Runtime, case: Case, config: TESConfig = TESConfig(), *,
                 progress: Callable[[str], None] | None = None) -> None:
        self.case = prepare_case(case, config)
        self.config = config
        self.rt = runtime
        runtime.boundary.use(TES_POLICY)
        self.roles = Roles.of(self.case)
        self.progress = progress or (lambda s: None)
        for h in make_hosts(self.case, config):
            self.rt.add(h)
        self.rule = StoppingRule(violation_tol=config.tolerance, max_iterations=config.max_iterations)

    def run_day(self, day: int = 0, *, benchmarks: bool = True) -> DayResult:
        t0 = time.perf_counter()
        r = self.roles
        log = IterationLog()
        opened = self.rt.exchange(self.rt.send([Command(COORDINATOR, r.main_grid, 0, action=Action.OPEN)]))
        to_ders = [m for m in opened if m.receiver in r.der_managers]
        offers_msgs = [m for m in opened if isinstance(m, Offer)] + [
            m for m in self.rt.exchange(to_ders) if isinstance(m, Offer)]
        offers = {k: (np.asarray(m.prices[k]), np.asarray(m.quantities[k])) for m in offers_msgs for k in m.prices}
        pending = offers_msgs
        converged, reason = False, ""
        self._cut_families: dict[int, set[str]] = {}
        for it in range(1, self.config.max_iterations + 1):
            try:
                inj = [m for m in self.rt.exchange(pending) if isinstance(m, Injections)]
            except InfeasibleSetup as exc:
                raise InfeasibleSetup(self._diagnose(exc, day)) from None
            sol = self.rt.call(r.load_aggregator, "report")["solution"]
            answers = self.rt.exchange(inj)
            last_round = max((m.round for m in answers), default=0)
            cuts = [m for m in answers if isinstance(m, FeasibilityCut)]
            for c in cuts:
                self._cut_families.setdefault(c.period, set()).update(c.families)
            e_star = float(sum(c.violation for c in cuts))
            fams = sorted({f for c in cuts for f in c.families})
            log.record(it, violation=e_star, n_cuts=len(cuts), objective=sol.objective,
                       violated_hours=",".join(str(c.period) for c in cuts), families=",".join(fams),
                       la_solve_s=sol.solve_time)
            self.progress(f"day {day} iteration {it}: E* = {e_star:.3g} pu, {len(cuts)} cut(s)"
                          + (f" [{', '.join(fams)}]" if fams else ""))
            if not cuts:  # the TESO accepted: E* <= tolerance in every hour
                converged, reason = True, f"accepted: E* = {e_star:.3g} <= {self.config.tolerance:g} pu"
                break
            done, reason = self.rule.check(it, violation=e_star)  # here only the iteration limit can stop
            if done:
                break
            pending = cuts
        n_it = int(log.last["iteration"])
        if converged:  # close the day: the LA sends each seller its final schedule
            schedules = self.rt.exchange(self.rt.send([Command(COORDINATOR, r.load_aggregator, last_round + 1,
                                                               action=Action.CLOSE, iteration=n_it)]))
            self.rt.exchange(schedules)
        final = self.rt.call(r.load_aggregator, "report")["solution"]
        t_protocol = time.perf_counter() - t0
        # Benchmarks and analysis: the analyst's view (sees everything; no messages involved)
        tb = time.perf_counter()
        unconstrained = benchmark(self.case, self.config, offers, network=False)
        central = benchmark(self.case, self.config, offers, network=True) if benchmarks else None
        before = self.analyst.check_schedule(*_pq(unconstrained))
        after = self.analyst.check_schedule(*_pq(final))
        voltages = pd.concat([_voltage_frame(before, "before"), _voltage_frame(after, "after")], ignore_index=True)
        t_bench = time.perf_counter() - tb
        return DayResult(day=day, converged=converged, stop_reason=reason, iterations=log.to_frame(),
                         solution=final, unconstrained=unconstrained, centralized=central, offers=offers,
                         voltages=voltages, violations_unconstrained=self.analyst.violated_limits(*_pq(unconstrained)),
                         settlement=self._settlement(final), wall_time_s=t_protocol,
                         timings={"protocol_s": t_protocol, "benchmarks_s": t_bench})

    @property
    def analyst(self) -> DSO:
        """A private copy of the network model for the run's analysis (voltages, violations)."""
        if getattr(self, "_analyst", None) is None:
            self._analyst = make_agents(self.case, self.config)["operator"]
        return self._analyst

    def _diagnose(self, exc: InfeasibleSetup, day: int) -> str:
        """Name the hour(s) and the limit families behind an infeasible LA problem."""
        text = str(exc)
        hours = sorted({int(h) for h in re.findall(r"hour (\d+)", text)}) or sorted(self._cut_families)
        parts = [f"hour {h} ({', '.join(sorted(self._cut_families.get(h, {'?'})))})" for h in hours[:8]]
        more = f" and {len(hours) - 8} more hour(s)" if len(hours) > 8 else ""
        return (f"day {day}: no market schedule satisfies the network limits in " + ", ".join(parts) + more
                + f". The load aggregator reports: {text}")

    def _settlement(self, sol: Any) -> pd.DataFrame:
        """Money and energy per participant: DER units, the LA, its customers, the main grid.

        Columns: role, participant, item (energy_kwh, revenue, cost, profit, surplus), value ($ or kWh).
        Read from the participants' own published reports.
        """
        r = self.roles
        rows: list[tuple[str, str, str, float]] = []
        for d, rep in zip(r.der_managers, self.rt.call_many([(d, "report") for d in r.der_managers])):
            for unit, v in rep["settlement"].items():
                rows += [("der_manager", f"{d}/{unit}", "energy_kwh", v["energy"]),
                         ("der_manager", f"{d}/{unit}", "revenue", v["revenue"]),
                         ("der_manager", f"{d}/{unit}", "cost", v["cost"]),
                         ("der_manager", f"{d}/{unit}", "profit", v["profit"])]
        st = sol.settlement()
        la = r.load_aggregator
        rows += [("load_aggregator", la, "revenue", st["revenue"]), ("load_aggregator", la, "cost", st["cost"]),
                 ("load_aggregator", la, "profit", st["profit"])]
        rows += [("customer", c, "surplus", v) for c, v in st["customer_surplus"].items()]
        rows += [("customer", c, "energy_kwh", float(np.sum(p))) for c, p in sol.loads.items()]
        mg = self.rt.call(r.main_grid, "report")["settlement"]
        rows += [("main_grid", r.main_grid, "energy_kwh", mg["energy"]),
                 ("main_grid", r.main_grid, "revenue", mg["revenue"])]
        return pd.DataFrame(rows, columns=["role", "participant", "item", "value"])


def _pq(sol: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """An LA solution's active and (customers') reactive injections."""
    return sol.injections_p, {k: v for k, v in sol.injections_q.items() if k in sol.loads}


def _voltage_frame(check: Any, stage: str) -> pd.DataFrame:
    """Long table node, phase, hour, stage, v_pu of a DSO check (LinDist3Flow voltages)."""
    v = np.asarray(check.voltages)
    nodes = [n for n, _ in check.node_phases]
    phases = [p for _, p in check.node_phases]
    t = v.shape[1]
    return pd.DataFrame({"node": np.repeat(nodes, t), "phase": np.repeat(phases, t),
                         "hour": np.tile(np.arange(t), len(nodes)), "stage": stage, "v_pu": v.ravel()})


def network_constraints(dso: DSO) -> Callable[[dict[str, Any], dict[str, Any]], list[Any]]:
    """The DSO's LinDist3Flow limits as constraints on a participant's injection expressions."""

    def build(p: dict[str, Any], q: dict[str, Any]) -> list[Any]:
        p_ids = [k for k in p if k in dso.meters]
        q_ids = [k for k in q if k in dso.meters]
        ls = dso.limit_set(p_ids, q_ids)
        x = cp.vstack([cp.reshape(p[k], (1, -1), order="C") for k in p_ids]
                      + [cp.reshape(q[k], (1, -1), order="C") for k in q_ids])
        return [ls.U @ x + ls.u0[:, None] <= 0]

    return build


def benchmark(case: Case, config: TESConfig, offers: dict[str, tuple[np.ndarray, np.ndarray]], *,
              network: bool) -> Any:
    """The LA problem for the same offers with no cuts: with the LinDist3Flow limits inside
    (``network=True``, the centralized benchmark) or without them (the unconstrained market)."""
    a = make_agents(case, config)
    return a["load_aggregator"].solve(offers, cuts=(), network=network_constraints(a["operator"]) if network else None)
