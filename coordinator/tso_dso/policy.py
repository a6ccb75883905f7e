"""The information policy of the ``tso-dso`` protocol: which role may send which message type to which role.

The coordinator drives the protocol with typed :class:`Command` messages to every role. Only
the TSO reports to the coordinator, and only the figures the protocol's decisions are made
from: its master's bound (:class:`MasterBound`), the real-time bounds of each TSO <-> DSO
round (:class:`RealTimeBounds`) and the bounds of each Benders iteration
(:class:`IterationBounds`).
"""
from __future__ import annotations

from ..boundary import Policy
from ..messages import (Bid, Caps, Command, Exchange, IterationBounds, MasterBound, Offer, OptimalityCut,
                        RealTimeBounds, Schedule)

TSO, DSO, DER_MANAGER, LOAD_AGGREGATOR = "tso_dso.tso", "tso_dso.dso", "tso_dso.der_manager", \
    "tso_dso.load_aggregator"

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
    to_coordinator={TSO: frozenset({MasterBound, RealTimeBounds, IterationBounds})})
