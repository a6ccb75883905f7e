"""LinDist3Flow: coupling signs, README numbers, property checks and the cvxpy builder."""
from __future__ import annotations

import math
from pathlib import Path

import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from network.io import read_case
from network.lindist3flow import (FAMILIES, GAMMA, LinDist3Flow, coupling_matrices, unit_to_pu,
                                  violations)
from network.model import Feeder, FeederLine, FeederNode, MeterLocation

CASE_DIR = Path(__file__).resolve().parents[1] / "scenarios" / "data" / "tes_feeder"
SQ3 = math.sqrt(3.0)

# OH4x70AL (ohm/km), from scenarios/data/tes_feeder/source/linecodes.csv
OH_R = np.array([[0.6545031, 0.12781045, 0.1373356], [0.12781045, 0.66604959, 0.14399879],
                 [0.1373356, 0.14399879, 0.6876541]])
OH_X = np.array([[0.6059645, 0.3096012, 0.24967999], [0.3096012, 0.58627748, 0.28220403],
                 [0.24967999, 0.28220403, 0.55013983]])


@pytest.fixture(scope="module")
def case():
    return read_case(CASE_DIR)


@pytest.fixture(scope="module")
def model(case):
    return LinDist3Flow(case.feeders["LV1"], power_unit=case.power_unit)


def hand_feeder(length_km: float = 0.3) -> Feeder:
    zb = 0.0484
    return Feeder("H", [FeederNode("S", "abc", None), FeederNode("R", "abc", "S")],
                  [FeederLine("L", "S", "R", "abc", OH_R * length_km / zb, OH_X * length_km / zb)])


def baseline(case, model, hour, gens_kw):
    """p_net, q_net (pu) for baseline loads at ``hour`` and unit outputs ``gens_kw``."""
    loads = [d.id for d in case.loads]
    p0 = np.array([case.profile(d.baseline_profile)[hour] for d in case.loads])
    tan = np.array([d.tan_phi for d in case.loads])
    a_load = model.injection_matrix(case.meters, loads)
    a_gen = model.injection_matrix(case.meters, list(gens_kw), sign=-1.0)
    g = np.array(list(gens_kw.values()), float)
    return a_load @ p0 + a_gen @ g, a_load @ (p0 * tan)


# --------------------------------------------------------------------- coupling


def test_hand_case_signs_and_coupling():
    """README section 3: 20 kW + 6.57 kVAr on phase a at the end of 0.3 km OH4x70AL."""
    m = LinDist3Flow(hand_feeder())
    p, q = np.array([0.020, 0, 0]), np.array([0.00657, 0, 0])
    v = m.evaluate(p, q).v
    np.testing.assert_allclose(v, [0.8879, 1.0421, 0.9916], atol=5e-5)
    # the conjugate Gamma (a = exp(-j2pi/3) in the same layout) gets b and c wrong
    ln = m.feeder.lines[0]
    mp, mq = coupling_matrices(ln.r, ln.x, "abc", gamma=GAMMA.conj())
    v_conj = np.sqrt(1.0 - mp @ p - mq @ q)
    np.testing.assert_allclose(v_conj, [0.8879, 0.9854, 1.0350], atol=1e-4)
    # with the load on phase b, the pattern rotates: b lowest, the next phase (c) above 1
    v_b = m.evaluate(np.roll(p, 1), np.roll(q, 1)).v
    assert v_b[1] < v_b[0] < 1.0 < v_b[2]
    # exactly so for a transposed line (equal self and equal mutual terms)
    zb = 0.0484
    rt = (np.full((3, 3), OH_R[0, 1]) + np.eye(3) * (OH_R[0, 0] - OH_R[0, 1])) * 0.3 / zb
    xt = (np.full((3, 3), OH_X[0, 1]) + np.eye(3) * (OH_X[0, 0] - OH_X[0, 1])) * 0.3 / zb
    mt = LinDist3Flow(Feeder("H", [FeederNode("S", "abc", None), FeederNode("R", "abc", "S")],
                             [FeederLine("L", "S", "R", "abc", rt, xt)]))
    va = mt.evaluate(p, q).v
    for k in (1, 2):
        np.testing.assert_allclose(mt.evaluate(np.roll(p, k), np.roll(q, k)).v, np.roll(va, k), atol=1e-12)


def test_coupling_written_out():
    rng = np.random.default_rng(1)
    r = rng.uniform(0.1, 1, (3, 3))
    x = rng.uniform(0.1, 1, (3, 3))
    r, x = r + r.T, x + x.T
    mp, mq = coupling_matrices(r, x, "abc")
    np.testing.assert_allclose(np.diag(mp), 2 * np.diag(r))
    np.testing.assert_allclose(np.diag(mq), 2 * np.diag(x))
    for p, q in ((0, 1), (1, 2), (2, 0)):
        assert mp[p, q] == pytest.approx(-r[p, q] + SQ3 * x[p, q])
        assert mq[p, q] == pytest.approx(-x[p, q] - SQ3 * r[p, q])
    for p, q in ((0, 2), (1, 0), (2, 1)):
        assert mp[p, q] == pytest.approx(-r[p, q] - SQ3 * x[p, q])
        assert mq[p, q] == pytest.approx(-x[p, q] + SQ3 * r[p, q])
    # a two-phase line 'ac' uses the a/c rows and columns of the full matrices
    mp2, mq2 = coupling_matrices(r, x, "ac")
    np.testing.assert_allclose(mp2, mp[np.ix_([0, 2], [0, 2])])
    np.testing.assert_allclose(mq2, mq[np.ix_([0, 2], [0, 2])])
    # single-phase frame
    mp1, mq1 = coupling_matrices(np.array([[0.3]]), np.array([[0.2]]), "a", frame="a")
    assert mp1[0, 0] == pytest.approx(0.6) and mq1[0, 0] == pytest.approx(0.4)


# --------------------------------------------------------------------- tes_feeder


def test_structure(case, model):
    f = case.feeders["LV1"]
    assert len(model.node_phases) == 3 * 10 + 1  # 11 non-head nodes, node 10 has only phase b
    assert model.node_phases == [(n, p) for n, p in f.node_phase_pairs() if n != f.head]
    assert ("10", "b") in model.index and ("10", "a") not in model.index
    assert model.line_phases[model.index[("10", "b")]] == ("L8", "b")
    # flows out of node 2 carry everything
    np.testing.assert_allclose(np.asarray(model.flow_map[model.head_rows].sum(axis=0)).ravel(), 1.0)
    assert model.vsq_p.shape == (31, 31) and model.flow_map.shape == (31, 31)
    assert unit_to_pu(f, "kW") == pytest.approx(1e-3) and unit_to_pu(f, "MW") == pytest.approx(1.0)


def test_readme_peak_numbers(case, model):
    """README section 6 at 19 h: 'off' and 'on' (G1 125, G2 100, WT 60, PV 0)."""
    p, q = baseline(case, model, 19, {})
    r = model.evaluate(p, q)
    assert r.import_power == pytest.approx(301.0, abs=0.05)
    v7 = min(r.v[model.index[("7", ph)]] for ph in "abc")
    assert v7 == pytest.approx(0.9317, abs=5e-5)
    i = int(np.argmin(r.v))
    assert r.v[i] == pytest.approx(0.9291, abs=5e-5) and model.node_phases[i][0] in ("11", "12", "13")
    p, q = baseline(case, model, 19, {"G1": 125, "G2": 100, "WT": 60, "PV": 0})
    r = model.evaluate(p, q)
    assert r.import_power == pytest.approx(16.0, abs=0.05)
    assert r.v.min() == pytest.approx(0.9612, abs=5e-5)
    assert r.v.max() == pytest.approx(1.0251, abs=5e-5)
    assert model.node_phases[int(np.argmax(r.v))][0] == "13"
    assert model.node_phases[int(np.argmin(r.v))] == ("10", "b")


def test_injection_matrix(case, model):
    ids = ["IL1", "RL6", "MG", "G1"]
    a = model.injection_matrix(case.meters, ids).toarray()
    assert a.shape == (31, 4)
    for ph in "abc":
        assert a[model.index[("7", ph)], 0] == pytest.approx(1e-3 / 3)
    assert a[model.index[("10", "b")], 1] == pytest.approx(1e-3)
    assert not a[:, 2].any()  # the head meter is the slack
    np.testing.assert_allclose(a.sum(axis=0), [1e-3, 1e-3, 0, 1e-3])
    g = model.injection_matrix(case.meters, ["G1"], 1.0, sign=-1).toarray()
    assert g.sum() == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        model.injection_matrix({"X": MeterLocation("T", "1", "abc")}, ["X"])


def test_evaluate_shapes(case, model):
    p, q = baseline(case, model, 19, {})
    pt = np.column_stack([p, 2 * p, 0 * p])
    qt = np.column_stack([q, 2 * q, 0 * q])
    r = model.evaluate(pt, qt)
    assert r.w.shape == (31, 3) and r.p_flow.shape == (31, 3) and r.import_pu.shape == (3,)
    np.testing.assert_allclose(r.w[:, 0], model.evaluate(p, q).w)
    np.testing.assert_allclose(r.w[:, 2], 1.0)
    np.testing.assert_allclose(r.import_power, [301.0, 602.0, 0.0], atol=0.05)
    # the flow on L1 is the three-phase total of everything; L8 carries node 10's load only
    l8 = model.index[("10", "b")]
    assert r.p_flow[l8, 0] == pytest.approx(p[l8])


def test_family_gradients_are_affine(case, model):
    rng = np.random.default_rng(3)
    p, q = baseline(case, model, 19, {"G1": 50})
    p2 = p + rng.normal(0, 0.01, p.shape)
    q2 = q + rng.normal(0, 0.01, q.shape)
    for name, fam in model.families.items():
        np.testing.assert_allclose(fam.value(p2, q2), fam.grad_p() @ p2 + fam.grad_q() @ q2 + fam.offset(),
                                   atol=1e-12, err_msg=name)
    assert set(model.families) == set(FAMILIES)  # tes_feeder has every kind of limit
    assert model.families["line_p_max"].rows[0] == ("L1", "a")
    assert model.families["import_max"].rows == (("2", "abc"),)


def test_violations_flags_the_right_family(case, model):
    p, q = baseline(case, model, 19, {})
    df = violations(p, q, case.feeders["LV1"])
    bad = df[df.u > 1e-9]
    assert set(bad.family) == {"voltage_min", "import_max"}
    assert ("7", "a") in set(zip(bad.element, bad.phase))
    imp = bad[bad.family == "import_max"].u.iloc[0]
    assert imp == pytest.approx((301.0 - 200.0) / 1000.0, abs=1e-4)  # three-phase total, pu
    # with enough gas the same hour is feasible
    p, q = baseline(case, model, 19, {"G1": 125, "G2": 100, "WT": 60, "PV": 0})
    assert violations(p, q, model).u.max() <= 0


# --------------------------------------------------------------------- properties


@st.composite
def radial_feeders(draw, balanced: bool):
    n = draw(st.integers(2, 12))
    parents = [None] + [draw(st.integers(0, i - 1)) for i in range(1, n)]
    fl = st.floats(0.01, 0.4)
    phases = ["abc"]
    for i in range(1, n):
        ph = "abc" if balanced else draw(st.sampled_from(
            [s for s in ("abc", "ab", "ac", "bc", "a", "b", "c") if set(s) <= set(phases[parents[i]])]))
        phases.append(ph)
    zs = []
    for i in range(1, n):
        if balanced:
            rs, xs = draw(fl), draw(fl)
            rm, xm = rs * draw(st.floats(0, 0.9)), xs * draw(st.floats(0, 0.9))
            r = np.full((3, 3), rm) + np.eye(3) * (rs - rm)
            x = np.full((3, 3), xm) + np.eye(3) * (xs - xm)
        else:
            r, x = np.zeros((3, 3)), np.zeros((3, 3))
            for a in range(3):
                for b in range(a, 3):
                    r[a, b] = r[b, a] = draw(fl) if a == b else draw(st.floats(0, 0.1))
                    x[a, b] = x[b, a] = draw(fl) if a == b else draw(st.floats(0, 0.1))
            keep = np.array([c in phases[i] for c in "abc"])
            r[~keep, :] = r[:, ~keep] = 0
            x[~keep, :] = x[:, ~keep] = 0
        zs.append((r, x))
    loads = draw(st.lists(st.floats(-0.05, 0.05), min_size=2 * n, max_size=2 * n))
    v_head = draw(st.floats(0.95, 1.05))
    return n, parents, phases, zs, loads, v_head


def _feeder(n, parents, phases, zs, v_head, *, single=False):
    nodes = [FeederNode(f"n{i}", "a" if single else phases[i], None if i == 0 else f"n{parents[i]}")
             for i in range(n)]
    lines = []
    for i in range(1, n):
        r, x = zs[i - 1]
        if single:
            r, x = np.array([[r[0, 0] - r[0, 1]]]), np.array([[x[0, 0] - x[0, 1]]])
        lines.append(FeederLine(f"l{i}", f"n{parents[i]}", f"n{i}", "a" if single else phases[i], r, x))
    return Feeder("F", nodes, lines, n_phases=1 if single else 3, v_head=v_head)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(radial_feeders(balanced=True))
def test_balanced_reduces_to_single_phase(data):
    n, parents, phases, zs, loads, v_head = data
    f3 = _feeder(n, parents, phases, zs, v_head)
    f1 = _feeder(n, parents, phases, zs, v_head, single=True)
    m3, m1 = LinDist3Flow(f3), LinDist3Flow(f1)
    pn, qn = np.array(loads[:n]), np.array(loads[n:])
    p1 = np.array([pn[int(nd[1:])] for nd, _ in m1.node_phases])
    q1 = np.array([qn[int(nd[1:])] for nd, _ in m1.node_phases])
    p3 = np.array([pn[int(nd[1:])] for nd, _ in m3.node_phases])
    q3 = np.array([qn[int(nd[1:])] for nd, _ in m3.node_phases])
    r1, r3 = m1.evaluate(p1, q1), m3.evaluate(p3, q3)
    for i, (nd, ph) in enumerate(m3.node_phases):
        j = m1.index[(nd, "a")]
        assert r3.w[i] == pytest.approx(r1.w[j], abs=1e-9)
        assert r3.p_flow[i] == pytest.approx(r1.p_flow[j], abs=1e-12)
    assert r3.import_pu == pytest.approx(3 * r1.import_pu, abs=1e-12)


def _naive(f: Feeder, p: dict, q: dict) -> dict:
    """Line-by-line README recursion with the written-out MP/MQ (an independent check)."""
    sub = {nd: {nd} | f.downstream(nd) for nd in f.node_order}
    w = {(f.head, ph): f.v_head ** 2 for ph in f.node(f.head).phases}
    for nd in f.node_order[1:]:
        ln = f.line_by_child[nd]
        P = {c: sum(p.get((k, c), 0.0) for k in sub[nd]) for c in ln.phases}
        Q = {c: sum(q.get((k, c), 0.0) for k in sub[nd]) for c in ln.phases}
        for a in ln.phases:
            ia = "abc".index(a)
            drop = 0.0
            for b in ln.phases:
                ib = "abc".index(b)
                r, x = ln.r[ia, ib], ln.x[ia, ib]
                if a == b:
                    mp, mq = 2 * r, 2 * x
                elif (a, b) in (("a", "b"), ("b", "c"), ("c", "a")):
                    mp, mq = -r + SQ3 * x, -x - SQ3 * r
                else:
                    mp, mq = -r - SQ3 * x, -x + SQ3 * r
                drop += mp * P[b] + mq * Q[b]
            w[(nd, a)] = w[(ln.from_node, a)] - drop
    return w


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(radial_feeders(balanced=False), st.integers(0, 2 ** 31 - 1))
def test_unbalanced_matches_line_recursion(data, seed):
    n, parents, phases, zs, _, v_head = data
    f = _feeder(n, parents, phases, zs, v_head)
    m = LinDist3Flow(f)
    rng = np.random.default_rng(seed)
    p, q = rng.uniform(-0.05, 0.05, m.n), rng.uniform(-0.05, 0.05, m.n)
    w = _naive(f, dict(zip(m.node_phases, p)), dict(zip(m.node_phases, q)))
    np.testing.assert_allclose(m.evaluate(p, q).w, [w[k] for k in m.node_phases], atol=1e-12)
    # sparse and dense builders give the same w
    pv, qv = cp.Parameter(m.n, value=p), cp.Parameter(m.n, value=q)
    nc = m.constraints(pv, qv, form="sparse")
    cp.Problem(cp.Minimize(0), nc.aux_constraints).solve(solver=cp.CLARABEL)  # the defining equalities
    np.testing.assert_allclose(nc.aux["w"].value, m.evaluate(p, q).w, atol=1e-7)


# --------------------------------------------------------------------- cvxpy builder


def _day_lp(case, model, form: str, reduce: bool = False):
    """24-h LP: loads free in their bands, DERs within availability, all limits; min import."""
    T = case.horizon
    loads = [d for d in case.loads]
    units = [u for u in case.units if u.kind != "main_grid"]
    p0 = cp.Parameter((len(loads), T), value=np.array([case.profile(d.baseline_profile) for d in loads]))
    avail = cp.Parameter((len(units), T), value=np.array(
        [case.profile(u.avail_profile) if u.avail_profile else np.full(T, u.p_max) for u in units]))
    pl = cp.Variable((len(loads), T))
    pg = cp.Variable((len(units), T))
    lo = np.array([d.band_min for d in loads])[:, None]
    hi = np.array([d.band_max for d in loads])[:, None]
    tan = np.array([d.tan_phi for d in loads])[:, None]
    a_l = model.injection_matrix(case.meters, [d.id for d in loads])
    a_g = model.injection_matrix(case.meters, [u.id for u in units], sign=-1.0)
    p_net = a_l @ pl + a_g @ pg
    q_net = a_l @ cp.multiply(tan, pl)
    nc = model.constraints(p_net, q_net, form=form, active=sp.hstack([a_l, a_g]) if reduce else None)
    cons = [pl >= cp.multiply(lo, p0), pl <= cp.multiply(hi, p0), pg >= 0, pg <= avail] + nc.constraints
    prob = cp.Problem(cp.Minimize(cp.sum(p_net)), cons)
    return prob, nc, pl, pg, p_net, q_net


@pytest.mark.parametrize("form,reduce", [("dense", False), ("sparse", False), ("sparse", True)])
def test_min_import_lp_feasible_and_consistent(case, model, form, reduce):
    prob, nc, pl, pg, p_net, q_net = _day_lp(case, model, form, reduce)
    prob.solve(solver=cp.HIGHS)
    assert prob.status == cp.OPTIMAL
    p, q = p_net.value, q_net.value
    assert p.shape == (31, 24)
    # the builder and the numeric evaluation agree row by row
    vals = model.limit_values(p, q)
    for name, fc in nc.items():
        np.testing.assert_allclose(fc.u.value, vals[name], atol=1e-7, err_msg=name)
    assert violations(p, q, model).u.max() <= 1e-7
    # import at its lower limit (0) in the best hours; never above 200 kW
    imp = model.evaluate(p, q).import_power
    assert imp.min() == pytest.approx(0.0, abs=1e-5) and imp.max() <= 200 + 1e-5
    duals = nc.duals()
    assert set(duals) == set(FAMILIES)
    assert all(d.shape == (model.families[k].n_rows, 24) and (d >= -1e-7).all() for k, d in duals.items())


def test_dense_and_sparse_same_optimum(case, model):
    objs = []
    for form in ("dense", "sparse"):
        prob, nc, *_ = _day_lp(case, model, form)
        prob.solve(solver=cp.CLARABEL)
        objs.append(prob.value)
    assert objs[0] == pytest.approx(objs[1], rel=1e-6)


@pytest.mark.parametrize("form", ["dense", "sparse"])
def test_slack_problem_of_fixed_schedule(case, model, form):
    """Appendix-A slack LP for fixed net loads: eps_t = max_l u_l(t), duals sum to 1."""
    hours = [3, 12, 19]
    cols = [baseline(case, model, h, {}) for h in hours]
    p = cp.Parameter((model.n, 3), value=np.column_stack([c[0] for c in cols]))
    q = cp.Parameter((model.n, 3), value=np.column_stack([c[1] for c in cols]))
    eps = cp.Variable(3)
    nc = model.constraints(p, q, slack=eps, form=form)
    prob = cp.Problem(cp.Minimize(cp.sum(eps)), nc.constraints)
    prob.solve(solver=cp.HIGHS)
    u = model.limit_values(p.value, q.value)
    u_max = np.max([v.max(axis=0) for v in u.values()], axis=0)
    np.testing.assert_allclose(eps.value, u_max, atol=1e-8)
    assert eps.value[2] > 0  # 19 h with all DERs off is infeasible
    duals = nc.duals()
    np.testing.assert_allclose(sum(d.sum(axis=0) for d in duals.values()), 1.0, atol=1e-6)
    # at 19 h the most violated limit is the import (0.101 pu) ...
    assert duals["import_max"][0, 2] == pytest.approx(1.0, abs=1e-6)
    # ... and a per-family slack shows the voltage family too
    nc2 = model.constraints(p, q, slack={"voltage_min": eps}, form=form)
    prob2 = cp.Problem(cp.Minimize(cp.sum(eps)), [nc2["voltage_min"].constraint] + nc2.aux_constraints)
    prob2.solve(solver=cp.HIGHS)
    assert eps.value[2] == pytest.approx(u["voltage_min"][:, 2].max(), abs=1e-8)
    d = nc2["voltage_min"].dual()[:, 2]
    assert model.families["voltage_min"].rows[int(np.argmax(d))][0] in ("11", "12", "13")


def test_single_phase_feeder_from_case():
    """The single-phase feeders of tso24_dso5 (MW) work: MP = 2r, MQ = 2x."""
    c = read_case(CASE_DIR.parent / "tso24_dso5")
    f = next(iter(c.feeders.values()))
    m = LinDist3Flow(f, power_unit=c.power_unit)
    assert all(ph == "a" for _, ph in m.node_phases)
    ln = f.lines[0]
    i = m.index[(ln.to_node, "a")]
    p = np.zeros(m.n)
    p[i] = 0.1
    w = m.evaluate(p, np.zeros(m.n)).w
    # a load at the end of the first line drops every node below by 2 r P
    assert w[i] == pytest.approx(f.v_head ** 2 - 2 * ln.r1 * 0.1)
    loads = [d.id for d in c.loads if d.grid == f.id]
    a = m.injection_matrix(c.meters, loads)
    assert a.sum() == pytest.approx(len(loads) * 1000.0 / f.s_base_kva)


# --------------------------------------------------------------------- exact row reduction


@st.composite
def coded_feeders(draw):
    """Random feeders built from two line codes (so chains of proportional lines occur),
    some nodes with other voltage limits, and loads on a few node-phases."""
    n = draw(st.integers(3, 30))
    parents = [None] + [draw(st.integers(max(0, i - 3), i - 1)) for i in range(1, n)]
    codes = []
    for _ in range(2):
        r = np.full((3, 3), draw(st.floats(0.05, 0.2))) + np.diag([draw(st.floats(0.3, 0.6)) for _ in range(3)])
        x = np.full((3, 3), draw(st.floats(0.05, 0.2))) + np.diag([draw(st.floats(0.2, 0.5)) for _ in range(3)])
        codes.append((r, x))
    phases = ["abc"]
    nodes = [FeederNode("n0", "abc", None)]
    lines = []
    for i in range(1, n):
        options = [s for s in ("abc",) * 4 + ("ab", "a", "b", "c") if set(s) <= set(phases[parents[i]])]
        ph = draw(st.sampled_from(options))
        phases.append(ph)
        keep = np.array([c in ph for c in "abc"])
        r, x = codes[draw(st.integers(0, 1))]
        length = draw(st.floats(0.01, 0.2))
        r, x = r * length, x * length
        r, x = np.where(np.outer(keep, keep), r, 0), np.where(np.outer(keep, keep), x, 0)
        vmin = draw(st.sampled_from([0.95] * 6 + [0.97]))
        nodes.append(FeederNode(f"n{i}", ph, f"n{parents[i]}", vmin, 1.05))
        lim = draw(st.sampled_from([math.inf, 0.5, 0.3]))
        lines.append(FeederLine(f"l{i}", f"n{parents[i]}", f"n{i}", ph, r, x, p_max=lim, q_max=lim))
    f = Feeder("F", nodes, lines, v_head=draw(st.floats(0.98, 1.05)), import_max=1000.0)
    m = LinDist3Flow(f)
    active = np.array(draw(st.lists(st.booleans(), min_size=m.n, max_size=m.n))) & \
        (np.arange(m.n) % draw(st.integers(1, 5)) == 0)
    return m, active


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coded_feeders(), st.integers(0, 2 ** 31 - 1))
def test_reduction_keeps_the_worst_row(data, seed):
    """For net loads on the active node-phases only, the kept rows of each family
    reach the same maximum as all rows (so feasibility and the slack LP agree)."""
    m, active = data
    red = m.reduction(active)
    rng = np.random.default_rng(seed)
    p = np.where(active[:, None], rng.normal(0, 0.3, (m.n, 8)), 0.0)
    q = np.where(active[:, None], rng.normal(0, 0.3, (m.n, 8)), 0.0)
    for name, fam in m.families.items():
        full = fam.value(p, q).max(axis=0)
        if name not in red.families:  # only lines without flow: never binding
            assert fam.quantity in ("P", "Q") and (full < 0).all()
            continue
        kept = red.families[name].value(p, q).max(axis=0)
        if fam.quantity == "w":
            np.testing.assert_allclose(kept, full, atol=1e-12, err_msg=name)
        else:  # lines without flow (u = -limit < 0) may be the maximum of all rows
            np.testing.assert_allclose(np.maximum(kept, 0), np.maximum(full, 0), atol=1e-12, err_msg=name)
    # the sparse builder on the reduced tree reproduces the kept rows
    nc = m.constraints(p, q, form="sparse", active=active)
    cp.Problem(cp.Minimize(0), nc.aux_constraints).solve(solver=cp.CLARABEL)
    for name, fc in nc.items():
        np.testing.assert_allclose(fc.u.value, fc.family.value(p, q), atol=1e-7, err_msg=name)


def test_reduction_on_tes_feeder(case, model):
    ids = [d.id for d in case.loads] + [u.id for u in case.units]
    a = model.injection_matrix(case.meters, ids)
    red = model.reduction(a)
    kept = {model.node_phases[i][0] for i in red.key}
    # every non-head node has a meter or branches: nothing to drop ...
    assert kept == {nd for nd, _ in model.node_phases}
    # ... but with only the industrial customer active, the trunk 3-4-5-6 is a chain of one cable type
    red = model.reduction(model.injection_matrix(case.meters, ["IL1"]))
    assert {model.node_phases[i][0] for i in red.key} == {"3", "7"}
    assert red.families["line_p_max"].rows == (("L1", "a"), ("L1", "b"), ("L1", "c"),
                                               ("L5", "a"), ("L5", "b"), ("L5", "c"))
    assert red.families["voltage_min"].n_rows == 6
    assert model.reduction(None).key.tolist() == list(range(model.n))


def test_reduced_lp_on_a_long_feeder():
    """A 150-node feeder with 12 metered node-phases: the reduced sparse LP keeps far
    fewer rows and reaches the same optimum as the full one, feasible for all rows."""
    rng = np.random.default_rng(5)
    n = 150
    zs = (np.full((3, 3), 0.1) + np.eye(3) * 0.2) / 0.0484
    xs = (np.full((3, 3), 0.07) + np.eye(3) * 0.1) / 0.0484
    nodes = [FeederNode("0", "abc", None)]
    lines = []
    for i in range(1, n):
        par = i - 1 if rng.random() < 0.8 else int(rng.integers(0, i))
        ln = rng.uniform(0.002, 0.01)
        nodes.append(FeederNode(str(i), "abc", str(par)))
        lines.append(FeederLine(f"L{i}", str(par), str(i), "abc", zs * ln, xs * ln, p_max=0.02, q_max=0.02))
    f = Feeder("F", nodes, lines, v_head=1.02, import_min=-100.0, import_max=60.0)
    m = LinDist3Flow(f)
    at = rng.choice(np.arange(1, n), 12, replace=False)
    meters = {f"D{k}": MeterLocation("F", str(at[k]), "abc"[k % 3] if k < 8 else "abc") for k in range(12)}
    a = m.injection_matrix(meters, list(meters))
    T = 6
    lo = np.where(np.arange(12) < 8, 2.0, -60.0)[:, None] * np.ones((1, T))  # 8 loads, 4 PV-like units
    hi = np.where(np.arange(12) < 8, 8.0, 0.0)[:, None] * np.ones((1, T))
    objs, rows = [], []
    for active in (None, a):
        x = cp.Variable((12, T))
        p_net = a @ x
        nc = m.constraints(p_net, 0.3 * p_net, form="sparse", active=active)
        prob = cp.Problem(cp.Minimize(1000 * cp.sum(p_net) + 0.01 * cp.sum(cp.abs(x))),
                          [x >= lo, x <= hi] + nc.constraints)
        prob.solve(solver=cp.CLARABEL)
        assert prob.status == cp.OPTIMAL
        objs.append(prob.value)
        rows.append(sum(fc.family.n_rows for fc in nc.values()))
        assert violations(p_net.value, 0.3 * p_net.value, m).u.max() <= 1e-6
        binding = max(float(v.max()) for v in m.limit_values(p_net.value, 0.3 * p_net.value).values())
        assert binding > -1e-6  # some limit binds
    assert objs[0] == pytest.approx(objs[1], rel=1e-6, abs=1e-8)
    assert rows[1] < rows[0] / 3
