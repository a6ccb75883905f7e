"""``python run.py tso-dso-sweep``: the wind sweep of the tso-dso protocol.

The schemes at ``--levels`` wind factors in ``linspace(0.05, 1.5, levels)`` (common random
numbers), in parallel over levels, one result file per level; ``--resume`` skips finished
levels (a level is finished when its summary file ``levels/level_XX.parquet`` exists).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from ..registry import load_case
from ..runs import RunFolder
from .cli import SWEEP_NAME, _common, _config, _console, _make_runtime, run_level
from .plots import plot_sweep_caps, plot_sweep_congestion, plot_sweep_welfare
from .tables import RT_TABLES, level_tables, summary_table
from .wind import WindModel, wind_levels


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--levels", type=int, default=20, help="wind levels in linspace(0.05, 1.5, levels) (default: 20)")
    p.add_argument("--workers", type=int, default=None,
                   help="levels run at the same time (default: the number of CPUs)")
    p.add_argument("--resume", action="store_true", help="skip the levels whose result file exists in --out")


def _level_file(folder: Path, i: int) -> Path:
    return folder / "levels" / f"level_{i:02d}.parquet"


def sweep_level(case_name: str, index: int, factor: float, n_in: int, n_oos: int, seed: int, config: Any,
                runtime_kind: str, address: str | None, out: str) -> dict[str, Any]:
    """One level of the sweep (runs in a worker process or thread); writes its files, returns a summary."""
    from coordinator.boundary import Boundary

    case = load_case(case_name)
    wind = WindModel.from_case(case).scenarios(factor, n_in, n_oos, seed=seed)
    folder = RunFolder(out)
    (folder.path / "levels").mkdir(exist_ok=True)
    (folder.path / "audit").mkdir(exist_ok=True)
    # ~30 MB of JSON lines per level: gzipped as it is written, by the log's writer thread
    audit = folder.path / "audit" / f"level_{index:02d}.jsonl.gz"
    for old in (audit, audit.with_name(audit.name[:-3])):
        if old.exists():
            old.unlink()  # a level that did not finish before: start its log again
    boundary = Boundary(audit)
    t0 = time.perf_counter()
    runtime = _make_runtime(runtime_kind, boundary, address)
    try:
        level = run_level(case, wind, config, runtime)
    finally:
        runtime.shutdown()
        boundary.close()
    tabs = level_tables(level, wind, index)
    for name, df in tabs.items():
        if name != "welfare" and len(df):
            folder.write_parquet(f"levels/level_{index:02d}_{name}.parquet", df)
    # the summary last: its presence marks the level finished (--resume)
    folder.write_parquet(f"levels/level_{index:02d}.parquet", tabs["welfare"].assign(wall_s=time.perf_counter() - t0))
    return {"index": index, "factor": factor, "time_s": time.perf_counter() - t0}


class SweepRunning(OSError):
    """Another sweep holds the folder's lock (exit status 1)."""


def _lock(folder: Path) -> Any:
    """Hold ``.sweep.lock`` in the run folder for the whole sweep; refuse if another sweep holds it.

    The lock is an ``flock`` on an open file: it goes away with the last process holding the file
    (the sweep and its workers, which die with it), so a crashed sweep leaves no stale lock.
    """
    import fcntl

    fh = open(folder / ".sweep.lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        who = fh.read().strip() or "?"
        fh.close()
        raise SweepRunning(f"a sweep is still running in {folder} (pid {who}); wait for it to finish or stop it "
                           f"before --resume") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


def _die_with_parent() -> None:
    """Worker initializer: the kernel sends SIGTERM to this worker when the sweep process dies (Linux)."""
    import signal

    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: the pool is still shut down on signals by the parent
        pass
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def _stop_pool(pool: cf.Executor) -> None:
    """Cancel what has not started and end the workers now (an interrupt must not wait for levels)."""
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in list(getattr(pool, "_processes", {}).values() or []):
        proc.terminate()


def run_sweep(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = _console()
    case = load_case(args.case)
    try:
        config = _config(args)
        if args.levels < 1:
            raise ValueError("--levels must be at least 1")
        if args.workers is not None and args.workers < 1:
            raise ValueError("--workers must be at least 1")
        from coordinator.tso_dso.setup import Roles

        Roles.of(case)
        WindModel.from_case(case)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = RunFolder.create(SWEEP_NAME, args.out)
    folder.sweep_lock = _lock(folder.path)  # held until the process (and its workers) end
    levels = wind_levels(args.levels)
    todo = [i for i in range(len(levels)) if not (args.resume and _level_file(folder.path, i).exists())]
    if not args.resume or not folder.exists("manifest.json"):
        folder.write_manifest(SWEEP_NAME, args, seed=args.seed, case=case.name, config=config.__dict__,
                              levels=levels.tolist())
    workers = args.workers or os.cpu_count() or 1
    console.print(f"{len(levels)} wind levels, {len(levels) - len(todo)} already done, {len(todo)} to run on "
                  f"{min(workers, max(1, len(todo)))} worker(s) ({args.runtime} runtime)")
    t0 = time.perf_counter()
    failures: list[str] = []
    if todo:
        job = dict(case_name=args.case, n_in=args.scenarios, n_oos=args.oos, seed=args.seed, config=config,
                   runtime_kind=args.runtime, address=args.ray_address, out=str(folder.path))
        if args.runtime == "ray":
            from coordinator.runtime import init_ray

            init_ray(args.ray_address)
            pool: cf.Executor = cf.ThreadPoolExecutor(max_workers=workers)
        else:
            pool = cf.ProcessPoolExecutor(max_workers=workers, initializer=_die_with_parent)
        with pool, Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TimeElapsedColumn(), console=console) as prog:
            task = prog.add_task("wind levels", total=len(todo))
            futs = {pool.submit(sweep_level, index=i, factor=float(levels[i]), **job): i for i in todo}
            try:
                for fut in cf.as_completed(futs):
                    i = futs[fut]
                    try:
                        r = fut.result()
                        prog.console.print(f"level {i:2d} (f = {levels[i]:.3f}) done in {r['time_s']:.1f} s")
                    except Exception as exc:  # report and go on with the other levels
                        failures.append(f"level {i}: {type(exc).__name__}: {exc}")
                        prog.console.print(f"[red]level {i} failed: {exc}")
                    prog.advance(task)
            except BaseException:  # an interrupt: stop the workers instead of waiting for their levels
                _stop_pool(pool)
                raise
    wall = time.perf_counter() - t0
    done = [i for i in range(len(levels)) if _level_file(folder.path, i).exists()]
    if not done:
        console.print("no level finished")
        return 1
    welfare = pd.concat([pd.read_parquet(_level_file(folder.path, i)) for i in done], ignore_index=True)
    parts = {}
    for name in ("iterations", "scenarios", "dispatch", "relaxation", "exchanges", "congestion", "messages",
                 *RT_TABLES):
        files = [folder.path / "levels" / f"level_{i:02d}_{name}.parquet" for i in done]
        frames = [pd.read_parquet(f) for f in files if f.exists()]
        if frames:
            parts[name] = pd.concat(frames, ignore_index=True)
    folder.write_parquet("welfare.parquet", welfare)
    for name, df in parts.items():
        folder.write_parquet(f"{name}.parquet", df)
    folder.write_png("welfare_vs_penetration.png", plot_sweep_welfare(welfare, parts.get("scenarios", pd.DataFrame())))
    folder.write_png("congestion_vs_penetration.png", plot_sweep_congestion(welfare))
    if "dispatch" in parts and (parts["dispatch"]["scheme"] == "pcc").any():
        folder.write_png("caps_vs_penetration.png", plot_sweep_caps(parts["dispatch"], welfare))
    console.print(summary_table(welfare.sort_values(["scheme", "factor"]), "tso-dso-sweep"))
    console.print(f"{len(todo)} level(s) run in {wall:.1f} s; run folder: {folder.path}")
    for f in failures:
        console.print(f"[red]{f}")
    return 1 if failures or len(done) < len(levels) else 0


# the scenario-module contract of run.py (scenarios/registry.py)
add_arguments, run = add_sweep_arguments, run_sweep

__all__ = ["add_arguments", "run", "add_sweep_arguments", "run_sweep", "sweep_level"]
