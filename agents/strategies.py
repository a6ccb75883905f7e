"""Offer-price strategies of DER managers.

A strategy turns marginal costs into offer prices within the market's bounds
``[floor, cap_t]`` (tes: floor 0, cap_t = max(0.16, LMP_t) $/kWh) and may adapt
between simulated days from the profit it earned (``update``). Strategies are
plain picklable objects (part of an agent's snapshot).
"""
from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np


class Strategy:
    """Base class: ``prices(cost, cap, floor) -> offer prices`` (same shape as ``cost``)."""

    name = "base"

    def prices(self, cost: np.ndarray, cap: np.ndarray, floor: float = 0.0) -> np.ndarray:
        raise NotImplementedError

    def observe(self, obs: "Observation") -> None:
        """What the agent learnt from the day (its own offers, sales, prices paid; the public
        bounds), given before :meth:`update`. Default: ignored."""

    def update(self, profit: float) -> None:
        """Feedback after a market day (profit in $). Default: no learning."""

    def describe(self) -> dict[str, float | str]:
        return {"strategy": self.name}


@dataclass
class MarginalCost(Strategy):
    """Competitive: offer at marginal cost (clipped to the price bounds)."""

    name = "marginal-cost"

    def prices(self, cost: np.ndarray, cap: np.ndarray, floor: float = 0.0) -> np.ndarray:
        return np.clip(cost, floor, np.broadcast_to(cap, np.shape(cost)))


@dataclass
class Markup(Strategy):
    """Fixed markup: ``cost + markup`` ($ per energy unit), clipped to the bounds."""

    markup: float = 0.02
    name = "markup"

    def prices(self, cost: np.ndarray, cap: np.ndarray, floor: float = 0.0) -> np.ndarray:
        return np.clip(cost + self.markup, floor, np.broadcast_to(cap, np.shape(cost)))

    def describe(self) -> dict[str, float | str]:
        return {"strategy": self.name, "markup": self.markup}


@dataclass
class LearningMarkup(Strategy):
    """Learns a markup over simulated days (exponential weights, Exp3-style, over a markup grid).

    Parameters: ``grid`` markups ($/kWh) over the marginal cost, one played per day in every hour;
    ``eta`` learning rate (dimensionless, per day); ``explore`` gamma in [0, 1): share of uniform
    exploration in the play probabilities on day 0; ``explore_decay`` in (0, 1]: factor applied to
    that share per day (dimensionless per day; day t explores ``explore * explore_decay**t``; default 1:
    constant exploration, Exp3 as published; with the importance-weighted update a decaying share lets
    an early lucky arm lock in: on the known monopoly game of ``tests/test_strategies.py`` decay 0.98
    settles on the optimum for 1 of seeds 1-5, where Roth-Erev's and epsilon-greedy's decays settle on
    it); ``seed``: the draws.

    Each day it draws an arm with probability ``p = (1 - gamma_t) w / sum w + gamma_t / N``
    (deterministic given ``seed``), observes the day's profit R, and adds
    ``eta (R / scale) / (N p_arm)`` to the log-weight of the played arm (the importance-weighted
    estimate, so that an arm played often is not favoured for being played). ``scale`` keeps the
    update dimensionless (the first absolute profit above 1e-6 $; days before it teach nothing).
    Weights are kept in the log domain (no overflow).
    """

    grid: tuple[float, ...] = (0.0, 0.01, 0.02, 0.04, 0.06, 0.08)
    eta: float = 0.5
    seed: int = 0
    explore: float = 0.1
    explore_decay: float = 1.0
    name = "learning"
    _w: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    _arm: int = 0
    _day: int = 0
    _scale: float = math.nan
    _rng: np.random.Generator = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.grid = tuple(float(g) for g in self.grid)
        if not 0 <= self.explore < 1 or self.eta <= 0 or not 0 < self.explore_decay <= 1:
            raise ValueError("learning needs eta > 0, 0 <= explore < 1 and 0 < explore_decay <= 1")
        self._w = np.ones(len(self.grid))
        self._rng = np.random.default_rng(self.seed)
        self._draw()

    @property
    def exploration(self) -> float:
        """The day's share of uniform exploration (``explore * explore_decay**day``)."""
        return self.explore * self.explore_decay ** self._day

    def _probabilities(self) -> np.ndarray:
        g = self.exploration
        return (1 - g) * self._w / self._w.sum() + g / len(self.grid)

    def _draw(self) -> None:
        self._arm = int(self._rng.choice(len(self.grid), p=self._probabilities()))

    @property
    def markup(self) -> float:
        return self.grid[self._arm]

    def prices(self, cost: np.ndarray, cap: np.ndarray, floor: float = 0.0) -> np.ndarray:
        return np.clip(cost + self.markup, floor, np.broadcast_to(cap, np.shape(cost)))

    def update(self, profit: float) -> None:
        if not math.isfinite(self._scale) or self._scale <= 0:
            if abs(profit) <= 1e-6:  # a day with no profit to speak of fixes no scale and teaches nothing
                self._day += 1
                self._draw()
                return
            self._scale = abs(profit)
        # in the log domain, so that a large profit relative to the scale cannot overflow
        p = self._probabilities()[self._arm]
        logw = np.log(self._w)
        logw[self._arm] += self.eta * profit / self._scale / (len(self.grid) * p)
        self._w = np.exp(logw - logw.max())
        self._day += 1
        self._draw()

    def describe(self) -> dict[str, float | str]:
        return {"strategy": self.name, "markup": self.markup}


# ====================================================================== observations and the registry


@dataclass(frozen=True)
class Observation:
    """What a seller learns from one market day: only its own data and the public bounds.

    Arrays are (U, T): one row per own unit, one column per hour. ``cost`` marginal cost ($/kWh),
    ``offer`` the offered prices ($/kWh), ``offered`` the offered quantities (kW), ``sold`` the
    quantities bought (kW), ``paid`` the prices paid ($/kWh); ``cap`` (T,) the public price cap
    ($/kWh), ``floor`` the public price floor ($/kWh).
    """

    cost: np.ndarray
    cap: np.ndarray
    floor: float
    offer: np.ndarray
    offered: np.ndarray
    sold: np.ndarray
    paid: np.ndarray

    @property
    def hourly_profit(self) -> np.ndarray:
        """(T,) profit per hour over the units ($)."""
        return np.sum((self.paid - self.cost) * self.sold, axis=0)


def _markup_prices(cost: np.ndarray, cap: np.ndarray, floor: float, markup: np.ndarray | float) -> np.ndarray:
    cost = np.asarray(cost, dtype=float)
    return np.clip(cost + markup, floor, np.broadcast_to(cap, np.shape(cost)))


class _Scale:
    """Dimensionless rewards: profit / |first profit above 1e-6 $| (NaN until then)."""

    @staticmethod
    def fix(scale: float, profit: float) -> float:
        if math.isfinite(scale) and scale > 0:
            return scale
        return abs(profit) if abs(profit) > 1e-6 else math.nan


@dataclass
class RothErev(Strategy):
    """Roth-Erev reinforcement learning over a markup grid (the modified variant used in AMES).

    Parameters:

    - ``grid``: markups ($/kWh) the agent may add to its marginal cost (one per day, every hour);
    - ``recency`` r in [0, 1): forgetting of past propensities per day (dimensionless);
    - ``experimentation`` e in [0, 1): share of the reward spread over the arms not played
      (dimensionless; AMES's modified update: unplayed arms get ``q_j e / (N - 1)``);
    - ``experimentation_decay`` in (0, 1]: factor applied to e per day (dimensionless per day; day t
      uses ``e * experimentation_decay**t``; default 1: AMES's constant experimentation);
    - ``initial_propensity`` q0 > 0: every arm's propensity before learning (in units of the
      reward scale, the first absolute day profit above 1e-6 $);
    - ``seed``: the arm draws.

    Each day the played arm k gets ``q_k <- (1 - r) q_k + R (1 - e_t)`` with R = profit / scale, the
    others ``q_j <- (1 - r) q_j + q_j e_t / (N - 1)``; arms are drawn with probability
    ``q_j / sum q`` (propensities kept above 1e-9).
    """

    grid: tuple[float, ...] = (0.0, 0.01, 0.02, 0.04, 0.06, 0.08)
    recency: float = 0.05
    experimentation: float = 0.1
    experimentation_decay: float = 1.0
    initial_propensity: float = 1.0
    seed: int = 0
    name = "roth-erev"
    _q: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    _arm: int = 0
    _day: int = 0
    _scale: float = math.nan
    _rng: np.random.Generator = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.grid = tuple(float(g) for g in self.grid)
        if (not 0 <= self.recency < 1 or not 0 <= self.experimentation < 1 or self.initial_propensity <= 0
                or not 0 < self.experimentation_decay <= 1):
            raise ValueError("roth-erev needs 0 <= recency < 1, 0 <= experimentation < 1, initial_propensity > 0, "
                             "0 < experimentation_decay <= 1")
        self._q = np.full(len(self.grid), float(self.initial_propensity))
        self._rng = np.random.default_rng(self.seed)
        self._draw()

    def _draw(self) -> None:
        self._arm = int(self._rng.choice(len(self.grid), p=self._q / self._q.sum()))

    @property
    def markup(self) -> float:
        return self.grid[self._arm]

    def prices(self, cost: np.ndarray, cap: np.ndarray, floor: float = 0.0) -> np.ndarray:
        return _markup_prices(cost, cap, floor, self.markup)

    def update(self, profit: float) -> None:
        self._scale = _Scale.fix(self._scale, profit)
        if math.isfinite(self._scale):
            n, r = len(self.grid), self.recency
            e = self.experimentation * self.experimentation_decay ** self._day
            reward = profit / self._scale
            other = self._q * e / max(1, n - 1)
            new = (1 - r) * self._q + other
            new[self._arm] = (1 - r) * self._q[self._arm] + reward * (1 - e)
            self._q = np.maximum(new, 1e-9)
        self._day += 1
        self._draw()

    def describe(self) -> dict[str, float | str]:
        return {"strategy": self.name, "markup": self.markup}


@dataclass
class QLearning(Strategy):
    """Tabular Q-learning of a markup per hour class, with a small state.

    Parameters:

    - ``grid``: markups ($/kWh), the actions;
    - ``hour_classes``: first hour of each class (hours, e.g. ``(0, 7, 17)``: night 0-6, day 7-16,
      evening 17-23); a markup is chosen per class;
    - ``price_bin`` ($/kWh) and ``n_price_bins``: the state is the class's last mean price paid,
      in bins of ``price_bin`` (the last bin open-ended), plus one state "nothing sold";
    - ``alpha`` in (0, 1]: learning rate; ``gamma`` in [0, 1): discount (per day);
    - ``alpha_power`` omega >= 0 (dimensionless): for omega > 0 the n-th update of a (state, action)
      pair uses the step ``max(alpha, n**-omega)``; default 0: the constant ``alpha`` (as published);
      1: the sample average of its first ``1/alpha`` rewards, then the constant ``alpha`` (the step sizes of the
      Q-learning convergence results, Watkins-Dayan 1992, Even-Dar-Mansour 2003, floored at ``alpha``:
      a zero-initialised Q is then not biased towards the actions tried most);
    - ``epsilon`` in [0, 1]: exploration probability on day 0, times ``epsilon_decay`` in (0, 1] per
      day (dimensionless per day; day t explores with probability ``epsilon * epsilon_decay**t``);
    - ``seed``: exploration draws.

    Reward of a class: its hours' profit / scale (scale: the first absolute day profit above 1e-6 $).
    """

    grid: tuple[float, ...] = (0.0, 0.01, 0.02, 0.04, 0.06, 0.08)
    hour_classes: tuple[int, ...] = (0, 7, 17)
    price_bin: float = 0.04
    n_price_bins: int = 5
    alpha: float = 0.1
    gamma: float = 0.3
    epsilon: float = 0.5
    epsilon_decay: float = 0.99
    alpha_power: float = 0.0
    seed: int = 0
    name = "q-learning"
    _Q: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    _N: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]  # updates per (class, state, action)
    _state: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    _act: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    _day: int = 0
    _scale: float = math.nan
    _obs: Any = field(default=None, repr=False)
    _rng: np.random.Generator = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.grid = tuple(float(g) for g in self.grid)
        self.hour_classes = tuple(int(h) for h in self.hour_classes)
        if (not 0 < self.alpha <= 1 or not 0 <= self.gamma < 1 or not 0 <= self.epsilon <= 1
                or not 0 < self.epsilon_decay <= 1 or self.alpha_power < 0):
            raise ValueError("q-learning needs 0 < alpha <= 1, 0 <= gamma < 1, 0 <= epsilon <= 1, "
                             "0 < epsilon_decay <= 1, alpha_power >= 0")
        nc, ns = len(self.hour_classes), self.n_price_bins + 1
        self._Q = np.zeros((nc, ns, len(self.grid)))
        self._N = np.zeros((nc, ns, len(self.grid)), dtype=int)
        self._state = np.full(nc, self.n_price_bins, dtype=int)  # "nothing sold yet"
        self._rng = np.random.default_rng(self.seed)
        self._act = np.zeros(nc, dtype=int)
        self._choose()

    def _classes(self, T: int) -> np.ndarray:
        return np.searchsorted(np.asarray(self.hour_classes), np.arange(T) % 24, side="right") - 1

    def _choose(self) -> None:
        eps = self.epsilon * self.epsilon_decay ** self._day
        for c in range(len(self.hour_classes)):
            q = self._Q[c, self._state[c]]
            if self._rng.random() < eps:
                self._act[c] = int(self._rng.integers(len(self.grid)))
            else:
                self._act[c] = int(np.flatnonzero(q == q.max())[0])

    def markups(self, T: int) -> np.ndarray:
        """(T,) markup per hour ($/kWh)."""
        return np.asarray(self.grid)[self._act[self._classes(T)]]

    @property
    def markup(self) -> float:
        return float(np.mean(np.asarray(self.grid)[self._act]))

    def prices(self, cost: np.ndarray, cap: np.ndarray, floor: float = 0.0) -> np.ndarray:
        return _markup_prices(cost, cap, floor, self.markups(np.shape(cost)[-1]))

    def observe(self, obs: Observation) -> None:
        self._obs = obs

    def update(self, profit: float) -> None:
        self._scale = _Scale.fix(self._scale, profit)
        obs, self._obs = self._obs, None
        if obs is not None and math.isfinite(self._scale):
            T = obs.sold.shape[1]
            cls_of = self._classes(T)
            hp = obs.hourly_profit
            for c in range(len(self.hour_classes)):
                hrs = cls_of == c
                q = obs.sold[:, hrs]
                s_new = self.n_price_bins
                if q.sum() > 1e-9:
                    mean_paid = float((obs.paid[:, hrs] * q).sum() / q.sum())
                    s_new = min(self.n_price_bins - 1, int(mean_paid // self.price_bin))
                r = float(hp[hrs].sum()) / self._scale
                s, a = self._state[c], self._act[c]
                if self._N is None:  # a checkpoint from before the step-size schedule
                    self._N = np.zeros(self._Q.shape, dtype=int)
                self._N[c, s, a] += 1
                step = self.alpha
                if self.alpha_power > 0:
                    step = max(self.alpha, float(self._N[c, s, a]) ** -self.alpha_power)
                self._Q[c, s, a] += step * (r + self.gamma * self._Q[c, s_new].max() - self._Q[c, s, a])
                self._state[c] = s_new
        self._day += 1
        self._choose()

    def describe(self) -> dict[str, float | str]:
        return {"strategy": self.name, "markup": self.markup}


@dataclass
class BestResponse(Strategy):
    """Best response on a model of its own residual demand (grid search over one markup per day).

    The model is built only from what the agent saw: for each own unit and hour, the (price offered,
    quantity sold) pairs of the last ``memory`` days. Residual demand is taken as non-increasing in
    the price (the running maximum from the right) and interpolated linearly between observed
    prices; above the highest observed price it is taken as the quantity sold there (optimistic:
    this is how the agent explores upwards). The markup maximising the predicted profit
    ``sum (min(cost + m, cap) - cost) q(min(cost + m, cap))`` over ``grid`` is played (ties: the
    smallest markup).

    Parameters: ``grid`` markups ($/kWh; default 0 to 0.2 by 0.005); ``initial`` markup of the
    first day ($/kWh); ``memory`` days of observations kept (days); ``explore``: probability of a
    random markup of the grid instead (per day; breaks ties between identical best responders);
    ``seed``: those draws.
    """

    grid: tuple[float, ...] = tuple(round(0.005 * k, 6) for k in range(41))
    initial: float = 0.0
    memory: int = 30
    explore: float = 0.0
    seed: int = 0
    name = "best-response"
    _markup: float = math.nan
    _hist: list = field(default_factory=list, repr=False)
    _rng: np.random.Generator = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.grid = tuple(float(g) for g in self.grid)
        if self.memory < 1:
            raise ValueError("best-response needs memory >= 1 day")
        if not math.isfinite(self._markup):
            self._markup = float(self.initial)
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)

    @property
    def markup(self) -> float:
        return self._markup

    def observe(self, obs: Observation) -> None:
        self._hist.append((np.asarray(obs.offer, float), np.asarray(obs.sold, float), np.asarray(obs.offered, float)))
        del self._hist[:-self.memory]

    def predicted_profit(self, cost: np.ndarray, cap: np.ndarray, floor: float = 0.0) -> np.ndarray:
        """Predicted profit ($) of each markup of ``grid`` (the agent's own model)."""
        cost = np.asarray(cost, dtype=float)
        U, T = cost.shape
        g = np.asarray(self.grid)
        P = np.stack([h[0] for h in self._hist])  # (D, U, T)
        Q = np.stack([h[1] for h in self._hist])
        offered = np.max(np.stack([np.minimum(h[2], 1e12) for h in self._hist]), axis=0)  # (U, T)
        out = np.zeros(len(g))
        for u in range(U):
            for t in range(T):
                p = np.clip(cost[u, t] + g, floor, np.broadcast_to(cap, (T,))[t])
                xs, inv = np.unique(P[:, u, t], return_inverse=True)
                ys = np.zeros(len(xs))
                np.maximum.at(ys, inv, Q[:, u, t])
                c0 = max(cost[u, t], floor)
                if xs[0] > c0 + 1e-12:  # never offered at cost: assume all it offers would sell there
                    xs, ys = np.r_[c0, xs], np.r_[max(offered[u, t], ys.max()), ys]
                ys = np.maximum.accumulate(ys[::-1])[::-1]  # non-increasing in the price
                out += (p - cost[u, t]) * np.interp(p, xs, ys)
        return out

    def prices(self, cost: np.ndarray, cap: np.ndarray, floor: float = 0.0) -> np.ndarray:
        if self._hist and np.shape(self._hist[-1][0]) == np.shape(cost):
            pred = self.predicted_profit(cost, cap, floor)
            self._markup = float(self.grid[int(np.flatnonzero(pred >= pred.max() - 1e-12)[0])])
            if self.explore > 0 and self._rng.random() < self.explore:
                self._markup = float(self.grid[int(self._rng.integers(len(self.grid)))])
        return _markup_prices(cost, cap, floor, self._markup)

    def describe(self) -> dict[str, float | str]:
        return {"strategy": self.name, "markup": self.markup}


#: strategy name -> class. ``learning`` and ``exp-weights`` are the same (exponential weights).
STRATEGIES: dict[str, type[Strategy]] = {
    "marginal-cost": MarginalCost, "markup": Markup, "learning": LearningMarkup, "exp-weights": LearningMarkup,
    "roth-erev": RothErev, "q-learning": QLearning, "best-response": BestResponse,
}


def strategy_parameters(name: str) -> dict[str, Any]:
    """The parameters (with defaults) of strategy ``name``."""
    cls = STRATEGIES[name]
    return {f.name: (f.default if f.default is not MISSING else f.default_factory())  # type: ignore[misc]
            for f in fields(cls) if not f.name.startswith("_")}


def make_strategy(name: str, *, strict: bool = False, **kw: Any) -> Strategy:
    """The strategy ``name`` (see :data:`STRATEGIES`) with parameters ``kw``.

    ``strict``: an unknown parameter is an error (study files); otherwise parameters the strategy
    does not have are ignored (the command line passes ``markup`` and ``seed`` to every strategy).
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy '{name}' ({', '.join(STRATEGIES)})")
    allowed = strategy_parameters(name)
    unknown = sorted(set(kw) - set(allowed))
    if strict and unknown:
        raise ValueError(f"strategy '{name}' has no parameter '{unknown[0]}' (it has: "
                         f"{', '.join(allowed) or 'none'})")
    args: dict[str, Any] = {}
    for k, v in kw.items():
        if k not in allowed:
            continue
        d = allowed[k]
        try:
            if isinstance(d, tuple):
                args[k] = tuple(type(d[0])(x) if d else float(x) for x in v)
            elif isinstance(d, bool):
                args[k] = bool(v)
            elif isinstance(d, int):
                if isinstance(v, float) and not v.is_integer():
                    raise ValueError
                args[k] = int(v)
            else:
                args[k] = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"strategy '{name}': parameter '{k}' must be like {d!r}, got {v!r}") from None
    return STRATEGIES[name](**args)
