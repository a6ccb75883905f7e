"""``python run.py tes-day``: the personalized-preserving Benders market on a feeder, day by day."""
from __future__ import annotations

import argparse
import json
import math
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from coordinator.boundary import Boundary
from coordinator.tes.protocol import DayResult
from coordinator.tes.setup import TESConfig, check_case
from coordinator.simulation import TESMarketModel
from coordinator.solves import summary as solves_summary
from network.errors import CaseError

from ..registry import load_case
from ..runs import RunFolder, add_runtime_arguments, atomic_write, progress_to


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--case", default="tes_feeder", help="built-in case name or case folder (default: tes_feeder)")
    add_runtime_arguments(p)
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
    p.add_argument("--network-check", choices=("linear", "ac"), default="linear",
                   help="the TES operator's check: LinDist3Flow (linear, the paper's model) or a three-phase AC "
                        "power flow in OpenDSS (ac: cuts only for real violations, losses in the LA's balance)")
    p.add_argument("--loss-tolerance", type=float, default=1e-4,
                   help="kW: with --network-check ac, the largest accepted gap between the AC losses and the "
                        "losses the load aggregator's purchases cover (default 1e-4)")
    p.add_argument("--resume", action="store_true",
                   help="go on with the multi-day run in --out from its last finished day, up to --days")


#: the options a resumed run must share with the run it continues
RESUME_KEYS = ("case", "pricing", "relaxation", "transformer_kw", "strategy", "markup", "max_iterations", "seed",
               "no_benchmarks", "network_check",
               "loss_tolerance")
CHECKPOINT = "state/checkpoint.pkl"


def _checkpoint_to_resume(args: argparse.Namespace) -> bytes | None:
    """The checkpoint of the run in ``--out`` (bad input, exit 2, if there is none or it differs)."""
    if args.out is None:
        raise CaseError("--resume needs --out: the folder of the run to go on with", file="--out")
    out = Path(args.out)
    ck, man = out / CHECKPOINT, out / "manifest.json"
    if not ck.is_file() or not man.is_file():
        raise CaseError(f"nothing to resume in {out}: no finished day ({CHECKPOINT})", file=str(out))
    old = json.loads(man.read_text(encoding="utf-8"))
    params = old.get("parameters", {})
    differ = [k for k in RESUME_KEYS if k in params and params[k] != getattr(args, k, None)]
    if differ:
        k = differ[0]
        raise CaseError(f"--resume must use the run's options: {k} was {params[k]!r}, now {getattr(args, k)!r}",
                        file="manifest.json", column=f"parameters.{k}")
    blob = ck.read_bytes()
    if int(pickle.loads(blob)["day"]) >= args.days:
        raise CaseError(f"the run in {out} has finished its {args.days} day(s) already; raise --days",
                        file="manifest.json")
    return blob


def make_runtime(kind: str, boundary: Boundary, address: str | None) -> Any:
    from coordinator.runtime import make_runtime as _make

    return _make(kind, boundary, address)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=False)
    case = load_case(args.case)
    check_case(case)  # what tes needs of the case, before any folder is made (a CaseError: exit 2)
    try:
        if args.days < 1:
            raise ValueError("--days must be at least 1")
        config = TESConfig(pricing=args.pricing, relaxation=args.relaxation, transformer_kw=args.transformer_kw,
                           strategy=args.strategy, markup=args.markup, max_iterations=args.max_iterations,
                           seed=args.seed or 0, network_check=args.network_check,
                           loss_tolerance=args.loss_tolerance)
    except CaseError:
        raise
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len(case.feeders) > 1:  # one TES operator, LA and DER managers per feeder (scenarios/tes/feeders_cli.py)
        from .feeders_cli import run as run_feeders

        return run_feeders(args, case, config)
    blob = _checkpoint_to_resume(args) if args.resume else None
    folder = RunFolder.create("tes-day", args.out)
    if blob is None:
        folder.write_manifest("tes-day", args, seed=args.seed, extra={"case": case.name})
        audit = folder.file("audit.jsonl.gz")  # gzipped by the log's writer thread
    else:
        manifest = json.loads(folder.file("manifest.json").read_text(encoding="utf-8"))
        day = int(pickle.loads(blob)["day"])
        folder.write_manifest("tes-day", args, seed=args.seed, extra={"case": case.name},
                              resumed=[*manifest.get("resumed", []), {"after_day": day - 1, "days": args.days}])
        audit = folder.file(f"audit.resume-{day:03d}.jsonl.gz")  # each segment of the run has its own log
    boundary = Boundary(audit)
    t0 = time.perf_counter()
    with console.status("starting the runtime...") as status:
        runtime = make_runtime(args.runtime, boundary, args.ray_address)
        t_start = time.perf_counter() - t0
        try:
            kw = dict(seed=args.seed or 0, benchmarks=not args.no_benchmarks, progress=progress_to(console, status))
            if blob is None:
                model = TESMarketModel(case, runtime, config, **kw)
            else:
                model = TESMarketModel.resume(blob, case, runtime, config, **kw)
                console.print(f"resuming after day {model.day - 1}: {args.days - model.day} day(s) to run")
            while model.day < args.days:
                model.step()
                res = model.results[-1]
                console.print(f"day {res.day}: {len(res.iterations)} iteration(s), "
                              f"{'converged' if res.converged else 'NOT converged'} ({res.stop_reason}), "
                              f"{res.wall_time_s:.2f} s")
                write_tables(folder, model, boundary)  # each finished day is kept, even if a later one fails
                atomic_write(folder.file(CHECKPOINT), lambda fh: fh.write(model.checkpoint()), binary=True)
        finally:
            runtime.shutdown()
            boundary.close()
    write_results(folder, model, boundary)
    console.print(summary_table(model, t_start))
    solves = [r.solves for r in model.results if r.solves is not None]
    console.print(solves_summary(pd.concat(solves) if solves else None) + " (solves.parquet)")
    console.print(f"run folder: {folder.path}")
    return 0 if all(r.converged for r in model.results) else 1


# ------------------------------------------------------------------ tables


def _hourly(day: int, d: dict[str, np.ndarray], name: str, value: str) -> pd.DataFrame:
    rows = [(day, k, t, float(v)) for k, arr in d.items() for t, v in enumerate(np.asarray(arr))]
    return pd.DataFrame(rows, columns=["day", name, "hour", value])


def tables(model: TESMarketModel, boundary: Boundary) -> dict[str, pd.DataFrame]:
    it, prices, dispatch, volt, settle, bench, gap, losses, solves = [], [], [], [], [], [], [], [], []
    for r in model.results:
        it.append(r.iterations.assign(day=r.day))
        s = r.solution
        prices.append(_hourly(r.day, s.prices, "customer", "price_usd_per_kwh"))
        d = _hourly(r.day, s.purchases, "source", "kw")
        loads = _hourly(r.day, s.loads, "source", "kw").assign(kind="load")
        dispatch.append(pd.concat([d.assign(kind="supply"), loads], ignore_index=True))
        volt.append(r.voltages.assign(day=r.day))
        if r.losses is not None:
            losses.append(r.losses.assign(day=r.day))
        settle.append(r.settlement.assign(day=r.day))
        if r.solves is not None:
            solves.append(r.solves.assign(day=r.day))
        row = {"day": r.day, "decomposed_objective": s.objective, "iterations": len(r.iterations),
               "unconstrained_objective": r.unconstrained.objective, "converged": r.converged,
               "wall_time_s": r.wall_time_s, "network_check": r.network_check, "opendss_solves": r.opendss_solves}
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
    if losses:
        out["losses"] = pd.concat(losses, ignore_index=True)
    if solves:
        out["solves"] = pd.concat(solves, ignore_index=True)
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


CHECK_NAMES = {"linear": "linear: LinDist3Flow drove the cuts", "ac": "ac: the OpenDSS AC power flow drove the cuts"}


def summary_table(model: TESMarketModel, t_start: float) -> Any:
    """Two tables: the market (profits, benchmark) and the network (the check, E*, both models' voltages)."""
    from rich.console import Group
    from rich.table import Table

    check = model.protocol.config.network_check
    t = Table(title="tes-day summary")
    for col in ("day", "iter", "LA $", "central $", "gap", "DER $", "cust. $", "s"):
        t.add_column(col, justify="right")
    n = Table(title=f"network (check {CHECK_NAMES[check]})")
    for col in ("day", "cuts", "E* Σexcess", "V max lin", "V max AC", "V min AC", "MG gap kW", "AC solves"):
        n.add_column(col, justify="right")
    for r in model.results:
        cen = r.centralized.objective if r.centralized is not None else math.nan
        der = r.settlement.query("role == 'der_manager' and item == 'profit'")["value"].sum() if len(
            r.settlement) else math.nan
        cs = r.settlement.query("role == 'customer' and item == 'surplus'")["value"].sum() if len(
            r.settlement) else math.nan
        t.add_row(str(r.day), str(len(r.iterations)), f"{r.solution.objective:.2f}", f"{cen:.2f}",
                  f"{r.objective_gap:.1e}" if r.centralized is not None else "-", f"{der:.2f}", f"{cs:.2f}",
                  f"{r.wall_time_s:.2f}")
        e = float(r.iterations["e_star"].iloc[-1])
        after = r.voltages[r.voltages.stage == "after"].groupby("model")["v_pu"]
        vmax, vmin = after.max(), after.min()
        short = (r.losses["import_opendss_kw"] - r.losses["mg_purchase_kw"]).abs().max() if r.losses is not None \
            else math.nan
        n.add_row(str(r.day), str(int(r.iterations["n_cuts"].sum())), f"{e:.1e}",
                  f"{vmax.get('lindist3flow', math.nan):.4f}", f"{vmax.get('opendss', math.nan):.4f}",
                  f"{vmin.get('opendss', math.nan):.4f}", f"{short:.2g}", str(r.opendss_solves))
    t.caption = (f"iter: Benders iterations; LA $: load aggregator profit (decomposed) vs central $: centralized "
                 f"benchmark ({'LinDist3Flow' if check == 'linear' else 'LinDist3Flow at the final AC operating point'}"
                 f"), gap relative; DER $: DER managers' profit; cust. $: customer surplus; s: protocol time (runtime "
                 f"start-up {t_start:.2f} s and benchmarks excluded)")
    n.caption = ("cuts: feasibility cuts sent; E*: final violation, the sum over hours and limits of the excess of "
                 "|V|^2 over its limit (pu^2) and of line flows and the import (pu), 0 when every limit holds; "
                 "V max lin / AC, V min AC: extreme |V| (pu) of the final schedule in LinDist3Flow and in OpenDSS; "
                 "MG gap kW: largest |OpenDSS feeder import - main-grid purchase| (the losses "
                 + ("the lossless balance leaves out" if check == "linear" else "not covered")
                 + "); AC solves: OpenDSS power flows of the operator's checks")
    return Group(t, n)


__all__ = ["add_arguments", "run", "DayResult"]
