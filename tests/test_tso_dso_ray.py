"""tso-dso on the RayRuntime: the same numbers as on the LocalRuntime; DSOs spread over the shards' processes."""
from __future__ import annotations

import numpy as np
import pytest

from coordinator.boundary import Boundary
from coordinator.tso_dso.protocol import TSODSOProtocol
from coordinator.tso_dso.setup import TSODSOConfig
from coordinator.runtime import LocalRuntime, RayRuntime
from scenarios.registry import load_case
from scenarios.tso_dso.wind import WindModel

pytestmark = pytest.mark.ray


def _run(runtime, case, ws):
    proto = TSODSOProtocol(runtime, case, ws, TSODSOConfig(schemes=("cm", "fc"), max_iterations=20))
    try:
        res = proto.run()
        pids = {d: (runtime.pid(d), runtime.shard_of(d)) for d in proto.roles.dsos} \
            if isinstance(runtime, RayRuntime) else {}
    finally:
        runtime.shutdown()
    return res, pids, len(runtime.boundary.records)


def test_ray_and_local_give_the_same_numbers(ray_session):
    case = load_case("tso24_dso5")
    ws = WindModel.from_case(case).scenarios(0.7, 3, 5, seed=4)
    local, _, n_local = _run(LocalRuntime(Boundary()), case, ws)
    ray, pids, n_ray = _run(RayRuntime(Boundary()), case, ws)
    assert n_local == n_ray  # the same messages
    # one process per shard, the DSOs dealt over the session's 2 shards
    assert len({p for p, _ in pids.values()}) == len({k for _, k in pids.values()}) == 2
    for s in ("cm", "fc"):
        a, b = local[s], ray[s]
        assert a.n_iterations == b.n_iterations
        np.testing.assert_array_equal(a.x, b.x)
        assert (a.lower, a.upper) == (b.lower, b.upper)
        np.testing.assert_array_equal(a.out_of_sample.rt_cost, b.out_of_sample.rt_cost)


def test_killed_tso_and_dso_reproduce_exactly(ray_session):
    """SIGKILL the TSO's and a DSO's actor processes mid-run: bit-identical results (cold solves)."""
    import os
    import signal
    import threading

    case = load_case("tso24_dso5")
    ws = WindModel.from_case(case).scenarios(0.7, 3, 5, seed=4)
    local, _, _ = _run(LocalRuntime(Boundary()), case, ws)
    rt = RayRuntime(Boundary())
    killed = []

    def kill(agent):
        try:
            os.kill(rt.pid(agent), signal.SIGKILL)
            killed.append(agent)
        except Exception:  # the run may be over already
            pass

    timers = [threading.Timer(2.0, kill, ("TSO",)), threading.Timer(4.0, kill, ("DSO2",))]
    for t in timers:
        t.start()
    proto = TSODSOProtocol(rt, case, ws, TSODSOConfig(schemes=("cm", "fc"), max_iterations=20))
    try:
        res = proto.run()
        restarts = dict(rt.restarts)
    finally:
        for t in timers:
            t.cancel()
        rt.shutdown()
    assert killed and sum(restarts.values()) >= 1, (killed, restarts)
    for s in ("cm", "fc"):
        a, b = local[s], res[s]
        assert a.n_iterations == b.n_iterations
        np.testing.assert_array_equal(a.x, b.x)
        assert (a.lower, a.upper) == (b.lower, b.upper)
        np.testing.assert_array_equal(a.out_of_sample.rt_cost, b.out_of_sample.rt_cost)
