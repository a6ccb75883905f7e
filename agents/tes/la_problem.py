"""The load aggregator's problem in arrays: its retail side, one solve's offers and cuts, the
exact evaluation of a candidate point, the infeasibility diagnosis and the solution record.

Shapes: ``C`` customers (rows in the LA's customer order), ``T`` hours, ``U`` supply units (in
the LA's supplier order), ``K`` cuts. Units: loads and purchases in kW (energy per hour in
kWh), prices in $/kWh, money in $.

Cuts: ``constant + sum_k coefficients[k] y_k <= 0`` in the cut's period, with ``y`` the LA's
injection decisions: ``p_c`` for customer ``c`` (consumption positive), ``q_c = tan_phi_c p_c``
for ``"<c>#q"`` and ``-x_u`` for a supply unit ``u`` (generation is a negative injection). In
array form a cut is a row ``G`` over ``(p_1..p_C, -x_1..-x_U)`` of its period, the reactive
coefficient folded into the customer's column through ``tan_phi``.

Losses: the hourly balance is ``sum_u x_{u,t} = sum_c p_{c,t} + L_t`` with ``L_t`` (kW) the network
losses the LA was told to cover (:class:`Round` ``loss``; zero unless the network operator runs an
AC check and reports them): the supply units together deliver the customers' consumption plus
the losses, so the LA's injections sum to ``-L_t``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from ..base import InfeasibleSetup
from ..cuts import CutPool
from .customers import Q_SUFFIX, Customer

__all__ = ["PRICINGS", "RELAXATIONS", "METHODS", "CUT_TOL", "CutLike", "NetworkFn", "Retail", "Round",
           "Candidate", "Outcome", "LASolution", "offer_arrays", "cut_pool", "finish", "rebalance",
           "diagnose_infeasible"]

PRICINGS = ("personalized", "uniform")
RELAXATIONS = ("exact", "mccormick")
METHODS = ("hull_bb", "kkt_miqp")

CutLike = tuple  # (period: int, coefficients: Mapping[str, float], constant: float)
#: the centralized benchmark's network: ({meter: p expr (T,)}, {meter: q expr (T,)}) -> cvxpy constraints
NetworkFn = Callable[[dict, dict], list]

#: largest accepted cut violation of a candidate, relative to the cut's scale (see :func:`finish`)
CUT_TOL = 1e-7


@dataclass(frozen=True, eq=False)
class Retail:
    """The LA's retail side as (C, T) arrays, and its pricing rules.

    ``al``/``be``: utility parameters alpha ($/kWh) and beta ($/kWh per kW, repeated over the
    hours); ``lo``/``hi``: load band (kW); ``k1 = al - be hi`` and ``k2 = al - be lo``: the prices
    ($/kWh) below which a customer sits at ``hi`` and above which at ``lo``; ``tan``: (C,)
    reactive-to-active ratio of each customer.
    """

    customer_ids: tuple[str, ...]
    pricing: str
    price_min: float
    price_max: float
    price_sum_cap: float
    p0: np.ndarray
    al: np.ndarray
    be: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    k1: np.ndarray
    k2: np.ndarray
    tan: np.ndarray

    @classmethod
    def of(cls, customers: Sequence[Customer], horizon: int, *, pricing: str, price_min: float, price_max: float,
           price_sum_cap: float) -> "Retail":
        cs = customers
        p0 = np.array([c.p0 for c in cs])
        al = np.array([c.alpha for c in cs])
        be = np.array([c.beta for c in cs])[:, None] * np.ones((1, horizon))
        lo = np.array([c.band_min for c in cs])[:, None] * p0
        hi = np.array([c.band_max for c in cs])[:, None] * p0
        return cls(tuple(c.id for c in cs), pricing, price_min, price_max, price_sum_cap, p0, al, be, lo, hi,
                   al - be * hi, al - be * lo, np.array([c.tan_phi for c in cs]))

    @property
    def n_customers(self) -> int:
        return len(self.customer_ids)

    @property
    def horizon(self) -> int:
        return int(self.p0.shape[1])

    def best_response(self, prices: np.ndarray) -> np.ndarray:
        """Loads (C, T) at retail prices (C, T) (or (T,) for one price per hour)."""
        return np.clip((self.al - np.asarray(prices, dtype=float)) / self.be, self.lo, self.hi)


@dataclass(frozen=True, eq=False)
class Round:
    """One solve's data: the offers, the cuts and where they sit in the model's cut pool.

    ``price``/``qty``: (U, T) offer prices and effective quantities (an unlimited quantity capped
    at a never-binding value); ``Gy``/``h``/``per``: the cuts' rows (K, C+U), constants (K,) and
    periods (K,) (:meth:`agents.cuts.CutPool.matrix`); ``slot``: (K,) row of each cut in the
    model's block of ``capacity`` rows per period (:meth:`agents.cuts.CutPool.slots`);
    ``network``: the centralized benchmark's network constraints, else None; ``loss``: (T,)
    network losses (kW) that the purchases cover on top of the loads (None: zero).
    """

    price: np.ndarray
    qty: np.ndarray
    Gy: np.ndarray
    h: np.ndarray
    per: np.ndarray
    slot: np.ndarray
    capacity: int
    network: NetworkFn | None
    n_customers: int
    loss: np.ndarray | None = None

    def demand(self, p: np.ndarray) -> np.ndarray:
        """(T,) energy the purchases must meet: the loads ``p`` (C, T) plus the losses (kW)."""
        d = p.sum(axis=0)
        return d if self.loss is None else d + self.loss

    @property
    def n_cuts(self) -> int:
        return len(self.h)

    def cut_lhs(self, p: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Left-hand sides ``h + G y`` of the cuts at loads p (C,T) and purchases x (U,T)."""
        Gy, h, per = self.Gy, self.h, self.per
        if not len(h):
            return np.zeros(0)
        C = self.n_customers
        return h + np.einsum("kc,ck->k", Gy[:, :C], p[:, per]) - np.einsum("ku,uk->k", Gy[:, C:], x[:, per])


class Candidate(NamedTuple):
    """A point evaluated exactly: profit ($), max scaled cut violation, prices, loads, purchases."""

    profit: float
    violation: float
    pi: np.ndarray
    p: np.ndarray
    x: np.ndarray


@dataclass
class Outcome:
    """What a method returns: the candidate, a bound, the status, the nodes; ``objective`` None
    means the profit (exact methods), else the optimiser's objective (McCormick); ``w`` the
    McCormick revenue variables (C, T)."""

    cand: Candidate
    bound: float
    status: str
    nodes: int
    method: str
    objective: float | None = None
    w: np.ndarray | None = None


@dataclass
class LASolution:
    """The LA's schedule and prices. Arrays are per hour; units: kW, kVAr, $/kWh, $.

    ``objective`` is the optimiser's objective (the profit for the exact problem; the McCormick
    objective, an upper bound, for ``relaxation="mccormick"``); ``profit`` is ``sum pi p - sum c
    x`` evaluated exactly at the returned schedule (loads are the customers' exact best
    responses). ``bound`` is a certified upper bound of the optimal profit (exact problem) and
    ``gap = (bound - profit) / max(1, |profit|)``. ``tie_break_solver`` names the solver of the
    least-norm purchases among units offering the same price (``""``: no such tie).
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
    tie_break_solver: str = ""
    losses: np.ndarray | None = None                               # network losses covered (kW), or None

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


# --------------------------------------------------------------------------- inputs


def offer_arrays(retail: Retail, supplier_ids: Sequence[str], offers: Mapping[str, Any],
                 agent_id: str, loss: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(price (U,T), effective quantity (U,T), raw quantity (U,T)) in supplier order.

    ``offers``: unit id -> (price, quantity) or {"price": ..., "quantity": ...}, each (T,) or a
    scalar; a unit without an offer offers nothing. ``loss``: (T,) losses to cover (kW), which
    raise the cap of an unlimited quantity.
    """
    T = retail.horizon
    U = len(supplier_ids)
    price = np.zeros((U, T))
    qty = np.zeros((U, T))
    for k, u in enumerate(supplier_ids):
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
            raise ValueError(f"{agent_id}: offer of {u} must have {T} prices and quantities")
        if not np.all(np.isfinite(pr)):
            raise ValueError(f"{agent_id}: offer of {u} has a non-finite price")
        if np.any(np.isnan(qu)) or np.any(qu < 0):
            raise ValueError(f"{agent_id}: offer of {u} has a missing or negative quantity")
        price[k], qty[k] = pr, qu
    # an unlimited quantity is capped at the largest possible total load (never binding)
    big = retail.hi.sum(axis=0) + 1.0
    if loss is not None:
        big = big + np.maximum(np.asarray(loss, dtype=float), 0.0)
    qeff = np.minimum(qty, big[None, :])
    return price, qeff, qty


def cut_pool(retail: Retail, supplier_ids: Sequence[str], cuts: Sequence[CutLike], agent_id: str) -> CutPool:
    """The cuts as a vector pool (:class:`agents.cuts.CutPool`, one index per hour, repeats dropped)
    over the period's injections ``y = (p_1..p_C, -x_1..-x_U)``: a customer's reactive
    coefficient is folded into its column through tan_phi, a supply unit's is on ``-x``.

    A cut is ``(period, coefficients, constant)``, a mapping with those keys, or an object with
    those attributes; its coefficients are keyed by the LA's decision ids.
    """
    C, T, U = retail.n_customers, retail.horizon, len(supplier_ids)
    cidx = {c: k for k, c in enumerate(retail.customer_ids)}
    uidx = {u: k for k, u in enumerate(supplier_ids)}
    pool = CutPool(n_index=T, n_vars=C + U)
    for k, cut in enumerate(cuts):
        if isinstance(cut, Mapping):
            t, coefs, const = cut["period"], cut["coefficients"], cut["constant"]
        elif hasattr(cut, "coefficients"):
            t, coefs, const = cut.period, cut.coefficients, cut.constant
        else:
            t, coefs, const = cut
        t = int(t)
        if not 0 <= t < T:
            raise ValueError(f"{agent_id}: cut {k} has period {t} outside 0..{T - 1}")
        h = float(const)
        g = np.zeros(C + U)
        for key, v in coefs.items():
            v = float(v)
            if not math.isfinite(v) or not math.isfinite(h):
                raise ValueError(f"{agent_id}: cut {k} has a non-finite coefficient")
            if key in cidx:
                g[cidx[key]] += v
            elif key.endswith(Q_SUFFIX) and key[: -len(Q_SUFFIX)] in cidx:
                c = cidx[key[: -len(Q_SUFFIX)]]
                g[c] += v * retail.tan[c]
            elif key in uidx:
                g[C + uidx[key]] += v  # on the unit's injection y = -x
            else:
                raise ValueError(f"{agent_id}: cut {k} uses unknown decision id {key!r}")
        pool.add(t, h, g)
    return pool


# --------------------------------------------------------------------------- exact evaluation


def finish(retail: Retail, rnd: Round, pi: np.ndarray, x: np.ndarray) -> Candidate:
    """Project a solver point onto the feasible set and evaluate it exactly.

    Prices are clipped to their bounds and the price-sum cap is met exactly, loads are the
    customers' exact best responses and purchases are rebalanced (cheapest unit with room
    first) for the tiny load change. The violation is the largest cut left-hand side divided by
    the cut's scale (``1 + |h| + |G| . (hi, qty)``).
    """
    C, T = pi.shape
    pmin, pmax, cap = retail.price_min, retail.price_max, retail.price_sum_cap
    pi = np.clip(pi, pmin, pmax)
    if retail.pricing == "uniform":
        pi = np.repeat(pi.mean(axis=0, keepdims=True), C, axis=0)
    excess = pi.sum(axis=1) - cap
    for c in np.flatnonzero(excess > 0):
        rows = slice(None) if retail.pricing == "uniform" else c
        for _ in range(50):  # spread the (tiny) excess over the hours above price_min
            ex = pi[c].sum() - cap
            if ex <= 0:
                break
            room = pi[c] - pmin
            if room.sum() <= 0:
                break
            pi[rows, :] = np.maximum(pmin, pi[c] - ex * room / room.sum() * (1 + 1e-12))
    p = np.clip((retail.al - pi) / retail.be, retail.lo, retail.hi)
    price, qty = rnd.price, rnd.qty
    demand = rnd.demand(p)
    x = rebalance(np.clip(np.array(x, dtype=float), 0.0, qty), demand, price, qty)
    if np.any(np.abs(demand - x.sum(axis=0)) > 1e-6):
        return Candidate(-math.inf, math.inf, pi, p, x)  # not enough supply for these loads
    profit = float(np.sum(pi * p) - np.sum(price * x))
    viol = 0.0
    if rnd.n_cuts:
        lhs = rnd.cut_lhs(p, x)
        Cn = retail.n_customers
        scale = (1.0 + np.abs(rnd.h) + np.einsum("kc,ck->k", np.abs(rnd.Gy[:, :Cn]), retail.hi[:, rnd.per])
                 + np.einsum("ku,uk->k", np.abs(rnd.Gy[:, Cn:]), qty[:, rnd.per]))
        viol = float(np.max(lhs / scale))
    return Candidate(profit, viol, pi, p, x)


def rebalance(x: np.ndarray, load: np.ndarray, price: np.ndarray, qty: np.ndarray) -> np.ndarray:
    """Adjust purchases (in place) to meet the hourly loads exactly (cheapest unit with room first
    when short, dearest first when long): removes the solver's tiny balance residuals."""
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


# --------------------------------------------------------------------------- infeasibility


def diagnose_infeasible(agent_id: str, retail: Retail, rnd: Round) -> None:
    """Raise :class:`InfeasibleSetup` naming the hour(s) whose cuts or supply no reachable load meets,
    or saying that every hour is feasible alone but not together with the price-sum cap."""
    from scipy.optimize import linprog

    C, T, U = retail.n_customers, retail.horizon, rnd.price.shape[0]
    pmin_load = np.clip((retail.al - retail.price_max) / retail.be, retail.lo, retail.hi)
    pmax_load = np.clip((retail.al - retail.price_min) / retail.be, retail.lo, retail.hi)
    Gy, h, per = rnd.Gy, rnd.h, rnd.per
    loss = np.zeros(T) if rnd.loss is None else np.asarray(rnd.loss, dtype=float)
    bad: list[str] = []
    for t in range(T):
        ks = np.flatnonzero(per == t)
        bounds = ([(pmin_load[c, t], pmax_load[c, t]) for c in range(C)]
                  + [(0.0, rnd.qty[u, t]) for u in range(U)])
        A_eq = np.concatenate([np.ones(C), -np.ones(U)])[None, :]
        A_ub = np.hstack([Gy[ks, :C], -Gy[ks, C:]]) if ks.size else None
        res = linprog(np.zeros(C + U), A_ub=A_ub, b_ub=(-h[ks] if ks.size else None), A_eq=A_eq, b_eq=[-loss[t]],
                      bounds=bounds, method="highs")
        if res.status == 2:  # scipy: the hour's LP is infeasible
            if ks.size == 0:
                bad.append(f"hour {t}: the offered supply ({rnd.qty[:, t].sum():.6g} kW) is below the "
                           f"smallest reachable load ({pmin_load[:, t].sum():.6g} kW"
                           + (f" plus {loss[t]:.6g} kW of network losses)" if loss[t] else ")"))
            else:
                bad.append(f"hour {t}: cut(s) {ks.tolist()} cannot be met by any reachable load and purchase")
    n = rnd.n_cuts
    if bad:
        raise InfeasibleSetup(f"{agent_id}: the relaxed market problem with {n} cut(s) is infeasible; "
                              + "; ".join(bad))
    raise InfeasibleSetup(f"{agent_id}: the relaxed market problem with {n} cut(s) is infeasible: every hour is "
                          f"feasible on its own (periods with cuts: {sorted(set(per.tolist()))}), but not together "
                          f"with the retail price-sum cap {retail.price_sum_cap}"
                          + (" and uniform pricing" if retail.pricing == "uniform" else "")
                          + (" and the network constraints" if rnd.network is not None else ""))
