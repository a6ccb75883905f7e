"""The information policy of the ``tso-dso`` protocol: which role may send which message type to which role.

The coordinator drives the protocol with typed :class:`Command` messages to every role. Only
the TSO reports to the coordinator, and only the figures the protocol's decisions are made
from: its master's bound (:class:`MasterBound`), the real-time bounds of each TSO <-> DSO
round (:class:`RealTimeBounds`) and the bounds of each Benders iteration
(:class:`IterationBounds`). A DSO talks to its own area's participants only (and to the
TSO): the pairs of roles in ``area_scoped`` must share an area. The schemas (shapes from the
scenario sets) are in :mod:`coordinator.tso_dso.schema`; :func:`~coordinator.tso_dso.schema.dims`
gives a run's dimensions (``boundary.use(TSO_DSO_POLICY, dims(wind))``).
"""
from __future__ import annotations

from ..boundary import Policy
from ..messages import (Action, Bid, Caps, Command, Exchange, IterationBounds, MasterBound, Offer, OptimalityCut,
                        RealTimeBounds, Schedule)
from .schema import schemas

TSO, DSO, DER_MANAGER, LOAD_AGGREGATOR = "tso_dso.tso", "tso_dso.dso", "tso_dso.der_manager", \
    "tso_dso.load_aggregator"

#: the steps each role takes on the coordinator's command
COMMANDS = {
    DER_MANAGER: frozenset({Action.OFFER_DAY_AHEAD, Action.OFFER_REAL_TIME, Action.END_OF_DAY}),
    LOAD_AGGREGATOR: frozenset({Action.OFFER_DAY_AHEAD, Action.OFFER_REAL_TIME, Action.END_OF_DAY}),
    DSO: frozenset({Action.SCENARIO_SET, Action.LOWER_BOUND}),
    TSO: frozenset({Action.SCENARIO_SET, Action.MASTER, Action.REAL_TIME_ROUND, Action.CLOSE_ITERATION,
                    Action.EVALUATE, Action.CLOSE_EVALUATION, Action.FINAL}),
}

TSO_DSO_POLICY = Policy("tso-dso", {
    (DER_MANAGER, TSO): frozenset({Offer}),
    (LOAD_AGGREGATOR, TSO): frozenset({Bid}),
    (TSO, DER_MANAGER): frozenset({Schedule, Caps}),
    (TSO, LOAD_AGGREGATOR): frozenset({Schedule, Caps}),
    (DER_MANAGER, DSO): frozenset({Offer}),
    (LOAD_AGGREGATOR, DSO): frozenset({Bid}),
    (TSO, DSO): frozenset({Exchange, Schedule, Caps}),
    (DSO, TSO): frozenset({OptimalityCut}),
}, coordinator_types=frozenset({Command}),
    to_coordinator={TSO: frozenset({MasterBound, RealTimeBounds, IterationBounds})},
    schemas=schemas(COMMANDS), area_scoped=frozenset({(DER_MANAGER, DSO), (LOAD_AGGREGATOR, DSO)}))
