"""tes on RayRuntime: the same numbers as LocalRuntime, also when an actor process is killed mid-run."""
from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

from coordinator.boundary import Boundary
from coordinator.tes.protocol import TESProtocol
from coordinator.tes.setup import TESConfig
from coordinator.runtime import LocalRuntime, RayRuntime
from scenarios.registry import load_case

pytestmark = pytest.mark.ray


def _figures(res):
    s = res.solution
    return (s.objective, np.concatenate([s.prices[c] for c in sorted(s.prices)]),
            np.concatenate([s.purchases[u] for u in sorted(s.purchases)]), res.iterations["e_star"].to_numpy())


@pytest.fixture(scope="module")
def local_result():
    case = load_case("tes_feeder")
    return _figures(TESProtocol(LocalRuntime(Boundary()), case, TESConfig()).run_day(0, benchmarks=False))


def _assert_same(a, b, rtol=0.0):
    """Identical figures; ``rtol`` > 0 only where a restored actor had to rebuild its solver objects."""
    assert a[0] == pytest.approx(b[0], rel=rtol, abs=0)
    for x, y in zip(a[1:], b[1:]):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol)


def test_ray_equals_local(local_result):
    case = load_case("tes_feeder")
    with RayRuntime(Boundary()) as rt:
        res = TESProtocol(rt, case, TESConfig()).run_day(0, benchmarks=False)
    _assert_same(_figures(res), local_result)


def test_killed_actor_is_restored(local_result):
    """SIGKILL the load aggregator's and the TESO's processes during the run: same numbers."""
    case = load_case("tes_feeder")
    with RayRuntime(Boundary()) as rt:
        proto = TESProtocol(rt, case, TESConfig())
        os.kill(rt.pid("TESO"), signal.SIGKILL)  # dies before its first check
        timer = threading.Timer(0.3, lambda: os.kill(rt.pid("LA"), signal.SIGKILL))
        timer.start()
        res = proto.run_day(0, benchmarks=False)
        timer.join()
        assert sum(rt.restarts.values()) >= 1
    # every solve is cold (agents.solve.WARM_START): a restored agent that rebuilds its cvxpy problems
    # gives the same numbers bit for bit
    _assert_same(_figures(res), local_result)


def test_ac_check_on_ray_with_a_killed_operator():
    """--network-check ac on Ray, the TESO's process killed before its first check: the restored operator
    rebuilds its OpenDSS circuit (not part of a snapshot) and, every AC solve starting from the initial guess,
    answers as on LocalRuntime."""
    case = load_case("tes_feeder")
    config = TESConfig(network_check="ac")
    local = _figures(TESProtocol(LocalRuntime(Boundary()), case, config).run_day(0, benchmarks=False))
    with RayRuntime(Boundary()) as rt:
        proto = TESProtocol(rt, case, config)
        os.kill(rt.pid("TESO"), signal.SIGKILL)
        res = proto.run_day(0, benchmarks=False)
        assert sum(rt.restarts.values()) >= 1
    _assert_same(_figures(res), local)
