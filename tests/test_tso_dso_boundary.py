"""tso-dso information boundary, checked on the audit log of a run and on the agents' own data."""
from __future__ import annotations

import io
import pickle

import pytest

from coordinator.boundary import COORDINATOR, Boundary, read_audit_log
from coordinator.tso_dso.protocol import TSODSOProtocol
from coordinator.tso_dso.setup import Roles, TSODSOConfig, make_hosts
from coordinator.runtime import LocalRuntime
from network.model import Feeder, TransmissionGrid
from scenarios.registry import load_case
from scenarios.tso_dso.wind import WindModel


@pytest.fixture(scope="module")
def case():
    return load_case("tso24_dso5")


@pytest.fixture(scope="module")
def audit(case, tmp_path_factory):
    ws = WindModel.from_case(case).scenarios(0.8, 3, 4, seed=5)
    path = tmp_path_factory.mktemp("tso_dso") / "audit.jsonl"
    boundary = Boundary(path)
    rt = LocalRuntime(boundary)
    proto = TSODSOProtocol(rt, case, ws, TSODSOConfig(schemes=("cm", "fc"), max_iterations=15))
    proto.run()
    rt.shutdown()
    boundary.close()
    from coordinator.audit import verify_log

    assert verify_log(path).routed == len(boundary.records)  # every message re-checked from its line
    return read_audit_log(path)


def _area_data(case):
    roles = Roles.of(case)
    members = {}
    for d, fid in roles.dsos.items():
        members[d] = {a.id for a in (*case.units, *case.loads) if a.grid == fid} | {roles.pcc_id[d]}
    feeder_ids = set()
    for f in case.feeders.values():
        feeder_ids |= {f.id} | {n.id for n in f.nodes if n.parent is not None} | {ln.id for ln in f.lines}
    trans_ids = {b.id for b in case.transmission.buses} | {ln.id for ln in case.transmission.lines}
    return roles, members, feeder_ids, trans_ids


def _keys(rec) -> set[str]:
    out: set[str] = set()
    for v in rec["payload"].values():
        if isinstance(v, dict):
            out |= set(v)
    return out


def test_every_message_was_logged_with_its_payload(audit):
    assert len(audit) > 100
    kinds = {r["type"] for r in audit}
    assert {"Offer", "Bid", "Schedule", "Caps", "Exchange", "OptimalityCut", "Command", "MasterBound",
            "RealTimeBounds", "IterationBounds"} <= kinds
    assert "Status" not in kinds  # the protocol is driven by typed commands only
    assert all("payload" in r for r in audit)


def test_tso_never_receives_feeder_data(case, audit):
    roles, members, feeder_ids, _ = _area_data(case)
    to_tso = [r for r in audit if r["receiver"] == roles.tso]
    assert to_tso
    assert {r["type"] for r in to_tso} <= {"Offer", "Bid", "OptimalityCut", "Command"}
    resources = {a.id for a in (*case.units, *case.loads)}
    pccs = set(roles.pcc_id.values())
    for r in to_tso:
        keys = _keys(r)
        assert not keys & feeder_ids, r
        assert keys <= resources | pccs, r
        if r["type"] == "OptimalityCut":  # a DSO's cut: its own area's resources and PCC only
            assert r["sender"] in roles.dsos
            assert keys <= members[r["sender"]], r
        if r["type"] in ("Offer", "Bid") and r["sender"] not in ("GENCO", "RETAIL"):
            # distribution participants send the TSO day-ahead offers only (one price, one quantity)
            assert r["payload"]["product"] == "day_ahead", r
            assert all(len(v) == 1 for v in r["payload"]["prices"].values()), r
            assert all(len(v) == 1 for v in r["payload"]["quantities"].values()), r
    # payload fields are those of the message types: no topology, impedance or limit field exists
    assert all(set(r["payload"]) <= {"prices", "quantities", "scenario", "coefficients", "constant", "value",
                                     "converged", "iteration", "gap", "note", "product", "action", "scheme",
                                     "scenario_set"} for r in to_tso)


def test_dso_never_receives_transmission_or_other_area_data(case, audit):
    roles, members, _, trans_ids = _area_data(case)
    area_parts = {d: {o.id for o in case.owners if o.area == roles.area_of_dso[d] and o.id in roles.participants}
                  for d in roles.dsos}
    for d in roles.dsos:
        to_dso = [r for r in audit if r["receiver"] == d]
        assert to_dso
        assert {r["type"] for r in to_dso} <= {"Offer", "Bid", "Schedule", "Caps", "Exchange", "Command"}
        assert {r["sender"] for r in to_dso} <= {roles.tso, COORDINATOR} | area_parts[d]
        for r in to_dso:
            keys = _keys(r)
            assert keys <= members[d], (d, r)
            assert not keys & trans_ids
            if r["type"] == "Exchange":
                assert set(r["payload"]["values"]) == {roles.pcc_id[d]}
    # no DSO ever talks to another DSO or to a participant of another area
    for r in audit:
        if r["sender_role"] == "tso_dso.dso":
            assert r["receiver"] == roles.tso


def test_participants_hear_only_about_their_own_resources(case, audit):
    roles, *_ = _area_data(case)
    for p in roles.participants:
        own = {a.id for a in (*case.units_of(p), *case.loads_of(p))}
        for r in audit:
            if r["receiver"] == p and r["type"] != "Command":
                assert _keys(r) <= own, (p, r)


def _holds(obj, cls) -> list:
    found = []

    class P(pickle.Pickler):
        def persistent_id(self, o):  # called for every object pickled
            if isinstance(o, cls):
                found.append(o)
            return None

    P(io.BytesIO()).dump(obj)
    return found


def test_agents_hold_only_their_own_grid(case):
    ws = WindModel.from_case(case).scenarios(0.5, 2, 0, seed=1)
    hosts, roles = make_hosts(case, ws)
    for h in hosts:
        feeders = _holds(h, Feeder)
        grids = _holds(h, TransmissionGrid)
        if h.role == "tso_dso.tso":
            assert not feeders and len({id(g) for g in grids}) == 1
        elif h.role == "tso_dso.dso":
            assert not grids and {f.id for f in feeders} == {roles.dsos[h.id]}
        else:
            assert not feeders and not grids
