"""``tes-day`` on a case with several feeders: per-feeder tables in one run folder.

Runs ``--days`` days with :meth:`~coordinator.tes.protocol.TESProtocol.run_day_feeders` (no Mesa shell, no
``--resume`` yet: both are for one feeder). The run folder holds the single-feeder tables with a
``feeder`` column (``iterations``, ``prices``, ``dispatch``, ``voltages``, ``settlement``, ``welfare``,
``losses``), ``feeders.parquet`` (one row per day and feeder: iterations, converged, stop reason, LA
profit $, centralized $, relative gap, max LinDist3Flow |V| pu of the final schedule) and
``messages.parquet``, and ``feeders.png`` (the last day per feeder: iterations, gap to the centralized
solve, max |V|); the summary prints one row per feeder.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import pandas as pd

from coordinator.boundary import Boundary
from coordinator.tes.setup import TESConfig
from network.model import Case

from ..runs import RunFolder, progress_to


def run(args: argparse.Namespace, case: Case, config: TESConfig) -> int:
    from rich.console import Console
    from rich.table import Table

    from coordinator.runtime import make_runtime
    from coordinator.tes.protocol import TESProtocol

    from .cli import tables as one_feeder_tables

    console = Console(stderr=False)
    if args.resume:
        print(f"error: --resume is for one-feeder cases; {case.name} has {len(case.feeders)} feeders",
              file=sys.stderr)
        return 2
    folder = RunFolder.create("tes-day", args.out)
    folder.write_manifest("tes-day", args, seed=args.seed, extra={"case": case.name, "feeders": list(case.feeders)})
    boundary = Boundary(folder.file("audit.jsonl.gz"))
    results: list[dict[str, Any]] = []
    with console.status("starting the runtime...") as status:
        runtime = make_runtime(args.runtime, boundary, args.ray_address)
        try:
            proto = TESProtocol(runtime, case, config, progress=progress_to(console, status))
            console.print(f"{len(case.feeders)} feeders, {len(runtime.agent_ids)} agents")
            for day in range(args.days):
                t0 = time.perf_counter()
                res = proto.run_day_feeders(day, benchmarks=not args.no_benchmarks)
                results.append(res)
                n_ok = sum(r.converged for r in res.values())
                console.print(f"day {day}: {n_ok}/{len(res)} feeder(s) converged, "
                              f"protocol {next(iter(res.values())).wall_time_s:.1f} s, "
                              f"with benchmarks {time.perf_counter() - t0:.1f} s")
                _write(folder, results, boundary, one_feeder_tables)
        finally:
            runtime.shutdown()
            boundary.close()
    summary = Table(title=f"tes-day on {case.name}, last day, per feeder")
    for col in ("feeder", "iter", "converged", "LA $", "central $", "gap", "V max lin"):
        summary.add_column(col, justify="right")
    for fid, r in results[-1].items():
        vmax = r.voltages.query("stage == 'after' and model == 'lindist3flow'")["v_pu"].max()
        summary.add_row(fid, str(len(r.iterations)), str(r.converged), f"{r.solution.objective:.2f}",
                        "-" if r.centralized is None else f"{r.centralized.objective:.2f}",
                        "-" if r.centralized is None else f"{r.objective_gap:.1e}", f"{vmax:.4f}")
    console.print(summary)
    console.print(f"run folder: {folder.path}")
    return 0 if all(r.converged for res in results for r in res.values()) else 1


class _Days:
    """The shape ``tables`` of the one-feeder CLI reads: ``results`` and ``days_frame()``."""

    def __init__(self, results: list[Any]) -> None:
        self.results = results

    def days_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"day": [r.day for r in self.results]}).set_index("day")


def _write(folder: RunFolder, results: list[dict[str, Any]], boundary: Boundary, one_feeder_tables: Any) -> None:
    by_name: dict[str, list[pd.DataFrame]] = {}
    rows = []
    fids = list(results[0])
    for fid in fids:
        days = [res[fid] for res in results]
        for name, df in one_feeder_tables(_Days(days), boundary).items():
            if name not in ("messages", "days"):
                by_name.setdefault(name, []).append(df.assign(feeder=fid))
        for r in days:
            vmax = r.voltages.query("stage == 'after' and model == 'lindist3flow'")["v_pu"].max()
            rows.append({"day": r.day, "feeder": fid, "iterations": len(r.iterations), "converged": r.converged,
                         "stop_reason": r.stop_reason, "la_profit_usd": r.solution.objective,
                         "centralized_usd": None if r.centralized is None else r.centralized.objective,
                         "relative_gap": None if r.centralized is None else r.objective_gap,
                         "v_max_lindist3flow_pu": float(vmax), "protocol_s": r.wall_time_s})
    for name, dfs in by_name.items():
        folder.write_parquet(f"{name}.parquet", pd.concat(dfs, ignore_index=True))
    folder.write_parquet("feeders.parquet", pd.DataFrame(rows))
    from .plots import feeders_overview

    folder.write_png("feeders.png", feeders_overview(pd.DataFrame(rows)))
    folder.write_parquet("messages.parquet", pd.DataFrame(boundary.summary()))
