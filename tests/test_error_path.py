"""One error path: every command ends with one line and a documented exit status (2 bad input,
1 a failure of the run or the environment, 130 interrupted), and the run folder's manifest says
how the run ended (never ``complete`` unless it was)."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import run as cli
from scenarios import runs

ROOT = Path(__file__).resolve().parent.parent


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch):
    monkeypatch.setattr(runs, "ACTIVE", [])


def test_unwritable_output_folder_exits_1_before_any_work(tmp_path):
    proc = _cli(["tes-day", "--out", "/proc/tdmarket-run"], tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write the run folder /proc/tdmarket-run"), lines
    assert "Traceback" not in proc.stderr


def test_disk_full_names_what_was_kept(tmp_path, monkeypatch, capsys):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", "prices.png")

    monkeypatch.setattr(runs, "write_png", full)
    out = tmp_path / "run"
    rc = cli.main(["tes-day", "--no-benchmarks", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "error: disk full: prices.png: No space left on device" in err
    assert "kept" in err and "manifest.json" in err
    m = _manifest(out)
    assert m["status"] == "failed" and "disk full" in m["error"]


def test_interrupt_marks_the_folder_interrupted(tmp_path, monkeypatch, capsys):
    from coordinator.tes import protocol

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(protocol.TESProtocol, "run_day", stop)
    out = tmp_path / "run"
    assert cli.main(["tes-day", "--out", str(out)]) == 130
    assert _manifest(out)["status"] == "interrupted"
    assert "interrupted" in capsys.readouterr().err


def test_unexpected_error_is_one_line_exit_1(tmp_path, monkeypatch, capsys):
    from coordinator.tes import protocol

    def boom(*a, **k):
        raise RuntimeError("something broke\nsecond line")

    monkeypatch.setattr(protocol.TESProtocol, "run_day", boom)
    out = tmp_path / "run"
    assert cli.main(["tes-day", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "error: RuntimeError: something broke (TDMARKET_DEBUG=1 shows the traceback)"
    assert _manifest(out)["status"] == "failed"


def test_a_finished_run_is_complete(tmp_path):
    out = tmp_path / "run"
    proc = _cli(["inspect", "tes_feeder", "--out", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _manifest(out)["status"] == "complete"


def test_run_folder_names_are_sanitised(tmp_path):
    f = runs.RunFolder.create("x/../../../escaped", root=tmp_path / "results")
    assert f.path.parent == tmp_path / "results"
    assert "/" not in f.path.name and ".." not in f.path.name
    assert runs.safe_name("../..") == "run" and runs.safe_name("inspect-tes feeder") == "inspect-tes_feeder"


def test_run_files_have_the_documented_mode(tmp_path):
    f = runs.RunFolder(tmp_path / "run")
    p = f.write_json("x.json", {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == runs.FILE_MODE & ~umask


def test_interrupt_keeps_finished_days(tmp_path, monkeypatch):
    import pandas as pd

    from coordinator.tes import protocol

    real = protocol.TESProtocol.run_day

    def second_day_interrupted(self, day=0, **kw):
        if day >= 1:
            raise KeyboardInterrupt
        return real(self, day, **kw)

    monkeypatch.setattr(protocol.TESProtocol, "run_day", second_day_interrupted)
    out = tmp_path / "run"
    assert cli.main(["tes-day", "--days", "3", "--no-benchmarks", "--out", str(out)]) == 130
    assert _manifest(out)["status"] == "interrupted"
    assert list(pd.read_parquet(out / "days.parquet")["day"]) == [0]
    assert set(pd.read_parquet(out / "dispatch.parquet")["day"]) == {0}


def test_unreachable_cluster_fails_fast_with_one_line(tmp_path):
    env = {**os.environ, "TDMARKET_RAY_TIMEOUT": "2"}
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "tes-day", "--runtime", "ray", "--ray-address",
                           "127.0.0.1:1", "--out", str(tmp_path / "run")], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env=env)
    assert proc.returncode == 1
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith("error: cannot reach the Ray cluster at 127.0.0.1:1 within 2 s"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert _manifest(tmp_path / "run")["status"] == "failed"
