"""Ray: a local instance listens on the loopback interface only; joining a cluster needs a token or an
explicit --ray-insecure."""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coordinator.runtime.cluster import ClusterAuthRequired, _join_auth, token_source

ROOT = Path(__file__).resolve().parent.parent

#: started in a fresh process: a local instance with an actor; prints the listening sockets of its process tree
LISTENERS = r"""
import json, os, sys
from coordinator.runtime.ray import init_ray
import ray
init_ray(None, num_cpus=1)

@ray.remote
class A:
    def pid(self):
        return os.getpid()

a = A.remote()
ray.get(a.pid.remote())

def tree(pid):
    out = {pid}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            kids = open(f"/proc/{pid}/task/{t}/children").read().split()
        except OSError:
            continue
        for c in kids:
            out |= tree(int(c))
    return out

def inodes(pid):
    out = {}
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                out[link[8:-1]] = pid
    except OSError:
        pass
    return out

def addr(hexaddr, v6):
    ip, port = hexaddr.split(":")
    raw = bytes.fromhex(ip)
    if v6:
        words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
        raw = b"".join(words)
        import ipaddress
        return str(ipaddress.IPv6Address(raw)), int(port, 16)
    return ".".join(str(b) for b in raw[::-1]), int(port, 16)

owners = {}
for p in tree(os.getpid()):
    owners.update(inodes(p))
found = []
for proto, state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
    for line in open(f"/proc/net/{proto}").read().splitlines()[1:]:
        f = line.split()
        if f[3] != state or f[9] not in owners:
            continue
        ip, port = addr(f[1], proto.endswith("6"))
        name = open(f"/proc/{owners[f[9]]}/comm").read().strip()
        found.append([proto, ip, port, name])
print(json.dumps(found))
ray.shutdown()
"""


def test_a_local_instance_listens_on_loopback_only(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", LISTENERS], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    found = json.loads(p.stdout.strip().splitlines()[-1])
    names = {n for *_, n in found}
    assert {"gcs_server", "raylet"} <= names, found  # the instance's servers were seen
    def loopback(ip: str) -> bool:
        a = ipaddress.ip_address(ip)
        mapped = getattr(a, "ipv4_mapped", None)
        return (mapped or a).is_loopback

    exposed = [f for f in found if not loopback(f[1])]
    assert not exposed, f"listening beyond the loopback interface: {exposed}"


def _no_token_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS", "TDMARKET_RAY"))}
    return {**env, "HOME": str(home), "TDMARKET_RAY_TIMEOUT": "1"}


def _join(tmp_path: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "tes-day", "--runtime", "ray", "--ray-address",
                           "127.0.0.1:9", "--out", str(tmp_path / "run"), *extra], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_joining_without_a_token_is_refused(tmp_path):
    p = _join(tmp_path, _no_token_env(tmp_path))
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refusing to join the Ray cluster at 127.0.0.1:9 without "
                                                   "token authentication"), p.stderr
    assert "--ray-insecure" in lines[0]


def test_ray_insecure_is_explicit(tmp_path):
    p = _join(tmp_path, _no_token_env(tmp_path), "--ray-insecure")
    assert p.returncode == 1
    assert "WITHOUT token authentication (--ray-insecure)" in p.stderr
    assert "error: cannot reach the Ray cluster at 127.0.0.1:9 within 1 s" in p.stderr, p.stderr


def test_a_token_turns_authentication_on(tmp_path, monkeypatch):
    for k in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE", "TDMARKET_RAY_INSECURE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert token_source() is None
    with pytest.raises(ClusterAuthRequired, match="refusing to join the Ray cluster at h:1"):
        _join_auth("h:1", None)
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("secret\n")
    assert token_source() == "~/.ray/auth_token"
    _join_auth("h:1", None)
    assert os.environ["RAY_AUTH_MODE"] == "token"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # turning it off takes --ray-insecure
    with pytest.raises(ClusterAuthRequired, match="RAY_AUTH_MODE=disabled"):
        _join_auth("h:1", None)
    _join_auth("h:1", True)
    assert os.environ["RAY_AUTH_MODE"] == "disabled"
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    assert token_source() is None
