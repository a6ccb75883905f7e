"""The information policy of the ``tes`` protocol: which role may send which message type to which role.

The coordinator drives the day with :class:`Command` messages (``OPEN``, ``CLOSE``, ``END_OF_DAY``).
"""
from __future__ import annotations

from ..boundary import Policy
from ..messages import Accept, Command, FeasibilityCut, Injections, Losses, Offer, PriceSignal, Schedule

MAIN_GRID, DER_MANAGER, LOAD_AGGREGATOR, OPERATOR = "tes.main_grid", "tes.der_manager", "tes.load_aggregator", \
    "tes.operator"

TES_POLICY = Policy("tes", {
    (MAIN_GRID, DER_MANAGER): frozenset({PriceSignal}),
    (MAIN_GRID, LOAD_AGGREGATOR): frozenset({Offer, PriceSignal}),
    (DER_MANAGER, LOAD_AGGREGATOR): frozenset({Offer}),
    (LOAD_AGGREGATOR, DER_MANAGER): frozenset({Schedule}),
    (LOAD_AGGREGATOR, MAIN_GRID): frozenset({Schedule}),
    (LOAD_AGGREGATOR, OPERATOR): frozenset({Injections}),
    (OPERATOR, LOAD_AGGREGATOR): frozenset({FeasibilityCut, Accept, Losses}),  # Losses: --network-check ac
}, coordinator_types=frozenset({Command}))
