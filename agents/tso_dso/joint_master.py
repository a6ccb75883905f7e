"""The TSO's day-ahead master with its own real-time model (``tso-dso``, seed 004).

The master of every scheme is ``min -SW_DA(x) + sum_s phi_s (T_s(x_T, p_s) + sum_e theta_e,s)``
over the scheme's day-ahead decisions ``x`` (MW) and, per in-sample scenario ``s``, the PCC
exchanges ``p_s`` (MW): ``T_s`` is the TSO's transmission re-dispatch of scenario ``s`` (the
same DC model as its real-time master, ``realtime.py``, with ``x`` a variable), and
``theta_e,s`` ($) the cost-to-go of area ``e`` built from that DSO's cuts ``theta_e,s >= c +
beta p_e,s + g . x_e`` (valid for every schedule and exchange). Only the DSOs' costs are
approximated by cuts, each in the few dimensions of its own area (the PCC exchange and the
area's resources); the transmission part is exact. Compared with the paper's master (one
cut per scenario on the real-time cost as a whole, in all day-ahead quantities at once),
the iterations drop from 30-80 to 10-25 on the case (see ``bench/bench_tso_dso.py``).

Day-ahead decisions of each scheme (:class:`Regions`)
-----------------------------------------------------
- ``fc``: ``p_min <= x <= Q``, ``sum sigma x = 0`` (one region, no market).
- ``pcc``: the day-ahead market equilibria with DSO caps. An equilibrium is supported by one
  of the distinct offer/bid prices ``pi_j`` (``master.Master.price_levels``: the prices
  supporting a market solution form an interval whose ends are offer or bid prices), and
  at ``lambda = pi_j`` a resource in the money is at its upper bound, one out of the money
  at ``p_min``, one at the money anywhere in between. A capped (distribution-connected)
  generator or demand in the money is at its cap, which is a free decision in ``[p_min,
  Q]``. So the equilibria at level ``j`` are the box ``lo_j <= x <= hi_j`` with the balance,
  and the feasible set of the master is the union of these boxes over the levels:
  exactly the feasible set of the big-M KKT MILP of ``master.Master`` (which remains the
  centralized benchmark's formulation), without binaries.
- ``cm``: the same with the caps fixed at ``Q`` (the equilibria of the uncapped market).

Master by price level
---------------------
For a fixed level the master is an LP; the union is searched best-first: every feasible
level keeps a lower bound (the value of its LP, solved with the cuts held at that time,
stays a valid bound as cuts are added), and :meth:`JointMaster.solve_best` re-solves the
level with the smallest bound until that bound is current. Its solution is the master's
solution over the union (what the MILP would return), and the smallest bound is the
master's bound. A level is solved once at the start and again only while it is the most
promising one.

Caps reported for a ``pcc`` solution: ``x`` for a capped resource in or at the money (its
cap binds), ``Q`` for one out of the money (at ``p_min`` whatever its cap).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from network.model import TransmissionGrid

from ..cuts import CutPool, capacity_for
from ..solve import solve_lp
from .day_ahead import DAMarket
from .participants import ResourceSet
from .realtime import TransRT, build_transmission_rt

__all__ = ["Regions", "JointMaster", "JointResult"]


@dataclass(frozen=True)
class Regions:
    """The day-ahead decision set of a scheme as a union of boxes with the balance ``sum sigma x = 0``.

    ``price[j]`` ($/MWh, NaN for fc), ``lo[j]``, ``hi[j]`` ``(n,)`` (MW), ``state[j]`` ``(n,)``: +1
    in the money, -1 out, 0 at the money (all 0 for fc); only levels whose box meets the
    balance are kept.
    """

    scheme: str
    price: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    state: np.ndarray
    capped: np.ndarray
    qty: np.ndarray

    @classmethod
    def of(cls, market: DAMarket, scheme: str) -> "Regions":
        m = market
        if scheme == "fc":
            return cls(scheme, np.array([math.nan]), m.p_min[None, :].copy(), m.qty[None, :].copy(),
                       np.zeros((1, m.n), dtype=int), m.capped.copy(), m.qty.copy())
        if scheme not in ("pcc", "cm"):
            raise ValueError(f"scheme must be pcc, cm or fc, got {scheme!r}")
        levels = np.unique(m.price)
        d = m.sign[None, :] * (levels[:, None] - m.price[None, :])
        state = np.where(np.abs(d) <= 1e-9, 0, np.sign(d)).astype(int)  # (J, n)
        capped = m.capped if scheme == "pcc" else np.zeros(m.n, dtype=bool)
        lo = np.where(state == 1, m.qty[None, :], m.p_min[None, :])
        lo = np.where(capped[None, :], m.p_min[None, :], lo)  # a capped resource in the money: at its cap
        hi = np.where(state == -1, m.p_min[None, :], m.qty[None, :])
        # the balance sum sigma x = 0 within the box
        pos = m.sign > 0
        smin = lo[:, pos].sum(axis=1) - hi[:, ~pos].sum(axis=1)
        smax = hi[:, pos].sum(axis=1) - lo[:, ~pos].sum(axis=1)
        ok = (smin <= 1e-9) & (smax >= -1e-9)
        if not ok.any():
            raise ValueError(f"{scheme}: no day-ahead market equilibrium (no price level balances the market)")
        return cls(scheme, levels[ok], lo[ok], hi[ok], state[ok], m.capped.copy(), m.qty.copy())

    @property
    def n_regions(self) -> int:
        return int(self.price.size)

    def caps(self, j: int, x: np.ndarray) -> np.ndarray:
        """The upper bounds of a solution at level ``j``: caps of capped resources (see the module docstring)."""
        u = self.qty.copy()
        if self.scheme == "pcc":
            sel = self.capped & (self.state[j] != -1)
            u[sel] = x[sel]
        return u


@dataclass
class JointResult:
    """A master solution ($, MW): day-ahead quantities, caps, price, exchanges and the model's real-time values."""

    region: int
    x: np.ndarray
    caps: np.ndarray
    price: float
    p: np.ndarray  # (E, S)
    trans_cost: np.ndarray  # (S,) T_s(x, p_s)
    theta: np.ndarray  # (E, S)
    flows: np.ndarray  # (n_line, S)
    shed: np.ndarray  # (S,)
    value: float  # the master's objective at the solution
    da_cost: float
    solve_time: float
    lps: int = 1  # LPs solved for this answer

    @property
    def lower(self) -> np.ndarray:
        """``(S,)`` the model's real-time value per scenario, a lower bound of ``Q_s(x)``."""
        return self.trans_cost + self.theta.sum(axis=0)


@dataclass
class _LP:
    prob: cp.Problem
    x: cp.Variable
    lo: cp.Parameter
    hi: cp.Parameter
    wind: cp.Parameter | None
    p: cp.Variable
    theta: cp.Variable
    model: TransRT
    C: list[cp.Parameter]
    B: list[cp.Parameter]
    G: list[cp.Parameter]
    cuts: list[cp.Constraint]
    K: int


@dataclass
class _Search:
    """Best-first state over the regions: a lower bound per region and the cut version it was computed with."""

    bound: np.ndarray
    version: np.ndarray
    last: dict[int, JointResult] = field(default_factory=dict)


class JointMaster:
    """A scheme's master over its :class:`Regions`, with the TSO's real-time model and the DSOs' cut pools.

    ``members[e]``: the market indices of area ``e``'s resources (the columns ``1:`` of its
    cut pool, column 0 being its PCC exchange); ``trans_index``: the market indices of the
    transmission-connected resources ``res`` (in their order); ``theta_min[e]``: a lower bound
    of area ``e``'s real-time cost; ``pcc_bound[e]``: a bound on ``|p_e|`` (MW). ``grid``,
    ``res``, ``bus_of``, ``pcc_buses``, ``voll``: the TSO's transmission model
    (``realtime.build_transmission_rt``).
    """

    def __init__(self, market: DAMarket, scheme: str, probabilities: np.ndarray, members: Sequence[np.ndarray],
                 trans_index: np.ndarray, theta_min: np.ndarray, pcc_bound: np.ndarray, *, grid: TransmissionGrid,
                 res: ResourceSet, bus_of: Mapping[str, str], pcc_buses: Sequence[str], voll: float,
                 agent: str = "TSO", solver: str = "HIGHS", capacity: int = 32) -> None:
        self.market, self.scheme = market, scheme
        self.regions = Regions.of(market, scheme)
        self.phi = np.asarray(probabilities, dtype=float)
        self.S = self.phi.size
        self.members = [np.asarray(m, dtype=int) for m in members]
        self.trans_index = np.asarray(trans_index, dtype=int)
        self.theta_min = np.asarray(theta_min, dtype=float)
        self.pcc_bound = np.asarray(pcc_bound, dtype=float)
        self.grid, self.res, self.bus_of = grid, res, dict(bus_of)
        self.pcc_buses, self.voll = list(pcc_buses), float(voll)
        self.agent, self.solver = agent, solver
        self.capacity = int(capacity)
        J = self.regions.n_regions
        self.search = _Search(np.full(J, -math.inf), np.full(J, -1, dtype=int))
        self.n_lps = 0
        self._lp: _LP | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_lp"}  # the LP is rebuilt on demand

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lp = None

    def invalidate(self) -> None:
        """Drop the LP (the real-time offers changed)."""
        self._lp = None

    # ------------------------------------------------------------------ build
    def _build(self, K: int) -> _LP:
        m, S = self.market, self.S
        E = len(self.members)
        x = cp.Variable(m.n, name="x_da")
        lo = cp.Parameter(m.n, name="x_lo")
        hi = cp.Parameter(m.n, name="x_hi")
        p = cp.Variable((E, S), name="p_pcc")
        theta = cp.Variable((E, S), name="theta")
        rs = self.res
        wind = cp.Parameter((len(rs.wind_ids), S), nonneg=True, name="wind_T") if rs.wind_ids else None
        model = build_transmission_rt(self.grid, rs, self.bus_of, self.pcc_buses, S, x[self.trans_index], wind, p,
                                      voll=self.voll)
        ones = np.ones((1, S))
        cons: list[cp.Constraint] = [m.sign @ x == 0, x >= lo, x <= hi, *model.constraints,
                                     p <= self.pcc_bound[:, None] @ ones, p >= -self.pcc_bound[:, None] @ ones,
                                     theta >= self.theta_min[:, None] @ ones]
        rep = sp.kron(sp.eye(S), np.ones((K, 1)), format="csr")  # row s*K + k -> scenario s
        Cs, Bs, Gs, cuts = [], [], [], []
        for e, idx in enumerate(self.members):
            C = cp.Parameter(S * K, name=f"cut_c_{e}")
            B = cp.Parameter(S * K, name=f"cut_b_{e}")
            rhs = C + cp.multiply(B, rep @ p[e])
            if idx.size:
                G = cp.Parameter((S * K, idx.size), name=f"cut_g_{e}")
                rhs = rhs + G @ x[idx]
            else:
                G = None
            c = rep @ theta[e] >= rhs
            Cs.append(C), Bs.append(B), Gs.append(G), cuts.append(c)
        obj = (m.sign * m.price) @ x + self.phi @ (model.cost + cp.sum(theta, axis=0))
        prob = cp.Problem(cp.Minimize(obj), cons + cuts)
        return _LP(prob, x, lo, hi, wind, p, theta, model, Cs, Bs, Gs, cuts, K)

    def _problem(self, pools: Sequence[CutPool]) -> _LP:
        K_need = max(p.count() for p in pools)
        if self._lp is None or self._lp.K < K_need:
            self.capacity = capacity_for(K_need, self.capacity)
            self._lp = self._build(self.capacity)
        return self._lp

    # ------------------------------------------------------------------ solve
    def solve_region(self, j: int, pools: Sequence[CutPool], wind: np.ndarray | None, *,
                     iteration: int | None = None) -> JointResult:
        """The master's LP restricted to region ``j`` with the cuts of ``pools`` (one per area, in order)."""
        lp = self._problem(pools)
        K, S = lp.K, self.S
        reg = self.regions
        lp.lo.value, lp.hi.value = reg.lo[j], reg.hi[j]
        if lp.wind is not None:
            lp.wind.value = wind
        used = []
        for e, pool in enumerate(pools):
            C, G, n = _padded(pool, K, S, self.theta_min[e])  # (K, S), (K, S, 1 + n_e)
            used.append(n)
            lp.C[e].value = C.T.reshape(-1)
            lp.B[e].value = G[:, :, 0].T.reshape(-1)
            if lp.G[e] is not None:
                lp.G[e].value = G[:, :, 1:].transpose(1, 0, 2).reshape(S * K, -1)
        what = f"{self.scheme} master LP" + (f" (price level {reg.price[j]:g})" if self.scheme != "fc" else "")
        t0 = time.perf_counter()
        solve_lp(lp.prob, self.agent, what, iteration, solver=self.solver)
        dt = time.perf_counter() - t0
        self.n_lps += 1
        for e, pool in enumerate(pools):  # activity of the cuts (for the pools' pruning)
            nu = np.asarray(lp.cuts[e].dual_value, dtype=float).reshape(S, K).T
            pool.mark(np.where(np.arange(K)[:, None] < used[e][None, :], nu, 0.0))  # the floor slots are no cuts
        m = self.market
        x = np.clip(np.asarray(lp.x.value, dtype=float), reg.lo[j], reg.hi[j])
        x = np.where(np.abs(x) < 1e-9, 0.0, x)
        model = lp.model
        shed = np.asarray(model.shed.value).sum(axis=0) if model.shed is not None else np.zeros(S)
        return JointResult(region=j, x=x, caps=reg.caps(j, x), price=float(reg.price[j]),
                           p=np.asarray(lp.p.value, dtype=float).reshape(-1, S),
                           trans_cost=np.asarray(model.cost.value, dtype=float).reshape(-1),
                           theta=np.asarray(lp.theta.value, dtype=float).reshape(-1, S),
                           flows=np.asarray(model.dc.flow.value, dtype=float).reshape(-1, S), shed=shed,
                           value=float(lp.prob.value), da_cost=m.cost(x), solve_time=dt)

    def solve_best(self, pools: Sequence[CutPool], wind: np.ndarray | None, version: int, *,
                   iteration: int | None = None) -> tuple[JointResult, float]:
        """The master's solution over the union of the regions, and its bound (see the module docstring).

        ``version`` counts the cuts added to ``pools`` so far: a region's bound is current if
        it was computed at this version.
        """
        st = self.search
        t0 = time.perf_counter()
        lps = 0
        while True:
            j = int(np.argmin(st.bound))  # ties: the lowest level
            if st.version[j] == version and j in st.last:
                break
            r = self.solve_region(j, pools, wind, iteration=iteration)
            lps += 1
            st.last[j] = r
            st.bound[j] = max(st.bound[j], r.value)  # a bound found with more cuts (before pruning) stays valid
            st.version[j] = version
        r = st.last[j]
        r.lps, r.solve_time = lps, time.perf_counter() - t0
        return r, float(st.bound[j])

    @property
    def bounds(self) -> Mapping[float, float]:
        """Price level (NaN for fc) -> its current lower bound ($)."""
        return {float(p): float(b) for p, b in zip(self.regions.price, self.search.bound)}


def _padded(pool: CutPool, K: int, S: int, floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cuts of ``pool`` in ``K`` slots per scenario ``(C (K, S), G (K, S, n_vars), n (S,))``; slots beyond a
    scenario's ``n[s]`` cuts hold ``theta >= floor`` (its lower bound: a bound for the LP's presolve, where a
    repeated cut would be a duplicate row)."""
    C = np.full((K, S), float(floor))
    G = np.zeros((K, S, pool.n_vars))
    n = np.zeros(S, dtype=int)
    for s in range(S):
        c, g = pool.rows(s)
        if c.size > K:
            raise ValueError(f"scenario {s} holds {c.size} cuts, more than the {K} slots")
        n[s] = c.size
        C[:c.size, s], G[:c.size, s] = c, g
    return C, G, n
