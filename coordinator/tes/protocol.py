"""The ``tes`` protocol: personalized-preserving Benders on a distribution feeder (seed 000).

One market day:

1. the coordinator opens the day (``Command(OPEN)`` to the main grid);
2. the main grid posts the LMP to the DER managers and its offer to the load
   aggregator (LA); the DER managers answer with offers (day-ahead energy, strategy
   prices within ``[0, max(0.16, LMP_t)]``);
3. the LA solves its relaxed market problem (no network constraints, the cuts so
   far) to certified global optimality and sends its injections per meter to the
   TES operator (the DSO);
4. the operator checks them on its network check (``TESConfig.network_check``:
   LinDist3Flow, or an AC power flow in OpenDSS); for every violated hour it returns one
   feasibility cut keyed by the LA's meter ids; with the AC check it also returns the
   hourly losses (:class:`Losses`) when those the LA covers are off by more than
   ``loss_tolerance``; otherwise it accepts;
5. repeat 3-4 until the operator accepts or the iteration limit; once accepted the
   coordinator closes the day (``Command(CLOSE)`` to the LA) and the LA sends each
   seller its final schedule (a day that does not converge is not closed).

The day stops without converging at the iteration limit, or when the LA sends no new
schedule because every cut it was sent is one it already held (no progress). These
decisions are made from the messages alone (offers, injections, cuts, the acceptance); the
LA's objective and solve time in the iteration log, the final solution and the settlement
are the analyst's reads (``runtime.analyst``, recorded in the audit log).

The iteration log: ``e_star`` is the operator's E*, the sum over hours and violated limits of
the excess (squared voltage ``|V|^2 - v_max^2`` in pu^2, line flows and the import in pu of the
per-phase base), split into ``e_star_voltage_pu2`` and ``e_star_flow_pu``; ``loss_update_kw`` the
largest change of the losses the LA covers that the operator asked for (0: none). ``e_star`` sums
every hour; a cut is sent for an hour whose own E* exceeds the tolerance.

Benchmarks computed in every run (they are analysts' tools, not agents, so they
may see everything; :mod:`coordinator.tes.analysis`): the *centralized* problem (the LA
problem with the LinDist3Flow limits inside) and the *unconstrained* market (iteration 1).
The set-up (configuration, roles, agents, hosts) is in :mod:`coordinator.tes.setup`.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from agents.base import InfeasibleSetup
from agents.solve import recording
from network.model import Case

from ..benders import IterationLog, StoppingRule
from ..boundary import COORDINATOR
from ..messages import Accept, Action, Command, FeasibilityCut, Injections, Losses, Offer
from ..runtime import Runtime
from ..solves import SolverTally
from .analysis import Analyst, settlement_frame
from .policy import TES_POLICY
from .schema import dims
from .setup import TESConfig, feeder_roles, make_hosts, prepare_case

__all__ = ["DayResult", "TESProtocol"]


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
    voltages: pd.DataFrame  # node, phase, hour, stage (before/after), model (lindist3flow/opendss), v_pu
    violations_unconstrained: list[dict]  # on the operator's check: family, where, period, excess, unit
    settlement: pd.DataFrame
    wall_time_s: float
    timings: dict[str, float] = field(default_factory=dict)
    network_check: str = "linear"
    losses: pd.DataFrame | None = None  # per hour: MG purchase, import (LinDist3Flow, OpenDSS), losses
    opendss_solves: int = 0  # AC power flows run by the TES operator this day
    solves: pd.DataFrame | None = None  # which solver produced each result (coordinator/solves.py)

    @property
    def objective_gap(self) -> float:
        """Relative difference between the decomposed and the centralized LA objective."""
        c = self.centralized.objective
        return abs(self.solution.objective - c) / max(1.0, abs(c))


class TESProtocol:
    """Runs ``tes`` market days on a runtime (Local or Ray) and computes the benchmarks."""

    def __init__(self, runtime: Runtime, case: Case, config: TESConfig = TESConfig(), *,
                 progress: Callable[[str], None] | None = None, hosts: Sequence[Any] | None = None) -> None:
        """``hosts``: the agents' hosts as a checkpoint left them (a resumed run); default: new from the case."""
        self.case = prepare_case(case, config)
        self.config = config
        self.rt = runtime
        runtime.boundary.use(TES_POLICY, dims(self.case))
        self.feeder_roles = feeder_roles(self.case)
        self.multi = len(self.feeder_roles) > 1
        self.roles = self.feeder_roles[0]
        self.progress = progress or (lambda s: None)
        for h in (make_hosts(self.case, config) if hosts is None else hosts):
            self.rt.add(h)
        self.rule = StoppingRule(violation_tol=config.tolerance, max_iterations=config.max_iterations)
        self.analysts: dict[str, Analyst] = {}  # several feeders: one per feeder (coordinator.tes.feeders)
        self.analyst = None if self.multi else Analyst(self.case, config)

    def run_day_feeders(self, day: int = 0, *, benchmarks: bool = True) -> dict[str, DayResult]:
        """The day on every feeder: ``{feeder id: DayResult}`` (one feeder: the same as :meth:`run_day`)."""
        if not self.multi:
            return {self.roles.feeder: self.run_day(day, benchmarks=benchmarks)}
        from .feeders import run_day_feeders

        return run_day_feeders(self, day, benchmarks=benchmarks)

    def run_day(self, day: int = 0, *, benchmarks: bool = True) -> DayResult:
        """One day on a one-feeder case (several feeders: :meth:`run_day_feeders`)."""
        if self.multi:
            raise ValueError(f"{self.case.name} has {len(self.feeder_roles)} feeders: use run_day_feeders")
        t0 = time.perf_counter()
        r = self.roles
        log = IterationLog()
        opened = self.rt.exchange(self.rt.send([Command(COORDINATOR, r.main_grid, 0, action=Action.OPEN)]))
        to_ders = [m for m in opened if m.receiver in r.der_managers]
        offers_msgs = [m for m in opened if isinstance(m, Offer)] + [
            m for m in self.rt.exchange(to_ders) if isinstance(m, Offer)]
        offers = {k: (np.asarray(m.prices[k]), m.quantity(k)) for m in offers_msgs for k in m.prices}
        pending = offers_msgs
        converged, reason = False, ""
        self._cut_families: dict[int, set[str]] = {}
        solves0 = self._operator_solves()
        tally = SolverTally(self.rt)
        for it in range(1, self.config.max_iterations + 1):
            try:
                inj = [m for m in self.rt.exchange(pending) if isinstance(m, Injections)]
            except InfeasibleSetup as exc:
                raise InfeasibleSetup(self._diagnose(exc, day)) from None
            if not inj:  # the LA re-solves only on new offers or cuts: it already held every cut it was sent
                reason = (f"no progress: the load aggregator already held every cut of iteration {it - 1} (its "
                          "schedule violates them within its own tolerance)")
                break
            # the analyst's read, for the iteration log only (objective, solve time)
            sol = self.rt.analyst.read(r.load_aggregator, "report")["solution"]
            answers = self.rt.exchange(inj)
            last_round = max((m.round for m in answers), default=0)
            cuts = [m for m in answers if isinstance(m, FeasibilityCut)]
            losses = [m for m in answers if isinstance(m, Losses)]
            accepted = any(isinstance(m, Accept) and m.sender == r.operator for m in answers)
            for c in cuts:
                self._cut_families.setdefault(c.period, set()).update(c.families)
            e_star = float(sum(c.violation for c in cuts))  # over the hours with a cut (E*_t > tolerance)
            fams = sorted({f for c in cuts for f in c.families})
            check = self.rt.analyst.read(r.operator, "report")["checks"][-1]  # the analyst: for the log only
            covered = -sum(np.asarray(v, dtype=float) for v in inj[0].p.values())  # the losses the LA covers
            upd = max((float(np.max(np.abs(np.asarray(m.losses) - covered))) for m in losses), default=0.0)
            log.record(it, e_star=check["violation"], e_star_voltage_pu2=check["e_star_voltage_pu2"],
                       e_star_flow_pu=check["e_star_flow_pu"], n_cuts=len(cuts), loss_update_kw=upd,
                       objective=sol.objective, violated_hours=",".join(str(c.period) for c in cuts),
                       families=",".join(fams), la_solve_s=sol.solve_time)
            self.progress(f"day {day} iteration {it}: E* = {e_star:.3g} (sum of excess, pu^2/pu), {len(cuts)} "
                          "cut(s)" + (f" [{', '.join(fams)}]" if fams else "")
                          + (f", losses off by {upd:.3g} kW" if losses else ""))
            if accepted and not cuts:  # the TESO accepted: E* <= tolerance in every hour
                converged, reason = True, f"accepted: E* = {e_star:.3g} <= {self.config.tolerance:g}"
                break
            # here only the iteration limit can stop (E* > tolerance when there are cuts)
            done, reason = self.rule.check(it, violation=e_star if cuts else None)
            if done:
                break
            pending = [*cuts, *losses]
        n_it = int(log.last["iteration"])
        if converged:  # close the day: the LA gets the acceptance and sends each seller its final schedule
            accepts = [m for m in answers if isinstance(m, Accept)]
            schedules = self.rt.exchange(accepts + self.rt.send([Command(COORDINATOR, r.load_aggregator,
                                                                         last_round + 1, action=Action.CLOSE,
                                                                         iteration=n_it)]))
            self.rt.exchange(schedules)
        final = self.rt.analyst.read(r.load_aggregator, "report")["solution"]
        t_protocol = time.perf_counter() - t0
        # Benchmarks and analysis: the analyst's view (sees everything; no messages involved)
        tb = time.perf_counter()
        solves = self._operator_solves() - solves0
        with recording(tally.analyst):
            unconstrained, central = self.analyst.benchmarks(offers, centralized=benchmarks, final=final)
        voltages = self.analyst.voltages(unconstrained, final)
        losses = self.analyst.losses(final)
        t_bench = time.perf_counter() - tb
        return DayResult(day=day, converged=converged, stop_reason=reason, iterations=log.to_frame(),
                         solution=final, unconstrained=unconstrained, centralized=central, offers=offers,
                         voltages=voltages, violations_unconstrained=self.analyst.violations(unconstrained),
                         settlement=settlement_frame(self.rt, r, final), wall_time_s=t_protocol,
                         timings={"protocol_s": t_protocol, "benchmarks_s": t_bench},
                         network_check=self.config.network_check, losses=losses, opendss_solves=solves,
                         solves=tally.frame())

    def _operator_solves(self) -> int:
        """OpenDSS power flows the TES operator has run so far (from its published check records)."""
        checks = self.rt.analyst.read(self.roles.operator, "report")["checks"]
        return int(checks[-1]["opendss_solves"]) if checks else 0

    def _diagnose(self, exc: InfeasibleSetup, day: int) -> str:
        """Name the hour(s) and the limit families behind an infeasible LA problem."""
        text = str(exc)
        hours = sorted({int(h) for h in re.findall(r"hour (\d+)", text)}) or sorted(self._cut_families)
        parts = [f"hour {h} ({', '.join(sorted(self._cut_families.get(h, {'?'})))})" for h in hours[:8]]
        more = f" and {len(hours) - 8} more hour(s)" if len(hours) > 8 else ""
        return (f"day {day}: no market schedule satisfies the network limits in " + ", ".join(parts) + more
                + f". The load aggregator reports: {text}")
