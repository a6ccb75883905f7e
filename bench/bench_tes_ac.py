"""Cost of the AC network check of tes against the linear one (run by hand; prints figures).

    python3 bench/bench_tes_ac.py [--repeat 3]

For ``--network-check linear`` and ``ac`` on ``tes_feeder`` (LocalRuntime, personalized pricing,
no centralized benchmark), and on the same feeder with v_max = 1.047 pu at node 13 (a violation
that is real in AC): Benders iterations, cuts, OpenDSS solves, the protocol wall time of day 0
(cold: solvers compile, the OpenDSS circuit is built) and day 1 (the LA keeps its cuts and its
loss estimate), and the time per operator check, split into the OpenDSS power flows and the rest
(the LinDist3Flow evaluation and the slack LP). Medians over ``--repeat`` runs.
"""
from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

from agents.tes.operator import DSO
from coordinator.boundary import Boundary
from coordinator.runtime import LocalRuntime
from coordinator.tes.protocol import TESProtocol
from coordinator.tes.setup import TESConfig
from network.model import Feeder
from network.opendss import DssCircuit
from scenarios.registry import load_case

TIMES: dict[str, list[float]] = {"check": [], "opendss": [], "build": []}
_IN_CHECK = [False]  # only the operator's checks count (the analyst's voltage reports also run OpenDSS)


def _timed(name, fn):
    def wrapper(*a, **k):
        outer = name == "check"
        if outer:
            _IN_CHECK[0] = True
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            if _IN_CHECK[0]:
                TIMES[name].append(time.perf_counter() - t0)
            if outer:
                _IN_CHECK[0] = False
    return wrapper


def tight(case, v_max: float):
    (f,) = case.feeders.values()
    nodes = [replace(n, v_max=v_max) if n.id == "13" else n for n in f.nodes]
    return case.replace(feeders=(Feeder(f.id, nodes, f.lines, n_phases=f.n_phases, v_head=f.v_head,
                                        s_base_kva=f.s_base_kva, v_base_kv=f.v_base_kv, import_min=f.import_min,
                                        import_max=f.import_max, pcc_bus=f.pcc_bus),))


def one(case, check: str) -> dict:
    for v in TIMES.values():
        v.clear()
    proto = TESProtocol(LocalRuntime(Boundary()), case, TESConfig(network_check=check))
    d0 = proto.run_day(0, benchmarks=False)
    n0 = len(TIMES["check"])
    d1 = proto.run_day(1, benchmarks=False)
    return {"it0": len(d0.iterations), "cuts0": int(d0.iterations["n_cuts"].sum()), "solves0": d0.opendss_solves,
            "t0": d0.wall_time_s, "it1": len(d1.iterations), "solves1": d1.opendss_solves, "t1": d1.wall_time_s,
            "check": statistics.median(TIMES["check"]), "opendss": statistics.median(TIMES["opendss"] or [0.0]),
            "rest": statistics.median(c - o for c, o in zip(TIMES["check"],
                                                             TIMES["opendss"] or [0.0] * len(TIMES["check"]))),
            "build": sum(TIMES["build"]), "checks": n0, "profit": d0.solution.objective,
            "la_s": float(d0.iterations["la_solve_s"].sum())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    DSO.check_schedule = _timed("check", DSO.check_schedule)
    DssCircuit.solve = _timed("opendss", DssCircuit.solve)
    DssCircuit.__init__ = _timed("build", DssCircuit.__init__)
    base = load_case("tes_feeder")
    for label, case in (("tes_feeder", base), ("tes_feeder, v_max(13) = 1.047", tight(base, 1.047))):
        for check in ("linear", "ac"):
            runs = [one(case, check) for _ in range(args.repeat)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(f"[{label}] {check:6s} day 0: {med['it0']:.0f} iterations, {med['cuts0']:.0f} cuts, "
                  f"{med['solves0']:.0f} OpenDSS solves, {med['t0']:.3f} s (LA solves {med['la_s']:.3f} s), "
                  f"LA profit {med['profit']:.2f} $; day 1: {med['it1']:.0f} iterations, {med['solves1']:.0f} solves, "
                  f"{med['t1']:.3f} s")
            print(f"[{label}] {check:6s} per operator check {med['check'] * 1000:.1f} ms: OpenDSS (24 hourly power "
                  f"flows) {med['opendss'] * 1000:.1f} ms ({med['opendss'] / 24 * 1e6:.0f} us per solve, loads "
                  f"updated and results read), slack LP and LinDist3Flow {med['rest'] * 1000:.1f} ms; circuit "
                  f"build (once per operator) {med['build'] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
