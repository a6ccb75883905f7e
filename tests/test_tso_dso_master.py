"""tso-dso day-ahead side: the market LP, the pcc master's big-M KKT, bounds against the extensive forms."""
from __future__ import annotations

import math

import numpy as np
import pytest

from agents.tso_dso.day_ahead import clear_da_market, equilibrium_price_interval
from agents.tso_dso.master import Master
from coordinator.boundary import Boundary
from coordinator.tso_dso.benchmarks import equilibrium_check, extensive_form, market_from_case
from coordinator.tso_dso.protocol import TSODSOProtocol
from coordinator.tso_dso.setup import TSODSOConfig
from coordinator.runtime import LocalRuntime
from scenarios.registry import load_case
from scenarios.tso_dso.wind import WindModel


@pytest.fixture(scope="module")
def case():
    return load_case("tso24_dso5")


@pytest.fixture(scope="module")
def ws3(case):
    return WindModel.from_case(case).scenarios(0.6, 3, 0, seed=0)


def test_da_market_lp_and_price(case, ws3):
    m = market_from_case(case, ws3)
    assert m.n == 19 + 7 + 27
    assert m.capped.sum() == 6 + 14  # distribution generators and demands (not the wind farm W7)
    r = clear_da_market(m)
    assert abs(m.sign @ r.x) < 1e-6
    lo, hi = m.price_range()
    assert lo <= r.price <= hi
    plo, phi = equilibrium_price_interval(m, r.x, r.upper)
    assert plo - 1e-9 <= r.price <= phi + 1e-9
    # the dual of "demand - supply == 0" is the price: one more MW of a price-taking demand costs lambda
    assert r.cost == pytest.approx(m.cost(r.x))


def test_big_m_from_data(case, ws3):
    m = market_from_case(case, ws3)
    mst = Master(m, "pcc", np.full(3, 1 / 3), -1e6)
    bm = mst.big_m()
    lo, hi = m.price_range()
    assert (lo, hi) == (0.0, 30.0)  # wind offers at 0, the highest bid (D27) 30 $/MWh
    gen = np.array([k == "gen" for k in m.kind])
    dem = np.array([k == "dem" for k in m.kind])
    np.testing.assert_allclose(bm["dual_plus"][gen], hi - m.price[gen])
    np.testing.assert_allclose(bm["dual_minus"][gen], m.price[gen] - lo)
    np.testing.assert_allclose(bm["dual_plus"][dem], m.price[dem] - lo)
    np.testing.assert_allclose(bm["dual_minus"][dem], hi - m.price[dem])
    np.testing.assert_allclose(bm["primal"], m.qty)
    assert mst.n_binaries == 2 * m.n


@pytest.fixture(scope="module")
def tight(case, ws3):
    """pcc, fc and cm on 3 scenarios at the default settings, and the extensive forms of pcc and fc."""
    proto = TSODSOProtocol(LocalRuntime(Boundary()), case, ws3, TSODSOConfig(oos=False))
    res = {s: proto.run_scheme(s) for s in ("pcc", "fc", "cm")}
    ext = {s: extensive_form(case, ws3, s) for s in ("pcc", "fc")}
    return res, ext


@pytest.mark.parametrize("scheme", ["pcc", "fc"])
def test_default_settings_match_extensive_form(tight, scheme):
    """Accurate by default: the decomposed result (the exact in-sample figure of the final decision) is within
    1e-4 of the extensive form's optimum, and the Benders bounds bracket it."""
    res, ext = tight
    r, e = res[scheme], ext[scheme]
    assert r.converged, r.stop_reason
    opt = e["objective"]
    result = -float(r.in_sample.welfare.mean())  # -E[SW] of the decision, evaluated to 1e-6 per scenario
    assert abs(result - opt) <= 1e-4 * abs(opt), (scheme, result, opt)
    assert r.upper - r.lower <= 5e-5 * r.scale  # the stopping rule
    for bound in (r.lower, r.upper):
        assert abs(bound - opt) <= 1e-4 * abs(opt), (scheme, r.lower, r.upper, opt)
    assert r.lower <= opt + 1e-6 * abs(opt) <= r.upper + 2e-6 * abs(opt)
    assert r.scale == pytest.approx(-clear_da_market(r.market).cost)  # W: the unconstrained clearing's welfare


def test_every_pcc_master_solution_is_a_market_equilibrium(tight):
    res, _ = tight
    r = res["pcc"]
    assert len(r.master_solutions) == r.n_iterations
    for m in r.master_solutions:
        chk = equilibrium_check(r.market, m["x"], m["caps"], m["price"])
        assert chk["ok"], (m["iteration"], {k: v for k, v in chk.items() if k.endswith("_ok") or k in
                                             ("same_where_unique", "on_face", "price_interval", "lp_price")})
    # cm's masters too (caps = P max)
    for m in res["cm"].master_solutions:
        assert equilibrium_check(res["cm"].market, m["x"], m["caps"], m["price"])["ok"]
    np.testing.assert_allclose(res["cm"].caps[res["cm"].market.capped], res["cm"].market.qty[res["cm"].market.capped])


def test_in_sample_ordering_fc_pcc_cm(tight):
    res, _ = tight
    sw = {s: res[s].in_sample.welfare.mean() for s in res}
    tol = 2 * 5e-5 * abs(sw["fc"])
    assert sw["fc"] >= sw["pcc"] - tol >= sw["cm"] - 2 * tol, sw
    # and the Benders bounds say the same (minimisation of -SW)
    assert res["fc"].lower <= res["pcc"].upper and res["pcc"].lower <= res["cm"].upper


@pytest.mark.parametrize("factor", [1.3])
def test_ordering_at_other_wind_levels(case, factor):
    ws = WindModel.from_case(case).scenarios(factor, 3, 0, seed=2)
    proto = TSODSOProtocol(LocalRuntime(Boundary()), case, ws, TSODSOConfig(oos=False))
    res = {s: proto.run_scheme(s) for s in ("pcc", "cm", "fc")}
    assert all(r.converged for r in res.values())
    sw = {s: r.in_sample.welfare.mean() for s, r in res.items()}
    tol = 2e-3 * max(abs(v) for v in sw.values())
    assert sw["fc"] >= sw["pcc"] - tol and sw["pcc"] >= sw["cm"] - tol, sw
    assert math.isnan(res["fc"].price) and not math.isnan(res["pcc"].price)
