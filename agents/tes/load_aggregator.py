"""Load aggregator (LA) of the ``tes`` protocol: personalized retail pricing as a bilevel problem.

The LA buys energy from supply units (DER units at their offer prices, the main grid ``MG`` at
LMP) and resells it to its customers at hourly retail prices ``pi_{c,t}`` in
``[price_min, price_max]`` with ``sum_t pi_{c,t} <= price_sum_cap`` for every customer. Each
customer answers with its best response (decision 1 of ``docs/tes_reference.md``)::

    p_{c,t}(pi) = argmax_{lo <= p <= hi}  alpha_{c,t} p - beta_c p^2 / 2 - pi p
                = clip((alpha_{c,t} - pi) / beta_c, lo_{c,t}, hi_{c,t}),
    lo = band_min * p0,  hi = band_max * p0.

The LA maximises its profit ``sum pi p - sum c x`` subject to the balance ``sum_u x_{u,t} =
sum_c p_{c,t}`` (lossless), ``0 <= x <= offered quantity`` and every feasibility cut received
(decision 2). The problem is solved to certified global optimality.

Exact method (default, ``method="hull_bb"``)
--------------------------------------------
Prices are grouped: with personalized pricing each pair (customer, hour) is a group with its own
price; with uniform pricing each hour is a group whose one price applies to every customer. Over
a group's price interval the response is a piecewise-affine curve: the breakpoints are the
members' kinks ``k1 = alpha - beta hi`` (below it the customer sits at ``hi``) and ``k2 = alpha -
beta lo`` (above it at ``lo``). On a segment ``j`` between breakpoints every member is in a fixed
regime (H: ``p = hi``, I: ``p = (alpha - pi) / beta``, L: ``p = lo``), so its load is affine in the
price and the group's revenue ``pi * sum_c p_c`` is a concave quadratic in the price.

The relaxation takes the convex hull of the union of these segment graphs (disjunctive
formulation with the perspective of the quadratic): per segment a weight ``z_j >= 0`` (``sum_j z_j
= 1`` per group), a scaled price ``w_j = pi z_j`` with ``l_j z_j <= w_j <= u_j z_j`` and
``s_j z_j >= w_j^2`` (a rotated second-order cone), revenue ``r_j w_j - q_j s_j``. It is a convex
SOCP (solved by Clarabel) and its value is an upper bound. If its solution lies on the customers'
response curves it is feasible, hence globally optimal; otherwise a spatial branch-and-bound
(best bound first) splits the price interval of the group with the largest convexification gap
at the response breakpoint nearest to the relaxation's price (leaves on a single segment are
exact, so the search is finite). It stops when the best bound minus the profit of the projected
solution (prices clipped and within the cap, loads = exact best responses, purchases rebalanced)
is at most ``gap_tol`` (1e-9) relative. Without network constraints every node bound is
certified independently of the solver's tolerances: the Lagrangian dual function (multipliers of
the price-sum caps, balances and cuts, taken from the solver) is evaluated in closed form, since
it separates into one concave quadratic in the price per response segment and a box LP per unit.

Measured on the 9-customer, 24-hour ``tes_feeder`` case with marginal-cost offers
(``bench/bench_load_aggregator.py``): personalized pricing, the root relaxation is exact (1 node,
~25-50 ms per re-solve, ~0.35 s for the first solve which builds and compiles the problem);
uniform pricing, 5-7 nodes, ~0.15-0.3 s; a Benders day of the ``tes`` protocol (3 LA solves)
costs ~0.3 s (personalized) / ~0.9 s (uniform) of LA time. Random instances with cuts take 1-21
nodes (up to ~1 s).

Alternative exact method (``method="kkt_miqp"``): the KKT conditions of each customer with
binaries for complementarity (big-M below), revenue ``pi p = alpha p - beta p^2 - mu_hi hi +
mu_lo lo`` (exact by stationarity and complementarity, concave), a convex MIQP solved by SCIP
through cvxpy. It is kept for cross-checks: ~4 s (personalized) and ~30 s (uniform) on the feeder
case, with SCIP's tolerances (feasibility 1e-6), so its profit is accurate to ~1e-7 only.

Big-M values (from the data): at a KKT point ``mu_hi > 0`` only when ``p = hi`` and then ``mu_hi =
alpha - beta hi - pi <= alpha - beta hi - price_min =: M_hi``; ``mu_lo > 0`` only when ``p = lo``
and then ``mu_lo = pi - alpha + beta lo <= price_max - alpha + beta lo =: M_lo`` (0 if negative).
The binaries ``z_hi``/``z_lo`` switch ``mu_hi <= M_hi z_hi``, ``hi - p <= (hi - lo)(1 - z_hi)``,
``mu_lo <= M_lo z_lo``, ``p - lo <= (hi - lo)(1 - z_lo)``.

McCormick (``relaxation="mccormick"``, appendix B of the seed): the revenue ``p pi`` is replaced
by ``w`` with the four McCormick inequalities over ``[lo, hi] x [price_min, price_max]``; the
customers' response is still imposed exactly (KKT with binaries), so the problem is a MILP
(HiGHS, ~0.5 s on the feeder case) whose objective is an upper bound; the solution reports ``w``
and ``w - p pi``.

Purchases from units offering the same price are not unique (e.g. WT and PV at 0). Whenever
such a tie exists the purchases are made deterministic: among the cost-minimal purchases for the
optimal loads (same cuts or network constraints) the one of least Euclidean norm is taken (a
small QP: HiGHS, then Clarabel if HiGHS fails or its point does not check out; the solution's
``tie_break_solver`` names the solver, and if every solver fails a ``SolveError`` says so), so
tied units share, and the decomposed and centralized runs agree.

Cuts
----
``(period, coefficients, constant)`` means ``constant + sum_k coefficients[k] y_k <= 0`` in that
period, with ``y`` the LA's injection decisions: ``p_{c,t}`` for customer ``c`` (kW, consumption
positive), ``q_{c,t} = tan_phi_c p_{c,t}`` for ``"<c>#q"`` (kVAr) and ``-x_{u,t}`` for a supply
unit ``u`` (generation is a negative injection). Cuts live in a fixed-size pool of cvxpy
parameters that is doubled (problem rebuilt) only when full.

The problems are built once per (supplier set, pool capacity, network callable) and cached in
attributes named ``_cache...`` (dropped from snapshots, rebuilt lazily).
"""
from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from ..base import Agent, InfeasibleSetup, SolveError
from ..solve import INACCURATE, INFEASIBLE, INFEASIBLE_OR_UNBOUNDED, OPTIMAL, Attempt, solve

CUSTOMER_KINDS = ("RL", "IL", "CL", "AL")
PRICINGS = ("personalized", "uniform")
RELAXATIONS = ("exact", "mccormick")
METHODS = ("hull_bb", "kkt_miqp")
Q_SUFFIX = "#q"

CutLike = tuple  # (period: int, coefficients: Mapping[str, float], constant: float)
NetworkFn = Callable[[dict, dict], list]

_CLARABEL_TIGHT = dict(tol_gap_abs=1e-10, tol_gap_rel=1e-11, tol_feas=1e-10, tol_ktratio=1e-9,
                       max_iter=300)
#: the hull relaxation: tight Clarabel tolerances, then Clarabel's defaults ("optimal_inaccurate" is
#: acceptable: without network constraints the node bound is certified separately)
RELAXATION_ATTEMPTS = (Attempt("CLARABEL", _CLARABEL_TIGHT), Attempt("CLARABEL", {}))
#: the tie-break QP: HiGHS (active set: exact on the thin set of cost-minimal purchases), then Clarabel
POLISH_ATTEMPTS = (Attempt("HIGHS", {}), Attempt("CLARABEL", _CLARABEL_TIGHT))
POLISH_PROBLEM = "tie-break QP (least-norm purchases)"


# --------------------------------------------------------------------------- customers


def _ro(a: Any, n: int | None = None, name: str = "") -> np.ndarray:
    arr = np.array(a, dtype=float).reshape(-1)
    if n is not None and arr.size == 1:
        arr = np.full(n, float(arr[0]))
    if n is not None and arr.size != n:
        raise ValueError(f"{name} must have {n} values, got {arr.size}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Customer:
    """A price-responsive customer with quadratic utility ``alpha_t p - beta p^2 / 2``.

    ``p0`` is the baseline (kW, three-phase total), the load stays within ``[band_min p0,
    band_max p0]``; ``tan_phi`` fixes the reactive draw ``q = tan_phi p``. The LA knows the
    customer's meter id (``id``) but not where it is connected.
    """

    id: str
    kind: str
    p0: np.ndarray
    alpha: np.ndarray
    beta: float
    band_min: float
    band_max: float
    tan_phi: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", str(self.id))
        p0 = _ro(self.p0, name=f"customer {self.id}: p0")
        object.__setattr__(self, "p0", p0)
        object.__setattr__(self, "alpha", _ro(self.alpha, p0.size, f"customer {self.id}: alpha"))
        for name in ("beta", "band_min", "band_max", "tan_phi"):
            v = float(getattr(self, name))
            if not math.isfinite(v):
                raise ValueError(f"customer {self.id}: {name} must be finite, got {v}")
            object.__setattr__(self, name, v)
        if not (np.all(np.isfinite(self.p0)) and np.all(np.isfinite(self.alpha))):
            raise ValueError(f"customer {self.id}: p0 and alpha must be finite")
        if np.any(self.p0 < 0):
            raise ValueError(f"customer {self.id}: the baseline p0 must be non-negative")
        if self.beta <= 0:
            raise ValueError(f"customer {self.id}: beta must be positive, got {self.beta}")
        if not 0 <= self.band_min <= self.band_max:
            raise ValueError(f"customer {self.id}: need 0 <= band_min <= band_max, got "
                             f"{self.band_min}, {self.band_max}")
        if Q_SUFFIX in self.id:
            raise ValueError(f"customer id {self.id!r} may not contain {Q_SUFFIX!r}")

    @property
    def horizon(self) -> int:
        return int(self.p0.size)

    @property
    def lo(self) -> np.ndarray:
        return self.band_min * self.p0

    @property
    def hi(self) -> np.ndarray:
        return self.band_max * self.p0

    def best_response(self, price: np.ndarray | float) -> np.ndarray:
        """The customer's load at retail price ``price`` ($/kWh), per hour."""
        return np.clip((self.alpha - np.asarray(price, dtype=float)) / self.beta, self.lo, self.hi)

    def utility(self, p: np.ndarray) -> np.ndarray:
        """Hourly utility ``alpha p - beta p^2 / 2`` ($)."""
        p = np.asarray(p, dtype=float)
        return self.alpha * p - 0.5 * self.beta * p * p

    def surplus(self, price: np.ndarray, p: np.ndarray | None = None) -> np.ndarray:
        """Hourly surplus ``U(p) - price p`` at the best response (or at the given load)."""
        price = np.asarray(price, dtype=float)
        p = self.best_response(price) if p is None else np.asarray(p, dtype=float)
        return self.utility(p) - price * p

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Customer):
            return NotImplemented
        return (self.id == other.id and self.kind == other.kind and np.array_equal(self.p0, other.p0)
                and np.array_equal(self.alpha, other.alpha) and self.beta == other.beta
                and self.band_min == other.band_min and self.band_max == other.band_max
                and self.tan_phi == other.tan_phi)

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_load(cls, load: Any, case: Any) -> "Customer":
        """A customer from a :class:`network.model.Load` with baseline and alpha profiles."""
        if load.baseline_profile is None or load.alpha_profile is None or math.isnan(load.beta):
            raise ValueError(f"load {load.id} has no baseline_profile/alpha_profile/beta: it is not a "
                             "price-responsive customer")
        tan_phi = load.tan_phi
        if math.isnan(tan_phi):
            pf = load.power_factor
            tan_phi = math.tan(math.acos(pf)) if not math.isnan(pf) and 0 < pf <= 1 else 0.0
        return cls(id=load.id, kind=load.kind, p0=case.profile(load.baseline_profile),
                   alpha=case.profile(load.alpha_profile), beta=load.beta, band_min=load.band_min,
                   band_max=load.band_max, tan_phi=tan_phi)


def customers_from_case(case: Any, owner_id: str) -> list[Customer]:
    """The customers (loads) of ``owner_id`` in ``case``, in the case's order."""
    loads = case.loads_of(owner_id)
    if not loads:
        raise ValueError(f"owner {owner_id!r} has no loads in case {case.name!r}")
    return [Customer.from_load(d, case) for d in loads]


# --------------------------------------------------------------------------- solution


@dataclass
class LASolution:
    """The LA's schedule and prices. Arrays are per hour; units: kW, kVAr, $/kWh, $.

    ``objective`` is the optimiser's objective (the profit for the exact problem; the McCormick
    objective, an upper bound, for ``relaxation="mccormick"``); ``profit`` is ``sum pi p - sum c
    x`` evaluated exactly at the returned schedule (loads are the customers' exact best
    responses). ``bound`` is a certified upper bound of the optimal profit (exact problem) and
    ``gap = (bound - profit) / max(1, |profit|)``.
    """

    objective: float
    profit: float
    purchases: dict[str, np.ndarray]
    loads: dict[str, np.ndarray]
    prices: dict[str, np.ndarray]
    injections_p: dict[str, np.ndarray]
    injections_q: dict[str, np.ndarray]
    status: str
    solve_time: float
    gap: float
    bound: float
    method: str
    pricing: str
    relaxation: str
    nodes: int = 1
    revenue: dict[str, np.ndarray] = field(default_factory=dict)   # pi p per customer
    cost: dict[str, np.ndarray] = field(default_factory=dict)      # c x per supply unit
    surplus: dict[str, np.ndarray] = field(default_factory=dict)   # U(p) - pi p per customer
    w: dict[str, np.ndarray] | None = None                         # McCormick only
    mccormick_gap: dict[str, np.ndarray] | None = None             # w - p pi (McCormick only)
    cut_violation: float = 0.0                                     # max over cuts of lhs (<= 0 is met)
    tie_break_solver: str = ""  # solver of the least-norm purchases among tied offers ("": no tie)

    def total_revenue(self) -> float:
        return float(sum(v.sum() for v in self.revenue.values()))

    def total_cost(self) -> float:
        return float(sum(v.sum() for v in self.cost.values()))

    def customer_surplus(self) -> dict[str, float]:
        """Surplus over the horizon per customer (utility - payment), $."""
        return {c: float(v.sum()) for c, v in self.surplus.items()}

    def settlement(self) -> dict[str, Any]:
        return {"revenue": self.total_revenue(), "cost": self.total_cost(), "profit": self.profit,
                "customer_surplus": self.customer_surplus(),
                "total_customer_surplus": float(sum(self.customer_surplus().values()))}


# --------------------------------------------------------------------------- internals


@dataclass
class _Segments:
    """Groups (one price each) and their response segments for the hull formulation."""

    n_groups: int
    group_of_pair: np.ndarray      # (C*T,) group index of pair i = c*T + t
    seg_group: np.ndarray          # (J,)
    seg_lo: np.ndarray             # (J,) price range of the segment (global bounds)
    seg_hi: np.ndarray
    MH: sp.csr_matrix              # (C*T, J) indicator: pair i in regime H on segment j
    ML: sp.csr_matrix
    MI: sp.csr_matrix
    seg_start: np.ndarray          # (G+1,) segments of group g are seg_start[g]:seg_start[g+1]


class _Model:
    """One cached cvxpy problem and its handles."""

    def __init__(self, kind: str, suppliers: tuple[str, ...], capacity: int, network: Any) -> None:
        self.kind, self.suppliers, self.capacity, self.network = kind, suppliers, capacity, network
        self.prob: cp.Problem | None = None
        self.par: dict[str, cp.Parameter] = {}
        self.var: dict[str, Any] = {}
        self.con: dict[str, Any] = {}
        self.aux: dict[str, Any] = {}


class LoadAggregator(Agent):
    """A load aggregator serving price-responsive customers through (personalized) retail prices."""

    role = "tes.load_aggregator"

    def __init__(self, agent_id: str, customers: Sequence[Customer], horizon: int | None = None, *,
                 price_min: float = 0.12, price_max: float = 0.24, price_sum_cap: float = 4.32,
                 pricing: str = "personalized", relaxation: str = "exact",
                 supplier_ids: Iterable[str] = (), method: str = "hull_bb", cut_capacity: int = 4,
                 gap_tol: float = 1e-9, node_limit: int = 5000, time_limit: float = 120.0) -> None:
        super().__init__(agent_id)
        customers = tuple(customers)
        if not customers:
            raise ValueError(f"{agent_id}: a load aggregator needs at least one customer")
        ids = [c.id for c in customers]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{agent_id}: duplicate customer ids")
        if horizon is None:
            horizon = customers[0].horizon
        for c in customers:
            if c.horizon != horizon:
                raise ValueError(f"{agent_id}: customer {c.id} has {c.horizon} periods, horizon is {horizon}")
        if pricing not in PRICINGS:
            raise ValueError(f"pricing must be one of {PRICINGS}, got {pricing!r}")
        if relaxation not in RELAXATIONS:
            raise ValueError(f"relaxation must be one of {RELAXATIONS}, got {relaxation!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if not (0 <= price_min <= price_max) or not all(map(math.isfinite, (price_min, price_max, price_sum_cap))):
            raise ValueError(f"need 0 <= price_min <= price_max (finite), got {price_min}, {price_max}")
        if price_sum_cap < horizon * price_min - 1e-12:
            raise InfeasibleSetup(f"{agent_id}: price_sum_cap {price_sum_cap} is below horizon x price_min "
                                  f"= {horizon * price_min}: no retail price schedule is feasible")
        self.customers = customers
        self.horizon = int(horizon)
        self.price_min, self.price_max, self.price_sum_cap = float(price_min), float(price_max), float(price_sum_cap)
        self.pricing, self.relaxation, self.method = pricing, relaxation, method
        self.supplier_ids: tuple[str, ...] = ()
        self._add_suppliers(supplier_ids)
        self.cut_capacity = max(1, int(cut_capacity))
        self.gap_tol, self.node_limit, self.time_limit = float(gap_tol), int(node_limit), float(time_limit)
        self.last_solution: LASolution | None = None

    @classmethod
    def from_case(cls, case: Any, owner_id: str, **kw: Any) -> "LoadAggregator":
        """An LA with the customers of ``owner_id`` and the case's retail price parameters."""
        params = dict(price_min=float(case.param("retail_price_min", 0.12)),
                      price_max=float(case.param("retail_price_max", 0.24)),
                      price_sum_cap=float(case.param("retail_price_sum_cap", 4.32)),
                      supplier_ids=[u.id for u in case.units if u.owner != owner_id])
        params.update(kw)
        return cls(owner_id, customers_from_case(case, owner_id), case.horizon, **params)

    # ---------------------------------------------------------------- identifiers
    @property
    def customer_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.customers)

    def public_ids(self) -> frozenset[str]:
        return frozenset(self.customer_ids)

    def decision_ids(self) -> frozenset[str]:
        return frozenset(self.customer_ids) | frozenset(c + Q_SUFFIX for c in self.customer_ids) | frozenset(
            self.supplier_ids)

    def _add_suppliers(self, ids: Iterable[str]) -> None:
        known = set(self.supplier_ids)
        new = sorted({str(u) for u in ids} - known)
        clash = set(new) & (set(self.customer_ids) | {c + Q_SUFFIX for c in self.customer_ids})
        if clash:
            raise ValueError(f"{self.id}: supplier id(s) {sorted(clash)} clash with customer ids")
        self.supplier_ids = self.supplier_ids + tuple(new)

    # ---------------------------------------------------------------- data
    def _arrays(self) -> dict[str, np.ndarray]:
        d = getattr(self, "_cache_arrays", None)
        if d is None:
            cs = self.customers
            p0 = np.array([c.p0 for c in cs])
            al = np.array([c.alpha for c in cs])
            be = np.array([c.beta for c in cs])[:, None] * np.ones((1, self.horizon))
            lo = np.array([c.band_min for c in cs])[:, None] * p0
            hi = np.array([c.band_max for c in cs])[:, None] * p0
            d = dict(p0=p0, al=al, be=be, lo=lo, hi=hi, k1=al - be * hi, k2=al - be * lo,
                     tan=np.array([c.tan_phi for c in cs]))
            self._cache_arrays = d
        return d

    def best_response(self, prices: np.ndarray) -> np.ndarray:
        """Loads (C, T) of all customers at retail prices (C, T) (or (T,) for one price per hour)."""
        a = self._arrays()
        return np.clip((a["al"] - np.asarray(prices, dtype=float)) / a["be"], a["lo"], a["hi"])

    def _offer_arrays(self, offers: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(price (U,T), effective quantity (U,T), raw quantity (U,T)) in supplier order."""
        T = self.horizon
        U = len(self.supplier_ids)
        price = np.zeros((U, T))
        qty = np.zeros((U, T))
        for k, u in enumerate(self.supplier_ids):
            if u not in offers:
                continue
            off = offers[u]
            if isinstance(off, Mapping):
                pr, qu = off["price"], off["quantity"]
            else:
                pr, qu = off
            pr = np.array(pr, dtype=float).reshape(-1)
            qu = np.array(qu, dtype=float).reshape(-1)
            pr = np.full(T, pr[0]) if pr.size == 1 else pr
            qu = np.full(T, qu[0]) if qu.size == 1 else qu
            if pr.size != T or qu.size != T:
                raise ValueError(f"{self.id}: offer of {u} must have {T} prices and quantities")
            if not np.all(np.isfinite(pr)):
                raise ValueError(f"{self.id}: offer of {u} has a non-finite price")
            if np.any(np.isnan(qu)) or np.any(qu < 0):
                raise ValueError(f"{self.id}: offer of {u} has a missing or negative quantity")
            price[k], qty[k] = pr, qu
        # an unlimited quantity is capped at the largest possible total load (never binding)
        big = self._arrays()["hi"].sum(axis=0) + 1.0
        qeff = np.minimum(qty, big[None, :])
        return price, qeff, qty

    def _cut_arrays(self, cuts: Sequence[CutLike]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cut rows: Gy (K, C+U) on the period's injections (customer p with its q coefficient folded
        in via tan_phi, then the supply units' -x), constant h (K,), period (K,)."""
        a = self._arrays()
        C, T, U = len(self.customers), self.horizon, len(self.supplier_ids)
        cidx = {c: k for k, c in enumerate(self.customer_ids)}
        uidx = {u: k for k, u in enumerate(self.supplier_ids)}
        K = len(cuts)
        Gy, h, per = np.zeros((K, C + U)), np.zeros(K), np.zeros(K, int)
        for k, cut in enumerate(cuts):
            if isinstance(cut, Mapping):
                t, coefs, const = cut["period"], cut["coefficients"], cut["constant"]
            elif hasattr(cut, "coefficients"):
                t, coefs, const = cut.period, cut.coefficients, cut.constant
            else:
                t, coefs, const = cut
            t = int(t)
            if not 0 <= t < T:
                raise ValueError(f"{self.id}: cut {k} has period {t} outside 0..{T - 1}")
            h[k], per[k] = float(const), t
            for key, v in coefs.items():
                v = float(v)
                if not math.isfinite(v) or not math.isfinite(h[k]):
                    raise ValueError(f"{self.id}: cut {k} has a non-finite coefficient")
                if key in cidx:
                    Gy[k, cidx[key]] += v
                elif key.endswith(Q_SUFFIX) and key[: -len(Q_SUFFIX)] in cidx:
                    c = cidx[key[: -len(Q_SUFFIX)]]
                    Gy[k, c] += v * a["tan"][c]
                elif key in uidx:
                    Gy[k, C + uidx[key]] += v  # on the unit's injection y = -x
                else:
                    raise ValueError(f"{self.id}: cut {k} uses unknown decision id {key!r}")
        return Gy, h, per

    def _cut_lhs(self, ctx: dict, p: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Left-hand sides ``h + G y`` of the cuts at loads p (C,T) and purchases x (U,T)."""
        Gy, h, per = ctx["Gy"], ctx["h"], ctx["per"]
        if not len(h):
            return np.zeros(0)
        C = len(self.customers)
        return h + np.einsum("kc,ck->k", Gy[:, :C], p[:, per]) - np.einsum("ku,uk->k", Gy[:, C:], x[:, per])

    # ---------------------------------------------------------------- segments (hull)
    def _segments(self) -> _Segments:
        seg = getattr(self, "_cache_segments", None)
        if seg is not None:
            return seg
        a = self._arrays()
        C, T = len(self.customers), self.horizon
        pmin, pmax = self.price_min, self.price_max
        k1, k2 = a["k1"].ravel(), a["k2"].ravel()
        if self.pricing == "personalized":
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
        seg = _Segments(len(members), group_of_pair, sg_arr, np.array(slo), np.array(shi), ind(0), ind(2),
                        ind(1), seg_start)
        self._cache_segments = seg
        return seg

    # ---------------------------------------------------------------- model building
    def _injection_exprs(self, p: Any, x: Any) -> tuple[dict, dict]:
        a = self._arrays()
        T = self.horizon
        P = {c: p[k, :] for k, c in enumerate(self.customer_ids)}
        Q = {c: a["tan"][k] * p[k, :] for k, c in enumerate(self.customer_ids)}
        for k, u in enumerate(self.supplier_ids):
            P[u] = -x[k, :]
            Q[u] = cp.Constant(np.zeros(T))
        return P, Q

    def _common(self, m: _Model, p: Any, x: Any) -> list:
        """Supply bounds, balance, cut pool and network constraints shared by all formulations.

        The cut pool has ``capacity`` slots per period: slot ``r`` belongs to period ``r //
        capacity`` and reads ``h_r + G_r . y_{period} <= 0`` with ``y = (p_c, -x_u)``; unused
        slots are all zero.
        """
        T, U, K = self.horizon, len(m.suppliers), m.capacity
        C = len(self.customers)
        m.par["price"] = cp.Parameter((U, T), name="offer_price")
        m.par["qty"] = cp.Parameter((U, T), nonneg=True, name="offer_qty")
        m.par["G"] = cp.Parameter((T * K, C + U), name="cut_G")
        m.par["h"] = cp.Parameter(T * K, name="cut_h")
        cons = [x <= m.par["qty"]]
        m.con["bal"] = cp.sum(x, axis=0) == cp.sum(p, axis=0)
        y = cp.hstack([p.T, -x.T])  # (T, C+U) injections per period
        yrep = y[np.repeat(np.arange(T), K), :]
        m.con["cut"] = cp.sum(cp.multiply(m.par["G"], yrep), axis=1) + m.par["h"] <= 0
        cons += [m.con["bal"], m.con["cut"]]
        if m.network is not None:
            P, Q = self._injection_exprs(p, x)
            extra = m.network(P, Q)
            cons += list(extra or [])
        return cons

    def _build_hull(self, m: _Model) -> None:
        a = self._arrays()
        seg = self._segments()
        C, T, U = len(self.customers), self.horizon, len(m.suppliers)
        J = seg.seg_group.size
        lo, hi, al, be = (a[k].ravel() for k in ("lo", "hi", "al", "be"))
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
        m.con["cap"] = cp.sum(pi, axis=1) <= self.price_sum_cap
        cons.append(m.con["cap"])
        m.par.update(plo=plo, pup=pup)
        cons += self._common(m, p, x)
        revenue = rl @ w - (rq[qi] @ s if qi.size else 0)
        m.prob = cp.Problem(cp.Maximize(revenue - cp.sum(cp.multiply(m.par["price"], x))), cons)
        m.var.update(z=z, w=w, s=s, x=x)
        m.aux.update(Az=Az, Aw=Aw, Pm=Pm, rq=rq, qi=qi)

    def _build_kkt(self, m: _Model, mccormick: bool) -> None:
        a = self._arrays()
        C, T, U = len(self.customers), self.horizon, len(m.suppliers)
        lo, hi, al, be = a["lo"], a["hi"], a["al"], a["be"]
        pmin, pmax = self.price_min, self.price_max
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
        m.con["cap"] = cp.sum(pi, axis=1) <= self.price_sum_cap
        cons.append(m.con["cap"])
        if self.pricing == "uniform" and C > 1:
            cons.append(pi[1:, :] == pi[:-1, :])
        cons += self._common(m, p, x)
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

    def _model(self, kind: str, per_period: int, network: Any) -> _Model:
        cache: dict = getattr(self, "_cache_models", None) or {}
        self._cache_models = cache
        while self.cut_capacity < per_period:
            self.cut_capacity *= 2
        key = (kind, None if network is None else id(network))
        m = cache.get(key)
        if (m is None or m.suppliers != self.supplier_ids or m.capacity != self.cut_capacity
                or m.network is not network):
            m = _Model(kind, self.supplier_ids, self.cut_capacity, network)
            if kind == "hull":
                self._build_hull(m)
            else:
                self._build_kkt(m, mccormick=(kind == "mccormick"))
            if network is not None:  # keep at most one network model per kind
                for k in [k for k in cache if k[0] == kind and k[1] is not None]:
                    del cache[k]
            cache[key] = m
        return m

    # ---------------------------------------------------------------- solve
    def solve(self, offers: Mapping[str, Any], cuts: Iterable[CutLike] = (),
              network: NetworkFn | None = None) -> LASolution:
        """Solve the LA's problem for the given offers and feasibility cuts.

        ``offers``: unit id -> (price (T,), quantity (T,)) (``np.inf`` = unlimited). ``network``
        (centralized benchmark only): called with ``{meter: p injection expr (T,)}`` and
        ``{meter: q injection expr (T,)}`` and returns cvxpy constraints added to the problem.
        """
        t0 = time.perf_counter()
        cuts = list(cuts)
        self._add_suppliers(offers.keys())
        price, qty, _ = self._offer_arrays(offers)
        Gy, h, per = self._cut_arrays(cuts)
        if self.relaxation == "mccormick":
            kind = "mccormick"
        else:
            kind = "hull" if self.method == "hull_bb" else "miqp"
        counts = np.bincount(per, minlength=self.horizon)
        m = self._model(kind, int(counts.max()) if per.size else 0, network)
        K = m.capacity
        m.par["price"].value = price
        m.par["qty"].value = qty
        rank = np.zeros(per.size, int)  # position of each cut among the cuts of its period
        for t in np.unique(per):
            idx = np.flatnonzero(per == t)
            rank[idx] = np.arange(idx.size)
        slot = per * K + rank
        Gk, hk = np.zeros((self.horizon * K, Gy.shape[1])), np.zeros(self.horizon * K)
        Gk[slot], hk[slot] = Gy, h
        m.par["G"].value, m.par["h"].value = Gk, hk
        ctx = dict(price=price, qty=qty, Gy=Gy, h=h, per=per, slot=slot, K=K, cuts=cuts, network=network)
        if kind == "hull":
            sol = self._solve_hull(m, ctx)
        else:
            sol = self._solve_kkt(m, ctx, kind)
        sol.solve_time = time.perf_counter() - t0
        self.last_solution = sol
        return sol

    # ..................................................................... hull B&B
    def _seg_bounds(self, seg: _Segments, ga: np.ndarray, gb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo_ = np.maximum(seg.seg_lo, ga[seg.seg_group])
        up_ = np.minimum(seg.seg_hi, gb[seg.seg_group])
        valid = lo_ <= up_
        return lo_, np.where(valid, up_, lo_ - 1.0), valid

    def _dual_bound(self, m: _Model, ctx: dict, lo_: np.ndarray, up_: np.ndarray,
                    valid: np.ndarray) -> tuple[float, dict | None]:
        """Lagrangian dual function at the solver's multipliers: a certified upper bound.

        Relaxing the price-sum caps (lambda >= 0), the balances (nu) and the cuts (gamma >= 0),
        the Lagrangian separates into one concave quadratic in the group price per response
        segment, ``A_j pi^2 + B_j pi + C_j`` (maximised in closed form over the segment's
        price range and then over the group's segments) and a box LP per supply unit. Any
        multipliers of the right sign give a valid bound; the solver's give a tight one.
        Returns the bound and the segment coefficients (used to choose the branching group).
        """
        a = self._arrays()
        seg = self._segments()
        C, T = len(self.customers), self.horizon
        lam = np.maximum(0.0, np.asarray(m.con["cap"].dual_value, dtype=float).reshape(-1))
        nu = np.asarray(m.con["bal"].dual_value, dtype=float).reshape(-1)
        gam = np.maximum(0.0, np.asarray(m.con["cut"].dual_value, dtype=float).reshape(-1))
        if not (np.all(np.isfinite(lam)) and np.all(np.isfinite(nu)) and np.all(np.isfinite(gam))):
            return math.inf, None
        K = len(ctx["h"])
        gam = gam[ctx["slot"]]
        U = len(m.suppliers)
        e = np.zeros((T, C))
        fx = np.zeros((T, U))
        if K:
            np.add.at(e, ctx["per"], gam[:, None] * ctx["Gy"][:, :C])
            np.add.at(fx, ctx["per"], gam[:, None] * ctx["Gy"][:, C:])
        # the solver's balance dual may come with either sign convention: take the better bound
        best, info = math.inf, None
        for sgn in (1.0, -1.0):
            nu_s = sgn * nu
            mflat = (nu_s[None, :] + e.T).ravel()
            lflat = np.repeat(lam, T)
            lo, hi, al, be = (a[k].ravel() for k in ("lo", "hi", "al", "be"))
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
            coef_x = nu_s[None, :] - ctx["price"] + fx.T
            supply = float(np.sum(ctx["qty"] * np.maximum(0.0, coef_x)))
            bound = float(gmax.sum()) + supply + float(lam.sum()) * self.price_sum_cap - float(gam @ ctx["h"])
            if bound < best:
                best, info = bound, dict(A=A, B=B, C0=C0, mflat=mflat, lflat=lflat)
        return best, info

    def _solve_relaxation(self, m: _Model) -> str:
        """Solve the hull relaxation (:data:`RELAXATION_ATTEMPTS`); returns its status, one of
        "optimal", "optimal_inaccurate" or an infeasible status (the node is pruned); raises
        :class:`SolveError` otherwise."""
        return solve(m.prob, RELAXATION_ATTEMPTS, self.id, "relaxed market problem (hull relaxation)",
                     stop_on=INFEASIBLE).status

    def _solve_hull(self, m: _Model, ctx: dict) -> LASolution:
        a = self._arrays()
        seg = self._segments()
        C, T = len(self.customers), self.horizon
        G = seg.n_groups
        lo, hi, al, be = (a[k].ravel() for k in ("lo", "hi", "al", "be"))
        certified_bound = ctx["network"] is None
        start = time.perf_counter()
        width = np.maximum(hi - lo, 1e-12)

        def run(ga: np.ndarray, gb: np.ndarray) -> tuple[float, dict] | None:
            lo_, up_, valid = self._seg_bounds(seg, ga, gb)
            m.par["plo"].value, m.par["pup"].value = lo_, up_
            if self._solve_relaxation(m) in INFEASIBLE:
                return None
            relax = float(m.prob.value)
            ub, info = self._dual_bound(m, ctx, lo_, up_, valid) if certified_bound else (relax, None)
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

        ga0, gb0 = np.full(G, self.price_min), np.full(G, self.price_max)
        root = run(ga0, gb0)
        if root is None:
            self._raise_infeasible(ctx)
        heap: list = [(-root[0], 0, ga0, gb0, root[1])]
        nodes, counter = 1, 1
        while heap:
            negub, _, ga, gb, sol = heapq.heappop(heap)
            ub = -negub
            cand = self._finish(ctx, sol["pi"].reshape(C, T), sol["x"])
            tol = self.gap_tol * max(1.0, abs(cand[0]))
            feasible = cand[1] <= self._cut_tol(ctx)
            if feasible and ub - cand[0] <= tol:
                return self._make_solution(ctx, cand, objective=None, bound=max(ub, cand[0]) if certified_bound
                                           else ub, status=OPTIMAL, nodes=nodes, method="hull_bb")
            g = int(np.argmax(sol["score"]))
            if sol["oncurve"] or nodes >= self.node_limit or time.perf_counter() - start > self.time_limit:
                status = INACCURATE if sol["oncurve"] else "node_limit"
                if not feasible or status == "node_limit" and ub - cand[0] > 1e-4 * max(1.0, abs(cand[0])):
                    raise SolveError(self.id, "relaxed market problem (hull B&B)", status,
                                     detail=f"bound {ub:.9g}, best candidate {cand[0]:.9g}, "
                                            f"cut violation {cand[1]:.3g}, {nodes} nodes")
                return self._make_solution(ctx, cand, objective=None, bound=ub, status=status, nodes=nodes,
                                           method="hull_bb")
            split = self._split_point(seg, g, ga[g], gb[g], float(sol["pi"][seg.group_of_pair == g][0]))
            for lo_g, hi_g in ((ga[g], split), (split, gb[g])):
                ga2, gb2 = ga.copy(), gb.copy()
                ga2[g], gb2[g] = lo_g, hi_g
                res = run(ga2, gb2)
                nodes += 1
                if res is not None:
                    heapq.heappush(heap, (-res[0], counter, ga2, gb2, res[1]))
                    counter += 1
        # every leaf is infeasible: the relaxation was feasible but no price schedule is
        self._raise_infeasible(ctx)
        raise AssertionError("unreachable")

    @staticmethod
    def _split_point(seg: _Segments, g: int, a: float, b: float, price: float) -> float:
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

    # ..................................................................... KKT (MIQP / McCormick MILP)
    def _solve_kkt(self, m: _Model, ctx: dict, kind: str) -> LASolution:
        C, T = len(self.customers), self.horizon
        if kind == "mccormick":
            attempt = Attempt("HIGHS", {"mip_rel_gap": 1e-9, "mip_abs_gap": 1e-9})
        else:  # a relative gap below ~1e-7 makes SCIP ask for LP tolerances it cannot set
            attempt = Attempt("SCIP", {"scip_params": {"limits/gap": max(self.gap_tol, 1e-7),
                                                       "limits/time": self.time_limit}})
        # one attempt: a mixed-integer problem has no fallback solver, it fails loudly
        no_point = INFEASIBLE + (INFEASIBLE_OR_UNBOUNDED,)  # the problem is bounded by construction
        st = solve(m.prob, [attempt], self.id, f"relaxed market problem ({kind})", stop_on=no_point).status
        if st in no_point:
            self._raise_infeasible(ctx)
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
        if self.pricing == "uniform":
            pi = np.repeat(pi.mean(axis=0, keepdims=True), C, axis=0)
        cand = self._finish(ctx, pi, np.asarray(m.var["x"].value, dtype=float))
        sol = self._make_solution(ctx, cand, objective=obj if kind == "mccormick" else None,
                                  bound=bound, status=st, nodes=1,
                                  method="milp_highs" if kind == "mccormick" else "kkt_miqp")
        if kind == "mccormick":
            wv = np.asarray(m.var["w"].value, dtype=float)
            sol.w = {c: wv[k].copy() for k, c in enumerate(self.customer_ids)}
            sol.mccormick_gap = {c: wv[k] - sol.loads[c] * sol.prices[c] for k, c in enumerate(self.customer_ids)}
        return sol

    # ..................................................................... exact evaluation
    @staticmethod
    def _cut_tol(ctx: dict) -> float:
        """Largest accepted cut violation, relative to the cut's scale (see ``_finish``)."""
        return 1e-7

    def _finish(self, ctx: dict, pi: np.ndarray, x: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray,
                                                                         np.ndarray]:
        """Project a solver point onto the feasible set and evaluate it exactly.

        Prices are clipped to their bounds and the price-sum cap is met exactly, loads are the
        customers' exact best responses and purchases are rebalanced (cheapest unit with room
        first) for the tiny load change. Returns (profit, max scaled cut violation, pi, p, x).
        """
        a = self._arrays()
        C, T = pi.shape
        pi = np.clip(pi, self.price_min, self.price_max)
        if self.pricing == "uniform":
            pi = np.repeat(pi.mean(axis=0, keepdims=True), C, axis=0)
        excess = pi.sum(axis=1) - self.price_sum_cap
        for c in np.flatnonzero(excess > 0):
            rows = slice(None) if self.pricing == "uniform" else c
            for _ in range(50):  # spread the (tiny) excess over the hours above price_min
                ex = pi[c].sum() - self.price_sum_cap
                if ex <= 0:
                    break
                room = pi[c] - self.price_min
                if room.sum() <= 0:
                    break
                pi[rows, :] = np.maximum(self.price_min, pi[c] - ex * room / room.sum() * (1 + 1e-12))
        p = np.clip((a["al"] - pi) / a["be"], a["lo"], a["hi"])
        price, qty = ctx["price"], ctx["qty"]
        x = self._rebalance(np.clip(np.array(x, dtype=float), 0.0, qty), p.sum(axis=0), price, qty)
        if np.any(np.abs(p.sum(axis=0) - x.sum(axis=0)) > 1e-6):
            return -math.inf, math.inf, pi, p, x  # not enough supply for these loads
        profit = float(np.sum(pi * p) - np.sum(price * x))
        viol = 0.0
        if len(ctx["h"]):
            lhs = self._cut_lhs(ctx, p, x)
            Cn = len(self.customers)
            scale = (1.0 + np.abs(ctx["h"]) + np.einsum("kc,ck->k", np.abs(ctx["Gy"][:, :Cn]), a["hi"][:, ctx["per"]])
                     + np.einsum("ku,uk->k", np.abs(ctx["Gy"][:, Cn:]), qty[:, ctx["per"]]))
            viol = float(np.max(lhs / scale))
        return profit, viol, pi, p, x

    @staticmethod
    def _rebalance(x: np.ndarray, load: np.ndarray, price: np.ndarray, qty: np.ndarray) -> np.ndarray:
        """Adjust purchases to meet the hourly loads exactly (cheapest unit with room first when
        short, dearest first when long): removes the solver's tiny balance residuals."""
        d = load - x.sum(axis=0)
        for t in np.flatnonzero(np.abs(d) > 0):
            rem = d[t]
            order = np.argsort(price[:, t], kind="stable")
            if rem > 0:
                for u in order:
                    add = min(rem, qty[u, t] - x[u, t])
                    x[u, t] += add
                    rem -= add
                    if rem <= 0:
                        break
            else:
                for u in order[::-1]:
                    sub = min(-rem, x[u, t])
                    x[u, t] -= sub
                    rem += sub
                    if rem >= 0:
                        break
        return x

    # ..................................................................... tie-breaking of purchases
    def _ties(self, ctx: dict, x: np.ndarray) -> bool:
        """Can purchases be shifted between two units with the same offer price in some hour?"""
        price, qty = ctx["price"], ctx["qty"]
        U = price.shape[0]
        for u in range(U):
            for v in range(U):
                if u != v:
                    same = np.abs(price[u] - price[v]) <= 1e-12
                    if np.any(same & (x[u] > 1e-9) & (x[v] < qty[v] - 1e-9)):
                        return True
        return False

    def _polish_model(self, ctx: dict) -> _Model:
        cache: dict = getattr(self, "_cache_models", None) or {}
        self._cache_models = cache
        net = ctx["network"]
        key = ("polish", None if net is None else id(net))
        m = cache.get(key)
        if m is not None and m.suppliers == self.supplier_ids and m.capacity == ctx["K"] and m.network is net:
            return m
        m = _Model("polish", self.supplier_ids, ctx["K"], net)
        C, T, U, K = len(self.customers), self.horizon, len(self.supplier_ids), ctx["K"]
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
            P, Q = self._injection_exprs(p, x)
            cons += list(net(P, Q) or [])
        m.prob = cp.Problem(cp.Minimize(cp.sum_squares(x)), cons)
        m.var["x"] = x
        for k in [k for k in cache if k[0] == "polish" and k[1] is not None]:
            del cache[k]
        cache[key] = m
        return m

    def _polish(self, ctx: dict, p: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, str]:
        """Deterministic purchases: among the cost-minimal purchases for the loads ``p`` (same cuts
        or network constraints, hourly cost within 1e-9 relative of the solver's), the one of least
        Euclidean norm, so that units offering at the same price share the purchase (unique, and
        the same whichever formulation produced the loads). Used only when prices tie.

        Returns the purchases and the solver that produced them (``""``: no tie, ``x`` as given).
        The QP is tried with each of :data:`POLISH_ATTEMPTS` through :func:`agents.solve.solve`;
        an attempt fails when the solver does not report "optimal" or when its point, cleaned
        (clipped to the offers, rebalanced), does not meet the loads, costs more than 1e-9
        relative above the solver's purchases or meets the cuts less well. When every attempt
        fails a :class:`SolveError` names the agent, the problem and each failure: the
        unpolished vertex is never returned silently.
        """
        if not self._ties(ctx, x):
            return x, ""
        C, T, K = len(self.customers), self.horizon, ctx["K"]
        m = self._polish_model(ctx)
        price, qty = ctx["price"], ctx["qty"]
        cost = (price * x).sum(axis=0)
        hk = np.zeros(T * K)
        Gk = np.zeros((T * K, len(self.supplier_ids)))
        if len(ctx["h"]):
            hk[ctx["slot"]] = ctx["h"] + np.einsum("kc,ck->k", ctx["Gy"][:, :C], p[:, ctx["per"]])
            Gk[ctx["slot"]] = ctx["Gy"][:, C:]
        m.par["p"].value, m.par["load"].value = p, p.sum(axis=0)
        m.par["cost"].value = cost + 1e-11 * np.maximum(1.0, np.abs(cost))
        m.par["price"].value, m.par["qty"].value = price, qty
        m.par["G"].value, m.par["h"].value = Gk, hk
        failures: list[str] = []
        for attempt in POLISH_ATTEMPTS:
            try:
                solved = solve(m.prob, [attempt], self.id, POLISH_PROBLEM, accept_inaccurate=False)
            except SolveError as exc:
                failures.append(exc.detail or f"{attempt.solver}: {exc.status}")
                continue
            x2 = np.clip(np.asarray(m.var["x"].value, dtype=float), 0.0, qty)
            x2 = self._rebalance(x2, p.sum(axis=0), price, qty)
            why = self._polish_defect(ctx, p, x, x2, cost)
            if why is None:
                return x2, solved.solver
            failures.append(f"{solved.solver}: {why}")
        raise SolveError(self.id, POLISH_PROBLEM, "not solved", detail="; ".join(failures))

    def _polish_defect(self, ctx: dict, p: np.ndarray, x: np.ndarray, x2: np.ndarray,
                       cost: np.ndarray) -> str | None:
        """Why the polished purchases ``x2`` cannot replace the solver's ``x`` (None: they can)."""
        price = ctx["price"]
        short = float(np.max(np.abs(x2.sum(axis=0) - p.sum(axis=0))))
        if short > 1e-6:
            return f"its purchases miss the loads by {short:.3g} kW"
        excess = (price * x2).sum(axis=0) - cost - 1e-9 * np.maximum(1.0, np.abs(cost))
        if np.any(excess > 0):
            return f"its purchases cost {float(np.max(excess)):.3g} $ more than the optimum in some hour"
        if len(ctx["h"]):
            worse = np.max(self._cut_lhs(ctx, p, x2)) - max(np.max(self._cut_lhs(ctx, p, x)), 0.0)
            if worse > 1e-9:
                return f"its purchases violate a cut by {worse:.3g} more than the optimum's"
        return None

    def _make_solution(self, ctx: dict, cand: tuple, *, objective: float | None, bound: float, status: str,
                       nodes: int, method: str) -> LASolution:
        """The solution record; ``objective=None`` means the profit (after tie-breaking)."""
        a = self._arrays()
        profit, viol, pi, p, x = cand
        price = ctx["price"]
        x, tie_break = self._polish(ctx, p, x)
        profit = float(np.sum(pi * p) - np.sum(price * x))
        if objective is None:
            objective = profit
        cids, uids = self.customer_ids, self.supplier_ids
        T = self.horizon
        loads = {c: p[k].copy() for k, c in enumerate(cids)}
        prices = {c: pi[k].copy() for k, c in enumerate(cids)}
        purchases = {u: x[k].copy() for k, u in enumerate(uids)}
        inj_p = {**loads, **{u: -x[k] for k, u in enumerate(uids)}}
        inj_q = {**{c: a["tan"][k] * p[k] for k, c in enumerate(cids)}, **{u: np.zeros(T) for u in uids}}
        revenue = {c: pi[k] * p[k] for k, c in enumerate(cids)}
        cost = {u: price[k] * x[k] for k, u in enumerate(uids)}
        surplus = {c: cu.surplus(pi[k], p[k]) for k, (c, cu) in enumerate(zip(cids, self.customers))}
        gap = max(0.0, bound - profit) / max(1.0, abs(profit))
        raw_viol = 0.0
        if len(ctx["h"]):
            raw_viol = float(np.max(self._cut_lhs(ctx, p, x)))
        return LASolution(objective=float(objective), profit=float(profit), purchases=purchases, loads=loads,
                          prices=prices, injections_p=inj_p, injections_q=inj_q, status=status, solve_time=0.0,
                          gap=float(gap), bound=float(bound), method=method, pricing=self.pricing,
                          relaxation=self.relaxation, nodes=nodes, revenue=revenue, cost=cost, surplus=surplus,
                          cut_violation=raw_viol, tie_break_solver=tie_break)

    # ..................................................................... infeasibility diagnosis
    def _raise_infeasible(self, ctx: dict) -> None:
        from scipy.optimize import linprog

        a = self._arrays()
        C, T, U = len(self.customers), self.horizon, len(self.supplier_ids)
        pmin_load = np.clip((a["al"] - self.price_max) / a["be"], a["lo"], a["hi"])
        pmax_load = np.clip((a["al"] - self.price_min) / a["be"], a["lo"], a["hi"])
        Gy, h, per = ctx["Gy"], ctx["h"], ctx["per"]
        bad: list[str] = []
        for t in range(T):
            ks = np.flatnonzero(per == t)
            bounds = ([(pmin_load[c, t], pmax_load[c, t]) for c in range(C)]
                      + [(0.0, ctx["qty"][u, t]) for u in range(U)])
            A_eq = np.concatenate([np.ones(C), -np.ones(U)])[None, :]
            A_ub = np.hstack([Gy[ks, :C], -Gy[ks, C:]]) if ks.size else None
            res = linprog(np.zeros(C + U), A_ub=A_ub, b_ub=(-h[ks] if ks.size else None), A_eq=A_eq, b_eq=[0.0],
                          bounds=bounds, method="highs")
            if res.status == 2:
                if ks.size == 0:
                    bad.append(f"hour {t}: the offered supply ({ctx['qty'][:, t].sum():.6g} kW) is below the "
                               f"smallest reachable load ({pmin_load[:, t].sum():.6g} kW)")
                else:
                    bad.append(f"hour {t}: cut(s) {ks.tolist()} cannot be met by any reachable load and purchase")
        n = len(ctx["h"])
        if bad:
            raise InfeasibleSetup(f"{self.id}: the relaxed market problem with {n} cut(s) is infeasible; "
                                  + "; ".join(bad))
        raise InfeasibleSetup(f"{self.id}: the relaxed market problem with {n} cut(s) is infeasible: every hour is "
                              f"feasible on its own (periods with cuts: {sorted(set(per.tolist()))}), but not together "
                              f"with the retail price-sum cap {self.price_sum_cap}"
                              + (" and uniform pricing" if self.pricing == "uniform" else "")
                              + (" and the network constraints" if ctx["network"] is not None else ""))

    # ---------------------------------------------------------------- settlement helpers
    def customer_surplus(self, solution: LASolution) -> dict[str, float]:
        """Surplus (utility - payment) over the horizon per customer, $."""
        return solution.customer_surplus()

    def revenue(self, solution: LASolution) -> float:
        return solution.total_revenue()

    def cost(self, solution: LASolution) -> float:
        return solution.total_cost()
