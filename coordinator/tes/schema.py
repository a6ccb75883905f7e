"""The message schemas of the ``tes`` protocol: shapes from the day's hours, enumerations, commands per role.

Dimensions (:func:`dims`): ``hours`` = the case's horizon H. Every price, quantity and
injection array has shape ``(H,)``; a feasibility cut's ``period`` is an hour of the day,
its ``families`` are LinDist3Flow limit families (``network.lindist3flow.FAMILIES``: a new
family must be added there to be sent), ``violation`` >= 0. The main grid's offer has no
quantity (unlimited, :meth:`~coordinator.messages.Offer.quantity`); every other offered
unit has one. Key scopes are the type level's (:data:`coordinator.schema.KEY_SCOPES`):
offers and prices keyed by the sender's units, injections by the load aggregator's own
decisions, cuts by the receiver's decisions, schedules by the receiver's units among the
load aggregator's purchases.
"""
from __future__ import annotations

from typing import Mapping

from network.lindist3flow import FAMILIES
from network.model import Case

from ..messages import (Accept, Action, Command, FeasibilityCut, Injections, Losses, Message, Offer, PriceKind, PriceSignal,
                        Product, Schedule)
from ..schema import CommandsOf, Dims, KeysWithin, MessageSchema, non_negative

__all__ = ["dims", "schemas"]


def dims(case: Case) -> Dims:
    """The dimensions of a tes day on ``case``: its hours."""
    return Dims(hours=int(case.horizon))


def _hours(d: Dims, m: Message) -> list[tuple[int, ...]]:
    return [] if d.hours is None else [(int(d.hours),)]


def _hour(d: Dims, m: Message) -> tuple[float, float]:
    return (0, int(d.hours or 0) - 1)


def schemas(commands: Mapping[str, frozenset[Action]]) -> dict[type[Message], MessageSchema]:
    """The tes schemas; ``commands``: role -> the actions a command to that role may carry."""
    every = frozenset(a for v in commands.values() for a in v)
    return {
        PriceSignal: MessageSchema(shapes={"prices": _hours}, values={"product": frozenset({PriceKind.LMP})}),
        Offer: MessageSchema(shapes={"prices": _hours, "quantities": _hours},
                             values={"product": frozenset({Product.DAY_AHEAD})},
                             rules=(KeysWithin("quantities", "prices"),)),
        Schedule: MessageSchema(shapes={"quantities": _hours, "prices": _hours},
                                rules=(KeysWithin("prices", "quantities"),)),
        Injections: MessageSchema(shapes={"p": _hours, "q": _hours}),
        FeasibilityCut: MessageSchema(ranges={"period": _hour, "violation": non_negative},
                                      values={"families": frozenset(FAMILIES)}),
        Accept: MessageSchema(ranges={"violation": non_negative}),
        Losses: MessageSchema(shapes={"losses": _hours}),
        Command: MessageSchema(values={"action": every, "scheme": frozenset(), "scenario_set": frozenset()},
                               ranges={"iteration": non_negative}, rules=(CommandsOf(commands),)),
    }
