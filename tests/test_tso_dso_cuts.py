"""tso-dso cut pools on agents.cuts.CutPool: de-duplication, capacity growth, pruning that keeps the results."""
from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from agents.cuts import CutPool
from agents.tso_dso.master import Master
from coordinator.boundary import Boundary
from coordinator.runtime import LocalRuntime
from coordinator.tso_dso.benchmarks import market_from_case
from coordinator.tso_dso.protocol import TSODSOProtocol
from coordinator.tso_dso.setup import TSODSOConfig
from scenarios.registry import load_case
from scenarios.tso_dso.wind import WindModel


def _kelley(pool: CutPool, K: int, y: float) -> tuple[float, float]:
    """The LP ``min theta`` s.t. the cuts of index 0 at ``y`` and ``|z| <= 3``; marks the active cuts."""
    C, Gz, _ = pool.padded_at(K, [1], np.array([y]), 1)
    z, theta = cp.Variable(), cp.Variable()
    cut = theta >= C[:, 0] + Gz[:, 0, 0] * z
    prob = cp.Problem(cp.Minimize(theta), [cut, z <= 3, z >= -3])
    prob.solve(solver="HIGHS")
    pool.mark(np.asarray(cut.dual_value).reshape(K, 1))
    return float(prob.value), float(z.value)


def test_padded_at_and_pruning_keep_the_optimum():
    """Cuts of f(z, y) = |z - 1| + (z - 1)^2 + y; pruning inactive ones leaves the LP's optimum unchanged."""
    pool = CutPool(1, 2, keep=3, max_age=1)
    for zk in (-3.0, -2.0, -1.0, 0.0, 0.5, 1.5, 2.0, 3.0):
        f = abs(zk - 1) + (zk - 1) ** 2
        g = np.sign(zk - 1) + 2 * (zk - 1)
        assert pool.add(0, f - g * zk, np.array([g, 1.0]))  # theta >= f + g (z - zk) + y
    c, G = pool.rows(0)
    assert not pool.add(0, c[3] * (1 + 1e-12), G[3])  # a repeat (within 1e-9) adds nothing
    n0 = pool.count(0)
    assert n0 == 8
    C, Gz, Gy = pool.padded_at(16, [1], np.array([0.25]), 1)
    c0, G = pool.rows(0)
    np.testing.assert_allclose(C[:n0, 0], c0 + 0.25 * G[:, 1])
    np.testing.assert_allclose(Gz[:n0, 0, 0], G[:, 0])
    np.testing.assert_allclose(Gy[:n0, 0, 0], 1.0)
    np.testing.assert_allclose(C[n0:, 0], C[0, 0])  # unused slots repeat the first cut
    before = [_kelley(pool, 16, 0.25) for _ in range(3)]
    assert pool.prune() > 0 and pool.count(0) < n0
    after = _kelley(pool, 16, 0.25)
    assert before[-1] == pytest.approx((0.25 - 0.25, 1.0), abs=1e-9)  # the kink of the cuts at 0.5 and 1.5
    assert after == pytest.approx(before[-1], abs=1e-12)


@pytest.fixture(scope="module")
def case():
    return load_case("tso24_dso5")


def test_master_pool_grows_without_changing_the_master(case):
    """A master with 2 cut slots per scenario (rebuilt as it fills) solves like one with 32; repeats are dropped."""
    ws = WindModel.from_case(case).scenarios(0.6, 2, 0, seed=0)
    market = market_from_case(case, ws)
    rng = np.random.default_rng(0)
    small = Master(market, "fc", np.full(2, 0.5), -1e6, capacity=2)
    large = Master(market, "fc", np.full(2, 0.5), -1e6, capacity=32)
    x0 = small.solve().x
    for k in range(5):
        for s in range(2):
            mu = rng.normal(0, 5, market.n)
            for m in (small, large):
                m.add_cut(s, 1e4 * (k + 1), mu, x0)
                m.add_cut(s, 1e4 * (k + 1), mu, x0)  # a repeat: dropped
    assert small.n_cuts == large.n_cuts == 10 and small.capacity == 8 and large.capacity == 32
    a, b = small.solve(), large.solve()
    assert a.objective == pytest.approx(b.objective, rel=1e-9)


def test_pruning_the_dso_cuts_keeps_the_evaluation(case):
    """The real-time evaluation of one decision with aggressive pruning of the TSO's DSO cuts equals the one
    without pruning (to the evaluation's tolerance)."""
    ws = WindModel.from_case(case).scenarios(0.9, 3, 0, seed=3)
    out = {}
    for keep in (None, 3):
        rt = LocalRuntime(Boundary())
        cfg = TSODSOConfig(schemes=("cm",), oos=False, max_iterations=1, rt_cut_keep=keep, rt_cut_max_age=1)
        proto = TSODSOProtocol(rt, case, ws, cfg)
        res = proto.run_scheme("cm")
        out[keep] = (res, rt.analyst.read(proto.roles.tso, "report")["rt_cuts_pruned"])
        rt.shutdown()
    (plain, n_plain), (pruned, n_pruned) = out[None], out[3]
    assert n_plain == 0 and n_pruned > 0
    np.testing.assert_allclose(pruned.x, plain.x, rtol=1e-12)
    a, b = pruned.in_sample.rt_cost, plain.in_sample.rt_cost
    assert np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))) <= 2e-6
