"""DC power flow: B-theta and PTDF builders, numeric flows, dual signs."""
from __future__ import annotations

import warnings
from pathlib import Path

import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp

from network.dc import dc_btheta, dc_power_flow, dc_ptdf, incidence, power_scale, ptdf
from network.io import read_case
from network.model import TRANSMISSION, Bus, DCLine, TransmissionGrid

DATA = Path(__file__).resolve().parents[1] / "scenarios" / "data"


@pytest.fixture(scope="module")
def tso24():
    return read_case(DATA / "tso24_dso5")


def _balanced_injection(grid: TransmissionGrid, s: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.normal(0.0, 150.0, (grid.n_buses, s))
    return p - p.mean(axis=0, keepdims=True)


def _pandapower_dc_flows(grid: TransmissionGrid, p: np.ndarray) -> np.ndarray:
    """Independent reference: pandapower's DC power flow on the same reactances."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pandapower as pp

        net = pp.create_empty_network(sn_mva=grid.base_mva)
        # vn = 1 kV and sn = base_mva give z_base = 1 / base_mva ohm
        zb = 1.0 / grid.base_mva
        bus = {b: pp.create_bus(net, vn_kv=1.0, name=b) for b in grid.bus_ids}
        for ln in grid.lines:
            pp.create_line_from_parameters(net, bus[ln.from_bus], bus[ln.to_bus], length_km=1.0, r_ohm_per_km=0.0,
                                           x_ohm_per_km=ln.x * zb, c_nf_per_km=0.0, max_i_ka=1e3)
        pp.create_ext_grid(net, bus[grid.ref_bus])
        for b, v in zip(grid.bus_ids, p):
            if v > 0:
                pp.create_sgen(net, bus[b], p_mw=float(v))
            elif v < 0:
                pp.create_load(net, bus[b], p_mw=float(-v))
        pp.rundcpp(net)
        return net.res_line.p_from_mw.to_numpy()


def test_dc_flows_equal_pandapower(tso24):
    grid = tso24.transmission
    p = _balanced_injection(grid, 1)[:, 0]
    ref = _pandapower_dc_flows(grid, p)
    flows = dc_power_flow(grid, p)
    assert np.abs(flows - ref).max() < 1e-6
    assert np.abs(ptdf(grid) @ p - ref).max() < 1e-6


def test_ptdf_is_independent_of_base_and_matches_scipy(tso24):
    grid = tso24.transmission
    h = ptdf(grid)
    assert h.shape == (grid.n_lines, grid.n_buses)
    assert np.all(h[:, grid.bus_index[grid.ref_bus]] == 0)
    # independent: flows from a least-squares angle solution of the full Laplacian
    a = incidence(grid).toarray()
    bbus = a.T @ np.diag(grid.susceptance()) @ a
    p = _balanced_injection(grid, 2, seed=3)
    theta = np.linalg.pinv(bbus) @ p
    ref = np.diag(grid.susceptance()) @ a @ theta
    assert np.abs(h @ p - ref).max() < 1e-6
    # kW scaling: flows scale with the power unit, the PTDF does not
    assert power_scale(grid, "kW") == 1000 * power_scale(grid, "MW")
    assert np.allclose(dc_power_flow(grid, 1000 * p, power_unit="kW"), 1000 * dc_power_flow(grid, p))


def test_btheta_and_ptdf_fixed_injection(tso24):
    grid = tso24.transmission
    p = _balanced_injection(grid, 3, seed=1)
    ref = dc_power_flow(grid, p)
    bt = dc_btheta(grid, p, enforce_limits=False)
    cp.Problem(cp.Minimize(0), bt.constraints).solve(solver="CLARABEL")
    assert np.abs(bt.flow.value - ref).max() < 1e-6
    _, theta = dc_power_flow(grid, p, return_theta=True)
    assert np.abs(bt.theta.value - theta).max() < 1e-6
    pt = dc_ptdf(grid, p, enforce_limits=False)
    assert np.abs(pt.flow.value - ref).max() < 1e-6


def _dispatch(grid: TransmissionGrid, case, load_levels, rating_scale: float, form: str):
    units = [u for u in case.units if u.grid == TRANSMISSION and u.p_max > 0]
    loads = [d for d in case.loads if d.grid == TRANSMISSION]
    s = len(load_levels)
    mu = sp.csr_matrix((np.ones(len(units)), ([grid.bus_index[u.node] for u in units], range(len(units)))),
                       shape=(grid.n_buses, len(units)))
    dem = np.zeros((grid.n_buses, s))
    for d in loads:
        dem[grid.bus_index[d.node]] += d.p_max * np.asarray(load_levels)
    g = cp.Variable((len(units), s), nonneg=True)
    pmax = np.array([u.p_max for u in units])[:, None] @ np.ones((1, s))
    cost = np.array([u.offer_da for u in units])
    p_inj = mu @ g - dem
    builder = dc_btheta if form == "btheta" else dc_ptdf
    net = builder(grid, p_inj, ratings=grid.ratings() * rating_scale)
    prob = cp.Problem(cp.Minimize(cp.sum(cost @ g)), [g <= pmax, *net.constraints])
    prob.solve(solver="CLARABEL")
    assert prob.status == cp.OPTIMAL
    return prob, net


def test_btheta_and_ptdf_dispatch_agree_with_congestion(tso24):
    grid = tso24.transmission
    levels = [0.5, 0.7]
    pb, bt = _dispatch(grid, tso24, levels, 0.8, "btheta")
    pp_, pt = _dispatch(grid, tso24, levels, 0.8, "ptdf")
    assert pb.value == pytest.approx(pp_.value, rel=1e-7)
    assert np.abs(bt.flow.value - pt.flow.value).max() < 1e-4
    # congestion: some lines at their (reduced) limit, so LMPs differ across buses
    lim = grid.ratings() * 0.8
    assert (np.abs(bt.flow.value) > lim[:, None] - 1e-4).sum() >= 2
    lmp_b, lmp_p = bt.nodal_prices(), pt.nodal_prices()
    assert lmp_b.shape == (grid.n_buses, 2)
    assert np.ptp(lmp_b[:, 1]) > 1.0
    assert np.abs(lmp_b - lmp_p).max() < 1e-4
    # B-theta LMPs = lambda_ref - PTDF^T mu with the B-theta congestion prices
    recon = lmp_b[grid.bus_index[grid.ref_bus]] - ptdf(grid).T @ bt.congestion_prices()
    assert np.abs(recon - lmp_b).max() < 1e-4


def test_rating_parameter_resolve(tso24):
    grid = tso24.transmission
    p = cp.Parameter((grid.n_buses, 1), value=_balanced_injection(grid, 1, seed=5))
    slack = cp.Variable((grid.n_buses, 1))
    bt = dc_btheta(grid, p + slack)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(slack)), bt.constraints)
    assert prob.is_dpp()
    prob.solve(solver="CLARABEL")
    big = np.abs(bt.flow.value).max()
    bt.rating.value = np.minimum(grid.ratings()[bt.limited], 0.5 * big)
    prob.solve(solver="CLARABEL")
    assert np.abs(bt.flow.value).max() <= 0.5 * big + 1e-5


def _two_bus():
    grid = TransmissionGrid([Bus("1"), Bus("2")], [DCLine("L", "1", "2", x=0.1, rating=100.0)], base_mva=100.0,
                            ref_bus="1")
    return grid


@pytest.mark.parametrize("form", ["btheta", "ptdf"])
@pytest.mark.parametrize("rating,expected", [(100.0, [10.0, 10.0]), (30.0, [10.0, 30.0])])
def test_dual_sign_two_bus(form, rating, expected):
    """The balance dual (demand - supply == 0) is the marginal generator's price."""
    grid = _two_bus()
    g = cp.Variable(2, nonneg=True)  # cheap unit at bus 1 (10 $/MWh), dear unit at bus 2 (30 $/MWh)
    demand = np.array([0.0, 50.0])
    p_inj = cp.reshape(g - demand, (2, 1), order="F")
    builder = dc_btheta if form == "btheta" else dc_ptdf
    net = builder(grid, p_inj, ratings=np.array([rating]))
    prob = cp.Problem(cp.Minimize(np.array([10.0, 30.0]) @ g), [g <= 100.0, *net.constraints])
    prob.solve(solver="CLARABEL")
    lmp = net.nodal_prices()[:, 0]
    assert lmp == pytest.approx(expected, abs=1e-5)
    if form == "btheta":
        assert net.balance.dual_value[:, 0] == pytest.approx(expected, abs=1e-5)
    # the dual is dCost/dDemand: check by finite difference at bus 2
    base = prob.value
    demand[1] += 1.0
    p2 = cp.reshape(g - demand, (2, 1), order="F")
    net2 = builder(grid, p2, ratings=np.array([rating]))
    prob2 = cp.Problem(cp.Minimize(np.array([10.0, 30.0]) @ g), [g <= 100.0, *net2.constraints])
    prob2.solve(solver="CLARABEL")
    assert prob2.value - base == pytest.approx(expected[1], abs=1e-4)


def test_bad_shapes(tso24):
    grid = tso24.transmission
    with pytest.raises(ValueError):
        dc_btheta(grid, np.zeros((grid.n_buses + 1, 2)))
    with pytest.raises(ValueError):
        dc_power_flow(grid, np.zeros(3))
    with pytest.raises(ValueError):
        power_scale(grid, "GW")


def test_series_capacitor_grid():
    """A negative reactance is a series capacitor: the DC flow and the PTDFs stay finite and exact;
    a capacitor that cancels its parallel line leaves a singular B, refused in one line."""
    from network.errors import CaseError

    buses = [Bus("1"), Bus("2"), Bus("3")]
    # loop 1-2-3 with a compensated line 1-3: x = 0.2 - 0.05 (reactor 0.2 with capacitor -0.05 in series
    # would be one line; here the capacitor is its own branch 1-3 of x = -0.05 in parallel with 1-3 x = 0.2)
    lines = [DCLine("a", "1", "2", 0.1, 100.0), DCLine("b", "2", "3", 0.1, 100.0),
             DCLine("c", "1", "3", 0.2, 100.0), DCLine("cap", "1", "3", -0.5, 100.0)]
    grid = TransmissionGrid(buses, lines, base_mva=100.0, ref_bus="1")
    p = np.array([0.0, 0.0, -50.0])  # 50 MW drawn at bus 3, supplied by the reference bus 1
    flows = dc_power_flow(grid, p)
    # 1-3 directly: b = 1/0.2 - 1/0.5 = 3 (x 1/3); via 2: x 0.2 (b 5): the direct path carries 3/8
    assert flows[2] + flows[3] == pytest.approx(50.0 * 3 / 8)
    assert flows[0] == pytest.approx(50.0 * 5 / 8) and flows[3] < 0  # the capacitor carries a reverse flow
    assert np.isfinite(ptdf(grid)).all()
    singular = [DCLine("a", "1", "2", 0.1, 100.0), DCLine("b", "2", "3", 0.1, 100.0),
                DCLine("cap", "2", "3", -0.1, 100.0)]  # b + (-b) = 0: bus 3 hangs on nothing
    with pytest.raises(CaseError) as err:
        TransmissionGrid(buses, singular, ref_bus="1")
    assert "singular" in str(err.value) and "cap" in str(err.value) and "\n" not in str(err.value)
