"""Grid and case data model: validated when built, immutable afterwards.

This module is the one place to import the model from (``from network.model
import Case, Feeder, ...``); it holds the conventions below and re-exports the
public names of the modules that implement it:

- :mod:`network.elements` -- the element records (:class:`Bus`, :class:`DCLine`,
  :class:`FeederNode`, :class:`FeederLine`, :class:`Owner`, :class:`Unit`,
  :class:`Load`, :class:`MeterLocation`), the schema constants (``PHASES``,
  ``ROLES``, ``TRANSMISSION``, the table names ``F_*``) and :class:`ReadOnlyDict`;
- :mod:`network.grids` -- :class:`TransmissionGrid` and :class:`Feeder`;
- :mod:`network.case` -- :class:`Case`.

Conventions
-----------
- Identifiers are strings (``"2"``, ``"L1"``, ``"G1"``), unique within their table
  (feeder nodes and feeder lines: unique within their feeder).
- Phases are strings of letters in ``abc`` order (``"abc"``, ``"b"``). A
  single-phase feeder (``Feeder.n_phases == 1``) uses phase ``"a"`` throughout.
- Feeder impedances ``r``/``x`` are per unit on the feeder's base and stored as
  ``n_phases x n_phases`` arrays in the phase frame (entries of absent phases are 0
  and ignored). Line limits are per unit, per phase (``inf`` = no limit).
- Transmission lines are DC lines: reactance ``x`` in pu on ``base_mva`` (non-zero; negative for
  a series capacitor, as long as the grid's reduced susceptance matrix stays non-singular), rating
  in the case's power unit.
- Powers of units and loads are in ``Case.power_unit`` (kW or MW), three-phase
  totals; a three-phase element splits its power equally over its phases.
- Sign conventions: unit output is positive injection, load is positive
  consumption; feeder line flows are positive from parent to child.

Each ``__post_init__`` validates its record and raises :class:`CaseError` naming the
table (the case-folder file name), the 1-based row and the column.
"""
from __future__ import annotations

from .case import Case
from .elements import (F_BRANCHES, F_BUSES, F_LINES, F_LOADS, F_META, F_NODES, F_OWNERS, F_PROFILES, F_UNITS, PHASES,
                       ROLES, TRANSMISSION, Bus, DCLine, FeederLine, FeederNode, Load, MeterLocation, Owner,
                       ReadOnlyDict, Unit)
from .errors import CaseError
from .grids import Feeder, TransmissionGrid

__all__ = [
    "PHASES", "ROLES", "TRANSMISSION",
    "F_BUSES", "F_BRANCHES", "F_NODES", "F_LINES", "F_UNITS", "F_LOADS", "F_OWNERS", "F_PROFILES", "F_META",
    "ReadOnlyDict", "CaseError",
    "Bus", "DCLine", "TransmissionGrid",
    "FeederNode", "FeederLine", "Feeder",
    "Owner", "Unit", "Load", "MeterLocation",
    "Case",
]
