"""The paper's master of the ``tso-dso`` protocol (seed 004): the day-ahead market's KKT conditions as a big-M MILP.

The protocol's Benders loop no longer uses this master (``joint_master.py`` describes the same
equilibria as a union of boxes, one per price level, and carries the TSO's real-time model);
it remains the day-ahead part of the centralized benchmark (``Master.da_constraints`` in
``coordinator/tso_dso/benchmarks.extensive_form``, a mixed-integer SOCP solved by SCIP) and a
stand-alone Benders master with one cut per scenario on the whole real-time cost.

The ``pcc`` master (MILP)
-------------------------
The day-ahead market's KKT conditions (``day_ahead.py``), with the caps as variables::

    stationarity   vs+_i - vs-_i = sigma_i (lambda - pi_i)
    complementarity  0 <= vs-_i  _|_  x_i - p_min_i >= 0,   0 <= vs+_i  _|_  u_i - x_i >= 0

each pair with one binary and big-M constants derived from the data:

- ``lambda`` is bounded by ``[pi_lo, pi_hi]``, the lowest and highest day-ahead price
  of all offers and bids. This loses no equilibrium: the prices supporting a market
  solution form an interval whose bounds are given by accepted/rejected offers and
  bids, and if all of it lay above ``pi_hi`` (below ``pi_lo``) every constraint would
  be of the form ``lambda >= pi_i`` (``<= pi_i``), so ``pi_hi`` (``pi_lo``) would
  support it too.
- hence ``vs+_i <= max(0, sigma_i (lambda - pi_i)) <= M+_i`` with ``M+_i = pi_hi - pi_i``
  for producers and ``pi_i - pi_lo`` for demands, and ``vs-_i <= M-_i`` symmetrically
  (when both bounds are active, ``p~ = p_min``, the pair can always be chosen with one
  of them 0);
- the primal slacks are bounded by ``P max_i - p_min_i``.

The big-M formulation is tightened by valid inequalities (``Master._price_levels``):
a one-hot choice of the price level among the distinct offer/bid prices, which fixes
the side of every resource not at the money. They cut off no equilibrium quantities
and cut the master's solve time by about 3 on the case (``strengthen=False`` drops them).

Objective ``-SW_DA + sum_s phi_s alpha_s`` ($) with one ``alpha_s`` per scenario, ``alpha_s
>= alpha_min`` (a data-derived lower bound of the real-time cost) and the multi-cuts
``alpha_s >= C_s^k + mu_s^k . (x - x^k)`` (``mu`` in $/MWh, ``x`` in MW), held in an
:class:`agents.cuts.CutPool`. Ties between equilibria are broken by the master itself:
it picks the one best for the expected real-time cost (optimistic bilevel). ``cm`` is
the same master with the caps fixed at P max. ``fc`` drops the equilibrium conditions:
an LP over ``x`` with the day-ahead balance.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from ..cuts import CutPool
from ..solve import Attempt, solve, solve_lp
from .day_ahead import DAMarket

__all__ = ["MasterResult", "Master"]


@dataclass
class MasterResult:
    x: np.ndarray
    caps: np.ndarray  # upper bounds used (caps of capped resources)
    price: float  # lambda (nan for fc)
    alpha: np.ndarray
    objective: float  # the master's value at x (-SW_DA + sum phi alpha)
    da_cost: float  # -SW_DA
    solve_time: float
    status: str
    binaries: int = 0
    bound: float = math.nan  # a lower bound of the master's optimum (the MIP dual bound; = objective for an LP)


class Master:
    """A Benders master: ``pcc`` (MILP), ``cm`` (MILP, caps = P max) or ``fc`` (LP).

    Built once with a fixed-capacity cut pool of Parameters (``capacity`` cuts per
    scenario; it is rebuilt with twice the capacity when full). A cut row is
    ``alpha_s >= h + G . x``; unused rows hold ``alpha_s >= alpha_min``.
    """

    def __init__(self, market: DAMarket, scheme: str, probabilities: np.ndarray, alpha_min: float, *,
                 capacity: int = 32, solver: str = "HIGHS", solver_options: Mapping[str, Any] | None = None,
                 agent: str = "TSO", strengthen: bool = True) -> None:
        if scheme not in ("pcc", "cm", "fc"):
            raise ValueError(f"scheme must be pcc, cm or fc, got {scheme!r}")
        self.market, self.scheme = market, scheme
        self.phi = np.asarray(probabilities, dtype=float)
        self.S = self.phi.size
        self.alpha_min = float(alpha_min)
        self.solver = solver
        self.solver_options = dict(solver_options or {})
        self.agent = agent
        self.strengthen = bool(strengthen)
        self.cuts = CutPool(self.S, market.n, rtol=1e-9, atol=1e-9)  # alpha_s >= h + G . x, per scenario s
        self.iteration = 0
        self._build(capacity)

    # ------------------------------------------------------------------ state
    _PROBLEM_ATTRS = ("prob", "x", "alpha", "G", "h", "lam", "caps_var", "da_constraints")

    def __getstate__(self) -> dict[str, Any]:
        # the cvxpy problem is rebuilt from the data and the cuts (snapshots stay small)
        return {k: v for k, v in self.__dict__.items() if k not in self._PROBLEM_ATTRS}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._build(self.capacity)

    # ------------------------------------------------------------------ build
    def big_m(self) -> dict[str, np.ndarray]:
        """The big-M constants (see the module docstring)."""
        m = self.market
        lo, hi = m.price_range()
        s = m.sign
        dual_plus = np.where(s > 0, hi - m.price, m.price - lo)
        dual_minus = np.where(s > 0, m.price - lo, hi - m.price)
        slack = m.qty - m.p_min
        return {"dual_plus": np.maximum(dual_plus, 0.0), "dual_minus": np.maximum(dual_minus, 0.0),
                "primal": np.maximum(slack, 0.0), "price_lo": np.array(lo), "price_hi": np.array(hi)}

    def price_levels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The distinct day-ahead prices ``p_j`` and, per level ``j`` and resource ``i``, the state of ``i`` when
        ``lambda = p_j``: ``state[j, i]`` = +1 in the money (``sigma_i (p_j - pi_i) > 0``: at its upper bound),
        -1 out of the money (at its lower bound), 0 at the money (free)."""
        m = self.market
        levels = np.unique(m.price)
        d = m.sign[None, :] * (levels[:, None] - m.price[None, :])
        state = np.where(np.abs(d) <= 1e-9, 0, np.sign(d)).astype(int)
        return levels, state, d

    def _price_levels(self, x: cp.Variable, upper: cp.Expression, lam: cp.Variable, z_minus: cp.Variable,
                      z_plus: cp.Variable) -> list[cp.Constraint]:
        """Valid inequalities that tighten the big-M KKT formulation (they cut off no equilibrium quantities).

        The prices supporting a market solution form an interval whose ends are offer or
        bid prices (see ``big_m``), so every equilibrium ``x`` is supported by one of the
        distinct prices ``p_j``. With ``y_j`` (one-hot) selecting it, ``lambda = sum_j p_j
        y_j`` and each resource is at its upper bound if in the money, at its lower bound
        if out of the money (free at the money). Equilibria whose master price lies
        strictly between two levels are represented at an adjacent level with the same
        quantities and caps.
        """
        m = self.market
        levels, state, _ = self.price_levels()
        J, n = state.shape
        y = cp.Variable(J, boolean=True, name="price_level")
        self.n_binaries_levels = J
        up_in = (state == 1).astype(float)  # (J, n)
        out = (state == -1).astype(float)
        slack = np.maximum(m.qty - m.p_min, 0.0)
        cons = [cp.sum(y) == 1, lam == levels @ y,
                # in the money: x_i >= u_i  (u_i - x_i <= slack_i * (1 - in_i))
                upper - x <= cp.multiply(slack, 1 - up_in.T @ y),
                # out of the money: x_i <= p_min_i
                x - m.p_min <= cp.multiply(slack, 1 - out.T @ y),
                # which complementarity side may be active
                z_plus >= up_in.T @ y, z_minus >= out.T @ y,
                z_plus <= 1 - out.T @ y, z_minus <= 1 - up_in.T @ y]
        return cons

    def _build(self, capacity: int) -> None:
        m, S = self.market, self.S
        self.capacity = int(capacity)
        n = m.n
        x = cp.Variable(n, name="x_da")
        alpha = cp.Variable(S, name="alpha")
        K = self.capacity
        G = cp.Parameter((S * K, n), name="cut_G")
        h = cp.Parameter(S * K, name="cut_h")
        rep = sp.kron(sp.eye(S), np.ones((K, 1)), format="csr")  # row (s, k) -> alpha_s
        cut_cons: list[cp.Constraint] = [rep @ alpha >= h + G @ x, alpha >= self.alpha_min]
        cons: list[cp.Constraint] = []
        cons.append(m.sign @ x == 0)
        cons.append(x >= m.p_min)
        cap_idx = np.flatnonzero(m.capped)
        lam = caps = None
        self.n_binaries = 0
        if self.scheme == "fc":
            cons.append(x <= m.qty)
            upper = cp.Constant(m.qty)
        else:
            if self.scheme == "pcc" and cap_idx.size:
                caps = cp.Variable(cap_idx.size, name="caps")
                E = sp.csr_matrix((np.ones(cap_idx.size), (cap_idx, np.arange(cap_idx.size))), shape=(n, cap_idx.size))
                base = np.where(m.capped, 0.0, m.qty)
                upper = base + E @ caps
                cons += [caps >= m.p_min[cap_idx], caps <= m.qty[cap_idx]]
            else:
                upper = cp.Constant(m.qty)
            cons.append(x <= upper)
            bm = self.big_m()
            lam = cp.Variable(name="lambda")
            d_minus = cp.Variable(n, nonneg=True, name="vs_minus")
            d_plus = cp.Variable(n, nonneg=True, name="vs_plus")
            z_minus = cp.Variable(n, boolean=True, name="z_minus")
            z_plus = cp.Variable(n, boolean=True, name="z_plus")
            self.n_binaries = 2 * n
            self.n_binaries_levels = 0
            if self.strengthen:
                cons += self._price_levels(x, upper, lam, z_minus, z_plus)
            cons += [lam >= bm["price_lo"], lam <= bm["price_hi"],
                     d_plus - d_minus == cp.multiply(m.sign, lam - m.price),
                     d_minus <= cp.multiply(bm["dual_minus"], z_minus),
                     x - m.p_min <= cp.multiply(bm["primal"], 1 - z_minus),
                     d_plus <= cp.multiply(bm["dual_plus"], z_plus),
                     upper - x <= cp.multiply(bm["primal"], 1 - z_plus)]
        self.da_constraints = list(cons)  # the day-ahead part (market, caps, KKT): reused by extensive forms
        cons = cons + cut_cons
        obj = (m.sign * m.price) @ x + self.phi @ alpha
        self.prob = cp.Problem(cp.Minimize(obj), cons)
        self.x, self.alpha, self.G, self.h, self.lam, self.caps_var = x, alpha, G, h, lam, caps
        self.cap_idx = cap_idx
        self._load_cuts()

    def _load_cuts(self) -> None:
        K, n = self.capacity, self.market.n
        G = np.zeros((self.S * K, n))
        h = np.full(self.S * K, self.alpha_min)
        for s in range(self.S):
            hs, Gs = self.cuts.rows(s)
            G[s * K:s * K + hs.size] = Gs
            h[s * K:s * K + hs.size] = hs
        self.G.value, self.h.value = G, h

    # ------------------------------------------------------------------ use
    @property
    def n_cuts(self) -> int:
        return len(self.cuts)

    def add_cut(self, s: int, value: float, mu: np.ndarray, x_k: np.ndarray) -> None:
        """``alpha_s >= value + mu . (x - x_k)``."""
        mu = np.asarray(mu, dtype=float)
        hv = float(value - mu @ x_k)
        if not self.cuts.add(s, hv, mu):  # already held
            return
        if self.cuts.count() > self.capacity:
            self._build(2 * self.capacity)
        else:
            K = self.capacity
            k = self.cuts.count(s) - 1
            G, h = self.G.value.copy(), self.h.value.copy()
            G[s * K + k], h[s * K + k] = mu, hv
            self.G.value, self.h.value = G, h

    def solve(self, iteration: int | None = None) -> MasterResult:
        t0 = time.perf_counter()
        if self.scheme == "fc":
            solve_lp(self.prob, self.agent, "fc master LP", iteration, solver=self.solver)
        else:
            solve(self.prob, [Attempt(self.solver, self.solver_options)], self.agent, f"{self.scheme} master MILP",
                  iteration=iteration, accept_inaccurate=False)
        dt = time.perf_counter() - t0
        m = self.market
        x = np.asarray(self.x.value, dtype=float)
        x = np.where(np.abs(x) < 1e-9, 0.0, x)
        upper = m.qty.copy()
        if self.caps_var is not None:
            upper[self.cap_idx] = np.asarray(self.caps_var.value, dtype=float)
        price = float(self.lam.value) if self.lam is not None else math.nan
        value = float(self.prob.value)
        bound = value
        if self.scheme != "fc":  # the incumbent of a MIP is not a lower bound: use the dual bound
            stats = getattr(self.prob.solver_stats, "extra_stats", None)
            db = getattr(stats, "mip_dual_bound", None)
            if db is not None and math.isfinite(db):
                bound = min(value, float(db))
        return MasterResult(x=x, caps=upper, price=price, alpha=np.asarray(self.alpha.value, dtype=float),
                            objective=value, da_cost=m.cost(x), solve_time=dt, status=str(self.prob.status),
                            binaries=self.n_binaries + getattr(self, "n_binaries_levels", 0), bound=bound)
