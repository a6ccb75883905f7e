"""Import grids from pandapower networks and MATPOWER case files into :class:`~network.model.Case`.

Every importer returns a validated :class:`Case` (the model validates on
construction). Bad data raise :class:`CaseError` naming the source table (the
pandapower table, e.g. ``line``, or ``case9.m:mpc.branch``), the row (the
pandapower index, or the 1-based MATPOWER row) and the column.

One module per source; this package re-exports their public names:

- :mod:`.pandapower_transmission` -- ``from_pandapower_transmission``: a meshed
  pandapower network as a DC :class:`TransmissionGrid` case (MW).
- :mod:`.pandapower_feeders` -- ``from_pandapower_feeder`` (a radial
  single-phase-equivalent feeder such as ``case33bw``) and
  ``from_pandapower_lv_asymmetric`` (the three-phase IEEE European LV feeder).
- :mod:`.pandapower_cases` -- the named pandapower example networks:
  ``PANDAPOWER_CASES``, ``import_pandapower_case``, ``load_pandapower_network``.
- :mod:`.matpower` -- ``read_matpower`` and ``parse_matpower`` for MATPOWER ``.m``
  files.
- :mod:`.opendss` -- ``read_dss``: an OpenDSS feeder script (``.dss``) as a feeder case
  (opendssdirect, imported only when a file is read); its helpers are the ``dss_*`` modules
  (engine and source, lines, transformers and regulators, loads and units, the feeder walk).
- :mod:`.pandapower_tables` (reading pandapower tables) and :mod:`.common`
  (error location, load records, the parameters of an imported case, a
  transmission case with its default owners) are the shared helpers.

The per-source conventions (units, per unit bases, ids, what is dropped) are in
each module's docstring.
"""
from __future__ import annotations

from .matpower import parse_matpower, read_matpower
from .opendss import DssImport, read_dss
from .pandapower_cases import PANDAPOWER_CASES, import_pandapower_case, load_pandapower_network
from .pandapower_feeders import from_pandapower_feeder, from_pandapower_lv_asymmetric
from .pandapower_transmission import from_pandapower_transmission

__all__ = ["from_pandapower_transmission", "from_pandapower_feeder", "from_pandapower_lv_asymmetric",
           "import_pandapower_case", "load_pandapower_network", "read_matpower", "parse_matpower", "PANDAPOWER_CASES", "read_dss", "DssImport"]
