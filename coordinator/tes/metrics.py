"""Market-power metrics of a ``tes`` day, computed by the analyst (never by an agent).

Definitions (``docs/DESIGN.md`` § Mesa and strategic studies), per hour t, aggregated per day
weighted by energy. Units: kW (= kWh per hourly slot), $/kWh, $.

- **Lerner** of agent i: ``sum_{u of i, t} x_ut (p_ut - c_u) / p_ut / sum x_ut`` on its dispatched
  energy, p the price paid (pay-as-bid: its offer), c the marginal cost (a term with p <= 0 counts 0);
- **HHI** per hour: ``sum_i (100 x_it / sum_j x_jt)^2`` over the suppliers of the load aggregator,
  the main grid included; per day weighted by the hour's energy;
- **RSI** of agent i per hour: ``(sum_j cap_jt - cap_it) / demand_t``, supply including the outside
  option (the main grid up to the transformer's import limit); pivotal when RSI < 1;
- **markup** of agent i: its offered prices minus its competitive offers ``clip(c, floor, cap_t)``,
  weighted by the offered quantity ($/kWh);
- **retail margin** of the load aggregator: mean retail price paid by its customers minus its mean
  purchase cost ($/kWh);
- **welfare** ``sum customers' utility - true production cost`` (DER units at marginal cost, the main
  grid at LMP) ($); its loss: the competitive benchmark's (every DER offering at marginal cost on the
  same day) minus the day's; the customers' surplus change likewise (day minus competitive);
- **exploitability** of agent i: ``max_m profit_i(m) - profit_i(actual)`` with the others' offers
  fixed and agent i offering ``clip(c + m, floor, cap)`` for each markup m of a grid (the actual offer
  is among the candidates, so it is >= 0); a lower bound of the gain over all offers.

The re-solves (competitive benchmark, exploitability) are the load aggregator's problem solved by the
analyst on its own copy of the load aggregator, without the network limits (the unconstrained market;
the network is left out for speed, and the day's values are re-solved on the same model so that the
comparisons are like for like). With ``network`` (a study's ``exploitability_network = true``) they keep
the operator's LinDist3Flow limits inside (the centralized benchmark's model, which the decomposed market
converges to): slower (seconds per re-solve), but the game the sellers play. Where the limits bind the two
differ: on ``tes_feeder`` the limits reduce what the load aggregator can take from the main grid, so a
high markup loses fewer sales than the unconstrained market says (generated day 12: profit at a markup of 0.14 $/kWh 180 $
with the limits, 124 $ without; the best markup 0.08 either way but 0.08-0.14 within 8 % with the limits).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

Offers = Mapping[str, tuple[np.ndarray, np.ndarray]]
Solve = Callable[[Offers], Mapping[str, np.ndarray]]  # offers -> purchases per unit (kW per hour)

#: markups ($/kWh) of the analyst's exploitability grid
EXPLOIT_GRID = (0.0, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1, 0.12, 0.16)


def _a(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=float)


def lerner(purchases: Mapping[str, np.ndarray], paid: Mapping[str, np.ndarray], cost: Mapping[str, float],
           owner: Mapping[str, str], agents: list[str]) -> dict[str, float]:
    """Energy-weighted Lerner index of each agent's dispatched energy (NaN if it sold nothing)."""
    out = {}
    for i in agents:
        num = den = 0.0
        for u, o in owner.items():
            if o != i or u not in purchases:
                continue
            x, p = _a(purchases[u]), _a(paid[u])
            with np.errstate(divide="ignore", invalid="ignore"):
                ler = np.where(p > 1e-12, (p - cost[u]) / p, 0.0)
            num += float(x @ ler)
            den += float(x.sum())
        out[i] = num / den if den > 1e-9 else float("nan")
    return out


def by_owner(per_unit: Mapping[str, np.ndarray], owner: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Sum of per-unit hourly arrays per owner."""
    out: dict[str, np.ndarray] = {}
    for u, v in per_unit.items():
        out[owner[u]] = out.get(owner[u], 0.0) + _a(v)
    return out


def hhi(purchases: Mapping[str, np.ndarray], owner: Mapping[str, str]) -> np.ndarray:
    """(T,) HHI of the supply per hour (0..10000); NaN in an hour with no supply."""
    q = np.stack(list(by_owner(purchases, owner).values()))
    tot = q.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(tot > 1e-9, ((100 * q / tot) ** 2).sum(axis=0), np.nan)


def energy_weighted(values: np.ndarray, weights: np.ndarray) -> float:
    v, w = _a(values), _a(weights)
    ok = np.isfinite(v) & (w > 0)
    return float(v[ok] @ w[ok] / w[ok].sum()) if ok.any() else float("nan")


def rsi(capacity: Mapping[str, np.ndarray], demand: np.ndarray) -> dict[str, np.ndarray]:
    """(T,) residual supply index per supplier; capacity per owner per hour, the outside option included."""
    total = sum(_a(c) for c in capacity.values())
    d = np.maximum(_a(demand), 1e-9)
    return {i: (total - _a(c)) / d for i, c in capacity.items()}


def markup(offers: Offers, cost: Mapping[str, float], cap: np.ndarray, floor: float, owner: Mapping[str, str],
           agents: list[str]) -> dict[str, float]:
    """Offered-quantity-weighted mean of (offer price - competitive offer) per agent ($/kWh)."""
    out = {}
    for i in agents:
        num = den = 0.0
        for u, (p, q) in offers.items():
            if owner.get(u) != i:
                continue
            comp = np.clip(cost[u], floor, _a(cap))
            w = np.minimum(_a(q), 1e12)
            num += float(w @ (_a(p) - comp))
            den += float(w.sum())
        out[i] = num / den if den > 1e-9 else float("nan")
    return out


def competitive_offers(offers: Offers, cost: Mapping[str, float], cap: np.ndarray, floor: float,
                       agents_units: set[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The offers with every unit of ``agents_units`` at its competitive price ``clip(c, floor, cap)``."""
    return {u: ((np.clip(np.full_like(_a(p), cost[u]), floor, _a(cap)), _a(q)) if u in agents_units else (p, q))
            for u, (p, q) in offers.items()}


def profit_of(agent: str, offers: Offers, purchases: Mapping[str, np.ndarray], cost: Mapping[str, float],
              owner: Mapping[str, str]) -> float:
    """Agent's profit ($) when paid its offer prices for the purchases."""
    return float(sum((_a(offers[u][0]) - cost[u]) @ _a(purchases.get(u, 0 * _a(offers[u][0])))
                     for u in offers if owner.get(u) == agent))


def exploitability(agent: str, offers: Offers, solve: Solve, cost: Mapping[str, float], cap: np.ndarray,
                   floor: float, owner: Mapping[str, str], grid: tuple[float, ...] = EXPLOIT_GRID,
                   actual: Mapping[str, np.ndarray] | None = None) -> dict[str, float]:
    """Best unilateral markup deviation of ``agent`` (others fixed): {"gain", "best_markup", "profit",
    "unsolved"}. ``best_markup`` is the grid markup of the best offer: the actual offer's own markup when
    no deviation gains and the actual offer is ``clip(c + m, floor, cap)`` for an m of the grid (NaN when
    no deviation gains and the actual offer is off the grid). A deviation whose re-solve fails (:class:`agents.base.SolveError`, e.g. the tie-break QP
    of tied offers) is left out and counted in ``unsolved`` (the gain is then over the others)."""
    from agents.base import SolveError

    base = solve(offers) if actual is None else actual
    p0 = profit_of(agent, offers, base, cost, owner)
    best, best_m, unsolved = p0, float("nan"), 0
    actual_m = float("nan")  # the grid markup that gives the actual offer, if one does
    seen: set[bytes] = set()
    for m in grid:
        dev = {u: ((np.clip(cost[u] + m, floor, _a(cap)), _a(q)) if owner.get(u) == agent else (p, q))
               for u, (p, q) in offers.items()}
        key = b"".join(dev[u][0].tobytes() for u in sorted(offers) if owner.get(u) == agent)
        if all(np.array_equal(dev[u][0], _a(offers[u][0])) for u in offers if owner.get(u) == agent):
            if np.isnan(actual_m):  # the actual offer (profit p0): not re-solved
                actual_m = float(m)
            continue
        if key in seen:
            continue  # a deviation already solved (markups clipped to the cap)
        seen.add(key)
        try:
            pm = profit_of(agent, dev, solve(dev), cost, owner)
        except SolveError:
            unsolved += 1
            continue
        if pm > best + 1e-9:
            best, best_m = pm, float(m)
    if np.isnan(best_m):  # no deviation gains: the best markup is the actual one when it is on the grid
        best_m = actual_m
    return {"gain": best - p0, "best_markup": best_m, "profit": p0, "unsolved": unsolved}


@dataclass
class Welfare:
    """Welfare ($) and its parts of one schedule."""

    welfare: float
    customer_surplus: float
    la_profit: float
    true_cost: float


def welfare(sol: Any, cost: Mapping[str, float], lmp: np.ndarray, mg_unit: str) -> Welfare:
    """Customers' utility minus true production cost of an LA solution (``LASolution``)."""
    cs = float(sum(v.sum() for v in sol.surplus.values()))
    rev = sol.total_revenue()
    true = sum(cost[u] * float(_a(x).sum()) for u, x in sol.purchases.items() if u != mg_unit)
    true += float(_a(lmp) @ _a(sol.purchases.get(mg_unit, np.zeros_like(_a(lmp)))))
    paid = sol.total_cost()
    return Welfare(welfare=cs + rev - true, customer_surplus=cs, la_profit=rev - paid, true_cost=true)


def retail_margin(sol: Any) -> float:
    """Mean retail price minus mean purchase cost of the load aggregator ($/kWh)."""
    sold = float(sum(_a(v).sum() for v in sol.loads.values()))
    bought = float(sum(_a(v).sum() for v in sol.purchases.values()))
    if sold <= 1e-9 or bought <= 1e-9:
        return float("nan")
    return sol.total_revenue() / sold - sol.total_cost() / bought


def tes_day_metrics(case: Any, config: Any, res: Any, *, exploit: bool = True,
                    grid: tuple[float, ...] = EXPLOIT_GRID, market: Any = None, network: Any = None
                    ) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """(the day's row, one row per DER manager) of a ``tes`` :class:`DayResult` on ``case`` (the day's).

    ``market``: the analyst's load aggregator for the day's case (:meth:`Analyst.market`, its
    problems reused across days); default: a new one. The day's own schedule in the re-solve model is
    ``res.unconstrained`` when the protocol computed it (the same problem: these offers, no cuts).
    The row has the analyst's times: ``metrics_resolve_s`` (the competitive re-solve and the day's
    schedule) and ``exploitability_s``. ``network``: the operator's limits as constraints
    (:func:`coordinator.tes.analysis.network_constraints`) kept in every re-solve; default: left out.
    """
    import time

    from .setup import Roles, _param, make_agents

    roles = Roles.of(case)
    (mg_unit,) = case.units_of(roles.main_grid)
    owner = {u.id: d for d in roles.der_managers for u in case.units_of(d)}
    owner[mg_unit.id] = roles.main_grid
    cost = {u: (0.0 if np.isnan(cu) else float(cu))
            for u, cu in ((x.id, x.cost) for d in roles.der_managers for x in case.units_of(d))}
    lmp = case.profile(mg_unit.price_profile)
    cap = np.maximum(_param(case, "der_price_cap_floor"), lmp)
    floor = _param(case, "der_price_min")
    la = market if market is not None else make_agents(case, config)["load_aggregator"]

    def solve_full(o: Offers, cuts: tuple = ()) -> Any:
        return la.solve(o, cuts=cuts, network=network)

    der_units = {u for u, o in owner.items() if o in roles.der_managers}
    offers = res.offers
    t0 = time.perf_counter()
    actual = (res.unconstrained if res.unconstrained is not None and network is None
              else solve_full(offers, cuts=()))
    comp = solve_full(competitive_offers(offers, cost, cap, floor, der_units), cuts=())
    t_resolve, t_exploit = time.perf_counter() - t0, 0.0
    w_a, w_c = welfare(actual, cost, lmp, mg_unit.id), welfare(comp, cost, lmp, mg_unit.id)
    sol = res.solution
    paid = {u: offers[u][0] for u in sol.purchases}
    ler = lerner(sol.purchases, paid, cost, owner, roles.der_managers)
    h = hhi(sol.purchases, owner)
    demand = np.sum([np.asarray(v, float) for v in sol.loads.values()], axis=0)
    (feeder,) = case.feeders.values()
    mg_cap = float(config.transformer_kw if config.transformer_kw is not None else feeder.import_max)
    capacity = {d: sum(np.minimum(np.asarray(offers[u][1], float), 1e12) for u in owner if owner[u] == d)
                for d in roles.der_managers}
    capacity[roles.main_grid] = np.full(len(demand), mg_cap)
    r = rsi(capacity, demand)
    mk = markup(offers, cost, cap, floor, owner, roles.der_managers)
    energy = {d: float(sum(np.sum(sol.purchases[u]) for u in owner if owner[u] == d)) for d in roles.der_managers}
    rows = []
    for d in roles.der_managers:
        row = {"day": res.day, "agent": d, "lerner": ler[d], "markup": mk[d], "energy_kwh": energy[d],
               "profit": profit_of(d, offers, sol.purchases, cost, owner), "rsi_min": float(np.min(r[d])),
               "pivotal_hours": int(np.sum(r[d] < 1))}
        if exploit:
            te = time.perf_counter()
            e = exploitability(d, offers, lambda o: solve_full(o, cuts=()).purchases, cost, cap, floor, owner, grid,
                               actual=actual.purchases)
            t_exploit += time.perf_counter() - te
            row |= {"exploitability": e["gain"], "best_markup": e["best_markup"], "exploit_unsolved": e["unsolved"]}
        rows.append(row)
    tot = sum(energy.values())
    day = {"day": res.day, "hhi": energy_weighted(h, demand),
           "lerner": float(sum(ler[d] * energy[d] for d in ler if energy[d] > 0) / tot) if tot > 0 else float("nan"),
           "pivotal_hours": int(sum(np.sum(r[d] < 1) for d in roles.der_managers)),
           "retail_margin": retail_margin(sol), "welfare": w_a.welfare, "welfare_competitive": w_c.welfare,
           "welfare_loss": w_c.welfare - w_a.welfare,
           "customer_surplus_change": w_a.customer_surplus - w_c.customer_surplus,
           "exploitability_max": max((x.get("exploitability", float("nan")) for x in rows), default=float("nan")),
           "metrics_resolve_s": t_resolve, "exploitability_s": t_exploit}
    return day, rows
