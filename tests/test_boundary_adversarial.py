"""Adversarial tests of the information boundary, through the real boundary and runtime.

Each attack is made by a host that answers with a crafted message (:class:`Scripted`, standing in
for a real agent with that agent's id, role and ids), by the coordinator, or by a caller who
tampers with a message after routing; each must stop with ``BoundaryViolation`` naming sender,
receiver, type and the offending field. Grouped by the review's findings: (1) message content,
(2) keys and areas, (3) delivery, (4) the analyst channel. The audit log (5), the tests' own
strength (6) and Ray (7) are in ``test_audit.py`` and ``test_ray_security.py``; the Ray versions
of a few attacks are at the end of this file.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import pickle
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pytest

from coordinator.boundary import COORDINATOR, Boundary, BoundaryViolation, Policy
from coordinator.messages import (Accept, Action, Bid, Caps, Command, Exchange, FeasibilityCut, FrozenMap, Injections,
                                  IterationBounds, MasterBound, Offer, OptimalityCut, PriceKind, PriceSignal,
                                  Product, RealTimeBounds, ScenarioSet, Schedule, Scheme, Status, frozen_array)
from coordinator.runtime import LocalRuntime
from coordinator.tes.policy import TES_POLICY
from coordinator.tes.schema import dims as tes_dims
from coordinator.tes.setup import TESConfig
from coordinator.tes.setup import make_hosts as tes_hosts
from coordinator.tso_dso.policy import TSO_DSO_POLICY
from coordinator.tso_dso.schema import dims as tso_dso_dims
from coordinator.tso_dso.setup import make_hosts as tso_dso_hosts
from scenarios.registry import load_case
from scenarios.tso_dso.wind import WindModel

H = 24
CUSTOMERS = ("AL1", "CL1", "IL1", "RL1", "RL2", "RL3", "RL4", "RL5", "RL6")
ray_param = pytest.param("ray", marks=pytest.mark.ray)


# --------------------------------------------------------------------------- a host that answers as scripted
def _cut(**kw: Any) -> FeasibilityCut:
    base = dict(period=3, coefficients={"RL1": 0.5}, constant=-1.0, violation=0.1, families=("voltage_max",))
    base.update(kw)
    return FeasibilityCut("TESO", "LA", 2, **base)


@dataclass(frozen=True, slots=True)
class LeakyCut(FeasibilityCut):
    """A cut type of the attacker's own, with a field for the feeder's impedances."""

    impedances: Any = None
    FIELDS: ClassVar[dict[str, str]] = {**FeasibilityCut.FIELDS, "impedances": "array"}


class DictCut(FeasibilityCut):
    """A subclass without slots: it has a ``__dict__`` for extra attributes."""


def _leaky_cut(host: Any, batch: list) -> list:
    return [LeakyCut("TESO", "LA", 2, period=3, coefficients={"RL1": 0.5}, constant=-1.0, violation=0.1,
                     impedances=np.full((11, 3, 3), 0.3))]


def _dict_cut(host: Any, batch: list) -> list:
    m = DictCut("TESO", "LA", 2, period=3, coefficients={"RL1": 0.5}, constant=-1.0, violation=0.1)
    object.__setattr__(m, "impedance", "r_aa_pu L1=0.30075068")  # it has a __dict__
    return [m]


def _tensor_cut(host: Any, batch: list) -> list:
    return [_cut(constant=np.full((11, 3, 3), 0.30075068))]


#: scripts of :class:`Scripted` hosts (module level: picklable for Ray actors)
SCRIPTS = {
    "tensor_cut": _tensor_cut,
    "leaky_cut": _leaky_cut,
    "dict_cut": _dict_cut,
    "string_families": lambda h, b: [_cut(families="r_aa_pu L1=0.30075068")],
    "unknown_family": lambda h, b: [_cut(families=("voltage_max", "r_aa_pu L1=0.30075068"))],
    "vector_coefficient": lambda h, b: [_cut(coefficients={"RL1": np.arange(3.0)})],
    "period_out_of_range": lambda h, b: [_cut(period=H)],
    "period_float": lambda h, b: [_cut(period=3.0)],
    "period_bool": lambda h, b: [_cut(period=True)],
    "nan_violation": lambda h, b: [_cut(violation=math.nan)],
    "inf_constant": lambda h, b: [_cut(constant=math.inf)],
    "negative_violation": lambda h, b: [_cut(violation=-1.0)],
    "accept_nan": lambda h, b: [Accept("TESO", "LA", 2, violation=math.nan)],
    "cut_on_node": lambda h, b: [_cut(coefficients={"13": 1.0})],
    "injections_long": lambda h, b: [Injections("LA", "TESO", 2, p={"RL1": np.zeros(H + 1)})],
    "injections_2d": lambda h, b: [Injections("LA", "TESO", 2, p={"RL1": np.zeros((H, 3))})],
    "injections_nan": lambda h, b: [Injections("LA", "TESO", 2, p={"RL1": np.r_[np.zeros(H - 1), np.nan]})],
    "injections_on_node": lambda h, b: [Injections("LA", "TESO", 2, p={"13": np.zeros(H)})],
    "schedule_other_seller": lambda h, b: [Schedule("LA", "DERM", 2, quantities={"MG": np.zeros(H)},
                                                    prices={"MG": np.zeros(H)})],
    "schedule_price_without_quantity": lambda h, b: [Schedule("LA", "DERM", 2, quantities={"G1": np.zeros(H)},
                                                              prices={"G1": np.zeros(H), "G2": np.zeros(H)})],
    "offer_inf": lambda h, b: [Offer("DERM", "LA", 2, prices={"G1": np.zeros(H)}, quantities={"G1": np.full(H, np.inf)})],
    "offer_strings": lambda h, b: [Offer("DERM", "LA", 2, prices={"G1": ["x_pu L3=0.0139"] * H}, quantities={"G1": np.ones(H)})],
    "offer_foreign_unit": lambda h, b: [Offer("MG", "LA", 2, prices={"G1": np.zeros(H)}, quantities={"G1": np.ones(H)})],
    "price_free_text": lambda h, b: [PriceSignal("MG", "DERM", 2, product="lmp at node 13 (v_max 1.05)",
                                                 prices={"MG": np.zeros(H)})],
}


class Scripted:
    """A host with a real agent's id, role and ids that answers every delivery with ``SCRIPTS[script]``."""

    ANALYST_READS = ("report",)

    def __init__(self, agent_id: str, role: str, public: Any = (), decisions: Any = (), area: int | None = None,
                 script: str = "") -> None:
        self.id, self.role, self.area, self.script = agent_id, role, area, script
        self._public, self._decisions = frozenset(public), frozenset(decisions)
        self.received: list[str] = []

    @classmethod
    def like(cls, host: Any, script: str) -> "Scripted":
        return cls(host.id, host.role, host.public_ids(), host.decision_ids(), getattr(host, "area", None), script)

    def public_ids(self) -> frozenset[str]:
        return self._public

    def decision_ids(self) -> frozenset[str]:
        return self._decisions

    def handle(self, batch: list) -> list:
        self.received += [m.kind for m in batch]
        return SCRIPTS[self.script](self, batch) if self.script else []

    def report(self) -> dict:
        return {"received": list(self.received), "state": {"x": np.arange(3.0)}}

    def snapshot(self) -> bytes:
        return pickle.dumps(self)

    @staticmethod
    def restore(blob: bytes) -> "Scripted":
        return pickle.loads(blob)


# --------------------------------------------------------------------------- set-ups
@pytest.fixture(scope="module")
def tes_case():
    return load_case("tes_feeder")


@pytest.fixture(scope="module")
def tso_case():
    return load_case("tso24_dso5")


@pytest.fixture(scope="module")
def wind(tso_case):
    return WindModel.from_case(tso_case).scenarios(0.6, 3, 4, seed=0)


def tes_runtime(case: Any, scripted: dict[str, str] | None = None, kind: str = "local", log=None):
    """The tes agents under the tes policy; the agents in ``scripted`` replaced by :class:`Scripted` hosts."""
    b = Boundary(log)
    b.use(TES_POLICY, tes_dims(case))
    if kind == "local":
        rt = LocalRuntime(b)
    else:
        from coordinator.runtime import RayRuntime

        rt = RayRuntime(b)
    for h in tes_hosts(case, TESConfig()):
        rt.add(Scripted.like(h, scripted[h.id]) if h.id in (scripted or {}) else h)
    return rt


def tso_runtime(case: Any, wind: Any, scripted: dict[str, str] | None = None):
    b = Boundary()
    b.use(TSO_DSO_POLICY, tso_dso_dims(wind))
    rt = LocalRuntime(b)
    hosts, _ = tso_dso_hosts(case, wind)
    for h in hosts:
        rt.add(Scripted.like(h, scripted[h.id]) if h.id in (scripted or {}) else h)
    return rt


def provoke_tes(rt: Any, agent: str) -> list:
    """Deliver one ordinary message to ``agent`` (tes) and return its routed replies."""
    if agent == "TESO":  # the LA's injections
        m = rt.boundary.route(Injections("LA", "TESO", 1, p={c: np.zeros(H) for c in CUSTOMERS}), produced_by="LA")
    else:
        action = {"LA": Action.CLOSE, "DERM": Action.END_OF_DAY, "MG": Action.OPEN}[agent]
        (m,) = rt.send([Command(COORDINATOR, agent, 1, action=action)])
    return rt.exchange([m])


def refused(exc: pytest.ExceptionInfo, sender: str, receiver: str, kind: str, field_name: str) -> None:
    """The violation names sender, receiver, type and field (in its text and its attributes)."""
    e = exc.value
    text = str(e)
    assert (e.sender, e.receiver, e.kind) == (sender, receiver, kind), text
    assert f"{kind} from {sender} to {receiver}" in text, text
    assert e.field == field_name, (e.field, text)
    if field_name:
        assert f"field '{field_name}'" in text, text


def attack_tes(case: Any, agent: str, script: str) -> pytest.ExceptionInfo:
    rt = tes_runtime(case, {agent: script})
    with pytest.raises(BoundaryViolation) as exc:
        provoke_tes(rt, agent)
    return exc


# =========================================================================== (1) content
@pytest.mark.parametrize("script, kind, field_name, what", [
    ("tensor_cut", "FeasibilityCut", "constant", "must be a float, got a float64 array of shape (11, 3, 3)"),
    ("string_families", "FeasibilityCut", "families", "must be a tuple of strings, got the string"),
    ("unknown_family", "FeasibilityCut", "families", "'r_aa_pu L1=0.30075068' is not one of"),
    ("vector_coefficient", "FeasibilityCut", "coefficients['RL1']", "must be a float"),
    ("period_out_of_range", "FeasibilityCut", "period", "24 is outside [0, 23]"),
    ("period_float", "FeasibilityCut", "period", "must be an int"),
    ("period_bool", "FeasibilityCut", "period", "must be an int, got a bool"),
    ("nan_violation", "FeasibilityCut", "violation", "must be finite"),
    ("inf_constant", "FeasibilityCut", "constant", "must be finite"),
    ("negative_violation", "FeasibilityCut", "violation", "outside [0, inf]"),
    ("accept_nan", "Accept", "violation", "must be finite"),
])
def test_operator_content(tes_case, script, kind, field_name, what):
    """The TES operator answers the LA's injections with a cut (or acceptance) carrying something else."""
    exc = attack_tes(tes_case, "TESO", script)
    refused(exc, "TESO", "LA", kind, field_name)
    assert what in str(exc.value)


@pytest.mark.parametrize("script, field_name, what", [
    ("injections_long", "p['RL1']", "has shape (25,); the protocol's dimensions allow (24,)"),
    ("injections_2d", "p['RL1']", "must be 1-D, got shape (24, 3)"),
    ("injections_nan", "p['RL1']", "must be finite (NaN or inf found)"),
])
def test_load_aggregator_injections_content(tes_case, script, field_name, what):
    exc = attack_tes(tes_case, "LA", script)
    refused(exc, "LA", "TESO", "Injections", field_name)
    assert what in str(exc.value)


def test_offer_with_an_infinite_quantity(tes_case):
    """'Unlimited' is said by leaving the quantity out (the main grid), never with inf."""
    exc = attack_tes(tes_case, "DERM", "offer_inf")
    refused(exc, "DERM", "LA", "Offer", "quantities['G1']")


def test_offer_with_string_prices(tes_case):
    exc = attack_tes(tes_case, "DERM", "offer_strings")
    refused(exc, "DERM", "LA", "Offer", "prices['G1']")


def test_price_signal_product_is_an_enumeration(tes_case):
    exc = attack_tes(tes_case, "MG", "price_free_text")
    refused(exc, "MG", "DERM", "PriceSignal", "product")
    assert "must be a PriceKind" in str(exc.value)


def test_schedule_prices_without_quantities(tes_case):
    exc = attack_tes(tes_case, "LA", "schedule_price_without_quantity")
    refused(exc, "LA", "DERM", "Schedule", "prices")


def test_subclass_with_an_extra_field_is_refused(tes_case):
    """A host returns a message of its own subclass with an ``impedances`` field: not a message type."""
    exc = attack_tes(tes_case, "TESO", "leaky_cut")
    refused(exc, "TESO", "LA", "LeakyCut", "")
    assert "not a message type (subclasses are not accepted)" in str(exc.value)


def test_subclass_with_extra_attributes_is_refused(tes_case):
    exc = attack_tes(tes_case, "TESO", "dict_cut")
    refused(exc, "TESO", "LA", "DictCut", "")


def test_messages_take_no_extra_attributes_and_arrays_stay_read_only():
    m = _cut()
    with pytest.raises(AttributeError):
        object.__setattr__(m, "impedances", np.ones(3))
    with pytest.raises(TypeError, match="read-only"):
        m.coefficients["RL2"] = 1.0  # type: ignore[index]
    inj = Injections("LA", "TESO", 1, p={"RL1": np.zeros(H)})
    with pytest.raises(ValueError):
        inj.p["RL1"][0] = 5.0
    with pytest.raises(ValueError):
        inj.p["RL1"].setflags(write=True)  # a view of a read-only base: cannot be made writeable
    # pickling (as to a Ray actor) rebuilds through the constructor: no routing token, still read-only
    back = pickle.loads(pickle.dumps(inj))
    from coordinator.schema import digest

    assert digest(back) == digest(inj) and back._seq is None and not back.p["RL1"].flags.writeable


def test_command_action_must_be_a_step_of_the_receiver(tes_case):
    rt = tes_runtime(tes_case)
    with pytest.raises(BoundaryViolation) as exc:
        rt.send([Command(COORDINATOR, "MG", 1, action=Action.CLOSE)])
    refused(exc, COORDINATOR, "MG", "Command", "action")
    with pytest.raises(BoundaryViolation) as exc:
        rt.send([Command(COORDINATOR, "MG", 1, action="open; v_max=1.05")])
    refused(exc, COORDINATOR, "MG", "Command", "action")


def test_status_notes_are_typed():
    policy = Policy("toy", {}, coordinator_types=frozenset({Status}), to_coordinator={"agent": frozenset()})
    b = Boundary(policy=policy)
    b.register("a1", "agent")
    with pytest.raises(BoundaryViolation) as exc:
        b.route(Status(COORDINATOR, "a1", 1, note="line L3 x_pu=0.0139"))
    refused(exc, COORDINATOR, "a1", "Status", "note")
    with pytest.raises(BoundaryViolation) as exc:
        b.route(Status(COORDINATOR, "a1", 1, gap=math.nan))
    refused(exc, COORDINATOR, "a1", "Status", "gap")


def test_plain_dict_and_writeable_payloads_are_refused(tes_case):
    rt = tes_runtime(tes_case)
    m = Injections("LA", "TESO", 1, p={"RL1": np.zeros(H)})
    object.__setattr__(m, "p", {"RL1": np.zeros(H)})  # a mutable dict of a writeable array
    with pytest.raises(BoundaryViolation) as exc:
        rt.boundary.route(m, produced_by="LA")
    refused(exc, "LA", "TESO", "Injections", "p")
    m = Injections("LA", "TESO", 1, p={"RL1": np.zeros(H)})
    object.__setattr__(m, "p", FrozenMap({"RL1": np.zeros(H)}))
    with pytest.raises(BoundaryViolation) as exc:
        rt.boundary.route(m, produced_by="LA")
    refused(exc, "LA", "TESO", "Injections", "p['RL1']")
    assert "read-only" in str(exc.value)


@pytest.mark.parametrize("make, sender, receiver, kind, field_name", [
    # a TSO -> DSO1 exchange carrying the 34 line reactances instead of one value per scenario
    (lambda: Exchange("TSO", "DSO1", 1, values={"PCC1": np.linspace(0.01, 0.2, 34)}), "TSO", "DSO1", "Exchange",
     "values['PCC1']"),
    (lambda: OptimalityCut("DSO1", "TSO", 1, scenario=0, coefficients={"PCC1": 1.0}, constant=0.0,
                           value="x_pu L3=0.0139"), "DSO1", "TSO", "OptimalityCut", "value"),
    (lambda: OptimalityCut("DSO1", "TSO", 1, scenario=7, coefficients={"PCC1": 1.0}, constant=0.0, value=0.0),
     "DSO1", "TSO", "OptimalityCut", "scenario"),
    (lambda: OptimalityCut("DSO1", "TSO", 1, scenario=-1, coefficients={"PCC1": 1.0}, constant=0.0, value=0.0),
     "DSO1", "TSO", "OptimalityCut", "coefficients"),
    (lambda: Offer("DERM1", "TSO", 1, product=Product.DAY_AHEAD, prices={"G5": [10.0]}, quantities={"G5": [5.0, 1.0]}),
     "DERM1", "TSO", "Offer", "quantities['G5']"),
    (lambda: Offer("DERM1", "DSO1", 1, product=Product.UP, prices={"G5": [1.0]}, quantities={"G5": [5.0, 1.0, 2.0]}),
     "DERM1", "DSO1", "Offer", "quantities['G5']"),
    (lambda: RealTimeBounds("TSO", COORDINATOR, 1, scenario_set=ScenarioSet.IN_SAMPLE, upper=np.zeros(4),
                            lower=np.zeros(4)), "TSO", COORDINATOR, "RealTimeBounds", "upper"),
    (lambda: IterationBounds("TSO", COORDINATOR, 1, scheme=Scheme.FC, lower=0.0, upper=1.0, da_cost=0.0,
                             expected_rt=1.0, price=math.nan), "TSO", COORDINATOR, "IterationBounds", "price"),
    (lambda: MasterBound("TSO", COORDINATOR, 1, lower=0.0, objective=0.0), "TSO", COORDINATOR, "MasterBound",
     "scheme"),
    (lambda: Schedule("TSO", "DSO1", 1, quantities={"D13": [1.0]}, prices={"D13": [math.nan]}), "TSO", "DSO1",
     "Schedule", "prices['D13']"),
])
def test_tso_dso_content(tso_case, wind, make, sender, receiver, kind, field_name):
    rt = tso_runtime(tso_case, wind)
    with pytest.raises(BoundaryViolation) as exc:
        rt.boundary.route(make(), produced_by=sender if sender != COORDINATOR else None)
    refused(exc, sender, receiver, kind, field_name)


# =========================================================================== (2) keys and areas
@pytest.mark.parametrize("make, sender, receiver, kind, field_name", [
    # a participant of area 1 talks to the DSO of another area
    (lambda: Bid("LA1", "DSO2", 1, product=Product.DAY_AHEAD, prices={"D13": [30.0]}, quantities={"D13": [5.0]}),
     "LA1", "DSO2", "Bid", ""),
    (lambda: Offer("DERM1", "DSO3", 1, product=Product.DAY_AHEAD, prices={"G5": [30.0]}, quantities={"G5": [5.0]}),
     "DERM1", "DSO3", "Offer", ""),
    # the TSO sends DSO1 the exchange of area 2
    (lambda: Exchange("TSO", "DSO1", 1, values={"PCC2": np.zeros(3)}), "TSO", "DSO1", "Exchange", "values"),
    # a DSO1 cut on area 2's decisions (PCC2 and a resource of area 2)
    (lambda: OptimalityCut("DSO1", "TSO", 1, scenario=0, coefficients={"PCC2": 1.0, "D16": 0.5}, constant=0.0,
                           value=0.0), "DSO1", "TSO", "OptimalityCut", "coefficients"),
    # the TSO tells DSO1 the schedule of a resource of area 2
    (lambda: Schedule("TSO", "DSO1", 1, quantities={"D16": [1.0]}, prices={"D16": [30.0]}), "TSO", "DSO1",
     "Schedule", "quantities"),
    # the TSO tells LA1 another participant's cap
    (lambda: Caps("TSO", "LA1", 1, caps={"G5": 3.0}), "TSO", "LA1", "Caps", "caps"),
    # a participant offers another participant's resource
    (lambda: Offer("DERM1", "TSO", 1, product=Product.DAY_AHEAD, prices={"G13": [30.0]}, quantities={"G13": [5.0]}),
     "DERM1", "TSO", "Offer", "prices"),
])
def test_tso_dso_keys_and_areas(tso_case, wind, make, sender, receiver, kind, field_name):
    rt = tso_runtime(tso_case, wind)
    with pytest.raises(BoundaryViolation) as exc:
        rt.boundary.route(make(), produced_by=sender)
    refused(exc, sender, receiver, kind, field_name)
    if not field_name:
        assert "talk only within one area" in str(exc.value)


def test_the_honest_tso_dso_messages_of_an_area_pass(tso_case, wind):
    rt = tso_runtime(tso_case, wind)
    b = rt.boundary
    b.route(Bid("LA1", "DSO1", 1, product=Product.DAY_AHEAD, prices={"D13": [30.0]}, quantities={"D13": [5.0]}),
            produced_by="LA1")
    b.route(Exchange("TSO", "DSO1", 1, values={"PCC1": np.zeros(3)}), produced_by="TSO")
    b.route(OptimalityCut("DSO1", "TSO", 1, scenario=2, coefficients={"PCC1": 1.0, "D13": 0.5}, constant=1.0,
                          value=2.0), produced_by="DSO1")
    b.route(Schedule("TSO", "DSO1", 1, quantities={"D13": [1.0]}), produced_by="TSO")  # fc: no price


@pytest.mark.parametrize("agent, script, sender, receiver, kind, field_name", [
    ("LA", "injections_on_node", "LA", "TESO", "Injections", "p"),
    ("TESO", "cut_on_node", "TESO", "LA", "FeasibilityCut", "coefficients"),
    ("LA", "schedule_other_seller", "LA", "DERM", "Schedule", "quantities"),  # the main grid's purchase to DERM
    ("MG", "offer_foreign_unit", "MG", "LA", "Offer", "prices"),  # the main grid offers DERM's unit
])
def test_tes_keys(tes_case, agent, script, sender, receiver, kind, field_name):
    exc = attack_tes(tes_case, agent, script)
    refused(exc, sender, receiver, kind, field_name)
    assert "outside" in str(exc.value)


def test_composed_policies_keep_protocols_apart(tes_case, tso_case, wind):
    """A coordinator running both protocols composes their policies: each part's roles, commands and schemas."""
    composed = TES_POLICY.compose(TSO_DSO_POLICY)
    assert composed.name == "tes+tso-dso" and [p.name for p in composed.parts] == ["tes", "tso-dso"]
    b = Boundary()
    b.use(TES_POLICY, tes_dims(tes_case))
    b.use(TSO_DSO_POLICY, tso_dso_dims(wind))
    assert b.policy.describe() == composed.describe()
    rt = LocalRuntime(b)
    rt.add_all(tes_hosts(tes_case, TESConfig()))
    rt.add_all(tso_dso_hosts(tso_case, wind)[0])
    rt.send([Command(COORDINATOR, "MG", 1, action=Action.OPEN), Command(COORDINATOR, "TSO", 1,
                                                                         action=Action.SCENARIO_SET,
                                                                         scenario_set=ScenarioSet.IN_SAMPLE)])
    with pytest.raises(BoundaryViolation) as exc:  # a tes step to a tso-dso role
        rt.send([Command(COORDINATOR, "TSO", 1, action=Action.OPEN)])
    refused(exc, COORDINATOR, "TSO", "Command", "action")
    with pytest.raises(BoundaryViolation, match="not allowed by the information policy 'tes\\+tso-dso'"):
        b.route(Injections("LA", "DSO1", 1, p={"RL1": np.zeros(H)}), produced_by="LA")
    # each part's schema: a tes offer has 24 hours, a tso-dso one period
    b.route(Offer("DERM1", "TSO", 1, product=Product.DAY_AHEAD, prices={"G5": [1.0]}, quantities={"G5": [1.0]}),
            produced_by="DERM1")
    with pytest.raises(BoundaryViolation) as exc:
        b.route(Offer("DERM", "LA", 1, prices={"G1": [1.0]}, quantities={"G1": [1.0]}), produced_by="DERM")
    refused(exc, "DERM", "LA", "Offer", "prices['G1']")


# =========================================================================== (3) delivery
def test_exchanging_an_unrouted_message(tes_case):
    rt = tes_runtime(tes_case)
    with pytest.raises(BoundaryViolation) as exc:
        rt.exchange([Command(COORDINATOR, "MG", 1, action=Action.OPEN)])
    refused(exc, COORDINATOR, "MG", "Command", "")
    assert "never routed" in str(exc.value)


def test_replaying_a_delivered_message(tes_case):
    rt = tes_runtime(tes_case, {"MG": ""})
    (m,) = rt.send([Command(COORDINATOR, "MG", 1, action=Action.OPEN)])
    rt.exchange([m])
    with pytest.raises(BoundaryViolation) as exc:
        rt.exchange([m])
    refused(exc, COORDINATOR, "MG", "Command", "")
    assert "delivered already (seq 1)" in str(exc.value)
    assert rt.analyst.read("MG", "report")["received"] == ["Command"]  # delivered once


def test_a_message_twice_in_one_delivery(tes_case):
    rt = tes_runtime(tes_case, {"MG": ""})
    (m,) = rt.send([Command(COORDINATOR, "MG", 1, action=Action.OPEN)])
    with pytest.raises(BoundaryViolation, match="appears twice in one delivery"):
        rt.exchange([m, m])
    assert rt.analyst.read("MG", "report")["received"] == []


def test_routing_a_message_twice(tes_case):
    rt = tes_runtime(tes_case)
    (m,) = rt.send([Command(COORDINATOR, "MG", 1, action=Action.OPEN)])
    with pytest.raises(BoundaryViolation) as exc:
        rt.send([m])
    refused(exc, COORDINATOR, "MG", "Command", "")
    assert "routed already" in str(exc.value)


def test_a_copy_with_the_routing_token(tes_case):
    rt = tes_runtime(tes_case, {"MG": ""})
    (m,) = rt.send([Command(COORDINATOR, "MG", 1, action=Action.OPEN)])
    forged = Command(COORDINATOR, "MG", 1, action=Action.OPEN)
    object.__setattr__(forged, "_seq", m._seq)
    with pytest.raises(BoundaryViolation, match="is not the message routed as seq 1"):
        rt.exchange([forged])
    assert copy.copy(m)._seq is None  # a copy carries no token


@pytest.mark.parametrize("tamper, field_hint", [
    (lambda m: object.__setattr__(m, "constant", 5.0), "changed after routing"),
    (lambda m: dict.__setitem__(m.coefficients, "RL1", 9.0), "changed after routing"),
    (lambda m: object.__setattr__(m, "coefficients", {"RL1": 0.5}), "must be a frozen map"),
])
def test_mutating_a_message_after_routing(tes_case, tamper, field_hint):
    """A cut edited between routing and delivery is refused by its receiver's receipt check."""
    rt = tes_runtime(tes_case)
    cut = rt.boundary.route(_cut(), produced_by="TESO")
    tamper(cut)
    with pytest.raises(BoundaryViolation) as exc:
        rt.exchange([cut])
    assert "TESO to LA" in str(exc.value) and "refused on receipt by LA" in str(exc.value)
    assert field_hint in str(exc.value)
    assert exc.value.kind == "FeasibilityCut"


def test_mutating_an_array_after_routing(tes_case):
    rt = tes_runtime(tes_case, {"TESO": ""})
    inj = rt.boundary.route(Injections("LA", "TESO", 1, p={c: np.zeros(H) for c in CUSTOMERS}), produced_by="LA")
    base = inj.p["RL1"].base
    base.setflags(write=True)  # the base owns its data: its flag can be set back, the view's cannot
    base[12] = 80.0
    with pytest.raises(BoundaryViolation) as exc:
        rt.exchange([inj])
    refused(exc, "LA", "TESO", "Injections", "")
    assert "changed after routing" in str(exc.value)


def test_collecting_an_edited_report(tso_case, wind):
    """The coordinator takes only routed reports: a report edited after routing is unrouted."""
    rt = tso_runtime(tso_case, wind)
    ib = rt.boundary.route(IterationBounds("TSO", COORDINATOR, 3, scheme=Scheme.CM, lower=-2.0, upper=-1.0,
                                           da_cost=-2.0, expected_rt=1.0, price=30.0), produced_by="TSO")
    edited = dataclasses.replace(ib, upper=ib.lower)
    with pytest.raises(BoundaryViolation) as exc:
        rt.collect([edited])
    refused(exc, "TSO", COORDINATOR, "IterationBounds", "")
    assert rt.collect([ib]) == [ib]
    with pytest.raises(BoundaryViolation, match="delivered already"):
        rt.collect([ib])


def test_deliveries_are_logged_once(tes_case, tmp_path):
    from coordinator.boundary import read_audit_records

    rt = tes_runtime(tes_case, {"MG": ""}, log=tmp_path / "audit.jsonl")
    (m,) = rt.send([Command(COORDINATOR, "MG", 1, action=Action.OPEN)])
    rt.exchange([m])
    with pytest.raises(BoundaryViolation):
        rt.exchange([m])
    rt.boundary.close()
    recs = read_audit_records(tmp_path / "audit.jsonl")
    assert [(r["receiver"], r["seqs"]) for r in recs if r["rec"] == "delivery"] == [("MG", [1])]
    assert [r["error"] for r in recs if r["rec"] == "violation"] == [
        "Command from coordinator to MG: was delivered already (seq 1); a routed message is delivered once"]


# =========================================================================== (4) the analyst channel
def test_there_is_no_unlogged_call_channel(tes_case):
    rt = tes_runtime(tes_case)
    assert not hasattr(rt, "call") and not hasattr(rt, "call_many")
    for what in ("_handle", "snapshot", "handle", "agent", "cuts"):
        with pytest.raises(BoundaryViolation) as exc:
            rt.analyst.read("LA", what)
        assert exc.value.field == what and "analyst read of agent 'LA'" in str(exc.value)


def test_an_analyst_read_mutated_by_the_caller_does_not_reach_the_agent(tes_case, tmp_path):
    from coordinator.boundary import read_audit_records

    rt = tes_runtime(tes_case, {"MG": ""}, log=tmp_path / "audit.jsonl")
    first = rt.analyst.read("MG", "report")
    first["received"].append("Offer")
    first["state"]["x"][:] = 99.0
    again = rt.analyst.read("MG", "report")
    assert again["received"] == [] and list(again["state"]["x"]) == [0.0, 1.0, 2.0]
    rt.boundary.close()
    reads = [r for r in read_audit_records(tmp_path / "audit.jsonl") if r["rec"] == "analyst_read"]
    assert [(r["agent"], r["what"]) for r in reads] == [("MG", "report"), ("MG", "report")]
    assert all(r["bytes"] > 0 and len(r["sha256"]) == 64 for r in reads)


def test_tes_decisions_do_not_depend_on_analyst_reads(tes_case, monkeypatch):
    """The tes day converges after the same iterations when every analyst read returns a wrong solution."""
    from coordinator.runtime.base import Analyst
    from coordinator.tes.protocol import TESProtocol

    def run(rt):
        return TESProtocol(rt, tes_case, TESConfig()).run_day(0, benchmarks=False)

    honest = run(LocalRuntime(Boundary()))
    real = Analyst.read_many

    def lying(self, reads):
        out = real(self, reads)
        for r in out:
            if isinstance(r, dict) and r.get("solution") is not None:
                r["solution"].objective = -1.0e9  # the analyst's copy only
        return out

    monkeypatch.setattr(Analyst, "read_many", lying)
    lied = run(LocalRuntime(Boundary()))
    assert lied.converged == honest.converged and len(lied.iterations) == len(honest.iterations)
    np.testing.assert_array_equal(lied.iterations["e_star"], honest.iterations["e_star"])
    assert (lied.iterations["objective"] == -1.0e9).all()  # the log shows what the analyst read


# =========================================================================== Ray
@pytest.mark.ray
@pytest.mark.parametrize("script, kind, field_name", [("leaky_cut", "LeakyCut", ""),
                                                      ("tensor_cut", "FeasibilityCut", "constant")])
def test_ray_smuggled_replies(tes_case, script, kind, field_name):
    """On Ray the crafted reply is pickled back to the driver, extra attributes and all: still refused."""
    rt = tes_runtime(tes_case, {"TESO": script}, kind="ray")
    try:
        with pytest.raises(BoundaryViolation) as exc:
            provoke_tes(rt, "TESO")
        refused(exc, "TESO", "LA", kind, field_name)
    finally:
        rt.shutdown()


@pytest.mark.ray
def test_ray_receipt_check_inside_the_actor(tes_case):
    rt = tes_runtime(tes_case, {"TESO": ""}, kind="ray")
    try:
        inj = rt.boundary.route(Injections("LA", "TESO", 1, p={c: np.zeros(H) for c in CUSTOMERS}),
                                produced_by="LA")
        object.__setattr__(inj, "p", FrozenMap({c: frozen_array(np.ones(H)) for c in CUSTOMERS}))
        with pytest.raises(BoundaryViolation) as exc:
            rt.exchange([inj])
        assert "refused on receipt by TESO" in str(exc.value) and "changed after routing" in str(exc.value)
        assert any("checking a delivery on receipt" in n for n in exc.value.__notes__)  # raised in the actor
        assert rt.analyst.read("TESO", "report")["received"] == []
    finally:
        rt.shutdown()


@pytest.mark.ray
def test_ray_replay_and_analyst_copies(tes_case):
    rt = tes_runtime(tes_case, {"MG": ""}, kind="ray")
    try:
        (m,) = rt.send([Command(COORDINATOR, "MG", 1, action=Action.OPEN)])
        rt.exchange([m])
        with pytest.raises(BoundaryViolation, match="delivered already"):
            rt.exchange([m])
        rep = rt.analyst.read("MG", "report")
        rep["received"].clear()
        assert rt.analyst.read("MG", "report")["received"] == ["Command"]
    finally:
        rt.shutdown()
