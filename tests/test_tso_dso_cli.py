"""python run.py tso-dso / tso-dso-sweep: run folders, tables, --resume, bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_tso_dso_run_folder(tmp_path):
    out = tmp_path / "run"
    p = _run("tso-dso", "--scenarios", "3", "--oos", "4", "--schemes", "cm,fc", "--wind-factor", "0.9",
             "--out", str(out), cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    for f in ("manifest.json", "audit.jsonl", "welfare.parquet", "iterations.parquet", "scenarios.parquet",
              "dispatch.parquet", "relaxation.parquet", "exchanges.parquet", "messages.parquet",
              "benders_bounds.png"):
        assert (out / f).exists(), f
    w = pd.read_parquet(out / "welfare.parquet")
    assert set(w["scheme"]) == {"cm", "fc"}
    assert {"oos_sw_expected", "oos_sw_std", "oos_sw_q10", "oos_sw_q90", "iterations", "gap", "time_s"} <= set(w)
    sc = pd.read_parquet(out / "scenarios.parquet")
    assert (sc[sc["set"] == "out_of_sample"].groupby("scheme").size() == 4).all()
    assert json.loads((out / "manifest.json").read_text())["scenario"] == "tso-dso"
    assert "E[SW]" in p.stdout


def test_bad_input_exits_2(tmp_path):
    p = _run("tso-dso", "--schemes", "pcc,xyz", "--out", str(tmp_path / "x"), cwd=tmp_path)
    assert p.returncode == 2 and "unknown scheme" in p.stderr


def test_sweep_resume(tmp_path):
    out = tmp_path / "sweep"
    args = ("tso-dso-sweep", "--levels", "2", "--scenarios", "2", "--oos", "3", "--schemes", "cm,fc",
            "--workers", "2", "--out", str(out))
    p = _run(*args, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    files = sorted((out / "levels").glob("level_??.parquet"))
    assert [f.name for f in files] == ["level_00.parquet", "level_01.parquet"]
    assert (out / "welfare_vs_penetration.png").exists() and (out / "congestion_vs_penetration.png").exists()
    from coordinator.boundary import read_audit_log, read_audit_records

    assert read_audit_records(out / "audit" / "level_01.jsonl.gz")[0]["rec"] == "header"
    first = read_audit_log(out / "audit" / "level_01.jsonl.gz")[0]
    assert first["type"] == "Command" and first["sender"] == "coordinator"
    # run.py audit verifies a sweep folder: one gzip log per level
    audit = _run("audit", str(out), "--quiet", cwd=tmp_path)
    assert audit.returncode == 0, audit.stderr
    assert "level_00.jsonl.gz: verified" in audit.stdout and "audit: OK (2 log(s))" in audit.stdout
    before = (out / "levels" / "level_00.parquet").stat().st_mtime_ns
    (out / "levels" / "level_01.parquet").unlink()
    p = _run(*args, "--resume", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "1 already done, 1 to run" in p.stdout
    assert (out / "levels" / "level_00.parquet").stat().st_mtime_ns == before  # not run again
    w = pd.read_parquet(out / "welfare.parquet")
    assert sorted(w["level"].unique()) == [0, 1] and len(w) == 4
