"""OpenDSS export and AC check of LinDist3Flow on tes_feeder (README section 6)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("opendssdirect")

from network.io import read_case  # noqa: E402
from network.lindist3flow import LinDist3Flow  # noqa: E402
from network.model import Feeder, FeederLine, FeederNode, MeterLocation  # noqa: E402
from network.opendss import feeder_to_dss, run_dss, solve_dss  # noqa: E402

CASE_DIR = Path(__file__).resolve().parents[1] / "scenarios" / "data" / "tes_feeder"
OFF = {"G1": 0.0, "G2": 0.0, "WT": 0.0, "PV": 0.0}
GAS = {"G1": 125.0, "G2": 100.0, "WT": 0.0, "PV": 0.0}
README_ON = {"G1": 125.0, "G2": 100.0, "WT": 60.0, "PV": 0.0}


@pytest.fixture(scope="module")
def case():
    return read_case(CASE_DIR)


@pytest.fixture(scope="module")
def model(case):
    return LinDist3Flow(case.feeders["LV1"], power_unit=case.power_unit)


def compare(case, model, hour, gens):
    """LinDist3Flow and OpenDSS for baseline loads (q = p tan_phi) at ``hour``."""
    loads = {d.id: case.profile(d.baseline_profile)[hour] for d in case.loads}
    q = {d.id: loads[d.id] * d.tan_phi for d in case.loads}
    a_l = model.injection_matrix(case.meters, list(loads))
    a_g = model.injection_matrix(case.meters, list(gens), sign=-1.0)
    p_l = np.array(list(loads.values()))
    lin = model.evaluate(a_l @ p_l + a_g @ np.array(list(gens.values())), a_l @ np.array(list(q.values())))
    ac = run_dss(feeder_to_dss(case, {k: (loads[k], q[k]) for k in loads}, gens))
    v_ac = np.array([ac.voltages[k] for k in model.node_phases])
    return lin, ac, v_ac


@pytest.mark.parametrize("gens,max_diff,ac_import", [
    (OFF, 2.85e-3, 316.6),      # README table, 'off'
    (README_ON, 1.90e-3, 21.0),  # README table, 'on'
    (GAS, None, None),           # G1 and G2 only
])
def test_peak_hour_vs_opendss(case, model, gens, max_diff, ac_import):
    lin, ac, v_ac = compare(case, model, 19, gens)
    diff = np.abs(lin.v - v_ac)
    assert diff.max() <= 0.005
    assert ac.voltages[("2", "a")] == pytest.approx(1.0, abs=1e-8)
    if max_diff is not None:
        assert diff.max() == pytest.approx(max_diff, abs=5e-5)
        assert ac.source_kw == pytest.approx(ac_import, abs=0.05)
        assert (lin.v >= v_ac - 1e-9).all()  # LinDist3Flow is optimistic (lossless)


def test_readme_ac_ranges(case, model):
    lin, ac, v_ac = compare(case, model, 19, OFF)
    assert lin.import_power == pytest.approx(301.0, abs=0.05)
    assert v_ac.min() == pytest.approx(0.9264, abs=5e-5)
    assert {model.node_phases[i] for i in np.flatnonzero(v_ac < v_ac.min() + 1e-9)} <= {
        ("11", "a"), ("12", "a"), ("13", "a")}
    v7 = min(ac.voltages[("7", ph)] for ph in "abc")
    assert v7 == pytest.approx(0.9291, abs=5e-5)
    lin, ac, v_ac = compare(case, model, 19, README_ON)
    assert v_ac.min() == pytest.approx(0.9600, abs=5e-5) and v_ac.max() == pytest.approx(1.0236, abs=5e-5)


def test_hand_case_exact():
    """README section 3: the AC answer of the hand case is 0.8780 / 1.0484 / 0.9936."""
    r = np.array([[0.6545031, 0.12781045, 0.1373356], [0.12781045, 0.66604959, 0.14399879],
                  [0.1373356, 0.14399879, 0.6876541]]) * 0.3 / 0.0484
    x = np.array([[0.6059645, 0.3096012, 0.24967999], [0.3096012, 0.58627748, 0.28220403],
                  [0.24967999, 0.28220403, 0.55013983]]) * 0.3 / 0.0484
    f = Feeder("H", [FeederNode("S", "abc", None), FeederNode("R", "abc", "S")],
               [FeederLine("L", "S", "R", "abc", r, x)])
    v = solve_dss(feeder_to_dss(f, {"X": (20.0, 6.57)}, meters={"X": MeterLocation("H", "R", "a")}))
    np.testing.assert_allclose([v[("R", p)] for p in "abc"], [0.8780, 1.0484, 0.9936], atol=5e-5)


def test_script_content_and_repeat(case):
    loads = {d.id: (case.profile(d.baseline_profile)[19], 0.0) for d in case.loads}
    s = feeder_to_dss(case, loads, {"G1": 10.0})
    assert "bus1=9.2 bus2=10.2" in s  # L8 has phase b only
    assert "new load.RL6 phases=1 bus1=10.2 conn=wye kV=0.22 " in s
    assert "new generator.G1 phases=3 bus1=7.1.2.3 kV=0.381051177665 kW=10 kvar=0 model=1" in s
    assert "cmatrix=[0 | 0 0 | 0 0 0]" in s and "vminpu=0.5" in s
    v1 = solve_dss(s)
    v_other = solve_dss(feeder_to_dss(case, {}, {}))  # a different circuit in between
    v2 = solve_dss(s)
    assert v1 == v2
    assert len(v1) == 3 * 11 + 1 and v_other[("13", "c")] == pytest.approx(1.0, abs=1e-8)


def test_single_phase_feeder_and_odd_ids():
    """A 1-phase feeder with ids that OpenDSS would not accept as names."""
    nodes = [FeederNode("head 0", "a", None), FeederNode("x.1", "a", "head 0"), FeederNode("X.1", "a", "x.1")]
    lines = [FeederLine("l.1", "head 0", "x.1", "a", np.array([[0.02]]), np.array([[0.01]])),
             FeederLine("L.1", "x.1", "X.1", "a", np.array([[0.02]]), np.array([[0.01]]))]
    f = Feeder("F 1", nodes, lines, n_phases=1, v_base_kv=1.0, s_base_kva=1000.0)
    meters = {"d": MeterLocation("F 1", "X.1", "a")}
    m = LinDist3Flow(f, power_unit="MW")
    p = m.injection_matrix(meters, ["d"]) @ np.array([0.5])
    lin = m.evaluate(p, 0.2 * p)
    v = solve_dss(feeder_to_dss(f, {"d": (0.5, 0.1)}, meters=meters, power_unit="MW"))
    assert set(v) == {("head 0", "a"), ("x.1", "a"), ("X.1", "a")}
    for i, k in enumerate(m.node_phases):
        assert v[k] == pytest.approx(lin.v[i], abs=5e-3)
        assert v[k] < lin.v[i]


def test_circuit_fast_path_matches_the_script(case, model):
    """DssCircuit (compiled once, loads updated per hour) gives the exported script's answer, hour by hour,
    whatever was solved before (each solve starts from the initial guess), and the voltages of LinDist3Flow's
    node-phases in its order."""
    from network.opendss import DssCircuit

    c = DssCircuit(case.feeders["LV1"], case.meters)
    assert "MG" not in c.meter_ids and c.node_phases == model.node_phases  # the head meter is the source
    hours = [10, 12, 19]
    loads = {d.id: case.profile(d.baseline_profile)[hours] for d in case.loads}
    q = {d.id: loads[d.id] * d.tan_phi for d in case.loads}
    gens = {"G1": np.array([20.0, 60.0, 125.0]), "G2": np.array([0.0, 50.0, 100.0]), "WT": np.array([60.0, 80.0, 0.0])}
    P = np.array([loads[m] if m in loads else -gens.get(m, np.zeros(3)) for m in c.meter_ids])
    Q = np.array([q[m] if m in q else np.zeros(3) for m in c.meter_ids])
    ac = c.solve(P, Q)
    for k, t in enumerate(hours):
        ref = run_dss(feeder_to_dss(case, {m: (loads[m][k], q[m][k]) for m in loads},
                                    {g: float(v[k]) for g, v in gens.items()}))
        np.testing.assert_allclose(ac.v[:, k], [ref.voltages[n] for n in c.node_phases], atol=1e-9)
        # the import is summed over the head lines: the source power of the script agrees to its rounding noise
        assert ac.import_power[k] == pytest.approx(ref.source_kw, abs=5e-3)
        assert ac.losses[k] == pytest.approx(ac.import_power[k] - P[:, k].sum(), abs=1e-12)
        assert 0 < ac.losses[k] < 10
    again = c.solve(P[:, ::-1], Q[:, ::-1])  # other hours first, then the same ones
    np.testing.assert_array_equal(c.solve(P, Q).v, ac.v)
    np.testing.assert_array_equal(again.v[:, ::-1], ac.v)
    assert c.solves == 9


def test_circuit_losses_are_smooth(case):
    """The losses of nearby schedules differ smoothly (the source's own power would jump by ~1e-3 kW): a
    1 W change of G2 changes the losses by its loss factor, not by rounding noise."""
    from network.opendss import DssCircuit

    c = DssCircuit(case.feeders["LV1"], case.meters)
    base = np.array([-50.0 if m == "G1" else -40.0 if m == "G2" else 12.0 for m in c.meter_ids])
    g2 = c.meter_ids.index("G2")
    P = np.repeat(base[:, None], 5, axis=1)
    P[g2] += np.array([-2e-3, -1e-3, 0.0, 1e-3, 2e-3])  # G2 injects 2 W less ... 2 W more
    d = np.diff(c.solve(P, 0.3 * np.maximum(P, 0)).losses)
    assert np.all(np.abs(d) < 1e-4) and np.ptp(d) < 1e-7  # a constant slope: dL/dP_G2 (a loss factor) per W
