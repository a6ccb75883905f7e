"""Offer-price strategies of DER managers.

A strategy turns marginal costs into offer prices within the market's bounds
``[floor, cap_t]`` (tes: floor 0, cap_t = max(0.16, LMP_t) $/kWh) and may adapt
between simulated days from the profit it earned (``update``). Strategies are
plain picklable objects (part of an agent's snapshot).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


class Strategy:
    """Base class: ``prices(cost, cap, floor) -> offer prices`` (same shape as ``cost``)."""

    name = "base"

    def prices(self, cost: np.ndarray, cap: np.ndarray, floor: float = 0.0) -> np.ndarray:
        raise NotImplementedError

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
    """Learns a markup over simulated days (exponential weights over a markup grid).

    Each day it plays the markup with the highest weight-sampled probability
    (deterministic given ``seed``), observes the day's profit, and updates the
    weight of the played arm with ``exp(eta * profit / scale)``. ``scale`` keeps the
    update dimensionless (the first absolute profit above 1e-6 $; days before it teach
    nothing). Weights are updated in the log domain (no overflow).
    """

    grid: tuple[float, ...] = (0.0, 0.01, 0.02, 0.04, 0.06, 0.08)
    eta: float = 0.5
    seed: int = 0
    name = "learning"
    _w: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    _arm: int = 0
    _scale: float = math.nan
    _rng: np.random.Generator = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self._w = np.ones(len(self.grid))
        self._rng = np.random.default_rng(self.seed)
        self._arm = int(self._rng.choice(len(self.grid), p=self._w / self._w.sum()))

    @property
    def markup(self) -> float:
        return self.grid[self._arm]

    def prices(self, cost: np.ndarray, cap: np.ndarray, floor: float = 0.0) -> np.ndarray:
        return np.clip(cost + self.markup, floor, np.broadcast_to(cap, np.shape(cost)))

    def update(self, profit: float) -> None:
        if not math.isfinite(self._scale) or self._scale <= 0:
            if abs(profit) <= 1e-6:  # a day with no profit to speak of fixes no scale and teaches nothing
                self._arm = int(self._rng.choice(len(self.grid), p=self._w / self._w.sum()))
                return
            self._scale = abs(profit)
        # in the log domain, so that a large profit relative to the scale cannot overflow
        logw = np.log(self._w)
        logw[self._arm] += self.eta * profit / self._scale
        self._w = np.exp(logw - logw.max())
        self._arm = int(self._rng.choice(len(self.grid), p=self._w / self._w.sum()))

    def describe(self) -> dict[str, float | str]:
        return {"strategy": self.name, "markup": self.markup}


def make_strategy(name: str, **kw: float) -> Strategy:
    """Strategy by command-line name: ``marginal-cost``, ``markup``, ``learning``."""
    if name == "marginal-cost":
        return MarginalCost()
    if name == "markup":
        return Markup(markup=float(kw.get("markup", 0.02)))
    if name == "learning":
        return LearningMarkup(seed=int(kw.get("seed", 0)))
    raise ValueError(f"unknown strategy '{name}' (marginal-cost, markup, learning)")
