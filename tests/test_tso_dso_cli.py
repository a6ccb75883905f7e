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
    for f in ("manifest.json", "audit.jsonl.gz", "welfare.parquet", "iterations.parquet", "scenarios.parquet",
              "dispatch.parquet", "relaxation.parquet", "exchanges.parquet", "messages.parquet", "congestion.parquet",
              "rt_resources.parquet", "rt_shedding.parquet", "rt_voltages.parquet", "rt_feeder_lines.parquet",
              "rt_pcc.parquet", "rt_transmission.parquet", "benders_bounds.png"):
        assert (out / f).exists(), f
    w = pd.read_parquet(out / "welfare.parquet")
    assert set(w["scheme"]) == {"cm", "fc"}
    assert {"oos_sw_expected", "oos_sw_std", "oos_sw_q10", "oos_sw_q90", "iterations", "gap", "time_s"} <= set(w)
    sc = pd.read_parquet(out / "scenarios.parquet")
    assert (sc[sc["set"] == "out_of_sample"].groupby("scheme").size() == 4).all()
    assert json.loads((out / "manifest.json").read_text())["scenario"] == "tso-dso"
    assert "E[SW]" in p.stdout
    _check_realtime_tables(out, sc)
    # which solver produced each result: every agent role that solves, with its problems and iterations
    sv = pd.read_parquet(out / "solves.parquet")
    assert {"role", "agent", "problem", "iteration", "solver", "status", "attempt", "count"} <= set(sv)
    assert {"tso_dso.tso", "tso_dso.dso"} <= set(sv["role"]) and (sv["count"] > 0).all()
    assert {"fc master LP", "real-time master LP", "area real-time SOCP"} <= set(sv["problem"])
    assert "solves:" in p.stdout


def _check_realtime_tables(out: Path, sc: pd.DataFrame) -> None:
    """The written real-time dispatch reproduces each scenario's real-time cost from the offers alone, and the
    tables cover every scheme, set, scenario, resource, node and line."""
    from agents.tso_dso.participants import resources_from_case
    from coordinator.tso_dso.outputs import recompute_rt_cost
    from scenarios.registry import load_case

    case = load_case("tso24_dso5")
    res = resources_from_case(case)
    prices = {r.id: (r.price_da, r.price_up, r.price_down) for r in res}
    rt = pd.read_parquet(out / "rt_resources.parquet")
    shed = pd.read_parquet(out / "rt_shedding.parquet")
    cost = recompute_rt_cost(rt, shed, prices, float(case.param("voll_rt", 1e4)))
    reported = sc.set_index(["scheme", "set", "scenario"])["rt_cost"]
    both = pd.concat([cost.rename("recomputed"), reported.rename("reported")], axis=1)
    assert len(both) == len(sc) == both.notna().all(axis=1).sum()
    # to a cent: the DSOs' evaluations sit (1e-6 of the rating) inside a PCC line at its rating, and the
    # interior-point solutions carry their tolerance
    bad = (both["recomputed"] - both["reported"]).abs() > 0.01 + 1e-7 * both["reported"].abs()
    assert not bad.any(), both[bad]
    n_sets = sc.groupby(["scheme", "set"]).size()
    assert (rt.groupby(["scheme", "set", "scenario"]).size() == len(res)).all()
    assert rt.groupby(["scheme", "set"])["scenario"].nunique().equals(n_sets)
    assert {"p_mw", "q_mvar", "up_mw", "down_mw", "available_mw", "spilled_mw", "da_mw", "cost_usd"} <= set(rt)
    wind = rt[rt["kind"] == "wind"]
    assert (wind["spilled_mw"] >= -1e-6).all() and wind["available_mw"].notna().all()
    assert rt.loc[rt["grid"] == "T", "q_mvar"].isna().all() and rt.loc[rt["grid"] != "T", "q_mvar"].notna().all()
    lines = pd.read_parquet(out / "rt_feeder_lines.parquet")
    assert {"p_mw", "q_mvar", "l_pu", "p_to_mw", "q_to_mvar", "gap_mw2", "gap_rel_rating"} <= set(lines)
    n_lines = sum(f.n_lines for f in case.feeders.values())
    assert (lines.groupby(["scheme", "set", "scenario"]).size() == n_lines).all()
    volt = pd.read_parquet(out / "rt_voltages.parquet")
    assert volt["v_pu"].between(0.8 - 1e-6, 1.1 + 1e-6).all()
    pcc = pd.read_parquet(out / "rt_pcc.parquet")
    assert (pcc["slack_mw"] < 1e-3).all() and {"p_mw", "p_head_mw", "q_head_mvar"} <= set(pcc)
    trans = pd.read_parquet(out / "rt_transmission.parquet")
    assert (trans["p_mw"].abs() <= trans["rating_mw"] + 1e-6).all()
    assert (trans.groupby(["scheme", "set", "scenario"]).size() == len(case.transmission.lines)).all()


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
