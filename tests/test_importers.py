"""Importers from pandapower and MATPOWER: valid cases, faithful physics, located errors."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from network.dc import dc_power_flow
from network.errors import CaseError
from network.importers import (PANDAPOWER_CASES, from_pandapower_feeder, from_pandapower_lv_asymmetric,
                               from_pandapower_transmission, import_pandapower_case, load_pandapower_network,
                               parse_matpower, read_matpower)
from network.model import Case

CASE9 = Path(__file__).parent / "data" / "case9.m"


def _pp():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pandapower as pp
        import pandapower.networks as pn
    return pp, pn


def _net(name: str):
    return load_pandapower_network(name)


@pytest.fixture(scope="module")
def imported() -> dict[str, Case]:
    return {n: import_pandapower_case(n) for n in PANDAPOWER_CASES}


def test_every_import_is_a_valid_case(imported):
    c24 = imported["case24_ieee_rts"]
    assert c24.transmission.n_buses == 24 and c24.transmission.n_lines == 33 + 5
    assert c24.transmission.ref_bus == "13"  # the ext_grid bus
    assert len(c24.units) == 1 + 10 + 22 and len(c24.loads) == 17
    assert sum(d.p_max for d in c24.loads) == pytest.approx(2850.0)
    assert c24.power_unit == "MW" and "cost_c2" in c24.parameters
    c33 = imported["case33bw"]
    f = c33.feeders["F1"]
    assert f.n_phases == 1 and f.n_nodes == 33 and f.n_lines == 32 and f.head == "0"
    assert f.s_base_kva == 10000.0 and f.v_base_kv == 12.66
    assert sum(d.p_max for d in c33.loads) == pytest.approx(3.715)
    assert [u.id for u in c33.units] == ["MG"] and c33.units[0].kind == "main_grid"
    lv = imported["ieee_european_lv_asymmetric"]
    f3 = lv.feeders["LV1"]
    assert f3.n_phases == 3 and f3.n_nodes == 907 and f3.head == "SOURCEBUS"
    assert len(lv.loads) == 55 and all(len(d.phases) == 1 for d in lv.loads)
    assert lv.power_unit == "kW"
    for case in imported.values():
        assert isinstance(case, Case)


def test_case24_dc_flows_equal_pandapower(imported):
    pp, _ = _pp()
    net = _net("case24_ieee_rts")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.rundcpp(net)
    grid = imported["case24_ieee_rts"].transmission
    p = np.zeros(grid.n_buses)
    for i, r in net.res_bus.iterrows():
        p[grid.bus_index[str(net.bus.name[i])]] -= r.p_mw
    ref = np.r_[net.res_line.p_from_mw.to_numpy(), net.res_trafo.p_hv_mw.to_numpy()]
    assert np.abs(dc_power_flow(grid, p) - ref).max() < 1e-6  # includes the transformers' taps


@pytest.mark.parametrize("name", ["case118", "case300"])
def test_large_grids_dc_flows_equal_pandapower(name):
    """case118 and case300 (one series capacitor: line 150, x < 0) against pandapower's DC power flow.

    pandapower models a transformer as a T by default, folding its magnetizing branch (case300's
    ``i0_percent`` < 0) into the series reactance (up to 1.3 MW on T30); the DC model, like
    MATPOWER's, is the pi model with shunts dropped, so the reference is ``trafo_model="pi"``.
    """
    from network.importers.pandapower_tables import _bus_ids

    pp, _ = _pp()
    net = _net(name)
    case = from_pandapower_transmission(net, name)
    grid = case.transmission
    if name == "case300":
        assert min(ln.x for ln in grid.lines) < 0 and grid.n_buses == 300 and grid.n_lines == 411
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.rundcpp(net, trafo_model="pi")
    ids = _bus_ids(net)
    p = np.zeros(grid.n_buses)
    for i, r in net.res_bus.iterrows():
        p[grid.bus_index[ids[i]]] -= r.p_mw
    ref = np.r_[net.res_line.p_from_mw.to_numpy(), net.res_trafo.p_hv_mw.to_numpy()]
    flows = dc_power_flow(grid, p)
    assert np.abs(flows - ref).max() < 1e-6 * np.abs(ref).max()  # MW, relative to the largest flow (~1e3 MW)


def test_case33bw_impedances(imported):
    net = _net("case33bw")
    f = imported["case33bw"].feeders["F1"]
    zb = 12.66 ** 2 / 10.0
    ln = next(ln for ln in f.lines if ln.from_node == "0")
    assert ln.r1 == pytest.approx(0.0922 / zb) and ln.x1 == pytest.approx(0.047 / zb)
    assert math.isinf(ln.s_max)  # 99999 kA means "no limit"
    assert {ln.id for ln in f.lines} == {f"L{i}" for i in net.line.index[net.line.in_service]}


def test_lv_asymmetric_phase_impedance_and_three_phase_power_flow(imported):
    """A three-phase backward/forward sweep on the imported data reproduces pp.runpp_3ph."""
    pp, _ = _pp()
    net = _net("ieee_european_lv_asymmetric")
    case = imported["ieee_european_lv_asymmetric"]
    f = case.feeders["LV1"]
    line = f.lines[1]
    r = net.line.loc[net.line.name == line.id].iloc[0]
    zb = (0.416 / math.sqrt(3)) ** 2 / 1.0
    z1, z0 = r.r_ohm_per_km * r.length_km / zb, r.r0_ohm_per_km * r.length_km / zb
    assert line.r[0, 0] == pytest.approx((z0 + 2 * z1) / 3) and line.r[0, 1] == pytest.approx((z0 - z1) / 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp_3ph(net)
    ref = net.res_bus_3ph[["vm_a_pu", "vm_b_pu", "vm_c_pu"]].to_numpy()
    v = _sweep(f, case.loads)
    idx = [f.node_index[str(n)] for n in net.bus.name]
    assert np.abs(np.abs(v[idx]) - ref).max() < 1e-4


def _sweep(f, loads) -> np.ndarray:
    """Unbalanced backward/forward sweep, constant-PQ wye loads, pu phase-neutral voltages."""
    a = np.exp(2j * np.pi / 3)
    s = np.zeros((f.n_nodes, 3), complex)
    for d in loads:
        ph = "abc".index(d.phases)
        s[f.node_index[d.node], ph] += d.p_max * (1 + 1j * d.tan_phi) / f.s_base_kva
    v = np.tile(f.v_head * np.array([1, a ** 2, a]), (f.n_nodes, 1))
    lines = [f.line_by_child[n] for n in f.node_order[1:]]
    par = [f.node_index[ln.from_node] for ln in lines]
    chi = [f.node_index[ln.to_node] for ln in lines]
    z = [ln.r + 1j * ln.x for ln in lines]
    for _ in range(50):
        i = np.conj(s / v)
        for k in range(len(lines) - 1, -1, -1):
            i[par[k]] += i[chi[k]]
        new = v.copy()
        for k in range(len(lines)):
            new[chi[k]] = new[par[k]] - z[k] @ i[chi[k]]
        done = np.abs(new - v).max() < 1e-12
        v = new
        if done:
            break
    return v


def test_lv_without_transformer(imported):
    case = from_pandapower_lv_asymmetric(_net("ieee_european_lv_asymmetric"), "lv", include_trafo=False)
    f = case.feeders["LV1"]
    assert f.head == "1" and f.n_nodes == 906
    assert f.v_head == pytest.approx(1.05, abs=1e-6)


def test_read_matpower_case9_equals_pandapower():
    case = read_matpower(CASE9)
    g = case.transmission
    assert g.base_mva == 100.0 and g.ref_bus == "1" and g.n_buses == 9 and g.n_lines == 9
    assert [u.cost for u in case.units] == [5.0, 1.2, 1.0]
    assert case.parameters["cost_c2"] == {"G1": 0.11, "G2": 0.085, "G3": 0.1225}
    assert [(d.node, d.p_max) for d in case.loads] == [("5", 90.0), ("7", 100.0), ("9", 125.0)]
    assert case.loads[0].tan_phi == pytest.approx(30 / 90)
    assert [ln.rating for ln in g.lines][:3] == [250.0, 250.0, 150.0]
    pp, _ = _pp()
    net = _net("case9")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.rundcpp(net)
    p = np.zeros(g.n_buses)
    for i, r in net.res_bus.iterrows():
        p[g.bus_index[str(net.bus.name[i])]] -= r.p_mw
    assert np.abs(dc_power_flow(g, p) - net.res_line.p_from_mw.to_numpy()).max() < 1e-6


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bad.m"
    p.write_text(text, encoding="utf-8")
    return p


def test_matpower_errors_are_located(tmp_path):
    text = CASE9.read_text()
    bad_x = text.replace("8\t9\t0.032\t0.161", "8\t9\t0.032\t0")
    with pytest.raises(CaseError) as e:
        read_matpower(_write(tmp_path, bad_x))
    assert e.value.file == "bad.m:mpc.branch" and e.value.row == 8 and e.value.column == "BR_X"
    assert "non-zero" in e.value.message
    # a series capacitor (x < 0) is accepted while the DC flow stays solvable
    assert read_matpower(_write(tmp_path, text.replace("8\t9\t0.032\t0.161", "8\t9\t0.032\t-0.02")))
    bad_bus = text.replace("9\t4\t0.01", "19\t4\t0.01")
    with pytest.raises(CaseError) as e:
        read_matpower(_write(tmp_path, bad_bus))
    assert e.value.row == 9 and e.value.column == "F_BUS"
    bad_gen = text.replace("300\t10\t0\t0", "-5\t10\t0\t0", 1)
    with pytest.raises(CaseError) as e:
        read_matpower(_write(tmp_path, bad_gen))
    assert e.value.file == "bad.m:mpc.gen" and e.value.row == 2 and e.value.column in ("PMAX", "PMIN")
    no_ref = text.replace("1\t3\t0\t0", "1\t2\t0\t0", 1)
    with pytest.raises(CaseError, match="reference bus"):
        read_matpower(_write(tmp_path, no_ref))
    with pytest.raises(CaseError) as e:
        read_matpower(_write(tmp_path, text.replace("mpc.branch = [", "mpc.branchX = [")))
    assert "mpc.branch" in str(e.value)
    with pytest.raises(CaseError) as e:
        parse_matpower("mpc.bus = [1 2 x;];", file="t.m")
    assert e.value.file == "t.m:mpc.bus" and e.value.row == 1


def test_matpower_parser_details(tmp_path):
    text = ("function mpc = tiny\nmpc.baseMVA = 10; % base\nmpc.bus = [1, 3, 0, 0, 0, 0, 1, 1, 0, 10, 1, 1.1, 0.9\n"
            "2 1 5 1 0 0 1 1 0 10 1 1.1 0.9];\nmpc.gen = [1 0 0 5 -5 1 10 1 8 0];\n"
            "mpc.branch = [1 2 0.01 0.1 0 0 0 0 0.95 3 1; 1 2 0.01 0.2 0 0 0 0 0 0 0];\n"
            "mpc.gencost = [1 0 0 2 0 0 8 40];\n")
    case = read_matpower(_write(tmp_path, text), name="tiny")
    (ln,) = case.transmission.lines  # the second branch is out of service
    assert ln.x == pytest.approx(0.1 * 0.95) and math.isinf(ln.rating)
    assert "phase shift" in case.description
    assert case.units[0].cost == pytest.approx(5.0)


def test_pandapower_errors_are_located():
    net = _net("case33bw")
    net.line.loc[33, "in_service"] = True  # close a tie line: a loop
    with pytest.raises(CaseError) as e:
        from_pandapower_feeder(net, "mesh")
    assert e.value.file == "line" and e.value.row is not None and "loop" in e.value.message
    net = _net("case33bw")
    net.load.loc[4, "p_mw"] = -1.0
    with pytest.raises(CaseError) as e:
        from_pandapower_feeder(net, "neg")
    assert (e.value.file, e.value.row, e.value.column) == ("load", 4, "p_mw")
    net = _net("case24_ieee_rts")
    net.line.loc[3, "x_ohm_per_km"] = 0.0
    with pytest.raises(CaseError) as e:
        from_pandapower_transmission(net, "bad")
    assert (e.value.file, e.value.row, e.value.column) == ("line", 3, "x_ohm_per_km")
    with pytest.raises(CaseError, match="unknown pandapower case"):
        import_pandapower_case("case_nope")


def test_feeder_switch_collapse():
    """Closed bus-bus switches are collapsed; an open line switch opens a line."""
    pp, _ = _pp()
    net = pp.create_empty_network(sn_mva=1.0)
    b = [pp.create_bus(net, vn_kv=10.0, name=f"n{i}") for i in range(5)]
    pp.create_ext_grid(net, b[0])
    pp.create_line_from_parameters(net, b[0], b[1], 1.0, 0.1, 0.1, 0.0, 1.0)
    pp.create_switch(net, b[1], b[2], et="b", closed=True)
    pp.create_line_from_parameters(net, b[3], b[2], 1.0, 0.2, 0.1, 0.0, 1.0)  # reversed on purpose
    l4 = pp.create_line_from_parameters(net, b[3], b[4], 1.0, 0.2, 0.1, 0.0, 1.0)
    pp.create_line_from_parameters(net, b[4], b[0], 1.0, 0.2, 0.1, 0.0, 1.0)  # would close a loop
    pp.create_switch(net, b[4], l4, et="l", closed=False)
    pp.create_load(net, b[2], p_mw=0.1, q_mvar=0.02)
    case = from_pandapower_feeder(net, "sw", power_unit="kW")
    f = case.feeders["F1"]
    assert sorted(f.node_order) == ["n0", "n1", "n3", "n4"]
    assert {(ln.from_node, ln.to_node) for ln in f.lines} == {("n0", "n1"), ("n1", "n3"), ("n0", "n4")}
    assert case.loads[0].node == "n1" and case.loads[0].p_max == pytest.approx(100.0)
