"""Hosts of the ``tso-dso`` protocol: the message side of the TSO, the area DSOs and the participants.

Each host wraps one agent (``agents/tso_dso/tso.py``, ``dso.py``, ``participants.py``) and
turns the messages addressed to it into calls of the agent's methods, and the results
into messages. It decides nothing: the protocol (``protocol.py``) sends the commands and
makes every decision from the TSO's reports. Hosts run in process (``LocalRuntime``) or in
Ray actors (``RayRuntime``); everything they send is checked and logged by the boundary.

Payload layouts (MW, $/MWh; keys are resource ids unless said otherwise)
------------------------------------------------------------------------
- Day-ahead offer (``Offer`` from a DER manager, ``Bid`` from a load aggregator,
  ``product=DAY_AHEAD``), to the TSO and, for a distribution-connected resource, to the
  DSO of its area (the day-ahead price is the reference of its real-time prices):
  ``prices[id] = [price_da]``, ``quantities[id] = [quantity]`` (capacity; expected
  output for a wind farm).
- Real-time offers, to the operator that re-dispatches the resource (the TSO for
  transmission-connected resources, the DSO of the area otherwise), one message per
  product for the scenario set of the last ``SCENARIO_SET`` command:
  ``product=UP``: ``prices[id] = [price_up]`` (paid on top of the day-ahead price per MW
  of upward regulation: more output, or less consumption), ``quantities[id] = [p_max,
  q_max]`` followed, for a wind farm only, by its available output in each scenario of
  the set; ``product=DOWN``: ``prices[id] = [price_down]``, ``quantities[id] = [p_min,
  q_min]``. The operator registers a resource once it has both.
- ``Schedule`` (TSO to a participant or a DSO): ``quantities[id] = [x]`` day-ahead
  quantity, ``prices[id] = [lambda]`` day-ahead price (no ``prices`` for fc, which has none;
  ``IterationBounds.price`` is None then).
- ``Caps`` (TSO to a participant or a DSO): pre-qualification caps of capped resources.
- ``Exchange`` (TSO to a DSO): ``values[pcc_id] = [p_1 .. p_S]`` the PCC exchange per
  scenario (into the feeder).
- ``OptimalityCut`` (DSO to the TSO): ``theta_e,s >= constant + coefficients . (p_pcc,
  x_e)`` for scenario ``scenario`` ($), keyed by the PCC id and the area's resource ids
  (the TSO's decisions); ``value`` is the area's cost in that scenario at the
  exchange asked. ``scenario = -1`` with no coefficients: a lower bound of the area's
  real-time cost, valid for every scenario (sent once, before the first master).
- TSO to the coordinator: ``MasterBound``, ``RealTimeBounds``, ``IterationBounds``
  (``coordinator/messages.py``).

Commands (``Command.action``)
-----------------------------
Participants: ``OFFER_DAY_AHEAD``, ``OFFER_REAL_TIME`` (with ``scenario_set``). DSOs:
``SCENARIO_SET`` (with ``scheme`` where it starts a scheme's run or evaluation: a DSO keeps
its warm-up and solver weights per scheme and set), ``LOWER_BOUND``. TSO: ``SCENARIO_SET``; ``MASTER`` (scheme, iteration):
master solve, answered with ``MasterBound`` and the DSOs' schedules; ``EVALUATE`` (scheme,
set): the DSOs' schedules of the scheme's decision; ``REAL_TIME_ROUND``: the exchanges of
the next round, whose cuts it answers with ``RealTimeBounds``; ``CLOSE_ITERATION``:
answered with ``IterationBounds``; ``CLOSE_EVALUATION``; ``FINAL`` (scheme): the final
schedules and caps to the participants and the DSOs.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from agents.tso_dso.dso import AreaDSO, AreaResult
from agents.tso_dso.participants import DEM, GEN, UP_LIMITS, WIND, Resource, RTParticipant
from agents.tso_dso.tso import TSO

from ..boundary import COORDINATOR
from ..host import Host
from ..messages import (Action, Bid, Caps, Command, Exchange, IterationBounds, MasterBound, Message, Offer,
                        OptimalityCut, Product, RealTimeBounds, ScenarioSet, Schedule, Scheme)
from .policy import DER_MANAGER

__all__ = ["ParticipantHost", "AreaDSOHost", "TSOHost"]


def _unexpected(host: Host, m: Command) -> ValueError:
    return ValueError(f"{host.id} ({host.role}): unexpected command {m.action.value}")


def _set(m: Command) -> str:
    if m.scenario_set is None:
        raise ValueError(f"command {m.action.value} to {m.receiver} has no scenario set")
    return ScenarioSet(m.scenario_set).value


def _scheme(m: Command) -> str:
    if m.scheme is None:
        raise ValueError(f"command {m.action.value} to {m.receiver} has no scheme")
    return Scheme(m.scheme).value


# ------------------------------------------------------------------ participants


class ParticipantHost(Host):
    """A DER manager or load aggregator: offers/bids on request, records what it is told."""

    agent: RTParticipant

    def __init__(self, agent: RTParticipant, tso: str, operator: str) -> None:
        super().__init__(agent)
        self.tso, self.operator = tso, operator
        self.kind = Offer if agent.role == DER_MANAGER else Bid

    def _offer(self, receiver: str, product: Product, offers: Mapping[str, tuple[np.ndarray, np.ndarray]]
               ) -> Message:
        return self.kind(self.id, receiver, self.round, product=product, prices={k: v[0] for k, v in offers.items()},
                         quantities={k: v[1] for k, v in offers.items()})

    def _handle(self, messages: list[Message]) -> list[Message]:
        out: list[Message] = []
        for m in messages:
            if isinstance(m, Command):
                if m.action is Action.OFFER_DAY_AHEAD:
                    da = self.agent.da_offers()
                    out.append(self._offer(self.tso, Product.DAY_AHEAD, da))
                    if self.operator != self.tso:  # the DSO prices real-time deviations at the day-ahead offer
                        out.append(self._offer(self.operator, Product.DAY_AHEAD, da))
                elif m.action is Action.OFFER_REAL_TIME:
                    up, down = self.agent.rt_offers(_set(m))
                    out += [self._offer(self.operator, Product.UP, up), self._offer(self.operator, Product.DOWN, down)]
                elif m.action is Action.END_OF_DAY:  # settle the day; a strategy learns from it
                    self.agent.end_of_day()
                else:
                    raise _unexpected(self, m)
            elif isinstance(m, Schedule):  # no prices: no day-ahead price (fc)
                price = float(np.asarray(next(iter(m.prices.values())))[0]) if m.prices else math.nan
                self.agent.deliver(dict(m.quantities), price)
            elif isinstance(m, Caps):
                self.agent.set_caps(dict(m.caps))
        return out

    def report(self) -> dict[str, Any]:
        from agents.tso_dso.strategic import describe

        a = self.agent
        offered = None if a.offered is None else {k: (float(a.offered[0][i]), float(a.offered[1][i]))
                                                  for i, k in enumerate(a.resources.ids)}
        return {"schedule": dict(a.schedule), "price": a.da_price, "caps": dict(a.caps), "offered": offered,
                "profit": a.profit, "strategy": describe(a.strategy)}


class _OfferBook:
    """An operator's view of the offers it receives: the day-ahead price and the up/down offers of each resource.

    :meth:`add` returns the resources whose real-time offers are complete (both products),
    with their wind availability (``None`` unless a wind farm).
    """

    def __init__(self) -> None:
        self.price_da: dict[str, float] = {}
        self.pending: dict[str, dict[Product, tuple[np.ndarray, np.ndarray]]] = {}

    def add(self, m: Offer | Bid) -> list[tuple[Resource, np.ndarray | None]]:
        product = Product(m.product)
        if product is Product.DAY_AHEAD:
            self.price_da.update({k: float(np.asarray(v).reshape(-1)[0]) for k, v in m.prices.items()})
            return []
        out = []
        for rid in m.prices:
            offers = self.pending.setdefault(rid, {})
            offers[product] = (np.asarray(m.prices[rid], dtype=float), np.asarray(m.quantities[rid], dtype=float))
            if Product.UP in offers and Product.DOWN in offers:
                if rid not in self.price_da:
                    raise ValueError(f"real-time offers for {rid} from {m.sender} before its day-ahead offer")
                up, down = offers.pop(Product.UP), offers.pop(Product.DOWN)
                kind = DEM if isinstance(m, Bid) else (WIND if up[1].size > len(UP_LIMITS) else GEN)
                out.append(Resource.from_rt_offers(rid, kind, self.price_da[rid], up, down))
        return out


# ------------------------------------------------------------------ area DSO


class AreaDSOHost(Host):
    """A distribution area's real-time operator: evaluates exchanges, answers with cuts."""

    ANALYST_READS = (*Host.ANALYST_READS, "solution")
    agent: AreaDSO

    def __init__(self, agent: AreaDSO, tso: str, *, neighbours: int = 0, warmup: int = 5,
                 area: int | None = None) -> None:
        super().__init__(agent)
        self.area = area
        self.tso = tso
        self.neighbours = int(neighbours)
        self.warmup = int(warmup)
        self.scenario_set = "in_sample"
        self.scheme = ""  # the scheme of the schedules and exchanges in hand ("" before any)
        self.offers = _OfferBook()
        self.warm: set[tuple[str, str]] = set()  # (scheme, scenario set) it has warmed up
        self.last: dict[str, dict[str, Any]] = {}  # per scenario set: summary of the last evaluation
        self.solutions: dict[str, dict[str, Any] | None] = {}  # per scenario set: the last evaluation's solution
        self.caps: dict[str, float] = {}
        self.price = math.nan
        self.evaluations = 0

    def _handle(self, messages: list[Message]) -> list[Message]:
        out: list[Message] = []
        for m in messages:
            if isinstance(m, Command):
                if m.action is Action.SCENARIO_SET:
                    self.scenario_set = _set(m)
                    if m.scheme is not None:
                        self.scheme = Scheme(m.scheme).value
                elif m.action is Action.LOWER_BOUND:
                    lb = self.agent.rt_cost_lower_bound()
                    out.append(OptimalityCut(self.id, self.tso, self.round, scenario=-1, coefficients={},
                                             constant=lb, value=lb))
                else:
                    raise _unexpected(self, m)
            elif isinstance(m, (Offer, Bid)):
                for res, wind in self.offers.add(m):
                    self.agent.set_offer(res, {self.scenario_set: wind} if wind is not None else None)
            elif isinstance(m, Schedule):
                self.agent.set_schedule(dict(m.quantities))
                self.price = float(np.asarray(next(iter(m.prices.values())))[0]) if m.prices else math.nan
            elif isinstance(m, Caps):
                self.caps.update(dict(m.caps))
            elif isinstance(m, Exchange):
                out += self._evaluate(np.asarray(m.values[self.agent.pcc_id], dtype=float))
        return out

    def _evaluate(self, p: np.ndarray) -> list[Message]:
        a = self.agent
        sset = self.scenario_set
        ctx = (self.scheme, sset)
        cuts: list[tuple[int, dict[str, float], float, float]] = []
        res = a.evaluate(p, sset, iteration=self.round, context=ctx, keep_dispatch=True)
        if ctx not in self.warm and self.warmup > 0:  # its own first look at the set: cuts at a few exchanges
            self.warm.add(ctx)
            warm = a.warmup_cuts(self.warmup, sset, p.size, iteration=self.round, context=(*ctx, "warm-up"))
            cuts += [(s, coef, const, float(res.value[s])) for s, coef, const, _ in warm]
        cuts += a.cuts(res, neighbours=self.neighbours)
        self.evaluations += 1
        self.last[sset] = _summary(res)
        self.solutions[sset] = res.solution
        return [OptimalityCut(self.id, self.tso, self.round, scenario=s, coefficients=coef, constant=const, value=val)
                for s, coef, const, val in cuts]

    def report(self) -> dict[str, Any]:
        a = self.agent
        return {"last": self.last, "n_solves": a.n_solves, "solve_time": a.solve_time, "n_inaccurate": a.n_inaccurate,
                "n_shifted": a.n_shifted, "n_wall": a.n_wall, "evaluations": self.evaluations, "caps": dict(self.caps),
                "schedule": dict(a.schedule), "feeder": a.feeder.id}

    def solution(self, sset: str) -> dict[str, Any] | None:
        """The whole real-time solution of its last evaluation on ``sset`` (the analyst's read, after a run)."""
        return self.solutions.get(sset)


def _summary(r: AreaResult) -> dict[str, Any]:
    return {"value": r.value.copy(), "rt_cost": r.rt_cost.copy(), "slack": r.slack.copy(),
            "relaxation_gap": r.relaxation_gap.copy(), "relaxation_gap_rel": r.relaxation_gap_rel.copy(),
            "v_min": r.v_min.copy(), "v_max": r.v_max.copy(), "losses": r.losses.copy(), "shed": r.shed.copy(),
            "p": r.p.copy(), "shifted": r.shifted, "inaccurate": r.inaccurate}


# ------------------------------------------------------------------ TSO


class TSOHost(Host):
    """The TSO: collects offers, takes the Benders steps it is commanded, talks to the DSOs, reports its bounds."""

    agent: TSO
    ANALYST_READS = (*Host.ANALYST_READS, "evaluation", "market")

    def __init__(self, agent: TSO, participants: Mapping[str, str]) -> None:
        super().__init__(agent)
        self.dsos = list(agent.areas)
        self.participants = dict(participants)  # participant id -> role
        self.owner: dict[str, str] = {}  # resource id -> participant (from the senders of offers)
        self.scenario_set = "in_sample"
        self.offers = _OfferBook()

    # ---------------------------------------------------------------- messages
    def _handle(self, messages: list[Message]) -> list[Message]:
        out: list[Message] = []
        cuts = False
        commands = []
        for m in messages:
            if isinstance(m, (Offer, Bid)):
                self._offer(m)
            elif isinstance(m, OptimalityCut):
                cuts |= self._cut(m)
            elif isinstance(m, Command):
                commands.append(m)
        if cuts:  # every DSO answered the round: report its bounds
            out.append(self._bounds())
        for m in commands:
            out += self._command(m)
        return out

    def _offer(self, m: Offer | Bid) -> None:
        for rid in m.prices:
            self.owner[rid] = m.sender
        if Product(m.product) is Product.DAY_AHEAD:
            for rid in m.prices:
                self.agent.set_da_offer(rid, float(np.asarray(m.prices[rid])[0]),
                                        float(np.asarray(m.quantities[rid])[0]))
        for res, wind in self.offers.add(m):
            self.agent.set_rt_offer(res, {self.scenario_set: wind} if wind is not None else None)

    def _cut(self, m: OptimalityCut) -> bool:
        if m.scenario < 0:
            self.agent.set_rt_lower_bound(m.sender, m.constant)
            return False
        self.agent.add_dso_cut(m.sender, m.scenario, dict(m.coefficients), m.constant, m.value)
        return True

    def _bounds(self) -> RealTimeBounds:
        b = self.agent.round_bounds()
        run = self.agent.run
        assert run is not None
        U, L = b if b is not None else (np.zeros(0), np.zeros(0))
        return RealTimeBounds(self.id, COORDINATOR, self.round, scenario_set=ScenarioSet(run.scenario_set),
                              iteration=int(run.iteration or 0), inner_round=run.rounds, upper=U, lower=L)

    def _command(self, m: Command) -> list[Message]:
        a = self.agent
        if m.action is Action.SCENARIO_SET:
            self.scenario_set = _set(m)
            return []
        if m.action is Action.MASTER:
            bound, objective = a.start_iteration(_scheme(m), m.iteration)
            return [MasterBound(self.id, COORDINATOR, self.round, scheme=m.scheme, iteration=m.iteration,
                                lower=bound, objective=objective), *self._area_schedules()]
        if m.action is Action.EVALUATE:
            a.start_evaluation(_scheme(m), _set(m))
            return self._area_schedules()
        if m.action is Action.REAL_TIME_ROUND:
            p = a.next_exchanges()
            return [Exchange(self.id, d, self.round, values={a.areas[d][0]: p[e]}) for e, d in enumerate(self.dsos)]
        if m.action is Action.CLOSE_ITERATION:
            f = a.close_iteration()
            return [IterationBounds(self.id, COORDINATOR, self.round, scheme=m.scheme, iteration=m.iteration,
                                    lower=f.lower, upper=f.upper, da_cost=f.da_cost, expected_rt=f.expected_rt,
                                    price=f.price if math.isfinite(f.price) else None)]
        if m.action is Action.CLOSE_EVALUATION:
            a.close_evaluation()
            return []
        if m.action is Action.FINAL:
            return self._final(_scheme(m))
        raise _unexpected(self, m)

    def _area_schedules(self) -> list[Message]:
        run = self.agent.run
        assert run is not None
        out: list[Message] = []
        for d in self.dsos:
            sched = self.agent.area_schedule(d)
            out.append(Schedule(self.id, d, self.round, quantities={k: [v] for k, v in sched.items()},
                                prices={k: [run.price] for k in sched} if math.isfinite(run.price) else {}))
        return out

    def _final(self, scheme: str) -> list[Message]:
        inc = self.agent.incumbent[scheme]
        mk = self.agent.market()
        x, caps, price = inc.x, inc.caps, inc.price
        assert x is not None and caps is not None
        by_owner: dict[str, list[int]] = {}
        for i, k in enumerate(mk.ids):
            by_owner.setdefault(self.owner[k], []).append(i)
        out: list[Message] = []
        for owner, idx in sorted(by_owner.items()):
            out.append(Schedule(self.id, owner, self.round, quantities={mk.ids[i]: [x[i]] for i in idx},
                                prices={mk.ids[i]: [price] for i in idx} if math.isfinite(price) else {}))
            capped = [i for i in idx if mk.capped[i]]
            if capped and scheme != "fc":
                out.append(Caps(self.id, owner, self.round, caps={mk.ids[i]: float(caps[i]) for i in capped}))
        for d in self.dsos:
            members = self.agent.area_members(d)
            out.append(Schedule(self.id, d, self.round, quantities={k: [x[mk.index[k]]] for k in members},
                                prices={k: [price] for k in members} if math.isfinite(price) else {}))
            capped = [k for k in members if mk.capped[mk.index[k]]]
            if capped and scheme != "fc":
                out.append(Caps(self.id, d, self.round, caps={k: float(caps[mk.index[k]]) for k in capped}))
        return out

    # ---------------------------------------------------------------- reading results (the analyst's channel)
    def report(self) -> dict[str, Any]:
        a = self.agent
        return {"iterations": list(a.iterations), "incumbent": dict(a.incumbent),
                "master_solutions": list(a.master_solutions), "evaluations": a.evaluations, "market": a.market(),
                "lp_solves": a.n_lp_solves, "lp_time": a.lp_time,
                "master_lps": {k: m.n_lps for k, m in a.masters.items()},
                "rt_cuts_pruned": sum(r.pruned for r in a.rt_masters.values())}

    def evaluation(self, scheme: str, sset: str) -> dict[str, Any]:
        return self.agent.evaluations[f"{scheme}:{sset}"]

    def market(self) -> Any:
        return self.agent.market()
