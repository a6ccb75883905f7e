"""Market-power figures of a ``tso-dso`` market day (the analyst's: computed from the run, never by an agent).

Inputs: the day's scheme result (the market the TSO cleared from the offers, its day-ahead
quantities ``x``, price ``lambda`` and caps), the case's day-ahead prices (the competitive
offers: a seller's marginal cost ``c``, a buyer's value ``v``), the owner of each resource
and the real-time dispatch of the in-sample evaluation. Units: $/MWh, MW, $ per market day.
The day is one period (DESIGN.md's definitions, with T = 1).

- **Lerner** of a seller: ``sum_i (lambda - c_i) x_i / (lambda sum_i x_i)`` over its dispatched
  resources (NaN with no dispatch or ``lambda <= 0``); the day's: the same over every seller.
- **HHI** of day-ahead supply: ``sum_j (100 q_j / sum q)^2`` over the supplying participants.
- **RSI** of a supplier: ``(sum_j u_j - u_i) / D`` with ``u`` the day-ahead upper bounds of the
  producers (offered quantity, or the cap of a capped one) and ``D`` the cleared demand; pivotal
  when ``< 1`` (no outside option: tso-dso has no main grid).
- **Markup**: the quantity-weighted mean of ``offer - c`` (sellers) or ``v - bid`` (buyers).
- **Welfare at true costs**: the protocol's expected welfare is measured at the *offered* prices;
  at the competitive prices it is ``E[SW] + sum_i sigma_i m_i E[y_i]`` with ``m_i = offer_i -
  price_i`` (case), ``sigma_i`` +1 producer / -1 demand and ``y_i`` the real-time quantity (the
  day-ahead price is the reference of the real-time cost: the resource's total cost is
  ``sigma_i pi_i y_i`` plus its premiums). Welfare loss = competitive run's minus this run's.
- **Exploitability** of a strategic participant (deviation model: the day-ahead clearing LP
  alone, with the day's caps fixed, not the whole Benders loop): its day-ahead profit with each
  markup of a grid (the others' offers as played) minus its profit with its own offers, both
  in that model; the best over the grid and its own markup (so >= 0).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from agents.tso_dso.day_ahead import DAMarket, clear_da_market

__all__ = ["true_prices", "day_figures", "exploitability", "true_welfare_correction"]


def true_prices(market: DAMarket, case_price: Mapping[str, float]) -> np.ndarray:
    """(n,) the competitive prices (case's ``price_da``) in the market's order."""
    return np.array([float(case_price[k]) for k in market.ids])


def true_welfare_correction(market: DAMarket, c: np.ndarray, rt_resources: pd.DataFrame) -> float:
    """``sum_i sigma_i (pi_i - c_i) E[y_i]`` ($): add to the protocol's expected welfare to get it at true costs."""
    m = market.price - c
    if not np.any(np.abs(m) > 0):
        return 0.0
    y = rt_resources.groupby("resource")["p_mw"].mean()
    ey = np.array([float(y.get(k, 0.0)) for k in market.ids])
    return float(np.sum(market.sign * m * ey))


def _profit(market: DAMarket, c: np.ndarray, idx: np.ndarray, x: np.ndarray, price: float) -> float:
    sign = market.sign[idx]
    return float(np.sum(sign * (price - c[idx]) * x[idx]))


def exploitability(market: DAMarket, c: np.ndarray, upper: np.ndarray, idx: np.ndarray, grid: Sequence[float],
                   floor: float = 0.0, cap: float = math.inf) -> dict[str, float]:
    """The best unilateral deviation of the owner of resources ``idx`` on the day-ahead clearing (caps fixed).

    Each candidate offers ``c + g`` (sellers) or ``v - g`` (buyers) on all its resources, the others as played.
    Returns ``exploitability`` ($), ``best_markup`` ($/MWh), ``profit_model`` (its profit with its own offers
    in that model, $)."""
    base = clear_da_market(market, upper)
    own = _profit(market, c, idx, base.x, base.price)
    best, best_g = own, math.nan
    sell = market.sign[idx] > 0
    for g in grid:
        p = market.price.copy()
        p[idx] = np.clip(np.where(sell, c[idx] + g, c[idx] - g), floor, cap)
        dev = DAMarket(market.ids, market.kind, p, market.qty, market.p_min, market.capped, market.area)
        r = clear_da_market(dev, upper)
        v = _profit(market, c, idx, r.x, r.price)
        if v > best + 1e-9:
            best, best_g = v, float(g)
    return {"exploitability": best - own, "best_markup": best_g, "profit_model": own}


def day_figures(market: DAMarket, x: np.ndarray, price: float, caps: np.ndarray, case_price: Mapping[str, float],
                owner: Mapping[str, str], welfare_offered: float, rt_resources: pd.DataFrame, *,
                grids: Mapping[str, Sequence[float]] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The day's figures and one row per participant (see the module docstring).

    ``grids``: strategic participant -> the markups of its exploitability search (none: not computed)."""
    c = true_prices(market, case_price)
    x = np.asarray(x, dtype=float)
    sell = market.sign > 0
    upper = market.bounds(np.asarray(caps, dtype=float))
    owners = sorted(set(owner[k] for k in market.ids))
    of = np.array([owner[k] for k in market.ids])
    supply = {o: float(x[(of == o) & sell].sum()) for o in owners}
    total = sum(supply.values())
    demand = float(x[~sell].sum())
    cap_all = float(upper[sell].sum())
    disp = sell & (x > 1e-6)
    day = {"da_price": float(price),
           "lerner": float(np.sum((price - c[disp]) * x[disp]) / (price * x[disp].sum()))
           if disp.any() and price > 0 else math.nan,
           "hhi": float(sum((100 * q / total) ** 2 for q in supply.values())) if total > 0 else math.nan,
           "demand_mw": demand, "supply_mw": total,
           "welfare": float(welfare_offered + true_welfare_correction(market, c, rt_resources)),
           "welfare_offered": float(welfare_offered),
           "da_welfare": float(-np.sum(market.sign * c * x)),
           "caps_gen_mw": float(np.sum(upper[market.capped & sell])),
           "caps_dem_mw": float(np.sum(upper[market.capped & ~sell])),
           "capped_pmax_gen_mw": float(np.sum(market.qty[market.capped & sell])),
           "capped_pmax_dem_mw": float(np.sum(market.qty[market.capped & ~sell]))}
    rows = []
    for o in owners:
        idx = np.flatnonzero(of == o)
        s = market.sign[idx]
        q = x[idx]
        mk = s * (market.price[idx] - c[idx])
        w = q if q.sum() > 1e-9 else np.ones(len(idx))
        d = idx[(market.sign[idx] > 0) & (q > 1e-6)]
        u_i = float(upper[idx][s > 0].sum())
        rsi = (cap_all - u_i) / demand if demand > 0 and (s > 0).any() else math.nan
        row = {"agent": o, "side": "buyer" if (s < 0).all() else "seller",
               "markup": float(np.sum(mk * w) / w.sum()),
               "profit": _profit(market, c, idx, x, price),
               "quantity_mw": float(q.sum()),
               "lerner": float(np.sum((price - c[d]) * x[d]) / (price * x[d].sum())) if d.size and price > 0
               else math.nan,
               "share": supply[o] / total if total > 0 and (s > 0).any() else math.nan,
               "rsi": rsi, "pivotal": bool(rsi < 1) if math.isfinite(rsi) else False}
        if grids and o in grids:
            row |= exploitability(market, c, upper, idx, grids[o])
        rows.append(row)
    return day, rows
