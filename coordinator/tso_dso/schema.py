"""The message schemas of the ``tso-dso`` protocol: shapes from the scenario sets, commands per role.

Dimensions (:func:`dims`): ``scenarios`` = the number of scenarios of each set (in sample,
out of sample). Shapes (the layouts of ``coordinator/tso_dso/hosts.py``):

- day-ahead offers and bids: ``prices`` and ``quantities`` ``(1,)``; real-time ``UP``:
  ``prices`` ``(1,)``, ``quantities`` ``(2,)`` or, for a wind farm, ``(2 + S,)`` with S
  the size of a scenario set; ``DOWN``: ``(1,)`` and ``(2,)``; the same keys in both;
- ``Schedule``: ``(1,)`` each, prices only for scheduled resources (none for fc, which
  has no day-ahead price);
- ``Exchange``: ``(S,)``; ``RealTimeBounds``: ``(0,)`` (warm-up) or ``(S,)`` of the set
  it names; ``OptimalityCut.scenario`` in ``[-1, S - 1]`` (-1: a lower bound, with no
  coefficients);
- commands: each role's own steps; ``MasterBound`` and ``IterationBounds`` name their
  scheme, ``RealTimeBounds`` its scenario set.

Key scopes narrow the type level's by area through the parties' registration: a DSO's
decisions are its area's resources, so a TSO schedule to a DSO names that area's
resources only, an exchange to a DSO its own PCC only, and a DSO's cut only its own PCC
and its area's resources (the TSO's decisions within the sender's scope).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..messages import (Action, Bid, Caps, Command, Exchange, IterationBounds, MasterBound, Message, Offer,
                        OptimalityCut, Product, RealTimeBounds, Schedule)
from ..schema import CommandsOf, Dims, KeysWithin, MessageSchema, non_negative

__all__ = ["dims", "schemas"]


def dims(wind: Any) -> Dims:
    """The dimensions of a tso-dso run on the wind scenarios ``wind``: the size of each scenario set."""
    out = {"in_sample": int(np.asarray(wind.in_sample).shape[1])}
    oos = getattr(wind, "out_of_sample", None)
    if oos is not None and np.asarray(oos).ndim == 2 and np.asarray(oos).shape[1] > 0:
        out["out_of_sample"] = int(np.asarray(oos).shape[1])
    return Dims(scenarios=out)


def _one(d: Dims, m: Message) -> list[tuple[int, ...]]:
    return [(1,)]


def _per_scenario(d: Dims, m: Message) -> list[tuple[int, ...]]:
    return [(n,) for n in d.scenario_counts]


def _offered(d: Dims, m: Any) -> list[tuple[int, ...]]:
    if m.product is Product.DAY_AHEAD:
        return [(1,)]
    if m.product is Product.UP:
        return [(2,), *((2 + n,) for n in d.scenario_counts)]
    return [(2,)]


def _bounds(d: Dims, m: Any) -> list[tuple[int, ...]]:
    n = d.scenarios.get(m.scenario_set.value) if m.scenario_set is not None else None
    return [(0,)] if n is None else [(0,), (int(n),)]


def _scenario(d: Dims, m: Message) -> tuple[float, float]:
    return (-1, max(d.scenario_counts, default=0) - 1)


def _lower_bound_cut(m: Any, d: Dims, s: Any, r: Any) -> tuple[str, str] | None:
    if m.scenario == -1 and m.coefficients:
        return ("coefficients", "a lower bound (scenario -1) has no coefficients")
    return None


def schemas(commands: Mapping[str, frozenset[Action]]) -> dict[type[Message], MessageSchema]:
    """The tso-dso schemas; ``commands``: role -> the actions a command to that role may carry."""
    every = frozenset(a for v in commands.values() for a in v)
    offer = MessageSchema(shapes={"prices": _one, "quantities": _offered},
                          rules=(KeysWithin("quantities", "prices"), KeysWithin("prices", "quantities")))
    return {
        Offer: offer,
        Bid: offer,
        Schedule: MessageSchema(shapes={"quantities": _one, "prices": _one},
                                rules=(KeysWithin("prices", "quantities"),)),
        Caps: MessageSchema(),
        Exchange: MessageSchema(shapes={"values": _per_scenario}),
        OptimalityCut: MessageSchema(ranges={"scenario": _scenario}, rules=(_lower_bound_cut,)),
        Command: MessageSchema(values={"action": every}, ranges={"iteration": non_negative},
                               rules=(CommandsOf(commands),)),
        MasterBound: MessageSchema(required=frozenset({"scheme"}), ranges={"iteration": non_negative}),
        RealTimeBounds: MessageSchema(required=frozenset({"scenario_set"}), shapes={"upper": _bounds,
                                                                                     "lower": _bounds},
                                      ranges={"iteration": non_negative, "inner_round": non_negative}),
        IterationBounds: MessageSchema(required=frozenset({"scheme"}), ranges={"iteration": non_negative}),
    }
