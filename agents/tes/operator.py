"""Distribution system operator (acting as the TES operator in ``tes``).

The DSO owns its feeder and the private meter -> node/phase map. In ``tes`` it
checks an injection schedule on LinDist3Flow and, for every hour with a
violation, solves the slack problem of seed 000 appendix A

    min E = sum_l eps_l   s.t.  u_l(x*) - eps_l <= 0,  eps_l >= 0        (A5)-(A6)

whose LP dual ``y`` (0 <= y_l <= 1) gives the feasibility cut (A12)

    E* + sum_k (sum_l y_l du_l/dx_k) (x_k - x*_k) <= 0,

returned with coefficients keyed by the *sender's* meter ids (``"<meter>"`` for
active power, ``"<meter>#q"`` for reactive power) and a constant, so the
participant never learns where a meter is or which limit bound.

Units: ``x`` in the case power unit (kW), positive = drawn from the grid; limits
``u_l`` in per unit as in :mod:`network.lindist3flow` (squared voltage pu^2 for
voltage limits; per-phase pu for line flows; the transformer import, the lossless
sum of the feeder's net loads, in pu of the per-phase base).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import cvxpy as cp
import numpy as np

from network.lindist3flow import LinDist3Flow
from network.model import Feeder, MeterLocation

from ..base import Agent
from ..solve import Attempt, solve

#: the slack LP (A5)-(A6): Clarabel, then HiGHS
SLACK_ATTEMPTS = (Attempt("CLARABEL", {}), Attempt("HIGHS", {}))


@dataclass(frozen=True)
class LimitSet:
    """All network limits as affine functions u = U x + u0 <= 0 of the meter decisions x."""

    decision_ids: tuple[str, ...]  # "<meter>" (active) and "<meter>#q" (reactive)
    U: np.ndarray  # (n_limits, n_decisions)
    u0: np.ndarray  # (n_limits,)
    family: np.ndarray  # (n_limits,) family name of each limit
    where: tuple[str, ...]  # private label of each limit ("node 7 phase a", "line L3 phase b", ...)


@dataclass(frozen=True)
class FeasibilityCutData:
    period: int
    coefficients: dict[str, float]
    constant: float
    violation: float
    families: tuple[str, ...]


@dataclass(frozen=True)
class CheckResult:
    violation: np.ndarray  # E* per period (pu)
    cuts: list[FeasibilityCutData]
    voltages: np.ndarray  # |V| per (node, phase) x period, LinDist3Flow
    node_phases: list[tuple[str, str]]


class DSO(Agent):
    """A distribution system operator: feeder, meter map, LinDist3Flow checks and cuts."""

    role = "tes.operator"

    def __init__(self, agent_id: str, feeder: Feeder, meters: Mapping[str, MeterLocation], *,
                 power_unit: str = "kW", tolerance: float = 1e-6) -> None:
        super().__init__(agent_id)
        self.feeder = feeder
        self.meters = {m: loc for m, loc in meters.items() if loc.grid == feeder.id}
        self.power_unit = power_unit
        self.tolerance = tolerance
        self.checks = 0

    # ------------------------------------------------------------------ model
    @property
    def model(self) -> LinDist3Flow:
        if getattr(self, "_cache_model", None) is None:
            self._cache_model = LinDist3Flow(self.feeder, power_unit=self.power_unit)
        return self._cache_model

    def limit_set(self, p_ids: Sequence[str], q_ids: Sequence[str]) -> LimitSet:
        """Affine limits over the decisions ``p_ids`` (active) and ``q_ids`` (reactive)."""
        key = (tuple(p_ids), tuple(q_ids))
        cache = getattr(self, "_cache_limits", None)
        if cache is not None and cache[0] == key:
            return cache[1]
        m = self.model
        mp = m.injection_matrix(self.meters, list(p_ids))  # node-phase pu per meter power (consumption +)
        mq = m.injection_matrix(self.meters, list(q_ids))
        rows, consts, fams, labels = [], [], [], []
        for name, fam in m.families.items():
            rows.append(np.hstack([np.asarray(fam.grad_p() @ mp), np.asarray(fam.grad_q() @ mq)]))
            consts.append(fam.offset())
            fams += [name] * fam.n_rows
            labels += [f"{name} at {el} phase {ph}" for el, ph in fam.rows]
        ls = LimitSet(tuple(p_ids) + tuple(f"{i}#q" for i in q_ids), np.vstack(rows), np.concatenate(consts),
                      np.array(fams), tuple(labels))
        self._cache_limits = (key, ls)
        return ls

    # ---------------------------------------------------------------- checks
    def check_schedule(self, p: Mapping[str, np.ndarray], q: Mapping[str, np.ndarray]) -> CheckResult:
        """E* per period and one feasibility cut per violated period (appendix A)."""
        self.checks += 1
        p_ids = [k for k in p if k in self.meters]
        q_ids = [k for k in q if k in self.meters]
        unknown = [k for k in (*p, *q) if k not in self.meters]
        if unknown:
            raise KeyError(f"{self.id}: unknown meter(s) {sorted(set(unknown))[:5]}")
        ls = self.limit_set(p_ids, q_ids)
        x = np.vstack([np.atleast_2d(np.asarray(p[k], dtype=float)) for k in p_ids]
                      + [np.atleast_2d(np.asarray(q[k], dtype=float)) for k in q_ids])  # (n_dec, T)
        u = ls.U @ x + ls.u0[:, None]  # (n_lim, T)
        eps, y = self._slack_lp(u)
        e_star = eps.sum(axis=0)
        cuts = []
        for t in np.flatnonzero(e_star > self.tolerance):
            coef = ls.U.T @ y[:, t]
            keep = np.abs(coef) > 1e-14
            coeffs = {ls.decision_ids[j]: float(coef[j]) for j in np.flatnonzero(keep)}
            constant = float(e_star[t] - coef @ x[:, t])
            fams = tuple(sorted({str(ls.family[i]) for i in np.flatnonzero(eps[:, t] > self.tolerance)}))
            cuts.append(FeasibilityCutData(int(t), coeffs, constant, float(e_star[t]), fams))
        m = self.model
        flow = m.evaluate(m.injection_matrix(self.meters, p_ids) @ x[: len(p_ids)],
                          m.injection_matrix(self.meters, q_ids) @ x[len(p_ids):])
        return CheckResult(e_star, cuts, flow.v, list(m.node_phases))

    def violated_limits(self, p: Mapping[str, np.ndarray], q: Mapping[str, np.ndarray],
                        tol: float | None = None) -> list[dict]:
        """Private diagnosis: each violated limit with its family, place and period (for the operator's log)."""
        tol = self.tolerance if tol is None else tol
        p_ids = [k for k in p if k in self.meters]
        q_ids = [k for k in q if k in self.meters]
        ls = self.limit_set(p_ids, q_ids)
        x = np.vstack([np.atleast_2d(p[k]) for k in p_ids] + [np.atleast_2d(q[k]) for k in q_ids])
        u = ls.U @ x + ls.u0[:, None]
        out = []
        for i, t in zip(*np.nonzero(u > tol)):
            out.append({"period": int(t), "family": str(ls.family[i]), "where": ls.where[i], "excess_pu": float(u[i, t])})
        return out

    def _slack_lp(self, u_star: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Solve (A5)-(A6) for all periods at once; returns slacks eps and duals y (n_lim x T)."""
        shape = u_star.shape
        cache = getattr(self, "_cache_lp", None)
        if cache is None or cache[0] != shape:
            u_par = cp.Parameter(shape)
            eps = cp.Variable(shape, nonneg=True)
            con = u_par - eps <= 0
            prob = cp.Problem(cp.Minimize(cp.sum(eps)), [con])
            cache = (shape, prob, u_par, eps, con)
            self._cache_lp = cache
        _, prob, u_par, eps, con = cache
        u_par.value = u_star
        solve(prob, SLACK_ATTEMPTS, self.id, "slack problem (A5)-(A6)", iteration=self.checks)
        y = np.clip(np.asarray(con.dual_value, dtype=float), 0.0, 1.0)
        e = np.maximum(np.asarray(eps.value, dtype=float), 0.0)
        # the LP is separable: eps_l = max(0, u_l), y_l = 1 where u_l > 0; clean interior-point noise
        e = np.where(e < 1e-12, 0.0, e)
        y = np.where(u_star > 1e-9, 1.0, np.where(u_star < -1e-9, 0.0, y))
        return e, y

