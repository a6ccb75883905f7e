"""The load aggregator's bilevel pricing problem: exactness against brute force, cuts, options."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.base import Agent, InfeasibleSetup
from agents.tes.customers import Customer, customers_from_case
from agents.tes.la_problem import LASolution
from agents.tes.load_aggregator import LoadAggregator
from scenarios.registry import load_case

T3 = 3
STEP = 0.01


# ----------------------------------------------------------------------------- brute force


def supply_cost(load: np.ndarray, offers: dict, t: int) -> np.ndarray:
    """Cheapest supply of the (array of) total loads in hour t: merit order over the offers."""
    cost = np.zeros_like(load, dtype=float)
    before = 0.0
    for _, (price, qty) in sorted(offers.items(), key=lambda kv: kv[1][0][t]):
        take = np.clip(load - before, 0.0, qty[t])
        cost = cost + price[t] * take
        before = before + qty[t]
    return cost


def evaluate(customers, offers, pi: np.ndarray) -> float:
    """LA profit of the retail prices pi (C, T): customers' best responses, merit-order supply."""
    loads = np.array([np.clip((c.alpha - pi[k]) / c.beta, c.lo, c.hi) for k, c in enumerate(customers)])
    T = pi.shape[1]
    cost = sum(float(supply_cost(np.array([loads[:, t].sum()]), offers, t)[0]) for t in range(T))
    return float(np.sum(pi * loads) - cost)


def brute_force(customers, offers, cap: float, *, uniform: bool = False, step: float = STEP,
                pmin: float = 0.12, pmax: float = 0.24, loss=None) -> tuple[float, np.ndarray]:
    """Best profit over all price schedules on a grid (both customers, all hours, sum cap met); the supply
    covers the loads plus ``loss`` (kW per hour, default none)."""
    loss = np.zeros(customers[0].horizon) if loss is None else np.asarray(loss, dtype=float)
    grid = pmin + step * np.arange(int(round((pmax - pmin) / step)) + 1)
    T = customers[0].horizon
    vecs = np.array(list(itertools.product(grid, repeat=T)))
    vecs = vecs[vecs.sum(axis=1) <= cap + 1e-9]
    rev, loads = [], []
    for c in customers:
        p = np.clip((c.alpha[None, :] - vecs) / c.beta, c.lo, c.hi)
        rev.append((vecs * p).sum(axis=1))
        loads.append(p)
    if uniform:  # one price per hour for both customers
        prof = rev[0] + rev[1]
        for t in range(T):
            prof = prof - supply_cost(loads[0][:, t] + loads[1][:, t] + loss[t], offers, t)
        i = int(np.argmax(prof))
        return float(prof[i]), np.stack([vecs[i], vecs[i]])
    prof = rev[0][:, None] + rev[1][None, :]
    for t in range(T):
        prof = prof - supply_cost(loads[0][:, None, t] + loads[1][None, :, t] + loss[t], offers, t)
    i, j = np.unravel_index(int(np.argmax(prof)), prof.shape)
    return float(prof[i, j]), np.stack([vecs[i], vecs[j]])


def lipschitz_bound(customers, offers, step: float) -> float:
    """How much profit rounding every price down to the grid can lose (rounding down keeps the
    cap): |d profit / d pi_ct| <= hi + (price_max + max supply price) / beta."""
    cmax = max(float(np.max(pr)) for pr, _ in offers.values())
    return float(sum(np.sum(c.hi + (0.24 + cmax) / c.beta) for c in customers) * step)


# --------------------------------------------------------------------------- small instance


def small_customers() -> list[Customer]:
    # A: interior responses (monopoly prices (alpha + 0.10) / 2 = 0.20, 0.21, 0.22 lie on the grid)
    a = Customer("A", "RL", [10.0, 10.0, 10.0], [0.30, 0.32, 0.34], 0.01, 0.5, 1.5, 0.2)
    # B: kinks at 0.18 (p = hi) and 0.22 (p = lo): it ends at its band limits
    b = Customer("B", "IL", [10.0, 10.0, 10.0], [0.40, 0.40, 0.40], 0.02, 0.9, 1.1, 0.3)
    return [a, b]


def offers_flat() -> dict:
    return {"G": (np.full(T3, 0.05), np.full(T3, 5.0)), "MG": (np.full(T3, 0.10), np.full(T3, np.inf))}


def offers_merit() -> dict:
    return {"G": (np.full(T3, 0.05), np.full(T3, 18.0)), "MG": (np.array([0.12, 0.20, 0.30]), np.full(T3, np.inf))}


def prices(sol: LASolution, customers) -> np.ndarray:
    return np.array([sol.prices[c.id] for c in customers])


@pytest.mark.parametrize("name, offers, cap", [
    ("cap slack, B at its band minimum", offers_flat(), 0.72),
    ("cap binds, B at both band limits", offers_flat(), 0.60),
    ("merit-order kink of the cheap unit", offers_merit(), 0.72),
])
def test_optimum_equals_brute_force_on_grid(name, offers, cap):
    cs = small_customers()
    bf, _ = brute_force(cs, offers, cap)
    sol = LoadAggregator("LA", cs, price_sum_cap=cap).solve(offers)
    assert sol.status == "optimal"
    # the optimum lies on the price grid here: the enumeration finds it
    assert sol.profit == pytest.approx(bf, abs=1e-7)
    # the solver's own prices, evaluated independently, give its objective
    assert evaluate(cs, offers, prices(sol, cs)) == pytest.approx(sol.profit, abs=1e-9)
    assert sol.objective == pytest.approx(sol.profit, abs=1e-9)
    assert sol.bound >= bf - 1e-9 and sol.gap <= 1e-9


def test_cap_binds_and_band_limits_are_hit():
    cs = small_customers()
    sol = LoadAggregator("LA", cs, price_sum_cap=0.60).solve(offers_flat())
    pi = prices(sol, cs)
    assert np.allclose(pi.sum(axis=1), 0.60, atol=1e-9)  # the cap binds for both customers
    np.testing.assert_allclose(pi[0], [0.19, 0.20, 0.21], atol=1e-7)  # (alpha + c - lambda beta) / 2
    b = cs[1]
    at_limit = np.isclose(sol.loads["B"], b.lo, atol=1e-9) | np.isclose(sol.loads["B"], b.hi, atol=1e-9)
    assert at_limit.all() and np.isclose(sol.loads["B"], b.lo).any() and np.isclose(sol.loads["B"], b.hi).any()
    slack = LoadAggregator("LA", cs, price_sum_cap=0.72).solve(offers_flat())
    np.testing.assert_allclose(slack.loads["B"], b.lo, atol=1e-9)
    np.testing.assert_allclose(slack.prices["A"], [0.20, 0.21, 0.22], atol=1e-7)


def test_uniform_equals_brute_force():
    cs = small_customers()
    # cap slack: on the 0.01 grid
    bf, _ = brute_force(cs, offers_flat(), 0.72, uniform=True)
    sol = LoadAggregator("LA", cs, price_sum_cap=0.72, pricing="uniform").solve(offers_flat())
    assert sol.profit == pytest.approx(bf, abs=1e-7)
    # cap binds: the optimum (0.19333, 0.2, 0.20667) lies on a grid of step 0.01/3
    bf3, pi3 = brute_force(cs, offers_flat(), 0.60, uniform=True, step=STEP / 3)
    sol = LoadAggregator("LA", cs, price_sum_cap=0.60, pricing="uniform").solve(offers_flat())
    assert sol.profit == pytest.approx(bf3, abs=1e-7)
    np.testing.assert_allclose(prices(sol, cs), pi3, atol=1e-7)
    assert evaluate(cs, offers_flat(), prices(sol, cs)) == pytest.approx(sol.profit, abs=1e-9)


@pytest.mark.parametrize("uniform", [False, True])
def test_off_grid_optimum_within_resolution_and_equal_to_miqp(uniform):
    cs, offers, cap = small_customers(), offers_merit(), 0.60
    pricing = "uniform" if uniform else "personalized"
    bf, _ = brute_force(cs, offers, cap, uniform=uniform)
    sol = LoadAggregator("LA", cs, price_sum_cap=cap, pricing=pricing).solve(offers)
    assert bf - 1e-9 <= sol.profit <= bf + lipschitz_bound(cs, offers, STEP)
    assert evaluate(cs, offers, prices(sol, cs)) == pytest.approx(sol.profit, abs=1e-9)
    ref = LoadAggregator("LA", cs, price_sum_cap=cap, pricing=pricing, method="kkt_miqp").solve(offers)
    assert sol.profit == pytest.approx(ref.profit, abs=1e-6)
    assert sol.bound >= ref.profit - 1e-9


@pytest.mark.parametrize("uniform", [False, True])
def test_losses_enter_the_balance(uniform):
    """With network losses L (kW per hour) the purchases cover the loads plus L: the optimum is the brute
    force's with the merit-order supply of load + L, equals the exact KKT MIQP, and its certified bound
    (the Lagrangian with the -nu L term) still bounds it; zero losses change nothing."""
    cs, offers, cap = small_customers(), offers_merit(), 0.60
    loss = np.array([1.5, 0.7, 3.0])
    pricing = "uniform" if uniform else "personalized"
    sol = LoadAggregator("LA", cs, price_sum_cap=cap, pricing=pricing).solve(offers, losses=loss)
    load = sum(sol.loads[c.id] for c in cs)
    np.testing.assert_allclose(sum(sol.purchases.values()), load + loss, atol=1e-9)
    np.testing.assert_allclose(sum(sol.injections_p.values()), -loss, atol=1e-9)  # injections sum to -L
    np.testing.assert_array_equal(sol.losses, loss)
    cost = sum(float(supply_cost(np.array([load[t] + loss[t]]), offers, t)[0]) for t in range(T3))
    assert sol.profit == pytest.approx(float(np.sum(prices(sol, cs) * np.array([sol.loads[c.id] for c in cs])))
                                       - cost, abs=1e-9)
    bf, _ = brute_force(cs, offers, cap, uniform=uniform, loss=loss)
    assert bf - 1e-9 <= sol.profit <= bf + lipschitz_bound(cs, offers, STEP)
    ref = LoadAggregator("LA", cs, price_sum_cap=cap, pricing=pricing, method="kkt_miqp").solve(offers, losses=loss)
    assert sol.profit == pytest.approx(ref.profit, abs=1e-6)
    assert sol.bound >= ref.profit - 1e-9 and sol.gap <= 1e-9
    free = LoadAggregator("LA", cs, price_sum_cap=cap, pricing=pricing).solve(offers)
    zero = LoadAggregator("LA", cs, price_sum_cap=cap, pricing=pricing).solve(offers, losses=np.zeros(T3))
    assert zero.profit == free.profit and sol.profit < free.profit
    for k in free.purchases:
        np.testing.assert_array_equal(zero.purchases[k], free.purchases[k])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), uniform=st.booleans())
def test_random_instances_match_kkt_miqp_and_beat_grid(seed, uniform):
    r = np.random.default_rng(seed)
    cs = []
    for k in range(2):
        p0 = r.uniform(5, 30, T3)
        beta = 0.06 / (r.choice([0.05, 0.1, 0.2]) * p0.mean())
        alpha = 0.18 + beta * p0 + r.normal(0, 0.03, T3)
        bm = float(r.choice([0.05, 0.1, 0.3]))
        cs.append(Customer(f"C{k}", "RL", p0, alpha, beta, 1 - bm, 1 + bm, 0.25))
    total = sum(c.p0 for c in cs)
    offers = {"G1": (np.full(T3, r.uniform(0.03, 0.15)), r.uniform(0, 0.6, T3) * total),
              "MG": (r.uniform(0.04, 0.25, T3), np.full(T3, np.inf))}
    cap = float(r.choice([0.45, 0.54, 0.72]))
    pricing = "uniform" if uniform else "personalized"
    sol = LoadAggregator("LA", cs, price_sum_cap=cap, pricing=pricing).solve(offers)
    ref = LoadAggregator("LA", cs, price_sum_cap=cap, pricing=pricing, method="kkt_miqp").solve(offers)
    assert sol.profit == pytest.approx(ref.profit, abs=1e-6 * max(1.0, abs(ref.profit)))
    bf, _ = brute_force(cs, offers, cap, uniform=uniform, step=0.02)
    assert sol.profit >= bf - 1e-9 and sol.bound >= bf - 1e-9
    assert evaluate(cs, offers, prices(sol, cs)) == pytest.approx(sol.profit, abs=1e-8)


# --------------------------------------------------------------------------- feeder case


@pytest.fixture(scope="module")
def case():
    return load_case("tes_feeder")


@pytest.fixture(scope="module")
def offers(case):
    T = case.horizon
    return {"G1": (np.full(T, 0.075), np.full(T, 125.0)), "G2": (np.full(T, 0.05), np.full(T, 100.0)),
            "WT": (np.zeros(T), case.profile("wt_avail_kw")), "PV": (np.zeros(T), case.profile("pv_avail_kw")),
            "MG": (case.profile("lmp_usd_per_kwh"), np.full(T, np.inf))}


@pytest.fixture(scope="module")
def la_pers(case):
    return LoadAggregator.from_case(case, "LA")


@pytest.fixture(scope="module")
def sol_pers(la_pers, offers):
    return la_pers.solve(offers)


@pytest.fixture(scope="module")
def sol_unif(case, offers):
    return LoadAggregator.from_case(case, "LA", pricing="uniform").solve(offers)


def test_customers_from_case(case):
    cs = customers_from_case(case, "LA")
    assert [c.id for c in cs] == ["RL1", "RL2", "RL3", "RL4", "RL5", "RL6", "IL1", "CL1", "AL1"]
    il = cs[6]
    assert il.kind == "IL" and il.band_min == 0.95 and il.band_max == 1.05 and il.tan_phi == pytest.approx(0.328684)
    np.testing.assert_array_equal(il.p0, case.profile("p0_IL1_kw"))
    # calibration: the response to the mid price 0.18 is the baseline
    np.testing.assert_allclose(il.best_response(0.18), il.p0, atol=1e-3)
    assert not hasattr(il, "node") and not hasattr(il, "phases")  # the LA does not know where they are


def test_identifiers(la_pers):
    assert la_pers.role == "tes.load_aggregator"
    assert la_pers.public_ids() == frozenset(["RL1", "RL2", "RL3", "RL4", "RL5", "RL6", "IL1", "CL1", "AL1"])
    dec = la_pers.decision_ids()
    assert {"IL1", "IL1#q", "G1", "G2", "WT", "PV", "MG"} <= dec and len(dec) == 9 * 2 + 5
    la = LoadAggregator("LA", small_customers())
    assert la.decision_ids() == {"A", "A#q", "B", "B#q"}
    la.solve(offers_flat())
    assert la.decision_ids() == {"A", "A#q", "B", "B#q", "G", "MG"}


def test_feeder_solution_is_certified_and_consistent(la_pers, sol_pers, offers):
    s = sol_pers
    assert s.status == "optimal" and s.gap <= 1e-9 and s.bound >= s.profit - 1e-9
    for c in la_pers.customers:
        np.testing.assert_allclose(s.loads[c.id], c.best_response(s.prices[c.id]), atol=1e-6)
        assert np.all(s.prices[c.id] >= 0.12 - 1e-12) and np.all(s.prices[c.id] <= 0.24 + 1e-12)
        assert s.prices[c.id].sum() <= 4.32 + 1e-9
        np.testing.assert_allclose(s.injections_q[c.id], c.tan_phi * s.loads[c.id])
    total_load = sum(s.loads.values())
    np.testing.assert_allclose(sum(s.purchases.values()), total_load, atol=1e-9)
    for u, (_, q) in offers.items():
        assert np.all(s.purchases[u] >= -1e-12) and np.all(s.purchases[u] <= q + 1e-9)
        np.testing.assert_array_equal(s.injections_p[u], -s.purchases[u])
    # settlement
    st_ = s.settlement()
    assert st_["revenue"] - st_["cost"] == pytest.approx(s.profit, abs=1e-9)
    for c in la_pers.customers:
        expect = np.sum(c.utility(s.loads[c.id]) - s.prices[c.id] * s.loads[c.id])
        assert st_["customer_surplus"][c.id] == pytest.approx(expect, abs=1e-9)
    assert la_pers.revenue(s) == pytest.approx(st_["revenue"]) and la_pers.cost(s) == pytest.approx(st_["cost"])


def test_personalized_beats_uniform(case, sol_pers, sol_unif):
    assert sol_pers.profit >= sol_unif.profit - 1e-9
    assert sol_unif.status == "optimal" and sol_unif.gap <= 1e-9
    rows = np.array(list(sol_unif.prices.values()))
    np.testing.assert_array_equal(rows, np.repeat(rows[:1], len(rows), axis=0))
    for c in customers_from_case(case, "LA"):
        np.testing.assert_allclose(sol_unif.loads[c.id], c.best_response(sol_unif.prices[c.id]), atol=1e-6)


def test_cuts_are_respected(la_pers, sol_pers, offers):
    assert sol_pers.purchases["MG"][5] > 60  # the unconstrained market buys ~69 kW from MG at 5 h
    cut_mg = (5, {"MG": -1.0}, -50.0)  # -50 - y_MG <= 0 with y_MG = -x_MG, i.e. x_MG <= 50
    il, cl = la_pers.customers[6], la_pers.customers[7]
    y12 = sol_pers.loads["IL1"][12] + 2.0 * cl.tan_phi * sol_pers.loads["CL1"][12]
    assert il.best_response(0.24)[12] + 2.0 * cl.tan_phi * cl.best_response(0.24)[12] < y12 - 1.0  # reachable
    cut_load = (12, {"IL1": 1.0, "CL1#q": 2.0}, -(y12 - 1.0))  # lower IL1 + 2 q_CL1 by 1 kW(Ar) at 12 h
    s = la_pers.solve(offers, [cut_mg, cut_load])
    assert s.status == "optimal" and s.gap <= 1e-9
    assert s.purchases["MG"][5] <= 50 + 1e-6
    assert s.loads["IL1"][12] + 2.0 * s.injections_q["CL1"][12] <= y12 - 1.0 + 1e-6
    assert s.cut_violation <= 1e-6
    assert s.profit < sol_pers.profit
    # the same limit given as a network constraint (centralized form) gives the same optimum
    net = lambda p, q: [p["MG"][5] >= -50.0, p["IL1"][12] + 2.0 * q["CL1"][12] <= y12 - 1.0]  # noqa: E731
    c = la_pers.solve(offers, network=net)
    assert c.profit == pytest.approx(s.profit, abs=1e-6)
    for k in s.loads:
        np.testing.assert_allclose(c.loads[k], s.loads[k], atol=1e-4)
    # a generation cut in the evening
    g = la_pers.solve(offers, [(19, {"G1": -1.0}, -100.0)])
    assert g.purchases["G1"][19] <= 100 + 1e-6 and g.profit <= sol_pers.profit


def test_cut_pool_grows(case, offers):
    la = LoadAggregator.from_case(case, "LA", cut_capacity=1)
    cuts = [(12, {"MG": -1.0, "G1": -1.0}, -(45.0 + k)) for k in range(5)]  # x_MG + x_G1 <= 45 (tightest)
    s = la.solve(offers, cuts)
    assert la.cut_capacity >= 5
    ref = LoadAggregator.from_case(case, "LA", cut_capacity=8).solve(offers, cuts)
    assert s.profit == pytest.approx(ref.profit, abs=1e-7)
    assert s.purchases["MG"][12] + s.purchases["G1"][12] <= 45 + 1e-6


def test_infeasible_cut_names_the_hour(la_pers, offers):
    with pytest.raises(InfeasibleSetup, match="hour 7"):
        la_pers.solve(offers, [(7, {"MG": 1.0}, 10_000.0)])  # x_MG >= 10 MW: more than any load


def test_snapshot_restore_identical(case, offers):
    la = LoadAggregator.from_case(case, "LA", pricing="uniform")
    cut = [(5, {"MG": -1.0}, -50.0)]
    a = la.solve(offers, cut)
    blob = la.snapshot()
    assert b"_cache" not in blob  # cached solver objects are not part of the state
    la2 = Agent.restore(blob)
    b = la2.solve(offers, cut)
    assert b.profit == a.profit
    for k in a.loads:
        np.testing.assert_array_equal(a.loads[k], b.loads[k])
        np.testing.assert_array_equal(a.prices[k], b.prices[k])
    for k in a.purchases:
        np.testing.assert_array_equal(a.purchases[k], b.purchases[k])


def test_mccormick_is_an_upper_bound_with_gap(case, offers, sol_pers):
    la = LoadAggregator.from_case(case, "LA", relaxation="mccormick")
    m = la.solve(offers)
    assert m.relaxation == "mccormick" and m.status == "optimal"
    assert m.objective >= sol_pers.profit - 1e-6  # relaxation bound
    assert m.profit <= sol_pers.profit + 1e-6  # its schedule, evaluated exactly, is feasible
    assert set(m.mccormick_gap) == set(m.loads) and set(m.w) == set(m.loads)
    gaps = np.concatenate(list(m.mccormick_gap.values()))
    assert gaps.shape == (9 * 24,) and gaps.min() >= -1e-6 and gaps.max() > 0
    for c in la.customers:  # the response is still exact
        np.testing.assert_allclose(m.loads[c.id], c.best_response(m.prices[c.id]), atol=1e-5)
        np.testing.assert_allclose(m.w[c.id] - m.loads[c.id] * m.prices[c.id], m.mccormick_gap[c.id])
    assert m.objective == pytest.approx(m.profit + gaps.sum(), abs=1e-5)


def test_customer_validation():
    with pytest.raises(ValueError):
        Customer("X", "RL", [1.0, 2.0], [0.3, 0.3], 0.0, 0.9, 1.1)
    with pytest.raises(ValueError):
        Customer("X", "RL", [1.0, 2.0], [0.3, 0.3, 0.3], 0.1, 0.9, 1.1)
    with pytest.raises(ValueError):
        Customer("X", "RL", [1.0, 2.0], [0.3, 0.3], 0.1, 1.2, 1.1)
    c = Customer("X", "RL", [1.0, 2.0], [0.3, 0.3], 0.1, 0.9, 1.1)
    assert c == Customer("X", "RL", np.array([1.0, 2.0]), [0.3, 0.3], 0.1, 0.9, 1.1)
    assert math.isclose(c.best_response(np.array([0.25, 0.1]))[0], 0.9)
