"""The shared real-time re-dispatch block (agents/market_blocks.py): numbers by hand, and both problems use it."""
from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp

from agents.market_blocks import Redispatch, redispatch
from agents.tso_dso.dso import build_area_rt
from agents.tso_dso.participants import DEM, GEN, WIND, Resource, ResourceSet, locations_from_case, resources_from_case
from agents.tso_dso.realtime import build_transmission_rt
from network.model import TRANSMISSION
from scenarios.registry import load_case


def test_redispatch_by_hand():
    """Copper plate, two scenarios: a generator, a demand and a wind farm around a balanced day-ahead schedule.

    Prices ($/MWh): G da 20, up 5, down 3 (cost_up 25, cost_down -17); D da 30, up 4, down 2 (a
    demand's up is consuming less: cost_up 34, cost_down -28); W da 0, up 0, down 1. x = (G 4, W 2, D 6).
    Scenario 1, wind 1: W must go down 1 (cost 1), G up is the cheapest cover (25), and G up 2 more
    to let D consume its 2 MW of room pays (25 - 28 per MW): 1 + 3 * 25 - 2 * 28 = 20 $.
    Scenario 2, wind 4: W up 2 (free) lets D consume 2 more (-28 each): -56 $.
    """
    res = ResourceSet([Resource("G", GEN, 0.0, 10.0, 0.0, 0.0, 20.0, 5.0, 3.0),
                       Resource("W", WIND, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
                       Resource("D", DEM, 0.0, 8.0, 0.0, 0.0, 30.0, 4.0, 2.0)])
    S = 2
    x = cp.Parameter(3, value=np.array([4.0, 2.0, 6.0]))
    place = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))  # G and W on row 0, D on row 1
    b = redispatch(res, place, S, x, np.array([[1.0, 4.0]]), voll=1000.0, name="t")
    assert isinstance(b, Redispatch) and b.shed is not None and list(b.shed_rows) == [1]
    prob = cp.Problem(cp.Minimize(cp.sum(b.cost)), b.constraints + [cp.sum(b.injection, axis=0) == 0])
    prob.solve(solver="CLARABEL")
    assert prob.status == cp.OPTIMAL
    np.testing.assert_allclose(b.cost.value, [20.0, -56.0], atol=1e-6)
    np.testing.assert_allclose(b.y.value, [[7.0, 4.0], [1.0, 4.0], [8.0, 8.0]], atol=1e-6)
    np.testing.assert_allclose(b.shed.value, 0.0, atol=1e-6)
    # the dual of "fix" is d cost / d x: one more MW of G day-ahead saves its 25 $/MWh up in scenario 1
    assert b.fix.dual_value[0, 0] == pytest.approx(-25.0, abs=1e-5)
    with pytest.raises(ValueError, match="wind availability"):
        redispatch(res, place, S, x, None, voll=1000.0, name="t", label="test")


def test_both_real_time_problems_use_the_block():
    """The TSO's transmission problem and a DSO's area problem are built on the same block."""
    case = load_case("tso24_dso5")
    loc = locations_from_case(case)
    S = 2
    tres = ResourceSet(resources_from_case(case, grid=TRANSMISSION))
    tm = build_transmission_rt(case.transmission, tres, {k: loc[k][1] for k in tres.ids},
                               [case.feeders["F1"].pcc_bus], S, np.zeros(len(tres)),
                               np.ones((len(tres.wind_ids), S)), np.zeros((1, S)), voll=1e4)
    ares = ResourceSet(resources_from_case(case, grid="F3"))
    am = build_area_rt(case.feeders["F3"], ares, {k: loc[k][1] for k in ares.ids}, S, np.zeros(len(ares)),
                       np.ones((len(ares.wind_ids), S)), voll=1e4)
    for model, rs in ((tm, tres), (am, ares)):
        assert isinstance(model.block, Redispatch)
        assert model.fix is model.block.fix and model.block.xv.shape == (len(rs), S)
        assert all(c in model.constraints for c in model.block.constraints)
    assert tm.cost is tm.block.cost  # the TSO's cost is the block's; the DSO adds reactive shedding
    assert am.y_max is am.block.upper
