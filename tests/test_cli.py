"""The command line (run.py), the case and scenario registry, and run folders."""
from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import run
from network.errors import CaseError
from scenarios import registry
from scenarios.runs import RunFolder, atomic_write, write_json

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "run.py"
PNG = b"\x89PNG\r\n\x1a\n"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(RUN), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------ subprocess


def test_help_lists_commands(tmp_path: Path) -> None:
    p = cli("--help", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    for word in ("cases", "inspect", "scenarios and commands"):
        assert word in p.stdout


def test_cases_lists_builtin_cases(tmp_path: Path) -> None:
    p = cli("cases", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "tes_feeder" in p.stdout and "tso24_dso5" in p.stdout
    assert "13-node" in p.stdout  # the description from case.json


def test_inspect_prints_tables_and_writes_png(tmp_path: Path) -> None:
    out = tmp_path / "run"
    p = cli("inspect", "tes_feeder", "--out", str(out), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    for word in ("Case tes_feeder", "feeder lines", "load peak (kW)", "Grids", "LV1", "Owners by role",
                 "load_aggregator", str(out / "grid.png")):
        assert word in p.stdout, word
    assert (out / "grid.png").read_bytes()[:8] == PNG
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["scenario"] == "inspect" and manifest["parameters"]["case"] == "tes_feeder"
    assert set(manifest["versions"]) >= {"python", "numpy", "cvxpy", "ray", "mesa", "tdmarket"}
    assert json.loads((out / "summary.json").read_text())["feeder nodes"] == 12
    assert not list(out.glob(".*"))  # no temporary files left behind
    assert not (tmp_path / "results").exists()


def test_inspect_broken_case_exits_2_with_one_line(tmp_path: Path) -> None:
    case = tmp_path / "broken"
    shutil.copytree(registry.DATA / "tes_feeder", case, ignore=shutil.ignore_patterns("source"))
    text = (case / "units.csv").read_text().replace("G2,gas,DERM,LV1,6,", "G2,gas,DERM,LV1,66,")
    (case / "units.csv").write_text(text)
    p = cli("inspect", str(case), "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0] == "error: units.csv, row 2 (unit_id=G2), column 'node': unknown node '66' in feeder LV1"
    assert p.stdout == ""
    assert not (tmp_path / "run").exists()


def test_inspect_unknown_case_exits_2(tmp_path: Path) -> None:
    p = cli("inspect", "no_such_case", cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "error: unknown case 'no_such_case': not a built-in case (tes_competition, tes_competition5, tes_feeder, "
        "tes_oligopoly1, tes_oligopoly2, tes_oligopoly3, tes_oligopoly5, tso24_dso5) and not a case folder"]


def test_unknown_command_exits_2(tmp_path: Path) -> None:
    p = cli("no-such-command", cwd=tmp_path)
    assert p.returncode == 2
    assert "invalid choice" in p.stderr and "Traceback" not in p.stderr


# ------------------------------------------------------------------ in process


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main([]) == 2
    assert "usage:" in capsys.readouterr().err


def test_inspect_transmission_case_default_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert run.main(["inspect", "tso24_dso5"]) == 0
    out = capsys.readouterr().out
    assert "transmission buses" in out and "F5" in out and "DSO1" in out
    (folder,) = (tmp_path / "results").iterdir()
    assert folder.name.startswith("inspect-tso24_dso5-")
    assert (folder / "grid.png").read_bytes()[:8] == PNG


def test_inspect_accepts_case_json_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["inspect", str(registry.DATA / "tes_feeder" / "case.json"), "--no-plot"]) == 0
    assert "Case tes_feeder" in capsys.readouterr().out


def test_registry_cases() -> None:
    names = [n for n, _ in registry.list_cases()]
    assert names == ["tes_competition", "tes_competition5", "tes_feeder", "tes_oligopoly1", "tes_oligopoly2",
                     "tes_oligopoly3", "tes_oligopoly5", "tso24_dso5"]
    assert all(desc for _, desc in registry.list_cases())
    assert registry.load_case("tso24_dso5").transmission is not None
    with pytest.raises(CaseError, match="unknown case 'nope'"):
        registry.load_case("nope")


@pytest.fixture
def fake_scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A scenario module registered as 'fake-day' for the duration of a test."""
    (tmp_path / "fake_scenario_mod.py").write_text(textwrap.dedent("""
        from network.errors import CaseError
        from scenarios.runs import RunFolder

        def add_arguments(parser):
            parser.add_argument("--days", type=int, default=1)
            parser.add_argument("--fail", action="store_true")

        def run(args):
            if args.fail:
                raise CaseError("bad thing", file="units.csv", row=3, column="p_max")
            folder = RunFolder.create("fake-day", args.out)
            folder.write_manifest("fake-day", args, extra={"case": "tes_feeder"})
            return 0 if args.days > 0 else 1
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.SCENARIOS, "fake-day",
                        registry.ScenarioEntry("a fake market day", "fake_scenario_mod"))
    return "fake-day"


def test_registered_scenario_runs(fake_scenario: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert run.main([fake_scenario, "--days", "2", "--seed", "7", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["scenario"] == "fake-day" and manifest["seed"] == 7 and manifest["case"] == "tes_feeder"
    assert manifest["parameters"]["days"] == 2 and manifest["parameters"]["out"] == str(out)
    assert run.main([fake_scenario, "--days", "0", "--out", str(out)]) == 1
    with pytest.raises(SystemExit):
        run.main(["--help"])
    assert "[scenario] a fake market day" in capsys.readouterr().out


def test_scenario_case_error_exits_2(fake_scenario: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main([fake_scenario, "--fail"]) == 2
    assert capsys.readouterr().err == "error: units.csv, row 3, column 'p_max': bad thing\n"


# ------------------------------------------------------------------ run folders


def test_run_folder_names_and_atomic_writes(tmp_path: Path) -> None:
    now = dt.datetime(2024, 5, 6, 7, 8, 9)
    a = RunFolder.create("tes-day", root=tmp_path / "results", now=now)
    b = RunFolder.create("tes-day", root=tmp_path / "results", now=now)
    assert a.path.name == "tes-day-20240506-070809" and b.path.name == "tes-day-20240506-070809-2"
    df = pd.DataFrame({"hour": range(3), "price": [0.1, 0.2, float("nan")]})
    pd.testing.assert_frame_equal(pd.read_parquet(a.write_parquet("prices.parquet", df)), df)
    write_json(a.file("x.json"), {"p": Path("/a"), "nan": float("nan"), "t": (1, 2)})
    assert json.loads(a.file("x.json").read_text()) == {"p": "/a", "nan": None, "t": [1, 2]}
    def broken(fh) -> None:
        fh.write("{half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):  # a failed write leaves the old file and no temporary
        atomic_write(a.file("x.json"), broken)
    assert json.loads(a.file("x.json").read_text())["p"] == "/a"
    assert sorted(p.name for p in a.path.iterdir()) == ["prices.parquet", "x.json"]
