"""The tie-break of the load aggregator's purchases: the least-norm cost-minimal purchases.

Units offering the same price (WT and PV at 0 $/kWh; G2 and the main grid when the LMP equals
G2's price) make the purchases for given loads non-unique: the optimum is a face, and which
vertex a solver returns depends on the formulation and the solver's version. The tie-break
takes, among the purchases ``x`` (U, T) in kW that meet the loads, the offers, the cuts (or
the network constraints of the centralized benchmark) and cost no more than the solver's
purchases in any hour (within 1e-11 relative), the one of least Euclidean norm: tied units
share, and the decomposed and centralized runs pick the same point.

The QP is tried with each of :data:`POLISH_ATTEMPTS` through :func:`agents.solve.solve` (every
attempt, failed or not, is in the solve ledger); an attempt fails when the solver does not report
"optimal" or when its point, cleaned (clipped to the offers, rebalanced to the loads), misses the
loads by more than 1e-6 kW, costs more than 1e-9 relative above the solver's purchases in some
hour, or meets the cuts less well (by more than 1e-9). When both fail, the QP is tried again
*held*: relaxed so that the solver's own purchases, cleaned, are a feasible point of it (each cut
relaxed by what they violate it by). A solver meets its cuts only to its tolerance, and the thin set
of cost-minimal purchases that meet them exactly can then be empty: both solvers reported
"infeasible" on some generated days of the competition studies. The solution records which solver
produced the point (``LASolution.tie_break_solver``). When every attempt fails, the tie-break is
skipped, not the market: the solver's own cost-minimal purchases are kept, ``tie_break_solver`` is
:data:`UNPOLISHED`, and a warning names the agent and every failure (the purchases are optimal;
only the split among tied units is then the solver's vertex).
"""
from __future__ import annotations

import logging

import cvxpy as cp
import numpy as np

from ..base import SolveError
from ..solve import Attempt, solve
from .la_formulations import CLARABEL_TIGHT, Model, injection_exprs
from .la_problem import Retail, Round, rebalance

__all__ = ["POLISH_ATTEMPTS", "POLISH_PROBLEM", "UNPOLISHED", "has_ties", "polish"]
log = logging.getLogger(__name__)

#: HiGHS (active set: exact on the thin set of cost-minimal purchases; 0.5 s at most: its QP solver was seen
#: to cycle without end on tied offers of tes_competition5), then Clarabel
POLISH_ATTEMPTS = (Attempt("HIGHS", {"time_limit": 0.5}), Attempt("CLARABEL", CLARABEL_TIGHT))
POLISH_PROBLEM = "tie-break QP (least-norm purchases)"
#: ``LASolution.tie_break_solver`` when every attempt failed and the solver's purchases were kept
UNPOLISHED = "unpolished"


def has_ties(rnd: Round, x: np.ndarray) -> bool:
    """Can purchases be shifted between two units with the same offer price in some hour?"""
    price, qty = rnd.price, rnd.qty
    U = price.shape[0]
    for u in range(U):
        for v in range(U):
            if u != v:
                same = np.abs(price[u] - price[v]) <= 1e-12
                if np.any(same & (x[u] > 1e-9) & (x[v] < qty[v] - 1e-9)):
                    return True
    return False


def polish_model(retail: Retail, suppliers: tuple[str, ...], cache: dict, rnd: Round) -> Model:
    """The QP, cached in ``cache`` under ``("polish", network id)`` (one network model at a time)."""
    net = rnd.network
    key = ("polish", None if net is None else id(net))
    m = cache.get(key)
    if m is not None and m.suppliers == suppliers and m.capacity == rnd.capacity and m.network is net:
        return m
    m = Model("polish", suppliers, rnd.capacity, net)
    C, T, U, K = retail.n_customers, retail.horizon, len(suppliers), rnd.capacity
    p = cp.Parameter((C, T), name="loads")
    x = cp.Variable((U, T), nonneg=True, name="x")
    m.par.update(p=p, load=cp.Parameter(T, name="total_load"), cost=cp.Parameter(T, name="cost_cap"),
                 price=cp.Parameter((U, T), name="offer_price"), qty=cp.Parameter((U, T), nonneg=True),
                 G=cp.Parameter((T * K, U), name="cut_G_units"), h=cp.Parameter(T * K, name="cut_h_loads"))
    yrep = (-x.T)[np.repeat(np.arange(T), K), :]
    cons = [x <= m.par["qty"], cp.sum(x, axis=0) == m.par["load"],
            cp.sum(cp.multiply(m.par["price"], x), axis=0) <= m.par["cost"],
            cp.sum(cp.multiply(m.par["G"], yrep), axis=1) + m.par["h"] <= 0]
    if net is not None:
        P, Q = injection_exprs(retail, suppliers, p, x)
        cons += list(net(P, Q) or [])
    m.prob = cp.Problem(cp.Minimize(cp.sum_squares(x)), cons)
    m.var["x"] = x
    for k in [k for k in cache if k[0] == "polish" and k[1] is not None]:
        del cache[k]
    cache[key] = m
    return m


def polish(agent_id: str, retail: Retail, suppliers: tuple[str, ...], cache: dict, rnd: Round, p: np.ndarray,
           x: np.ndarray) -> tuple[np.ndarray, str]:
    """The least-norm cost-minimal purchases for the loads ``p`` (C, T), and the solver that
    produced them; ``(x, "")`` when no offers tie (see the module docstring)."""
    if not has_ties(rnd, x):
        return x, ""
    failures: list[str] = []
    for held in (False, True):  # the exact QP first; then the QP relaxed to hold the solver's own point
        x2, solver = _polish_once(agent_id, retail, suppliers, cache, rnd, p, x, held, failures)
        if x2 is not None:
            return x2, solver
    log.warning("%s: %s failed (%s); the solver's own cost-minimal purchases are kept", agent_id, POLISH_PROBLEM,
                "; ".join(failures))
    return x, UNPOLISHED


def _polish_once(agent_id: str, retail: Retail, suppliers: tuple[str, ...], cache: dict, rnd: Round,
                 p: np.ndarray, x: np.ndarray, held: bool, failures: list[str]) -> tuple[np.ndarray | None, str]:
    """One pass over :data:`POLISH_ATTEMPTS`: the polished purchases and their solver, or ``(None, "")``
    with the failures appended. ``held``: the reference point is the solver's own purchases cleaned
    (clipped to the offers, rebalanced to the loads) and each cut is relaxed by what they violate it by,
    so that they are a feasible point of the QP; otherwise the cuts and ``x``'s cost, as given."""
    C, T, K = retail.n_customers, retail.horizon, rnd.capacity
    m = polish_model(retail, suppliers, cache, rnd)
    price, qty = rnd.price, rnd.qty
    ref = rebalance(np.clip(x, 0.0, qty), rnd.demand(p), price, qty) if held else x
    cost = (price * ref).sum(axis=0)
    hk = np.zeros(T * K)
    Gk = np.zeros((T * K, len(suppliers)))
    if rnd.n_cuts:
        hk[rnd.slot] = rnd.h + np.einsum("kc,ck->k", rnd.Gy[:, :C], p[:, rnd.per])
        Gk[rnd.slot] = rnd.Gy[:, C:]
        if held:
            hk[rnd.slot] -= np.maximum(rnd.cut_lhs(p, ref), 0.0)  # ref meets every relaxed cut
    m.par["p"].value, m.par["load"].value = p, rnd.demand(p)
    m.par["cost"].value = cost + 1e-11 * np.maximum(1.0, np.abs(cost))
    m.par["price"].value, m.par["qty"].value = price, qty
    m.par["G"].value, m.par["h"].value = Gk, hk
    tag = " (held)" if held else ""
    for attempt in POLISH_ATTEMPTS:
        try:
            solved = solve(m.prob, [attempt], agent_id, POLISH_PROBLEM, accept_inaccurate=False)
        except SolveError as exc:
            failures.append((exc.detail or f"{attempt.solver}: {exc.status}") + tag)
            continue
        x2 = np.clip(np.asarray(m.var["x"].value, dtype=float), 0.0, qty)
        x2 = rebalance(x2, rnd.demand(p), price, qty)
        why = _defect(rnd, p, ref, x2, cost)
        if why is None:
            return x2, solved.solver
        failures.append(f"{solved.solver}{tag}: {why}")
    return None, ""


def _defect(rnd: Round, p: np.ndarray, x: np.ndarray, x2: np.ndarray, cost: np.ndarray) -> str | None:
    """Why the polished purchases ``x2`` cannot replace the solver's ``x`` (None: they can)."""
    short = float(np.max(np.abs(x2.sum(axis=0) - rnd.demand(p))))
    if short > 1e-6:
        return f"its purchases miss the loads by {short:.3g} kW"
    cost2, limit = (rnd.price * x2).sum(axis=0), cost + 1e-9 * np.maximum(1.0, np.abs(cost))
    if np.any(cost2 > limit):
        return f"its purchases cost {float(np.max(cost2 - cost)):.3g} $ more than the optimum in some hour"
    if rnd.n_cuts:
        worse = np.max(rnd.cut_lhs(p, x2)) - max(np.max(rnd.cut_lhs(p, x)), 0.0)
        if worse > 1e-9:
            return f"its purchases violate a cut by {worse:.3g} more than the optimum's"
    return None
