"""OpenDSS feeder import (``network.importers.read_dss``, ``run.py import FILE.dss``).

Round trips of built-in feeders through the OpenDSS export, a hand-written feeder
(``tests/data/small_feeder.dss``), the one-line errors for what the feeder form cannot hold, and the
command line up to a tso-dso run on a case made from an imported feeder. A hand-written two-voltage
feeder (``tests/data/two_voltage_feeder.dss``: 115 kV source, delta-wye substation transformer, a
single-phase regulator bank, a capacitor bank, a 4.16/0.48 kV transformer): per-zone impedances by
hand, OpenDSS on the imported case = OpenDSS on the file (1e-9), LinDist3Flow against OpenDSS, the
regulator refused without ``--regulators nominal``, and the command line up to a tso-dso run.

Voltage tolerances: OpenDSS against OpenDSS (the file's own solution against the imported case
exported again) must agree to 1e-9 pu: the import is exact, and both are solved to 1e-10. LinDist3Flow
on the imported case must equal LinDist3Flow on the source case to 1e-9 (the same model on the same
numbers), and differs from OpenDSS by its linearization error (losses neglected): on tes_feeder at
the evening peak it is 1.1e-3 pu here, and 1.9e-3 - 2.85e-3 pu in the peak-hour checks of
tests/test_opendss.py, so the bound is 3e-3 pu. On the two-voltage feeder (0.95 - 1.0 pu, an 8%
substation reactance carrying the downstream reactive losses) it is 2.4e-3 pu balanced and 6.5e-3 pu
with its one-phase lateral (LinDist3Flow's balanced-angle approximation), 7.6e-3 pu with the capacitor
bank (its kvar ~ V^2 per phase, the case's split equally): bounds 3e-3 and 8e-3 pu; that all of it
is the linearization's is checked by LinDist3Flow giving the same difference (1e-9) against OpenDSS on
the imported case exported again.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("opendssdirect")

import run as cli  # noqa: E402
from network.errors import CaseError  # noqa: E402
from network.importers import read_dss  # noqa: E402
from network.io import read_case  # noqa: E402
from network.lindist3flow import LinDist3Flow  # noqa: E402
from network.opendss import feeder_to_dss, run_dss  # noqa: E402
from scenarios.import_case import dss_check  # noqa: E402
from scenarios.registry import load_case  # noqa: E402
from tests.short_runs import short_tso_dso  # noqa: E402

SMALL = Path(__file__).parent / "data" / "small_feeder.dss"


def _lin_v(case, fid, injections, ids):
    """LinDist3Flow |V| of ``case``'s feeder ``fid`` at consumption ``injections`` (id -> (p, q))."""
    model = LinDist3Flow(case.feeders[fid], power_unit=case.power_unit)
    a = model.injection_matrix(case.meters, ids)
    p = a @ np.array([injections[k][0] for k in ids])
    q = a @ np.array([injections[k][1] for k in ids])
    return model, model.evaluate(p, q).v


def _export_again(imp):
    """The imported case exported to OpenDSS at the operating point OpenDSS solved, solved again."""
    case = imp.case
    loads = {d.id: imp.dispatch[d.id] for d in case.loads}
    gens = {u.id: imp.dispatch[u.id] for u in case.units}
    return run_dss(feeder_to_dss(case, loads, gens))


def _same_voltages(a, b, tol):
    assert set(a) == set(b)
    return max(abs(a[k] - b[k]) for k in a) <= tol


def test_round_trip_three_phase_tes_feeder(tmp_path):
    case = load_case("tes_feeder")
    h = 19  # the evening peak
    loads = {d.id: (case.profile(d.baseline_profile)[h], case.profile(d.baseline_profile)[h] * d.tan_phi)
             for d in case.loads}
    gens = {"G1": 125.0, "G2": 100.0, "PV": 30.0}
    script = feeder_to_dss(case, loads, gens)
    path = tmp_path / "tes.dss"
    path.write_text(script)
    imp = read_dss(path)
    new, src = imp.case.feeders["F1"], case.feeders["LV1"]
    # element by element (OpenDSS lower-cases names)
    assert new.n_phases == 3 and new.v_base_kv == src.v_base_kv and new.s_base_kva == src.s_base_kva
    assert new.head == src.head and new.v_head == src.v_head and imp.notes == []
    assert {(n.id, n.phases, n.parent) for n in new.nodes} == {(n.id, n.phases, n.parent) for n in src.nodes}
    by_id = {ln.id: ln for ln in new.lines}
    assert len(by_id) == len(src.lines)
    for ln in src.lines:
        got = by_id[ln.id.lower()]
        assert (got.from_node, got.to_node, got.phases) == (ln.from_node, ln.to_node, ln.phases)
        assert np.abs(got.r - ln.r).max() < 1e-9 * np.abs(ln.r).max()
        assert np.abs(got.x - ln.x).max() < 1e-9 * np.abs(ln.x).max()
    for d in case.loads:
        got = next(x for x in imp.case.loads if x.id == d.id.lower())
        assert (got.node, got.phases) == (d.node, d.phases)
        assert got.p_max == pytest.approx(loads[d.id][0], rel=1e-12)
        assert got.tan_phi == pytest.approx(d.tan_phi, rel=1e-9)
    assert {u.id: u.p_max for u in imp.case.units} == pytest.approx({k.lower(): v for k, v in gens.items()})
    assert {u.node for u in imp.case.units} == {u.node for u in case.units if u.id in gens}
    # OpenDSS's own solution of the file: read by the importer, and again from the imported case
    ac = run_dss(script)
    file_v = {(n.lower(), p): v for (n, p), v in ac.voltages.items()}
    assert _same_voltages(imp.voltages, file_v, 1e-9)
    assert _same_voltages(_export_again(imp).voltages, file_v, 1e-9)
    # LinDist3Flow: the same on the imported and on the source case; within its linearization error of OpenDSS
    ids = list(loads) + list(gens)
    inj = {**loads, **{k: (-p, 0.0) for k, p in gens.items()}}
    m_src, v_src = _lin_v(case, "LV1", inj, ids)
    m_new, v_new = _lin_v(imp.case, "F1", {k.lower(): v for k, v in inj.items()}, [k.lower() for k in ids])
    assert m_new.node_phases == m_src.node_phases
    assert np.abs(v_new - v_src).max() < 1e-9
    ref = np.array([imp.voltages[k] for k in m_new.node_phases])
    diff = np.abs(v_new - ref).max()
    assert 1e-4 < diff <= 3e-3  # measured 1.14e-3 pu
    assert dss_check(imp) == pytest.approx(diff, abs=1e-12)


def test_round_trip_single_phase_tso24_feeder(tmp_path):
    case = load_case("tso24_dso5")
    fid = "F1"
    loads = {d.id: (0.5 * d.p_max, 5.0) for d in case.loads if d.grid == fid}  # MW, Mvar
    gens = {u.id: 100.0 for u in case.units if u.grid == fid and u.kind != "wind"}
    script = feeder_to_dss(case, loads, gens, feeder_id=fid)
    path = tmp_path / "f1.dss"
    path.write_text(script)
    imp = read_dss(path)
    new, src = imp.case.feeders["F1"], case.feeders[fid]
    assert new.n_phases == 1 and new.v_base_kv == src.v_base_kv and new.head == src.head
    for ln in src.lines:
        got = next(x for x in new.lines if x.id == ln.id.lower())
        assert got.r1 == pytest.approx(ln.r1, rel=1e-9) and got.x1 == pytest.approx(ln.x1, rel=1e-9)
    assert imp.case.power_unit == "kW"
    kw = {k.lower(): 1000 * p for k, (p, _) in loads.items()}
    assert {d.id: d.p_max for d in imp.case.loads} == pytest.approx(kw)
    file_v = {(n.lower(), p): v for (n, p), v in run_dss(script).voltages.items()}
    assert _same_voltages(imp.voltages, file_v, 1e-9)
    assert _same_voltages(_export_again(imp).voltages, file_v, 1e-9)


def test_hand_written_feeder():
    imp = read_dss(SMALL)
    case, f = imp.case, imp.case.feeders["F1"]
    v_ln = 12.47 / math.sqrt(3)
    zb = v_ln ** 2 / 1.0  # 1 MVA per phase
    assert f.n_phases == 3 and f.v_base_kv == pytest.approx(v_ln, rel=1e-11) and f.v_head == 1.02
    # the source's short-circuit impedance is a line from the ideal source (head) to bus src
    assert f.head == "vsource.source" and f.node("src").parent == "vsource.source"
    zs = next(ln for ln in f.lines if ln.id == "vsource.source")
    z = (zs.r + 1j * zs.x) * zb
    z1 = z[0, 0] - z[0, 1]
    assert abs(z1) == pytest.approx(12.47 ** 2 / 2000.0, rel=1e-6)  # MVAsc3 = 2000
    assert z1.imag / z1.real == pytest.approx(4.0, rel=1e-6)  # OpenDSS's default X1/R1
    # line code lc3: Zs = (Z0 + 2 Z1)/3 = 0.5 + 1.0j, Zm = (Z0 - Z1)/3 = 0.2 + 0.4j ohm/km
    l1 = next(ln for ln in f.lines if ln.id == "l1")
    assert l1.phases == "abc" and (l1.from_node, l1.to_node) == ("src", "b1")
    assert np.allclose(l1.r * zb, np.where(np.eye(3, dtype=bool), 1.0, 0.4), rtol=1e-9)
    assert np.allclose(l1.x * zb, np.where(np.eye(3, dtype=bool), 2.0, 0.8), rtol=1e-9)
    assert l1.s_max == pytest.approx(300 * v_ln / 1000.0)  # normamps of lc3, per phase in pu
    l3 = next(ln for ln in f.lines if ln.id == "l3")  # written b3 -> b1: oriented away from the source
    assert (l3.from_node, l3.to_node) == ("b1", "b3")
    l2 = next(ln for ln in f.lines if ln.id == "l2")
    assert l2.phases == "a" and l2.r[0, 0] * zb == pytest.approx(0.75) and l2.x[0, 0] * zb == pytest.approx(0.6)
    assert math.isinf(l2.s_max)  # no normamps given: no rating (OpenDSS's 400 A default is not one)
    loads = {d.id: d for d in case.loads}
    assert (loads["ld1"].phases, loads["ld1"].p_max, loads["ld1"].tan_phi) == ("abc", 300.0, pytest.approx(1 / 3))
    assert (loads["ld2"].node, loads["ld2"].phases, loads["ld2"].p_max) == ("b2", "a", 50.0)
    assert loads["ld3"].tan_phi == pytest.approx(math.tan(math.acos(0.95)))
    (pv,) = case.units
    assert (pv.id, pv.kind, pv.node, pv.phases, pv.p_max) == ("pv1", "pv", "b3", "abc", 100.0)
    assert imp.dispatch["pv1"][0] == pytest.approx(80.0, rel=1e-6)  # Pmpp x irradiance, as OpenDSS solved it
    assert not any("charging" in n for n in imp.notes)
    # OpenDSS on the imported case = OpenDSS on the file
    assert _same_voltages(_export_again(imp).voltages, imp.voltages, 1e-9)
    assert dss_check(imp) < 1e-4  # lightly loaded: LinDist3Flow is close


def test_positive_sequence_form(tmp_path):
    """--phases 1: a balanced three-phase feeder as the single-phase equivalent tso-dso uses."""
    text = "\n".join(ln for ln in SMALL.read_text().splitlines() if "l2 " not in ln and "ld2 " not in ln)
    path = tmp_path / "balanced.dss"
    path.write_text(text)
    imp = read_dss(path, phases="1")
    f = imp.case.feeders["F1"]
    assert f.n_phases == 1 and f.v_base_kv == pytest.approx(12.47)  # line to line, 1 MVA three-phase
    zb = 12.47 ** 2 / 1.0
    l1 = next(ln for ln in f.lines if ln.id == "l1")
    assert l1.r1 * zb == pytest.approx(2 * 0.3) and l1.x1 * zb == pytest.approx(2 * 0.6)  # Z1 x 2 km
    three = read_dss(path)
    # balanced: the positive-sequence voltages equal the three-phase ones (phase a)
    assert max(abs(v - three.voltages[k]) for k, v in imp.voltages.items()) < 1e-9
    assert dss_check(imp) < 1e-4
    with pytest.raises(CaseError, match=r"Line\.l2: has 1 phase"):
        read_dss(SMALL, phases="1")


def test_charging_is_a_note(tmp_path):
    path = tmp_path / "c.dss"
    path.write_text(SMALL.read_text().replace("c1=0 c0=0 ", ""))
    imp = read_dss(path)
    (note,) = [n for n in imp.notes if "charging" in n]
    assert "2 lines" in note  # l1 and l3 (lc3); lc1 still has cmatrix=[0]


@pytest.mark.parametrize("extra,element,words", [
    ("new reactor.r1 bus1=b1 phases=3 kvar=100 kv=12.47", "Reactor.r1", "reactors"),
    ("new capacitor.c2 bus1=b1 bus2=b3 kvar=300 kv=12.47", "Capacitor.c2", "series capacitor"),
    ("new transformer.t1 buses=[b3 b4] conns=[wye wye] kvs=[12.47 0.48] kvas=[500 500] taps=[1 1.025]",
     "Transformer.t1", "off-nominal ratio"),
    ("new transformer.t2 buses=[b3 b4] conns=[delta wye] kvs=[12.47 0.48] kvas=[500 500]", "Transformer.t2",
     "delta winding only on the source bus"),
    ("new transformer.t3 phases=1 windings=3 buses=[b3.1 b6.1.0 b6.0.2] kvs=[7.2 0.12 0.12] kvas=[50 50 50]",
     "Transformer.t3", "3 windings"),
    ("new transformer.t4 buses=[b3 b4] conns=[wye wye] kvs=[12.47 0.48] kvas=[500 400]", "Transformer.t4",
     "kVA ratings"),
    ("new transformer.t5 buses=[b3 b4] conns=[wye wye] kvs=[12.47 0.48] kvas=[500 500] wdg=2 rneut=5",
     "Transformer.t5", "neutral impedance"),
    ("new transformer.t7 buses=[b3.1.2 b4.1] phases=1 conns=[delta wye] kvs=[12.47 0.277] kvas=[50 50]",
     "Transformer.t7", "phase-to-phase"),
    ("new load.ld9 bus1=b3 phases=3 kv=12.47 kW=10 model=2", "Load.ld9", "model=2"),
    ("new load.ld8 bus1=b3.1.2 phases=1 kv=12.47 kW=10", "Load.ld8", "nodes [1, 2]"),
    ("new load.ld7 bus1=b3 phases=3 kv=12.47 kW=10 conn=delta", "Load.ld7", "delta"),
    ("new line.tie bus1=b2.1 bus2=b3.1 phases=1 linecode=lc1 length=1 units=km", "Line.tie", "loop"),
    ("new pvsystem.pv2 bus1=b3 phases=3 kv=12.47 pmpp=50 kva=60 pf=0.9", "PVSystem.pv2", "unity power factor"),
    ("new generator.g1 bus1=b3 phases=3 kv=12.47 kW=50 model=3", "Generator.g1", "model=3"),
    ("new storage.s1 bus1=b3 phases=3 kv=12.47 kwrated=10 kwhrated=20", "Storage.s1", "storage"),
    ("new line.l4 bus1=b1 bus2=b5 phases=4 length=1 units=km", "Line.l4", "Kron-reduced"),
    ("new load.far bus1=nowhere phases=3 kv=12.47 kW=10", "Load.far", "connects"),
])
def test_unrepresentable_element_is_one_line(tmp_path, extra, element, words):
    path = tmp_path / "bad.dss"
    path.write_text(SMALL.read_text().replace("set voltagebases", extra + "\nset voltagebases"))
    with pytest.raises(CaseError) as e:
        read_dss(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"bad.dss, {element}: ") and words in msg, msg


def test_cli_import_then_tso_dso_run(tmp_path, capsys):
    """run.py import f1.dss --out DIR gives a validated feeder case; two copies of it on case24_ieee_rts
    (make-case) run under tso-dso."""
    case = load_case("tso24_dso5")
    loads = {d.id: (d.p_max, 10.0) for d in case.loads if d.grid == "F2"}
    gens = {u.id: 100.0 for u in case.units if u.grid == "F2" and u.kind != "wind"}
    dss = tmp_path / "f2.dss"
    dss.write_text(feeder_to_dss(case, loads, gens, feeder_id="F2"))
    out = tmp_path / "f2"
    assert cli.main(["import", str(dss), "--out", str(out)]) == 0
    back = read_case(out)
    assert back == read_dss(dss).case and len(back.loads) == len(loads)
    readme = (out / "README.md").read_text()
    assert "read_dss" in readme and "LinDist3Flow" in readme and "OpenDSS's own solution" in readme
    made = tmp_path / "made"
    assert cli.main(["make-case", "--transmission", "case24_ieee_rts", "--feeders", "2", "--feeder", str(out),
                     "--wind-farms", "2", "--out", str(made)]) == 0
    m = load_case(str(made))
    assert all(math.isfinite(d.bid_da) for d in m.loads)  # drawn from tso24_dso5's feeder ranges
    short_tso_dso(made, tmp_path / "run")
    # a file the form cannot hold: one line on stderr, status 2
    capsys.readouterr()
    bad = tmp_path / "bad.dss"
    bad.write_text(SMALL.read_text() + "new reactor.r1 bus1=b1 phases=3 kvar=100 kv=12.47\n")
    assert cli.main(["import", str(bad), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Reactor.r1" in err[0]


# ---------------------------------------------------------------- two voltage zones: transformers, a capacitor
# bank, regulators (tests/data/two_voltage_feeder.dss)

TWO = Path(__file__).parent / "data" / "two_voltage_feeder.dss"
V_MV, V_LV = 4.16 / math.sqrt(3), 0.48 / math.sqrt(3)  # the zones' phase-neutral bases (kV)


def _two(tmp_path, drop=(), replace=()):
    """The two-voltage fixture without the lines naming any of ``drop``, with ``replace`` (old, new) applied."""
    text = "\n".join(ln for ln in TWO.read_text().splitlines() if not any(d in ln for d in drop))
    for a, b in replace:
        assert a in text
        text = text.replace(a, b)
    path = tmp_path / "two.dss"
    path.write_text(text)
    return path


def test_regulator_refused_without_option(tmp_path, capsys):
    with pytest.raises(CaseError) as e:
        read_dss(TWO)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("two_voltage_feeder.dss, RegControl.reg1: ") and "tap 1.01875" in msg
    assert "--regulators nominal" in msg
    assert cli.main(["import", str(TWO), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "RegControl.reg1" in err[0] and "--regulators nominal" in err[0]
    # a transformer off tap 1 without a RegControl is refused too, with the option or without
    with pytest.raises(CaseError, match=r"Transformer\.xfm1: tap 1\.025 on winding 2: an off-nominal ratio"):
        read_dss(_two(tmp_path, replace=[("kvas=[500 500]", "kvas=[500 500] taps=[1 1.025]")]), regulators="nominal")


def test_two_voltage_zones_and_impedances():
    """Per-zone per unit: each impedance over its own zone's z_base, by hand."""
    imp = read_dss(TWO, regulators="nominal")
    f = imp.case.feeders["F1"]
    assert f.n_phases == 3 and f.v_base_kv == pytest.approx(115 / math.sqrt(3), rel=1e-11)
    assert imp.bases["n1"] == pytest.approx(V_MV, rel=1e-11) and imp.bases["lv1"] == pytest.approx(V_LV, rel=1e-11)
    zb_mv, zb_lv = V_MV ** 2, V_LV ** 2  # ohm, 1 MVA per phase
    by_id = {ln.id: ln for ln in f.lines}
    eye = np.eye(3, dtype=bool)
    # line m1 (4.16 kV): line code mtr, 1.2 km: Zs = (Z0 + 2 Z1)/3, Zm = (Z0 - Z1)/3 ohm/km
    m1 = by_id["m1"]
    assert np.allclose(m1.r * zb_mv, 1.2 * np.where(eye, (0.48 + 0.38) / 3, (0.48 - 0.19) / 3), rtol=1e-9)
    assert np.allclose(m1.x * zb_mv, 1.2 * np.where(eye, (1.24 + 0.82) / 3, (1.24 - 0.41) / 3), rtol=1e-9)
    assert m1.s_max == pytest.approx(400 * V_MV / 1000)  # normamps x the zone's voltage, per phase in pu
    # line s1 (0.48 kV): line code lvc, 0.1 km, over the 0.48 kV zone's base
    s1 = by_id["s1"]
    assert (s1.from_node, s1.to_node) == ("lv", "lv1")
    assert np.allclose(s1.r * zb_lv, 0.1 * np.where(eye, (0.75 + 0.5) / 3, (0.75 - 0.25) / 3), rtol=1e-9)
    assert np.allclose(s1.x * zb_lv, 0.1 * np.where(eye, (0.24 + 0.16) / 3, (0.24 - 0.08) / 3), rtol=1e-9)
    # transformer xfm1 (4.16/0.48 kV, 500 kVA, %R 0.55 + 0.55, XHL 2): z on 500/3 kVA per phase -> 1000 kVA
    x1 = by_id["xfm1"]
    assert (x1.from_node, x1.to_node, x1.phases) == ("n3", "lv", "abc")
    assert np.allclose(x1.r + 1j * x1.x, np.diag([(0.011 + 0.02j) * 1000 / (500 / 3)] * 3), rtol=1e-12)
    assert x1.s_max == pytest.approx(500 / 3 / 1000)
    # the regulator bank: three single-phase 1666 kVA 2.4/2.4 kV units, one line at ratio 1
    rg = by_id["reg1+reg2+reg3"]
    z_reg = (0.0001 + 0.0001j) * 2.4 ** 2 / 1.666 / zb_mv
    assert (rg.from_node, rg.to_node) == ("hv", "rg") and np.allclose(rg.r + 1j * rg.x, np.diag([z_reg] * 3))
    # the delta-wye substation transformer (5 MVA, 1% + j8%) with the source's z1 folded in: z_t I + z1 (I - J/3)
    sub = by_id["sub"]
    assert (sub.from_node, sub.to_node) == ("vsource.source", "hv") and f.node("hv").parent == "vsource.source"
    assert "sourcebus" not in {n.id for n in f.nodes}
    z1 = (115 ** 2 / 2000) * (1 + 4j) / math.sqrt(17) / (115 / math.sqrt(3)) ** 2  # MVAsc3 2000, X1/R1 4
    want = (0.01 + 0.08j) * 1000 / (5000 / 3) * np.eye(3) + z1 * (np.eye(3) - np.ones((3, 3)) / 3)
    assert np.allclose(sub.r + 1j * sub.x, want, rtol=1e-6)
    # the capacitor bank: a constant 600 kvar (rated at 4.16 kV = the zone's base), OpenDSS solved less
    (cap,) = imp.case.units
    assert (cap.id, cap.kind, cap.node, cap.phases, cap.p_max) == ("cap1", "capacitor", "n2", "abc", 0.0)
    assert cap.q_min == cap.q_max == pytest.approx(600.0, rel=1e-12) and imp.rated_q == {"cap1": cap.q_min}
    v_n2 = np.mean([imp.voltages[("n2", p)] for p in "abc"])
    assert imp.dispatch["cap1"][1] == pytest.approx(600 * v_n2 ** 2, rel=2e-3)  # Q ~ V^2 (unbalanced: a mean)
    (note,) = [n for n in imp.notes if n.startswith("Capacitor.cap1")]
    assert "constant 600 kvar" in note and "OpenDSS solved 578" in note
    assert any("Transformer.reg2 at ratio 1 (OpenDSS solved tap 1.025" in n for n in imp.notes)


def test_two_voltage_feeder_against_opendss(tmp_path):
    """OpenDSS on the imported case (exported as one single-voltage circuit in per unit) = OpenDSS on the file:
    the zones, the transformers and the folded substation are exact; LinDist3Flow's difference from OpenDSS is
    then its own linearization error."""
    nocap = read_dss(_two(tmp_path, drop=("capacitor",)), regulators="nominal")
    again = _export_again(nocap).voltages
    assert _same_voltages(again, nocap.voltages, 1e-9)
    # LinDist3Flow against the file = LinDist3Flow against the exported case: the import adds no error
    err_file = dss_check(nocap)
    err_export = dss_check(DssImportLike(nocap, again))
    assert err_file == pytest.approx(err_export, abs=1e-9)
    # The linearization error: losses neglected. Here the downstream reactive losses flow through the substation
    # transformer's 8% reactance and the feeder sits at 0.95 - 1.0 pu: balanced (no lateral) it is 2.4e-3 pu,
    # with the one-phase lateral and load (unbalanced, LinDist3Flow's balanced-angle Gamma) 6.5e-3 pu.
    assert 1e-3 < err_file < 8e-3  # measured 6.48e-3
    # The whole fixture: the capacitor bank draws kvar in proportion to each phase's V^2 where the case holds a
    # constant kvar split equally: at OpenDSS's solved kvar 7.56e-3 pu, at the rated 600 kvar 8.99e-3 pu.
    imp = read_dss(TWO, regulators="nominal")
    assert dss_check(imp) < 8e-3 and dss_check(imp, rated=True) < 1e-2
    # OpenDSS's own solution with the regulators acting is 2.87e-2 pu away: --regulators nominal says so
    (note,) = [n for n in imp.notes if n.startswith("--regulators nominal")]
    assert float(note.rsplit("up to ", 1)[1].split()[0]) > 0.02


class DssImportLike:
    """A DssImport with other reference voltages (for dss_check)."""

    def __init__(self, imp, voltages):
        self.case, self.dispatch, self.rated_q, self.converged = imp.case, imp.dispatch, imp.rated_q, True
        self.voltages = voltages


def test_two_voltage_positive_sequence(tmp_path):
    """--phases 1 on the balanced part of the fixture (no one-phase lateral): the delta-wye transformer is a
    series z1 behind the source's own line, the voltages equal the three-phase import's."""
    path = _two(tmp_path, drop=("lat1", "ld3 ", "ld5 "))
    pos = read_dss(path, phases="1", regulators="nominal")
    three = read_dss(path, regulators="nominal")
    f = pos.case.feeders["F1"]
    assert f.n_phases == 1 and f.v_base_kv == pytest.approx(115.0)
    assert f.node("sourcebus").parent == "vsource.source" and f.node("hv").parent == "sourcebus"
    sub = next(ln for ln in f.lines if ln.id == "sub")
    assert sub.r1 == pytest.approx(0.01 * 1000 / 5000) and sub.x1 == pytest.approx(0.08 * 1000 / 5000)  # 3-ph base
    xfm = next(ln for ln in f.lines if ln.id == "xfm1")
    assert xfm.r1 + 1j * xfm.x1 == pytest.approx((0.011 + 0.02j) * 1000 / 500)
    assert max(abs(v - three.voltages[k]) for k, v in pos.voltages.items() if k in three.voltages) < 1e-9
    # balanced, the bank draws equal kvar on its phases: the single-phase equivalent is exact in OpenDSS too
    assert _same_voltages(_export_again(pos).voltages, pos.voltages, 1e-9)
    assert dss_check(pos) < 3e-3  # balanced: measured 2.0e-3 (2.8e-3 with the bank at its rated 600 kvar)


def test_transformer_shunts_are_notes(tmp_path):
    path = _two(tmp_path, replace=[("xhl=2 ppm_antifloat=0", "xhl=2 %imag=1 %noloadloss=0.2")])
    imp = read_dss(path, regulators="nominal")
    assert any("magnetizing branches neglected" in n and "1 kW and 5 kvar" in n for n in imp.notes)
    assert any("ppm_antifloat" in n and "0.0005 kvar" in n for n in imp.notes)


def test_cli_two_voltage_feeder_in_a_tso_dso_market(tmp_path):
    """run.py import --regulators nominal --phases 1 of the balanced two-voltage feeder, make-case on
    case24_ieee_rts with two copies of it, a tso-dso run: the capacitor bank is a fixed-kvar unit of each DSO."""
    path = _two(tmp_path, drop=("lat1", "ld3 ", "ld5 "))
    out = tmp_path / "two"
    assert cli.main(["import", str(path), "--out", str(out), "--phases", "1", "--regulators", "nominal"]) == 0
    readme = (out / "README.md").read_text()
    assert "--regulators nominal" in readme and "voltage zones" in readme and "Capacitor.cap1" in readme
    assert "With the capacitor banks at the constant kvar the case holds" in readme
    assert "OpenDSS's own solution with its regulators at ratio 1" in readme
    made = tmp_path / "made"
    # --feeder-share: each copy near the file's own 1.05 MW (the default 0.3 of case24_ieee_rts's load would scale
    # this 4.16 kV feeder by about 400, far beyond what its 5 MVA transformer and 4.16 kV lines carry)
    assert cli.main(["make-case", "--transmission", "case24_ieee_rts", "--feeders", "2", "--feeder", str(out),
                     "--feeder-share", "0.0007", "--wind-farms", "2", "--out", str(made)]) == 0
    m = load_case(str(made))
    caps = [u for u in m.units if u.kind == "capacitor"]
    assert len(caps) == 2 and all(u.q_min == u.q_max > 0 and u.p_max == 0 for u in caps)
    # ratings in pu scale with the loads in pu (not with the kW -> MW change of unit: the pu base is the same)
    src = read_case(out)
    k = sum(d.p_max for d in m.loads if d.grid == "F1") / (sum(d.p_max for d in src.loads) / 1000.0)
    assert 0.7 < k < 1.3
    xfm = next(ln for ln in m.feeders["F1"].lines if ln.id.endswith("xfm1"))
    assert xfm.s_max == pytest.approx(next(ln for ln in src.feeders["F1"].lines if ln.id == "xfm1").s_max * k)
    short_tso_dso(made, tmp_path / "run")


def test_two_voltage_variants(tmp_path):
    """A stiff source (the delta-wye transformer is the first line from the head, exact); regulators that
    OpenDSS left at tap 1 (accepted, noted); a CapControl (noted; a bank it opened is left out); the file's
    voltage bases off the nominal ratios (noted)."""
    stiff = read_dss(_two(tmp_path, replace=[("MVAsc3=2000 MVAsc1=2100", "MVAsc3=2e9 MVAsc1=2.1e9")]),
                     regulators="nominal")
    f = stiff.case.feeders["F1"]
    assert f.head == "sourcebus" and f.node("hv").parent == "sourcebus"
    assert any("delta-wye at the stiff source" in n for n in stiff.notes)
    no_cap = read_dss(_two(tmp_path, drop=("capacitor",), replace=[("MVAsc3=2000 MVAsc1=2100",
                                                                     "MVAsc3=2e9 MVAsc1=2.1e9")]),
                      regulators="nominal")
    assert _same_voltages(_export_again(no_cap).voltages, no_cap.voltages, 1e-9)
    # a wide band: OpenDSS leaves the regulators at tap 1, so the file imports as it is
    idle = read_dss(_two(tmp_path, replace=[("band=2 ", "band=20 ")]))
    assert sum("at tap 1 in the solved snapshot" in n for n in idle.notes) == 3
    assert not any(n.startswith("--regulators nominal") for n in idle.notes)
    # a CapControl that opens the bank (off above 110 V on a 120 V scale: always): no unit, noted
    opened = read_dss(_two(tmp_path, replace=[("kvar=600 kv=4.16", "kvar=600 kv=4.16\nnew capcontrol.cc1 "
                                               "capacitor=cap1 element=line.m2 type=voltage ptratio=20 on=100 "
                                               "off=110")]), regulators="nominal")
    assert not opened.case.units and any("CapControl.cc1" in n for n in opened.notes)
    assert any("Capacitor.cap1: all its steps are open" in n for n in opened.notes)
    # set voltagebases with 0.416 kV instead of 0.48: OpenDSS's pu differ; ours stay on the nominal ratios'
    odd = read_dss(_two(tmp_path, replace=[("[115 4.16 0.48]", "[115 4.16 0.416]")]), regulators="nominal")
    (note,) = [n for n in odd.notes if "set voltagebases" in n]
    assert "2 buses" in note and odd.bases["lv1"] == pytest.approx(V_LV, rel=1e-11)
