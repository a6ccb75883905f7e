"""The TSO of the ``tso-dso`` protocol (seed 004): day-ahead market, masters, real-time re-dispatch.

Day-ahead market (B.1)
----------------------
One period, copper plate, uniform price. Every resource ``i`` has a sign
``sigma_i`` (+1 producer, -1 demand), a day-ahead price ``pi_i`` and an offered
quantity ``Q_i`` (capacity; the in-sample mean for a wind farm)::

    min  sum_i sigma_i pi_i x_i                       (= -SW_DA)
    s.t. sum_i sigma_i x_i = 0                : lambda (the DA price)
         p_min_i <= x_i <= u_i                : (vs-_i, vs+_i)

with ``u_i`` the cap ``p~_i`` of a distribution-connected generator or demand (the
DSO pre-qualification, ``p_min <= p~ <= P max``) and ``Q_i`` otherwise. Day-ahead
load shedding (B.1h) is left out: every demand has ``p_min = 0`` and bids below
VOLL, so shedding is dominated by not buying and is never used.

The ``pcc`` master (MILP)
-------------------------
The market's KKT conditions, with the caps as variables::

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

Objective ``-SW_DA + sum_s phi_s alpha_s`` with one ``alpha_s`` per scenario, ``alpha_s
>= alpha_min`` (a data-derived lower bound of the real-time cost) and the multi-cuts
``alpha_s >= C_s^k + mu_s^k . (x - x^k)``. Ties between equilibria are broken by
the master itself: it picks the one best for the expected real-time cost
(optimistic bilevel). ``cm`` is the same master with the caps fixed at P max.
``fc`` drops the equilibrium conditions: an LP over ``x`` with the day-ahead balance.

Real time (C.1), the TSO's part
-------------------------------
Per scenario: transmission-connected resources re-dispatched on the DC network
(``network.dc``), the PCC exchanges ``p_e`` withdrawn at the PCC buses, and one
``theta_e`` per DSO, the cost-to-go of area ``e`` built from the DSO's cuts
``theta_e >= c + beta p_e + g . x_e`` (valid for all ``(x_e, p_e)``, kept for the
whole run). Its value ``M_s(x)`` is a convex lower bound of the real-time cost
``Q_s(x)`` in the day-ahead schedule; the subgradient ``mu_s`` that the master's
cut needs is the dual of the constraints fixing ``x_T`` plus ``sum_k nu_k g_k`` (the
duals ``nu`` of the DSO cuts times their schedule coefficients).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from network.dc import DCFlow, dc_btheta
from network.model import TransmissionGrid

from ..solve import check_status, solve_conic, solve_lp
from .dso import bcast
from ..base import Agent, SolveError
from .participants import DEM, GEN, WIND, Resource, ResourceSet

__all__ = ["DAMarket", "DAResult", "clear_da_market", "MasterResult", "Master", "TransRT",
           "build_transmission_rt", "TSO", "RTMasterResult", "equilibrium_price_interval"]


# ------------------------------------------------------------------ day-ahead market


@dataclass(frozen=True)
class DAMarket:
    """The day-ahead market's data: one entry per resource, in a fixed order."""

    ids: tuple[str, ...]
    kind: tuple[str, ...]
    price: np.ndarray
    qty: np.ndarray  # offered quantity (P max, or the expected wind)
    p_min: np.ndarray
    capped: np.ndarray  # bool: a distribution-connected generator or demand (its upper bound is a cap)
    area: np.ndarray  # int: 0 transmission, e >= 1 distribution area

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def sign(self) -> np.ndarray:
        return np.array([-1.0 if k == DEM else 1.0 for k in self.kind])

    @property
    def index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.ids)}

    def price_range(self) -> tuple[float, float]:
        return float(self.price.min()), float(self.price.max())

    def cost(self, x: np.ndarray) -> float:
        """``-SW_DA`` of quantities ``x``."""
        return float(self.sign * self.price @ np.asarray(x, dtype=float))

    def bounds(self, caps: Mapping[str, float] | np.ndarray | None) -> np.ndarray:
        """Upper bounds: the caps of capped resources (P max if not given), else the offered quantity."""
        u = self.qty.copy()
        if caps is None:
            return u
        if isinstance(caps, np.ndarray):
            return np.where(self.capped, caps, u)
        for k, v in caps.items():
            i = self.index[k]
            if not self.capped[i]:
                raise KeyError(f"{k} is not a capped resource")
            u[i] = float(v)
        return u


@dataclass
class DAResult:
    x: np.ndarray
    price: float
    cost: float  # -SW_DA
    upper: np.ndarray
    status: str


def clear_da_market(market: DAMarket, caps: Mapping[str, float] | np.ndarray | None = None, *,
                    solver: str = "HIGHS", agent: str = "TSO") -> DAResult:
    """Clear the day-ahead market LP with given caps (P max where not given)."""
    u = market.bounds(caps)
    x = cp.Variable(market.n)
    bal = -(market.sign @ x) == 0  # demand - supply == 0: dual = price
    prob = cp.Problem(cp.Minimize((market.sign * market.price) @ x), [bal, x >= market.p_min, x <= u])
    prob.solve(solver=solver)
    check_status(prob, agent, "day-ahead market LP")
    return DAResult(np.asarray(x.value, dtype=float), float(bal.dual_value), float(prob.value), u, prob.status)


def equilibrium_price_interval(market: DAMarket, x: np.ndarray, upper: np.ndarray, tol: float = 1e-6
                               ) -> tuple[float, float]:
    """The prices ``lambda`` that support quantities ``x`` (KKT of the DA market), as ``[lo, hi]``.

    Empty (``lo > hi``) if ``x`` is not a market solution for these bounds.
    """
    lo, hi = -math.inf, math.inf
    for i in range(market.n):
        at_lo = x[i] <= market.p_min[i] + tol
        at_hi = x[i] >= upper[i] - tol
        if at_lo and at_hi:
            continue
        pi, s = market.price[i], market.sign[i]
        if not at_lo and not at_hi:
            lo, hi = max(lo, pi), min(hi, pi)
        elif at_hi:  # sigma (lambda - pi) >= 0
            if s > 0:
                lo = max(lo, pi)
            else:
                hi = min(hi, pi)
        else:  # at the lower bound: sigma (lambda - pi) <= 0
            if s > 0:
                hi = min(hi, pi)
            else:
                lo = max(lo, pi)
    return lo, hi


# ------------------------------------------------------------------------ masters


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
        self.cuts_h: list[list[float]] = [[] for _ in range(self.S)]
        self.cuts_G: list[list[np.ndarray]] = [[] for _ in range(self.S)]
        self.iteration = 0
        self._build(capacity)

    # ------------------------------------------------------------------ state
    _PROBLEM_ATTRS = ("prob", "x", "alpha", "G", "h", "lam", "caps_var", "level_prob", "x_hat", "level",
                      "da_constraints")

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
        # level-bundle projection: the point closest to the incumbent whose model value is <= level
        # (Euclidean for fc, a QP; L1 for the MILP masters, so that it stays a MILP)
        self.x_hat = cp.Parameter(n, name="x_hat")
        self.level = cp.Parameter(name="level")
        scale = 1.0 / np.maximum(m.qty, 1.0)
        if self.scheme == "fc":
            dist = cp.sum_squares(cp.multiply(scale, x - self.x_hat))
        else:
            dist = cp.norm1(cp.multiply(scale, x - self.x_hat))
        self.level_prob = cp.Problem(cp.Minimize(dist), cons + [obj <= self.level])
        self._load_cuts()

    def _load_cuts(self) -> None:
        K, n = self.capacity, self.market.n
        G = np.zeros((self.S * K, n))
        h = np.full(self.S * K, self.alpha_min)
        for s in range(self.S):
            for k, (hv, gv) in enumerate(zip(self.cuts_h[s], self.cuts_G[s])):
                G[s * K + k] = gv
                h[s * K + k] = hv
        self.G.value, self.h.value = G, h

    # ------------------------------------------------------------------ use
    @property
    def n_cuts(self) -> int:
        return sum(len(c) for c in self.cuts_h)

    def add_cut(self, s: int, value: float, mu: np.ndarray, x_k: np.ndarray) -> None:
        """``alpha_s >= value + mu . (x - x_k)``."""
        mu = np.asarray(mu, dtype=float)
        hv = float(value - mu @ x_k)
        for h0, g0 in zip(self.cuts_h[s], self.cuts_G[s]):
            if abs(h0 - hv) <= 1e-9 * (1 + abs(hv)) and np.allclose(g0, mu, rtol=1e-9, atol=1e-9):
                return
        self.cuts_h[s].append(hv)
        self.cuts_G[s].append(mu.copy())
        if max(len(c) for c in self.cuts_h) > self.capacity:
            self._build(2 * self.capacity)
        else:
            K = self.capacity
            k = len(self.cuts_h[s]) - 1
            G, h = self.G.value.copy(), self.h.value.copy()
            G[s * K + k], h[s * K + k] = mu, hv
            self.G.value, self.h.value = G, h

    def solve_level(self, x_hat: np.ndarray, level: float, iteration: int | None = None) -> MasterResult:
        """The level-bundle step: ``argmin ||x - x_hat||`` over the master's feasible points whose cut-model
        value is ``<= level`` (fc: Euclidean, a QP; pcc/cm: L1, a MILP that keeps the equilibrium constraints)."""
        self.x_hat.value = np.asarray(x_hat, dtype=float)
        self.level.value = float(level)
        t0 = time.perf_counter()
        what = f"{self.scheme} level projection"
        if self.scheme == "fc":
            solve_conic(self.level_prob, self.agent, what, iteration)
        else:
            try:
                self.level_prob.solve(solver=self.solver, **self.solver_options)
            except (cp.error.SolverError, ValueError) as exc:
                raise SolveError(self.agent, what, "solver error", iteration=iteration, detail=str(exc)) from None
            check_status(self.level_prob, self.agent, what, iteration, accept_inaccurate=False)
        dt = time.perf_counter() - t0
        m = self.market
        x = np.clip(np.asarray(self.x.value, dtype=float), m.p_min, m.qty)  # interior-point accuracy (fc)
        x = np.where(np.abs(x) < 1e-9, 0.0, x)
        upper = m.qty.copy()
        if self.caps_var is not None:
            upper[self.cap_idx] = np.asarray(self.caps_var.value, dtype=float)
        price = float(self.lam.value) if self.lam is not None else math.nan
        return MasterResult(x=x, caps=upper, price=price, alpha=np.asarray(self.alpha.value, dtype=float),
                            objective=math.nan, da_cost=m.cost(x), solve_time=dt, status=str(self.level_prob.status),
                            binaries=self.n_binaries, bound=math.nan)

    def solve(self, iteration: int | None = None) -> MasterResult:
        t0 = time.perf_counter()
        if self.scheme == "fc":
            solve_lp(self.prob, self.agent, "fc master LP", iteration, solver=self.solver)
        else:
            try:
                self.prob.solve(solver=self.solver, **self.solver_options)
            except (cp.error.SolverError, ValueError) as exc:
                raise SolveError(self.agent, f"{self.scheme} master MILP", "solver error", iteration=iteration,
                                 detail=str(exc)) from None
            check_status(self.prob, self.agent, f"{self.scheme} master MILP", iteration, accept_inaccurate=False)
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


# ------------------------------------------------------------------ real time, TSO


@dataclass
class TransRT:
    """cvxpy pieces of the transmission part of the real-time problem (``S`` scenarios)."""

    res: ResourceSet
    S: int
    xv: cp.Variable
    fix: cp.Constraint  # x - xv == 0: dual = d cost / d x
    up: cp.Variable
    dn: cp.Variable
    y: cp.Expression
    shed: cp.Variable | None
    dc: DCFlow
    cost: cp.Expression  # (S,)
    constraints: list[cp.Constraint]


def build_transmission_rt(grid: TransmissionGrid, res: ResourceSet, bus_of: Mapping[str, str],
                          pcc_buses: Sequence[str], S: int, x: cp.Expression, wind: cp.Expression | None,
                          p_pcc: cp.Expression | None, *, voll: float) -> TransRT:
    """The transmission real-time re-dispatch: DC flow, units, shedding, PCC withdrawals ``p_pcc`` ``(E, S)``."""
    n = len(res)
    nb = grid.n_buses
    bidx = np.array([grid.bus_index[bus_of[k]] for k in res.ids], dtype=int)
    place = sp.csr_matrix((np.ones(n), (bidx, np.arange(n))), shape=(nb, n))
    M = place @ sp.diags(res.sign)
    xv = cp.Variable((n, S), name="xda_T")
    up = cp.Variable((n, S), nonneg=True, name="up_T")
    dn = cp.Variable((n, S), nonneg=True, name="dn_T")
    fix = bcast(x, S) - xv == 0
    y = xv + sp.diags(res.sign) @ (up - dn)
    cons: list[cp.Constraint] = [fix]
    lo = np.where(res.is_wind, 0.0, res.p_min)
    hi = np.where(res.is_wind, 0.0, res.p_max)
    y_hi: cp.Expression = cp.Constant(hi[:, None] @ np.ones((1, S)))
    w_idx = np.flatnonzero(res.is_wind)
    if w_idx.size:
        if wind is None:
            raise ValueError(f"wind availability is needed for {res.wind_ids}")
        wsel = sp.csr_matrix((np.ones(w_idx.size), (w_idx, np.arange(w_idx.size))), shape=(n, w_idx.size))
        y_hi = y_hi + wsel @ wind
    cons += [y >= lo[:, None] @ np.ones((1, S)), y <= y_hi]
    p_inj = M @ y
    dem_place = place @ sp.diags(res.is_dem.astype(float))
    shed_buses = np.flatnonzero(np.asarray(dem_place.sum(axis=1)).reshape(-1) > 0)
    shed = None
    cost = res.cost_up @ up + res.cost_down @ dn
    if shed_buses.size:
        shed = cp.Variable((shed_buses.size, S), nonneg=True, name="shed_T")
        sel = sp.csr_matrix((np.ones(shed_buses.size), (shed_buses, np.arange(shed_buses.size))),
                            shape=(nb, shed_buses.size))
        p_inj = p_inj + sel @ shed
        cons.append(shed <= sel.T @ (dem_place @ y))
        cost = cost + voll * cp.sum(shed, axis=0)
    if p_pcc is not None and len(pcc_buses):
        pidx = np.array([grid.bus_index[b] for b in pcc_buses], dtype=int)
        E = sp.csr_matrix((np.ones(pidx.size), (pidx, np.arange(pidx.size))), shape=(nb, pidx.size))
        p_inj = p_inj - E @ p_pcc
    dc = dc_btheta(grid, p_inj, power_unit="MW")
    cons += dc.constraints
    return TransRT(res, S, xv, fix, up, dn, y, shed, dc, cost, cons)


@dataclass
class RTMasterResult:
    """The TSO's real-time master for S scenarios (after a solve)."""

    p: np.ndarray  # (E, S) PCC exchanges
    lower: np.ndarray  # (S,) M_s(x): TSO cost + sum of theta (a lower bound of Q_s(x))
    trans_cost: np.ndarray  # (S,) T_s at p
    theta: np.ndarray  # (E, S)
    mu: np.ndarray  # (n_market, S) subgradient of M_s in the day-ahead quantities
    flows: np.ndarray  # (n_line, S)
    shed: np.ndarray  # (S,)
    solve_time: float


class _CutPool:
    """The DSO cuts of one area, per scenario: ``theta >= const + beta p + g . x_e``.

    Cuts that stayed inactive (zero dual) in the last ``max_age`` solves are dropped
    when a scenario holds more than ``keep`` cuts: every cut is a valid lower bound,
    so any subset is too; dropping stale ones keeps the LP small and well scaled.
    """

    def __init__(self, S: int, n_x: int, *, keep: int = 24, max_age: int = 8) -> None:
        self.S, self.n_x = S, n_x
        self.keep, self.max_age = int(keep), int(max_age)
        self.const: list[list[float]] = [[] for _ in range(S)]
        self.beta: list[list[float]] = [[] for _ in range(S)]
        self.g: list[list[np.ndarray]] = [[] for _ in range(S)]
        self.active: list[list[int]] = [[] for _ in range(S)]  # the solve count when last active
        self.clock = 0
        self.added = 0
        self.pruned = 0

    def add(self, s: int, const: float, beta: float, g: np.ndarray) -> bool:
        for c0, b0, g0 in zip(self.const[s], self.beta[s], self.g[s]):
            if (abs(c0 - const) <= 1e-9 * (1 + abs(const)) and abs(b0 - beta) <= 1e-9 * (1 + abs(beta))
                    and np.allclose(g0, g, rtol=1e-9, atol=1e-9)):
                return False
        self.const[s].append(float(const))
        self.beta[s].append(float(beta))
        self.g[s].append(np.asarray(g, dtype=float).copy())
        self.active[s].append(self.clock)
        self.added += 1
        return True

    def count(self) -> int:
        return max((len(c) for c in self.const), default=0)

    def total(self) -> int:
        return sum(len(c) for c in self.const)

    def prune(self) -> None:
        for s in range(self.S):
            n = len(self.const[s])
            if n <= self.keep:
                continue
            keep = [k for k in range(n) if self.clock - self.active[s][k] <= self.max_age]
            if len(keep) < self.keep:  # keep the most recently active ones
                order = sorted(range(n), key=lambda k: -self.active[s][k])
                keep = sorted(order[:self.keep])
            if len(keep) < n:
                self.pruned += n - len(keep)
                for name in ("const", "beta", "g", "active"):
                    lst = getattr(self, name)
                    lst[s] = [lst[s][k] for k in keep]

    def mark(self, nu: np.ndarray, tol: float = 1e-9) -> None:
        """Record which cuts were active (dual > tol) in the last solve (``nu`` ``(K, S)``)."""
        self.clock += 1
        for s in range(self.S):
            n = len(self.const[s])
            for k in range(nu.shape[0]):
                j = k if k < n else 0
                if nu[k, s] > tol:
                    self.active[s][j] = self.clock

    def arrays(self, K: int, x_e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(C, B, Gk)``: ``(K, S)`` constants at ``x_e``, slopes, and ``(K, S, n_x)`` schedule coefficients.

        Unused slots repeat the scenario's first cut.
        """
        C = np.zeros((K, self.S))
        B = np.zeros((K, self.S))
        Gk = np.zeros((K, self.S, self.n_x))
        for s in range(self.S):
            k_n = len(self.const[s])
            if k_n == 0:
                raise RuntimeError("a scenario has no cut yet")
            g = np.array(self.g[s])
            c = np.array(self.const[s]) + g @ x_e
            b = np.array(self.beta[s])
            j = np.where(np.arange(K) < k_n, np.arange(K), 0)
            Gk[:, s] = g[j]
            C[:, s] = c[j]
            B[:, s] = b[j]
        return C, B, Gk


class TSO(Agent):
    """The TSO: day-ahead market operator, masters, and the transmission real-time re-dispatch.

    Private data: the transmission grid, the bus of each transmission-connected
    resource, the PCC bus of each area. Market data (from offers and bids, and the
    market registration: kind and area of each resource): ``set_da_offer``,
    ``set_rt_offer``. It never sees a feeder.
    """

    role = "tso_dso.tso"

    def __init__(self, agent_id: str, grid: TransmissionGrid, locations: Mapping[str, str],
                 areas: Mapping[str, tuple[str, str, int]], registry: Mapping[str, tuple[str, int]], *,
                 voll: float = 10_000.0, lp_solver: str = "HIGHS", milp_solver: str = "HIGHS",
                 milp_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(agent_id)
        self.grid = grid
        self.locations = dict(locations)  # transmission resource id -> bus
        self.areas = {k: (str(v[0]), str(v[1])) for k, v in areas.items()}  # dso id -> (pcc id, bus)
        self.area_of_dso = {k: int(v[2]) for k, v in areas.items()}  # dso id -> area number
        self.registry = {k: (str(v[0]), int(v[1])) for k, v in registry.items()}  # resource -> (kind, area)
        self.voll = float(voll)
        self.lp_solver, self.milp_solver = lp_solver, milp_solver
        self.milp_options = dict(milp_options or {})
        self.da_offers: dict[str, tuple[float, float]] = {}  # id -> (price, quantity)
        self.rt_resources: dict[str, Resource] = {}
        self.wind: dict[str, dict[str, np.ndarray]] = {}
        self.dso_area_number: dict[str, int] = {}
        self.rt_lower_bounds: dict[str, float] = {}  # per DSO: a lower bound of its real-time cost
        self.n_lp_solves = 0
        self.lp_time = 0.0

    # ---------------------------------------------------------------- identity
    def public_ids(self) -> frozenset[str]:
        return frozenset()

    def decision_ids(self) -> frozenset[str]:
        """Its decisions: the day-ahead quantities of every resource and the PCC exchanges."""
        return frozenset(self.registry) | frozenset(v[0] for v in self.areas.values())

    # ---------------------------------------------------------------- inputs
    def set_da_offer(self, rid: str, price: float, quantity: float) -> None:
        if rid not in self.registry:
            raise KeyError(f"{self.id}: day-ahead offer for unregistered resource {rid}")
        self.da_offers[rid] = (float(price), float(quantity))
        self.__dict__.pop("_cache_market", None)

    def set_rt_offer(self, resource: Resource, wind: Mapping[str, np.ndarray] | None = None) -> None:
        if resource.id not in self.locations:
            raise KeyError(f"{self.id}: {resource.id} is not connected to the transmission grid")
        self.rt_resources[resource.id] = resource
        if wind:
            self.wind.setdefault(resource.id, {}).update({k: np.asarray(v, dtype=float) for k, v in wind.items()})
        for k in [k for k in self.__dict__ if k.startswith("_cache_rt")]:
            del self.__dict__[k]

    def set_rt_lower_bound(self, dso: str, value: float) -> None:
        self.rt_lower_bounds[dso] = float(value)

    # ---------------------------------------------------------------- market
    def market(self) -> DAMarket:
        mk = self.__dict__.get("_cache_market")
        if mk is not None:
            return mk
        ids = [k for k in self.registry if k in self.da_offers]
        missing = set(self.registry) - set(ids)
        if missing:
            raise ValueError(f"{self.id}: no day-ahead offer from {sorted(missing)[:5]}")
        kind = tuple(self.registry[k][0] for k in ids)
        area = np.array([self.registry[k][1] for k in ids], dtype=int)
        capped = np.array([(a > 0 and kd in (GEN, DEM)) for kd, a in zip(kind, area)])
        mk = DAMarket(tuple(ids), kind, np.array([self.da_offers[k][0] for k in ids]),
                      np.array([self.da_offers[k][1] for k in ids]), np.zeros(len(ids)), capped, area)
        self._cache_market = mk
        return mk

    def clear_da(self, caps: Mapping[str, float] | np.ndarray | None = None) -> DAResult:
        return clear_da_market(self.market(), caps, solver=self.lp_solver, agent=self.id)

    def trans_rt_lower_bound(self) -> float:
        return self.trans_set().rt_cost_lower_bound()

    def make_master(self, scheme: str, probabilities: np.ndarray, *, capacity: int = 32) -> Master:
        alpha_min = self.trans_rt_lower_bound() + sum(self.rt_lower_bounds.values())
        solver = self.lp_solver if scheme == "fc" else self.milp_solver
        return Master(self.market(), scheme, probabilities, alpha_min, capacity=capacity, solver=solver,
                      solver_options=self.milp_options if scheme != "fc" else None, agent=self.id)

    # ---------------------------------------------------------------- real time
    def trans_set(self) -> ResourceSet:
        rs = self.__dict__.get("_cache_rt_set")
        if rs is None:
            order = [k for k in self.locations if k in self.rt_resources]
            missing = set(self.locations) - set(order)
            if missing:
                raise ValueError(f"{self.id}: no real-time offer from {sorted(missing)[:5]}")
            rs = self._cache_rt_set = ResourceSet(self.rt_resources[k] for k in order)
        return rs

    def area_members(self, dso: str) -> list[str]:
        """Resources of the area of ``dso``, in the market's order (the keys of its cuts)."""
        a = self.area_of_dso[dso]
        return [k for k in self.market().ids if self.registry[k][1] == a]

    def pcc_bound(self, bus: str) -> float:
        """A bound on |p_pcc| implied by the TSO's own data (lines at the bus and resources there)."""
        lines = sum(ln.rating for ln in self.grid.lines if bus in (ln.from_bus, ln.to_bus))
        rs = self.trans_set()
        local = 0.0
        for r in rs.items:
            if self.locations[r.id] == bus:
                if r.kind == WIND:
                    local += max(float(np.max(v)) for v in self.wind[r.id].values())
                else:
                    local += r.p_max
        return float(lines + 2 * local + 1.0)

    def rt_reset(self, scenario_set: str, S: int, *, capacity: int = 16, keep: bool = True) -> None:
        """Select the real-time run of a scenario set (``S`` scenarios).

        The DSO cuts are valid for every day-ahead schedule, so the cut pools of a
        scenario set are kept (``keep``) across schemes and iterations; a new set (or a
        new size) starts with empty pools. The problem is (re)built lazily.
        """
        by_set = self.__dict__.setdefault("_pools_by_set", {})
        pools = by_set.get(scenario_set)
        if not keep or pools is None or next(iter(pools.values())).S != int(S):
            pools = {d: _CutPool(S, len(self.area_members(d))) for d in self.areas}
            by_set[scenario_set] = pools
        if getattr(self, "_rt_set", None) != scenario_set or getattr(self, "_rt_S", None) != int(S):
            self.__dict__.pop("_cache_rt_prob", None)
        self._rt_set, self._rt_S = scenario_set, int(S)
        self._pools = pools
        self._rt_capacity = max(int(capacity), getattr(self, "_rt_capacity", 0))

    def rt_has_cuts(self) -> bool:
        return all(all(len(c) > 0 for c in p.const) for p in self._pools.values())

    def rt_add_cut(self, dso: str, s: int, coefficients: Mapping[str, float], constant: float) -> bool:
        """A DSO cut ``theta_e,s >= constant + sum coef * (p or x)``; returns False if already known."""
        pcc, _ = self.areas[dso]
        members = self.area_members(dso)
        allowed = set(members) | {pcc}
        extra = set(coefficients) - allowed
        if extra:
            raise KeyError(f"{self.id}: cut from {dso} has coefficients on {sorted(extra)[:5]}")
        g = np.array([float(coefficients.get(k, 0.0)) for k in members])
        return self._pools[dso].add(s, float(constant), float(coefficients.get(pcc, 0.0)), g)

    def _rt_problem(self) -> dict[str, Any]:
        pr = self.__dict__.get("_cache_rt_prob")
        K_need = max(p.count() for p in self._pools.values())
        if pr is not None and pr["K"] >= K_need:
            return pr
        K = self._rt_capacity
        while K < K_need:
            K *= 2
        self._rt_capacity = K
        S = self._rt_S
        rs = self.trans_set()
        dsos = list(self.areas)
        E = len(dsos)
        x = cp.Parameter(len(rs), name="x_T")
        n_w = len(rs.wind_ids)
        wind = cp.Parameter((n_w, S), nonneg=True, name="wind_T") if n_w else None
        p = cp.Variable((E, S), name="p_pcc")
        theta = cp.Variable((E, S), name="theta")
        model = build_transmission_rt(self.grid, rs, self.locations, [self.areas[d][1] for d in dsos], S, x, wind,
                                      p, voll=self.voll)
        bound = np.array([self.pcc_bound(self.areas[d][1]) for d in dsos])
        cons = list(model.constraints) + [p <= bound[:, None] @ np.ones((1, S)), p >= -bound[:, None] @ np.ones((1, S))]
        Cs, Bs, cut_cons = [], [], []
        ones = np.ones((K, 1))
        for e in range(E):
            C = cp.Parameter((K, S), name=f"cut_c_{e}")
            B = cp.Parameter((K, S), name=f"cut_b_{e}")
            c = ones @ theta[e:e + 1, :] >= C + cp.multiply(B, ones @ p[e:e + 1, :])
            Cs.append(C)
            Bs.append(B)
            cut_cons.append(c)
        prob = cp.Problem(cp.Minimize(cp.sum(model.cost) + cp.sum(theta)), cons + cut_cons)
        pr = dict(prob=prob, model=model, x=x, wind=wind, p=p, theta=theta, C=Cs, B=Bs, cuts=cut_cons, K=K)
        self._cache_rt_prob = pr
        return pr

    def rt_solve(self, x_market: np.ndarray, *, iteration: int | None = None) -> RTMasterResult:
        """Solve the real-time master for the day-ahead quantities ``x_market`` (market order)."""
        pr = self._rt_problem()
        mk = self.market()
        idx = mk.index
        rs = self.trans_set()
        S = self._rt_S
        x_market = np.asarray(x_market, dtype=float)
        pr["x"].value = np.array([x_market[idx[k]] for k in rs.ids])
        if pr["wind"] is not None:
            pr["wind"].value = np.maximum(np.vstack([self.wind[k][self._rt_set] for k in rs.wind_ids]), 0.0)
        Gks = []
        for pool in self._pools.values():
            pool.prune()
        for e, d in enumerate(self.areas):
            members = self.area_members(d)
            x_e = np.array([x_market[idx[k]] for k in members])
            C, B, Gk = self._pools[d].arrays(pr["K"], x_e)
            pr["C"][e].value, pr["B"][e].value = C, B
            Gks.append((members, Gk))
        prob: cp.Problem = pr["prob"]
        t0 = time.perf_counter()
        solve_lp(prob, self.id, "real-time master LP", iteration, solver=self.lp_solver)
        dt = time.perf_counter() - t0
        self.n_lp_solves += 1
        self.lp_time += dt
        model: TransRT = pr["model"]
        theta = np.asarray(pr["theta"].value, dtype=float).reshape(-1, S)
        tcost = np.asarray(model.cost.value, dtype=float).reshape(-1)
        mu = np.zeros((mk.n, S))
        fixd = np.asarray(model.fix.dual_value, dtype=float).reshape(len(rs), S)
        for i, k in enumerate(rs.ids):
            mu[idx[k]] = fixd[i]
        for e, (members, Gk) in enumerate(Gks):
            nu = np.asarray(pr["cuts"][e].dual_value, dtype=float).reshape(pr["K"], S)
            self._pools[list(self.areas)[e]].mark(nu)
            contrib = np.einsum("ks,ksn->ns", nu, Gk)
            for j, k in enumerate(members):
                mu[idx[k]] += contrib[j]
        shed = (np.asarray(model.shed.value).sum(axis=0) if model.shed is not None else np.zeros(S))
        return RTMasterResult(p=np.asarray(pr["p"].value, dtype=float).reshape(-1, S), lower=tcost + theta.sum(axis=0),
                              trans_cost=tcost, theta=theta, mu=mu,
                              flows=np.asarray(model.dc.flow.value, dtype=float).reshape(self.grid.n_lines, S),
                              shed=shed, solve_time=dt)

    def initial_exchange(self, x_market: np.ndarray) -> np.ndarray:
        """``(E,)``: each area's day-ahead net demand (demand - generation - wind), a first exchange to try."""
        mk = self.market()
        out = []
        for d in self.areas:
            a = self.area_of_dso[d]
            sel = mk.area == a
            out.append(float(-(mk.sign[sel] @ np.asarray(x_market)[sel])))
        return np.array(out)
