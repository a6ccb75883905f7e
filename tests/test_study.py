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
    for name in ("tes_monopoly", "tes_competition", "tes_competition5", "tes_competitive"):
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


def test_a_competitive_study_has_no_market_power(tmp_path):
    """Every DER manager at marginal cost, on generated days: Lerner 0, markups 0, no welfare loss and no
    customer-surplus change against the competitive benchmark (to solver tolerance). Exploitability is
    not 0 under pay-as-bid (a seller below the LMP gains by raising its price): it is >= 0 and its best
    markup is a strict markup."""
    text = ("case = 'tes_competition'\ndays = 2\nexploitability_every = 1\ndays_from = 'generator'\n"
            "profile_seed = 3\n[default]\nstrategy = 'marginal-cost'\n")
    out = tmp_path / "run"
    assert cli.main(["study", str(_write(tmp_path, text)), "--out", str(out)]) == 0
    days = pd.read_parquet(out / "days.parquet")
    agents = pd.read_parquet(out / "agents.parquet")
    assert days["lerner"].abs().max() < 1e-6
    assert agents["markup"].abs().max() < 1e-9 and agents["lerner"].fillna(0).abs().max() < 1e-6
    tol = 1e-6 * days["welfare"].abs().max()
    assert days["welfare_loss"].abs().max() <= tol and days["customer_surplus_change"].abs().max() <= tol
    assert (agents["exploitability"] >= -1e-9).all()
    assert ((agents["exploitability"] <= 1e-6) | (agents["best_markup"] > 0)).all()
    # the days differ, and each agent is recorded by the DataCollector every day
    assert days["lmp_mean"].nunique() == 2
    part = pd.read_parquet(out / "participants.parquet")
    assert len(part) == 2 * 4 and set(part["role"]) == {"der_manager", "load_aggregator"}


def test_exploitability_with_the_network_limits(tmp_path):
    """exploitability_network = true: the re-solves keep the operator's limits (the game played). A fixed
    markup of 0.14 $/kWh (off the analyst's grid) on tes_feeder's generated day 0: no markup of the grid
    does better with the limits (without them 0.12 does better by 27 $: bench/profit_curves.py), so the gain is 0
    and the best markup NaN (the actual offer is off the grid)."""
    text = ("case = 'tes_feeder'\ndays = 1\nexploitability_every = 1\nexploitability_network = true\n"
            "days_from = 'generator'\n[default]\nstrategy = 'markup'\nmarkup = 0.14\n")
    out = tmp_path / "run"
    assert cli.main(["study", str(_write(tmp_path, text)), "--out", str(out)]) == 0
    agents = pd.read_parquet(out / "agents.parquet")
    assert agents["markup_played"].tolist() == [0.14]
    assert agents["exploitability"].abs().max() <= 1e-6 and agents["best_markup"].isna().all()
    with pytest.raises(CaseError, match="exploitability_network"):
        load_study(_write(tmp_path, "case = 'tes_feeder'\nexploitability_network = 1\n"))


def test_run_study_dispatches_by_protocol(tmp_path, monkeypatch):
    """A protocol's study module plugs in through scenarios.study.PROTOCOLS (load, then run)."""
    import sys
    import types

    import scenarios.study as S

    seen = {}
    mod = types.ModuleType("fake_study")
    mod.load = lambda raw, f: {"protocol": "fake", "file": f, "days": raw["days"]}
    mod.run = lambda args, study: seen.setdefault("study", study) and 0
    monkeypatch.setitem(sys.modules, "fake_study", mod)
    monkeypatch.setitem(S.PROTOCOLS, "fake", "fake_study")
    p = _write(tmp_path, "protocol = 'fake'\ndays = 4\n")
    assert cli.main(["study", str(p)]) == 0
    assert seen["study"] == {"protocol": "fake", "file": str(p), "days": 4}
