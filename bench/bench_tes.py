"""Benchmark of one tes market day on the reference feeder (run by hand; prints figures).

    python bench/bench_tes.py [--repeat 3] [--ray-address ADDR]

Reports Benders iterations, the protocol wall time after start-up on LocalRuntime
and on RayRuntime, Ray start-up, and the per-round overhead of Ray (the same
rounds timed on both runtimes: (ray - local) / rounds).
Targets (issue 3): <= 10 iterations, <= 5 s per day on LocalRuntime, <= 50 ms per round on Ray.
"""
from __future__ import annotations

import argparse
import statistics
import time

from coordinator.boundary import Boundary
from coordinator.tes.protocol import TESProtocol
from coordinator.tes.setup import TESConfig
from coordinator.runtime import LocalRuntime, RayRuntime
from scenarios.registry import load_case


def one(rt_factory, case, config):
    t0 = time.perf_counter()
    rt = rt_factory()
    proto = TESProtocol(rt, case, config)
    t_ready = time.perf_counter() - t0
    day0 = proto.run_day(0, benchmarks=False)  # cold: Ray actors start and import the solvers
    day1 = proto.run_day(1, benchmarks=False)  # steady state (the LA keeps day 0's cuts, which stay valid)
    # rounds: open, DER offers, and per iteration LA solve + TESO check, plus close and delivery
    rounds = 2 + 2 * len(day1.iterations) + 2
    rt.shutdown()
    return t_ready, day0, day1, rounds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ray-address", default=None)
    args = ap.parse_args()
    case = load_case("tes_feeder")
    for pricing in ("personalized", "uniform"):
        config = TESConfig(pricing=pricing)
        loc = [one(lambda: LocalRuntime(Boundary()), case, config) for _ in range(args.repeat)]
        ray_ = [one(lambda: RayRuntime(Boundary(), address=args.ray_address), case, config)
                for _ in range(args.repeat)]
        it = len(loc[0][1].iterations)
        t_loc0 = statistics.median(r[1].wall_time_s for r in loc)
        la = statistics.median(float(r[1].iterations["la_solve_s"].sum()) for r in loc)
        t_ray0 = statistics.median(r[1].wall_time_s for r in ray_)
        t_loc1 = statistics.median(r[2].wall_time_s for r in loc)
        t_ray1 = statistics.median(r[2].wall_time_s for r in ray_)
        rounds = loc[0][3]
        print(f"[{pricing}] Benders iterations on day 0: {it} (target <= 10)")
        print(f"[{pricing}] LocalRuntime day 0: {t_loc0:.3f} s (target <= 5 s), of which LA solves {la:.3f} s; "
              f"day 1: {t_loc1:.3f} s")
        print(f"[{pricing}] RayRuntime day 0: {t_ray0:.3f} s (actor start and imports); day 1: {t_ray1:.3f} s")
        print(f"[{pricing}] Ray overhead per round (day 1): {(t_ray1 - t_loc1) / rounds * 1000:.1f} ms over "
              f"{rounds} rounds (target <= 50 ms)")


if __name__ == "__main__":
    main()
