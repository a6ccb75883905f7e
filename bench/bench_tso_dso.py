"""Benchmark of the tso-dso protocol (run by hand).

    python3 bench/bench_tso_dso.py pcc    [--factor 0.6] [--scenarios 20] [--runtimes local,ray] [--cpus 2] [--shards N]
                                          [--commands R]
    python3 bench/bench_tso_dso.py levels [--levels 20] [--only 0,3] [--scenarios 20] [--schemes pcc,cm,fc]
                                          [--inexact X] [--out table.csv]
    python3 bench/bench_tso_dso.py share  [--factor 0.6] [--scenarios 20] [--oos 0]
    python3 bench/bench_tso_dso.py sweep  [--levels 20] [--scenarios 20] [--oos 300] [--workers 2]
                                          [--runtime local|ray] [--out DIR]
    python3 bench/bench_tso_dso.py level  [--levels 20] [--only 4,10,16] [--scenarios 20] [--oos 300]
                                          [--no-settle] [--out table.csv]

``pcc``: the pcc scheme at one wind level with 20 in-sample scenarios, on the
LocalRuntime and on a RayRuntime with ``--cpus`` CPUs; reports Benders iterations
(target <= 25), wall time (target <= 10 s; runtime start-up reported separately),
solver time of the masters, of the TSO's real-time LPs and of the DSOs' SOCPs, the
number of TSO<->DSO rounds, and the accuracy of the decomposed real-time costs
against the joint SOCP on the first 5 scenarios; the breakdown of each runtime's time
(start, set-up with the shards' first answers, pcc, shutdown). Then (figure 5) the
whole ``run.py tso-dso --schemes pcc --oos 0`` command, Python's start and the exit
included, ``--commands`` times per runtime, local and ray back to back, with the load
average of the machine.

``levels``: each scheme alone at each wind level of the sweep (no out-of-sample):
iterations, Benders wall time (and with the final in-sample evaluation, and CPU
time), the masters' time and LPs, the TSO<->DSO rounds (pcc targets: <= 25
iterations and <= 10 s at every level).

``share``: one level with the schemes together (each its own DSO cuts, the default),
with ``--share-cuts``, and each scheme alone.

``level``: whole levels of the sweep as the sweep runs them (pcc, cm, fc together, then
their out-of-sample evaluations), one after the other: per scheme the in-sample and
out-of-sample expected welfare, the TSO<->DSO rounds and the times of the Benders loop,
the in-sample and the out-of-sample evaluations; the level's wall and CPU time.
``--no-settle``: every scenario re-solved in every round of an evaluation. ``--out``
writes the table (CSV), to compare two runs (e.g. before and after a change).

``sweep``: the full sweep (``--levels`` wind levels x pcc, cm, fc x ``--oos``
out-of-sample scenarios) through ``scenarios.tso_dso.run_sweep``, with
``--workers`` levels at a time; reports the wall time (target <= 10 min on 2
cores) and the per-level times.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from coordinator.boundary import Boundary  # noqa: E402
from coordinator.tso_dso.benchmarks import joint_rt, market_from_case  # noqa: E402
from coordinator.tso_dso.protocol import TSODSOProtocol  # noqa: E402
from coordinator.tso_dso.setup import TSODSOConfig  # noqa: E402
from coordinator.runtime import LocalRuntime, RayRuntime  # noqa: E402
from scenarios.registry import load_case  # noqa: E402
from scenarios.tso_dso.wind import WindModel  # noqa: E402


def bench_pcc(args: argparse.Namespace) -> None:
    case = load_case("tso24_dso5")
    ws = WindModel.from_case(case).scenarios(args.factor, args.scenarios, 0, seed=args.seed)
    cfg = TSODSOConfig(schemes=("pcc",), oos=False)
    print(f"pcc at wind factor {args.factor} ({ws.penetration('in_sample'):.3f} penetration), "
          f"{args.scenarios} scenarios, seed {args.seed}")
    rows = []
    for kind in args.runtimes.split(","):
        load0 = _load()
        t0 = time.perf_counter()
        if kind == "ray":
            rt = RayRuntime(Boundary(), num_cpus=args.cpus, shards=args.shards)
        else:
            rt = LocalRuntime(Boundary())
        t_start = time.perf_counter() - t0
        try:
            t1 = time.perf_counter()
            proto = TSODSOProtocol(rt, case, ws, cfg)
            first = {}  # one agent per shard: its pid answers once the shard has started and loaded its agents
            for aid in rt.agent_ids:
                first.setdefault(rt.shard_of(aid) if kind == "ray" else 0, aid)
            [rt.pid(a) for a in first.values()]
            t_ready = time.perf_counter() - t1
            proto.open()
            t_open = time.perf_counter() - t1
            t2 = time.perf_counter()
            res = proto.run_scheme("pcc")
            t_pcc = time.perf_counter() - t2
            dso = rt.analyst.read_many([(d, "report") for d in proto.roles.dsos])
            tso = rt.analyst.read(proto.roles.tso, "report")
        finally:
            t3 = time.perf_counter()
            rt.shutdown()
            t_shutdown = time.perf_counter() - t3
        it = res.iterations
        rows.append({
            "runtime": kind, "iterations": res.n_iterations, "gap": res.gap, "converged": res.converged,
            "benders_s": res.time_s, "with_final_eval_s": t_pcc, "setup_s": t_open, "runtime_start_s": t_start,
            "shards_ready_s": t_ready, "shutdown_s": t_shutdown,
            "master_s": float(it["master_time_s"].sum()), "rt_lp_s": tso["lp_time"], "rt_lps": tso["lp_solves"],
            "dso_socp_s": sum(r["solve_time"] for r in dso), "dso_socps": sum(r["n_solves"] for r in dso),
            "rounds": int(it["inner_rounds"].sum()), "messages": len(rt.boundary.records),
            "welfare": float(res.in_sample.welfare.mean()), "objective": res.upper,
            "end_to_end_s": t_start + t_open + t_pcc,
            "shards": getattr(rt, "n_shards", None), "load": f"{load0} -> {_load()}",
        })
        j = joint_rt(case, market_from_case(case, ws), res.x, ws.in_sample[:, :5], ws.farm_ids)
        rel = np.abs(res.in_sample.rt_cost[:5] - j["cost"]) / np.maximum(1, np.abs(j["cost"]))
        rows[-1]["joint_rel_diff"] = float(rel.max())
    for r in rows:
        print(f"\n[{r['runtime']}] iterations {r['iterations']} (target <= 25), gap {r['gap']:.2e}, "
              f"converged {r['converged']}")
        print(f"  Benders wall time {r['benders_s']:.1f} s (target <= 10 s); + final in-sample evaluation "
              f"{r['with_final_eval_s'] - r['benders_s']:.1f} s; set-up (offers) {r['setup_s']:.1f} s; "
              f"runtime start {r['runtime_start_s']:.1f} s")
        print(f"  solver time: masters {r['master_s']:.1f} s, TSO real-time LPs {r['rt_lp_s']:.1f} s "
              f"({r['rt_lps']}), DSO SOCPs {r['dso_socp_s']:.1f} s ({r['dso_socps']} batch solves, "
              f"summed over DSOs)")
        print(f"  TSO<->DSO rounds {r['rounds']}, messages {r['messages']}, expected welfare {r['welfare']:.2f} $, "
              f"decomposed vs joint SOCP (5 scenarios) {r['joint_rel_diff']:.1e}")
        print(f"  end to end (runtime start + set-up + pcc with its final evaluation) {r['end_to_end_s']:.1f} s"
              + (f" on {r['shards']} shard(s)" if r["shards"] else "") + f"; load average {r['load']}")
        print(f"  breakdown: start {r['runtime_start_s']:.1f} s, set-up {r['setup_s']:.1f} s (of which the shards' "
              f"first answers {r['shards_ready_s']:.1f} s: their processes start and import the agents' modules), "
              f"pcc {r['with_final_eval_s']:.1f} s; then shutdown {r['shutdown_s']:.1f} s")
    local = [r for r in rows if r["runtime"] == "local"]
    for r in rows:
        if local and r["runtime"] == "ray":
            print(f"\nin process: ray / local end to end = {r['end_to_end_s']:.1f} / {local[0]['end_to_end_s']:.1f} s "
                  f"= {r['end_to_end_s'] / local[0]['end_to_end_s']:.2f} (without Python's start, the imports and "
                  f"the case, which are the same for both)")
    if args.commands:
        bench_commands(args)


def _load() -> str:
    """The 1-minute load average (the machine is shared: every figure is printed with it)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def bench_commands(args: argparse.Namespace) -> None:
    """Figure 5: the whole command ``run.py tso-dso --schemes pcc --oos 0`` (Python's start, the imports, the
    case, the run, its tables and plots, the exit) on each runtime, ``--commands`` times, local and ray
    back to back."""
    import re
    import statistics
    import subprocess

    kinds = args.runtimes.split(",")
    walls: dict[str, list[float]] = {k: [] for k in kinds}
    pairs = []
    print(f"\nthe whole command, {args.commands} time(s) per runtime, back to back: python3 run.py tso-dso "
          f"--scenarios {args.scenarios} --oos 0 --schemes pcc --wind-factor {args.factor} --seed {args.seed} "
          f"--runtime ...")
    with tempfile.TemporaryDirectory(prefix="bench-fig5-") as tmp:
        for i in range(args.commands):
            got = {}
            for kind in kinds:
                cmd = [sys.executable, str(ROOT / "run.py"), "tso-dso", "--scenarios", str(args.scenarios), "--oos",
                       "0", "--schemes", "pcc", "--wind-factor", str(args.factor), "--seed", str(args.seed),
                       "--runtime", kind, "--out", str(Path(tmp) / f"{kind}-{i}")]
                load0 = _load()
                t0 = time.perf_counter()
                p = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
                wall = time.perf_counter() - t0
                total = re.search(r"total ([0-9.]+) s on the", p.stdout)
                ray_line = re.search(r"(Ray started in the background[^;\n]*)", p.stdout)
                if p.returncode != 0:
                    print(f"  {kind}: exit status {p.returncode}: {p.stderr.strip().splitlines()[-1:]}")
                    continue
                walls[kind].append(wall)
                got[kind] = wall
                made = total.group(1) if total else "?"
                print(f"  {kind:5s} {wall:5.1f} s, of which {made} s from making the runtime to the end of the plots "
                      f"(before: Python's start, the imports, the case)"
                      f"{'; ' + ray_line.group(1).rstrip(')') if ray_line else ''}; load average {load0} -> {_load()}")
            if "local" in got and "ray" in got:
                pairs.append(got["ray"] / got["local"])
                print(f"  round {i + 1}: ray / local = {pairs[-1]:.2f}")
    if pairs:
        med = {k: statistics.median(v) for k, v in walls.items() if v}
        print(f"\nfigure 5 (whole command): median local {med.get('local', float('nan')):.1f} s, ray "
              f"{med.get('ray', float('nan')):.1f} s; ray / local per round {', '.join(f'{x:.2f}' for x in pairs)}, "
              f"median {statistics.median(pairs):.2f} (target <= 1.5)")


def bench_levels(args: argparse.Namespace) -> None:
    """Iterations and wall time of each scheme at each wind level of the sweep (no out-of-sample)."""
    import pandas as pd

    from scenarios.tso_dso.wind import wind_levels

    case = load_case("tso24_dso5")
    model = WindModel.from_case(case)
    schemes = tuple(args.schemes.split(","))
    levels = wind_levels(args.levels)
    only = [int(i) for i in args.only.split(",")] if args.only else range(len(levels))
    rows = []
    for i in only:
        f = float(levels[i])
        ws = model.scenarios(f, args.scenarios, 0, seed=args.seed)
        for scheme in schemes:  # each scheme alone, as the sweep's figures do not depend on the company
            cfg = TSODSOConfig(schemes=(scheme,), oos=False, **({"inexact": args.inexact} if args.inexact else {}))
            rt = LocalRuntime(Boundary())
            try:
                t0 = time.perf_counter()
                c0 = time.process_time()
                res = TSODSOProtocol(rt, case, ws, cfg).run_scheme(scheme)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            finally:
                rt.shutdown()
            it = res.iterations
            rows.append({"level": i, "factor": round(f, 4), "scheme": scheme, "iterations": res.n_iterations,
                         "gap": res.gap, "converged": res.converged, "benders_s": round(res.time_s, 2),
                         "with_eval_s": round(wall, 2), "cpu_s": round(cpu, 2),
                         "master_s": round(float(it["master_time_s"].sum()), 2),
                         "master_lps": int(it["master_lps"].sum()), "rounds": int(it["inner_rounds"].sum()),
                         "welfare": round(float(res.in_sample.welfare.mean()), 2), "price": res.price})
            r = rows[-1]
            print(f"level {i:2d} f={f:.3f} {scheme}: {r['iterations']} iterations, gap {r['gap']:.1e}, "
                  f"Benders {r['benders_s']:.1f} s (+ evaluation: {r['with_eval_s']:.1f} s, cpu {r['cpu_s']:.1f} s), "
                  f"masters {r['master_s']:.1f} s ({r['master_lps']} LPs), {r['rounds']} rounds", flush=True)
    df = pd.DataFrame(rows)
    print()
    print(df.to_string(index=False))
    for scheme, g in df.groupby("scheme"):
        print(f"{scheme}: iterations mean {g['iterations'].mean():.1f}, max {g['iterations'].max()} "
              f"(target <= 25 for pcc); Benders wall time mean {g['benders_s'].mean():.1f} s, max "
              f"{g['benders_s'].max():.1f} s (target <= 10 s for pcc)")
    if args.out:
        df.to_csv(args.out, index=False)
        print(f"written {args.out}")


def bench_share(args: argparse.Namespace) -> None:
    """The schemes of one level run together with their own DSO cuts (the default) and with --share-cuts; and each
    scheme alone: iterations, Benders time, bounds, in-sample and out-of-sample welfare."""
    import pandas as pd

    case = load_case("tso24_dso5")
    ws = WindModel.from_case(case).scenarios(args.factor, args.scenarios, args.oos, seed=args.seed)
    schemes = ("pcc", "cm", "fc")
    rows = []
    runs = [("together", schemes, False), ("shared cuts", schemes, True)]
    runs += [("alone", (s,), False) for s in schemes]
    for label, which, share in runs:
        rt = LocalRuntime(Boundary())
        try:
            lvl = TSODSOProtocol(rt, case, ws, TSODSOConfig(schemes=which, share_cuts=share,
                                                            oos=args.oos > 0)).run_level()
        finally:
            rt.shutdown()
        for s, r in lvl.schemes.items():
            rows.append({"run": label, "scheme": s, "iterations": r.n_iterations, "benders_s": round(r.time_s, 2),
                         "upper": r.upper, "lower": r.lower, "in_sw": float(r.in_sample.welfare.mean()),
                         "oos_sw": float(r.out_of_sample.welfare.mean()) if r.out_of_sample else float("nan")})
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(df.to_string(index=False))


def bench_level(args: argparse.Namespace) -> None:
    """Whole levels (the three schemes and their out-of-sample evaluations), timed, with the welfare table."""
    import pandas as pd

    from scenarios.tso_dso.wind import wind_levels

    case = load_case("tso24_dso5")
    model = WindModel.from_case(case)
    levels = wind_levels(args.levels)
    only = [int(i) for i in args.only.split(",")] if args.only else range(len(levels))
    rows = []
    for i in only:
        f = float(levels[i])
        ws = model.scenarios(f, args.scenarios, args.oos, seed=args.seed)
        cfg = TSODSOConfig(**({"settle": False} if args.no_settle else {}))
        rt = LocalRuntime(Boundary())
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            lvl = TSODSOProtocol(rt, case, ws, cfg).run_level()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        finally:
            rt.shutdown()
        for s, r in lvl.schemes.items():
            oos = r.out_of_sample
            rows.append({"level": i, "factor": round(f, 4), "scheme": s, "iterations": r.n_iterations,
                         "in_sw": float(r.in_sample.welfare.mean()),
                         "oos_sw": float(oos.welfare.mean()) if oos is not None else float("nan"),
                         "benders_s": round(r.time_s, 2), "in_eval_s": round(r.in_sample.time_s, 2),
                         "oos_eval_s": round(oos.time_s, 2) if oos is not None else float("nan"),
                         "oos_rounds": oos.rounds if oos is not None else 0,
                         "level_wall_s": round(wall, 1), "level_cpu_s": round(cpu, 1)})
            r_ = rows[-1]
            print(f"level {i:2d} f={f:.3f} {s}: in-sample welfare {r_['in_sw']:.4f}, out-of-sample {r_['oos_sw']:.4f}"
                  f" ({r_['oos_rounds']} rounds); Benders {r_['benders_s']:.1f} s, in-sample evaluation "
                  f"{r_['in_eval_s']:.1f} s, out-of-sample {r_['oos_eval_s']:.1f} s", flush=True)
        print(f"level {i:2d}: wall {wall:.1f} s, cpu {cpu:.1f} s", flush=True)
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print()
    print(df.to_string(index=False))
    if args.out:
        df.to_csv(args.out, index=False)
        print(f"written {args.out}")


def bench_sweep(args: argparse.Namespace) -> None:
    from scenarios.tso_dso.sweep import run_sweep

    out = args.out or tempfile.mkdtemp(prefix="bench-tso-dso-sweep-")
    ns = argparse.Namespace(case="tso24_dso5", scenarios=args.scenarios, oos=args.oos, schemes="pcc,cm,fc",
                            runtime=args.runtime, ray_address=None, gap=5e-5, max_iterations=100, share_cuts=False,
                            levels=args.levels, workers=args.workers, resume=args.resume, out=Path(out),
                            seed=args.seed)
    t0 = time.perf_counter()
    status = run_sweep(ns)
    wall = time.perf_counter() - t0
    import pandas as pd

    w = pd.read_parquet(Path(out) / "welfare.parquet")
    per_level = w.groupby("level")["wall_s"].first()
    print(f"\nsweep: {args.levels} levels x 3 schemes x {args.oos} out-of-sample scenarios on {args.workers} "
          f"worker(s), {args.runtime} runtime: wall time {wall:.0f} s = {wall / 60:.1f} min (target <= 10 min); "
          f"status {status}")
    print(f"  per level: mean {per_level.mean():.0f} s, max {per_level.max():.0f} s; iterations: "
          + ", ".join(f"{s} {g['iterations'].mean():.1f} (max {g['iterations'].max()})"
                      for s, g in w.groupby("scheme")))
    print(f"  run folder: {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("pcc")
    a.add_argument("--factor", type=float, default=0.6)
    a.add_argument("--scenarios", type=int, default=20)
    a.add_argument("--runtimes", default="local,ray")
    a.add_argument("--cpus", type=int, default=2)
    a.add_argument("--shards", type=int, default=None, help="ray: shard actors (default: one per CPU)")
    a.add_argument("--commands", type=int, default=1, metavar="R",
                   help="also time the whole run.py tso-dso command R times per runtime, back to back (figure 5; "
                        "0: not)")
    a.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("levels")
    c.add_argument("--levels", type=int, default=20)
    c.add_argument("--only", default="", help="comma-separated level indices (default: all)")
    c.add_argument("--scenarios", type=int, default=20)
    c.add_argument("--schemes", default="pcc")
    c.add_argument("--inexact", type=float, default=None)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", default=None, help="CSV file for the table")
    d = sub.add_parser("share")
    d.add_argument("--factor", type=float, default=0.6)
    d.add_argument("--scenarios", type=int, default=20)
    d.add_argument("--oos", type=int, default=0)
    d.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("level")
    e.add_argument("--levels", type=int, default=20)
    e.add_argument("--only", default="", help="comma-separated level indices (default: all)")
    e.add_argument("--scenarios", type=int, default=20)
    e.add_argument("--oos", type=int, default=300)
    e.add_argument("--no-settle", action="store_true", help="re-solve every scenario in every evaluation round")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", default=None, help="CSV file for the table")
    b = sub.add_parser("sweep")
    b.add_argument("--levels", type=int, default=20)
    b.add_argument("--scenarios", type=int, default=20)
    b.add_argument("--oos", type=int, default=300)
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--runtime", choices=("local", "ray"), default="local")
    b.add_argument("--out", default=None)
    b.add_argument("--resume", action="store_true")
    b.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    {"pcc": bench_pcc, "levels": bench_levels, "share": bench_share, "level": bench_level,
     "sweep": bench_sweep}[args.what](args)


if __name__ == "__main__":
    main()
