"""``python run.py tso-dso`` and ``python run.py tso-dso-sweep``: TSO-DSO coordination under wind uncertainty.

``tso-dso`` runs the schemes (pcc, cm, fc) at one wind level: in-sample Benders on
``--scenarios`` wind scenarios, then the out-of-sample evaluation of each scheme's
day-ahead decision on ``--oos`` scenarios. ``tso-dso-sweep`` does that at ``--levels``
wind factors in ``linspace(0.05, 1.5, levels)`` (common random numbers), in parallel
over levels, one result file per level (``--resume`` skips finished levels).

Run folder: ``manifest.json``, Parquet tables (iterations, welfare, scenarios,
dispatch, relaxation, exchanges, messages), the audit log(s) and PNG plots (Benders
bounds per iteration, DSO caps against P max; for the sweep: expected welfare and
congestion against wind penetration).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..registry import load_case
from ..runs import RunFolder
from .wind import WindModel, WindScenarios, wind_levels

SCHEMES = ("pcc", "cm", "fc")
NAME, SWEEP_NAME = "tso-dso", "tso-dso-sweep"


# ------------------------------------------------------------------ arguments


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--case", default="tso24_dso5", help="built-in case name or case folder (default: tso24_dso5)")
    p.add_argument("--scenarios", type=int, default=20, help="in-sample wind scenarios (default: 20)")
    p.add_argument("--oos", type=int, default=300, help="out-of-sample wind scenarios (default: 300; 0: none)")
    p.add_argument("--schemes", default="pcc,cm,fc", help="comma-separated schemes among pcc, cm, fc")
    p.add_argument("--runtime", choices=("local", "ray"), default="local",
                   help="run agents in-process (local) or as Ray actors (ray)")
    p.add_argument("--ray-address", default=None,
                   help="join a Ray cluster (auto or HOST:PORT; default: $RAY_ADDRESS or a new local instance)")
    p.add_argument("--gap", type=float, default=1e-3, help="Benders relative gap tolerance (default: 1e-3)")
    p.add_argument("--max-iterations", type=int, default=100, help="Benders iteration limit (default: 100)")
    p.add_argument("--share-cuts", action="store_true",
                   help="the real-time cost cuts found by one scheme seed the next schemes' masters")


def add_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--wind-factor", type=float, default=0.6,
                   help="wind factor f: expected wind = f x total demand P max (default: 0.6)")
    p.add_argument("--benchmark", action="store_true",
                   help="also check each scheme's real-time costs against the joint SOCP (first 5 in-sample "
                        "scenarios) and solve fc's extensive form")


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--levels", type=int, default=20, help="wind levels in linspace(0.05, 1.5, levels) (default: 20)")
    p.add_argument("--workers", type=int, default=None,
                   help="levels run at the same time (default: the number of CPUs)")
    p.add_argument("--resume", action="store_true", help="skip the levels whose result file exists in --out")


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


def make_runtime(kind: str, boundary: Any, address: str | None) -> Any:
    from coordinator.runtime import LocalRuntime, RayRuntime

    if kind == "ray":
        return RayRuntime(boundary, address=address)
    return LocalRuntime(boundary)


# ------------------------------------------------------------------ one level


def run_level(case: Any, wind: WindScenarios, config: Any, runtime: Any,
              progress: Callable[[str], None] | None = None) -> Any:
    """All schemes at one wind level on ``runtime`` (its boundary logs the messages)."""
    from coordinator.tso_dso.protocol import TSODSOProtocol

    proto = TSODSOProtocol(runtime, case, wind, config, progress=progress)
    return proto.run_level()


def level_tables(level: Any, wind: WindScenarios, level_index: int = 0) -> dict[str, pd.DataFrame]:
    """The Parquet tables of one level."""
    tag = {"level": level_index, "factor": level.factor}
    summ = level.summary().assign(level=level_index)
    iters, scen, disp, relax, exch = [], [], [], [], []
    for s, r in level.schemes.items():
        iters.append(r.iterations.assign(scheme=s, **tag))
        mk = r.market
        disp.append(pd.DataFrame({"resource": mk.ids, "kind": mk.kind, "area": mk.area, "capped": mk.capped,
                                  "price_da_offer": mk.price, "p_max": mk.qty, "da_quantity": r.x,
                                  "cap": np.where(mk.capped, r.caps, np.nan), "da_price": r.price}).assign(
            scheme=s, **tag))
        for ev in (r.in_sample, r.out_of_sample):
            if ev is None:
                continue
            wmat = wind.in_sample if ev.scenario_set == "in_sample" else wind.out_of_sample
            scen.append(pd.DataFrame({"scenario": np.arange(ev.rt_cost.size), "rt_cost": ev.rt_cost,
                                      "lower": ev.lower, "welfare": ev.welfare,
                                      "wind_total": np.asarray(wmat).sum(axis=0),
                                      "congested_lines": ev.congestion["per_scenario"]}).assign(
                scheme=s, set=ev.scenario_set, da_welfare=ev.da_welfare, **tag))
            relax.append(ev.relaxation_gap.merge(ev.diagnostics, on=["feeder", "scenario"]).assign(
                scheme=s, set=ev.scenario_set, **tag))
            E, S = ev.pcc.shape
            exch.append(pd.DataFrame({"area": np.repeat(np.arange(1, E + 1), S), "scenario": np.tile(np.arange(S), E),
                                      "p_pcc": ev.pcc.reshape(-1)}).assign(scheme=s, set=ev.scenario_set, **tag))
    return {"welfare": summ, "iterations": pd.concat(iters, ignore_index=True),
            "scenarios": pd.concat(scen, ignore_index=True) if scen else pd.DataFrame(),
            "dispatch": pd.concat(disp, ignore_index=True), "relaxation": pd.concat(relax, ignore_index=True),
            "exchanges": pd.concat(exch, ignore_index=True) if exch else pd.DataFrame(),
            "messages": pd.DataFrame(level.messages).assign(**tag)}


# ------------------------------------------------------------------ tables and plots


def summary_table(df: pd.DataFrame, title: str) -> Any:
    from rich.table import Table

    t = Table(title=title)
    cols = [("scheme", "scheme"), ("f", "factor"), ("DA W", "da_welfare"), ("E[RT]", None), ("E[SW]", None),
            ("std", None), ("q10", None), ("q20", None), ("q30", None), ("q70", None), ("q80", None), ("q90", None),
            ("iter", "iterations"), ("gap", "gap"), ("s", "time_s")]
    for name, _ in cols:
        t.add_column(name, justify="right")
    for _, r in df.iterrows():
        pre = "oos_" if "oos_sw_expected" in r and not pd.isna(r.get("oos_sw_expected")) else "in_"
        f = lambda v, fmt="{:,.0f}": "-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)  # noqa: E731
        t.add_row(str(r["scheme"]), f"{r['factor']:.3g}", f(r["da_welfare"]), f(r[f"{pre}expected_rt_cost"]),
                  f(r[f"{pre}sw_expected"]), f(r[f"{pre}sw_std"]),
                  *[f(r[f"{pre}sw_q{q}"]) for q in ("10", "20", "30", "70", "80", "90")],
                  str(int(r["iterations"])), f(r["gap"], "{:.1e}"), f(r["time_s"], "{:.1f}"))
    t.caption = ("$ per market day. DA W: day-ahead welfare; E[RT]: expected real-time cost; E[SW] = DA W - E[RT], "
                 "its standard deviation and quantiles, out of sample when --oos > 0 (else in sample); iter, gap: "
                 "Benders iterations and final relative gap; s: Benders wall time")
    return t


def plot_bounds(iterations: pd.DataFrame) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    schemes = list(dict.fromkeys(iterations["scheme"]))
    fig, axes = plt.subplots(1, len(schemes), figsize=(5 * len(schemes), 3.8), squeeze=False)
    for ax, s in zip(axes[0], schemes):
        d = iterations[iterations["scheme"] == s]
        it = np.arange(1, len(d) + 1)
        ax.plot(it, d["lower"], "o-", ms=3, label="lower bound (master)")
        ax.plot(it, d["upper"], "s-", ms=3, label="upper bound (iterate)")
        ax.plot(it, d["best_upper"], "--", label="best upper bound")
        lo = float(np.nanmin(d["best_upper"]))
        span = max(abs(lo) * 0.2, 1.0)
        ax.set_ylim(lo - 2 * span, lo + span)
        ax.set_title(f"{s}: {len(d)} iterations, gap {d['gap'].iloc[-1]:.1e}")
        ax.set_xlabel("Benders iteration")
        ax.set_ylabel("-SW_DA + E[RT cost] ($)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_caps(dispatch: pd.DataFrame) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = dispatch[(dispatch["scheme"] == "pcc") & dispatch["capped"]]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    if len(d):
        xs = np.arange(len(d))
        ax.bar(xs, d["p_max"], color="0.85", label="P max")
        ax.bar(xs, d["cap"], width=0.5, color="tab:blue", label="pcc cap")
        ax.plot(xs, d["da_quantity"], "k_", ms=12, mew=2, label="day-ahead quantity")
        ax.set_xticks(xs, [f"{r}\n(a{a})" for r, a in zip(d["resource"], d["area"])], fontsize=7)
    ax.set_ylabel("MW")
    ax.set_title("DSO pre-qualification caps against P max (pcc)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_sweep_welfare(welfare: pd.DataFrame, scenarios: pd.DataFrame) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    oos = scenarios[scenarios["set"] == "out_of_sample"] if len(scenarios) else scenarios
    which = "out_of_sample" if len(oos) else "in_sample"
    sc = scenarios[scenarios["set"] == which]
    for s in dict.fromkeys(welfare["scheme"]):
        w = welfare[welfare["scheme"] == s].sort_values("factor")
        pen = w["penetration_oos"] if which == "out_of_sample" else w["penetration_in"]
        q = sc[sc["scheme"] == s].groupby("factor")["welfare"]
        lo, hi, mean = q.quantile(0.2), q.quantile(0.8), q.mean()
        ax.plot(pen, mean.reindex(w["factor"]).to_numpy(), "o-", ms=3, label=s)
        ax.fill_between(pen, lo.reindex(w["factor"]).to_numpy(), hi.reindex(w["factor"]).to_numpy(), alpha=0.2)
    ax.set_xlabel("wind penetration (mean of sum W / sum P max demand)")
    ax.set_ylabel(f"expected social welfare ($), {which.replace('_', '-')}")
    ax.set_title("Expected welfare against wind penetration (band: 0.2-0.8 quantiles)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_sweep_congestion(welfare: pd.DataFrame) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for s in dict.fromkeys(welfare["scheme"]):
        w = welfare[welfare["scheme"] == s].sort_values("factor")
        pen = w["penetration_oos"] if "oos_congestion_count" in w and w["oos_congestion_count"].notna().any() \
            else w["penetration_in"]
        if "oos_congestion_count" in w:
            axes[0].plot(pen, w["oos_congestion_count"], "o-", ms=3, label=s)
            axes[1].plot(pen, w["oos_congestion_p2"], "o-", ms=3, label=s)
    axes[0].set_ylabel("expected number of congested TSO lines")
    axes[1].set_ylabel("P(at least two TSO lines congested)")
    for ax in axes:
        ax.set_xlabel("wind penetration")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Real-time congestion (out of sample; a line within 10.5 MW of its rating)")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ tso-dso


def run(args: argparse.Namespace) -> int:
    from coordinator.boundary import Boundary

    console = _console()
    case = load_case(args.case)
    try:
        config = _config(args)
        if not (math.isfinite(args.wind_factor) and args.wind_factor >= 0):
            raise ValueError("--wind-factor must be a number >= 0")
        model = WindModel.from_case(case)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    wind = model.scenarios(args.wind_factor, args.scenarios, args.oos, seed=args.seed)
    folder = RunFolder.create(NAME, args.out)
    folder.write_manifest(NAME, args, seed=args.seed, case=case.name, config=config.__dict__)
    boundary = Boundary(folder.file("audit.jsonl"))
    t0 = time.perf_counter()
    with console.status("starting the runtime...") as status:
        runtime = make_runtime(args.runtime, boundary, args.ray_address)
        try:
            level = run_level(case, wind, config, runtime, progress=lambda s: status.update(s))
        finally:
            runtime.shutdown()
            boundary.close()
    tabs = level_tables(level, wind)
    tabs["wind"] = _wind_table(wind)
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
    console.print(f"total {time.perf_counter() - t0:.1f} s on the {args.runtime} runtime; run folder: {folder.path}")
    return 0 if all(r.converged for r in level.schemes.values()) else 1


def _wind_table(wind: WindScenarios) -> pd.DataFrame:
    rows = []
    for which, mat in (("in_sample", wind.in_sample), ("out_of_sample", wind.out_of_sample)):
        mat = np.asarray(mat)
        for i, f in enumerate(wind.farm_ids):
            for s in range(mat.shape[1]):
                rows.append((which, f, s, float(mat[i, s])))
    return pd.DataFrame(rows, columns=["set", "farm", "scenario", "mw"]).assign(factor=wind.factor)


def benchmarks(case: Any, wind: WindScenarios, level: Any, n: int = 5) -> pd.DataFrame:
    """Joint-SOCP check of the decomposed real-time costs, and fc's extensive form."""
    from coordinator.tso_dso.benchmarks import extensive_form, joint_rt, market_from_case

    rows = []
    market = market_from_case(case, wind)
    k = min(n, wind.n_in)
    for s, r in level.schemes.items():
        j = joint_rt(case, market, r.x, np.asarray(wind.in_sample)[:, :k], wind.farm_ids)
        dec = r.in_sample.rt_cost[:k]
        rel = np.abs(dec - j["cost"]) / np.maximum(1.0, np.abs(j["cost"]))
        rows.append({"check": f"{s}: decomposed vs joint real-time SOCP ({k} scenarios)", "value": float(rel.max()),
                     "unit": "max relative difference"})
    if "fc" in level.schemes:
        ext = extensive_form(case, wind, "fc")
        r = level.schemes["fc"]
        rows.append({"check": "fc: extensive form objective", "value": ext["objective"], "unit": "$"})
        rows.append({"check": "fc: decomposed bounds vs extensive form",
                     "value": max(abs(r.lower - ext["objective"]), abs(r.upper - ext["objective"])) /
                     abs(ext["objective"]), "unit": "max relative difference"})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ tso-dso-sweep


def _level_file(folder: Path, i: int) -> Path:
    return folder / "levels" / f"level_{i:02d}.parquet"


def _gzip(path: Path) -> Path:
    import gzip
    import shutil

    out = path.with_name(path.name + ".gz")
    tmp = out.with_name("." + out.name + ".tmp")
    with open(path, "rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst)
    os.replace(tmp, out)
    path.unlink()
    return out


def sweep_level(case_name: str, index: int, factor: float, n_in: int, n_oos: int, seed: int, config: Any,
                runtime_kind: str, address: str | None, out: str) -> dict[str, Any]:
    """One level of the sweep (runs in a worker process or thread); writes its files, returns a summary."""
    from coordinator.boundary import Boundary

    case = load_case(case_name)
    wind = WindModel.from_case(case).scenarios(factor, n_in, n_oos, seed=seed)
    folder = RunFolder(out)
    (folder.path / "levels").mkdir(exist_ok=True)
    (folder.path / "audit").mkdir(exist_ok=True)
    audit = folder.path / "audit" / f"level_{index:02d}.jsonl"
    for old in (audit, audit.with_name(audit.name + ".gz")):
        if old.exists():
            old.unlink()  # a level that did not finish before: start its log again
    boundary = Boundary(audit)
    t0 = time.perf_counter()
    runtime = make_runtime(runtime_kind, boundary, address)
    try:
        level = run_level(case, wind, config, runtime)
    finally:
        runtime.shutdown()
        boundary.close()
    _gzip(audit)  # ~30 MB of JSON lines per level: kept compressed (audit/level_XX.jsonl.gz)
    tabs = level_tables(level, wind, index)
    for name, df in tabs.items():
        if name != "welfare" and len(df):
            folder.write_parquet(f"levels/level_{index:02d}_{name}.parquet", df)
    # the summary last: its presence marks the level finished (--resume)
    folder.write_parquet(f"levels/level_{index:02d}.parquet", tabs["welfare"].assign(wall_s=time.perf_counter() - t0))
    return {"index": index, "factor": factor, "time_s": time.perf_counter() - t0}


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
        WindModel.from_case(case)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = RunFolder.create(SWEEP_NAME, args.out)
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
            pool = cf.ProcessPoolExecutor(max_workers=workers)
        with pool, Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TimeElapsedColumn(), console=console) as prog:
            task = prog.add_task("wind levels", total=len(todo))
            futs = {pool.submit(sweep_level, index=i, factor=float(levels[i]), **job): i for i in todo}
            for fut in cf.as_completed(futs):
                i = futs[fut]
                try:
                    r = fut.result()
                    prog.console.print(f"level {i:2d} (f = {levels[i]:.3f}) done in {r['time_s']:.1f} s")
                except Exception as exc:  # report and go on with the other levels
                    failures.append(f"level {i}: {type(exc).__name__}: {exc}")
                    prog.console.print(f"[red]level {i} failed: {exc}")
                prog.advance(task)
    wall = time.perf_counter() - t0
    done = [i for i in range(len(levels)) if _level_file(folder.path, i).exists()]
    if not done:
        console.print("no level finished")
        return 1
    welfare = pd.concat([pd.read_parquet(_level_file(folder.path, i)) for i in done], ignore_index=True)
    parts = {}
    for name in ("iterations", "scenarios", "dispatch", "relaxation", "exchanges", "messages"):
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


def plot_sweep_caps(dispatch: pd.DataFrame, welfare: pd.DataFrame) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = dispatch[(dispatch["scheme"] == "pcc") & dispatch["capped"]]
    pen = welfare[welfare["scheme"] == "pcc"].set_index("factor")["penetration_in"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for a, g in d.groupby("area"):
        frac = g.groupby("factor").apply(lambda t: t["cap"].sum() / t["p_max"].sum(), include_groups=False)
        ax.plot(pen.reindex(frac.index).to_numpy(), frac.to_numpy(), "o-", ms=3, label=f"area {a}")
    ax.set_xlabel("wind penetration (in sample)")
    ax.set_ylabel("sum of caps / sum of P max")
    ax.set_title("pcc: DSO caps against P max")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


__all__ = ["add_arguments", "run", "add_sweep_arguments", "run_sweep", "run_level", "level_tables",
           "sweep_level", "benchmarks"]
