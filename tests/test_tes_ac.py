"""The tes protocol with the AC network check (``--network-check ac``) on tes_feeder.

The linear check (LinDist3Flow, the paper's model) cuts hours 10-13 for node 13a at up to 1.0522 pu,
where OpenDSS gives at most 1.0490 pu for the same schedule: a violation of the linearisation only.
The AC check sends a cut only where OpenDSS shows a violation, and the load aggregator's balance
covers the AC losses, so its main-grid purchase is the feeder's real import.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("opendssdirect")

from agents.tes.operator import DSO  # noqa: E402
from coordinator.boundary import Boundary, read_audit_log  # noqa: E402
from coordinator.runtime import LocalRuntime  # noqa: E402
from coordinator.tes.protocol import TESProtocol  # noqa: E402
from coordinator.tes.setup import TESConfig, make_agents  # noqa: E402
from network.model import Feeder  # noqa: E402
from network.opendss import feeder_to_dss, run_dss  # noqa: E402
from scenarios.registry import load_case  # noqa: E402

#: the OpenDSS source power read at the near-ideal source (Circuit.TotalPower) carries ~1e-3 kW of
#: rounding noise; the operator's import (summed over the head lines) is accurate to ~1e-9 kW
SOURCE_NOISE_KW = 5e-3
#: largest |V| excess accepted: E* <= 1e-6 pu^2 per hour, and |V|^2 - 1.05^2 <= 1e-6 -> |V| - 1.05 <= 4.8e-7
V_TOL = 5e-7


@pytest.fixture(scope="module")
def case():
    return load_case("tes_feeder")


def run_day(case, tmp_path=None, *, record=False, benchmarks=True, **cfg):
    """One day; with ``record`` the operator's check results, in order, are returned too."""
    checks: list = []
    orig = DSO.check_schedule

    def recording(self, p, q):
        res = orig(self, p, q)
        checks.append(res)
        return res

    b = Boundary(None if tmp_path is None else tmp_path / "audit.jsonl")
    with pytest.MonkeyPatch.context() as mp:
        if record:
            mp.setattr(DSO, "check_schedule", recording)
        proto = TESProtocol(LocalRuntime(b), case, TESConfig(**cfg))
        res = proto.run_day(0, benchmarks=benchmarks)
    b.close()
    return res, proto, checks


@pytest.fixture(scope="module")
def linear(case):
    return run_day(case)


@pytest.fixture(scope="module")
def ac(case, tmp_path_factory):
    return run_day(case, tmp_path_factory.mktemp("ac"), record=True, network_check="ac")


def lmp(case):
    (mg,) = [u for u in case.units if u.kind == "main_grid"]
    return case.profile(mg.price_profile)


def test_linear_cuts_a_violation_that_is_not_there(linear):
    res, _, _ = linear
    it1 = res.iterations.iloc[0]
    assert it1["violated_hours"] == "10,11,12,13" and it1["families"] == "voltage_max"
    before = res.voltages[(res.voltages.stage == "before") & (res.voltages.node == "13")
                          & (res.voltages.phase == "a") & res.voltages.hour.between(10, 13)]
    lin = before[before.model == "lindist3flow"].v_pu
    acv = before[before.model == "opendss"].v_pu
    assert lin.max() == pytest.approx(1.0522, abs=1e-4) and acv.max() == pytest.approx(1.0490, abs=1e-4)
    # the lossless balance: the main-grid purchase is below the AC import by the losses (up to ~6 kW)
    gap = res.losses["import_opendss_kw"] - res.losses["mg_purchase_kw"]
    assert gap.max() == pytest.approx(6.02, abs=0.01) and (gap > 2.5).all()
    assert (res.losses["losses_covered_kw"] == 0).all()


def test_ac_sends_no_cut_for_the_linear_only_violation(ac):
    res, _, checks = ac
    assert res.converged and res.network_check == "ac"
    # iteration 1 is the schedule the linear check cuts in hours 10-13: in AC it violates nothing
    first = res.iterations.iloc[0]
    assert first["n_cuts"] == 0 and first["e_star"] == 0.0 and first["loss_update_kw"] > 6.0
    assert not checks[0].cuts and checks[0].model == "ac"
    assert np.max(checks[0].voltages_ac) == pytest.approx(1.0490, abs=1e-4)
    assert np.max(checks[0].voltages) > 1.052  # LinDist3Flow would have cut it
    # every cut answers a schedule that OpenDSS puts above 1.05 pu in that hour
    n_cuts = 0
    for chk in checks:
        for cut in chk.cuts:
            n_cuts += 1
            assert cut.families == ("voltage_max",)
            assert np.max(chk.voltages_ac[:, cut.period]) > 1.05 + 1e-7
    assert n_cuts == int(res.iterations["n_cuts"].sum()) <= 2
    assert len(res.iterations) <= 8 and res.opendss_solves == 24 * len(res.iterations)


def test_ac_final_schedule_is_feasible_in_opendss(case, ac):
    res, proto, _ = ac
    after = res.voltages[(res.voltages.stage == "after") & (res.voltages.model == "opendss")]
    assert after.v_pu.max() <= 1.05 + V_TOL and after.v_pu.min() >= 0.95 - V_TOL
    # replayed independently: the exported script of the final schedule in a fresh OpenDSS circuit
    s = res.solution
    for t in (10, 12, 13, 19):
        loads = {c: (float(s.loads[c][t]), float(s.injections_q[c][t])) for c in s.loads}
        gens = {u: float(s.purchases[u][t]) for u in s.purchases if u != "MG"}
        v = run_dss(feeder_to_dss(proto.case, loads, gens)).voltages
        assert max(v.values()) <= 1.05 + V_TOL and min(v.values()) >= 0.95 - V_TOL
    # the LinDist3Flow image of the same schedule lies above 1.05: the AC check allows it
    lin = res.voltages[(res.voltages.stage == "after") & (res.voltages.model == "lindist3flow")]
    assert lin.v_pu.max() > 1.052


def test_main_grid_purchase_includes_the_losses(case, ac):
    """The LA's balance covers the AC losses: its main-grid purchase is the OpenDSS import of its schedule,
    within the loss tolerance (1e-4 kW) on the operator's import and within the source's rounding noise
    (5e-3 kW) on a fresh OpenDSS run of the exported script."""
    res, proto, _ = ac
    L = res.losses
    assert np.max(np.abs(L["mg_purchase_kw"] - L["import_opendss_kw"])) <= proto.config.loss_tolerance
    assert np.max(np.abs(L["losses_covered_kw"] - L["losses_opendss_kw"])) <= proto.config.loss_tolerance
    assert L["losses_opendss_kw"].between(2.5, 6.5).all()
    s = res.solution
    np.testing.assert_allclose(sum(s.purchases.values()), sum(s.loads.values()) + s.losses, atol=1e-9)
    for t in (0, 12, 19):
        loads = {c: (float(s.loads[c][t]), float(s.injections_q[c][t])) for c in s.loads}
        gens = {u: float(s.purchases[u][t]) for u in s.purchases if u != "MG"}
        src = run_dss(feeder_to_dss(proto.case, loads, gens)).source_kw
        assert s.purchases["MG"][t] == pytest.approx(src, abs=SOURCE_NOISE_KW)
    # the settlement bills the main grid's energy with the losses in it
    mg = res.settlement.query("role == 'main_grid' and item == 'energy_kwh'")["value"].item()
    assert mg == pytest.approx(L["import_opendss_kw"].sum(), abs=24 * proto.config.loss_tolerance)


def test_ac_profit_against_linear_on_equal_terms(case, linear, ac):
    """The linear run does not pay for its losses (its purchase is the lossless import), the AC run does.
    Billed for its AC losses at the LMP (what the main grid delivers), the linear run earns less than the AC
    run: the AC run keeps the 0.50 $ the linear-only cuts cost, and covers losses with G1 when it is
    cheaper than the main grid."""
    (lin, _, _), (acr, _, _) = linear, ac
    billed = lin.solution.objective - float(lmp(case) @ lin.losses["losses_opendss_kw"])
    assert acr.solution.objective >= billed + 0.5
    assert lin.unconstrained.objective - lin.solution.objective == pytest.approx(0.50, abs=0.01)
    # the AC run's own cost of its losses: at most their value at the LMP
    assert acr.unconstrained.objective - acr.solution.objective <= float(lmp(case) @ acr.losses["losses_opendss_kw"])


def test_ac_centralized_benchmark_at_the_fixed_point(ac):
    """The centralized benchmark of the AC check (LinDist3Flow shifted to the final schedule's AC values,
    the final AC losses in the balance) has the decomposed objective: the loop reached its fixed point."""
    res, _, _ = ac
    assert res.objective_gap <= 1e-6


def test_ac_messages_on_the_audit_log(ac, tmp_path_factory):
    res, proto, _ = ac
    log = read_audit_log(next(p for p in tmp_path_factory.getbasetemp().glob("ac*/audit.jsonl")))
    losses = [r for r in log if r["type"] == "Losses"]
    assert losses and all(r["sender_role"] == "tes.operator" and r["receiver_role"] == "tes.load_aggregator"
                          for r in losses)
    assert set(losses[0]["payload"]) == {"losses"} and len(losses[0]["payload"]["losses"]) == 24
    assert sum(r["type"] == "Accept" for r in log) == 1
    # the operator still sees injections only
    assert {r["type"] for r in log if r["receiver_role"] == "tes.operator"} == {"Injections"}


def _tight_case(case, v_max: float):
    (f,) = case.feeders.values()
    nodes = [replace(n, v_max=v_max) if n.id == "13" else n for n in f.nodes]
    f2 = Feeder(f.id, nodes, f.lines, n_phases=f.n_phases, v_head=f.v_head, s_base_kva=f.s_base_kva,
                v_base_kv=f.v_base_kv, import_min=f.import_min, import_max=f.import_max, pcc_bus=f.pcc_bus)
    return case.replace(feeders=(f2,))


def test_real_ac_violation_gets_a_cut_and_ends_feasible_in_ac(case):
    """v_max 1.047 pu at node 13: OpenDSS puts 13a above it around noon, so the AC check cuts, and the loop
    (cuts exact at each schedule's AC value, LinDist3Flow gradient) ends inside the limit in OpenDSS."""
    tight = _tight_case(case, 1.047)
    res, proto, checks = run_day(tight, record=True, benchmarks=False, network_check="ac")
    assert res.converged
    assert res.iterations.iloc[0]["n_cuts"] >= 1 and "voltage_max" in res.iterations.iloc[0]["families"]
    vmax = np.array([1.047 if n == "13" else 1.05 for n, _ in checks[0].node_phases])
    for chk in checks:  # every cut answers a violation that OpenDSS shows in that hour
        for cut in chk.cuts:
            t = cut.period
            assert set(cut.families) <= {"voltage_max", "import_min"}
            if "voltage_max" in cut.families:
                assert np.any(chk.voltages_ac[:, t] > vmax + 1e-9)
            if "import_min" in cut.families:  # the feeder would export (AC import with losses < 0)
                assert chk.import_ac[t] < 0
    v13 = res.voltages[(res.voltages.stage == "after") & (res.voltages.node == "13")]
    assert v13[v13.model == "opendss"].v_pu.max() == pytest.approx(1.047, abs=1e-5)
    assert v13[v13.model == "opendss"].v_pu.max() <= 1.047 + V_TOL
    # the final check (the operator's own) accepted it in AC
    assert checks[-1].accepted and float(checks[-1].violation.max()) <= 1e-6
    assert np.max(np.abs(res.losses["mg_purchase_kw"] - res.losses["import_opendss_kw"])) <= 1e-4


def test_ac_cut_is_exact_at_the_ac_value(case):
    """An AC cut: the LinDist3Flow gradient (the linear check's coefficients for the same limits) and the
    constant that makes it equal to E*_AC at the schedule; a balanced (lossless) schedule gets the losses."""
    tight = _tight_case(case, 1.04)
    a = make_agents(tight, TESConfig())
    lin: DSO = a["operator"]
    acop = DSO("TESO", tight.feeders["LV1"], tight.meters, network_check="ac")
    T = 24
    p = {c.id: c.p0.copy() for c in a["load_aggregator"].customers}
    q = {c.id: c.p0 * c.tan_phi for c in a["load_aggregator"].customers}
    p |= {"WT": -np.full(T, 60.0), "PV": -np.full(T, 20.0), "G1": np.zeros(T), "G2": np.zeros(T)}
    p["MG"] = -sum(v for v in p.values())  # balanced: covers no losses
    rl, ra = lin.check_schedule(p, q), acop.check_schedule(p, q)
    assert ra.cuts and ra.loss_estimate is not None and not ra.accepted
    np.testing.assert_allclose(ra.loss_estimate, ra.losses)
    x = {**p, **{f"{k}#q": v for k, v in q.items()}}
    ls = acop.limit_set(list(p), list(q))
    u_ac = acop.ac_limits(acop.ac_flow(p, q))
    assert {c.period for c in ra.cuts} == set(np.flatnonzero((u_ac > 1e-6).any(axis=0)))  # here: one row per hour
    for cut in ra.cuts:
        t = cut.period
        value = cut.constant + sum(c * x[k][t] for k, c in cut.coefficients.items())
        assert value == pytest.approx(cut.violation, abs=1e-12)  # exact at the AC value E*_AC
        assert cut.violation == pytest.approx(u_ac[u_ac[:, t] > 0, t].sum(), rel=1e-12)
        grad = ls.U[u_ac[:, t] > 0].sum(axis=0)  # the LinDist3Flow gradient of the rows violated in AC
        for j, k in enumerate(ls.decision_ids):
            assert cut.coefficients.get(k, 0.0) == pytest.approx(grad[j], rel=1e-12, abs=1e-15)
    assert rl.cuts and not np.allclose(rl.violation, ra.violation)  # the two checks disagree on this schedule
    # the schedule that covers the AC losses gets no loss estimate
    p2 = dict(p)
    p2["MG"] = p["MG"] - ra.losses
    assert acop.check_schedule(p2, q).loss_estimate is None


def test_config_rejects_bad_network_check():
    with pytest.raises(ValueError, match="network check"):
        TESConfig(network_check="dc")
    with pytest.raises(ValueError, match="loss tolerance"):
        TESConfig(network_check="ac", loss_tolerance=0.0)


def test_cli_network_check_ac_writes_both_models(tmp_path, capsys):
    """``run.py tes-day --network-check ac``: the summary says which check drove the cuts; the run folder has
    the voltages of both models, the losses table, E* named by what it is, and the comparison plot."""
    import pandas as pd

    import run as cli

    out = tmp_path / "run"
    assert cli.main(["tes-day", "--network-check", "ac", "--no-benchmarks", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "check ac: the OpenDSS AC power flow drove the cuts" in " ".join(text.split())
    v = pd.read_parquet(out / "voltages.parquet")
    assert set(v.model) == {"lindist3flow", "opendss"} and set(v.stage) == {"before", "after"}
    assert len(v) == 4 * 24 * 31  # 2 stages x 2 models x 24 hours x 31 node-phases
    it = pd.read_parquet(out / "iterations.parquet")
    assert {"e_star", "e_star_voltage_pu2", "e_star_flow_pu", "loss_update_kw"} <= set(it.columns)
    assert "violation" not in it.columns
    L = pd.read_parquet(out / "losses.parquet")
    assert (L["mg_purchase_kw"] - L["import_opendss_kw"]).abs().max() <= 1e-4
    w = pd.read_parquet(out / "welfare.parquet")
    assert w["network_check"].item() == "ac" and w["opendss_solves"].item() == 24 * len(it)
    assert (out / "voltage_models.png").read_bytes()[:4] == b"\x89PNG"
