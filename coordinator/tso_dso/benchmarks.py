"""Centralized benchmarks of the ``tso-dso`` protocol (analyst tools: they see everything).

:func:`joint_rt`: the real-time problem of each scenario as one SOCP (TSO and every feeder
together), which the TSO <-> DSO decomposition must match; :func:`extensive_form`: the
scheme's day-ahead problem and every in-sample real-time problem at once (fc: one SOCP;
pcc/cm: one mixed-integer SOCP, solved with SCIP); :func:`equilibrium_check`: is a master
solution a day-ahead market equilibrium; :func:`market_from_case`: the day-ahead market as
the TSO builds it from the offers. Units: MW, $/MWh, $.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import cvxpy as cp
import numpy as np

from agents.solve import check_status, solve_conic
from agents.tso_dso.day_ahead import DAMarket, clear_da_market, equilibrium_price_interval
from agents.tso_dso.dso import build_area_rt
from agents.tso_dso.master import Master
from agents.tso_dso.participants import DEM, GEN, WIND, ResourceSet, locations_from_case, resources_from_case
from agents.tso_dso.realtime import build_transmission_rt
from network.distflow import relaxation_gap
from network.model import TRANSMISSION, Case

from .setup import Roles, area_of_resources

__all__ = ["market_from_case", "joint_rt", "extensive_form", "equilibrium_check"]


def market_from_case(case: Case, wind: Any) -> DAMarket:
    """The day-ahead market the TSO builds from the offers (same order), built directly from the case."""
    roles = Roles.of(case)
    area_of = area_of_resources(case, roles)
    res = resources_from_case(case)
    da_w = np.asarray(wind.in_sample, dtype=float).mean(axis=1)
    ids, kind, price, qty, cap, area = [], [], [], [], [], []
    for r in res:
        ids.append(r.id)
        kind.append(r.kind)
        price.append(r.price_da)
        qty.append(float(da_w[list(wind.farm_ids).index(r.id)]) if r.kind == WIND else r.p_max)
        cap.append(area_of[r.id] > 0 and r.kind in (GEN, DEM))
        area.append(area_of[r.id])
    return DAMarket(tuple(ids), tuple(kind), np.array(price), np.array(qty), np.zeros(len(ids)), np.array(cap),
                    np.array(area, dtype=int))


def _rt_pieces(case: Case, wind_mat: np.ndarray, farm_ids: Sequence[str], x_of: Callable[[list[str]], Any], S: int
               ) -> tuple[list[cp.Constraint], cp.Expression, list[Any], Any]:
    """Constraints and per-scenario cost ``(S,)`` of the joint real-time problem (TSO + every feeder)."""
    roles = Roles.of(case)
    loc = locations_from_case(case)
    voll = float(case.param("voll_rt", case.param("voll", 10_000.0)))
    fidx = {f: i for i, f in enumerate(farm_ids)}
    tres = ResourceSet(resources_from_case(case, grid=TRANSMISSION))
    E = len(roles.dsos)
    p = cp.Variable((E, S), name="p_pcc")
    wT = np.vstack([wind_mat[fidx[k]] for k in tres.wind_ids]) if tres.wind_ids else None
    tm = build_transmission_rt(case.transmission, tres, {k: loc[k][1] for k in tres.ids},
                               [case.feeders[f].pcc_bus for f in roles.dsos.values()], S, x_of(list(tres.ids)), wT, p,
                               voll=voll)
    cons = list(tm.constraints)
    cost = tm.cost
    areas = []
    for e, (d, fid) in enumerate(roles.dsos.items()):
        rs = ResourceSet(resources_from_case(case, grid=fid))
        we = np.vstack([wind_mat[fidx[k]] for k in rs.wind_ids]) if rs.wind_ids else None
        am = build_area_rt(case.feeders[fid], rs, {k: loc[k][1] for k in rs.ids}, S, x_of(list(rs.ids)), we,
                           voll=voll)
        cons += am.constraints + [am.p_head == p[e]]
        cost = cost + am.cost
        areas.append((fid, am))
    return cons, cost, areas, tm


def joint_rt(case: Case, market: DAMarket, x: np.ndarray, wind_mat: np.ndarray, farm_ids: Sequence[str], *,
             solver: str = "CLARABEL") -> dict[str, Any]:
    """The real-time problem of each scenario solved as one SOCP (TSO and every feeder together).

    Returns per-scenario costs ``(S,)`` and the relaxation gap per feeder and scenario.
    """
    wind_mat = np.asarray(wind_mat, dtype=float)
    S = wind_mat.shape[1]
    idx = market.index
    x = np.asarray(x, dtype=float)
    cons, cost, areas, tm = _rt_pieces(case, wind_mat, farm_ids, lambda ids: np.array([x[idx[k]] for k in ids]), S)
    prob = cp.Problem(cp.Minimize(1e-3 * cp.sum(cost)), cons)  # k$ for the conic solver
    t0 = time.perf_counter()
    accurate = solve_conic(prob, "analyst", "joint real-time SOCP", solver=solver)
    gaps = {fid: relaxation_gap(am.bf, floor=1e-6).absolute_by_column for fid, am in areas}
    return {"cost": np.asarray(cost.value, dtype=float).reshape(-1), "relaxation_gap": gaps,
            "flows": np.asarray(tm.dc.flow.value).reshape(-1, S), "time_s": time.perf_counter() - t0,
            "accurate": accurate}


def extensive_form(case: Case, wind: Any, scheme: str, *, alpha_min: float = -1e7, time_limit: float = 600.0,
                   verbose: bool = False) -> dict[str, Any]:
    """The centralized benchmark: the scheme's day-ahead problem and every in-sample real-time problem at once.

    fc: one SOCP (Clarabel). pcc/cm: a mixed-integer SOCP (the master's KKT conditions
    with binaries), solved with SCIP. Returns the objective (a minimisation: ``-SW_DA
    + E[RT cost]``), the day-ahead quantities and, for SCIP, its dual bound.
    """
    market = market_from_case(case, wind)
    wind_mat = np.asarray(wind.in_sample, dtype=float)
    S = wind_mat.shape[1]
    phi = np.full(S, 1.0 / S)
    mst = Master(market, scheme, phi, alpha_min)
    x = mst.x
    idx = market.index
    cons, cost, areas, _ = _rt_pieces(case, wind_mat, wind.farm_ids,
                                      lambda ids: x[np.array([idx[k] for k in ids], dtype=int)], S)
    obj = (market.sign * market.price) @ x + phi @ cost
    t0 = time.perf_counter()
    if scheme == "fc":
        prob = cp.Problem(cp.Minimize(1e-3 * obj), mst.da_constraints + cons)
        solve_conic(prob, "analyst", "fc extensive form", options={"verbose": verbose})
        bound = None
    else:
        prob = cp.Problem(cp.Minimize(obj), mst.da_constraints + cons)
        prob.solve(solver="SCIP", verbose=verbose,
                   scip_params={"limits/time": float(time_limit), "limits/gap": 1e-7, "numerics/feastol": 1e-7})
        bound = None
        stats = getattr(prob.solver_stats, "extra_stats", None)
        try:
            bound = float(stats.getDualbound())  # type: ignore[union-attr]
        except Exception:
            bound = None
    check_status(prob, "analyst", f"{scheme} extensive form")
    value = float(obj.value)
    return {"objective": value, "bound": bound, "x": np.asarray(x.value, dtype=float), "status": prob.status,
            "time_s": time.perf_counter() - t0, "rt_cost": np.asarray(cost.value, dtype=float).reshape(-1),
            "market": market}


def equilibrium_check(market: DAMarket, x: np.ndarray, upper: np.ndarray, price: float, *, tol: float = 1e-5
                      ) -> dict[str, Any]:
    """Is ``(x, price)`` a day-ahead market equilibrium for the bounds ``upper`` (the caps)?

    Re-clears the market LP with the caps fixed and compares: the welfare must be the
    LP's optimum, ``price`` must support ``x`` and the LP's price (the supporting
    prices form an interval), and every quantity must equal the LP's wherever the LP's
    optimal face is a single point (where it is not, ties exist: any point of the
    face is an equilibrium and ``x`` must lie on it).
    """
    lp = clear_da_market(market, np.asarray(upper, dtype=float))
    lo, hi = equilibrium_price_interval(market, x, upper, tol=1e-6)
    welfare_ok = abs(market.cost(x) - lp.cost) <= tol * max(1.0, abs(lp.cost))
    balance_ok = abs(market.sign @ x) <= 1e-6 * max(1.0, np.abs(x).sum())
    bounds_ok = bool(np.all(x >= market.p_min - 1e-6) and np.all(x <= upper + 1e-6))
    price_ok = lo - tol <= price <= hi + tol
    lp_price_ok = lo - tol <= lp.price <= hi + tol
    # where x differs from the LP's solution, the LP's optimal face must contain both (a tie)
    n = market.n
    differ = np.flatnonzero(np.abs(x - lp.x) > 1e-4 * np.maximum(1.0, np.abs(lp.x)))
    lo_q, hi_q = lp.x.copy(), lp.x.copy()
    if differ.size:
        xv = cp.Variable(n)
        obj_par = cp.Parameter(n)
        cons = [market.sign @ xv == 0, xv >= market.p_min, xv <= upper,
                (market.sign * market.price) @ xv <= lp.cost + 1e-7 * max(1.0, abs(lp.cost))]
        pr = cp.Problem(cp.Minimize(obj_par @ xv), cons)
        for i in differ:
            e = np.zeros(n)
            e[i] = 1.0
            for sign in (1.0, -1.0):
                obj_par.value = sign * e
                pr.solve(solver="HIGHS")
                (lo_q if sign > 0 else hi_q)[i] = xv.value[i]
    unique = hi_q - lo_q <= 1e-6
    same_where_unique = bool(np.all(np.abs(x[unique] - lp.x[unique]) <= 1e-4 * np.maximum(1.0, np.abs(lp.x[unique]))))
    on_face = bool(np.all(x >= lo_q - 1e-4) and np.all(x <= hi_q + 1e-4))
    return {"ok": bool(welfare_ok and balance_ok and bounds_ok and price_ok and lp_price_ok and same_where_unique
                       and on_face),
            "welfare_ok": welfare_ok, "balance_ok": balance_ok, "bounds_ok": bounds_ok, "price_ok": price_ok,
            "lp_price_ok": lp_price_ok, "same_where_unique": same_where_unique, "on_face": on_face,
            "price_interval": (lo, hi), "lp_price": lp.price, "lp_x": lp.x, "n_tied": int((~unique).sum()),
            "n_differ": int(differ.size)}
