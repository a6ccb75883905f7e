"""The cost of the information boundary: checks, routing tokens, receipt checks and the audit log (run by hand).

    python3 bench/bench_boundary.py [--scenarios 5] [--oos 20] [--schemes pcc,cm,fc] [--days 1]

Runs a tes day (``tes_feeder``) and a tso-dso level (``tso24_dso5``) on the LocalRuntime with
the audit log written to a temporary folder, and times every call of the boundary's own work:

- ``route``: policy, area, schema and key checks, the payload's canonical JSON, its digest,
  the routing token and the audit log line (buffered);
- ``release``: the delivery rule (routed, once, the very object) and the delivery record;
- ``receipt``: the receiver's re-check (schema and digest), and the coordinator's for reports;
- ``analyst``: the analyst channel's deep copies and their log records (not per message).

Prints, per protocol, the messages routed, the boundary's time per message (microseconds) and
its share of the protocol's wall time (target <= 5 %).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import coordinator.boundary as boundary_mod  # noqa: E402
import coordinator.runtime.base as base_mod  # noqa: E402
import coordinator.runtime.local as local_mod  # noqa: E402
from coordinator.boundary import Boundary  # noqa: E402
from coordinator.runtime import LocalRuntime  # noqa: E402

SPENT: dict[str, float] = defaultdict(float)


def _timed(name: str, fn):
    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            SPENT[name] += time.perf_counter() - t0
    return wrapper


def instrument() -> None:
    Boundary.route = _timed("route", Boundary.route)
    Boundary.release = _timed("release", Boundary.release)
    receipt = _timed("receipt", boundary_mod.receipt_check)
    local_mod.receipt_check = receipt
    base_mod.receipt_check = receipt
    base_mod.Analyst.read_many = _timed("analyst", base_mod.Analyst.read_many)


def report(name: str, boundary: Boundary, wall: float) -> None:
    n = len(boundary.records)
    per_msg = SPENT["route"] + SPENT["release"] + SPENT["receipt"]
    print(f"\n{name}: {n} messages routed, {boundary.deliveries} delivered, {len(boundary.analyst_reads)} analyst reads; "
          f"protocol wall time {wall:.2f} s")
    for k in ("route", "release", "receipt"):
        print(f"  {k:8s} {SPENT[k] * 1e6 / max(n, 1):8.1f} us/message  ({SPENT[k]:.3f} s)")
    print(f"  {'total':8s} {per_msg * 1e6 / max(n, 1):8.1f} us/message  ({per_msg:.3f} s) = "
          f"{100 * per_msg / wall:.2f} % of the protocol's wall time (target <= 5 %)")
    print(f"  analyst  {SPENT['analyst']:.3f} s for {len(boundary.analyst_reads)} reads "
          f"({100 * SPENT['analyst'] / wall:.2f} %; deep copies of results, not per message)")
    SPENT.clear()


def bench_tes(folder: Path, days: int) -> None:
    from coordinator.simulation import TESMarketModel
    from coordinator.tes.setup import TESConfig
    from scenarios.registry import load_case

    b = Boundary(folder / "tes-audit.jsonl")
    rt = LocalRuntime(b)
    model = TESMarketModel(load_case("tes_feeder"), rt, TESConfig(), benchmarks=False)
    SPENT.clear()
    t0 = time.perf_counter()
    for _ in range(days):
        model.step()
    wall = time.perf_counter() - t0
    rt.shutdown()
    b.close()
    report(f"tes, {days} day(s)", b, wall)


def bench_tso_dso(folder: Path, scenarios: int, oos: int, schemes: tuple[str, ...]) -> None:
    from coordinator.tso_dso.protocol import TSODSOProtocol
    from coordinator.tso_dso.setup import TSODSOConfig
    from scenarios.registry import load_case
    from scenarios.tso_dso.wind import WindModel

    case = load_case("tso24_dso5")
    wind = WindModel.from_case(case).scenarios(0.6, scenarios, oos, seed=0)
    b = Boundary(folder / "tso-dso-audit.jsonl")
    rt = LocalRuntime(b)
    proto = TSODSOProtocol(rt, case, wind, TSODSOConfig(schemes=schemes, oos=oos > 0))
    SPENT.clear()
    t0 = time.perf_counter()
    proto.run_level()
    wall = time.perf_counter() - t0
    rt.shutdown()
    b.close()
    report(f"tso-dso level, {scenarios} scenarios, {oos} out of sample, schemes {','.join(schemes)}", b, wall)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenarios", type=int, default=5)
    p.add_argument("--oos", type=int, default=20)
    p.add_argument("--schemes", default="pcc,cm,fc")
    p.add_argument("--days", type=int, default=1)
    a = p.parse_args()
    instrument()
    with tempfile.TemporaryDirectory() as d:
        bench_tes(Path(d), a.days)
        bench_tso_dso(Path(d), a.scenarios, a.oos, tuple(s for s in a.schemes.split(",") if s))


if __name__ == "__main__":
    main()
