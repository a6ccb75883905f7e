"""The tes protocol end to end on the reference feeder (LocalRuntime)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from agents.base import InfeasibleSetup
from coordinator.boundary import Boundary, read_audit_log
from coordinator.tes.policy import TES_POLICY
from coordinator.tes.protocol import TESProtocol
from coordinator.tes.setup import TESConfig, make_agents, prepare_case
from coordinator.runtime import LocalRuntime
from scenarios.registry import load_case

# model error of LinDist3Flow against OpenDSS measured in the foundation tests (<= 0.005 pu, README ~0.004)
MODEL_ERROR_PU = 0.005


@pytest.fixture(scope="module")
def case():
    return load_case("tes_feeder")


def run_day(case, tmp_path=None, **cfg):
    b = Boundary(None if tmp_path is None else tmp_path / "audit.jsonl")
    rt = LocalRuntime(b)
    proto = TESProtocol(rt, case, TESConfig(**cfg))
    res = proto.run_day(0)
    b.close()
    return res, proto


def schedule_diff(a, b) -> float:
    d = [np.max(np.abs(a.purchases[k] - b.purchases[k])) for k in a.purchases]
    d += [np.max(np.abs(a.loads[k] - b.loads[k])) for k in a.loads]
    return float(max(d))


@pytest.mark.parametrize("pricing", ["personalized", "uniform"])
@pytest.mark.parametrize("limit", [200.0, 250.0])
def test_decomposed_equals_centralized(case, pricing, limit):
    """Proposition 3: the decomposition reaches the centralized optimum.

    The optimum is a face, not a point (WT and PV offer at 0 $/kWh, G2 and the main grid both
    at 0.05 $/kWh in some hours), so the comparison is on what holds on the whole face: the
    objective, feasibility in LinDist3Flow, and the one point both runs pick on it, the
    least-norm (tie-broken) purchases for the loads.
    """
    res, proto = run_day(case, pricing=pricing, transformer_kw=limit)
    assert res.converged
    assert res.objective_gap <= 1e-6
    dso = make_agents(proto.case, proto.config)["operator"]
    for s in (res.solution, res.centralized):
        q = {k: v for k, v in s.injections_q.items() if k in s.loads}
        assert dso.violated_limits(s.injections_p, q, tol=1e-7) == []
        assert s.tie_break_solver in ("HIGHS", "CLARABEL")  # offers tie: the purchases were tie-broken
    # 1e-3 kW: the loads of the two runs differ by up to ~1e-5 kW (the cuts and the network
    # constraints are met to solver tolerances), and the least-norm purchases follow the loads
    assert schedule_diff(res.solution, res.centralized) <= 1e-3
    assert len(res.iterations) <= 10


def test_unconstrained_violates_and_final_is_feasible(case, tmp_path):
    res, proto = run_day(case)
    # the unconstrained market pushes the end of the overhead lateral above 1.05 pu at midday
    fams = {v["family"] for v in res.violations_unconstrained}
    assert "voltage_max" in fams
    assert any("at 13 phase a" in v["where"] for v in res.violations_unconstrained)
    # the final schedule violates nothing in LinDist3Flow
    dso = make_agents(proto.case, proto.config)["operator"]
    s = res.solution
    q = {k: v for k, v in s.injections_q.items() if k in s.loads}
    assert dso.violated_limits(s.injections_p, q, tol=1e-7) == []
    after = res.voltages[(res.voltages.stage == "after") & (res.voltages.model == "lindist3flow")]
    assert after.v_pu.max() <= 1.05 + 1e-6 and after.v_pu.min() >= 0.95 - 1e-6
    assert set(res.voltages.model) == {"lindist3flow", "opendss"}  # both models are reported
    # the linear check sends no loss estimate: the LA's balance stays lossless
    assert res.network_check == "linear" and (res.iterations["loss_update_kw"] == 0).all()
    assert (res.losses["losses_covered_kw"] == 0).all()


def test_final_schedule_replayed_in_opendss(case):
    opendss = pytest.importorskip("network.opendss")
    res, proto = run_day(case)
    s = res.solution
    feeder = proto.case.feeders["LV1"]
    v_max_err = 0.0
    for t in (10, 12, 19):
        loads = {c: (float(s.loads[c][t]), float(s.injections_q[c][t])) for c in s.loads}
        gens = {u: float(s.purchases[u][t]) for u in s.purchases if u != "MG"}
        volts = opendss.solve_dss(opendss.feeder_to_dss(proto.case, loads=loads, gens=gens))
        lo = min(volts.values())
        hi = max(volts.values())
        assert lo >= 0.95 - MODEL_ERROR_PU and hi <= 1.05 + MODEL_ERROR_PU, (t, lo, hi)
        v_max_err = max(v_max_err, hi - 1.05, 0.95 - lo)
    assert feeder.id == "LV1"


def test_boundary_on_audit_log(case, tmp_path):
    from coordinator.audit import verify_log

    res, proto = run_day(case, tmp_path=tmp_path)
    log = read_audit_log(tmp_path / "audit.jsonl")
    assert log, "the audit log is empty"
    # every message, rebuilt from its line, passes the policy and the schemas again (a smuggled field fails)
    assert verify_log(tmp_path / "audit.jsonl").routed == len(log)
    node_ids = {n.id for n in proto.case.feeders["LV1"].nodes}
    for rec in log:
        # every message is allowed by the tes policy
        allowed = {t.__name__ for t in TES_POLICY.allowed(rec["sender_role"], rec["receiver_role"])}
        assert rec["type"] in allowed, rec
        text = json.dumps(rec["payload"])
        if rec["receiver_role"] == "tes.load_aggregator":
            # no node numbers, phases, impedances or limits reach the LA
            keys = set()
            for v in rec["payload"].values():
                if isinstance(v, dict):
                    keys |= set(v)
            assert not keys & node_ids, rec
            for word in ("phase", "node", "impedance", "v_min", "v_max", "r_aa", "limit"):
                assert word not in text, (word, rec["type"])
        if rec["receiver_role"] == "tes.operator":
            # the TESO gets injections only: no prices, costs or utilities
            assert rec["type"] == "Injections"
            assert set(rec["payload"]) == {"p", "q"}
    kinds = {(r["sender_role"], r["receiver_role"], r["type"]) for r in log}
    assert ("tes.operator", "tes.load_aggregator", "FeasibilityCut") in kinds
    assert ("tes.load_aggregator", "tes.operator", "Injections") in kinds
    # the coordinator drives the day with typed commands; every offer is for day-ahead energy
    commands = [(r["receiver_role"], r["payload"]["action"]) for r in log if r["sender"] == "coordinator"]
    assert commands == [("tes.main_grid", "open"), ("tes.load_aggregator", "close")]
    assert {r["type"] for r in log if r["sender"] == "coordinator"} == {"Command"}
    offers = [r for r in log if r["type"] == "Offer"]
    assert offers and all(r["payload"]["product"] == "day_ahead" for r in offers)


def test_commands_and_products_are_typed(case):
    from coordinator.boundary import BoundaryViolation
    from coordinator.messages import Action, Command, Offer, Product, Status

    b = Boundary()
    rt = LocalRuntime(b)
    TESProtocol(rt, case, TESConfig())
    with pytest.raises(BoundaryViolation):  # a status is not a command: tes takes commands only
        b.route(Status("coordinator", "MG", 0, note="open"))
    b.route(Command("coordinator", "MG", 0, action=Action.OPEN))
    # the LA buys day-ahead energy: the tes schema stops another product at the boundary
    with pytest.raises(BoundaryViolation, match="Offer from DERM to LA: field 'product': 'up' is not one of"):
        b.route(Offer("DERM", "LA", 1, product=Product.UP, prices={"G1": np.zeros(24)},
                      quantities={"G1": np.zeros(24)}))


def test_forbidden_message_is_stopped(case):
    from coordinator.boundary import BoundaryViolation
    from coordinator.messages import FeasibilityCut, Injections

    b = Boundary()
    rt = LocalRuntime(b)
    TESProtocol(rt, case, TESConfig())
    with pytest.raises(BoundaryViolation):  # a DER manager may not send injections to the TESO
        b.route(Injections("DERM", "TESO", 0, p={"G1": np.zeros(24)}))
    with pytest.raises(BoundaryViolation):  # a cut keyed by node numbers never reaches the LA
        b.route(FeasibilityCut("TESO", "LA", 0, period=3, coefficients={"13": 1.0}, constant=0.0))
    with pytest.raises(BoundaryViolation):  # an agent cannot speak for another
        b.route(FeasibilityCut("TESO", "LA", 0, period=3, coefficients={"G1": 1.0}), produced_by="DERM")


def test_bad_setup_names_hour_and_family(case):
    ders_off = prepare_case(case, TESConfig()).replace(
        units=tuple(u if u.kind == "main_grid" else _zero(u) for u in case.units))
    with pytest.raises(InfeasibleSetup) as ei:
        run_day(ders_off, transformer_kw=0.0)
    msg = str(ei.value)
    assert "hour 0" in msg and "import_max" in msg


def _zero(u):
    from dataclasses import replace

    return replace(u, p_max=0.0, avail_profile=None)


def test_mccormick_gap_reported(case):
    res, _ = run_day(case, relaxation="mccormick")
    gap = res.solution.mccormick_gap
    assert gap is not None and len(gap) == 9
    assert res.solution.objective >= res.centralized.objective - 1e-6  # a relaxation bounds the exact optimum


def test_repeated_cuts_stop_without_convergence(case, monkeypatch):
    """An operator that repeats its cuts gets no new schedule: the day stops, not converged, and is not closed."""
    from agents.tes.operator import DSO

    orig = DSO.check_schedule

    def sticky(self, p, q):  # always the answer to the first schedule it saw
        if not hasattr(self, "_first_check"):
            self._first_check = orig(self, p, q)
        return self._first_check

    monkeypatch.setattr(DSO, "check_schedule", sticky)
    res, _ = run_day(case, pricing="personalized")
    assert not res.converged
    # iteration 1 gets cuts, iteration 2 the same cuts again: the LA holds them all, so it sends nothing
    assert res.stop_reason.startswith("no progress") and "iteration 2" in res.stop_reason
    assert len(res.iterations) == 2 and (res.iterations["n_cuts"] > 0).all()
    sold = res.settlement[(res.settlement.role == "der_manager") & (res.settlement.item == "energy_kwh")]
    assert (sold.value == 0).all()  # the day was not closed: no seller got a schedule
