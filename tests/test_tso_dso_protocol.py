"""tso-dso: the protocol makes its stopping decisions from the TSO's messages, and only from them."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from coordinator.boundary import COORDINATOR, Boundary, BoundaryViolation
from coordinator.messages import (Action, Command, IterationBounds, MasterBound, Message, RealTimeBounds,
                                  ScenarioSet, Scheme, Status)
from coordinator.runtime import LocalRuntime
from coordinator.tso_dso.policy import DSO, TSO, TSO_DSO_POLICY
from coordinator.tso_dso.protocol import TSODSOProtocol, inner_done, inner_tolerance
from coordinator.tso_dso.setup import TSODSOConfig
from scenarios.registry import load_case
from scenarios.tso_dso.wind import WindModel


@pytest.fixture(scope="module")
def case():
    return load_case("tso24_dso5")


@pytest.fixture(scope="module")
def ws(case):
    return WindModel.from_case(case).scenarios(0.6, 3, 0, seed=0)


class TamperingRuntime(LocalRuntime):
    """A runtime whose agents' replies are edited before the boundary routes them (as if the TSO had reported
    other figures; an edit after routing is refused, see tests/test_boundary_adversarial.py)."""

    def __init__(self, edit) -> None:
        super().__init__(Boundary())
        self.edit = edit

    def _deliver(self, batches, tickets):
        return {rid: [self.edit(m) for m in replies] for rid, replies in super()._deliver(batches, tickets).items()}


def _run(ws, case, edit=None, **cfg):
    rt = TamperingRuntime(edit or (lambda m: m))
    proto = TSODSOProtocol(rt, case, ws, TSODSOConfig(schemes=("cm",), oos=False, **cfg))
    res = proto.run_scheme("cm")
    rt.shutdown()
    return res, rt.boundary.records


@pytest.fixture(scope="module")
def plain(case, ws):
    return _run(ws, case)


def test_the_decisions_rest_on_the_tsos_reports(plain):
    res, log = plain
    assert res.n_iterations > 2
    to_me = [r for r in log if r["receiver"] == COORDINATOR]
    assert {r["sender"] for r in to_me} == {"TSO"}
    assert {r["type"] for r in to_me} == {"MasterBound", "RealTimeBounds", "IterationBounds"}
    commands = [r for r in log if r["type"] == "Command" and r["receiver"] == "TSO"]
    count = lambda rows, what: sum(1 for r in rows if r["payload"]["action"] == what)  # noqa: E731
    kinds = [r["type"] for r in to_me]
    # one answer per step: MasterBound per MASTER, RealTimeBounds per REAL_TIME_ROUND, IterationBounds per close
    assert kinds.count("MasterBound") == count(commands, "master") == res.n_iterations
    assert kinds.count("IterationBounds") == count(commands, "close_iteration") == res.n_iterations
    assert kinds.count("RealTimeBounds") == count(commands, "real_time_round")
    # the iteration log is the reports' figures
    ib = [r["payload"] for r in to_me if r["type"] == "IterationBounds"]
    np.testing.assert_allclose(res.iterations["lower"], [p["lower"] for p in ib], rtol=1e-12, atol=1e-8)
    np.testing.assert_allclose(res.iterations["upper"], [p["upper"] for p in ib], rtol=1e-12, atol=1e-8)
    assert res.upper == pytest.approx(min(p["upper"] for p in ib), abs=1e-8)
    # the first round of the first run is the warm-up: no bounds yet; every later report has S of each
    rtb = [r["payload"] for r in to_me if r["type"] == "RealTimeBounds"]
    assert rtb[0]["upper"] == [] and all(len(p["upper"]) == len(p["lower"]) == 3 for p in rtb[1:])


def test_a_reported_upper_bound_decides_when_benders_stops(case, ws, plain):
    """The same run with the TSO's first IterationBounds edited to close the gap stops after one iteration."""
    def close_gap(m: Message) -> Message:
        if isinstance(m, IterationBounds) and m.iteration == 1:
            return dataclasses.replace(m, upper=m.lower)
        return m

    res, _ = _run(ws, case, close_gap)
    assert res.n_iterations == 1 and res.gap == 0.0 and res.stop_reason.startswith("gap 0")
    assert res.upper == pytest.approx(res.iterations["lower"].iloc[0])
    assert plain[0].n_iterations > 1


def test_reported_real_time_bounds_decide_when_the_inner_loop_stops(case, ws):
    """With a finite ``inexact`` (rounds until the real-time bounds meet), the TSO's real-time bounds of iteration 2
    edited apart make the inner loop run to its round limit."""
    def widen(m: Message) -> Message:
        if isinstance(m, RealTimeBounds) and m.iteration == 2 and m.bounded:
            return dataclasses.replace(m, lower=m.lower - 1e6)
        return m

    plain, _ = _run(ws, case, max_iterations=2, inner_max_rounds=7, inexact=0.1)
    res, _ = _run(ws, case, widen, max_iterations=2, inner_max_rounds=7, inexact=0.1)
    assert list(res.iterations["inner_rounds"]) == [plain.iterations["inner_rounds"].iloc[0], 7]
    assert plain.iterations["inner_rounds"].iloc[1] < 7


def test_one_round_per_iteration_by_default(plain):
    """By default a Benders iteration takes one TSO <-> DSO round at the master's exchanges (the first iteration
    two: the DSOs' warm-up round, then one at the market clearing)."""
    rounds = list(plain[0].iterations["inner_rounds"])
    assert rounds[0] == 2 and set(rounds[1:]) == {1}


def test_stopping_rules():
    b = RealTimeBounds("TSO", COORDINATOR, scenario_set=ScenarioSet.IN_SAMPLE, upper=[100.0, 2000.0],
                       lower=[100.0 - 1e-5, 2000.0 - 5.0])
    assert not inner_done(b, 1e-6, 0.0)  # scenario 2 has a relative gap of 2.5e-3
    assert inner_done(b, 3e-3, 0.0)
    assert inner_done(b, 1e-6, 2.6)  # expected gap (1e-5 + 5) / 2 <= 2.6
    assert not inner_done(b, 1e-6, 2.4)
    assert inner_tolerance(math.inf, -50.0, 0.1) == math.inf
    assert inner_tolerance(-1000.0, -1100.0, 0.1) == pytest.approx(10.0)
    assert inner_tolerance(-1e9, -1e9, 0.1) == pytest.approx(100.0)  # the floor 1e-7 |best upper|
    assert not RealTimeBounds("TSO", COORDINATOR).bounded
    with pytest.raises(ValueError, match="shape"):
        RealTimeBounds("TSO", COORDINATOR, upper=[1.0], lower=[])


def test_policy_only_the_tso_reports_and_only_bounds():
    bd = Boundary(policy=TSO_DSO_POLICY)
    bd.register("TSO", TSO)
    bd.register("DSO1", DSO)
    bd.route(MasterBound("TSO", COORDINATOR, scheme=Scheme.CM, lower=-1.0, objective=-1.0))
    bd.route(Command(COORDINATOR, "TSO", action=Action.MASTER))
    with pytest.raises(BoundaryViolation, match="not allowed"):
        bd.route(RealTimeBounds("DSO1", COORDINATOR, upper=[1.0], lower=[0.0]))
    with pytest.raises(BoundaryViolation, match="not allowed"):
        bd.route(IterationBounds("TSO", "DSO1"))
    with pytest.raises(BoundaryViolation, match="not allowed"):
        bd.route(Status(COORDINATOR, "TSO", note="master:pcc"))  # commands are typed
    assert TSO_DSO_POLICY.allowed(TSO, COORDINATOR) == frozenset({MasterBound, RealTimeBounds, IterationBounds})
    assert TSO_DSO_POLICY.allowed(DSO, COORDINATOR) == frozenset()


def test_an_evaluation_leaves_settled_scenarios_alone(case):
    """Out of sample, the TSO re-solves only the scenarios whose bounds have not met (the DSOs take over the
    columns of unchanged exchanges): the same costs as re-solving every scenario in every round, within the
    evaluation's tolerance, with fewer DSO columns solved; the TSO's real-time master runs in blocks of
    ``RT_BLOCK`` scenarios (45 scenarios: three LPs, the last padded)."""
    w = WindModel.from_case(case).scenarios(0.6, 3, 45, seed=0)
    out = {}
    for settle in (False, True):
        rt = LocalRuntime(Boundary())
        cfg = TSODSOConfig(schemes=("fc",), settle=settle)
        proto = TSODSOProtocol(rt, case, w, cfg)
        res = proto.run()["fc"]
        dsos = rt.analyst.read_many([(d, "report") for d in proto.roles.dsos])
        out[settle] = (res, sum(d["n_solves"] for d in dsos), proto._scales["fc"])
        rt.shutdown()
    (a, solves_all, W), (b, solves_settle, _) = out[False], out[True]
    np.testing.assert_allclose(b.in_sample.rt_cost, a.in_sample.rt_cost, rtol=0, atol=2e-6 * W)
    assert a.out_of_sample.rounds >= 3  # the set needs a few rounds: there is something to leave alone
    scale = np.maximum(W, np.abs(a.out_of_sample.rt_cost))
    assert np.all(np.abs(b.out_of_sample.rt_cost - a.out_of_sample.rt_cost) <= 2 * cfg.oos_tol * scale)
    U = b.out_of_sample.rt_cost
    assert np.all((U - b.out_of_sample.lower) <= cfg.oos_tol * np.maximum(W, np.abs(U)))
    assert solves_settle < solves_all
