"""The ``tso-dso`` protocol: TSO-DSO coordination under wind uncertainty (seed 004), as a message sequence.

Schemes (``docs/tso_dso_reference.md``):

- ``pcc``: the TSO's master is the day-ahead market's optimality conditions (KKT with
  big-M, one binary per complementarity pair) with the DSO pre-qualification caps as
  decisions and one ``alpha_s`` per in-sample scenario; multi-cut Benders with the
  real-time problem of each scenario as subproblem;
- ``cm``: the same master with the caps fixed at P max (no coordination);
- ``fc``: the ideal two-stage stochastic benchmark: day-ahead quantities free (no market
  equilibrium), decomposed the same way.

Every scheme's master carries the TSO's own real-time model of each in-sample scenario
(its transmission re-dispatch, exact) and the DSOs' cuts, each on its own area's few
decisions (``agents/tso_dso/joint_master.py``); pcc's and cm's day-ahead equilibria are
searched price level by price level (an LP per level, best first) instead of a big-M MILP.

The real-time problem of a scenario is never solved in one piece: the TSO re-dispatches
the transmission-connected resources on the DC grid with a cost-to-go ``theta_e`` per
DSO built from that DSO's cuts on its PCC exchange; each DSO re-dispatches its area on
its feeder's SOCP for the exchanges it is sent and answers with its cost and cuts
(nested Benders, exact: it matches the joint SOCP, see ``benchmarks.joint_rt``). All
scenarios of a set are processed together, round by round; the DSOs answer in parallel.

The message sequence
--------------------
Opening (:meth:`TSODSOProtocol.open`)::

    Command OFFER_DAY_AHEAD -> participants      day-ahead Offers/Bids -> TSO (and their DSO)
    Command SCENARIO_SET -> TSO, DSOs;  OFFER_REAL_TIME -> participants
                                                 up/down Offers/Bids -> their operator
    Command LOWER_BOUND -> DSOs                  OptimalityCut(scenario=-1) -> TSO

A scheme starts with ``Command SCENARIO_SET(scheme, in_sample) -> DSOs`` (each DSO keeps its
own state per scheme and scenario set). One Benders iteration ``k`` of a scheme
(:meth:`TSODSOProtocol.run_scheme`)::

    Command MASTER(scheme, k) -> TSO            TSO: master solve (k = 1: the unconstrained market
                                                 clearing) -> MasterBound -> coordinator,
                                                 Schedule (area day-ahead quantities) -> DSOs
    repeat (inner loop):
        Command REAL_TIME_ROUND -> TSO          TSO: Exchange (PCC exchange per scenario) -> DSOs
                                                 DSOs: OptimalityCut per scenario -> TSO
                                                 TSO: RealTimeBounds (U_s, L_s) -> coordinator
    until the coordinator's inner stopping rule holds on the RealTimeBounds
    Command CLOSE_ITERATION -> TSO              TSO: cuts to its master -> IterationBounds -> coordinator
    the coordinator's outer stopping rule on the IterationBounds: next iteration, or stop

Then ``EVALUATE(scheme, set)`` and the same inner loop (with the evaluation's tolerance),
``CLOSE_EVALUATION``, and ``FINAL(scheme)`` (final schedules and caps to the participants
and the DSOs). Out of sample, the participants first send real-time offers with the
out-of-sample wind (``SCENARIO_SET``/``OFFER_REAL_TIME`` for that set). The analyst reads
the evaluations and diagnostics through the analyst channel (``runtime.analyst``, recorded
in the audit log) after the fact; no decision depends on them.

Decisions (see also ``docs/tso_dso_reference.md``)
--------------------------------------------------
- Outer stopping rule: ``(best upper - master bound) / W <= gap_tol`` (default ``5e-5``) with
  ``W`` the welfare scale: the day-ahead welfare of the unconstrained market clearing, which
  the TSO reports as ``-da_cost`` of iteration 1 (``max(1, |.|)``). It is a case-and-wind
  constant of the size of the objective that, unlike ``|best upper|``, does not shrink where
  the expected welfare crosses zero. At most 100 iterations. The scheme's error against its
  extensive form is at most the final gap (plus the evaluation's ``1e-6``), so ``5e-5 W``
  keeps it below ``1e-4`` of the objective on the case (tests/test_tso_dso_accuracy.py). The
  gap on the current iterate (the paper's) is logged too.
- Inner stopping rule: in an evaluation, every scenario's gap ``(U_s - L_s) / max(|U_s|, W)``
  is at most ``inner_tol`` (``oos_tol`` out of sample), ``W`` the scheme's welfare scale (a
  scenario whose cost is near zero is not held to a relative tolerance of its own size:
  ``1e-6 W`` is a few cents); within Benders one
  round per iteration (at the master's exchanges: its cuts go to the master, ``U_s`` gives
  the iterate's upper bound), or, with a finite ``inexact``, rounds until ``sum_s phi_s
  (U_s - L_s)`` is at most ``inexact`` times the outer gap (measured: more rounds cost more
  time than the iterations they save); at most ``inner_max_rounds`` rounds. Final figures
  come from an evaluation to 1e-6 per scenario (1e-5 out of sample). In an evaluation the TSO
  leaves a scenario alone once its bounds meet that rule (``settle`` in ``TSODSOConfig``; the TSO
  is told the tolerances at set-up and computes ``W`` from its own iteration 1): its exchanges and
  bounds stay, and the DSOs answer an unchanged exchange from their last evaluation, so later
  rounds solve only the scenarios still open; the stopping decision stays the coordinator's.
- The first round of iteration ``k >= 2`` sends the master's own exchanges (the master
  optimises them with the day-ahead decision); its ``L_s`` is the master's real-time value.
- DSO cuts are kept by the TSO per scheme (they are valid for every day-ahead schedule;
  ``share_cuts`` pools them across schemes); stale ones are pruned. Each DSO evaluates 5
  exchanges of its own choice on its first call for a scheme and scenario set. Nothing
  else is carried from one scheme to the next, so a scheme's figures do not depend on
  which schemes run with it.
- Feeder head (PCC terminal): voltage free within the bus's limits, reactive exchange
  free (the DC transmission model has none), as in the seed's appendix (A.1).
- Day-ahead shedding is left out of the market (dominated: demands bid below VOLL
  with ``p_min = 0``).
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable, Sequence, TypeVar

import numpy as np
import pandas as pd

from network.model import Case

from ..benders import IterationLog, StoppingRule, relative_gap
from ..boundary import COORDINATOR
from ..messages import (Action, Command, IterationBounds, MasterBound, Message, RealTimeBounds, ScenarioSet,
                        Scheme)
from ..runtime import Runtime
from ..solves import SolverTally
from .policy import TSO_DSO_POLICY
from .outputs import realtime_tables
from .schema import dims
from .results import Evaluation, LevelResult, SchemeResult, congestion
from .setup import IN_SAMPLE, OUT_OF_SAMPLE, TSODSOConfig, make_hosts

__all__ = ["TSODSOProtocol", "inner_done", "inner_tolerance", "welfare_scale", "scaled_gap"]

M = TypeVar("M", bound=Message)


def inner_done(b: RealTimeBounds, tol: float, tol_abs: float, scale: float = 1.0) -> bool:
    """The inner stopping rule on a round's bounds: every scenario solved to ``tol`` relative to ``max(|U_s|,
    scale)`` (``scale``: the welfare scale ``W``), or the expected gap ``sum_s phi_s (U_s - L_s)`` ($, equiprobable
    scenarios) at most ``tol_abs``."""
    U, L = b.upper, b.lower
    phi = np.full(U.size, 1.0 / U.size)
    rel = (U - L) / np.maximum(max(1.0, float(scale)), np.abs(U))
    return bool(rel.max() <= tol or phi @ (U - L) <= tol_abs)


def welfare_scale(da_cost_first: float) -> float:
    """The welfare scale ``W`` ($) of the stopping rule: ``max(1, |da_cost|)`` of iteration 1 (the unconstrained
    day-ahead market clearing, whose welfare is ``-da_cost``)."""
    return max(1.0, abs(float(da_cost_first))) if math.isfinite(da_cost_first) else 1.0


def scaled_gap(lower: float, best_upper: float, scale: float) -> float:
    """``(best_upper - lower) / scale``; inf while a bound is missing."""
    if not (math.isfinite(lower) and math.isfinite(best_upper)):
        return math.inf
    return (best_upper - lower) / scale


def inner_tolerance(best_upper: float, master_bound: float, inexact: float) -> float:
    """The inexact inner loop's absolute tolerance ($): ``inexact`` times the outer gap (at least ``1e-7 |best
    upper|``); infinite before the first upper bound (the first iteration's cut needs only valid bounds) and for
    ``inexact = inf`` (one round per Benders iteration, the default)."""
    if not (math.isfinite(best_upper) and math.isfinite(inexact)):
        return math.inf
    return max(inexact * (best_upper - master_bound), 1e-7 * abs(best_upper))


class TSODSOProtocol:
    """Runs the schemes of one wind level on a runtime (Local or Ray)."""

    def __init__(self, runtime: Runtime, case: Case, wind: Any, config: TSODSOConfig = TSODSOConfig(), *,
                 progress: Callable[[str], None] | None = None, strategies: dict[str, Any] | None = None) -> None:
        self.rt = runtime
        runtime.boundary.use(TSO_DSO_POLICY, dims(wind))
        self.case = case
        self.wind = wind
        self.config = config
        self.progress = progress or (lambda s: None)
        hosts, self.roles = make_hosts(case, wind, config, strategies=strategies)
        for h in hosts:
            self.rt.add(h)
        self._open = False
        self._sets: set[str] = set()
        self._scales: dict[str, float] = {}  # per scheme: the welfare scale W of its stopping rules ($)
        self._round = 0

    # ---------------------------------------------------------------- messages
    def _deliver(self, msgs: list[Message]) -> list[Message]:
        """Deliver ``msgs`` and everything they set off until nothing is left for the agents; returns the
        reports addressed to the coordinator."""
        reports: list[Message] = []
        while msgs:
            self._round = max([self._round, *(m.round for m in msgs)])
            reports += self.rt.collect([m for m in msgs if m.receiver == COORDINATOR])
            msgs = self.rt.exchange([m for m in msgs if m.receiver != COORDINATOR])
        return reports

    def _command(self, receivers: Iterable[str], action: Action, *, scheme: str | None = None,
                 sset: str | None = None, iteration: int = 0) -> list[Message]:
        """Send one command to each receiver and deliver what follows; returns the reports to the coordinator."""
        sch = None if scheme is None else Scheme(scheme)
        ss = None if sset is None else ScenarioSet(sset)
        self._round += 1
        return self._deliver(self.rt.send([Command(COORDINATOR, r, self._round, action=action, scheme=sch,
                                                   scenario_set=ss, iteration=iteration) for r in receivers]))

    def _report(self, reports: list[Message], kind: type[M]) -> M:
        """The one report of type ``kind`` (from the TSO) among ``reports``."""
        found = [m for m in reports if isinstance(m, kind) and m.sender == self.roles.tso]
        if len(found) != 1 or len(reports) != 1:
            raise RuntimeError(f"expected one {kind.__name__} from {self.roles.tso}, got "
                               f"{[(m.kind, m.sender) for m in reports]}")
        return found[0]

    # ---------------------------------------------------------------- phases
    def open(self) -> None:
        """Day-ahead offers, in-sample real-time offers, the DSOs' lower bounds."""
        if self._open:
            return
        r = self.roles
        self._command(r.participants, Action.OFFER_DAY_AHEAD)
        self.open_set(IN_SAMPLE)
        self._command(r.dsos, Action.LOWER_BOUND)
        self._open = True

    def open_set(self, sset: str) -> None:
        """Real-time offers with the wind of scenario set ``sset``: the operators learn the set, the participants
        send their offers (one delivery)."""
        r = self.roles
        ss = ScenarioSet(sset)
        self._round += 1
        cmds = [Command(COORDINATOR, a, self._round, action=Action.SCENARIO_SET, scenario_set=ss)
                for a in [r.tso, *r.dsos]]
        cmds += [Command(COORDINATOR, a, self._round, action=Action.OFFER_REAL_TIME, scenario_set=ss)
                 for a in r.participants]
        self._deliver(self.rt.send(cmds))
        self._sets.add(sset)

    def _real_time(self, scheme: str, sset: str, iteration: int, tol: float, tol_abs: float) -> RealTimeBounds:
        """The inner loop: TSO <-> DSO rounds until :func:`inner_done` holds (or ``inner_max_rounds``)."""
        scale = self._scales.get(scheme, 1.0)
        while True:
            b = self._report(self._command([self.roles.tso], Action.REAL_TIME_ROUND, scheme=scheme, sset=sset,
                                           iteration=iteration), RealTimeBounds)
            if b.bounded and (inner_done(b, tol, tol_abs, scale) or b.inner_round >= self.config.inner_max_rounds):
                return b

    def _context(self, scheme: str, sset: str) -> None:
        """Tell the DSOs which scheme and scenario set the next schedules and exchanges belong to."""
        self._command(self.roles.dsos, Action.SCENARIO_SET, scheme=scheme, sset=sset)

    def run_scheme(self, scheme: str) -> SchemeResult:
        """The Benders loop of one scheme, then the exact in-sample evaluation of its decision and its final
        schedules and caps."""
        self.open()
        cfg = self.config
        t0 = time.perf_counter()
        rule = StoppingRule(gap_tol=cfg.gap_tol, max_iterations=cfg.max_iterations)
        log = IterationLog()
        tso = self.roles.tso
        self._context(scheme, IN_SAMPLE)
        best = math.inf
        lower = -math.inf
        scale = math.nan
        done, reason = False, ""
        k = 0
        while not done:
            k += 1
            mb = self._report(self._command([tso], Action.MASTER, scheme=scheme, sset=IN_SAMPLE, iteration=k),
                              MasterBound)
            rtb = self._real_time(scheme, IN_SAMPLE, k, cfg.inner_tol, inner_tolerance(best, mb.lower, cfg.inexact))
            ib = self._report(self._command([tso], Action.CLOSE_ITERATION, scheme=scheme, sset=IN_SAMPLE,
                                            iteration=k), IterationBounds)
            if k == 1:
                scale = self._scales[scheme] = welfare_scale(ib.da_cost)
            if ib.upper < best:
                best = ib.upper
            lower = max(lower, ib.lower)
            gap = scaled_gap(lower, best, scale)
            phi = np.full(rtb.upper.size, 1.0 / rtb.upper.size)
            log.record(k, lower=ib.lower, upper=ib.upper, best_upper=best, gap=gap, scale=scale,
                       gap_relative=relative_gap(lower, best),
                       gap_iterate=abs(mb.objective - ib.upper) / max(1.0, abs(mb.objective)),
                       master_objective=mb.objective, da_cost=ib.da_cost, expected_rt=ib.expected_rt,
                       price=math.nan if ib.price is None else ib.price, inner_rounds=rtb.inner_round, inner_gap=float(phi @ (rtb.upper - rtb.lower)))
            self.progress(f"{scheme} iteration {k}: lower {ib.lower:.2f} upper {ib.upper:.2f} gap {gap:.2e} "
                          f"({rtb.inner_round} real-time rounds)")
            done, reason = rule.check(k, gap=gap)
        t_benders = time.perf_counter() - t0
        rep = self.rt.analyst.read(tso, "report")
        inc = rep["incumbent"][scheme]
        frame = _with_diagnostics(log.to_frame(), [d for d in rep["iterations"] if d["scheme"] == scheme])
        res = SchemeResult(scheme=scheme, converged=bool(frame["gap"].iloc[-1] <= cfg.gap_tol), stop_reason=reason,
                           iterations=frame, lower=float(lower), upper=float(best), scale=float(scale),
                           gap=float(frame["gap"].iloc[-1]), x=inc.x, caps=inc.caps, price=float(inc.price),
                           market=rep["market"], time_s=t_benders,
                           master_solutions=[m for m in rep["master_solutions"] if m["scheme"] == scheme])
        # exact in-sample figures of the final decision, then its final schedules and caps
        res.in_sample = self.evaluate(scheme, IN_SAMPLE)
        self._command([tso], Action.FINAL, scheme=scheme, iteration=k)
        return res

    def evaluate(self, scheme: str, sset: str) -> Evaluation:
        """Real-time costs of the scheme's decision on a scenario set (TSO <-> DSO rounds to ``inner_tol``, or
        ``oos_tol`` for a set other than the in-sample one)."""
        if sset not in self._sets:
            self.open_set(sset)
        t0 = time.perf_counter()
        tso = self.roles.tso
        self._context(scheme, sset)
        self._command([tso], Action.EVALUATE, scheme=scheme, sset=sset)  # the DSOs' schedules
        tol = self.config.inner_tol if sset == IN_SAMPLE else self.config.oos_tol
        self._real_time(scheme, sset, 0, tol, 0.0)
        self._command([tso], Action.CLOSE_EVALUATION, scheme=scheme, sset=sset)
        # the analyst's reads: the evaluation's figures and the DSOs' diagnostics
        ev = self.rt.analyst.read(tso, "evaluation", scheme, sset)
        reports = self.rt.analyst.read_many([(d, "report") for d in self.roles.dsos])
        solutions = self.rt.analyst.read_many([(d, "solution", (sset,)) for d in self.roles.dsos])
        gaps, diag = [], []
        for d, rep in zip(self.roles.dsos, reports):
            last = rep["last"][sset]
            fid = self.roles.dsos[d]
            for s in range(len(last["value"])):
                gaps.append({"feeder": fid, "scenario": s, "gap_mw2": float(last["relaxation_gap"][s]),
                             "gap_rel_rating": float(last["relaxation_gap_rel"][s])})
                diag.append({"feeder": fid, "scenario": s, "slack": float(last["slack"][s]),
                             "v_min": float(last["v_min"][s]), "v_max": float(last["v_max"][s]),
                             "losses": float(last["losses"][s]), "shed": float(last["shed"][s]),
                             "rt_cost": float(last["rt_cost"][s])})
        cong = congestion(ev["flows"], ev["ratings"], self.config.congestion_margin)
        tables = realtime_tables(ev, dict(zip(self.roles.dsos, solutions)), self.roles.area_of_dso, scheme, sset)
        out = Evaluation(scheme=scheme, scenario_set=sset, da_welfare=-float(ev["da_cost"]), rt_cost=ev["U"],
                         lower=ev["L"], rounds=int(ev["rounds"]), congestion=cong, relaxation_gap=pd.DataFrame(gaps),
                         diagnostics=pd.DataFrame(diag), time_s=time.perf_counter() - t0, pcc=ev["p"], tables=tables,
                         line_ids=list(ev["line_ids"]), ratings=np.asarray(ev["ratings"], dtype=float))
        self.progress(f"{scheme} {sset}: expected welfare {out.welfare.mean():.2f} over {out.rt_cost.size} "
                      f"scenarios ({out.rounds} real-time rounds, {out.time_s:.1f} s)")
        return out

    def end_of_day(self) -> None:
        """``Command END_OF_DAY -> participants``: each settles the final schedule of the last scheme run (its
        day-ahead price and quantities) and its strategy, if any, learns from the day."""
        self._command(self.roles.participants, Action.END_OF_DAY)

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
        tally = SolverTally(self.rt)
        res = self.run()
        w = self.wind
        pen_in = float(np.asarray(w.in_sample).sum(axis=0).mean() / w.total_demand)
        oos = np.asarray(w.out_of_sample)
        pen_oos = float(oos.sum(axis=0).mean() / w.total_demand) if oos.shape[1] else math.nan
        return LevelResult(factor=float(w.factor), penetration_in=pen_in, penetration_oos=pen_oos, schemes=res,
                           time_s=time.perf_counter() - t0, messages=self.rt.boundary.summary(),
                           congestion_margin=self.config.congestion_margin, solves=tally.frame())


def _with_diagnostics(frame: pd.DataFrame, diagnostics: list[dict[str, Any]]) -> pd.DataFrame:
    """The iteration log with the TSO's diagnostics of each iteration (solve times, cuts, binaries) appended."""
    by_k = {int(d["iteration"]): d for d in diagnostics}  # a later run of the scheme overrides an earlier one
    for col in ("master_time_s", "master_lps", "rt_master_time_s", "iteration_time_s", "n_cuts", "price_level"):
        frame[col] = [by_k.get(int(k), {}).get(col, math.nan) for k in frame["iteration"]]
    return frame
