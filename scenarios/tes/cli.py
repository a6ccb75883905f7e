"""``python run.py tes-day``: the personalized-preserving Benders market on a feeder, day by day."""
from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

from coordinator.boundary import Boundary
from coordinator.tes.protocol import DayResult
from coordinator.tes.setup import TESConfig
from coordinator.simulation import TESMarketModel

from ..registry import load_case
from ..runs import RunFolder, add_ray_insecure_argument


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--case", default="tes_feeder", help="built-in case name or case folder (default: tes_feeder)")
    p.add_argument("--runtime", choices=("local", "ray"), default="local",
                   help="run agents in-process (local) or as Ray actors (ray)")
    p.add_argument("--ray-address", default=None,
                   help="join a Ray cluster (auto or HOST:PORT; default: $RAY_ADDRESS or a new local instance)")
    add_ray_insecure_argument(p)
    p.add_argument("--pricing", choices=("personalized", "uniform"), default="personalized")
    p.add_argument("--relaxation", choices=("exact", "mccormick"), default="exact",
                   help="exact bilevel (certified global optimum) or the McCormick relaxation of appendix B")
    p.add_argument("--transformer-kw", type=float, default=None,
                   help="transformer import limit in kW (default: the case's, 200; the paper's text says 250)")
    p.add_argument("--strategy", choices=("marginal-cost", "markup", "learning"), default="marginal-cost",
                   help="DER managers' offer strategy")
    p.add_argument("--markup", type=float, default=0.02, help="markup in $/kWh for --strategy markup")
    p.add_argument("--days", type=int, default=1, help="number of simulated market days")
    p.add_argument("--max-iterations", type=int, default=50)
    p.add_argument("--no-benchmarks", action="store_true", help="skip the centralized benchmark")


def make_runtime(kind: str, boundary: Boundary, address: str | None) -> Any:
    from coordinator.runtime import make_runtime as _make

    return _make(kind, boundary, address)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=False)
    case = load_case(args.case)
    try:
        if args.days < 1:
            raise ValueError("--days must be at least 1")
        config = TESConfig(pricing=args.pricing, relaxation=args.relaxation, transformer_kw=args.transformer_kw,
                           strategy=args.strategy, markup=args.markup, max_iterations=args.max_iterations,
                           seed=args.seed or 0)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = RunFolder.create("tes-day", args.out)
    folder.write_manifest("tes-day", args, seed=args.seed, extra={"case": case.name})
    boundary = Boundary(folder.file("audit.jsonl"))
    t0 = time.perf_counter()
    with console.status("starting the runtime...") as status:
        runtime = make_runtime(args.runtime, boundary, args.ray_address)
        t_start = time.perf_counter() - t0
        try:
            model = TESMarketModel(case, runtime, config, seed=args.seed or 0, benchmarks=not args.no_benchmarks,
                                   progress=lambda s: status.update(s))
            for _ in range(args.days):
                model.step()
                res = model.results[-1]
                console.print(f"day {res.day}: {len(res.iterations)} iteration(s), "
                              f"{'converged' if res.converged else 'NOT converged'} ({res.stop_reason}), "
                              f"{res.wall_time_s:.2f} s")
                write_tables(folder, model, boundary)  # each finished day is kept, even if a later one fails
        finally:
            runtime.shutdown()
            boundary.close()
    write_results(folder, model, boundary)
    console.print(summary_table(model, t_start))
    console.print(f"run folder: {folder.path}")
    return 0 if all(r.converged for r in model.results) else 1


# ------------------------------------------------------------------ tables


def _hourly(day: int, d: dict[str, np.ndarray], name: str, value: str) -> pd.DataFrame:
    rows = [(day, k, t, float(v)) for k, arr in d.items() for t, v in enumerate(np.asarray(arr))]
    return pd.DataFrame(rows, columns=["day", name, "hour", value])


def tables(model: TESMarketModel, boundary: Boundary) -> dict[str, pd.DataFrame]:
    it, prices, dispatch, volt, settle, bench, gap = [], [], [], [], [], [], []
    for r in model.results:
        it.append(r.iterations.assign(day=r.day))
        s = r.solution
        prices.append(_hourly(r.day, s.prices, "customer", "price_usd_per_kwh"))
        d = _hourly(r.day, s.purchases, "source", "kw")
        loads = _hourly(r.day, s.loads, "source", "kw").assign(kind="load")
        dispatch.append(pd.concat([d.assign(kind="supply"), loads], ignore_index=True))
        volt.append(r.voltages.assign(day=r.day))
        settle.append(r.settlement.assign(day=r.day))
        row = {"day": r.day, "decomposed_objective": s.objective, "iterations": len(r.iterations),
               "unconstrained_objective": r.unconstrained.objective, "converged": r.converged,
               "wall_time_s": r.wall_time_s}
        if r.centralized is not None:
            row |= {"centralized_objective": r.centralized.objective, "relative_gap": r.objective_gap,
                    "max_schedule_diff_kw": max_schedule_diff(s, r.centralized)}
        bench.append(pd.DataFrame([row]))
        if getattr(s, "mccormick_gap", None) is not None:
            gap.append(_hourly(r.day, s.mccormick_gap, "customer", "w_minus_p_pi"))
    out = {"iterations": pd.concat(it, ignore_index=True), "prices": pd.concat(prices, ignore_index=True),
           "dispatch": pd.concat(dispatch, ignore_index=True), "voltages": pd.concat(volt, ignore_index=True),
           "settlement": pd.concat(settle, ignore_index=True), "welfare": pd.concat(bench, ignore_index=True),
           "days": model.days_frame().reset_index(),
           "messages": pd.DataFrame(boundary.summary())}
    if gap:
        out["mccormick_gap"] = pd.concat(gap, ignore_index=True)
    return out


def max_schedule_diff(a: Any, b: Any) -> float:
    """Largest |difference| (kW) between two LA solutions' purchases and loads."""
    diffs = [np.max(np.abs(np.asarray(a.purchases[k]) - np.asarray(b.purchases[k]))) for k in a.purchases]
    diffs += [np.max(np.abs(np.asarray(a.loads[k]) - np.asarray(b.loads[k]))) for k in a.loads]
    return float(max(diffs))


def write_tables(folder: RunFolder, model: TESMarketModel, boundary: Boundary) -> None:
    """The Parquet tables of the days finished so far (rewritten atomically after every day)."""
    for name, df in tables(model, boundary).items():
        folder.write_parquet(f"{name}.parquet", df)


def write_results(folder: RunFolder, model: TESMarketModel, boundary: Boundary) -> None:
    from . import plots as tes_plots

    write_tables(folder, model, boundary)
    last = model.results[-1]
    for name, fig in tes_plots.all_figures(last).items():
        folder.write_png(f"{name}.png", fig)


def summary_table(model: TESMarketModel, t_start: float) -> Any:
    from rich.table import Table

    t = Table(title="tes-day summary")
    for col in ("day", "iter", "E* pu", "LA $", "central $", "gap", "DER $", "cust. $", "s"):
        t.add_column(col, justify="right")
    for r in model.results:
        e = float(r.iterations["violation"].iloc[-1])
        cen = r.centralized.objective if r.centralized is not None else math.nan
        der = r.settlement.query("role == 'der_manager' and item == 'profit'")["value"].sum() if len(
            r.settlement) else math.nan
        cs = r.settlement.query("role == 'customer' and item == 'surplus'")["value"].sum() if len(
            r.settlement) else math.nan
        t.add_row(str(r.day), str(len(r.iterations)), f"{e:.1e}", f"{r.solution.objective:.2f}", f"{cen:.2f}",
                  f"{r.objective_gap:.1e}" if r.centralized is not None else "-", f"{der:.2f}", f"{cs:.2f}",
                  f"{r.wall_time_s:.2f}")
    t.caption = (f"iter: Benders iterations; E*: final violation; LA $: load aggregator profit (decomposed) vs "
                 f"central $: centralized benchmark, gap relative; DER $: DER managers' profit; cust. $: customer "
                 f"surplus; s: protocol time (runtime start-up {t_start:.2f} s and benchmarks excluded)")
    return t


__all__ = ["add_arguments", "run", "DayResult"]
