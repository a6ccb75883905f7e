"""Both protocols on a real multi-node Ray cluster (a head node and 2 worker nodes on this machine, 1 CPU each,
made with ``ray.cluster_utils.Cluster`` in a helper process, token authentication on).

The runs are what users type: ``python3 run.py ... --runtime ray --ray-address ADDR`` in a subprocess, whose
exit status, tables and audit log are checked against a LocalRuntime run. A worker node removed mid-run is
survived with identical tables; a driver whose authentication does not match the cluster's ends with one line
and exit status 1.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
TSO_DSO = ("tso-dso", "--scenarios", "3", "--oos", "5", "--schemes", "cm")
TES = ("tes-day",)
pytestmark = pytest.mark.slow  # a 3-node cluster and 5 runs: 2-3 minutes on 2 CPUs


def _env(extra: dict | None = None, drop: tuple = ()) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("TDMARKET_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    env.update(extra or {})
    return env


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(address, helper process, env of a driver with the cluster's token)."""
    token = secrets.token_hex(32)
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    log = tmp_path_factory.mktemp("cluster") / "helper.log"
    with open(log, "w") as err:
        helper = subprocess.Popen([sys.executable, str(ROOT / "tests" / "loopback_cluster.py"), "--workers", "2",
                                   "--cpus", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                  text=True, env=_env(auth, drop=("RAY_ADDRESS",)), cwd=ROOT)
    try:
        line = helper.stdout.readline()
        assert line, f"the cluster did not start: {log.read_text()[-2000:]}"
        address = json.loads(line)["address"]
        yield address, helper, _env(auth, drop=("RAY_ADDRESS",))
    finally:
        try:
            helper.stdin.close()
            helper.wait(timeout=120)
        except Exception:
            helper.kill()
            helper.wait()


def _run(args: tuple, out: Path, env: dict, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args, "--out", str(out)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=600, **kw)


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    """The run's tables without their timing columns (seconds of wall time differ from run to run)."""
    out = {}
    for p in sorted(folder.glob("*.parquet")) + sorted(folder.glob("*.csv")):
        df = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
        out[p.name] = df[[c for c in df.columns if not (str(c).endswith("_s") or "time" in str(c))]]
    return out


def _same_tables(a: Path, b: Path) -> None:
    ta, tb = _tables(a), _tables(b)
    assert ta and sorted(ta) == sorted(tb)
    for name in ta:
        pd.testing.assert_frame_equal(ta[name], tb[name], check_exact=True, obj=name)


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("local")
    runs = {}
    for name, args in (("tso-dso", TSO_DSO), ("tes-day", TES)):
        p = _run(args, base / name, _env(drop=("RAY_ADDRESS",)))
        assert p.returncode == 0, p.stderr[-2000:]
        runs[name] = base / name
    return runs


def _audit(folder: Path) -> None:
    p = subprocess.run([sys.executable, str(ROOT / "run.py"), "audit", str(folder), "--quiet"], capture_output=True,
                       text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]


def test_tes_day_same_tables_as_local_on_three_nodes(cluster, local_runs, tmp_path):
    """(tso-dso: the same, with a node removed mid-run, in the last test.)"""
    address, _, env = cluster
    p = _run((*TES, "--runtime", "ray", "--ray-address", address), tmp_path / "run", env)
    assert p.returncode == 0, p.stderr[-3000:]
    _same_tables(local_runs["tes-day"], tmp_path / "run")
    _audit(tmp_path / "run")  # the audit log of a sharded multi-node run verifies


PLACEMENT = r"""
import json, sys
from coordinator.boundary import Boundary
from coordinator.runtime import RayRuntime
from tests.test_runtime import TOY_POLICY, choreography_hosts, run_choreography
rt = RayRuntime(Boundary(policy=TOY_POLICY), address=sys.argv[1])
rt.add_all(choreography_hosts())
res = run_choreography(rt)
print(json.dumps({"shards": rt.n_shards, "nodes": rt.placement(), "rounds": res["rounds"]}))
rt.shutdown()
"""


def test_one_shard_per_cpu_spread_over_the_nodes(cluster):
    address, _, env = cluster
    p = subprocess.run([sys.executable, "-c", PLACEMENT, address], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["shards"] == 3  # one per CPU: 3 nodes of 1 CPU
    assert len(set(got["nodes"].values())) == 3, got  # one shard on each node
    assert got["rounds"] > 2


def test_a_driver_with_other_authentication_fails_in_one_line(cluster, tmp_path):
    address, _, env = cluster
    env = {**env, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_AUTH_TOKEN")
    p = _run((*TSO_DSO, "--runtime", "ray", "--ray-address", address, "--ray-insecure"), tmp_path / "run", env)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    err = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "authentication" in err[0], p.stderr[-2000:]


def test_a_worker_node_removed_mid_run_is_survived(cluster, local_runs, tmp_path):
    """tso-dso on 3 nodes, one worker node removed while the agents solve: the same tables as the local run, and
    an audit log that verifies. Last in this module: the cluster has one worker node less afterwards."""
    address, helper, env = cluster
    out = tmp_path / "run"
    log = tmp_path / "driver.log"
    with open(log, "w") as fh:
        driver = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *TSO_DSO, "--runtime", "ray",
                                   "--ray-address", address, "--out", str(out)], stdout=fh, stderr=subprocess.STDOUT,
                                  text=True, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 300
        while "(ShardHost pid=" not in log.read_text() and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)  # until the agents solve (a shard prints its solver's banner)
        assert driver.poll() is None, "the run ended before a node could be removed: " + log.read_text()[-2000:]
        helper.stdin.write("remove\n")
        helper.stdin.flush()
        assert helper.stdout.readline().strip() == "removed"
        assert driver.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        if driver.poll() is None:
            driver.kill()
    text = log.read_text()
    assert "lost" in text and "rebuild 1 of" in text, text[-3000:]  # a shard was rebuilt on a live node
    _same_tables(local_runs["tso-dso"], out)
    _audit(out)
