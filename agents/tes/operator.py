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
sum of the feeder's net loads, in pu of the per-phase base). E* of a period is the
sum of the slacks: the excess of the squared voltage magnitude over its limit
(``|V|^2 - v_max^2`` or ``v_min^2 - |V|^2``, pu^2) plus the excess of line flows and of
the import (pu), not a voltage in pu.

The network check (``network_check``)
------------------------------------
``"linear"`` (the paper's model): ``u_l(x*)`` from LinDist3Flow, which is affine, so
the cut is exact for the model.

``"ac"``: ``u_l(x*)`` from a three-phase AC power flow of the schedule (OpenDSS,
:class:`network.opendss.DssCircuit`, compiled once per operator; hourly load
updates): ``|V|^2`` per node-phase, per-phase line flows at the sending end and the
head import *with losses*. The slack LP and the cut are built as above from these AC
values, with the gradient ``du/dx`` of LinDist3Flow: the linearisation of each limit
at the AC operating point (a first-order correction: the cut's constant makes it exact
at the schedule's AC value, ``E*_AC + g . (x - x*) <= 0``). A cut is sent only for an
hour whose AC check fails, so violations of the linearisation alone never cost the
participant anything. The Benders loop iterates this to a fixed point: every new
schedule is checked in AC again, and an hour that still violates gets a cut whose
constant is corrected by the AC residual (cuts of the same limit set share the
LinDist3Flow gradient, so each new one is a tighter parallel shift; the residual
shrinks by the relative error of that gradient, a few per cent on tes_feeder).

Losses (``"ac"`` only): the AC import exceeds the metered net load by the losses
``L_t = import_t - sum_k x_k`` (x over the meters below the head). The participant's
injections sum to ``-L'_t``, the losses its supply covers (its balance is ``sum
purchases = sum consumption + L'``). When ``max_t |L_t - L'_t|`` exceeds
``loss_tolerance`` (power unit) the operator sends ``L`` (:attr:`CheckResult.loss_estimate`)
and does not accept; the participant re-solves with it. At acceptance the supply point's
purchase equals the AC import within the tolerance. Losses are >= 0 on a consuming feeder;
the sign convention is that of a load (positive = drawn from the head).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import cvxpy as cp
import numpy as np

from network.lindist3flow import LinDist3Flow
from network.model import Feeder, MeterLocation
from network.opendss import AcFlow, DssCircuit

from ..base import Agent, SolveError
from ..solve import Attempt, solve

#: the slack LP (A5)-(A6): Clarabel, then HiGHS
SLACK_ATTEMPTS = (Attempt("CLARABEL", {}), Attempt("HIGHS", {}))
#: the network checks: LinDist3Flow (the paper's model) or an AC power flow (OpenDSS)
NETWORK_CHECKS = ("linear", "ac")


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
    """One check of a schedule. ``violation``: E* per period (sum of the excess: pu^2 for voltage
    limits, pu for flows and the import); ``by_family``: the same per limit family; ``voltages``:
    LinDist3Flow |V| (pu) per node-phase x period; with the AC check ``voltages_ac`` (OpenDSS
    |V|, pu), ``losses`` (AC losses, power unit, per period), ``import_ac`` (AC import, power
    unit) and ``loss_estimate`` (the losses to send, or None when the schedule covers them)."""

    violation: np.ndarray
    cuts: list[FeasibilityCutData]
    voltages: np.ndarray
    node_phases: list[tuple[str, str]]
    model: str = "linear"
    by_family: dict[str, np.ndarray] = field(default_factory=dict)
    voltages_ac: np.ndarray | None = None
    losses: np.ndarray | None = None
    losses_covered: np.ndarray | None = None
    import_ac: np.ndarray | None = None
    loss_estimate: np.ndarray | None = None

    @property
    def accepted(self) -> bool:
        """No cut and nothing to correct in the losses."""
        return not self.cuts and self.loss_estimate is None


class DSO(Agent):
    """A distribution system operator: feeder, meter map, network checks (LinDist3Flow or AC) and cuts."""

    role = "tes.operator"

    def __init__(self, agent_id: str, feeder: Feeder, meters: Mapping[str, MeterLocation], *,
                 power_unit: str = "kW", tolerance: float = 1e-6, network_check: str = "linear",
                 loss_tolerance: float = 1e-4, frequency_hz: float = 50.0) -> None:
        super().__init__(agent_id)
        if network_check not in NETWORK_CHECKS:
            raise ValueError(f"network_check must be one of {NETWORK_CHECKS}, got {network_check!r}")
        self.feeder = feeder
        self.meters = {m: loc for m, loc in meters.items() if loc.grid == feeder.id}
        self.power_unit = power_unit
        self.tolerance = tolerance
        self.network_check = network_check
        self.loss_tolerance = float(loss_tolerance)
        self.frequency_hz = float(frequency_hz)
        self.checks = 0
        self.opendss_solves = 0  # AC power flows run (one per hour and AC evaluation)

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

    @property
    def circuit(self) -> DssCircuit:
        """The feeder in OpenDSS, compiled once (rebuilt after a restore)."""
        if getattr(self, "_cache_circuit", None) is None:
            self._cache_circuit = DssCircuit(self.feeder, self.meters, power_unit=self.power_unit,
                                             frequency_hz=self.frequency_hz)
        return self._cache_circuit

    def _decisions(self, p: Mapping[str, np.ndarray], q: Mapping[str, np.ndarray]
                   ) -> tuple[list[str], list[str], LimitSet, np.ndarray]:
        """(active ids, reactive ids, their limit set, x (n_dec, T)) of a schedule."""
        p_ids = [k for k in p if k in self.meters]
        q_ids = [k for k in q if k in self.meters]
        unknown = [k for k in (*p, *q) if k not in self.meters]
        if unknown:
            raise KeyError(f"{self.id}: unknown meter(s) {sorted(set(unknown))[:5]}")
        x = np.vstack([np.atleast_2d(np.asarray(p[k], dtype=float)) for k in p_ids]
                      + [np.atleast_2d(np.asarray(q[k], dtype=float)) for k in q_ids])  # (n_dec, T)
        return p_ids, q_ids, self.limit_set(p_ids, q_ids), x

    def ac_flow(self, p: Mapping[str, np.ndarray], q: Mapping[str, np.ndarray]) -> AcFlow:
        """The AC power flow (OpenDSS) of a schedule, every hour (meters absent from ``p``/``q`` draw 0)."""
        c = self.circuit
        T = len(np.atleast_1d(next(iter(p.values())))) if p else 1
        P = np.array([np.broadcast_to(np.asarray(p.get(m, 0.0), dtype=float), (T,)) for m in c.meter_ids])
        Q = np.array([np.broadcast_to(np.asarray(q.get(m, 0.0), dtype=float), (T,)) for m in c.meter_ids])
        try:
            ac = c.solve(P.reshape(len(c.meter_ids), T), Q.reshape(len(c.meter_ids), T))
        except RuntimeError as exc:
            raise SolveError(self.id, "AC power flow (OpenDSS)", "not converged", iteration=self.checks,
                             detail=str(exc)) from None
        self.opendss_solves += T
        return ac

    def ac_limits(self, ac: AcFlow) -> np.ndarray:
        """Every limit's value u (n_limits, T) at an AC operating point, rows as in :meth:`limit_set`."""
        y = {"w": ac.w, "P": ac.p_flow, "Q": ac.q_flow,
             "import": (ac.import_power * self.model.unit_to_pu)[None, :]}
        return np.vstack([fam.sign * (y[fam.quantity][fam.sel] - fam.bound[:, None])
                          for fam in self.model.families.values()])

    def ac_correction(self, p: Mapping[str, np.ndarray], q: Mapping[str, np.ndarray]
                      ) -> tuple[np.ndarray, np.ndarray]:
        """(u_AC - u_LinDist3Flow (n_limits, T), AC losses (T,)) at a schedule: LinDist3Flow corrected
        at this AC operating point (the analyst's benchmark of the ``ac`` check)."""
        p_ids, q_ids, ls, x = self._decisions(p, q)
        ac = self.ac_flow(p, q)
        return self.ac_limits(ac) - (ls.U @ x + ls.u0[:, None]), ac.losses

    # ---------------------------------------------------------------- checks
    def check_schedule(self, p: Mapping[str, np.ndarray], q: Mapping[str, np.ndarray]) -> CheckResult:
        """E* per period and one feasibility cut per violated period (appendix A), on the
        configured network check (see the module docstring)."""
        self.checks += 1
        p_ids, q_ids, ls, x = self._decisions(p, q)
        ac = self.ac_flow(p, q) if self.network_check == "ac" else None
        u = ls.U @ x + ls.u0[:, None] if ac is None else self.ac_limits(ac)  # (n_lim, T)
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
        by_family = {f: eps[ls.family == f].sum(axis=0) for f in m.families}
        if ac is None:
            return CheckResult(e_star, cuts, flow.v, list(m.node_phases), "linear", by_family)
        covered = -x[: len(p_ids)].sum(axis=0)  # the participant's injections sum to minus its losses
        off = np.abs(ac.losses - covered)
        estimate = ac.losses.copy() if off.size and float(off.max()) > self.loss_tolerance else None
        return CheckResult(e_star, cuts, flow.v, list(m.node_phases), "ac", by_family, voltages_ac=ac.v,
                           losses=ac.losses, losses_covered=covered, import_ac=ac.import_power,
                           loss_estimate=estimate)

    def violated_limits(self, p: Mapping[str, np.ndarray], q: Mapping[str, np.ndarray],
                        tol: float | None = None) -> list[dict]:
        """Private diagnosis: each violated limit with its family, place, period and excess u > 0 (``unit``:
        pu^2 for squared voltages, pu for flows and the import), on the configured network check."""
        tol = self.tolerance if tol is None else tol
        _, _, ls, x = self._decisions(p, q)
        u = ls.U @ x + ls.u0[:, None] if self.network_check == "linear" else self.ac_limits(self.ac_flow(p, q))
        out = []
        for i, t in zip(*np.nonzero(u > tol)):
            fam = str(ls.family[i])
            out.append({"period": int(t), "family": fam, "where": ls.where[i], "excess": float(u[i, t]),
                        "unit": self.model.families[fam].unit})
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

