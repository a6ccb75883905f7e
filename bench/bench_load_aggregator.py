"""Solve times of the load aggregator's problem on the ``tes_feeder`` case.

Offers: G1 at 0.075 $/kWh (125 kW), G2 at 0.05 (100 kW), WT and PV at 0 up to their availability,
MG at LMP with unlimited quantity (marginal-cost offers). For personalized and uniform pricing:

- ``exact`` (convex-hull relaxation + spatial branch-and-bound, Clarabel): the first solve
  (includes building and compiling the cvxpy problem) and warm re-solves;
- a Benders loop as in the ``tes`` protocol: the LA solves, the DSO checks LinDist3Flow and
  returns one feasibility cut per violated hour, until accepted (times per LA solve);
- ``mccormick`` (MILP, HiGHS) and ``kkt_miqp`` (KKT with binaries, convex MIQP, SCIP), for
  comparison (``--no-scip`` skips the latter, which takes seconds; with uniform pricing it runs
  only with ``--scip-uniform``, ~30 s).

Run: ``python bench/bench_load_aggregator.py [--repeat N] [--no-scip] [--transformer-kw 200]``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agents.tes.load_aggregator import LoadAggregator  # noqa: E402
from scenarios.registry import load_case  # noqa: E402


def feeder_offers(case) -> dict:
    T = case.horizon
    return {"G1": (np.full(T, 0.075), np.full(T, 125.0)), "G2": (np.full(T, 0.05), np.full(T, 100.0)),
            "WT": (np.zeros(T), case.profile("wt_avail_kw")), "PV": (np.zeros(T), case.profile("pv_avail_kw")),
            "MG": (case.profile("lmp_usd_per_kwh"), np.full(T, np.inf))}


def timed(la: LoadAggregator, offers: dict, cuts=(), network=None):
    t = time.perf_counter()
    sol = la.solve(offers, cuts, network=network)
    return sol, time.perf_counter() - t


def fmt(ts: list[float]) -> str:
    return f"min {min(ts) * 1e3:7.1f} ms, median {statistics.median(ts) * 1e3:7.1f} ms, max {max(ts) * 1e3:7.1f} ms"


def bench_exact(case, offers, pricing: str, repeat: int) -> None:
    la = LoadAggregator.from_case(case, "LA", pricing=pricing)
    sol, first = timed(la, offers)
    ts, nodes = [], []
    for _ in range(repeat):
        s, t = timed(la, offers)
        ts.append(t)
        nodes.append(s.nodes)
    print(f"  exact      first solve (build + compile) {first * 1e3:7.1f} ms; re-solves: {fmt(ts)}; "
          f"B&B nodes {max(nodes)}")
    print(f"             profit {sol.profit:.6f} $, certified bound {sol.bound:.6f} $, gap {sol.gap:.1e}, "
          f"status {sol.status}")


def bench_benders(case, offers, pricing: str, transformer_kw: float | None) -> None:
    try:
        from coordinator.tes.analysis import network_constraints
        from coordinator.tes.setup import TESConfig, make_agents, prepare_case
    except ImportError as e:  # pragma: no cover - the protocol is developed in parallel
        print(f"  benders    skipped ({e})")
        return
    config = TESConfig(pricing=pricing, transformer_kw=transformer_kw)
    agents = make_agents(prepare_case(case, config), config)
    la, dso = agents["load_aggregator"], agents["operator"]
    cuts: list = []
    times, ncuts = [], []
    total = time.perf_counter()
    for it in range(1, 51):
        sol, t = timed(la, offers, cuts)
        times.append(t)
        q = {k: v for k, v in sol.injections_q.items() if k in sol.loads}
        check = dso.check_schedule(sol.injections_p, q)
        ncuts.append(len(check.cuts))
        if not check.cuts:
            break
        cuts += [(c.period, c.coefficients, c.constant) for c in check.cuts]
    total = time.perf_counter() - total
    print(f"  benders    {it} iterations, cuts per iteration {ncuts}, LA solves: "
          + ", ".join(f"{t * 1e3:.0f}" for t in times) + f" ms; loop total {total:.2f} s "
          f"(LA {sum(times):.2f} s)")
    cen, tc = timed(la, offers, network=network_constraints(dso))
    print(f"             decomposed profit {sol.profit:.6f} $, centralized {cen.profit:.6f} $ "
          f"(difference {sol.profit - cen.profit:.1e}); centralized solve {tc * 1e3:.0f} ms, {cen.nodes} nodes")


def bench_other(case, offers, pricing: str, scip: bool) -> None:
    la = LoadAggregator.from_case(case, "LA", pricing=pricing, relaxation="mccormick")
    timed(la, offers)
    s, t = timed(la, offers)
    gaps = np.concatenate(list(s.mccormick_gap.values()))
    print(f"  mccormick  MILP (HiGHS) {t * 1e3:7.1f} ms; objective {s.objective:.6f} $ (upper bound), "
          f"its schedule's profit {s.profit:.6f} $, w - p pi in [{gaps.min():.2e}, {gaps.max():.3f}] $")
    if scip:
        la = LoadAggregator.from_case(case, "LA", pricing=pricing, method="kkt_miqp")
        s, t = timed(la, offers)
        print(f"  kkt_miqp   MIQP (SCIP)  {t * 1e3:7.1f} ms; profit {s.profit:.6f} $, SCIP gap {s.gap:.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--no-scip", action="store_true", help="skip the SCIP MIQP comparison")
    ap.add_argument("--scip-uniform", action="store_true", help="also run SCIP with uniform pricing (~30 s)")
    ap.add_argument("--transformer-kw", type=float, default=None)
    args = ap.parse_args()
    case = load_case("tes_feeder")
    offers = feeder_offers(case)
    print(f"tes_feeder: {len(case.loads_of('LA'))} customers, {case.horizon} hours, {len(offers)} supply units")
    for pricing in ("personalized", "uniform"):
        print(f"pricing = {pricing}")
        bench_exact(case, offers, pricing, args.repeat)
        bench_benders(case, offers, pricing, args.transformer_kw)
        bench_other(case, offers, pricing, scip=not args.no_scip and (pricing == "personalized" or args.scip_uniform))


if __name__ == "__main__":
    main()
