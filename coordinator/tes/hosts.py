"""Hosts of the ``tes`` protocol: main grid, DER managers, the load aggregator and the TES operator.

The coordinator drives a day with :class:`Command` messages: ``OPEN`` to the main grid (it posts
the LMP to the DER managers, who answer with offers, and its own offer to the load
aggregator), ``CLOSE`` to the load aggregator (it sends each seller its final schedule) and
``END_OF_DAY`` to the DER managers (their strategies learn from the day). Every offer is for
day-ahead energy (``Product.DAY_AHEAD``).

Days that differ: the main grid, the DER managers and the load aggregator may hold a private data
set of the days (``days``: day -> the keyword arguments of its agent's ``new_day``: its own LMP,
its own units' availability, its own customers' baselines). ``Command(NEW_DAY, iteration=d)``
makes the agent take day ``d``'s data; only the day number travels, never the data. Peer tables name the roles a host talks to:
``"der_manager"``, ``"load_aggregator"`` and ``"operator"`` (the TES operator).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from agents.cuts import CutPool
from agents.tes.der_manager import DERManager
from agents.tes.load_aggregator import LoadAggregator
from agents.tes.main_grid import MainGrid
from agents.tes.operator import DSO

from ..host import Host
from ..messages import (Accept, Action, Command, FeasibilityCut, Injections, Losses, Message, Offer, PriceSignal,
                        Product, Schedule)


def _of(messages: list[Message], kind: type[Message]) -> list[Any]:
    return [m for m in messages if isinstance(m, kind)]


class _DaysHost(Host):
    """A host whose agent takes each day's data from its own private data set on ``Command(NEW_DAY)``."""

    def __init__(self, agent: Any, peers: dict[str, list[str]] | None = None,
                 days: list[dict[str, Any]] | None = None) -> None:
        super().__init__(agent, peers)
        self.days = days  # day -> keyword arguments of the agent's new_day (its own data only)
        self.day: int | None = None

    def _new_day(self, messages: list[Message]) -> None:
        for m in _of(messages, Command):
            if m.action == Action.NEW_DAY:
                if self.days is None or not 0 <= m.iteration < len(self.days):
                    have = 0 if self.days is None else len(self.days)
                    raise ValueError(f"{self.id}: no data of day {m.iteration} (it holds {have} day(s))")
                self.agent.new_day(**self.days[m.iteration])
                self.day = m.iteration


class MainGridHost(_DaysHost):
    """The main grid. ``unit_of`` (several feeders): load aggregator -> the supply point at its feeder's head;
    each load aggregator is offered that one only (default: every supply point)."""

    agent: MainGrid

    def __init__(self, agent: MainGrid, peers: dict[str, list[str]] | None = None,
                 days: list[dict[str, Any]] | None = None, unit_of: dict[str, str] | None = None) -> None:
        super().__init__(agent, peers, days)
        self.unit_of = dict(unit_of or {})

    def _handle(self, messages: list[Message]) -> list[Message]:
        self._new_day(messages)
        out: list[Message] = []
        for m in _of(messages, Command):
            if m.action == Action.OPEN:
                lmp = self.agent.lmp
                out += [PriceSignal(self.id, d, self.round, product="lmp", prices={self.agent.unit_id: lmp})
                        for d in self.peers.get("der_manager", [])]
                offers = self.agent.offers()
                for la in self.peers.get("load_aggregator", []):
                    mine = {k: v for k, v in offers.items() if la not in self.unit_of or k == self.unit_of[la]}
                    prices = {k: v[0] for k, v in mine.items()}
                    # an unlimited quantity (+inf) is sent as no quantity (Offer.quantity)
                    qty = {k: v[1] for k, v in mine.items() if np.isfinite(v[1]).all()}
                    out.append(Offer(self.id, la, self.round, product=Product.DAY_AHEAD, prices=prices,
                                     quantities=qty))
        for m in _of(messages, Schedule):
            self.agent.deliver(dict(m.quantities))
        return out

    def report(self) -> dict[str, Any]:
        return {"settlement": self.agent.settlement()}


class DERManagerHost(_DaysHost):
    agent: DERManager

    def _handle(self, messages: list[Message]) -> list[Message]:
        self._new_day(messages)
        out: list[Message] = []
        for m in _of(messages, PriceSignal):
            lmp = next(iter(m.prices.values()))
            offers = self.agent.offers(lmp)
            out += [Offer(self.id, la, self.round, product=Product.DAY_AHEAD,
                          prices={k: v[0] for k, v in offers.items()}, quantities={k: v[1] for k, v in offers.items()})
                    for la in self.peers.get("load_aggregator", [])]
        for m in _of(messages, Schedule):
            self.agent.deliver(dict(m.quantities), dict(m.prices))
        for m in _of(messages, Command):
            if m.action == Action.END_OF_DAY:
                self.agent.end_of_day()
        return out

    def report(self) -> dict[str, Any]:
        return {"settlement": self.agent.settlement(), "strategy": self.agent.strategy.describe(),
                "offers": {k: v[0].tolist() for k, v in self.agent.last_offer.items()}}


class LoadAggregatorHost(_DaysHost):
    """Collects day-ahead offers, cuts and loss estimates; re-solves whenever it gets new ones; sends injections
    to the operator. A loss estimate (:class:`Losses`, AC check only) replaces the previous one and stays in
    use, like the cuts, until the operator sends another."""

    agent: LoadAggregator

    def __init__(self, agent: LoadAggregator, peers: dict[str, list[str]] | None = None,
                 days: list[dict[str, Any]] | None = None) -> None:
        super().__init__(agent, peers, days)
        self.offers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.sellers: dict[str, str] = {}  # unit id -> seller agent id
        self.cuts = CutPool()  # feasibility cuts received so far, keyed by the LA's decision ids (repeats dropped)
        self.losses: np.ndarray | None = None  # the operator's last loss estimate (kW per hour), None: lossless
        self.solution: Any = None
        self.history: list[dict[str, Any]] = []

    def _handle(self, messages: list[Message]) -> list[Message]:
        self._new_day(messages)
        if any(isinstance(m, Command) and m.action == Action.NEW_DAY for m in messages):
            self.losses = None  # the last loss estimate was for another day's loads
        new = False
        for m in _of(messages, Offer):
            if m.product != Product.DAY_AHEAD:
                what = getattr(m.product, "value", m.product)
                raise ValueError(f"{self.id}: an offer of {what} from {m.sender}; the tes market buys day-ahead "
                                 "energy only")
            for k in m.prices:
                self.offers[k] = (np.asarray(m.prices[k]), m.quantity(k))
                self.sellers[k] = m.sender
            new = True
        for m in _of(messages, FeasibilityCut):
            new |= self.cuts.add(m.period, m.constant, dict(m.coefficients), iteration=m.round)
        for m in _of(messages, Losses):
            if self.losses is None or not np.array_equal(self.losses, m.losses):
                self.losses = np.array(m.losses, dtype=float)
                new = True
        out: list[Message] = []
        if new:
            self.solution = self.agent.solve(self.offers, cuts=list(self.cuts), losses=self.losses)
            self.history.append({"round": self.round, "objective": self.solution.objective,
                                 "n_cuts": len(self.cuts), "solve_time_s": self.solution.solve_time})
            # reactive power is a decision only for customers (DERs inject active power only)
            dec = self.agent.decision_ids()
            q = {k: v for k, v in self.solution.injections_q.items() if f"{k}#q" in dec}
            out += [Injections(self.id, op, self.round, p=self.solution.injections_p, q=q)
                    for op in self.peers.get("operator", [])]
        for m in _of(messages, Command):
            if m.action == Action.CLOSE and self.solution is not None:
                # the final schedule: tell each seller what it sold and at which price
                by_seller: dict[str, dict[str, Any]] = {}
                for u, q in self.solution.purchases.items():
                    by_seller.setdefault(self.sellers[u], {})[u] = q
                for seller, qty in sorted(by_seller.items()):
                    out.append(Schedule(self.id, seller, self.round, quantities=qty,
                                        prices={u: self.offers[u][0] for u in qty}))
        return out

    def report(self) -> dict[str, Any]:
        return {"solution": self.solution, "history": self.history, "n_cuts": len(self.cuts),
                "losses": None if self.losses is None else self.losses.copy()}


class OperatorHost(Host):
    """The TES operator: checks injections on its network check; answers with cuts and/or a loss estimate
    (AC check), or an acceptance."""

    agent: DSO

    def __init__(self, agent: DSO, peers: dict[str, list[str]] | None = None) -> None:
        super().__init__(agent, peers)
        self.checks: list[dict[str, Any]] = []

    def _handle(self, messages: list[Message]) -> list[Message]:
        out: list[Message] = []
        for m in _of(messages, Injections):
            res = self.agent.check_schedule(dict(m.p), dict(m.q))
            volt = sum(float(v.sum()) for f, v in res.by_family.items() if f.startswith("voltage"))
            other = sum(float(v.sum()) for f, v in res.by_family.items() if not f.startswith("voltage"))
            self.checks.append({"round": self.round, "model": res.model, "violation": float(res.violation.sum()),
                                "e_star_voltage_pu2": volt, "e_star_flow_pu": other,
                                "n_cuts": len(res.cuts), "opendss_solves": self.agent.opendss_solves})
            out += [FeasibilityCut(self.id, m.sender, self.round, period=c.period, coefficients=c.coefficients,
                                   constant=c.constant, violation=c.violation, families=c.families)
                    for c in res.cuts]
            if res.loss_estimate is not None:
                out.append(Losses(self.id, m.sender, self.round, losses=res.loss_estimate))
            if res.accepted:
                out.append(Accept(self.id, m.sender, self.round, violation=float(res.violation.sum())))
        return out

    def report(self) -> dict[str, Any]:
        return {"checks": self.checks}
