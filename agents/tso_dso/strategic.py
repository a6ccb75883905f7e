"""Strategic day-ahead offers and bids of ``tso-dso`` participants (GENCOs, DER managers, load aggregators).

A participant with a strategy (``agents/strategies.py``) no longer offers at the case's
day-ahead price: it offers at a price its strategy chooses, one per resource, once per
market day. Units: $/MWh, MW, $ per market day.

Sellers (generators and wind farms)
    The case's ``price_da`` is the resource's marginal cost ``c``; the offer is
    ``strategy.prices(c, cap, floor)`` (``c + markup``, clipped to ``[floor, cap]``).
Buyers (demands)
    The case's ``price_da`` is the demand's value ``v`` (its competitive bid); the bid is
    ``v - s`` with the *shading* ``s = strategy.prices(0, v - floor, 0)`` (the markup played in
    "surplus space": a buyer sells its surplus ``v - price``). The same strategies then learn
    for both sides: for a buyer the :class:`~agents.strategies.Observation` carries
    ``cost = 0``, ``offer = s``, ``paid = v - lambda`` (its surplus per MWh), so that
    ``(paid - cost) * sold`` is its surplus.

Public bounds: the price floor (0 $/MWh) and cap (the case's day-ahead VOLL, 10 000 $/MWh
on ``tso24_dso5``). The real-time premiums ``price_up``/``price_down`` stay the case's; the
real-time deviations are settled at the offered day-ahead price (the seed's real-time cost
``pi^DA (p^RT - p^DA) + ...``), so a markup moves the reference price of the real-time
market too.

What a strategy sees after the day (:func:`observation`): its own marginal costs or values,
its offers, the quantities it offered, the day-ahead quantities it was scheduled and the
day-ahead price it was paid, and the public bounds; its profit (:func:`day_profit`) is the
day-ahead settlement ``sum (lambda - c) x`` (sellers) or ``sum (v - lambda) x`` (buyers).
Real-time regulation income is not part of it (the participant is not told its real-time
dispatch).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..strategies import Observation, Strategy
from .participants import ResourceSet

__all__ = ["PRICE_FLOOR", "offer_prices", "observation", "day_profit", "markups", "check_one_side", "describe"]

PRICE_FLOOR = 0.0  # $/MWh: the public floor of day-ahead offers and bids


def offer_prices(strategy: Strategy, res: ResourceSet, cap: float, floor: float = PRICE_FLOOR) -> np.ndarray:
    """(n,) day-ahead offer (sellers) or bid (buyers) prices ($/MWh) of ``res`` under ``strategy``.

    A strategic participant is all sellers or all buyers (one strategy, one side of the market)."""
    check_one_side(res)
    if res.is_dem.any():  # shading in surplus space, capped per demand at v - floor
        v = res.price_da
        s = np.asarray(strategy.prices(np.zeros((len(v), 1)), np.array([max(0.0, float(v.max()) - floor)]), 0.0),
                       dtype=float).reshape(-1)
        out = v - np.clip(s, 0.0, np.maximum(v - floor, 0.0))
    else:
        out = np.asarray(strategy.prices(res.price_da[:, None], np.array([cap]), floor), dtype=float).reshape(-1)
    if out.shape != (len(res),) or not np.all(np.isfinite(out)):
        raise ValueError(f"strategy {strategy.name} gave offer prices of shape {out.shape} or not finite")
    return np.clip(out, floor, cap)


def check_one_side(res: ResourceSet) -> None:
    if res.is_dem.any() and not res.is_dem.all():
        raise ValueError("a strategic participant must hold only demands or only generators and wind farms, "
                         f"got {', '.join(res.ids)}")


def markups(res: ResourceSet, offers: np.ndarray) -> np.ndarray:
    """(n,) markup of each offer over the competitive one ($/MWh): ``offer - c`` for sellers, the shading
    ``v - bid`` for buyers (both >= 0 when the participant withholds surplus)."""
    return np.where(res.is_dem, res.price_da - offers, offers - res.price_da)


def day_profit(res: ResourceSet, x: np.ndarray, price: float) -> float:
    """The day-ahead settlement ($): ``sum (lambda - c) x`` over sellers plus ``sum (v - lambda) x`` over buyers."""
    x = np.asarray(x, dtype=float)
    if not math.isfinite(price):
        raise ValueError("no day-ahead price (the fc scheme has none): a strategic day needs pcc or cm")
    return float(np.sum(np.where(res.is_dem, res.price_da - price, price - res.price_da) * x))


def observation(res: ResourceSet, offers: np.ndarray, offered: np.ndarray, x: np.ndarray, price: float,
                cap: float, floor: float = PRICE_FLOOR) -> Observation:
    """What the participant learnt from the day, in the strategy's terms (rows: its resources, one column).

    Buyers are mapped to surplus space (module docstring); the bounds are the public ones."""
    dem = res.is_dem
    cost = np.where(dem, 0.0, res.price_da)
    offer = np.where(dem, res.price_da - offers, offers)
    paid = np.where(dem, res.price_da - price, price)
    col = lambda a: np.asarray(a, dtype=float).reshape(-1, 1)  # noqa: E731
    return Observation(cost=col(cost), cap=np.array([cap]), floor=floor, offer=col(offer), offered=col(offered),
                       sold=col(x), paid=col(paid))


def describe(strategy: Strategy | None) -> dict[str, Any]:
    """The strategy's public description (name, current markup), or the competitive case prices."""
    return {"strategy": "case-prices"} if strategy is None else dict(strategy.describe())
