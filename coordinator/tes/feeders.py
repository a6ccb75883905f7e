"""A ``tes`` day on a case with several feeders: one Benders loop per feeder, run side by side.

Each feeder has its own TES operator, load aggregator (LA) and DER managers; the main grid is shared and
offers every LA the same LMP at its feeder's head (a price-taker outside option), so the feeders are
independent: feeder k's loop is the single-feeder loop of :mod:`coordinator.tes.protocol` on its own
messages. The loops advance together (one runtime exchange carries every active feeder's messages),
and a feeder stops on its own operator's ``Accept``, on no progress, or at the iteration limit; the
accepted feeders are closed together. The analyst's benchmarks are per feeder, on
:func:`~coordinator.tes.setup.feeder_case`.

Units and the iteration log's columns: as in :mod:`coordinator.tes.protocol`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..benders import IterationLog
from ..boundary import COORDINATOR
from ..messages import Accept, Action, Command, FeasibilityCut, Injections, Losses, Message, Offer
from .analysis import Analyst, settlement_frame
from .setup import Roles, feeder_case

__all__ = ["run_day_feeders"]


@dataclass
class _Loop:
    """One feeder's Benders loop state."""

    roles: Roles
    pending: list[Message]
    log: IterationLog = field(default_factory=IterationLog)
    converged: bool = False
    done: bool = False
    reason: str = ""
    iteration: int = 0
    answers: list[Message] = field(default_factory=list)


def run_day_feeders(proto: Any, day: int, *, benchmarks: bool = True) -> dict[str, Any]:
    """The day on every feeder of ``proto.case``: ``{feeder id: DayResult}``."""
    from .protocol import DayResult

    rt, cfg = proto.rt, proto.config
    t0 = time.perf_counter()
    roles: list[Roles] = proto.feeder_roles
    mg = roles[0].main_grid
    ders = {d for r in roles for d in r.der_managers}
    opened = rt.exchange(rt.send([Command(COORDINATOR, mg, 0, action=Action.OPEN)]))
    offer_msgs = [m for m in opened if isinstance(m, Offer)] + [
        m for m in rt.exchange([m for m in opened if m.receiver in ders]) if isinstance(m, Offer)]
    loops = {r.load_aggregator: _Loop(r, [m for m in offer_msgs if m.receiver == r.load_aggregator]) for r in roles}
    by_op = {r.operator: r.load_aggregator for r in roles}
    last_round = 0
    for _ in range(cfg.max_iterations):
        active = [lp for lp in loops.values() if not lp.done]
        if not active:
            break
        out = rt.exchange([m for lp in active for m in lp.pending])
        inj = {m.sender: m for m in out if isinstance(m, Injections)}
        for lp in active:
            lp.iteration += 1
            if lp.roles.load_aggregator not in inj:
                lp.done = True
                lp.reason = (f"no progress: the load aggregator already held every cut of iteration "
                             f"{lp.iteration - 1}")
        live = [lp for lp in active if not lp.done]
        if not live:
            break
        sols = dict(zip([lp.roles.load_aggregator for lp in live],
                        rt.analyst.read_many([(lp.roles.load_aggregator, "report") for lp in live])))
        answers = rt.exchange([inj[lp.roles.load_aggregator] for lp in live])
        last_round = max([last_round, *(m.round for m in answers)])
        checks = dict(zip([lp.roles.operator for lp in live],
                          rt.analyst.read_many([(lp.roles.operator, "report") for lp in live])))
        for lp in live:
            la, op = lp.roles.load_aggregator, lp.roles.operator
            mine = [m for m in answers if m.receiver == la and by_op.get(m.sender) == la]
            lp.answers = mine
            cuts = [m for m in mine if isinstance(m, FeasibilityCut)]
            losses = [m for m in mine if isinstance(m, Losses)]
            accepted = any(isinstance(m, Accept) for m in mine)
            e_star = float(sum(c.violation for c in cuts))
            fams = sorted({f for c in cuts for f in c.families})
            check = checks[op]["checks"][-1]
            covered = -sum(np.asarray(v, dtype=float) for v in inj[la].p.values())
            upd = max((float(np.max(np.abs(np.asarray(m.losses) - covered))) for m in losses), default=0.0)
            sol = sols[la]["solution"]
            lp.log.record(lp.iteration, e_star=check["violation"], e_star_voltage_pu2=check["e_star_voltage_pu2"],
                          e_star_flow_pu=check["e_star_flow_pu"], n_cuts=len(cuts), loss_update_kw=upd,
                          objective=sol.objective, violated_hours=",".join(str(c.period) for c in cuts),
                          families=",".join(fams), la_solve_s=sol.solve_time)
            if accepted and not cuts:
                lp.converged, lp.done = True, True
                lp.reason = f"accepted: E* = {e_star:.3g} <= {cfg.tolerance:g}"
                continue
            stop, lp.reason = proto.rule.check(lp.iteration, violation=e_star if cuts else None)
            lp.done = bool(stop)
            lp.pending = [*cuts, *losses]
        n_done = sum(lp.done for lp in loops.values())
        proto.progress(f"day {day}: {n_done}/{len(loops)} feeder(s) done")
    for lp in loops.values():
        if not lp.done:
            lp.reason = lp.reason or f"iteration limit {cfg.max_iterations}"
    closing = [lp for lp in loops.values() if lp.converged]
    if closing:  # each accepted LA gets its acceptance and sends each seller its final schedule
        msgs = [m for lp in closing for m in lp.answers if isinstance(m, Accept)]
        msgs += rt.send([Command(COORDINATOR, lp.roles.load_aggregator, last_round + 1, action=Action.CLOSE,
                                 iteration=lp.iteration) for lp in closing])
        rt.exchange(rt.exchange(msgs))
    t_protocol = time.perf_counter() - t0
    results = {}
    for lp in loops.values():
        r = lp.roles
        tb = time.perf_counter()
        final = rt.analyst.read(r.load_aggregator, "report")["solution"]
        offers = {k: (np.asarray(m.prices[k]), m.quantity(k)) for m in offer_msgs if m.receiver == r.load_aggregator
                  for k in m.prices}
        analyst = proto.analysts.setdefault(r.feeder, Analyst(feeder_case(proto.case, r.feeder), cfg))
        unconstrained, central = analyst.benchmarks(offers, centralized=benchmarks, final=final)
        checks = rt.analyst.read(r.operator, "report")["checks"]
        results[r.feeder] = DayResult(
            day=day, converged=lp.converged, stop_reason=lp.reason, iterations=lp.log.to_frame(), solution=final,
            unconstrained=unconstrained, centralized=central, offers=offers,
            voltages=analyst.voltages(unconstrained, final),
            violations_unconstrained=analyst.violations(unconstrained),
            settlement=settlement_frame(rt, r, final), wall_time_s=t_protocol,
            timings={"protocol_s": t_protocol, "benchmarks_s": time.perf_counter() - tb},
            network_check=cfg.network_check, losses=analyst.losses(final),
            opendss_solves=int(checks[-1]["opendss_solves"]) if checks else 0)
    return results
