"""Scaling benchmark (issue 9; run by hand, prints the figures).

    python3 bench/bench_scale.py round    [--feeders 100] [--scenarios 100] [--nodes 1,2] [--shards N]
    python3 bench/bench_scale.py overhead [--feeders 20] [--scenarios 20] [--scheme pcc] [--runtime local|ray]
    python3 bench/bench_scale.py pcc118   [--feeders 100] [--scenarios 100] [--gap 1e-3] [--runtime local|ray]
    python3 bench/bench_scale.py coldstart [--agents 1000] [--shards N]

``round`` (figure 1): one real-time round (the TSO's re-dispatch, then every DSO's SOCPs over
every scenario, then the cuts back) of a ``make-case`` tso-dso case with ``--feeders`` feeders
on case118 and ``--scenarios`` in-sample scenarios, after the day-ahead offers, the DSOs' lower
bounds and one master. For each node count a loopback ``ray.cluster_utils.Cluster`` of that many
nodes with 1 CPU each is built (the stand-in for 1 -> 2 machines) and the round is run in a
subprocess that joins it (``--runtime ray --ray-address``); prints the round's wall time, the
speed-up and the parallel efficiency (target >= 70 % from 1 to 2 nodes).

``overhead`` (figure 3): one tso-dso level on a ``--feeders`` feeder case; the share of the wall
time that is not solver time (target <= 20 %), from the run's solver ledger (``solves.parquet``:
``wall_s`` is the time in the solve calls, cvxpy's canonicalisation included, ``solver_s`` the
solvers' own time).

``pcc118`` (figure 4): pcc on case118 with ``--feeders`` feeders and ``--scenarios`` scenarios to a
relative gap of ``--gap``: iterations, wall time (target <= 30 min on 2 cores), peak memory of the
driver (the run's own process; with ``--runtime ray`` the shards' peak is read from their
processes).

``coldstart`` (figure 2): start the ``--agents`` agents of a generated tes case (copies of
``tes_competition``) in shards on a local Ray instance and deliver the day's first messages; wall time
of Ray's start, the agents' start in their shards and the first delivery (target <= 30 s).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def make_case(feeders: int, out: Path, seed: int = 0) -> Path:
    """A tso-dso case on case118 with ``feeders`` feeders (``run.py make-case``)."""
    if not (out / "case.json").exists():
        p = subprocess.run([sys.executable, str(ROOT / "run.py"), "make-case", "--protocol", "tso-dso",
                            "--feeders", str(feeders), "--seed", str(seed), "--out", str(out)],
                           capture_output=True, text=True)
        if p.returncode:
            raise SystemExit(f"make-case failed: {p.stderr.strip() or p.stdout.strip()}")
    return out


def _runtime(kind: str, boundary, address: str | None, shards: int | None):
    from coordinator.runtime import make_runtime

    kw = {}
    if kind == "ray":
        if shards:
            kw["shards"] = shards
    return make_runtime(kind, boundary, address, **kw)


# ------------------------------------------------------------------ figure 1: one real-time round
def one_round(case_dir: Path, scenarios: int, kind: str, address: str | None, shards: int | None) -> dict:
    """Set up, one master, then time the real-time rounds of iteration 1 (in this process)."""
    from coordinator.boundary import Boundary
    from coordinator.messages import Action, RealTimeBounds
    from coordinator.solves import SolverTally
    from coordinator.tso_dso.protocol import IN_SAMPLE, TSODSOProtocol
    from coordinator.tso_dso.setup import TSODSOConfig
    from scenarios.registry import load_case
    from scenarios.tso_dso.wind import WindModel

    case = load_case(str(case_dir))
    wind = WindModel.from_case(case).scenarios(0.6, scenarios, 0, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        boundary = Boundary(Path(tmp) / "audit.jsonl")
        t0 = time.perf_counter()
        rt = _runtime(kind, boundary, address, shards)
        proto = TSODSOProtocol(rt, case, wind, TSODSOConfig(schemes=("cm",), oos=False))
        t_start = time.perf_counter() - t0
        try:
            t1 = time.perf_counter()
            proto.open()
            proto._context("cm", IN_SAMPLE)
            proto._command([proto.roles.tso], Action.MASTER, scheme="cm", sset=IN_SAMPLE, iteration=1)
            t_setup = time.perf_counter() - t1
            rounds = []
            tally = SolverTally(rt)
            for _ in range(2):  # round 1 carries the DSOs' warm-up; round 2 is a plain round
                t2 = time.perf_counter()
                proto._report(proto._command([proto.roles.tso], Action.REAL_TIME_ROUND, scheme="cm",
                                             sset=IN_SAMPLE, iteration=1), RealTimeBounds)
                rounds.append(time.perf_counter() - t2)
            solves = tally.frame()
        finally:
            rt.shutdown()
            boundary.close()
    return {"start_s": t_start, "setup_s": t_setup, "round1_s": rounds[0], "round2_s": rounds[1],
            "solve_wall_s": float(solves["wall_s"].sum()), "solver_s": float(solves["solver_s"].sum()),
            "solves": int(solves["count"].sum())}


def bench_round(args: argparse.Namespace) -> None:
    import secrets

    # token authentication on, as on a real cluster: set before Ray is imported (it reads its config then);
    # the nodes and the driver (a subprocess) inherit it
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)})
    os.environ.pop("RAY_ADDRESS", None)
    from ray.cluster_utils import Cluster

    case_dir = make_case(args.feeders, Path(args.work) / f"case{args.feeders}")
    print(f"one real-time round: {args.feeders} feeders x {args.scenarios} scenarios (case118), "
          f"loopback cluster nodes of 1 CPU each")
    rows = []
    for n in [int(x) for x in args.nodes.split(",")]:
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        try:
            for _ in range(n - 1):
                cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            cmd = [sys.executable, __file__, "_round", "--case", str(case_dir), "--scenarios", str(args.scenarios),
                   "--runtime", "ray", "--ray-address", cluster.address]
            if args.shards:
                cmd += ["--shards", str(args.shards)]
            p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
            if p.returncode:
                print(f"{n} node(s): failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
                continue
            r = json.loads(p.stdout.strip().splitlines()[-1])
            rows.append((n, r))
            print(f"{n} node(s): round 2 {r['round2_s']:.2f} s (round 1 with the DSO warm-up "
                  f"{r['round1_s']:.2f} s), runtime start {r['start_s']:.1f} s, set-up {r['setup_s']:.1f} s, "
                  f"{r['solves']} solves, {r['solve_wall_s']:.1f} s in solve calls summed over agents")
        finally:
            cluster.shutdown()
    if len(rows) >= 2:
        (n1, a), (n2, b) = rows[0], rows[-1]
        speedup = a["round2_s"] / b["round2_s"]
        print(f"speed-up {n1} -> {n2} nodes: {speedup:.2f}, parallel efficiency {speedup / (n2 / n1):.0%} "
              f"(target >= 70 %)")


def _round_child(args: argparse.Namespace) -> None:
    r = one_round(Path(args.case), args.scenarios, args.runtime, args.ray_address, args.shards)
    print(json.dumps(r))


# ------------------------------------------------------------------ figure 3 and 4: a whole level
def run_level_cli(case_dir: Path, out: Path, scenarios: int, scheme: str, gap: float | None,
                  runtime: str, extra: list[str]) -> tuple[float, int]:
    cmd = [sys.executable, str(ROOT / "run.py"), "tso-dso", "--case", str(case_dir), "--scenarios", str(scenarios),
           "--oos", "0", "--schemes", scheme, "--runtime", runtime, "--out", str(out), *extra]
    if gap is not None:
        cmd += ["--gap", str(gap)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode not in (0, 1):
        raise SystemExit(f"tso-dso failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
    return wall, p.returncode


def bench_overhead(args: argparse.Namespace) -> None:
    import pandas as pd

    case_dir = make_case(args.feeders, Path(args.work) / f"case{args.feeders}")
    out = Path(args.work) / f"overhead{args.feeders}-{args.runtime}"
    wall, rc = run_level_cli(case_dir, out, args.scenarios, args.scheme, None, args.runtime, [])
    w = pd.read_parquet(out / "welfare.parquet")
    sv = pd.read_parquet(out / "solves.parquet")
    benders = float(w["time_s"].sum())
    solve_wall, solver = float(sv["wall_s"].sum()), float(sv["solver_s"].sum())
    print(f"{args.scheme} level, {args.feeders} feeders x {args.scenarios} scenarios on {args.runtime}: "
          f"{int(w['iterations'].iloc[0])} iterations, Benders {benders:.1f} s, whole command {wall:.1f} s")
    print(f"time in solve calls {solve_wall:.1f} s (of which the solvers' own {solver:.1f} s, cvxpy "
          f"{solve_wall - solver:.1f} s), {int(sv['count'].sum())} solves")
    if args.runtime == "local":  # serial: the shares add up
        # the whole command: start-up, case, offers, Benders, the in-sample evaluation, tables and plots
        print(f"share of the whole command's wall time that is not in solve calls: {1 - solve_wall / wall:.1%} "
              f"(target <= 20 %); not in the solvers themselves: {1 - solver / wall:.1%}")
    else:
        print("(on Ray the agents solve in parallel: the solve times add up over processes, compare with "
              "--runtime local for the share)")


def bench_pcc118(args: argparse.Namespace) -> None:
    import pandas as pd

    case_dir = make_case(args.feeders, Path(args.work) / f"case{args.feeders}")
    out = Path(args.work) / f"pcc118-{args.feeders}x{args.scenarios}"
    wall, rc = run_level_cli(case_dir, out, args.scenarios, "pcc", args.gap, args.runtime,
                             ["--max-iterations", str(args.max_iterations)])
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the run's process (KiB on Linux)
    w = pd.read_parquet(out / "welfare.parquet")
    it = pd.read_parquet(out / "iterations.parquet")
    print(f"pcc on case118 + {args.feeders} feeders, {args.scenarios} scenarios, gap {args.gap:g}: "
          f"{int(w['iterations'].iloc[0])} iterations, converged {bool(w['converged'].iloc[0])}, final gap "
          f"{float(w['gap'].iloc[0]):.2e}; Benders {float(w['time_s'].iloc[0]) / 60:.1f} min, whole command "
          f"{wall / 60:.1f} min (target <= 30 min); peak memory of the driver {peak_mb:.0f} MB")
    print(f"per iteration (s): master {it['master_time_s'].mean():.1f}, real-time master "
          f"{it['rt_master_time_s'].mean():.1f}, whole iteration {it['iteration_time_s'].mean():.1f}")


# ------------------------------------------------------------------ figure 2: cold start
def make_tes_case(feeders: int, out: Path, seed: int = 0) -> Path:
    """A tes case of ``feeders`` copies of ``tes_competition`` (5 agents each) and one main grid."""
    if not (out / "case.json").exists():
        p = subprocess.run([sys.executable, str(ROOT / "run.py"), "make-case", "--protocol", "tes", "--feeders",
                            str(feeders), "--feeder", "tes_competition", "--seed", str(seed), "--out", str(out)],
                           capture_output=True, text=True)
        if p.returncode:
            raise SystemExit(f"make-case failed: {p.stderr.strip() or p.stdout.strip()}")
    return out


def bench_coldstart(args: argparse.Namespace) -> None:
    """Start the agents of a tes case with ``--agents`` agents (copies of tes_competition: a TES operator, a
    load aggregator and 3 DER managers per feeder, one main grid) on a local Ray instance in shards, and
    deliver the day's first messages (the main grid's LMP to every DER manager, their offers)."""
    from coordinator.boundary import Boundary
    from coordinator.boundary import COORDINATOR
    from coordinator.messages import Action, Command, Offer
    from coordinator.runtime import RayRuntime
    from coordinator.tes.policy import TES_POLICY
    from coordinator.tes.schema import dims
    from coordinator.tes.setup import TESConfig, make_hosts, prepare_case
    from scenarios.registry import load_case

    feeders = max(1, (args.agents - 1) // 5)
    case_dir = make_tes_case(feeders, Path(args.work) / f"tes{feeders}")
    t0 = time.perf_counter()
    config = TESConfig()
    case = prepare_case(load_case(str(case_dir)), config)
    hosts = make_hosts(case, config)
    t_build = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        b = Boundary(Path(tmp) / "audit.jsonl.gz")
        b.use(TES_POLICY, dims(case))
        t1 = time.perf_counter()
        rt = RayRuntime(b, num_cpus=args.cpus, shards=args.shards)
        t_ray = time.perf_counter() - t1
        try:
            t2 = time.perf_counter()
            rt.add_all(hosts)
            t_add = time.perf_counter() - t2
            t3 = time.perf_counter()
            mg = next(h.id for h in hosts if h.role == "tes.main_grid")
            opened = rt.exchange(rt.send([Command(COORDINATOR, mg, 0, action=Action.OPEN)]))
            offers = [m for m in rt.exchange([m for m in opened if not isinstance(m, Offer)]) if isinstance(m, Offer)]
            t_first = time.perf_counter() - t3
            n_shards = getattr(rt, "n_shards", None)
        finally:
            rt.shutdown()
            b.close()
    total = t_ray + t_add + t_first
    print(f"cold start of {len(hosts)} agents ({feeders} feeders) in {n_shards} shard(s) on {args.cpus} CPU(s):")
    print(f"  building the agents in the driver {t_build:.1f} s (case, agents; not counted)")
    print(f"  Ray start {t_ray:.1f} s, adding every agent to its shard {t_add:.1f} s, first delivery (LMP to "
          f"{sum(1 for h in hosts if h.role == 'tes.der_manager')} DER managers, {len(offers)} offers back) "
          f"{t_first:.1f} s")
    print(f"  cold start {total:.1f} s (target <= 30 s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "tdmarket-bench-scale"),
                        help="folder for the generated cases and runs (kept between runs)")
    p = sub.add_parser("round", parents=[common])
    p.add_argument("--feeders", type=int, default=100)
    p.add_argument("--scenarios", type=int, default=100)
    p.add_argument("--nodes", default="1,2")
    p.add_argument("--shards", type=int, default=None)
    p.set_defaults(fn=bench_round)
    p = sub.add_parser("_round", parents=[common])
    p.add_argument("--case", required=True)
    p.add_argument("--scenarios", type=int, default=100)
    p.add_argument("--runtime", default="local")
    p.add_argument("--ray-address", default=None)
    p.add_argument("--shards", type=int, default=None)
    p.set_defaults(fn=_round_child)
    p = sub.add_parser("overhead", parents=[common])
    p.add_argument("--feeders", type=int, default=20)
    p.add_argument("--scenarios", type=int, default=20)
    p.add_argument("--scheme", default="pcc")
    p.add_argument("--runtime", default="local")
    p.set_defaults(fn=bench_overhead)
    p = sub.add_parser("pcc118", parents=[common])
    p.add_argument("--feeders", type=int, default=100)
    p.add_argument("--scenarios", type=int, default=100)
    p.add_argument("--gap", type=float, default=1e-3)
    p.add_argument("--max-iterations", type=int, default=100)
    p.add_argument("--runtime", default="local")
    p.set_defaults(fn=bench_pcc118)
    p = sub.add_parser("coldstart", parents=[common])
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--shards", type=int, default=None)
    p.add_argument("--cpus", type=int, default=2)
    p.set_defaults(fn=bench_coldstart)
    args = ap.parse_args()
    Path(args.work).mkdir(parents=True, exist_ok=True)
    args.fn(args)


if __name__ == "__main__":
    main()
