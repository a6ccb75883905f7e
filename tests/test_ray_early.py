"""Starting a local Ray instance in the background (``--runtime ray`` runs of run.py): when it starts, that the
runtime adopts it, and that a run on it gives the local run's tables."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from coordinator.runtime import cluster
from scenarios.runs import RAY_EARLY_ENV, start_ray_early

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def started(monkeypatch):
    """The calls start_ray_early makes to start_in_background (recorded, nothing started)."""
    calls = []
    monkeypatch.setattr(cluster, "start_in_background", lambda *a, **k: calls.append((a, k)) or True)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv(RAY_EARLY_ENV, raising=False)
    return calls


@pytest.mark.parametrize("argv, starts", [
    (["tso-dso", "--runtime", "ray"], True),
    (["tso-dso", "--scenarios", "3", "--runtime=ray", "--oos", "0"], True),
    (["tes-day", "--runtime", "ray", "--shards", "2"], True),
    (["tso-dso", "--runtime", "ray", "--runtime", "local"], False),  # argparse keeps the last one
    (["tso-dso", "--runtime", "local"], False),
    (["tso-dso"], False),
    (["tso-dso", "--runtime", "ray", "--ray-address", "10.0.0.1:6379"], False),  # joins a cluster
    (["tso-dso", "--runtime", "ray", "--ray-address=auto"], False),
    (["tso-dso", "--runtime", "ray", "--help"], False),
    (["tso-dso-sweep", "--runtime", "ray"], False),  # its levels make their runtimes elsewhere
    (["audit", "--runtime", "ray"], False),
    ([], False),
])
def test_which_command_lines_start_ray_early(started, argv, starts):
    assert start_ray_early(argv) is starts
    assert len(started) == int(starts)


def test_not_when_joining_or_turned_off(started, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert not start_ray_early(["tso-dso", "--runtime", "ray"])
    monkeypatch.delenv("RAY_ADDRESS")
    monkeypatch.setenv(RAY_EARLY_ENV, "0")
    assert not start_ray_early(["tso-dso", "--runtime", "ray"])
    assert started == []


def test_a_ray_run_started_early_gives_the_local_tables(tmp_path):
    """The whole command on both runtimes (Ray started in the background, adopted, shut down by its thread)."""
    args = ["tso-dso", "--scenarios", "3", "--oos", "0", "--schemes", "pcc", "--wind-factor", "0.9"]
    runs = {}
    for kind in ("local", "ray"):
        out = tmp_path / kind
        p = subprocess.run([sys.executable, str(ROOT / "run.py"), *args, "--runtime", kind, "--out", str(out)],
                           cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-2000:]
        runs[kind] = (out, p)
    assert "Ray started in the background" in runs["ray"][1].stdout
    assert "SIGTERM handler is not set" not in runs["ray"][1].stderr
    tables = sorted(p.name for p in runs["local"][0].glob("*.parquet"))
    assert "welfare.parquet" in tables and tables == sorted(p.name for p in runs["ray"][0].glob("*.parquet"))
    for name in tables:  # every table, without its timing columns (as tests/test_cluster.py compares them)
        a, b = (pd.read_parquet(runs[k][0] / name) for k in ("local", "ray"))
        a, b = (df[[c for c in df.columns if not (str(c).endswith("_s") or "time" in str(c))]] for df in (a, b))
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)


def test_the_runtime_adopts_a_background_start_and_hands_back_its_shutdown():
    """In a fresh process: start_in_background, a RayRuntime adopts it (and owns it), its shutdown runs in the
    background thread, and a second runtime then starts a new instance."""
    code = r"""
from coordinator.boundary import Boundary
from coordinator.runtime import cluster
from coordinator.runtime.ray import RayRuntime
import ray
assert cluster.start_in_background(num_cpus=1)
assert not cluster.start_in_background(num_cpus=1)  # one at a time
rt = RayRuntime(Boundary(), num_cpus=1)
assert rt._owns_ray and rt.start_info["background"] and rt.start_info["background_init_s"] > 0, rt.start_info
assert ray.get(ray.remote(lambda: 7).remote()) == 7
assert "monitor" not in ray._private.worker._global_node.all_processes  # no autoscaler for one fixed node
rt.shutdown()
rt2 = RayRuntime(Boundary(), num_cpus=1)  # waits for the background shutdown, then starts its own
assert rt2._owns_ray and not rt2.start_info["background"]
assert ray.get(ray.remote(lambda: 8).remote()) == 8
rt2.shutdown()
assert not ray.is_initialized()
# adopted, then shut down by ray.shutdown() directly: a later runtime's session is its own
assert cluster.start_in_background(num_cpus=1)
rt3 = RayRuntime(Boundary(), num_cpus=1)
first = rt3._background
ray.shutdown()
rt4 = RayRuntime(Boundary(), num_cpus=1)
assert first._release.is_set() and rt4._background is None and cluster.background_start() is None
rt4.shutdown()
assert not ray.is_initialized()
print("ok")
"""
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stderr[-3000:]
