"""Market-power metrics against hand-computed values on tiny examples."""
from __future__ import annotations

import numpy as np
import pytest

from coordinator.tes import metrics as M

OWNER = {"A1": "A", "A2": "A", "B1": "B", "MG": "MG"}
COST = {"A1": 0.05, "A2": 0.0, "B1": 0.1}


def test_lerner_hhi_rsi_markup_by_hand():
    x = {"A1": np.array([10.0, 0.0]), "A2": np.array([10.0, 20.0]), "B1": np.array([20.0, 0.0]),
         "MG": np.array([0.0, 20.0])}
    paid = {"A1": np.array([0.1, 0.1]), "A2": np.array([0.0, 0.05]), "B1": np.array([0.125, 0.2])}
    ler = M.lerner(x, paid, COST, OWNER, ["A", "B"])
    # A: hour 0 A1 10 kWh at (0.1-0.05)/0.1 = 0.5, A2 10 kWh at price 0 -> 0; hour 1 A2 20 kWh at 1.0
    assert ler["A"] == pytest.approx((10 * 0.5 + 10 * 0 + 20 * 1.0) / 40)
    assert ler["B"] == pytest.approx((0.125 - 0.1) / 0.125)
    h = M.hhi(x, OWNER)
    assert h[0] == pytest.approx(50 ** 2 + 50 ** 2)  # A 20 of 40, B 20 of 40
    assert h[1] == pytest.approx(2 * 50 ** 2)  # A 20, MG 20
    assert M.energy_weighted(h, [40, 40]) == pytest.approx(5000)
    r = M.rsi({"A": np.array([30.0]), "B": np.array([20.0]), "MG": np.array([50.0])}, np.array([60.0]))
    assert r["A"][0] == pytest.approx(70 / 60) and r["MG"][0] == pytest.approx(50 / 60)  # MG pivotal
    offers = {"A1": (np.array([0.07, 0.2]), np.array([10.0, 30.0])), "B1": (np.array([0.1, 0.1]), np.array([5.0, 5.0]))}
    mk = M.markup(offers, COST, np.array([0.16, 0.16]), 0.0, OWNER, ["A", "B"])
    # A1 competitive 0.05 both hours: (10 * 0.02 + 30 * 0.15) / 40 (its 0.2 is above the cap 0.16: counted as offered)
    assert mk["A"] == pytest.approx((10 * 0.02 + 30 * 0.15) / 40)
    assert mk["B"] == pytest.approx(0.0)


def merit_order(demand: float):
    """A buyer of ``demand`` kWh (one hour) taking the cheapest offers first (ties split), then MG at 0.2."""
    def solve(offers):
        left, out = demand, {}
        for price in sorted({float(p[0]) for p, _ in offers.values()}):
            tied = [u for u, (p, _) in offers.items() if float(p[0]) == price]
            cap = sum(float(offers[u][1][0]) for u in tied)
            take = min(left, cap)
            for u in tied:
                out[u] = np.array([take * float(offers[u][1][0]) / cap if cap else 0.0])
            left -= take
        return out
    return solve


def test_exploitability_by_hand():
    own = {"A1": "A", "B1": "B"}
    cost = {"A1": 0.05, "B1": 0.05}
    cap = np.array([0.2])
    # Bertrand at cost: no gain (0 at any markup: undercut by nobody, but a higher price sells nothing)
    comp = {"A1": (np.array([0.05]), np.array([10.0])), "B1": (np.array([0.05]), np.array([10.0]))}
    e = M.exploitability("A", comp, merit_order(10.0), cost, cap, 0.0, own, grid=(0.0, 0.02, 0.1))
    assert e["gain"] == pytest.approx(0.0) and e["profit"] == pytest.approx(0.0)
    # capacity-constrained: demand 15, B sells 10 at cost; A is the marginal supplier of 5 kWh and
    # can price up to the cap: best markup 0.15 (price 0.2), gain 5 * 0.15
    e = M.exploitability("A", comp, merit_order(15.0), cost, cap, 0.0, own, grid=(0.0, 0.05, 0.15))
    assert e["best_markup"] == pytest.approx(0.15) and e["gain"] == pytest.approx(5 * 0.15)
    # when the actual offer is already the best, the best markup is the actual one's (not NaN)
    best = {"A1": (np.array([0.2]), np.array([10.0])), "B1": comp["B1"]}
    e = M.exploitability("A", best, merit_order(15.0), cost, cap, 0.0, own, grid=(0.0, 0.05, 0.15))
    assert e["gain"] == pytest.approx(0.0) and e["best_markup"] == pytest.approx(0.15)
    e = M.exploitability("A", best, merit_order(15.0), cost, cap, 0.0, own, grid=(0.0, 0.05))  # off the grid
    assert e["gain"] == pytest.approx(0.0) and np.isnan(e["best_markup"])
    # a deviation whose re-solve fails is left out and counted; the gain is over the others
    from agents.base import SolveError

    solve = merit_order(15.0)

    def flaky(offers):
        if abs(float(offers["A1"][0][0]) - 0.2) < 1e-12:
            raise SolveError("LA", "tie-break QP", "not solved")
        return solve(offers)

    e = M.exploitability("A", comp, flaky, cost, cap, 0.0, own, grid=(0.0, 0.05, 0.15))
    assert e["unsolved"] == 1 and e["best_markup"] == pytest.approx(0.05) and e["gain"] == pytest.approx(5 * 0.05)


def test_a_competitive_tes_day_has_no_market_power_figures():
    from coordinator.boundary import Boundary
    from coordinator.runtime import LocalRuntime
    from coordinator.simulation import TESMarketModel
    from coordinator.tes.setup import TESConfig
    from scenarios.registry import load_case

    cfg = TESConfig()
    m = TESMarketModel(load_case("tes_competition"), LocalRuntime(Boundary()), cfg, benchmarks=False)
    m.step()
    day, rows = M.tes_day_metrics(m.protocol.case, cfg, m.results[-1], exploit=False)
    assert day["lerner"] == pytest.approx(0.0, abs=1e-9)
    assert day["welfare_loss"] == pytest.approx(0.0, abs=1e-6)
    assert day["customer_surplus_change"] == pytest.approx(0.0, abs=1e-6)
    assert [r["agent"] for r in rows] == ["DER1", "DER2", "DER3"]
    assert all(r["markup"] == pytest.approx(0.0, abs=1e-12) for r in rows)
    assert 0 < day["hhi"] <= 10000
