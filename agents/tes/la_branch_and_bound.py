"""Spatial branch-and-bound over the retail prices, on the hull relaxation, with a certified bound.

Each node restricts every group's price to an interval and solves the hull relaxation
(:func:`agents.tes.la_formulations.build_hull`; a convex SOCP, Clarabel). If the relaxation's
solution lies on the customers' response curves it is feasible, hence optimal at that node;
otherwise the search (best bound first) splits the price interval of the group with the
largest convexification gap at the response breakpoint nearest to the relaxation's price
(leaves on a single segment are exact, so the search is finite). It stops when the best bound
minus the profit of the projected solution (:func:`agents.tes.la_problem.finish`) is at most
``gap_tol`` relative.

Without network constraints every node bound is certified independently of the solver's
tolerances: the Lagrangian dual function (multipliers of the price-sum caps, balances and cuts,
taken from the solver) is evaluated in closed form (:func:`dual_bound`). With network
constraints (the centralized benchmark) the bound is the relaxation's value.

Units: prices in $/kWh, bounds and profits in $.
"""
from __future__ import annotations

import heapq
import math
import time

import numpy as np

from ..base import SolveError
from ..solve import INACCURATE, INFEASIBLE, OPTIMAL, Attempt, solve
from .la_formulations import CLARABEL_TIGHT, Model, Segments
from .la_problem import CUT_TOL, Outcome, Retail, Round, diagnose_infeasible, finish

__all__ = ["RELAXATION_ATTEMPTS", "branch_and_bound", "dual_bound", "segment_bounds", "split_point"]

#: the hull relaxation: tight Clarabel tolerances, then Clarabel's defaults ("optimal_inaccurate" is
#: acceptable: without network constraints the node bound is certified separately)
RELAXATION_ATTEMPTS = (Attempt("CLARABEL", CLARABEL_TIGHT), Attempt("CLARABEL", {}))
RELAXATION_PROBLEM = "relaxed market problem (hull relaxation)"


def segment_bounds(seg: Segments, ga: np.ndarray, gb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each segment's price range within its group's interval ``[ga, gb]``: (lo, up, valid); an
    empty range (not valid) gets ``up = lo - 1`` so that the relaxation forces its weight to 0."""
    lo_ = np.maximum(seg.seg_lo, ga[seg.seg_group])
    up_ = np.minimum(seg.seg_hi, gb[seg.seg_group])
    valid = lo_ <= up_
    return lo_, np.where(valid, up_, lo_ - 1.0), valid


def dual_bound(retail: Retail, seg: Segments, m: Model, rnd: Round, lo_: np.ndarray, up_: np.ndarray,
               valid: np.ndarray) -> tuple[float, dict | None]:
    """Lagrangian dual function at the solver's multipliers: a certified upper bound.

    Relaxing the price-sum caps (lambda >= 0), the balances (nu; with losses L the balance
    ``sum x - sum p - L = 0`` adds the constant ``-nu L``) and the cuts (gamma >= 0),
    the Lagrangian separates into one concave quadratic in the group price per response
    segment, ``A_j pi^2 + B_j pi + C_j`` (maximised in closed form over the segment's
    price range and then over the group's segments) and a box LP per supply unit. Any
    multipliers of the right sign give a valid bound; the solver's give a tight one.
    Returns the bound and the segment coefficients (used to choose the branching group).
    """
    C, T = retail.n_customers, retail.horizon
    lam = np.maximum(0.0, np.asarray(m.con["cap"].dual_value, dtype=float).reshape(-1))
    nu = np.asarray(m.con["bal"].dual_value, dtype=float).reshape(-1)
    gam = np.maximum(0.0, np.asarray(m.con["cut"].dual_value, dtype=float).reshape(-1))
    if not (np.all(np.isfinite(lam)) and np.all(np.isfinite(nu)) and np.all(np.isfinite(gam))):
        return math.inf, None
    K = rnd.n_cuts
    gam = gam[rnd.slot]
    U = len(m.suppliers)
    e = np.zeros((T, C))
    fx = np.zeros((T, U))
    if K:
        np.add.at(e, rnd.per, gam[:, None] * rnd.Gy[:, :C])
        np.add.at(fx, rnd.per, gam[:, None] * rnd.Gy[:, C:])
    # the solver's balance dual may come with either sign convention: take the better bound
    best, info = math.inf, None
    for sgn in (1.0, -1.0):
        nu_s = sgn * nu
        mflat = (nu_s[None, :] + e.T).ravel()
        lflat = np.repeat(lam, T)
        lo, hi, al, be = (getattr(retail, k).ravel() for k in ("lo", "hi", "al", "be"))
        A = -(seg.MI.T @ (1.0 / be))
        B = seg.MH.T @ (hi - lflat) + seg.ML.T @ (lo - lflat) + seg.MI.T @ (al / be - lflat + mflat / be)
        C0 = -(seg.MH.T @ (mflat * hi) + seg.ML.T @ (mflat * lo) + seg.MI.T @ (mflat * al / be))

        def f(v: np.ndarray) -> np.ndarray:
            return (A * v + B) * v + C0

        with np.errstate(divide="ignore", invalid="ignore"):
            vert = np.where(A < 0, -B / (2 * np.where(A < 0, A, -1.0)), lo_)
        vert = np.clip(vert, lo_, np.maximum(lo_, up_))
        val = np.maximum(np.maximum(f(lo_), f(np.maximum(lo_, up_))), f(vert))
        val = np.where(valid, val, -np.inf)
        gmax = np.full(seg.n_groups, -np.inf)
        np.maximum.at(gmax, seg.seg_group, val)
        if np.any(~np.isfinite(gmax)):
            return -math.inf, None
        coef_x = nu_s[None, :] - rnd.price + fx.T
        supply = float(np.sum(rnd.qty * np.maximum(0.0, coef_x)))
        bound = float(gmax.sum()) + supply + float(lam.sum()) * retail.price_sum_cap - float(gam @ rnd.h)
        if rnd.loss is not None:
            bound -= float(nu_s @ rnd.loss)
        if bound < best:
            best, info = bound, dict(A=A, B=B, C0=C0, mflat=mflat, lflat=lflat)
    return best, info


def branch_and_bound(agent_id: str, retail: Retail, seg: Segments, m: Model, rnd: Round, *, gap_tol: float,
                     node_limit: int, time_limit: float) -> Outcome:
    """Best-bound-first search over the groups' price intervals (see the module docstring).

    Status "optimal" within ``gap_tol``; "optimal_inaccurate" when a node's relaxation lies on
    the response curves but its projection misses the gap; "node_limit" when ``node_limit`` or
    ``time_limit`` (s) stops the search within a 1e-4 relative gap. Raises
    :class:`agents.base.SolveError` if it stops further from optimal or with no feasible
    candidate, and the infeasibility diagnosis if no node is feasible.
    """
    C, T = retail.n_customers, retail.horizon
    G = seg.n_groups
    lo, hi, al, be = (getattr(retail, k).ravel() for k in ("lo", "hi", "al", "be"))
    certified_bound = rnd.network is None
    start = time.perf_counter()
    width = np.maximum(hi - lo, 1e-12)

    def run(ga: np.ndarray, gb: np.ndarray) -> tuple[float, dict] | None:
        lo_, up_, valid = segment_bounds(seg, ga, gb)
        m.par["plo"].value, m.par["pup"].value = lo_, up_
        if solve(m.prob, RELAXATION_ATTEMPTS, agent_id, RELAXATION_PROBLEM, stop_on=INFEASIBLE).status in INFEASIBLE:
            return None
        relax = float(m.prob.value)
        ub, info = dual_bound(retail, seg, m, rnd, lo_, up_, valid) if certified_bound else (relax, None)
        if not math.isfinite(ub):
            ub, info = relax, None
        zv, wv, xv = (np.asarray(m.var[k].value, dtype=float) for k in ("z", "w", "x"))
        pv, piv = m.aux["Az"] @ zv + m.aux["Aw"] @ wv, m.aux["Pm"] @ wv
        br = np.clip((al - piv) / be, lo, hi)
        # branching score per group: with multipliers, the Lagrangian value of the relaxation's
        # mixture of segments minus that of the response curve at the group's price (the
        # convexification gap); without, the normalised distance of the loads from the curve
        off = np.abs(pv - br) / width
        score = np.zeros(G)
        np.add.at(score, seg.group_of_pair, off)
        onc = score <= 1e-10
        if info is not None:
            sfull = np.zeros(zv.size)
            sfull[m.aux["qi"]] = np.asarray(m.var["s"].value, dtype=float)
            mix = np.zeros(G)
            np.add.at(mix, seg.seg_group, info["A"] * sfull + info["B"] * wv + info["C0"] * zv)
            curve = np.zeros(G)
            np.add.at(curve, seg.group_of_pair, piv * br - info["lflat"] * piv - info["mflat"] * br)
            score = np.where(onc, 0.0, np.maximum(mix - curve, 0.0) + 1e-12 * score)
        return ub, dict(p=pv, pi=piv, x=xv, relax=relax, score=score, oncurve=bool(onc.all()))

    ga0, gb0 = np.full(G, retail.price_min), np.full(G, retail.price_max)
    root = run(ga0, gb0)
    if root is None:
        diagnose_infeasible(agent_id, retail, rnd)
    heap: list = [(-root[0], 0, ga0, gb0, root[1])]
    nodes, counter = 1, 1
    while heap:
        negub, _, ga, gb, sol = heapq.heappop(heap)
        ub = -negub
        cand = finish(retail, rnd, sol["pi"].reshape(C, T), sol["x"])
        tol = gap_tol * max(1.0, abs(cand.profit))
        feasible = cand.violation <= CUT_TOL
        if feasible and ub - cand.profit <= tol:
            return Outcome(cand, max(ub, cand.profit) if certified_bound else ub, OPTIMAL, nodes, "hull_bb")
        g = int(np.argmax(sol["score"]))
        if sol["oncurve"] or nodes >= node_limit or time.perf_counter() - start > time_limit:
            status = INACCURATE if sol["oncurve"] else "node_limit"
            if not feasible or status == "node_limit" and ub - cand.profit > 1e-4 * max(1.0, abs(cand.profit)):
                raise SolveError(agent_id, "relaxed market problem (hull B&B)", status,
                                 detail=f"bound {ub:.9g}, best candidate {cand.profit:.9g}, "
                                        f"cut violation {cand.violation:.3g}, {nodes} nodes")
            return Outcome(cand, ub, status, nodes, "hull_bb")
        split = split_point(seg, g, ga[g], gb[g], float(sol["pi"][seg.group_of_pair == g][0]))
        for lo_g, hi_g in ((ga[g], split), (split, gb[g])):
            ga2, gb2 = ga.copy(), gb.copy()
            ga2[g], gb2[g] = lo_g, hi_g
            res = run(ga2, gb2)
            nodes += 1
            if res is not None:
                heapq.heappush(heap, (-res[0], counter, ga2, gb2, res[1]))
                counter += 1
    # every leaf is infeasible: the relaxation was feasible but no price schedule is
    diagnose_infeasible(agent_id, retail, rnd)
    raise AssertionError("unreachable")


def split_point(seg: Segments, g: int, a: float, b: float, price: float) -> float:
    """Where to split group g's price interval [a, b]: the response breakpoint nearest to the
    relaxation's price (so that leaves end up on single segments, where the hull is exact),
    else the price itself, else the midpoint."""
    bps = seg.seg_lo[seg.seg_start[g] + 1: seg.seg_start[g + 1]]
    eps = 1e-9 * max(1.0, b - a)
    inside = bps[(bps > a + eps) & (bps < b - eps)]
    if inside.size:
        return float(inside[np.argmin(np.abs(inside - price))])
    if a + eps < price < b - eps:
        return price
    return 0.5 * (a + b)
