"""``python run.py tso-dso`` and ``python run.py tso-dso-sweep``: TSO-DSO coordination under wind uncertainty.

``tso-dso`` runs the schemes (pcc, cm, fc) at one wind level: in-sample Benders on
``--scenarios`` wind scenarios, then the out-of-sample evaluation of each scheme's
day-ahead decision on ``--oos`` scenarios. ``tso-dso-sweep`` does that at ``--levels``
wind factors in ``linspace(0.05, 1.5, levels)`` (common random numbers), in parallel
over levels, one result file per level (``--resume`` skips finished levels).

Run folder: ``manifest.json``, Parquet tables (iterations, welfare, scenarios,
dispatch, relaxation, exchanges, congestion, messages, and the real-time dispatch
``rt_resources``, ``rt_shedding``, ``rt_voltages``, ``rt_feeder_lines``, ``rt_pcc``,
``rt_transmission``: see the README), the audit log(s) and PNG plots (Benders bounds
per iteration, DSO caps against P max; for the sweep: expected welfare and congestion
against wind penetration).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any, Callable

from ..registry import load_case
from ..runs import RunFolder, add_runtime_arguments, progress_to
from .plots import plot_bounds, plot_caps
from .tables import benchmarks, level_tables, summary_table, wind_table
from .wind import WindModel, WindScenarios

SCHEMES = ("pcc", "cm", "fc")
NAME, SWEEP_NAME = "tso-dso", "tso-dso-sweep"


# ------------------------------------------------------------------ arguments


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--case", default="tso24_dso5", help="built-in case name or case folder (default: tso24_dso5)")
    p.add_argument("--scenarios", type=int, default=20, help="in-sample wind scenarios (default: 20)")
    p.add_argument("--oos", type=int, default=300, help="out-of-sample wind scenarios (default: 300; 0: none)")
    p.add_argument("--schemes", default="pcc,cm,fc", help="comma-separated schemes among pcc, cm, fc")
    add_runtime_arguments(p)
    p.add_argument("--gap", type=float, default=5e-5,
                   help="Benders gap tolerance, relative to the welfare scale W (the day-ahead welfare of the "
                        "unconstrained market clearing; default: 5e-5)")
    p.add_argument("--max-iterations", type=int, default=100, help="Benders iteration limit (default: 100)")
    p.add_argument("--share-cuts", action="store_true",
                   help="one pool of DSO cuts for all schemes: faster, but a scheme's figures then depend on the "
                        "schemes run before it (default: each scheme its own cuts)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--wind-factor", type=float, default=0.6,
                   help="wind factor f: expected wind = f x total demand P max (default: 0.6)")
    p.add_argument("--benchmark", action="store_true",
                   help="also check each scheme's real-time costs against the joint SOCP (first 5 in-sample "
                        "scenarios) and solve fc's extensive form")


def _config(args: argparse.Namespace) -> Any:
    from coordinator.tso_dso.setup import TSODSOConfig

    schemes = tuple(s.strip() for s in str(args.schemes).split(",") if s.strip())
    bad = [s for s in schemes if s not in SCHEMES]
    if bad or not schemes:
        raise ValueError(f"--schemes: unknown scheme(s) {bad}; choose from {', '.join(SCHEMES)}")
    if args.scenarios < 1:
        raise ValueError("--scenarios must be at least 1")
    if args.oos < 0:
        raise ValueError("--oos must be >= 0")
    if not 0 < args.gap < 1:
        raise ValueError("--gap must be in (0, 1)")
    if args.max_iterations < 1:
        raise ValueError("--max-iterations must be at least 1")
    return TSODSOConfig(schemes=schemes, gap_tol=args.gap, max_iterations=args.max_iterations,
                        share_cuts=bool(args.share_cuts), oos=args.oos > 0)


def _console() -> Any:
    from rich.console import Console

    c = Console()
    return c if c.is_terminal else Console(width=150)


def _make_runtime(kind: str, boundary: Any, address: str | None) -> Any:
    from coordinator.runtime import make_runtime

    return make_runtime(kind, boundary, address)


# ------------------------------------------------------------------ one level


def run_level(case: Any, wind: WindScenarios, config: Any, runtime: Any,
              progress: Callable[[str], None] | None = None) -> Any:
    """All schemes at one wind level on ``runtime`` (its boundary logs the messages)."""
    from coordinator.tso_dso.protocol import TSODSOProtocol

    proto = TSODSOProtocol(runtime, case, wind, config, progress=progress)
    return proto.run_level()


def run(args: argparse.Namespace) -> int:
    from coordinator.boundary import Boundary

    console = _console()
    case = load_case(args.case)
    try:
        config = _config(args)
        if not (math.isfinite(args.wind_factor) and args.wind_factor >= 0):
            raise ValueError("--wind-factor must be a number >= 0")
        from coordinator.tso_dso.setup import Roles

        Roles.of(case)  # what tso-dso needs of the case (a CaseError names where)
        model = WindModel.from_case(case)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    wind = model.scenarios(args.wind_factor, args.scenarios, args.oos, seed=args.seed)
    folder = RunFolder.create(NAME, args.out)
    folder.write_manifest(NAME, args, seed=args.seed, case=case.name, config=config.__dict__)
    boundary = Boundary(folder.file("audit.jsonl.gz"))  # large: gzipped by the log's writer thread
    t0 = time.perf_counter()
    with console.status("starting the runtime...") as status:
        runtime = _make_runtime(args.runtime, boundary, args.ray_address)
        try:
            level = run_level(case, wind, config, runtime, progress=progress_to(console, status))
        finally:
            runtime.shutdown()
            boundary.close()
    tabs = level_tables(level, wind)
    tabs["wind"] = wind_table(wind)
    bench = None
    if args.benchmark:
        with console.status("centralized benchmarks..."):
            bench = benchmarks(case, wind, level)
        tabs["benchmarks"] = bench
    for name, df in tabs.items():
        if len(df):
            folder.write_parquet(f"{name}.parquet", df)
    folder.write_png("benders_bounds.png", plot_bounds(tabs["iterations"]))
    if "pcc" in level.schemes:
        folder.write_png("caps.png", plot_caps(tabs["dispatch"]))
    console.print(summary_table(tabs["welfare"], f"tso-dso at wind factor {args.wind_factor:g} "
                                                 f"(penetration {level.penetration_in:.2f} in sample)"))
    if bench is not None:
        console.print(bench.to_string(index=False))
    from coordinator.solves import summary as solves_summary
    console.print(solves_summary(level.solves) + " (solves.parquet)")
    console.print(f"total {time.perf_counter() - t0:.1f} s on the {args.runtime} runtime{_ray_start(runtime)}; "
                  f"run folder: {folder.path}")
    return 0 if all(r.converged for r in level.schemes.values()) else 1


def _ray_start(runtime: Any) -> str:
    """How long Ray took to start, when it was started in the background (``start_ray_early``)."""
    info = getattr(runtime, "start_info", None) or {}
    if not info.get("background"):
        return ""
    return (f" (Ray started in the background in {info['background_init_s']:.1f} s, {info['init_s']:.1f} s of it "
            f"waited for)")


__all__ = ["add_arguments", "run", "run_level", "NAME", "SWEEP_NAME", "SCHEMES"]
