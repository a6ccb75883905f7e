"""Branch-flow SOCP relaxation: tightness and agreement with pandapower's AC power flow."""
from __future__ import annotations

import warnings
from pathlib import Path

import cvxpy as cp
import numpy as np
import pytest

from network.distflow import (branch_flow_socp, line_incidence, node_map, pu_per_unit, relaxation_gap)
from network.io import read_case
from network.model import Feeder

DATA = Path(__file__).resolve().parents[1] / "scenarios" / "data"


def _pp():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pandapower as pp
        import pandapower.networks as pn
    return pp, pn


@pytest.fixture(scope="module")
def tso24():
    return read_case(DATA / "tso24_dso5")


@pytest.fixture(scope="module")
def case33bw():
    from network.importers import import_pandapower_case, load_pandapower_network

    return load_pandapower_network("case33bw"), import_pandapower_case("case33bw")


def _fixed_injections(case, feeder: Feeder, p_frac: float = 1.0, q_frac: float | None = None,
                      unit_output: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Net (generation - demand) injections per node in pu, loads at ``p_frac`` of ``p_max``."""
    k = pu_per_unit(feeder, case.power_unit)
    p = np.zeros(feeder.n_nodes)
    q = np.zeros(feeder.n_nodes)
    for d in case.loads:
        if d.grid != feeder.id:
            continue
        i = feeder.node_index[d.node]
        pd_ = p_frac * d.p_max
        qd = pd_ * d.tan_phi if np.isfinite(d.tan_phi) else (
            d.q_min + (q_frac if q_frac is not None else 0.5) * (d.q_max - d.q_min))
        p[i] -= pd_ * k
        q[i] -= qd * k
    for uid, out in (unit_output or {}).items():
        u = next(u for u in case.units if u.id == uid)
        p[feeder.node_index[u.node]] += out * k
    return p, q


def _min_losses(feeder: Feeder, p: np.ndarray, q: np.ndarray, **kw):
    """Minimise the losses in kW (an O(1)+ objective: Clarabel's absolute gap tolerance is 1e-8)."""
    m = branch_flow_socp(feeder, p, q, **kw)
    kw_per_pu = feeder.s_base_kva
    prob = cp.Problem(cp.Minimize(kw_per_pu * cp.sum(m.losses())), m.constraints)
    prob.solve(solver="CLARABEL")
    assert prob.status == cp.OPTIMAL
    return prob, m


def _pandapower_feeder_vm(feeder: Feeder, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """AC power flow (pp.runpp) of a single-phase feeder with the same pu data, |V| in node order."""
    pp, _ = _pp()
    sb = feeder.s_base_kva / 1000.0
    net = pp.create_empty_network(sn_mva=sb)
    # vn = 1 kV, sn = sb -> z_base = 1 / sb ohm
    bus = {n: pp.create_bus(net, vn_kv=1.0) for n in feeder.node_order}
    pp.create_ext_grid(net, bus[feeder.head], vm_pu=feeder.v_head)
    for ln in feeder.lines:
        pp.create_line_from_parameters(net, bus[ln.from_node], bus[ln.to_node], length_km=1.0,
                                       r_ohm_per_km=ln.r1 / sb, x_ohm_per_km=ln.x1 / sb, c_nf_per_km=0.0,
                                       max_i_ka=1e6)
    for n in feeder.node_order:
        i = feeder.node_index[n]
        if i != feeder.node_index[feeder.head] and (p[i] or q[i]):
            pp.create_load(net, bus[n], p_mw=-p[i] * sb, q_mvar=-q[i] * sb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, tolerance_mva=1e-10, max_iteration=50)
    return net.res_bus.vm_pu.to_numpy()


def test_case33bw_tight_and_equal_to_ac_power_flow(case33bw):
    net, case = case33bw
    feeder = case.feeders["F1"]
    p, q = _fixed_injections(case, feeder)
    prob, m = _min_losses(feeder, p, q)
    gap = relaxation_gap(m)
    assert gap.max_relative <= 1e-6
    # against pandapower's AC power flow of the original network
    pp, _ = _pp()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, tolerance_mva=1e-10)
    vm = np.array([net.res_bus.vm_pu[b] for b in net.bus.index])
    order = [feeder.node_index[str(net.bus.name[b])] for b in net.bus.index]
    assert np.abs(m.voltages()[order, 0] - vm).max() < 1e-3
    # losses and head import (MW) against pandapower's
    sb = feeder.s_base_kva / 1000
    assert m.p_head.value[0] * sb == pytest.approx(net.res_ext_grid.p_mw.iloc[0], abs=1e-4)
    assert prob.value / 1000 == pytest.approx(net.res_line.pl_mw.sum(), abs=1e-4)


def test_tso24_feeder_realistic_loads(tso24):
    feeder = tso24.feeders["F1"]
    assert pu_per_unit(feeder, "MW") == 1.0  # 1 MVA base: pu = MW
    p, q = _fixed_injections(tso24, feeder, p_frac=0.25, q_frac=0.5, unit_output={"G5": 40.0})
    prob, m = _min_losses(feeder, p, q)
    gap = relaxation_gap(m)
    assert gap.max_relative <= 1e-6
    vm = _pandapower_feeder_vm(feeder, p, q)
    assert np.abs(m.voltages()[:, 0] - vm).max() < 1e-3
    assert m.voltages().min() < 0.99  # a non-trivial voltage profile
    # power balance: import = load - generation + losses
    assert m.p_head.value[0] == pytest.approx(-p.sum() + prob.value / feeder.s_base_kva, abs=1e-5)


def test_scenario_columns_are_independent(tso24):
    feeder = tso24.feeders["F3"]
    cols = [_fixed_injections(tso24, feeder, p_frac=f, q_frac=0.3) for f in (0.1, 0.2, 0.3)]
    p = np.column_stack([c[0] for c in cols])
    q = np.column_stack([c[1] for c in cols])
    _, m = _min_losses(feeder, p, q)
    assert m.v.shape == (feeder.n_nodes, 3)
    for s, (pc, qc) in enumerate(cols):
        _, m1 = _min_losses(feeder, pc, qc)
        assert np.abs(m.voltages()[:, s] - m1.voltages()[:, 0]).max() < 1e-7
    assert relaxation_gap(m).max_relative <= 1e-6


def test_nodal_price_sign_and_value(tso24):
    """The balance dual is dCost/dDemand (demand - supply == 0), including marginal losses."""
    feeder = tso24.feeders["F1"]
    price = 20.0
    p, q = _fixed_injections(tso24, feeder, p_frac=0.2, q_frac=0.5)

    def solve(pv):
        m = branch_flow_socp(feeder, pv, q)
        prob = cp.Problem(cp.Minimize(price * cp.sum(m.p_head)), m.constraints)
        prob.solve(solver="CLARABEL")
        return prob.value, m

    base, m = solve(p)
    lam_p, lam_q = m.nodal_prices()
    head = feeder.node_index[feeder.head]
    assert lam_p[head, 0] == pytest.approx(price, rel=1e-6)
    far = feeder.node_index["29"]
    assert lam_p[far, 0] > price  # marginal losses make the far end dearer
    dp = 1e-3
    p2 = p.copy()
    p2[far] -= dp  # one more unit of demand at node 29
    cost2, _ = solve(p2)
    assert (cost2 - base) / dp == pytest.approx(lam_p[far, 0], rel=1e-4)


def test_limits_and_parameters(tso24):
    feeder = tso24.feeders["F1"]
    p, q = _fixed_injections(tso24, feeder, p_frac=0.25, q_frac=0.5)
    m = branch_flow_socp(feeder, p, q)
    prob = cp.Problem(cp.Minimize(cp.sum(m.losses())), m.constraints)
    assert prob.is_dpp()
    prob.solve(solver="CLARABEL")
    v_far = m.voltages()[-1, 0]
    m.v_head_sq.value = 1.02 ** 2
    prob.solve(solver="CLARABEL")
    assert m.voltages()[0, 0] == pytest.approx(1.02, abs=1e-7)
    assert m.voltages()[-1, 0] > v_far
    # a voltage floor above the solution makes the fixed-injection problem infeasible
    m.v_min_sq.value = np.full(m.v_min_sq.shape, 0.999 ** 2)
    prob.solve(solver="CLARABEL")
    assert prob.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)
    # line s_max in pu: 85.8 on L28-29
    assert feeder.lines[-1].s_max == 85.8 and m.s_max.value[-1] == 85.8


def test_helpers_and_errors(tso24):
    feeder = tso24.feeders["F2"]
    cf, ct = line_incidence(feeder)
    assert cf.shape == (feeder.n_lines, feeder.n_nodes)
    assert np.all((cf - ct).sum(axis=1) == 0)
    assert np.all(ct.sum(axis=0)[0, feeder.node_index[feeder.head]] == 0)
    nm = node_map(feeder, [feeder.head, feeder.head])
    assert nm.shape == (feeder.n_nodes, 2) and nm.sum() == 2
    gap = relaxation_gap({"P": [3.0, 0.0], "Q": [4.0, 0.0], "l": [25.0, 1e-12], "v_from": [1.0, 1.0]})
    assert gap.absolute == pytest.approx([0.0, 1e-12])
    assert gap.max_relative == pytest.approx(1e-3)  # 1e-12 over the 1e-9 floor
    with pytest.raises(ValueError):
        branch_flow_socp(feeder, np.zeros((feeder.n_nodes + 1, 1)), np.zeros((feeder.n_nodes + 1, 1)))
    tes = read_case(DATA / "tes_feeder")
    f3 = tes.feeders["LV1"]
    with pytest.raises(ValueError, match="single-phase"):
        branch_flow_socp(f3, np.zeros(f3.n_nodes), np.zeros(f3.n_nodes))


def test_head_voltage_option(tso24):
    """``head_voltage="free"``: the head voltage moves within the head node's limits (a transmission bus)."""
    feeder = tso24.feeders["F1"]
    p, q = _fixed_injections(tso24, feeder, p_frac=0.25, q_frac=0.5)
    head = feeder.node_index[feeder.head]
    hn = feeder.node(feeder.head)
    out = {}
    for mode in ("fixed", "free"):
        m = branch_flow_socp(feeder, p, q, head_voltage=mode)
        prob = cp.Problem(cp.Minimize(1e3 * cp.sum(m.losses())), m.constraints)
        prob.solve(solver="CLARABEL")
        assert prob.status == cp.OPTIMAL
        out[mode] = (m, float(prob.value))
    fixed, free = out["fixed"][0], out["free"][0]
    assert fixed.v_head_sq is not None and free.v_head_sq is None
    assert len(free.constraints) == len(fixed.constraints) + 1  # "==" replaced by two bounds, at the end
    assert fixed.voltages()[head, 0] == pytest.approx(feeder.v_head, abs=1e-7)
    # losses fall with the voltage: the free head goes to its upper limit, and the losses are lower
    assert free.voltages()[head, 0] == pytest.approx(hn.v_max, abs=1e-6)
    assert hn.v_max > feeder.v_head and out["free"][1] < out["fixed"][1]
    gap = relaxation_gap(free)
    assert gap.absolute_by_column.shape == (1,)
    assert gap.absolute_by_column[0] == pytest.approx(gap.absolute.max())
    with pytest.raises(ValueError, match="head_voltage"):
        branch_flow_socp(feeder, p, q, head_voltage="floating")
