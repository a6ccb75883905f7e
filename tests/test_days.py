"""Days that differ: the seeded generator, each agent's own part of the days, NEW_DAY through the boundary."""
from __future__ import annotations

import numpy as np
import pytest

from coordinator.boundary import COORDINATOR, Boundary, BoundaryViolation
from coordinator.messages import Action, Command
from coordinator.runtime import LocalRuntime
from coordinator.simulation import TESMarketModel
from coordinator.tes.setup import TESConfig, private_days
from scenarios.days import DayGenerator
from scenarios.registry import load_case


@pytest.fixture(scope="module")
def case():
    return load_case("tes_competition")


def test_same_seed_same_year_other_seed_other_year(case):
    a, b, c = (DayGenerator(case, s).year(20) for s in (7, 7, 8))
    assert all(x.equals(y) for x, y in zip(a, b))
    assert not any(x.equals(y) for x, y in zip(a, c))
    # a day does not depend on which days were drawn before (resume continues the same year)
    assert DayGenerator(case, 7).profiles(13).equals(a[13])


def test_seasons_and_bounds(case):
    g = DayGenerator(case, 3)
    year = g.year(365)
    winter = list(range(0, 59)) + list(range(334, 365))
    summer = list(range(151, 243))

    def mean(col, days):
        return np.mean([year[d][col].sum() for d in days])

    assert mean("pv_avail_kw", summer) > 2 * mean("pv_avail_kw", winter)
    assert mean("wt_avail_kw", winter) > 1.1 * mean("wt_avail_kw", summer)
    # PV is zero at night, longer days in summer
    assert all(year[d]["pv_avail_kw"].iloc[[0, 1, 2, 22, 23]].eq(0).all() for d in range(365))
    assert (np.mean([(year[d]["pv_avail_kw"] > 0).sum() for d in summer])
            > np.mean([(year[d]["pv_avail_kw"] > 0).sum() for d in winter]) + 3)
    for y in year:
        assert (y["pv_avail_kw"] <= 60).all() and (y["wt_avail_kw"].between(0, 80)).all()
        assert (y["lmp_usd_per_kwh"] > 0).all()
        ratio = y["p0_RL1_kw"] / case.profiles["p0_RL1_kw"]
        assert ratio.between(0.8 - 1e-12, 1.2 + 1e-12).all()
        # the demand curve moves with the baseline (same retail price for the baseline)
        beta = next(ld.beta for ld in case.loads if ld.id == "RL1")
        np.testing.assert_allclose(y["alpha_RL1_usd_per_kwh"] - beta * y["p0_RL1_kw"],
                                   case.profiles["alpha_RL1_usd_per_kwh"] - beta * case.profiles["p0_RL1_kw"])
    # weekends lighter than weekdays on average
    load = [y.filter(like="p0_").to_numpy().sum() for y in year]
    assert np.mean([v for d, v in enumerate(load) if d % 7 in (5, 6)]) < np.mean(
        [v for d, v in enumerate(load) if d % 7 < 5])


def test_each_agent_gets_only_its_own_part(case):
    year = DayGenerator(case, 1).year(3)
    own = private_days(case, year)
    assert set(own) == {"MG", "LA", "DER1", "DER2", "DER3"}  # not the TES operator
    assert all(len(v) == 3 for v in own.values())
    assert set(own["MG"][0]) == {"lmp"}
    assert set(own["LA"][0]) == {"baselines", "alphas"} and set(own["LA"][0]["baselines"]) == {
        ld.id for ld in case.loads_of("LA")}
    assert own["DER1"][0] == {"available": {}}  # gas: no availability profile
    assert set(own["DER3"][1]["available"]) == {"WT", "PV"}
    np.testing.assert_array_equal(own["DER3"][1]["available"]["PV"], year[1]["pv_avail_kw"].to_numpy())


def test_new_day_is_a_command_only_to_the_roles_that_hold_days(case):
    """The policy lets NEW_DAY reach the main grid, DER managers and the LA only (not the TES operator)."""
    year = DayGenerator(case, 1).year(2)
    model = TESMarketModel(case, LocalRuntime(Boundary()), TESConfig(), benchmarks=False, profiles=year)
    with pytest.raises(BoundaryViolation):
        model.runtime.send([Command(COORDINATOR, "TESO", 0, action=Action.NEW_DAY, iteration=0)])


def test_the_days_data_reach_the_agents(case, tmp_path):
    """Each day the market clears on that day's data: the main grid's offer is the day's LMP, the DER
    managers offer the day's PV and wind, the LA's customers draw from the day's demand curves; and the
    audit log of the run verifies."""
    from coordinator.audit import main as audit

    year = DayGenerator(case, 4, start=170).year(2)
    boundary = Boundary(tmp_path / "audit.jsonl")
    model = TESMarketModel(case, LocalRuntime(boundary), TESConfig(), benchmarks=False, profiles=year)
    for d in range(2):
        model.step()
        res = model.results[-1]
        assert res.converged
        np.testing.assert_allclose(res.offers["MG"][0], year[d]["lmp_usd_per_kwh"])
        np.testing.assert_allclose(res.offers["PV"][1], year[d]["pv_avail_kw"])
        np.testing.assert_allclose(res.offers["WT"][1], year[d]["wt_avail_kw"])
        la = model.runtime._hosts["LA"].agent  # white box (LocalRuntime): the LA's own customers
        rl1 = next(c for c in la.customers if c.id == "RL1")
        np.testing.assert_allclose(rl1.p0, year[d]["p0_RL1_kw"])
        assert np.all(res.solution.loads["RL1"] >= rl1.lo - 1e-6) and np.all(res.solution.loads["RL1"] <= rl1.hi + 1e-6)
        # the analyst's view is the day's case
        np.testing.assert_allclose(model.case_of(d).profile("pv_avail_kw"), year[d]["pv_avail_kw"])
    assert not np.allclose(model.results[0].offers["MG"][0], model.results[1].offers["MG"][0])
    boundary.close()
    assert audit(str(tmp_path), quiet=True) == 0
