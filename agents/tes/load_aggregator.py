"""Load aggregator (LA) of the ``tes`` protocol: personalized retail pricing as a bilevel problem.

The LA buys energy from supply units (DER units at their offer prices, the main grid ``MG`` at
LMP) and resells it to its customers (:mod:`agents.tes.customers`) at hourly retail prices
``pi_{c,t}`` ($/kWh) in ``[price_min, price_max]`` with ``sum_t pi_{c,t} <= price_sum_cap`` for
every customer; each customer answers with its best response ``clip((alpha - pi) / beta, lo,
hi)`` (kW). The LA maximises its profit ``sum pi p - sum c x`` ($) subject to the balance
``sum_u x_{u,t} = sum_c p_{c,t} + L_t`` (``L_t`` the network losses the TES operator reported, kW;
zero with the linear, lossless check), ``0 <= x <= offered quantity`` (kW) and every
feasibility cut received (decision 2 of ``docs/tes_reference.md``), to certified global
optimality.

The pieces, one module each:

- :mod:`agents.tes.la_problem`: the problem in arrays (retail side, one solve's offers and
  cuts), the exact evaluation of a point, the infeasibility diagnosis, :class:`LASolution`;
- :mod:`agents.tes.la_formulations`: the cvxpy models: the hull SOCP, the KKT MIQP and the
  McCormick MILP (appendix B of the seed);
- :mod:`agents.tes.la_branch_and_bound`: the spatial branch-and-bound on the hull relaxation
  with its certified (Lagrangian) bound: the default method, ``method="hull_bb"``;
- :mod:`agents.tes.la_polish`: the tie-break of purchases among units offering the same price.

Methods: ``method="hull_bb"`` (default, exact); ``method="kkt_miqp"`` (exact, SCIP, kept for
cross-checks: ~4 s personalized and ~30 s uniform on the feeder case, with SCIP's tolerances
(feasibility 1e-6), so its profit is accurate to ~1e-7 only); ``relaxation="mccormick"`` (the
MILP of appendix B, HiGHS, ~0.5 s on the feeder case, an upper bound; the solution reports ``w``
and ``w - p pi``).

Measured on the 9-customer, 24-hour ``tes_feeder`` case with marginal-cost offers
(``bench/bench_load_aggregator.py``): personalized pricing, the root relaxation is exact (1 node,
~25-50 ms per re-solve, ~0.35 s for the first solve which builds and compiles the problem);
uniform pricing, 5-7 nodes, ~0.15-0.3 s; a Benders day of the ``tes`` protocol (3 LA solves)
costs ~0.3 s (personalized) / ~0.9 s (uniform) of LA time. Random instances with cuts take 1-21
nodes (up to ~1 s).

Cuts
----
``(period, coefficients, constant)`` means ``constant + sum_k coefficients[k] y_k <= 0`` in that
period, with ``y`` the LA's injection decisions: ``p_{c,t}`` for customer ``c`` (kW, consumption
positive), ``q_{c,t} = tan_phi_c p_{c,t}`` for ``"<c>#q"`` (kVAr) and ``-x_{u,t}`` for a supply
unit ``u`` (generation is a negative injection). The cuts of a solve are kept in a vector
:class:`agents.cuts.CutPool` (one index per hour; a repeated cut is dropped) whose dense arrays
fill a fixed-capacity block of cvxpy parameters per hour (:meth:`agents.cuts.CutPool.slots`);
the capacity doubles (:func:`agents.cuts.capacity_for`, the problem is rebuilt) only when full.

The problems are built once per (supplier set, pool capacity, network callable) and cached in
attributes named ``_cache...`` (dropped from snapshots, rebuilt lazily).
"""
from __future__ import annotations

import math
import time
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..base import Agent, InfeasibleSetup
from ..cuts import capacity_for
from .customers import Q_SUFFIX, Customer, customers_from_case
from .la_branch_and_bound import branch_and_bound
from .la_formulations import Model, Segments, build_hull, build_kkt, segments, solve_kkt
from .la_polish import polish
from .la_problem import (METHODS, PRICINGS, RELAXATIONS, CutLike, LASolution, NetworkFn, Outcome, Retail, Round,
                         cut_pool, offer_arrays)

__all__ = ["LoadAggregator"]


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
    def new_day(self, baselines: Mapping[str, Any], alphas: Mapping[str, Any] | None = None) -> None:
        """The day's baseline load ``p0`` (kW, (T,)) and utility ``alpha`` ($/kWh, (T,)) of its customers
        (customer id -> profile; others keep theirs): the LA's own private data for the day. The models are
        rebuilt on the next solve; the cuts, kept by the caller, stay valid (they are in the LA's
        injections, whatever the loads)."""
        import dataclasses

        alphas = alphas or {}
        unknown = sorted((set(baselines) | set(alphas)) - set(self.customer_ids))
        if unknown:
            raise ValueError(f"{self.id}: no customer {unknown[0]!r}")
        self.customers = tuple(dataclasses.replace(c, p0=np.asarray(baselines.get(c.id, c.p0), float),
                                                   alpha=np.asarray(alphas.get(c.id, c.alpha), float))
                               for c in self.customers)
        for c in self.customers:
            if c.horizon != self.horizon:
                raise ValueError(f"{self.id}: customer {c.id} has {c.horizon} periods, horizon is {self.horizon}")
        for k in [k for k in self.__dict__ if k.startswith("_cache")]:
            delattr(self, k)
        self.last_solution = None

    def _retail(self) -> Retail:
        r = getattr(self, "_cache_retail", None)
        if r is None:
            r = Retail.of(self.customers, self.horizon, pricing=self.pricing, price_min=self.price_min,
                          price_max=self.price_max, price_sum_cap=self.price_sum_cap)
            self._cache_retail = r
        return r

    def _segments(self) -> Segments:
        seg = getattr(self, "_cache_segments", None)
        if seg is None:
            seg = self._cache_segments = segments(self._retail())
        return seg

    def best_response(self, prices: np.ndarray) -> np.ndarray:
        """Loads (C, T) of all customers at retail prices (C, T) (or (T,) for one price per hour)."""
        return self._retail().best_response(prices)

    # ---------------------------------------------------------------- models
    def _models(self) -> dict:
        cache: dict = getattr(self, "_cache_models", None) or {}
        self._cache_models = cache
        return cache

    def _model(self, kind: str, per_period: int, network: Any) -> Model:
        """The cached model of ``kind`` ("hull", "miqp", "mccormick") with room for ``per_period``
        cuts per period (the pool's capacity doubles until they fit: the model is rebuilt then)."""
        cache = self._models()
        self.cut_capacity = capacity_for(per_period, start=self.cut_capacity)
        key = (kind, None if network is None else id(network))
        m = cache.get(key)
        if (m is None or m.suppliers != self.supplier_ids or m.capacity != self.cut_capacity
                or m.network is not network):
            m = Model(kind, self.supplier_ids, self.cut_capacity, network)
            if kind == "hull":
                build_hull(self._retail(), self._segments(), m)
            else:
                build_kkt(self._retail(), m, mccormick=(kind == "mccormick"))
            if network is not None:  # keep at most one network model per kind
                for k in [k for k in cache if k[0] == kind and k[1] is not None]:
                    del cache[k]
            cache[key] = m
        return m

    # ---------------------------------------------------------------- solve
    def solve(self, offers: Mapping[str, Any], cuts: Iterable[CutLike] = (),
              network: NetworkFn | None = None, losses: Any = None) -> LASolution:
        """Solve the LA's problem for the given offers and feasibility cuts.

        ``offers``: unit id -> (price (T,) $/kWh, quantity (T,) kW) (``np.inf`` = unlimited).
        ``cuts``: every cut received so far (see the module docstring). ``network``
        (centralized benchmark only): called with ``{meter: p injection expr (T,)}`` and
        ``{meter: q injection expr (T,)}`` and returns cvxpy constraints added to the problem.
        ``losses``: (T,) network losses (kW) the purchases cover on top of the loads (the TES
        operator's estimate for the last schedule; None = none).
        Raises :class:`agents.base.InfeasibleSetup` (naming the hour) if no schedule meets the
        cuts, :class:`agents.base.SolveError` if a solver fails.
        """
        t0 = time.perf_counter()
        cuts = list(cuts)
        self._add_suppliers(offers.keys())
        retail = self._retail()
        loss = None
        if losses is not None:
            loss = np.array(losses, dtype=float).reshape(-1)
            if loss.shape != (self.horizon,) or not np.all(np.isfinite(loss)):
                raise ValueError(f"{self.id}: losses must be {self.horizon} finite numbers (kW)")
        price, qty, _ = offer_arrays(retail, self.supplier_ids, offers, self.id, loss)
        pool = cut_pool(retail, self.supplier_ids, cuts, self.id)
        if self.relaxation == "mccormick":
            kind = "mccormick"
        else:
            kind = "hull" if self.method == "hull_bb" else "miqp"
        m = self._model(kind, pool.count(), network)
        K = m.capacity
        m.par["price"].value = price
        m.par["qty"].value = qty
        hk, Gk, slot = pool.slots(K, self.horizon)
        m.par["G"].value, m.par["h"].value = Gk, hk
        m.par["loss"].value = np.zeros(self.horizon) if loss is None else loss
        Gy, h, per = pool.matrix()
        rnd = Round(price, qty, Gy, h, per, slot, K, network, len(self.customers), loss)
        if kind == "hull":
            out = branch_and_bound(self.id, retail, self._segments(), m, rnd, gap_tol=self.gap_tol,
                                   node_limit=self.node_limit, time_limit=self.time_limit)
        else:
            out = solve_kkt(self.id, retail, m, rnd, kind, gap_tol=self.gap_tol, time_limit=self.time_limit)
        sol = self._make_solution(rnd, out)
        sol.solve_time = time.perf_counter() - t0
        self.last_solution = sol
        return sol

    def _make_solution(self, rnd: Round, out: Outcome) -> LASolution:
        """The solution record, after the tie-break of purchases; the profit is evaluated exactly."""
        retail = self._retail()
        _, _, pi, p, x = out.cand
        price = rnd.price
        x, tie_break = polish(self.id, retail, self.supplier_ids, self._models(), rnd, p, x)
        profit = float(np.sum(pi * p) - np.sum(price * x))
        objective = profit if out.objective is None else out.objective
        cids, uids = self.customer_ids, self.supplier_ids
        T = self.horizon
        loads = {c: p[k].copy() for k, c in enumerate(cids)}
        prices = {c: pi[k].copy() for k, c in enumerate(cids)}
        purchases = {u: x[k].copy() for k, u in enumerate(uids)}
        inj_p = {**loads, **{u: -x[k] for k, u in enumerate(uids)}}
        inj_q = {**{c: retail.tan[k] * p[k] for k, c in enumerate(cids)}, **{u: np.zeros(T) for u in uids}}
        revenue = {c: pi[k] * p[k] for k, c in enumerate(cids)}
        cost = {u: price[k] * x[k] for k, u in enumerate(uids)}
        surplus = {c: cu.surplus(pi[k], p[k]) for k, (c, cu) in enumerate(zip(cids, self.customers))}
        gap = max(0.0, out.bound - profit) / max(1.0, abs(profit))
        raw_viol = float(np.max(rnd.cut_lhs(p, x))) if rnd.n_cuts else 0.0
        sol = LASolution(objective=float(objective), profit=float(profit), purchases=purchases, loads=loads,
                         prices=prices, injections_p=inj_p, injections_q=inj_q, status=out.status, solve_time=0.0,
                         gap=float(gap), bound=float(out.bound), method=out.method, pricing=self.pricing,
                         relaxation=self.relaxation, nodes=out.nodes, revenue=revenue, cost=cost, surplus=surplus,
                         cut_violation=raw_viol, tie_break_solver=tie_break,
                         losses=None if rnd.loss is None else rnd.loss.copy())
        if out.w is not None:  # McCormick: the revenue variables and their gap to p pi
            sol.w = {c: out.w[k].copy() for k, c in enumerate(cids)}
            sol.mccormick_gap = {c: out.w[k] - sol.loads[c] * sol.prices[c] for k, c in enumerate(cids)}
        return sol

    # ---------------------------------------------------------------- settlement helpers
    def customer_surplus(self, solution: LASolution) -> dict[str, float]:
        """Surplus (utility - payment) over the horizon per customer, $."""
        return solution.customer_surplus()

    def revenue(self, solution: LASolution) -> float:
        return solution.total_revenue()

    def cost(self, solution: LASolution) -> float:
        return solution.total_cost()
