"""Hosts of the ``tso-dso`` protocol: the message side of the TSO, the area DSOs and the participants.

Each host wraps one agent (``agents/tso.py``, ``agents/area_dso.py``,
``agents/participants_rt.py``) and turns the messages addressed to it into calls of
the agent's methods. Hosts run in process (``LocalRuntime``) or in Ray actors
(``RayRuntime``); everything they send is checked and logged by the boundary.

Payload layouts
---------------
- Day-ahead offer (``Offer`` from a DER manager, ``Bid`` from a load aggregator, to
  the TSO): ``prices[id] = [price_da]``, ``quantities[id] = [quantity]`` (capacity;
  expected output for a wind farm).
- Real-time offer (same types, to the operator that re-dispatches the resource:
  the TSO for transmission-connected resources, the DSO of the area otherwise):
  ``prices[id] = [price_da, price_up, price_down]``, ``quantities[id] = [p_min,
  p_max, q_min, q_max]`` followed, for a wind farm, by its available output in each
  scenario of the current scenario set. The two are told apart by the length of
  the prices (1 or 3).
- ``Schedule`` (TSO to a participant or a DSO): ``quantities[id] = [x]`` day-ahead
  quantity, ``prices[id] = [lambda]`` day-ahead price (NaN for fc, which has none).
- ``Caps`` (TSO to a participant or a DSO): pre-qualification caps of capped resources.
- ``Exchange`` (TSO to a DSO): ``values[pcc_id] = [p_1 .. p_S]`` the PCC exchange per
  scenario (MW, into the feeder).
- ``OptimalityCut`` (DSO to the TSO): ``theta_e,s >= constant + coefficients . (p_pcc,
  x_e)`` for scenario ``scenario``, keyed by the PCC id and the area's resource ids
  (the TSO's decisions); ``value`` is the area's cost in that scenario at the
  exchange asked. ``scenario = -1`` with no coefficients: a lower bound of the area's
  real-time cost, valid for every scenario (sent once, before the first master).

Coordinator ``Status`` notes (the choreography, see ``coordinator/protocols/tso_dso.py``):
``open`` (participants: day-ahead offers), ``rt:<set>`` (participants: real-time offers
with the wind of scenario set ``<set>``; operators: the set the next offers belong
to), ``bounds`` (DSOs: their lower bound), ``master:<scheme>`` (TSO: one Benders
iteration), ``evaluate:<scheme>:<set>`` (TSO: real-time costs of the scheme's
day-ahead decision on a set), ``final:<scheme>`` (TSO: final schedules and caps).
"""
from __future__ import annotations

import math
import time
from typing import Any, Mapping

import numpy as np

from agents.tso_dso.dso import AreaDSO, AreaResult
from agents.base import Agent, SolveError
from agents.tso_dso.participants import DEM, GEN, RT_LIMITS_LEN, RT_PRICE_LEN, WIND, Resource, RTParticipant
from agents.tso_dso.tso import TSO, Master, MasterResult, RTMasterResult

from ..host import Host
from ..messages import Bid, Caps, Exchange, Message, Offer, OptimalityCut, Schedule, Status
from .policy import DER_MANAGER

__all__ = ["ParticipantHost", "AreaDSOHost", "TSOHost", "InnerSettings"]


class _Host(Host):
    """Base host of the tso-dso agents (the shared :class:`coordinator.hosts.Host`, no peers table)."""

    def __init__(self, agent: Agent) -> None:
        super().__init__(agent)


def _note(m: Status) -> tuple[str, list[str]]:
    parts = m.note.split(":")
    return parts[0], parts[1:]


# ------------------------------------------------------------------ participants


class ParticipantHost(_Host):
    """A DER manager or load aggregator: offers/bids on request, records what it is told."""

    agent: RTParticipant

    def __init__(self, agent: RTParticipant, tso: str, operator: str) -> None:
        super().__init__(agent)
        self.tso, self.operator = tso, operator
        self.kind = Offer if agent.role == DER_MANAGER else Bid

    def _handle(self, messages: list[Message]) -> list[Message]:
        out: list[Message] = []
        for m in messages:
            if isinstance(m, Status):
                what, args = _note(m)
                if what == "open":
                    offers = self.agent.da_offers()
                    out.append(self.kind(self.id, self.tso, self.round, prices={k: v[0] for k, v in offers.items()},
                                         quantities={k: v[1] for k, v in offers.items()}))
                elif what == "rt":
                    offers = self.agent.rt_offers(args[0])
                    out.append(self.kind(self.id, self.operator, self.round,
                                         prices={k: v[0] for k, v in offers.items()},
                                         quantities={k: v[1] for k, v in offers.items()}))
            elif isinstance(m, Schedule):
                price = next(iter(m.prices.values()), None) if m.prices else None
                self.agent.deliver(dict(m.quantities), None if price is None else float(np.asarray(price)[0]))
            elif isinstance(m, Caps):
                self.agent.set_caps(dict(m.caps))
        return out

    def report(self) -> dict[str, Any]:
        return {"schedule": dict(self.agent.schedule), "price": self.agent.da_price, "caps": dict(self.agent.caps)}


def _rt_resource(rid: str, m: Offer | Bid, kind_hint: str | None = None) -> tuple[Resource, np.ndarray | None]:
    prices = np.asarray(m.prices[rid], dtype=float)
    qty = np.asarray(m.quantities[rid], dtype=float)
    if prices.shape != (RT_PRICE_LEN,):
        raise ValueError(f"real-time offer for {rid} from {m.sender}: expected {RT_PRICE_LEN} prices")
    wind = qty[RT_LIMITS_LEN:] if qty.size > RT_LIMITS_LEN else None
    kind = DEM if isinstance(m, Bid) else (WIND if wind is not None else GEN)
    if kind_hint is not None and kind_hint != kind:
        raise ValueError(f"real-time offer for {rid}: looks like a {kind}, registered as a {kind_hint}")
    return Resource.from_rt_offer(rid, kind, prices, qty[:RT_LIMITS_LEN]), wind


# ------------------------------------------------------------------ area DSO


class AreaDSOHost(_Host):
    """A distribution area's real-time operator: evaluates exchanges, answers with cuts."""

    agent: AreaDSO

    def __init__(self, agent: AreaDSO, tso: str, *, neighbours: int = 0, warmup: int = 5) -> None:
        super().__init__(agent)
        self.tso = tso
        self.neighbours = int(neighbours)
        self.warmup = int(warmup)
        self.scenario_set = "in_sample"
        self.warm: set[str] = set()  # scenario sets it has warmed up
        self.last: dict[str, dict[str, Any]] = {}  # per scenario set: summary of the last evaluation
        self.caps: dict[str, float] = {}
        self.price = math.nan
        self.evaluations = 0

    def _handle(self, messages: list[Message]) -> list[Message]:
        out: list[Message] = []
        for m in messages:
            if isinstance(m, Status):
                what, args = _note(m)
                if what == "rt":
                    self.scenario_set = args[0]
                elif what == "bounds":
                    lb = self.agent.rt_cost_lower_bound()
                    out.append(OptimalityCut(self.id, self.tso, self.round, scenario=-1, coefficients={},
                                             constant=lb, value=lb))
            elif isinstance(m, (Offer, Bid)):
                for rid in m.prices:
                    res, wind = _rt_resource(rid, m)
                    self.agent.set_offer(res, {self.scenario_set: wind} if wind is not None else None)
            elif isinstance(m, Schedule):
                self.agent.set_schedule(dict(m.quantities))
                if m.prices:
                    self.price = float(np.asarray(next(iter(m.prices.values())))[0])
            elif isinstance(m, Caps):
                self.caps.update(dict(m.caps))
            elif isinstance(m, Exchange):
                out += self._evaluate(np.asarray(m.values[self.agent.pcc_id], dtype=float))
        return out

    def _evaluate(self, p: np.ndarray) -> list[Message]:
        a = self.agent
        sset = self.scenario_set
        cuts: list[tuple[int, dict[str, float], float, float]] = []
        if sset not in self.warm and self.warmup > 0:  # its own first look at the set: cuts at a few exchanges
            self.warm.add(sset)
            for q in a.warmup_exchanges(self.warmup):
                r = a.evaluate(np.full(p.size, q), sset, iteration=self.round)
                cuts += a.cuts(r)
        res = a.evaluate(p, sset, iteration=self.round)
        cuts += a.cuts(res, neighbours=self.neighbours)
        self.evaluations += 1
        self.last[sset] = _summary(res)
        return [OptimalityCut(self.id, self.tso, self.round, scenario=s, coefficients=coef, constant=const, value=val)
                for s, coef, const, val in cuts]

    def report(self) -> dict[str, Any]:
        a = self.agent
        return {"last": self.last, "n_solves": a.n_solves, "solve_time": a.solve_time, "n_inaccurate": a.n_inaccurate,
                "n_shifted": a.n_shifted, "n_wall": a.n_wall, "evaluations": self.evaluations, "caps": dict(self.caps),
                "schedule": dict(a.schedule), "feeder": a.feeder.id}


def _summary(r: AreaResult) -> dict[str, Any]:
    return {"value": r.value.copy(), "rt_cost": r.rt_cost.copy(), "slack": r.slack.copy(),
            "relaxation_gap": r.relaxation_gap.copy(), "relaxation_gap_rel": r.relaxation_gap_rel.copy(),
            "v_min": r.v_min.copy(), "v_max": r.v_max.copy(), "losses": r.losses.copy(), "shed": r.shed.copy(),
            "p": r.p.copy(), "shifted": r.shifted, "inaccurate": r.inaccurate}


# ------------------------------------------------------------------ TSO


class InnerSettings:
    """Tolerances of the TSO <-> DSO loop (the real-time decomposition of each scenario)."""

    def __init__(self, tol: float = 1e-6, max_rounds: int = 80, inexact: float = 0.1, level: float = 0.5,
                 level_schemes: tuple[str, ...] = ("fc",), oos_tol: float = 1e-5) -> None:
        self.tol = float(tol)  # relative gap per scenario at which a scenario is solved (in sample)
        self.oos_tol = float(oos_tol)  # the same for other scenario sets (out-of-sample evaluation)
        self.max_rounds = int(max_rounds)
        self.inexact = float(inexact)  # within Benders: stop when sum phi (U - L) <= inexact * outer gap
        self.level = float(level)  # level-bundle parameter (0: plain Kelley steps)
        self.level_schemes = tuple(level_schemes)


class TSOHost(_Host):
    """The TSO: collects offers, runs the masters and the real-time master, talks to the DSOs."""

    agent: TSO

    def __init__(self, agent: TSO, participants: Mapping[str, str], *, inner: InnerSettings | None = None,
                 share_cuts: bool = False) -> None:
        super().__init__(agent)
        self.dsos = list(agent.areas)
        self.participants = dict(participants)  # participant id -> role
        self.owner: dict[str, str] = {}  # resource id -> participant (from the senders of offers)
        self.settings = inner or InnerSettings()
        self.share_cuts = bool(share_cuts)
        self.scenario_set = "in_sample"
        self.masters: dict[str, Master] = {}
        self.incumbent: dict[str, dict[str, Any]] = {}
        self.iterations: list[dict[str, Any]] = []
        self.master_solutions: list[dict[str, Any]] = []
        self.evaluations: dict[str, dict[str, Any]] = {}
        self.shared: list[tuple[int, float, np.ndarray, np.ndarray]] = []  # in-sample cuts of Q_s, any scheme
        self.inner: dict[str, Any] | None = None
        self.S_of: dict[str, int] = {}
        self.level_failures = 0

    # ---------------------------------------------------------------- messages
    def _handle(self, messages: list[Message]) -> list[Message]:
        out: list[Message] = []
        cuts = False
        statuses = []
        for m in messages:
            if isinstance(m, (Offer, Bid)):
                self._offer(m)
            elif isinstance(m, OptimalityCut):
                cuts |= self._cut(m)
            elif isinstance(m, Status):
                statuses.append(m)
        if cuts and self.inner is not None:
            out += self._inner_step()
        for m in statuses:
            out += self._status(m)
        return out

    def _offer(self, m: Offer | Bid) -> None:
        for rid in m.prices:
            self.owner[rid] = m.sender
            p = np.asarray(m.prices[rid], dtype=float)
            if p.size == 1:
                self.agent.set_da_offer(rid, float(p[0]), float(np.asarray(m.quantities[rid])[0]))
            else:
                res, wind = _rt_resource(rid, m, self.agent.registry[rid][0])
                self.agent.set_rt_offer(res, {self.scenario_set: wind} if wind is not None else None)
                if wind is not None:
                    self.S_of[self.scenario_set] = int(wind.size)

    def _cut(self, m: OptimalityCut) -> bool:
        if m.scenario < 0:
            self.agent.set_rt_lower_bound(m.sender, m.constant)
            return False
        if self.inner is None:
            raise RuntimeError(f"{self.id}: a cut from {m.sender} outside a real-time run")
        e = self.dsos.index(m.sender)
        self.agent.rt_add_cut(m.sender, m.scenario, dict(m.coefficients), m.constant)
        self.inner["D"][e, m.scenario] = m.value
        self.inner["seen"][e, m.scenario] = True
        return True

    def _status(self, m: Status) -> list[Message]:
        what, args = _note(m)
        if what == "rt":
            self.scenario_set = args[0]
            return []
        if what == "master":
            return self._master(args[0])
        if what == "evaluate":
            return self._start_evaluation(args[0], args[1])
        if what == "final":
            return self._final(args[0])
        return []

    # ---------------------------------------------------------------- Benders (outer)
    def _probabilities(self, sset: str) -> np.ndarray:
        S = self.S_of.get(sset)
        if S is None:
            raise RuntimeError(f"{self.id}: no wind scenarios for set '{sset}'")
        return np.full(S, 1.0 / S)

    def _master(self, scheme: str) -> list[Message]:
        if scheme not in self.masters:
            mst = self.agent.make_master(scheme, self._probabilities("in_sample"))
            if self.share_cuts:
                for s, value, mu, xk in self.shared:
                    mst.add_cut(s, value, mu, xk)
            self.masters[scheme] = mst
            self.incumbent[scheme] = {"upper": math.inf}
        mst = self.masters[scheme]
        k = sum(1 for r in self.iterations if r["scheme"] == scheme) + 1
        res = mst.solve(iteration=k)
        inc = self.incumbent[scheme]
        point = res
        t_level = 0.0
        if self.settings.level > 0 and math.isfinite(inc["upper"]) and scheme in self.settings.level_schemes:
            level = res.bound + self.settings.level * (inc["upper"] - res.bound)
            try:
                point = mst.solve_level(inc["x"], level, iteration=k)
                t_level = point.solve_time
            except SolveError:  # the projection is only a stabiliser: fall back to the master's point
                point = res
                self.level_failures += 1
        x, caps, price = point.x, point.caps, point.price
        self.master_solutions.append({"scheme": scheme, "iteration": k, "x": x.copy(), "caps": caps.copy(),
                                      "price": price, "objective": res.objective, "bound": res.bound,
                                      "level_step": point is not res})
        tol_abs = math.inf
        if math.isfinite(inc["upper"]):
            tol_abs = max(self.settings.inexact * (inc["upper"] - res.bound), 1e-7 * abs(inc["upper"]))
        self.inner = {"mode": "benders", "scheme": scheme, "iteration": k, "x": x, "caps": caps, "price": price,
                      "master": res, "t_level": t_level, "tol_abs": tol_abs, "t0": time.perf_counter()}
        return self._start_inner("in_sample")

    def _start_evaluation(self, scheme: str, sset: str) -> list[Message]:
        inc = self.incumbent.get(scheme)
        if not inc or "x" not in inc:
            raise RuntimeError(f"{self.id}: scheme {scheme} has no day-ahead decision to evaluate")
        self.inner = {"mode": "evaluate", "scheme": scheme, "x": inc["x"], "caps": inc["caps"], "price": inc["price"],
                      "tol_abs": 0.0, "t0": time.perf_counter()}
        return self._start_inner(sset)

    def _start_inner(self, sset: str) -> list[Message]:
        a = self.agent
        inner = self.inner
        assert inner is not None
        S = self.S_of[sset]
        a.rt_reset(sset, S)
        E = len(self.dsos)
        inner.update(set=sset, S=S, round=0, D=np.full((E, S), np.nan), seen=np.zeros((E, S), dtype=bool),
                     rt=None, rt_time=0.0)
        mk = a.market()
        x = inner["x"]
        out: list[Message] = []
        for d in self.dsos:
            members = a.area_members(d)
            out.append(Schedule(self.id, d, self.round, quantities={k: [x[mk.index[k]]] for k in members},
                                prices={k: [inner["price"]] for k in members}))
        if a.rt_has_cuts():
            return out + self._rt_round()
        p = np.tile(a.initial_exchange(x)[:, None], (1, S))
        inner["p"] = p
        return out + self._exchanges(p)

    def _exchanges(self, p: np.ndarray) -> list[Message]:
        self.inner["round"] += 1
        self.inner["seen"][:] = False
        return [Exchange(self.id, d, self.round, values={self.agent.areas[d][0]: p[e]})
                for e, d in enumerate(self.dsos)]

    def _rt_round(self) -> list[Message]:
        inner = self.inner
        t0 = time.perf_counter()
        r = self.agent.rt_solve(inner["x"], iteration=inner.get("iteration"))
        inner["rt_time"] += time.perf_counter() - t0
        inner["rt"] = r
        inner["p"] = r.p
        return self._exchanges(r.p)

    def _inner_step(self) -> list[Message]:
        inner = self.inner
        if not inner["seen"].all():
            missing = [(self.dsos[e], s) for e, s in zip(*np.nonzero(~inner["seen"]))][:5]
            raise RuntimeError(f"{self.id}: no value for (DSO, scenario) {missing} in round {inner['round']}")
        r: RTMasterResult | None = inner["rt"]
        if r is None:  # the first round was at the initial exchanges: now the TSO has cuts
            return self._rt_round()
        U = r.trans_cost + inner["D"].sum(axis=0)
        L = r.lower
        phi = np.full(inner["S"], 1.0 / inner["S"])
        rel = (U - L) / np.maximum(1.0, np.abs(U))
        tol = self.settings.tol if inner["set"] == "in_sample" else self.settings.oos_tol
        done = rel.max() <= tol or phi @ (U - L) <= inner["tol_abs"]
        if not done and inner["round"] < self.settings.max_rounds:
            return self._rt_round()
        inner.update(U=U, L=L, rel_gap=rel)
        if inner["mode"] == "benders":
            self._finish_iteration()
        else:
            self._finish_evaluation()
        self.inner = None
        return []

    def _finish_iteration(self) -> None:
        inner = self.inner
        scheme, x, r = inner["scheme"], inner["x"], inner["rt"]
        mst = self.masters[scheme]
        res: MasterResult = inner["master"]
        S = inner["S"]
        phi = np.full(S, 1.0 / S)
        for s in range(S):
            mst.add_cut(s, float(r.lower[s]), r.mu[:, s], x)
            if self.share_cuts:
                self.shared.append((s, float(r.lower[s]), r.mu[:, s].copy(), x.copy()))
        if self.share_cuts:
            for other, m2 in self.masters.items():
                if other != scheme:
                    for s in range(S):
                        m2.add_cut(s, float(r.lower[s]), r.mu[:, s], x)
        mk = self.agent.market()
        da_cost = mk.cost(x)
        upper = da_cost + float(phi @ inner["U"])
        inc = self.incumbent[scheme]
        if upper < inc["upper"]:
            inc.update(upper=upper, x=x.copy(), caps=np.asarray(inner["caps"]).copy(), price=inner["price"],
                       iteration=inner["iteration"], da_cost=da_cost, U=inner["U"].copy())
        lower = res.bound
        best = inc["upper"]
        self.iterations.append({
            "scheme": scheme, "iteration": inner["iteration"], "lower": lower, "upper": upper, "best_upper": best,
            "gap": (best - lower) / max(1.0, abs(best)),
            "gap_iterate": abs(res.objective - upper) / max(1.0, abs(res.objective)),
            "master_objective": res.objective, "da_cost": da_cost, "expected_rt": float(phi @ inner["U"]),
            "price": inner["price"], "inner_rounds": inner["round"], "inner_gap": float(phi @ (inner["U"] - inner["L"])),
            "master_time_s": res.solve_time + inner["t_level"], "rt_master_time_s": inner["rt_time"],
            "iteration_time_s": time.perf_counter() - inner["t0"] + res.solve_time + inner["t_level"],
            "n_cuts": mst.n_cuts, "binaries": res.binaries,
        })

    def _finish_evaluation(self) -> None:
        inner = self.inner
        r: RTMasterResult = inner["rt"]
        mk = self.agent.market()
        self.evaluations[f"{inner['scheme']}:{inner['set']}"] = {
            "scheme": inner["scheme"], "set": inner["set"], "x": inner["x"].copy(), "da_cost": mk.cost(inner["x"]),
            "U": inner["U"].copy(), "L": inner["L"].copy(), "rel_gap": inner["rel_gap"].copy(),
            "rounds": inner["round"], "flows": r.flows.copy(), "p": r.p.copy(), "shed_T": r.shed.copy(),
            "ratings": self.agent.grid.ratings().copy(), "line_ids": [ln.id for ln in self.agent.grid.lines],
            "time_s": time.perf_counter() - inner["t0"], "D": inner["D"].copy(), "trans_cost": r.trans_cost.copy(),
        }

    def _final(self, scheme: str) -> list[Message]:
        inc = self.incumbent[scheme]
        mk = self.agent.market()
        x, caps, price = inc["x"], inc["caps"], inc["price"]
        by_owner: dict[str, list[int]] = {}
        for i, k in enumerate(mk.ids):
            by_owner.setdefault(self.owner[k], []).append(i)
        out: list[Message] = []
        for owner, idx in sorted(by_owner.items()):
            out.append(Schedule(self.id, owner, self.round, quantities={mk.ids[i]: [x[i]] for i in idx},
                                prices={mk.ids[i]: [price] for i in idx}))
            capped = [i for i in idx if mk.capped[i]]
            if capped and scheme != "fc":
                out.append(Caps(self.id, owner, self.round, caps={mk.ids[i]: float(caps[i]) for i in capped}))
        for d in self.dsos:
            members = self.agent.area_members(d)
            out.append(Schedule(self.id, d, self.round, quantities={k: [x[mk.index[k]]] for k in members},
                                prices={k: [price] for k in members}))
            capped = [k for k in members if mk.capped[mk.index[k]]]
            if capped and scheme != "fc":
                out.append(Caps(self.id, d, self.round, caps={k: float(caps[mk.index[k]]) for k in capped}))
        return out

    # ---------------------------------------------------------------- reading results
    def report(self) -> dict[str, Any]:
        return {"iterations": list(self.iterations), "incumbent": self.incumbent,
                "master_solutions": list(self.master_solutions), "evaluations": self.evaluations,
                "market": self.agent.market(), "lp_solves": self.agent.n_lp_solves, "lp_time": self.agent.lp_time}

    def last_iteration(self) -> dict[str, Any]:
        return dict(self.iterations[-1]) if self.iterations else {}

    def evaluation(self, scheme: str, sset: str) -> dict[str, Any]:
        return self.evaluations[f"{scheme}:{sset}"]

    def market(self) -> Any:
        return self.agent.market()
