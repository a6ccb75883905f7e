"""The day-ahead market of the ``tso-dso`` protocol (seed 004, problem B.1), run by the TSO.

One period, copper plate, uniform price. Every resource ``i`` has a sign ``sigma_i`` (+1
producer, -1 demand), a day-ahead price ``pi_i`` ($/MWh) and an offered quantity ``Q_i``
(MW: its capacity; the in-sample mean for a wind farm)::

    min  sum_i sigma_i pi_i x_i                       (= -SW_DA, $)
    s.t. sum_i sigma_i x_i = 0                : lambda (the DA price, $/MWh)
         p_min_i <= x_i <= u_i                : (vs-_i, vs+_i)

with ``u_i`` the cap ``p~_i`` of a distribution-connected generator or demand (the DSO
pre-qualification, ``p_min <= p~ <= P max``) and ``Q_i`` otherwise. The balance is
written ``demand - supply == 0`` so that its dual is the price. Day-ahead load shedding
(B.1h) is left out: every demand has ``p_min = 0`` and bids below VOLL, so shedding is
dominated by not buying and is never used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import cvxpy as cp
import numpy as np

from ..solve import Attempt, solve
from .participants import DEM

__all__ = ["DAMarket", "DAResult", "clear_da_market", "equilibrium_price_interval"]


@dataclass(frozen=True)
class DAMarket:
    """The day-ahead market's data: one entry per resource, in a fixed order."""

    ids: tuple[str, ...]
    kind: tuple[str, ...]  # GEN, DEM or WIND (participants.py)
    price: np.ndarray  # $/MWh: offer (producers) or bid (demands) price
    qty: np.ndarray  # MW: offered quantity (P max, or the expected wind)
    p_min: np.ndarray  # MW
    capped: np.ndarray  # bool: a distribution-connected generator or demand (its upper bound is a cap)
    area: np.ndarray  # int: 0 transmission, e >= 1 distribution area

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def sign(self) -> np.ndarray:
        return np.array([-1.0 if k == DEM else 1.0 for k in self.kind])

    @property
    def index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.ids)}

    def price_range(self) -> tuple[float, float]:
        return float(self.price.min()), float(self.price.max())

    def cost(self, x: np.ndarray) -> float:
        """``-SW_DA`` of quantities ``x``."""
        return float(self.sign * self.price @ np.asarray(x, dtype=float))

    def bounds(self, caps: Mapping[str, float] | np.ndarray | None) -> np.ndarray:
        """Upper bounds: the caps of capped resources (P max if not given), else the offered quantity."""
        u = self.qty.copy()
        if caps is None:
            return u
        if isinstance(caps, np.ndarray):
            return np.where(self.capped, caps, u)
        for k, v in caps.items():
            i = self.index[k]
            if not self.capped[i]:
                raise KeyError(f"{k} is not a capped resource")
            u[i] = float(v)
        return u


@dataclass
class DAResult:
    x: np.ndarray
    price: float
    cost: float  # -SW_DA
    upper: np.ndarray
    status: str


def clear_da_market(market: DAMarket, caps: Mapping[str, float] | np.ndarray | None = None, *,
                    solver: str = "HIGHS", agent: str = "TSO") -> DAResult:
    """Clear the day-ahead market LP with given caps (P max where not given)."""
    u = market.bounds(caps)
    x = cp.Variable(market.n)
    bal = -(market.sign @ x) == 0  # demand - supply == 0: dual = price
    prob = cp.Problem(cp.Minimize((market.sign * market.price) @ x), [bal, x >= market.p_min, x <= u])
    solve(prob, [Attempt(solver, {})], agent, "day-ahead market LP")
    return DAResult(np.asarray(x.value, dtype=float), float(bal.dual_value), float(prob.value), u, prob.status)


def equilibrium_price_interval(market: DAMarket, x: np.ndarray, upper: np.ndarray, tol: float = 1e-6
                               ) -> tuple[float, float]:
    """The prices ``lambda`` that support quantities ``x`` (KKT of the DA market), as ``[lo, hi]``.

    Empty (``lo > hi``) if ``x`` is not a market solution for these bounds.
    """
    lo, hi = -math.inf, math.inf
    for i in range(market.n):
        at_lo = x[i] <= market.p_min[i] + tol
        at_hi = x[i] >= upper[i] - tol
        if at_lo and at_hi:
            continue
        pi, s = market.price[i], market.sign[i]
        if not at_lo and not at_hi:
            lo, hi = max(lo, pi), min(hi, pi)
        elif at_hi:  # sigma (lambda - pi) >= 0
            if s > 0:
                lo = max(lo, pi)
            else:
                hi = min(hi, pi)
        else:  # at the lower bound: sigma (lambda - pi) <= 0
            if s > 0:
                hi = min(hi, pi)
            else:
                lo = max(lo, pi)
    return lo, hi
