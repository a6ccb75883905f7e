"""The information policy of the ``tes`` protocol: which role may send which message type to which role.

The coordinator drives the day with :class:`Command` messages (``OPEN`` to the main grid, ``CLOSE``
to the load aggregator, ``END_OF_DAY`` to the DER managers; ``NEW_DAY`` to the main grid, the DER
managers and the load aggregator when the days differ: each takes the day's data from its own private
data set). The schemas (shapes from the day's
hours) are in :mod:`coordinator.tes.schema`; :func:`~coordinator.tes.schema.dims` gives a run's
dimensions (``boundary.use(TES_POLICY, dims(case))``). On a case with several feeders each feeder's
DER managers, load aggregator and TES operator share an area of their own (``area_scoped``): a DER
manager of one feeder cannot offer to, or be scheduled by, another feeder's load aggregator, nor a
load aggregator talk to another feeder's operator. The main grid, shared by the feeders, is not
scoped.
"""
from __future__ import annotations

from ..boundary import Policy
from ..messages import Accept, Action, Command, FeasibilityCut, Injections, Losses, Offer, PriceSignal, Schedule
from .schema import schemas

MAIN_GRID, DER_MANAGER, LOAD_AGGREGATOR, OPERATOR = "tes.main_grid", "tes.der_manager", "tes.load_aggregator", \
    "tes.operator"

#: the steps each role takes on the coordinator's command
COMMANDS = {MAIN_GRID: frozenset({Action.OPEN, Action.NEW_DAY}),
            LOAD_AGGREGATOR: frozenset({Action.CLOSE, Action.NEW_DAY}),
            DER_MANAGER: frozenset({Action.END_OF_DAY, Action.NEW_DAY})}

TES_POLICY = Policy("tes", {
    (MAIN_GRID, DER_MANAGER): frozenset({PriceSignal}),
    (MAIN_GRID, LOAD_AGGREGATOR): frozenset({Offer, PriceSignal}),
    (DER_MANAGER, LOAD_AGGREGATOR): frozenset({Offer}),
    (LOAD_AGGREGATOR, DER_MANAGER): frozenset({Schedule}),
    (LOAD_AGGREGATOR, MAIN_GRID): frozenset({Schedule}),
    (LOAD_AGGREGATOR, OPERATOR): frozenset({Injections}),
    (OPERATOR, LOAD_AGGREGATOR): frozenset({FeasibilityCut, Accept, Losses}),  # Losses: --network-check ac
}, coordinator_types=frozenset({Command}), schemas=schemas(COMMANDS),
    # a feeder's DER managers, load aggregator and TES operator talk within their feeder's area only
    area_scoped=frozenset({(DER_MANAGER, LOAD_AGGREGATOR), (LOAD_AGGREGATOR, OPERATOR)}))
