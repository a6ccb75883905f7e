"""A multi-day tes run resumes from its last finished day (--resume) with the same results as a run
that was never stopped, including a learning DER manager's state; a resume with other options,
or with nothing to resume, is bad input."""
from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

import run as cli
from scenarios import runs

ARGS = ["tes-day", "--strategy", "learning", "--pricing", "uniform", "--no-benchmarks", "--seed", "3"]
TIMING = ("wall_time_s", "elapsed_s", "la_solve_s")


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch):
    monkeypatch.setattr(runs, "ACTIVE", [])


def _tables(folder):
    out = {}
    for name in ("days", "dispatch", "prices", "settlement", "iterations"):
        df = pd.read_parquet(folder / f"{name}.parquet")
        out[name] = df.drop(columns=[c for c in TIMING if c in df.columns]).reset_index(drop=True)
    return out


def test_interrupted_run_resumes_to_the_same_tables(tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    assert cli.main([*ARGS, "--days", "4", "--out", str(whole)]) == 0
    from coordinator.tes import protocol

    real = protocol.TESProtocol.run_day

    def stop_at_day_2(self, day=0, **kw):
        if day == 2:
            raise KeyboardInterrupt
        return real(self, day, **kw)

    part = tmp_path / "part"
    with monkeypatch.context() as m:
        m.setattr(protocol.TESProtocol, "run_day", stop_at_day_2)
        assert cli.main([*ARGS, "--days", "4", "--out", str(part)]) == 130
    assert json.loads((part / "manifest.json").read_text())["status"] == "interrupted"
    assert cli.main([*ARGS, "--days", "4", "--out", str(part), "--resume"]) == 0
    m = json.loads((part / "manifest.json").read_text())
    assert m["status"] == "complete" and m["resumed"] == [{"after_day": 1, "days": 4}]
    a, b = _tables(part), _tables(whole)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)


def test_resume_refuses_other_options_or_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*ARGS, "--days", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main([*ARGS[:-1], "4", "--days", "2", "--out", str(out), "--resume"]) == 2
    assert "--resume must use the run's options: seed was 3, now 4" in capsys.readouterr().err
    assert cli.main([*ARGS, "--days", "1", "--out", str(out), "--resume"]) == 2
    assert "has finished its 1 day(s) already" in capsys.readouterr().err
    assert cli.main([*ARGS, "--days", "2", "--out", str(tmp_path / "empty"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_every_segment_of_a_resumed_run_is_audited(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*ARGS, "--days", "1", "--out", str(out)]) == 0
    assert cli.main([*ARGS, "--days", "2", "--out", str(out), "--resume"]) == 0
    capsys.readouterr()
    assert cli.main(["audit", str(out), "--quiet"]) == 0
    assert "audit: OK (2 log(s))" in capsys.readouterr().out
    seg = out / "audit.resume-001.jsonl.gz"  # each segment is gzipped as it is written
    lines = gzip.open(seg, "rt").read().splitlines()
    with gzip.open(seg, "wt") as fh:
        fh.write("\n".join(lines[:3] + lines[4:]) + "\n")  # a line deleted from the second segment
    assert cli.main(["audit", str(out), "--quiet"]) == 1
