"""Runtime overheads: Ray start, actor start, rounds per second, parallel compute, snapshot size.

    python bench/bench_runtime.py [--rounds 200] [--num-cpus N] [--ray-address auto|HOST:PORT]

A *round* is what a protocol does once per exchange: ``send`` one Status to every host,
``exchange`` them (each host handles its message and replies with one Injections message,
which the boundary checks and logs). Printed per runtime and number of hosts.
"""
from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import numpy as np

if __name__ == "__main__":
    # re-import this file as the module ``bench_runtime`` (its directory is on the workers'
    # path too) so that the hosts pickle by reference, as real hosts do
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import bench_runtime

    raise SystemExit(bench_runtime.main())

from coordinator.boundary import COORDINATOR, Boundary, Policy  # noqa: E402
from coordinator.messages import Injections, Status  # noqa: E402
from coordinator.runtime import LocalRuntime, RayRuntime, Runtime, init_ray  # noqa: E402


class BenchHost:
    """Replies to a Status with its (tiny) schedule; optionally burns CPU and carries constant data."""

    role = "load_aggregator"

    def __init__(self, agent_id: str, work_s: float = 0.0, data_mb: float = 0.0) -> None:
        self.id, self.work_s = agent_id, work_s
        self.meter = f"m-{agent_id}"
        self.data = np.zeros(int(data_mb * 2**20 / 8))  # private constant data (snapshot size)
        self.schedule = np.arange(24, dtype=float)
        self.n = 0

    def public_ids(self):
        return frozenset({self.meter})

    def decision_ids(self):
        return frozenset({self.meter})

    def snapshot(self) -> bytes:
        return pickle.dumps(self, protocol=5)

    @staticmethod
    def restore(blob: bytes) -> "BenchHost":
        return pickle.loads(blob)

    def handle(self, messages):
        if self.work_s:
            _burn(self.work_s)
        self.n += 1
        return [Injections(sender=self.id, receiver="dso", round=m.round, p={self.meter: self.schedule})
                for m in messages]


def _burn(seconds: float) -> None:
    """CPU-bound work (holds the GIL) for about ``seconds``."""
    t = time.perf_counter()
    x = 0
    while time.perf_counter() - t < seconds:
        for i in range(1000):
            x += i * i


def _runtime(kind: str, boundary: Boundary, args) -> Runtime:
    return LocalRuntime(boundary) if kind == "local" else RayRuntime(boundary, address=args.ray_address,
                                                                     num_cpus=args.num_cpus)


def bench_rounds(kind: str, n_hosts: int, rounds: int, args, work_s: float = 0.0, data_mb: float = 0.0) -> dict:
    b = Boundary(policy=Policy("bench", {("load_aggregator", "dso"): frozenset({Injections})},
                                coordinator_types=frozenset({Status})))
    b.register("dso", "dso")
    rt = _runtime(kind, b, args)
    ids = [f"h{i}" for i in range(n_hosts)]
    t0 = time.perf_counter()
    rt.add_all(BenchHost(i, work_s, data_mb) for i in ids)
    [rt.pid(i) for i in ids]  # wait until all hosts are up
    t_up = time.perf_counter() - t0
    for r in range(3):  # warm up
        rt.exchange(rt.send([Status(sender=COORDINATOR, receiver=i, round=r) for i in ids]))
    t0 = time.perf_counter()
    for r in range(rounds):
        replies = rt.exchange(rt.send([Status(sender=COORDINATOR, receiver=i, round=r) for i in ids]))
        assert len(replies) == n_hosts
    dt = (time.perf_counter() - t0) / rounds
    rt.shutdown()
    return {"runtime": kind, "hosts": n_hosts, "work_ms": work_s * 1e3, "state_mb": data_mb,
            "start_s": t_up, "round_ms": dt * 1e3, "rounds_per_s": 1 / dt}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--num-cpus", type=int, default=None)
    ap.add_argument("--ray-address", default=None)
    args = ap.parse_args(argv)

    import ray

    t0 = time.perf_counter()
    init_ray(args.ray_address, args.num_cpus, logging_level="ERROR")
    print(f"ray.init: {time.perf_counter() - t0:.2f} s; cluster CPUs: {ray.cluster_resources().get('CPU')}")

    rows = []
    for kind in ("local", "ray"):
        for n in (2, 6):
            rows.append(bench_rounds(kind, n, args.rounds, args))
        rows.append(bench_rounds(kind, 2, max(5, args.rounds // 20), args, work_s=0.05))
        rows.append(bench_rounds(kind, 2, max(5, args.rounds // 10), args, data_mb=8.0))

    print(f"\n{'runtime':8} {'hosts':>5} {'work/host':>10} {'state':>7} {'start s':>8} {'round ms':>9} "
          f"{'rounds/s':>9}")
    for r in rows:
        print(f"{r['runtime']:8} {r['hosts']:5d} {r['work_ms']:8.0f}ms {r['state_mb']:5.0f}MB {r['start_s']:8.2f} "
              f"{r['round_ms']:9.2f} {r['rounds_per_s']:9.1f}")
    ray.shutdown()
    return 0
