"""A sweep killed with SIGKILL takes its workers with it; a --resume while a sweep holds the folder is
refused; after the kill, --resume finishes with complete audit logs of every level."""
from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = ("tso-dso-sweep", "--levels", "2", "--scenarios", "2", "--oos", "0", "--schemes", "cm", "--workers", "2")


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _audit_lines(out: Path) -> dict[str, int]:
    counts = {}
    for f in sorted((out / "audit").glob("level_*.jsonl.gz")):
        with gzip.open(f, "rt") as fh:
            lines = [json.loads(x) for x in fh if x.strip()]
        counts[f.name] = len(lines)
    return counts


def test_kill_resume_and_lock(tmp_path):
    out = tmp_path / "sweep"
    cmd = [sys.executable, str(ROOT / "run.py"), *ARGS, "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(workers) < 2:
            workers = _children(proc.pid)
            time.sleep(0.2)
        assert len(workers) >= 2, "the sweep did not start its workers"
        # while it runs, a --resume in the same folder is refused, naming the running sweep
        second = subprocess.run(cmd + ["--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert second.returncode == 1, second.stderr
        assert f"a sweep is still running in {out}" in second.stderr
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers), "sweep workers outlived the killed sweep"
    # --resume now runs and every level's audit log is complete: same line counts as a clean sweep
    done = subprocess.run(cmd + ["--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    clean = tmp_path / "clean"
    ref = subprocess.run([sys.executable, str(ROOT / "run.py"), *ARGS, "--out", str(clean)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-2000:]
    assert _audit_lines(out) == _audit_lines(clean) and len(_audit_lines(out)) == 2
