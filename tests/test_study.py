"""run.py study: the TOML file, its errors, a short run and --resume."""
from __future__ import annotations

import pandas as pd
import pytest

import run as cli
from network.errors import CaseError
from scenarios.study import load_study


def _write(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("text, where", [
    ("days = 0\n", "days"), ("protocol = 'nodal'\n", "protocol"), ("dayz = 3\n", "dayz"),
    ("[default]\nstrategy = 'psychic'\n", "default.strategy"),
    ("[agents.DER1]\nstrategy = 'roth-erev'\nrecency = 'high'\n", "agents.DER1"),
])
def test_study_file_errors_name_file_and_key(tmp_path, text, where):
    p = _write(tmp_path, text)
    with pytest.raises(CaseError) as e:
        load_study(p)
    assert str(p) in str(e.value) and where in str(e.value)


def test_built_in_studies_load():
    for name in ("tes_monopoly", "tes_competition"):
        s = load_study(f"scenarios/studies/{name}.toml")
        assert s["days"] >= 1


def test_a_study_runs_and_resumes(tmp_path, capsys):
    text = "case = 'tes_competition'\ndays = {n}\nexploitability_every = 0\n[default]\nstrategy = 'roth-erev'\n"
    out = tmp_path / "run"
    assert cli.main(["study", str(_write(tmp_path, text.format(n=1))), "--out", str(out)]) == 0
    assert cli.main(["study", str(_write(tmp_path, text.format(n=2))), "--out", str(out), "--resume"]) == 0
    agents = pd.read_parquet(out / "agents.parquet")
    days = pd.read_parquet(out / "days.parquet")
    assert list(days["day"]) == [0, 1]
    assert sorted(agents["agent"].unique()) == ["DER1", "DER2", "DER3"] and len(agents) == 6
    assert (out / "markups.png").is_file() and (out / "metrics.png").is_file()
    assert cli.main(["study", str(tmp_path / "missing.toml")]) == 2
