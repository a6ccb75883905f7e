"""LocalRuntime and RayRuntime: same numbers, boundary checks on replies, crash recovery, parallelism."""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from agents.base import SolveError
from coordinator.boundary import COORDINATOR, Boundary, BoundaryViolation, Policy, read_audit_log
from coordinator.messages import Accept, FeasibilityCut, Injections, Offer, Status
from coordinator.runtime import HostCrashed, LocalRuntime, PID_METHOD, Runtime

ROOT = Path(__file__).resolve().parent.parent
ray_param = pytest.param("ray", marks=pytest.mark.ray)
#: the toy choreography's policy: aggregators send injections to the operator, which answers with cuts or accepts
TOY_POLICY = Policy("toy", {("load_aggregator", "dso"): frozenset({Injections}),
                            ("dso", "load_aggregator"): frozenset({FeasibilityCut, Accept})},
                    coordinator_types=frozenset({Status}))


# --------------------------------------------------------------------------- dummy hosts
class Host:
    """Pickle-based snapshot/restore, like agents.base.Agent."""

    role = ""

    def __init__(self, agent_id: str, delay: float = 0.0, delay_rounds: frozenset = frozenset()) -> None:
        self.id = agent_id
        # seconds slept in handle() (in the given rounds, or always): changes no number
        self.delay, self.delay_rounds = delay, frozenset(delay_rounds)

    def public_ids(self):
        return frozenset()

    def decision_ids(self):
        return frozenset()

    def snapshot(self) -> bytes:
        return pickle.dumps(self)

    @staticmethod
    def restore(blob: bytes) -> "Host":
        return pickle.loads(blob)

    def _sleep(self, messages=()) -> None:
        if self.delay and (not self.delay_rounds or any(m.round in self.delay_rounds for m in messages)):
            time.sleep(self.delay)


class Aggregator(Host):
    """Sends its schedule when asked (Status); lowers it along the cuts it receives."""

    role = "load_aggregator"
    ANALYST_READS = ("report",)

    def __init__(self, agent_id: str, meter: str, demand, delay: float = 0.0, delay_rounds=()) -> None:
        super().__init__(agent_id, delay, delay_rounds)
        self.meter = meter
        self.schedule = np.array(demand, dtype=float)
        self.cuts = 0
        self.accepted = False
        self.deliveries = 0

    def public_ids(self):
        return frozenset({self.meter})

    def decision_ids(self):
        return frozenset({self.meter})

    def handle(self, messages):
        self._sleep(messages)
        self.deliveries += 1
        out = []
        for m in messages:
            if isinstance(m, Status):
                out.append(Injections(sender=self.id, receiver="dso", round=m.round, p={self.meter: self.schedule}))
            elif isinstance(m, FeasibilityCut):
                self.schedule[m.period] -= 0.6 * m.coefficients[self.meter] * m.violation + 0.01 * self.cuts
                self.cuts += 1
            elif isinstance(m, Accept):
                self.accepted = True
        return out

    def report(self) -> dict:
        return {"schedule": self.schedule.tolist(), "cuts": self.cuts, "accepted": self.accepted,
                "deliveries": self.deliveries}


class Operator(Host):
    """Checks the total against a private capacity; cuts the worst period or accepts."""

    role = "dso"
    ANALYST_READS = ("report",)

    def __init__(self, agent_id: str, cap: float, delay: float = 0.0, delay_rounds=()) -> None:
        super().__init__(agent_id, delay, delay_rounds)
        self.cap = cap
        self.history: list[float] = []

    def handle(self, messages):
        self._sleep(messages)
        inj = [m for m in messages if isinstance(m, Injections)]
        total = sum(next(iter(m.p.values())) for m in inj)
        over = total - self.cap
        k = int(np.argmax(over))
        self.history.append(float(over[k]))
        out = []
        for m in inj:
            meter, p = next(iter(m.p.items()))
            if over[k] > 1e-6:
                share = float(p[k] / total[k])
                out.append(FeasibilityCut(sender=self.id, receiver=m.sender, round=m.round, period=k,
                                          coefficients={meter: share}, constant=-self.cap * share,
                                          violation=float(over[k])))
            else:
                out.append(Accept(sender=self.id, receiver=m.sender, round=m.round, violation=float(over[k])))
        return out

    def report(self) -> dict:
        return {"history": list(self.history)}


class Rogue(Host):
    """Answers with a message the policy forbids (a DSO may not send offers)."""

    role = "dso"

    def handle(self, messages):
        return [Offer(sender=self.id, receiver=m.sender, round=m.round) for m in messages]


class Spoofer(Aggregator):
    """Sends its injections in another aggregator's name."""

    def handle(self, messages):
        return [Injections(sender="la2", receiver="dso", round=m.round, p={self.meter: self.schedule})
                for m in messages]


class Failing(Host):
    role = "dso"
    ANALYST_READS = ("report",)

    def __init__(self, agent_id: str, kind: str) -> None:
        super().__init__(agent_id)
        self.kind = kind

    def handle(self, messages):
        if self.kind == "solve":
            raise SolveError(self.id, "feasibility check", "infeasible", iteration=messages[0].round)
        raise ValueError("bad injections")

    def report(self):
        raise KeyError("missing")


class Sleeper(Host):
    role = "load_aggregator"
    ANALYST_READS = ("slow_report",)

    def handle(self, messages):
        self._sleep()
        return []

    def slow_report(self) -> str:
        self._sleep()
        return self.id


class Unrestorable(Sleeper):
    """Its snapshot cannot be restored in the shard (as with a node missing a package)."""

    @staticmethod
    def restore(blob: bytes) -> "Unrestorable":
        if "ray" in sys.modules and _in_ray_worker():
            raise ModuleNotFoundError("No module named 'missing_on_this_node'")
        return pickle.loads(blob)


def _in_ray_worker() -> bool:
    import ray

    try:
        return ray.get_runtime_context().worker.mode == ray.WORKER_MODE
    except Exception:
        return False


# --------------------------------------------------------------------------- helpers
DEMANDS = {"la1": [3.0, 5.0, 4.0, 6.5], "la2": [2.0, 4.5, 5.5, 3.0]}
CAP = 7.0


def make_runtime(kind: str, boundary: Boundary, **kw) -> Runtime:
    if kind == "local":
        return LocalRuntime(boundary)
    from coordinator.runtime import RayRuntime

    return RayRuntime(boundary, **kw)


def choreography_hosts(delay: float = 0.0, delay_rounds=()):
    return [Aggregator("la1", "m1", DEMANDS["la1"], delay, delay_rounds),
            Aggregator("la2", "m2", DEMANDS["la2"], delay, delay_rounds), Operator("dso", CAP, delay, delay_rounds)]


def run_choreography(rt: Runtime, rounds: int = 12, hook=None) -> dict:
    """Ask for schedules, let the DSO answer, deliver the answers; until accepted or ``rounds``."""
    for r in range(1, rounds + 1):
        asks = rt.send([Status(sender=COORDINATOR, receiver=a, round=r, iteration=r) for a in ("la1", "la2")])
        if hook:
            hook(rt, r, "before_ask")
        injections = rt.exchange(asks)
        assert [m.sender for m in injections] == ["la1", "la2"]
        if hook:
            hook(rt, r, "before_check")
        answers = rt.exchange(injections)
        assert [m.receiver for m in answers] == ["la1", "la2"]
        assert rt.exchange(answers) == []
        if all(isinstance(m, Accept) for m in answers):
            break
    reports = rt.analyst.read_many([(a, "report") for a in ("la1", "la2", "dso")])
    return {"reports": reports, "rounds": r}


def trace(records) -> str:
    """The message trace as JSON text (NaN == NaN there)."""
    return json.dumps([(r["seq"], r["round"], r["type"], r["sender"], r["receiver"], r["payload"]) for r in records])


@pytest.fixture(scope="module")
def baseline():
    b = Boundary(policy=TOY_POLICY)
    with LocalRuntime(b) as rt:
        rt.add_all(choreography_hosts())
        res = run_choreography(rt)
    return res, trace(b.records)


# --------------------------------------------------------------------------- tests
def test_baseline_is_a_real_choreography(baseline):
    res, tr = baseline
    la1, la2, dso = res["reports"]
    assert 2 < res["rounds"] < 12  # several cuts, then accepted
    assert la1["accepted"] and la2["accepted"] and la1["cuts"] > 0
    assert dso["history"][-1] <= 1e-6 < dso["history"][0]
    assert np.all(np.add(la1["schedule"], la2["schedule"]) <= CAP + 1e-6)
    assert {t[2] for t in json.loads(tr)} == {"Status", "Injections", "FeasibilityCut", "Accept"}


@pytest.mark.parametrize("kind", ["local", ray_param])
def test_same_numbers_on_both_runtimes(kind, baseline):
    b = Boundary(policy=TOY_POLICY)
    with make_runtime(kind, b) as rt:
        rt.add_all(choreography_hosts())
        res = run_choreography(rt)
        snap = Operator.restore(rt.last_snapshot("dso"))
    assert res == baseline[0]
    assert trace(b.records) == baseline[1]
    assert snap.history == res["reports"][2]["history"]


@pytest.mark.parametrize("kind", ["local", ray_param])
def test_hosts_are_copies(kind):
    la = Aggregator("la1", "m1", [1.0])
    b = Boundary(policy=TOY_POLICY)
    with make_runtime(kind, b) as rt:
        rt.add(la)
        rt.add(Operator("dso", CAP))
        rt.exchange(rt.send([Status(sender=COORDINATOR, receiver="la1", round=1)]))
        assert rt.analyst.read("la1", "report")["deliveries"] == 1
    assert la.deliveries == 0  # the caller's object is never touched


@pytest.mark.parametrize("kind", ["local", ray_param])
def test_forbidden_reply_is_a_boundary_violation(kind):
    b = Boundary(policy=TOY_POLICY)
    with make_runtime(kind, b) as rt:
        rt.add(Aggregator("la1", "m1", [1.0]))
        rt.add(Rogue("dso"))
        inj = rt.exchange(rt.send([Status(sender=COORDINATOR, receiver="la1", round=1)]))
        with pytest.raises(BoundaryViolation, match="Offer from dso .* not allowed"):
            rt.exchange(inj)


@pytest.mark.parametrize("kind", ["local", ray_param])
def test_spoofed_sender_is_a_boundary_violation(kind):
    b = Boundary(policy=TOY_POLICY)
    with make_runtime(kind, b) as rt:
        rt.add(Spoofer("la1", "m1", [1.0]))
        b.register("la2", "load_aggregator", ["m2"], ["m2"])  # known to the boundary, not hosted here
        b.register("dso", "dso")
        with pytest.raises(BoundaryViolation, match="la1 tried to send a Injections as 'la2'"):
            rt.exchange(rt.send([Status(sender=COORDINATOR, receiver="la1", round=1)]))
        # nothing of the spoofed message reached the log
        assert [r["type"] for r in b.records] == ["Status"]


def test_send_checks_the_policy():
    b = Boundary(policy=TOY_POLICY)
    rt = LocalRuntime(b)
    rt.add(Aggregator("la1", "m1", [1.0]))
    rt.add(Operator("dso", CAP))
    with pytest.raises(BoundaryViolation):
        rt.send([Offer(sender=COORDINATOR, receiver="la1")])
    with pytest.raises(ValueError, match="not hosted"):
        rt.exchange([Status(sender=COORDINATOR, receiver="nobody")])
    with pytest.raises(BoundaryViolation, match="field 'handle': not a declared read"):
        rt.analyst.read("la1", "handle", [])
    with pytest.raises(ValueError, match="already hosted"):
        rt.add(Aggregator("la1", "m1", [1.0]))


@pytest.mark.parametrize("kind", ["local", ray_param])
def test_audit_log_is_json_lines(kind, tmp_path, baseline):
    path = tmp_path / "audit.jsonl"
    with Boundary(path, policy=TOY_POLICY) as b, make_runtime(kind, b) as rt:
        rt.add_all(choreography_hosts())
        run_choreography(rt)
    recs = read_audit_log(path)
    assert len(recs) == len(json.loads(baseline[1]))
    assert trace(recs) == baseline[1]
    assert recs[0]["sender_role"] == "coordinator" and recs[2]["receiver_role"] == "dso"


@pytest.mark.parametrize("kind", ["local", ray_param])
def test_host_errors_keep_their_type_and_name_the_agent(kind):
    b = Boundary(policy=TOY_POLICY)
    with make_runtime(kind, b) as rt:
        b.register("la1", "load_aggregator", ["m1"], ["m1"])
        rt.add(Failing("dso-solve", "solve"))
        rt.add(Failing("dso-value", "value"))
        msgs = [Injections(sender="la1", receiver=d, round=4, p={"m1": [1.0]}) for d in ("dso-value", "dso-solve")]
        with pytest.raises(ValueError, match="agent 'dso-value' \\(dso\\): bad injections") as ei:
            rt.exchange(rt.send(msgs))
        assert ei.value.agent_id == "dso-value"
        assert any("Injections" in n and "round 4" in n for n in ei.value.__notes__)
        with pytest.raises(SolveError, match="dso-solve: feasibility check ended with status 'infeasible' at "
                                             "iteration 4") as ei:
            rt.exchange(rt.send([Injections(sender="la1", receiver="dso-solve", round=4, p={"m1": [1.0]})]))
        assert ei.value.agent == "dso-solve" and ei.value.iteration == 4
        with pytest.raises(KeyError, match="dso-value"):
            rt.analyst.read("dso-value", "report")


@pytest.mark.ray
def test_ray_kill_between_and_during_rounds(baseline):
    """SIGKILL an actor while idle and while it is solving: the run completes with the same numbers."""
    from coordinator.runtime import RayRuntime

    killed = []

    def hook(rt, r, where):
        if r == 2 and where == "before_ask":  # dso idle
            pid = rt.pid("dso")
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        if r == 3 and where == "before_ask":  # la1 busy in its delivery (together with la2)
            pid = rt.pid("la1")
            threading.Timer(0.15, os.kill, (pid, signal.SIGKILL)).start()
            killed.append(pid)
        if r == 3 and where == "before_check":  # dso busy checking
            pid = rt.pid("dso")
            threading.Timer(0.15, os.kill, (pid, signal.SIGKILL)).start()
            killed.append(pid)

    b = Boundary(policy=TOY_POLICY)
    with RayRuntime(b, shards=3) as rt:  # one agent per shard
        rt.add_all(choreography_hosts(delay=0.3, delay_rounds={3}))
        res = run_choreography(rt, hook=hook)
        assert rt.restarts == {"la1": 1, "la2": 0, "dso": 2}
        assert rt.pid("dso") not in killed
    assert res == baseline[0]
    assert trace(b.records) == baseline[1]


@pytest.mark.ray
def test_ray_restore_from_driver_copy_and_replay(baseline):
    """A lost shard is rebuilt from its agents' last snapshots (every 3 deliveries) plus a replay."""
    from coordinator.runtime import RayRuntime

    pending = []

    def hook(rt, r, where):
        if r in (2, 3) and where == "before_check":
            pending.append(rt.snapshots.pending("dso"))
            os.kill(rt.pid("dso"), signal.SIGKILL)

    b = Boundary(policy=TOY_POLICY)
    with RayRuntime(b, snapshot_every=3, shards=2) as rt:  # la1 and dso share shard 0
        rt.add_all(choreography_hosts())
        assert rt.shard_of("la1") == rt.shard_of("dso") != rt.shard_of("la2")
        res = run_choreography(rt, hook=hook)
        assert rt.restarts == {"la1": 2, "la2": 0, "dso": 2}
        assert rt.snapshots.taken > 0
    assert any(pending), pending  # some deliveries were replayed, not only snapshots restored
    assert res == baseline[0]
    assert trace(b.records) == baseline[1]


@pytest.mark.ray
def test_agents_of_one_shard_talk_through_the_boundary(baseline):
    """All agents in one shard (one process): every message between them is still routed, checked and logged by
    the boundary in the driver, in the same order as on the LocalRuntime, and delivered in a later exchange."""
    from coordinator.runtime import RayRuntime

    b = Boundary(policy=TOY_POLICY)
    with RayRuntime(b, shards=1) as rt:
        rt.add_all(choreography_hosts())
        assert {rt.shard_of(a) for a in ("la1", "la2", "dso")} == {0}
        assert len({rt.pid(a) for a in ("la1", "la2", "dso")}) == 1
        res = run_choreography(rt)
    assert res == baseline[0]
    assert trace(b.records) == baseline[1]
    inj = [r for r in b.records if r["type"] == "Injections"]
    assert len(inj) == 2 * res["rounds"] and {(r["sender"], r["receiver"]) for r in inj} == {("la1", "dso"),
                                                                                            ("la2", "dso")}
    assert b.deliveries >= 3 * res["rounds"]


@pytest.mark.ray
def test_ray_an_agent_that_cannot_be_loaded_in_its_shard_is_named():
    """The load of an agent into its shard is not waited for (start-up); its failure comes with its first call,
    with the agent's name and the stage, and the shard's other agents work on."""
    from coordinator.runtime import RayRuntime

    with RayRuntime(Boundary(policy=TOY_POLICY), shards=1) as rt:
        rt.add(Sleeper("s1"))
        rt.add(Unrestorable("s2"))
        assert rt.exchange(rt.send([Status(sender=COORDINATOR, receiver="s1", round=1)])) == []
        with pytest.raises(ModuleNotFoundError, match="agent 's2'.*missing_on_this_node") as ei:
            rt.exchange(rt.send([Status(sender=COORDINATOR, receiver="s2", round=1)]))
        assert any("being restored from its snapshot" in n for n in ei.value.__notes__)
        assert rt.analyst.read("s1", "slow_report") == "s1"


@pytest.mark.ray
def test_ray_gives_up_after_max_restarts():
    from coordinator.runtime import RayRuntime

    with RayRuntime(Boundary(policy=TOY_POLICY), max_restarts=0) as rt:
        rt.add(Sleeper("la1"))
        os.kill(rt.pid("la1"), signal.SIGKILL)
        with pytest.raises(HostCrashed, match="agent 'la1' \\(load_aggregator\\).*max_restarts=0"):
            rt.exchange(rt.send([Status(sender=COORDINATOR, receiver="la1")]))


@pytest.mark.ray
def test_ray_runs_hosts_in_parallel():
    from coordinator.runtime import RayRuntime

    with RayRuntime(Boundary(policy=TOY_POLICY), shards=2) as rt:
        rt.add(Sleeper("s1", delay=0.3))
        rt.add(Sleeper("s2", delay=0.3))
        pids = [rt.pid("s1"), rt.pid("s2")]  # actors up
        assert len(set(pids)) == 2 and os.getpid() not in pids
        t = time.perf_counter()
        assert rt.exchange(rt.send([Status(sender=COORDINATOR, receiver=s, round=1) for s in ("s1", "s2")])) == []
        dt_exchange = time.perf_counter() - t
        t = time.perf_counter()
        assert rt.analyst.read_many([("s1", "slow_report"), ("s2", "slow_report")]) == ["s1", "s2"]
        dt_calls = time.perf_counter() - t
    assert dt_exchange < 0.5, dt_exchange
    assert dt_calls < 0.5, dt_calls


def test_local_runtime_does_not_import_ray():
    code = ("import sys; from coordinator.boundary import Boundary; from coordinator.runtime import LocalRuntime;"
            "from tests.test_runtime import TOY_POLICY, choreography_hosts, run_choreography;"
            "rt = LocalRuntime(Boundary(policy=TOY_POLICY)); rt.add_all(choreography_hosts()); run_choreography(rt);"
            "assert 'ray' not in sys.modules, 'ray imported'")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env, timeout=60)


@pytest.mark.parametrize("kind", ["local", ray_param])
def test_snapshots_every_k_deliveries_and_recovery_replays(kind, baseline, monkeypatch):
    """``--snapshot-every 3`` (the environment variable it sets): an agent is snapshotted after every third
    delivery to it, not after each; between two snapshots its deliveries are kept for replay."""
    import argparse

    from scenarios.runs import add_runtime_arguments

    p = argparse.ArgumentParser()
    add_runtime_arguments(p)
    monkeypatch.setenv("TDMARKET_SNAPSHOT_EVERY", "1")  # undone after the test (the options set them)
    monkeypatch.setenv("TDMARKET_SHARDS", "1")
    args = p.parse_args(["--snapshot-every", "3", "--shards", "2"])
    assert (args.snapshot_every, args.shards) == (3, 2)
    b = Boundary(policy=TOY_POLICY)
    with make_runtime(kind, b) as rt:
        if kind == "ray":
            assert rt.n_shards == 2
        assert rt.snapshots.every == 3
        rt.add_all(choreography_hosts())
        res = run_choreography(rt)
        r = res["rounds"]
        # la1 and la2: an ask and an answer per round; dso: the injections once per round
        assert rt.snapshots.taken == 2 * (2 * r // 3) + r // 3
        assert rt.snapshots.pending("la1") == 2 * r % 3 and rt.snapshots.pending("dso") == r % 3
    assert res == baseline[0]
