"""The cases of the competition experiment (scenarios/build_tes_competition.py): no market is solved here."""
from __future__ import annotations

import numpy as np
import pytest

from scenarios.build_tes_competition import FLEET_SCALE, OLIGOPOLY_COUNTS, oligopoly_case, split_profiles
from scenarios.days import DayGenerator
from scenarios.registry import load_case


def _available(case, profiles=None):
    """kW available per DER manager and hour (the DER manager's own rule: min(profile, rating))."""
    prof = case.profiles if profiles is None else profiles
    out = {}
    for u in case.units:
        if u.kind == "main_grid":
            continue
        a = (np.minimum(prof[u.avail_profile].to_numpy(float), u.p_max) if u.avail_profile
             else np.full(case.horizon, u.p_max))
        out[u.owner] = out.get(u.owner, 0.0) + a
    return out


@pytest.mark.parametrize("n", OLIGOPOLY_COUNTS)
def test_oligopoly_cases_are_identical_firms_sharing_the_scaled_fleet(n):
    base = load_case("tes_feeder")
    case = load_case(f"tes_oligopoly{n}")  # the case folder on disk is the builder's output
    built = oligopoly_case(base, n)
    assert sorted((u.id, u.owner, u.p_max, u.cost) for u in case.units) == sorted(
        (u.id, u.owner, u.p_max, u.cost) for u in built.units)
    mgrs = [o.id for o in case.owners if o.role == "der_manager"]
    assert mgrs == [f"DER{k}" for k in range(1, n + 1)]
    # on a generated day of tes_feeder: each firm has 1/N of FLEET_SCALE x tes_feeder's availability
    day = DayGenerator(base, 0).profiles(5)
    whole = sum(_available(base, day).values())
    per = _available(case, split_profiles(base, day, n))
    for m in mgrs:
        assert per[m] == pytest.approx(FLEET_SCALE * whole / n)
    # the costs per technology are tes_feeder's; every other table is unchanged
    costs = {u.id: u.cost for u in base.units if u.kind != "main_grid"}
    assert all(u.cost == costs[u.id.rsplit("_", 1)[0]] for u in case.units if u.kind != "main_grid")
    assert case.loads == base.loads and case.feeders == base.feeders


def test_the_technology_split_is_unchanged():
    """tes_competition keeps tes_feeder's units whole: one manager owns wind and PV."""
    case = load_case("tes_competition")
    assert {u.id: u.owner for u in case.units if u.kind != "main_grid"} == {
        "G1": "DER1", "G2": "DER2", "WT": "DER3", "PV": "DER3"}
