"""Deterministic recovery: an agent rebuilt from its snapshot mid-run (as a crashed Ray actor is)
gives bit-identical results to one that never died, for every role of both protocols.

The runtime below restarts one agent from its last snapshot just before its k-th delivery: all
it held outside its snapshot (built cvxpy problems, solver caches, warm starts) is gone. Before
every solve became cold (``agents.solve.WARM_START``), restarting the TSO changed pcc's
iterations and welfare (HiGHS warm-started from a cached solution only in the undisturbed run).
"""
from __future__ import annotations

import numpy as np
import pytest

from coordinator.boundary import Boundary
from coordinator.runtime import LocalRuntime
from coordinator.simulation import TESMarketModel
from coordinator.tes.setup import TESConfig
from coordinator.tso_dso.protocol import TSODSOProtocol
from coordinator.tso_dso.setup import TSODSOConfig
from scenarios.registry import load_case
from scenarios.tso_dso.wind import WindModel


class CrashingRuntime(LocalRuntime):
    """Restarts ``victim`` from its last snapshot before each of its deliveries number ``at``."""

    def __init__(self, victim: str, at: set[int]) -> None:
        super().__init__(Boundary())
        self.victim, self.at, self.seen, self.restarts = victim, set(at), 0, 0

    def _deliver(self, batches, *rest):
        if self.victim in batches:
            self.seen += 1
            if self.seen in self.at:
                self.restart(self.victim)
                self.restarts += 1
        return super()._deliver(batches, *rest)


# --------------------------------------------------------------------------- tes


def _tes_days(rt, days: int = 2) -> list[tuple]:
    model = TESMarketModel(load_case("tes_feeder"), rt, TESConfig(strategy="learning", pricing="uniform"), seed=5,
                           benchmarks=False)
    out = []
    for _ in range(days):
        model.step()
        r = model.results[-1]
        s = r.solution
        out.append((r.day, len(r.iterations), s.objective,
                    {k: np.asarray(v).tobytes() for k, v in s.purchases.items()},
                    {k: np.asarray(v).tobytes() for k, v in s.prices.items()},
                    r.settlement.to_csv()))
    return out


@pytest.fixture(scope="module")
def tes_reference():
    return _tes_days(LocalRuntime(Boundary()))


@pytest.mark.parametrize("victim", ["MG", "DERM", "LA", "TESO"])
def test_tes_restart_reproduces(tes_reference, victim):
    rt = CrashingRuntime(victim, {2, 3, 5})
    assert _tes_days(rt) == tes_reference
    assert rt.restarts >= 2


# --------------------------------------------------------------------------- tso-dso


def _tso_dso(rt) -> list[tuple]:
    case = load_case("tso24_dso5")
    wind = WindModel.from_case(case).scenarios(0.6, 2, 3, seed=2)
    res = TSODSOProtocol(rt, case, wind, TSODSOConfig(schemes=("pcc",))).run()
    return [(s, r.n_iterations, r.lower, r.upper, r.x.tobytes(), r.in_sample.rt_cost.tobytes(),
             r.out_of_sample.rt_cost.tobytes()) for s, r in res.items()]


@pytest.fixture(scope="module")
def tso_dso_reference():
    return _tso_dso(LocalRuntime(Boundary()))


@pytest.mark.parametrize("victim, at", [("TSO", {3, 7, 12, 20}), ("DSO2", {2, 5, 9}), ("DERM3", {2})])
def test_tso_dso_restart_reproduces(tso_dso_reference, victim, at):
    rt = CrashingRuntime(victim, at)
    assert _tso_dso(rt) == tso_dso_reference
    assert rt.restarts >= 1
