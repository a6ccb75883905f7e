"""The load aggregator's problem as cvxpy models: the hull SOCP and the KKT forms.

Every model maximises the LA's profit ``revenue - sum c x`` ($) over purchases ``x`` (U, T) in
kW, subject to the offered quantities, the hourly balance ``sum_u x_{u,t} = sum_c p_{c,t}``
(lossless), a fixed-capacity pool of cut parameters and, for the centralized benchmark only, the
network constraints. They differ in how the customers' best response enters:

- **hull** (the relaxation solved at each node of the branch-and-bound): over a group's price
  interval the response is piecewise affine; the model is the convex hull of the union of the
  segment graphs (disjunctive formulation with the perspective of the quadratic revenue): per
  segment ``j`` a weight ``z_j >= 0`` (``sum_j z_j = 1`` per group), a scaled price ``w_j = pi
  z_j`` within ``[l_j z_j, u_j z_j]`` and ``s_j z_j >= w_j^2`` (a rotated second-order cone);
  revenue ``r_j w_j - q_j s_j``. A convex SOCP (Clarabel); its value is an upper bound.
- **kkt** (``miqp``): the customers' KKT conditions with binaries for complementarity (big-M
  below) and the exact revenue ``pi p = alpha p - beta p^2 - mu_hi hi + mu_lo lo`` (exact by
  stationarity and complementarity, concave): a convex MIQP (SCIP).
- **mccormick** (appendix B of the seed): the same KKT constraints, the revenue ``p pi`` replaced
  by ``w`` with the four McCormick inequalities over ``[lo, hi] x [price_min, price_max]``: a MILP
  (HiGHS) whose objective is an upper bound.

Big-M values (from the data): at a KKT point ``mu_hi > 0`` only when ``p = hi`` and then ``mu_hi =
alpha - beta hi - pi <= alpha - beta hi - price_min =: M_hi``; ``mu_lo > 0`` only when ``p = lo``
and then ``mu_lo = pi - alpha + beta lo <= price_max - alpha + beta lo =: M_lo`` (0 if negative).
The binaries ``z_hi``/``z_lo`` switch ``mu_hi <= M_hi z_hi``, ``hi - p <= (hi - lo)(1 - z_hi)``,
``mu_lo <= M_lo z_lo``, ``p - lo <= (hi - lo)(1 - z_lo)``.

The cut pool has ``capacity`` slots per period: slot ``r`` belongs to period ``r // capacity``
and reads ``h_r + G_r . y_{period} <= 0`` with ``y = (p_c, -x_u)``; unused slots are all zero.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from ..solve import INFEASIBLE, INFEASIBLE_OR_UNBOUNDED, OPTIMAL, Attempt, solve
from .la_problem import Outcome, Retail, Round, diagnose_infeasible, finish

__all__ = ["CLARABEL_TIGHT", "Model", "Segments", "segments", "injection_exprs", "common_constraints",
           "build_hull", "build_kkt", "solve_kkt"]

#: Clarabel settings for the hull relaxation and the tie-break QP
CLARABEL_TIGHT = dict(tol_gap_abs=1e-10, tol_gap_rel=1e-11, tol_feas=1e-10, tol_ktratio=1e-9, max_iter=300)


class Model:
    """One cached cvxpy problem and its handles (parameters, variables, constraints, data)."""

    def __init__(self, kind: str, suppliers: tuple[str, ...], capacity: int, network: Any) -> None:
        self.kind, self.suppliers, self.capacity, self.network = kind, suppliers, capacity, network
        self.prob: cp.Problem | None = None
        self.par: dict[str, cp.Parameter] = {}
        self.var: dict[str, Any] = {}
        self.con: dict[str, Any] = {}
        self.aux: dict[str, Any] = {}


@dataclass
class Segments:
    """Groups (one price each) and their response segments for the hull formulation.

    With personalized pricing each pair (customer, hour) is a group; with uniform pricing each
    hour is a group whose one price applies to every customer. The breakpoints of a group are
    its members' kinks ``k1``/``k2`` inside ``[price_min, price_max]``; on segment ``j`` every
    member is in a fixed regime: H (``p = hi``), I (``p = (alpha - pi) / beta``) or L (``p = lo``).
    """

    n_groups: int
    group_of_pair: np.ndarray      # (C*T,) group index of pair i = c*T + t
    seg_group: np.ndarray          # (J,)
    seg_lo: np.ndarray             # (J,) price range of the segment (global bounds)
    seg_hi: np.ndarray
    MH: sp.csr_matrix              # (C*T, J) indicator: pair i in regime H on segment j
    ML: sp.csr_matrix
    MI: sp.csr_matrix
    seg_start: np.ndarray          # (G+1,) segments of group g are seg_start[g]:seg_start[g+1]


def segments(retail: Retail) -> Segments:
    """The groups and response segments of ``retail`` (see :class:`Segments`)."""
    C, T = retail.n_customers, retail.horizon
    pmin, pmax = retail.price_min, retail.price_max
    k1, k2 = retail.k1.ravel(), retail.k2.ravel()
    if retail.pricing == "personalized":
        members = [[i] for i in range(C * T)]
    else:
        members = [[c * T + t for c in range(C)] for t in range(T)]
    group_of_pair = np.zeros(C * T, int)
    sg, slo, shi, rows, cols, regs = [], [], [], [], [], []
    j = 0
    for g, mem in enumerate(members):
        group_of_pair[mem] = g
        inner = [v for i in mem for v in (k1[i], k2[i]) if pmin < v < pmax]
        bps = np.unique(np.array([pmin, pmax] + inner))
        if bps.size == 1:  # price_min == price_max: one degenerate segment
            bps = np.array([pmin, pmax])
        for s_, e_ in zip(bps[:-1], bps[1:]):
            m = 0.5 * (s_ + e_)
            for i in mem:
                rows.append(i)
                cols.append(j)
                regs.append(0 if m <= k1[i] else (2 if m >= k2[i] else 1))
            sg.append(g)
            slo.append(s_)
            shi.append(e_)
            j += 1
    rows, cols, regs = np.array(rows), np.array(cols), np.array(regs)

    def ind(r: int) -> sp.csr_matrix:
        m = regs == r
        return sp.csr_matrix((np.ones(m.sum()), (rows[m], cols[m])), shape=(C * T, j))

    sg_arr = np.array(sg)
    seg_start = np.searchsorted(sg_arr, np.arange(len(members) + 1))
    return Segments(len(members), group_of_pair, sg_arr, np.array(slo), np.array(shi), ind(0), ind(2), ind(1),
                    seg_start)


def injection_exprs(retail: Retail, suppliers: tuple[str, ...], p: Any, x: Any) -> tuple[dict, dict]:
    """``({meter: p injection (T,)}, {meter: q injection (T,)})``: customers draw ``p`` and
    ``tan_phi p``, supply units inject ``x`` (``-x`` drawn) and no reactive power."""
    T = retail.horizon
    P = {c: p[k, :] for k, c in enumerate(retail.customer_ids)}
    Q = {c: retail.tan[k] * p[k, :] for k, c in enumerate(retail.customer_ids)}
    for k, u in enumerate(suppliers):
        P[u] = -x[k, :]
        Q[u] = cp.Constant(np.zeros(T))
    return P, Q


def common_constraints(retail: Retail, m: Model, p: Any, x: Any) -> list:
    """Supply bounds, balance, cut pool and network constraints shared by all formulations."""
    T, U, K = retail.horizon, len(m.suppliers), m.capacity
    C = retail.n_customers
    m.par["price"] = cp.Parameter((U, T), name="offer_price")
    m.par["qty"] = cp.Parameter((U, T), nonneg=True, name="offer_qty")
    m.par["G"] = cp.Parameter((T * K, C + U), name="cut_G")
    m.par["h"] = cp.Parameter(T * K, name="cut_h")
    m.par["loss"] = cp.Parameter(T, name="losses", value=np.zeros(T))
    cons = [x <= m.par["qty"]]
    m.con["bal"] = cp.sum(x, axis=0) == cp.sum(p, axis=0) + m.par["loss"]
    y = cp.hstack([p.T, -x.T])  # (T, C+U) injections per period
    yrep = y[np.repeat(np.arange(T), K), :]
    m.con["cut"] = cp.sum(cp.multiply(m.par["G"], yrep), axis=1) + m.par["h"] <= 0
    cons += [m.con["bal"], m.con["cut"]]
    if m.network is not None:
        P, Q = injection_exprs(retail, m.suppliers, p, x)
        extra = m.network(P, Q)
        cons += list(extra or [])
    return cons


def build_hull(retail: Retail, seg: Segments, m: Model) -> None:
    """The hull relaxation into ``m`` (parameters ``plo``/``pup``: each segment's price range at a node)."""
    C, T, U = retail.n_customers, retail.horizon, len(m.suppliers)
    J = seg.seg_group.size
    lo, hi, al, be = (getattr(retail, k).ravel() for k in ("lo", "hi", "al", "be"))
    MH, ML, MI = seg.MH, seg.ML, seg.MI
    Az = (sp.diags(hi) @ MH + sp.diags(lo) @ ML + sp.diags(al / be) @ MI).tocsr()
    Aw = (-sp.diags(1.0 / be) @ MI).tocsr()
    Pm = (MH + ML + MI).tocsr()
    rl = MH.T @ hi + ML.T @ lo + MI.T @ (al / be)
    rq = MI.T @ (1.0 / be)
    qi = np.flatnonzero(rq > 0)
    Gz = sp.csr_matrix((np.ones(J), (seg.seg_group, np.arange(J))), shape=(seg.n_groups, J))
    z = cp.Variable(J, nonneg=True, name="z")
    w = cp.Variable(J, name="w")
    s = cp.Variable(qi.size, nonneg=True, name="s")
    x = cp.Variable((U, T), nonneg=True, name="x")
    plo = cp.Parameter(J, name="seg_lo")
    pup = cp.Parameter(J, name="seg_hi")
    pflat = Az @ z + Aw @ w
    piflat = Pm @ w
    p = cp.reshape(pflat, (C, T), order="C")
    pi = cp.reshape(piflat, (C, T), order="C")
    cons = [Gz @ z == 1, w >= cp.multiply(plo, z), w <= cp.multiply(pup, z)]
    if qi.size:
        cons.append(cp.SOC(s + z[qi], cp.vstack([2 * w[qi], s - z[qi]]), axis=0))
    m.con["cap"] = cp.sum(pi, axis=1) <= retail.price_sum_cap
    cons.append(m.con["cap"])
    m.par.update(plo=plo, pup=pup)
    cons += common_constraints(retail, m, p, x)
    revenue = rl @ w - (rq[qi] @ s if qi.size else 0)
    m.prob = cp.Problem(cp.Maximize(revenue - cp.sum(cp.multiply(m.par["price"], x))), cons)
    m.var.update(z=z, w=w, s=s, x=x)
    m.aux.update(Az=Az, Aw=Aw, Pm=Pm, rq=rq, qi=qi)


def build_kkt(retail: Retail, m: Model, mccormick: bool) -> None:
    """The KKT form into ``m``: the exact MIQP, or with ``mccormick`` the McCormick MILP."""
    C, T, U = retail.n_customers, retail.horizon, len(m.suppliers)
    lo, hi, al, be = retail.lo, retail.hi, retail.al, retail.be
    pmin, pmax = retail.price_min, retail.price_max
    Mh = np.maximum(0.0, al - be * hi - pmin)
    Ml = np.maximum(0.0, pmax - al + be * lo)
    p = cp.Variable((C, T), name="p")
    pi = cp.Variable((C, T), name="pi")
    mh = cp.Variable((C, T), nonneg=True, name="mu_hi")
    ml = cp.Variable((C, T), nonneg=True, name="mu_lo")
    zh = cp.Variable((C, T), boolean=True, name="z_hi")
    zl = cp.Variable((C, T), boolean=True, name="z_lo")
    x = cp.Variable((U, T), nonneg=True, name="x")
    width = hi - lo
    cons = [p >= lo, p <= hi, pi >= pmin, pi <= pmax,
            al - cp.multiply(be, p) - pi - mh + ml == 0,
            mh <= cp.multiply(Mh, zh), ml <= cp.multiply(Ml, zl),
            hi - p <= cp.multiply(width, 1 - zh), p - lo <= cp.multiply(width, 1 - zl), zh + zl <= 1]
    m.con["cap"] = cp.sum(pi, axis=1) <= retail.price_sum_cap
    cons.append(m.con["cap"])
    if retail.pricing == "uniform" and C > 1:
        cons.append(pi[1:, :] == pi[:-1, :])
    cons += common_constraints(retail, m, p, x)
    cost = cp.sum(cp.multiply(m.par["price"], x))
    if mccormick:
        w = cp.Variable((C, T), name="w")
        cons += [w >= cp.multiply(lo, pi) + p * pmin - lo * pmin,
                 w >= cp.multiply(hi, pi) + p * pmax - hi * pmax,
                 w <= cp.multiply(hi, pi) + p * pmin - hi * pmin,
                 w <= cp.multiply(lo, pi) + p * pmax - lo * pmax]
        m.prob = cp.Problem(cp.Maximize(cp.sum(w) - cost), cons)
        m.var["w"] = w
    else:
        revenue = (cp.sum(cp.multiply(al, p)) - cp.sum(cp.multiply(be, cp.square(p)))
                   - cp.sum(cp.multiply(hi, mh)) + cp.sum(cp.multiply(lo, ml)))
        m.prob = cp.Problem(cp.Maximize(revenue - cost), cons)
    m.var.update(p=p, pi=pi, x=x, mh=mh, ml=ml)


def solve_kkt(agent_id: str, retail: Retail, m: Model, rnd: Round, kind: str, *, gap_tol: float,
              time_limit: float) -> Outcome:
    """Solve a KKT model (``kind`` "miqp": SCIP; "mccormick": HiGHS) and evaluate its point exactly.

    One attempt: a mixed-integer problem has no fallback solver, it fails loudly
    (:class:`agents.base.SolveError`); an infeasible verdict raises the diagnosis
    (:class:`agents.base.InfeasibleSetup`). The bound is the objective plus the solver's gap.
    """
    C = retail.n_customers
    if kind == "mccormick":
        attempt = Attempt("HIGHS", {"mip_rel_gap": 1e-9, "mip_abs_gap": 1e-9})
    else:  # a relative gap below ~1e-7 makes SCIP ask for LP tolerances it cannot set
        attempt = Attempt("SCIP", {"scip_params": {"limits/gap": max(gap_tol, 1e-7), "limits/time": time_limit}})
    no_point = INFEASIBLE + (INFEASIBLE_OR_UNBOUNDED,)  # the problem is bounded by construction
    st = solve(m.prob, [attempt], agent_id, f"relaxed market problem ({kind})", stop_on=no_point).status
    if st in no_point:
        diagnose_infeasible(agent_id, retail, rnd)
    if kind == "miqp" and st != OPTIMAL:
        try:  # SCIP stopped at the requested gap: that is optimal within the gap
            if m.prob.solver_stats.extra_stats["scip_status"] == "gaplimit":
                st = OPTIMAL
        except (KeyError, TypeError):  # pragma: no cover
            pass
    obj = float(m.prob.value)
    stats = m.prob.solver_stats.extra_stats
    bound = obj
    try:
        if kind == "mccormick":
            bound = obj + abs(float(stats.objective_function_value) - float(stats.mip_dual_bound))
        else:
            model = stats["model"]
            bound = obj + abs(float(model.getPrimalbound()) - float(model.getDualbound()))
    except Exception:  # pragma: no cover - solver statistics not available
        pass
    pi = np.asarray(m.var["pi"].value, dtype=float)
    if retail.pricing == "uniform":
        pi = np.repeat(pi.mean(axis=0, keepdims=True), C, axis=0)
    cand = finish(retail, rnd, pi, np.asarray(m.var["x"].value, dtype=float))
    mcc = kind == "mccormick"
    return Outcome(cand, bound, st, 1, "milp_highs" if mcc else "kkt_miqp", objective=obj if mcc else None,
                   w=np.asarray(m.var["w"].value, dtype=float) if mcc else None)
