"""tso-dso strategic offers and the analyst's market-power figures (agents/tso_dso/strategic.py,
coordinator/tso_dso/market_power.py, coordinator/tso_dso/study.py, scenarios/study_tso_dso.py)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from agents.strategies import Markup, make_strategy
from agents.tso_dso.day_ahead import DAMarket, clear_da_market
from agents.tso_dso.participants import DEM, GEN, WIND, Resource, ResourceSet, RTDERManager, RTLoadAggregator
from agents.tso_dso.strategic import day_profit, offer_prices, observation
from coordinator.tso_dso.market_power import day_figures, exploitability, true_welfare_correction
from network.errors import CaseError


def _gen(i: str, c: float, pmax: float = 100.0, kind: str = GEN) -> Resource:
    return Resource(i, kind, 0.0, pmax, 0.0, 0.0, c, 1.0, 1.0)


def _dem(i: str, v: float, pmax: float = 100.0) -> Resource:
    return Resource(i, DEM, 0.0, pmax, 0.0, 0.0, v, 1.0, 1.0)


# ------------------------------------------------------------------ the participant's side


def test_offer_prices_sellers_and_buyers():
    sellers = ResourceSet([_gen("G1", 10.0), _gen("G2", 20.0)])
    assert np.allclose(offer_prices(Markup(markup=3.0), sellers, cap=100.0), [13.0, 23.0])
    assert np.allclose(offer_prices(Markup(markup=3.0), sellers, cap=21.0), [13.0, 21.0])  # the public cap
    buyers = ResourceSet([_dem("D1", 30.0), _dem("D2", 2.0)])
    # a buyer shades its bid below its value, never below the floor
    assert np.allclose(offer_prices(Markup(markup=3.0), buyers, cap=100.0), [27.0, 0.0])
    assert np.allclose(offer_prices(make_strategy("marginal-cost"), buyers, cap=100.0), [30.0, 2.0])
    with pytest.raises(ValueError, match="only demands or only"):
        offer_prices(Markup(markup=1.0), ResourceSet([_gen("G1", 10.0), _dem("D1", 30.0)]), cap=100.0)


def test_observation_profit_is_the_settlement():
    """The strategy's view (Observation.hourly_profit) is the day-ahead settlement, on both sides."""
    for res, off in ((ResourceSet([_gen("G1", 10.0), _gen("G2", 20.0)]), np.array([12.0, 25.0])),
                     (ResourceSet([_dem("D1", 30.0), _dem("D2", 25.0)]), np.array([28.0, 20.0]))):
        x, lam = np.array([60.0, 0.0]), 22.0
        obs = observation(res, off, np.array([100.0, 100.0]), x, lam, cap=1e4)
        assert obs.sold.shape == (2, 1) and obs.cap.shape == (1,)
        assert obs.hourly_profit.sum() == pytest.approx(day_profit(res, x, lam))
    assert day_profit(ResourceSet([_gen("G1", 10.0)]), np.array([5.0]), 12.0) == pytest.approx(10.0)
    assert day_profit(ResourceSet([_dem("D1", 30.0)]), np.array([5.0]), 12.0) == pytest.approx(90.0)
    with pytest.raises(ValueError, match="no day-ahead price"):
        day_profit(ResourceSet([_gen("G1", 10.0)]), np.array([5.0]), math.nan)


def test_participant_offers_and_learns():
    """No strategy: the case's prices (the default path). A strategy: its prices, and it learns at end of day."""
    plain = RTDERManager("P", [_gen("G1", 10.0), _gen("G2", 20.0)])
    assert {k: float(v[0][0]) for k, v in plain.da_offers().items()} == {"G1": 10.0, "G2": 20.0}
    learner = make_strategy("learning", grid=[0.0, 5.0], seed=3)
    p = RTDERManager("P", [_gen("G1", 10.0), _gen("G2", 20.0)], strategy=learner, price_cap=1e4)
    m = learner.markup
    assert {k: float(v[0][0]) for k, v in p.da_offers().items()} == {"G1": 10.0 + m, "G2": 20.0 + m}
    p.deliver({"G1": 50.0, "G2": 0.0}, 18.0)
    w0 = learner._w.copy()
    assert p.end_of_day() == pytest.approx(400.0)
    assert not np.allclose(learner._w, w0) or learner._scale == 400.0  # it saw the day's profit
    la = RTLoadAggregator("L", [_dem("D1", 30.0)], strategy=Markup(markup=4.0), price_cap=1e4)
    assert float(la.da_offers()["D1"][0][0]) == 26.0


# ------------------------------------------------------------------ the analyst's figures


def _market(prices, qty, kinds, capped=None) -> DAMarket:
    n = len(prices)
    return DAMarket(tuple(f"r{i}" for i in range(n)), tuple(kinds), np.array(prices, float), np.array(qty, float),
                    np.zeros(n), np.array(capped if capped is not None else [False] * n), np.zeros(n, dtype=int))


def test_exploitability_finds_the_profitable_deviation():
    """Two sellers (10 $/MWh, 100 MW; 15 $/MWh, 100 MW), one demand of 150 MW valued 40 $/MWh: the price is 15."""
    mk = _market([10.0, 15.0, 40.0], [100.0, 100.0, 150.0], [GEN, GEN, DEM])
    c = mk.price.copy()
    up = mk.bounds(None)
    # seller 1 is marginal (50 MW at 15): a markup of 20 sets the price at 35 and keeps its 50 MW
    e = exploitability(mk, c, up, np.array([1]), [0.0, 5.0, 20.0])
    assert e["profit_model"] == pytest.approx(0.0)
    assert e["best_markup"] == 20.0 and e["exploitability"] == pytest.approx(20.0 * 50.0)
    # seller 0 (inframarginal): a markup up to 5 leaves the price at 15; above it it loses the volume
    e0 = exploitability(mk, c, up, np.array([0]), [0.0, 3.0, 10.0])
    assert e0["exploitability"] == pytest.approx(0.0) and math.isnan(e0["best_markup"])


def test_day_figures_lerner_hhi_rsi():
    mk = _market([10.0, 15.0, 40.0], [100.0, 100.0, 150.0], [GEN, GEN, DEM])
    lp = clear_da_market(mk)
    owner = {"r0": "A", "r1": "B", "r2": "L"}
    case_price = {"r0": 10.0, "r1": 15.0, "r2": 40.0}
    rt = pd.DataFrame({"resource": ["r0", "r1", "r2"], "p_mw": lp.x})
    day, rows = day_figures(mk, lp.x, lp.price, np.zeros(3), case_price, owner, 1000.0, rt)
    by = {r["agent"]: r for r in rows}
    assert lp.price == pytest.approx(15.0)
    assert day["hhi"] == pytest.approx((100 * 100 / 150) ** 2 + (100 * 50 / 150) ** 2)
    assert by["A"]["lerner"] == pytest.approx(5.0 / 15.0) and by["B"]["lerner"] == pytest.approx(0.0)
    assert by["A"]["rsi"] == pytest.approx(100 / 150) and by["A"]["pivotal"]  # B alone cannot serve 150 MW
    assert day["welfare"] == pytest.approx(1000.0)  # competitive offers: nothing to correct
    assert by["L"]["profit"] == pytest.approx((40 - 15) * 150)


def test_true_welfare_correction():
    """Welfare at true costs = welfare at offered prices + sum sigma (offer - cost) E[y]."""
    mk = _market([12.0, 15.0, 37.0], [100.0, 100.0, 150.0], [GEN, GEN, DEM])  # r0 marks up 2, r2 shades 3
    c = np.array([10.0, 15.0, 40.0])
    rt = pd.DataFrame({"resource": ["r0", "r0", "r1", "r1", "r2", "r2"], "p_mw": [100, 80, 50, 60, 150, 140.0]})
    assert true_welfare_correction(mk, c, rt) == pytest.approx(2.0 * 90 + 3.0 * 145)


# ------------------------------------------------------------------ the study file


def test_study_file_errors(tmp_path):
    from scenarios.study_tso_dso import load_study

    def bad(text: str, match: str) -> None:
        f = tmp_path / "s.toml"
        f.write_text(text)
        with pytest.raises(CaseError, match=match):
            load_study(f)

    bad('protocol = "tso-dso"\nscheme = "fc"\n', "pcc' or 'cm")
    bad('protocol = "tso-dso"\ndays = 0\n', "days")
    bad('protocol = "tso-dso"\nbogus = 1\n', "unknown key")
    bad('protocol = "tso-dso"\n[agents.GENCO]\nstrategy = "nope"\n', "unknown strategy")
    bad('protocol = "tso-dso"\n[agents.GENCO]\nstrategy = "markup"\nmarkupp = 1\n', "no parameter")
    s = load_study("scenarios/studies/tso_dso_gencos.toml")
    assert s["protocol"] == "tso-dso" and set(s["gencos"]) == {"GENCO_A", "GENCO_B", "GENCO_C"}


def test_split_gencos_checks_units():
    from scenarios.registry import load_case
    from scenarios.study_tso_dso import split_gencos

    case = load_case("tso24_dso5")
    split = split_gencos(case, {"GA": ("G1", "G2")})
    assert {u.id for u in split.units if u.owner == "GA"} == {"G1", "G2"}
    with pytest.raises(CaseError, match="not a transmission-connected unit"):
        split_gencos(case, {"GA": ("G5",)})  # G5 is in feeder F1
    with pytest.raises(CaseError, match="both"):
        split_gencos(case, {"GA": ("G1",), "GB": ("G1",)})


# ------------------------------------------------------------------ on the case (the protocol runs)

STUDY = '''protocol = "tso-dso"
case = "tso24_dso5"
days = {days}
seed = 1
scenarios = 2
wind_factor = 0.3
gap = 1e-3
exploitability_grid = [0, 1]
[gencos]
GA = ["G1", "G2", "G3", "G17"]
'''


def _load(tmp_path, text: str):
    from scenarios.study_tso_dso import load_study

    f = tmp_path / "study.toml"
    f.write_text(text)
    return load_study(f)


def test_strategic_day_on_the_case(tmp_path):
    """GA's offers reach the TSO's market through the boundary at its strategy's prices; it settles and learns
    from its own day; the welfare correction's real-time quantity is the table's ``x + sign (up - down)``."""
    from coordinator.tso_dso.setup import Roles, TSODSOConfig
    from coordinator.tso_dso.study import TSODSOMarketModel
    from scenarios.registry import load_case
    from scenarios.study_tso_dso import split_gencos
    from scenarios.tso_dso.wind import WindModel

    case = split_gencos(load_case("tso24_dso5"), {"GA": ("G1", "G2", "G3", "G17")})
    learner = make_strategy("learning", grid=[2.0, 3.0], seed=0)
    m0 = learner.markup
    model = TSODSOMarketModel(case, TSODSOConfig(schemes=("pcc",), gap_tol=1e-3, oos=False), WindModel.from_case(case),
                              factor=0.3, scenarios=2, strategies={"GA": learner}, seed=1)
    res, after, reports = model._run(model.wind_of(0), {"GA": learner}, "")
    mk = res.market
    case_price = {u.id: u.offer_da for u in case.units}
    for k in ("G1", "G2", "G3", "G17"):
        assert mk.price[mk.index[k]] == pytest.approx(case_price[k] + m0)
    assert mk.price[mk.index["G4"]] == pytest.approx(case_price["G4"])
    idx = [mk.index[k] for k in ("G1", "G2", "G3", "G17")]
    expect = float(np.sum((res.price - mk.price[idx] + m0) * res.x[idx]))
    assert reports["GA"]["profit"] == pytest.approx(expect)
    assert after["GA"] is not learner and (after["GA"]._scale > 0 or expect == 0)  # restored, and it learnt
    rt = res.in_sample.tables["rt_resources"]
    sign = np.where(rt["kind"] == DEM, -1.0, 1.0)
    assert np.allclose(rt["p_mw"], rt["da_mw"] + sign * (rt["up_mw"] - rt["down_mw"]), atol=1e-5)
    assert "GA" in Roles.of(case).participants


def test_competitive_study_has_no_welfare_loss(tmp_path):
    """Every participant at marginal cost: the strategic run is the competitive run (same wind draw)."""
    from coordinator.audit import main as audit
    from scenarios.study_tso_dso import run_study as run

    study = _load(tmp_path, STUDY.format(days=1) + '[default]\nstrategy = "marginal-cost"\n')
    assert run(study, tmp_path / "out", quiet=True) == 0
    d = pd.read_parquet(tmp_path / "out" / "days.parquet")
    assert d["welfare_loss"].iloc[0] == 0.0 and d["da_price"].iloc[0] == d["da_price_comp"].iloc[0]
    assert (tmp_path / "out" / "metrics.png").is_file() and (tmp_path / "out" / "markups.png").is_file()
    assert audit(tmp_path / "out", quiet=True) == 0


@pytest.mark.slow
def test_resume_gives_the_same_days(tmp_path):
    """Two days straight, or one day and --resume: the same figures (the strategies' state carries over)."""
    from scenarios.study_tso_dso import run_study as run

    agents = '[agents.GA]\nstrategy = "learning"\ngrid = [0, 1, 2]\n'
    two = _load(tmp_path, STUDY.format(days=2) + agents)
    assert run(two, tmp_path / "a", quiet=True) == 0
    assert run(_load(tmp_path, STUDY.format(days=1) + agents), tmp_path / "b", quiet=True) == 0
    assert run(two, tmp_path / "b", resume=True, quiet=True) == 0
    drop = ["strategic_s", "competitive_s"]
    a = pd.read_parquet(tmp_path / "a" / "days.parquet").drop(columns=drop)
    b = pd.read_parquet(tmp_path / "b" / "days.parquet").drop(columns=drop)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / "agents.parquet"),
                                  pd.read_parquet(tmp_path / "b" / "agents.parquet"))


def test_run_py_study_dispatches_tso_dso_files(tmp_path):
    """``run.py study`` takes a tso-dso study file (scenarios/study.py PROTOCOLS), and a bad key in one ends
    in one line with exit status 2."""
    import subprocess
    import sys
    from pathlib import Path

    from scenarios.study import load_study as load_any

    root = Path(__file__).resolve().parent.parent
    study = load_any(root / "scenarios" / "studies" / "tso_dso_gencos.toml")
    assert study["protocol"] == "tso-dso" and study["days"] > 0
    bad = tmp_path / "bad.toml"
    bad.write_text('protocol = "tso-dso"\ncase = "tso24_dso5"\ndays = 1\nnonsense = 3\n')
    p = subprocess.run([sys.executable, str(root / "run.py"), "study", str(bad), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "nonsense" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
