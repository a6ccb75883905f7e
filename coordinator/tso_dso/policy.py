"""The information policy of the ``tso-dso`` protocol: which role may send which message type to which role."""
from __future__ import annotations

from ..boundary import Policy
from ..messages import Bid, Caps, Command, Exchange, Offer, OptimalityCut, Schedule, Status

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
}, coordinator_types=frozenset({Command, Status}))
