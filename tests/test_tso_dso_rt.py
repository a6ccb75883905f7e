"""tso-dso real time: DSO subproblem duals, and the TSO<->DSO decomposition against the joint SOCP."""
from __future__ import annotations

import numpy as np
import pytest

from agents.tso_dso.dso import AreaDSO
from agents.tso_dso.participants import locations_from_case, resources_from_case
from coordinator.boundary import Boundary
from coordinator.tso_dso.benchmarks import joint_rt, market_from_case
from coordinator.tso_dso.protocol import TSODSOProtocol
from coordinator.tso_dso.setup import TSODSOConfig
from coordinator.runtime import LocalRuntime
from scenarios.registry import load_case
from scenarios.tso_dso.wind import WindModel


@pytest.fixture(scope="module")
def case():
    return load_case("tso24_dso5")


def _dso(case, fid, ws):
    loc = locations_from_case(case)
    res = resources_from_case(case, grid=fid)
    a = int(fid[1])
    dso = AreaDSO(f"DSO{a}", case.feeders[fid], {r.id: loc[r.id][1] for r in res}, f"PCC{a}")
    for r in res:
        dso.set_offer(r, {"in_sample": ws.farm(r.id)} if r.kind == "wind" else None)
    return dso, res


@pytest.mark.parametrize("fid", ["F1", "F3"])
def test_dso_duals_are_sensitivities(case, fid):
    """beta = dD/dp, g = dD/dx, nu = dD/dW: checked by finite differences (sign conventions)."""
    ws = WindModel.from_case(case).scenarios(0.6, 4, 0, seed=1)
    dso, res = _dso(case, fid, ws)
    x = {r.id: (0.4 * r.p_max if r.kind != "wind" else 0.5 * ws.da_offer[ws.farm_ids.index(r.id)]) for r in res}
    dso.set_schedule(x)
    net = sum((-1 if r.kind == "dem" else 1) * x[r.id] for r in res)
    p = -net + np.array([-40.0, -10.0, 15.0, 30.0])
    base = dso.evaluate(p)
    assert base.slack.max() < 1e-6
    h = 1e-2
    d_p = (dso.evaluate(p + h).cost - base.cost) / h
    np.testing.assert_allclose(base.beta, d_p, rtol=1e-3, atol=1e-2)
    k = res[0].id
    dso.set_schedule({**x, k: x[k] + h})
    d_x = (dso.evaluate(p).cost - base.cost) / h
    dso.set_schedule(x)
    np.testing.assert_allclose(base.g[0], d_x, rtol=1e-3, atol=1e-2)
    if fid == "F3":  # the area with a wind farm (W7)
        w0 = dso.wind["W7"]["in_sample"].copy()
        dso.wind["W7"]["in_sample"] = w0 + h
        d_w = (dso.evaluate(p).cost - base.cost) / h
        dso.wind["W7"]["in_sample"] = w0
        np.testing.assert_allclose(base.nu[0], d_w, rtol=1e-3, atol=1e-2)


def test_penalised_slack_gives_complete_recourse(case):
    """Any exchange can be evaluated; beyond the PCC line's rating the slack pays the penalty.

    The DSO evaluates such requests just inside the rating and extrapolates; the value
    must equal the direct solve with the slack, and the "wall" cut must be valid.
    """
    ws = WindModel.from_case(case).scenarios(0.6, 2, 0, seed=1)
    dso, res = _dso(case, "F2", ws)
    dso.set_schedule({r.id: 0.0 for r in res})
    p = np.array([2000.0, -2000.0])
    direct = dso._evaluate(p, "in_sample", None, False)  # the raw problem, slack and all
    assert np.all(direct.slack > 1000)
    np.testing.assert_allclose(np.abs(direct.beta), dso.penalty, rtol=1e-6)
    r = dso.evaluate(p)
    assert list(r.wall) == [1.0, -1.0]
    # (the direct solve sits on the degenerate point at the rating: it is the less accurate of the two)
    np.testing.assert_allclose(r.value, direct.cost, rtol=1e-5)
    x = dso.x_vector()
    probe = np.linspace(-700.0, 700.0, 15)
    d = dso.evaluate(probe).value
    for s in (0, 1):
        coef, const = r.wall_cut(s, dso.resource_set.ids, x, dso.pcc_id)
        assert coef[dso.pcc_id] == pytest.approx(r.wall[s] * dso.penalty)
        cut = const + coef[dso.pcc_id] * probe + sum(coef[k] * x[i] for i, k in enumerate(dso.resource_set.ids))
        assert np.all(cut <= d + 1e-6 * np.maximum(1, np.abs(d)))


@pytest.fixture(scope="module")
def evaluated(case):
    """cm and pcc on 6 scenarios, evaluated in sample by the decomposition (LocalRuntime)."""
    ws = WindModel.from_case(case).scenarios(0.9, 6, 0, seed=3)
    proto = TSODSOProtocol(LocalRuntime(Boundary()), case, ws, TSODSOConfig(schemes=("cm", "pcc"), oos=False))
    return ws, {s: proto.run_scheme(s) for s in ("cm", "pcc")}


@pytest.mark.parametrize("scheme", ["cm", "pcc"])
def test_decomposed_rt_equals_joint_socp(case, evaluated, scheme):
    ws, results = evaluated
    res = results[scheme]
    ev = res.in_sample
    assert ev.rt_cost.size == 6
    joint = joint_rt(case, market_from_case(case, ws), res.x, ws.in_sample, ws.farm_ids)
    rel = np.abs(ev.rt_cost - joint["cost"]) / np.maximum(1.0, np.abs(joint["cost"]))
    assert rel.max() <= 1e-5, (ev.rt_cost, joint["cost"])
    # the decomposition's own bounds meet too
    assert np.all(ev.lower <= ev.rt_cost + 1e-6 * np.maximum(1, np.abs(ev.rt_cost)))
    # the relaxation gap is reported per feeder and scenario, and agrees with the joint problem's size
    gaps = ev.relaxation_gap
    assert set(gaps["feeder"]) == {"F1", "F2", "F3", "F4", "F5"} and len(gaps) == 5 * 6
    assert set(joint["relaxation_gap"]) == {"F1", "F2", "F3", "F4", "F5"}
    assert np.isfinite(gaps["gap_mw2"]).all() and np.isfinite(gaps["gap_rel_rating"]).all()
    assert (ev.diagnostics["slack"] < 1e-4).all()  # the exact penalty: no slack at the solution


def test_scenarios_of_a_set_share_no_state(case, evaluated):
    """Per-scenario costs do not depend on which other scenarios are in the batch."""
    ws, results = evaluated
    res = results["cm"]
    sub = WindModel.from_case(case).scenarios(0.9, 6, 0, seed=3)
    joint = joint_rt(case, market_from_case(case, ws), res.x, sub.in_sample[:, [2, 4]], ws.farm_ids)
    np.testing.assert_allclose(joint["cost"], res.in_sample.rt_cost[[2, 4]], rtol=1e-5)


def test_dso_solves_only_changed_exchanges(case):
    """An evaluation in the same context takes over the columns whose exchange did not change (the same problem)
    and solves the others: the same answer as a fresh evaluation, within the solver's tolerance; a new schedule
    or a new wind solves everything again. Taking and replacing columns keeps the solution's per-resource
    arrays even where the area has as many resources as the set has scenarios."""
    from agents.tso_dso.area_result import scatter, take

    ws = WindModel.from_case(case).scenarios(0.6, 4, 0, seed=1)
    dso, res = _dso(case, "F3", ws)
    x = {r.id: 0.4 * r.p_max if r.kind != "wind" else 0.5 * ws.da_offer[ws.farm_ids.index(r.id)] for r in res}
    dso.set_schedule(x)
    net = sum((-1 if r.kind == "dem" else 1) * x[r.id] for r in res)
    p = -net + np.array([-40.0, -10.0, 15.0, 30.0])
    first = dso.evaluate(p, context="c", keep_dispatch=True)
    q = p.copy()
    q[[1, 3]] += 5.0
    n0 = dso.n_reused
    again = dso.evaluate(q, context="c", keep_dispatch=True)
    assert dso.n_reused - n0 == 2
    fresh = AreaDSO.restore(dso.snapshot()).evaluate(q, keep_dispatch=True)  # no columns to take over
    np.testing.assert_array_equal(again.value[[0, 2]], first.value[[0, 2]])
    np.testing.assert_allclose(again.value, fresh.value, rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(again.beta, fresh.beta, rtol=1e-4, atol=1e-2)
    for k in ("p", "v", "P", "slack"):
        np.testing.assert_allclose(again.solution[k], fresh.solution[k], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(again.solution["x"], dso.x_vector())
    n0 = dso.n_reused
    dso.set_schedule({**x, res[0].id: x[res[0].id] + 1.0})
    dso.evaluate(q, context="c", keep_dispatch=True)
    assert dso.n_reused == n0  # a new schedule: every column solved
    # columns of a result whose solution has as many resources as scenarios
    sol = {"x": np.arange(4.0), "p": np.arange(8.0).reshape(2, 4)}
    r = take(first, np.arange(4))
    r.solution = sol
    part = take(r, np.array([1, 3]))
    assert part.solution["x"].shape == (4,) and part.solution["p"].shape == (2, 2)
    back = scatter(r, part, np.array([3, 1]))
    np.testing.assert_array_equal(back.solution["x"], sol["x"])
    np.testing.assert_array_equal(back.solution["p"], sol["p"][:, [0, 3, 2, 1]])
