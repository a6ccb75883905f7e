"""Strategies on known games: a monopoly with a known optimal markup, a Bertrand duopoly."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from agents.strategies import (STRATEGIES, BestResponse, LearningMarkup, MarginalCost, Observation, QLearning,
                               RothErev, make_strategy)

COST, CAP = 0.02, 0.2


def _obs(cost, cap, price, sold):
    a = lambda v: np.array([[float(v)]])  # noqa: E731  one unit, one hour
    return Observation(cost=a(cost), cap=np.array([cap]), floor=0.0, offer=a(price), offered=a(100.0),
                       sold=a(sold), paid=a(price))


def monopoly_demand(p: float) -> float:
    """q = 10 - 100 p (kW); with cost 0.02 $/kWh the optimal price is 0.06, markup 0.04 (profit 0.16 $)."""
    return max(0.0, 10.0 - 100.0 * p)


def play_monopoly(s, days: int) -> list[float]:
    markups = []
    for _ in range(days):
        p = float(s.prices(np.array([[COST]]), np.array([CAP]))[0, 0])
        q = monopoly_demand(p)
        s.observe(_obs(COST, CAP, p, q))
        s.update((p - COST) * q)
        markups.append(round(p - COST, 9))
    return markups


def play_bertrand(s1, s2, days: int, demand: float = 10.0) -> list[tuple[float, float]]:
    """Two sellers with cost 0.05; the buyer takes ``demand`` from the cheaper (ties split), cap 0.2."""
    out = []
    for _ in range(days):
        p = [float(s.prices(np.array([[0.05]]), np.array([CAP]))[0, 0]) for s in (s1, s2)]
        q = [demand if p[0] < p[1] else 0.0, demand if p[1] < p[0] else 0.0]
        if abs(p[0] - p[1]) < 1e-12:
            q = [demand / 2] * 2
        for s, pi, qi in zip((s1, s2), p, q):
            s.observe(_obs(0.05, CAP, pi, qi))
            s.update((pi - 0.05) * qi)
        out.append((p[0] - 0.05, p[1] - 0.05))
    return out


def test_registry_names_and_parameters():
    assert {"marginal-cost", "markup", "learning", "exp-weights", "roth-erev", "q-learning",
            "best-response"} <= set(STRATEGIES)
    s = make_strategy("roth-erev", strict=True, recency=0.1, grid=[0, 0.02], seed=4)
    assert isinstance(s, RothErev) and s.recency == 0.1 and s.grid == (0.0, 0.02)
    with pytest.raises(ValueError, match="no parameter 'eta'"):
        make_strategy("best-response", strict=True, eta=1.0)
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("tit-for-tat")
    with pytest.raises(ValueError, match="must be like"):
        make_strategy("q-learning", strict=True, alpha="fast")
    # the command line's habit: markup and seed passed to every strategy, ignored where unknown
    assert isinstance(make_strategy("marginal-cost", markup=0.02, seed=1), MarginalCost)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_is_picklable_and_within_bounds(name):
    s = make_strategy(name, seed=2)
    for _ in range(3):
        p = s.prices(np.array([[0.05, 0.3]]), np.array([0.16, 0.2]))
        assert np.all(p >= 0) and np.all(p <= np.array([0.16, 0.2]) + 1e-12)
        s.observe(Observation(np.array([[0.05, 0.3]]), np.array([0.16, 0.2]), 0.0, p, np.ones((1, 2)),
                              np.ones((1, 2)), p))
        s.update(1.0)
    s2 = pickle.loads(pickle.dumps(s))
    assert np.array_equal(s2.prices(np.array([[0.05, 0.3]]), np.array([0.16, 0.2])),
                          s.prices(np.array([[0.05, 0.3]]), np.array([0.16, 0.2])))


def test_best_response_finds_the_monopoly_markup():
    m = play_monopoly(BestResponse(), 12)
    assert m[-1] == pytest.approx(0.04)
    assert m[-3:] == [pytest.approx(0.04)] * 3


@pytest.mark.parametrize("cls", [LearningMarkup, RothErev])
def test_learners_approach_the_monopoly_markup(cls):
    m = play_monopoly(cls(seed=1), 400)
    last = m[-100:]
    # the optimal arm 0.04 is played most in the last 100 days
    assert max(set(last), key=last.count) == pytest.approx(0.04)
    assert last.count(0.04) > 50


def test_decaying_experimentation_settles_on_the_monopoly_markup():
    """Roth-Erev with experimentation decaying by 0.98 a day plays the optimal markup on >= 97 % of the
    last 100 of 400 days (seeds 1-3: 100, 99, 100); with AMES's constant experimentation (decay 1) the
    same seeds play it on 65, 97, 99 % of those days, so the test fails if the decay is removed."""
    def share(decay: float) -> float:
        return float(np.mean([play_monopoly(RothErev(seed=seed, experimentation_decay=decay), 400)[-100:].count(0.04)
                              for seed in (1, 2, 3)])) / 100

    assert share(0.98) >= 0.97
    assert share(1.0) < 0.97


def bandit_q(**kw) -> QLearning:
    """The monopoly study's learner: one markup a day (one hour class, one price state, no discounting)."""
    return QLearning(**{"hour_classes": (0,), "n_price_bins": 1, "gamma": 0.0, "alpha_power": 1.0, "epsilon": 0.5,
                        "epsilon_decay": 0.97} | kw)


def test_epsilon_greedy_with_decaying_epsilon_settles_on_the_monopoly_markup():
    """The bandit Q-learner (sample averages, epsilon 0.5 decaying by 0.97 a day) plays the optimal markup on
    >= 95 % of the last 100 of 300 days on seeds 1-3; with epsilon kept at 0.5 (decay 1) it cannot (at most
    1 - 0.5 * 5/6 of the days in expectation), so the test fails if the decay is removed."""
    def share(decay: float) -> float:
        return float(np.mean([play_monopoly(bandit_q(seed=seed, epsilon_decay=decay), 300)[-100:].count(0.04)
                              for seed in (1, 2, 3)])) / 100

    assert share(0.97) >= 0.95
    assert share(1.0) < 0.7


def test_q_learning_step_sizes():
    """alpha_power 0 (default): the constant alpha; 1: the first reward is taken whole (sample averages)."""
    for power, first in ((0.0, 0.1), (1.0, 1.0)):
        q = bandit_q(seed=0, epsilon=0.0, alpha=0.1, alpha_power=power)
        s0, a = int(q._state[0]), int(q._act[0])
        q.observe(_obs(0.0, CAP, 0.1, 10.0))  # profit 1 $: fixes the scale, reward 1
        q.update(1.0)
        assert q._Q[0, s0, a] == pytest.approx(first)
    with pytest.raises(ValueError, match="alpha_power"):
        QLearning(alpha_power=-1.0)


def test_decay_schedules_follow_their_parameters():
    s = RothErev(seed=0, experimentation=0.2, experimentation_decay=0.5)
    e = LearningMarkup(seed=0, explore=0.2, explore_decay=0.5)
    assert e.exploration == pytest.approx(0.2)
    for _ in range(3):
        s.update(1.0), e.update(1.0)
    assert s._day == 3 and e.exploration == pytest.approx(0.2 * 0.5 ** 3)
    # defaults: the published constant schedules
    assert RothErev().experimentation_decay == 1.0 and LearningMarkup().explore_decay == 1.0
    for bad in ({"experimentation_decay": 0.0}, {"experimentation_decay": 1.5}):
        with pytest.raises(ValueError, match="experimentation_decay"):
            RothErev(**bad)
    with pytest.raises(ValueError, match="explore_decay"):
        LearningMarkup(explore_decay=0.0)


def test_q_learning_earns_most_of_the_monopoly_profit():
    """Q-learning's state (its last price) makes cycles possible (seed 3 cycles between markups); over
    seeds 1-3 it earns >= 75 % of the optimum (0.16 $/day) after 500 days, against 0 at marginal cost."""
    profit = [np.mean([x * (8 - 100 * x) for x in play_monopoly(QLearning(seed=seed), 600)[-100:]])
              for seed in (1, 2, 3)]
    assert np.mean(profit) >= 0.75 * 0.16


def test_marginal_cost_is_the_bertrand_equilibrium():
    res = play_bertrand(MarginalCost(), MarginalCost(), 3)
    assert res[-1] == (0.0, 0.0)
    # no unilateral deviation pays: any higher price sells nothing, a lower one loses money
    for dev in np.linspace(-0.05, 0.15, 41):
        p = 0.05 + dev
        q = 10.0 if p < 0.05 else (5.0 if p == 0.05 else 0.0)
        assert (p - 0.05) * q <= 1e-12


@pytest.mark.parametrize("cls", [pytest.param(LearningMarkup, marks=pytest.mark.xfail(
    reason="exp-weights (Exp3) over 600 days: seeds 1, 3 fall (0.030->0.024, 0.044->0.033), seed 2 rises "
           "(0.020->0.041); on average it does not fall", strict=True)), RothErev])
def test_learners_prices_fall_in_a_bertrand_duopoly(cls):
    """Over seeds 1-3 the markups fall from the first 50 days to the last 100; the price paid ends
    within 0.04 $/kWh of cost (the grid's one-tick-above-cost pair (0.01, 0.01) is itself an
    equilibrium of the discrete game). Single seeds may not fall (exp-weights seed 2 rises)."""
    runs = [play_bertrand(cls(seed=seed), cls(seed=seed + 10), 600) for seed in (1, 2, 3)]
    assert np.mean([np.mean(r[-100:]) for r in runs]) < np.mean([np.mean(r[:50]) for r in runs])
    for r in runs:
        assert np.mean([min(a, b) for a, b in r[-100:]]) <= 0.04


def test_best_responders_undercut_in_a_bertrand_duopoly():
    """Best responders that see only their own sales do not reach cost (each cannot tell a rival's
    price from a demand curve) but the price paid falls below both initial markups."""
    grid = tuple(round(0.01 * k, 6) for k in range(16))
    res = play_bertrand(BestResponse(grid=grid, initial=0.1), BestResponse(grid=grid, initial=0.05), 100)
    assert np.mean([min(a, b) for a, b in res[-30:]]) < 0.05
