"""``python3 run.py import SOURCE --out FOLDER``: a grid from another tool as a case folder.

SOURCE is one of

- a MATPOWER case file (``*.m``): a transmission case (DC lines, MW) by
  :func:`network.importers.read_matpower`;
- a pandapower network: the name of a ``pandapower.networks`` function (``case118``,
  ``case300``, ``case33bw``, ``ieee_european_lv_asymmetric``, ...) or a pandapower file
  (``*.json``, ``*.p``/``*.pkl``);
- an OpenDSS feeder (``*.dss``) is refused for now: there is no .dss reader yet (only the export,
  :mod:`network.opendss`).

A pandapower network becomes a transmission case or a feeder case: ``--kind transmission`` or
``--kind feeder``, or by default (``auto``) the known networks' own importer
(:data:`network.importers.PANDAPOWER_CASES`), otherwise a feeder when the network is radial (one
external grid, branches = buses - 1) and a transmission grid when it is meshed. A three-phase
network with asymmetric loads (``asymmetric_load``) is imported three-phase.

The case folder is written with :func:`network.io.write_case` (validated: the model checks it on
construction), and read back with the project's loader before the command reports success; a
README.md in the folder names the source, the importer and the counts. Units and conventions are
those of each importer (see its module docstring): MW on transmission, kW on the LV feeder.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

from network.errors import CaseError
from network.io import read_case, write_case
from network.model import Case

KINDS = ("auto", "transmission", "feeder")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a MATPOWER file (.m), or a pandapower network name (e.g. case118) or file "
                                  "(.json, .p)")
    p.add_argument("--out", required=True, help="the case folder to write (replaced if it exists)")
    p.add_argument("--name", default=None, help="the case name (default: the source's name)")
    p.add_argument("--kind", choices=KINDS, default="auto",
                   help="pandapower only: import as a transmission grid or as a feeder (default: auto)")


def _pandapower_net(source: str) -> tuple[Any, str]:
    """(the pandapower network, its name) of a built-in name or a pandapower file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pandapower as pp

        path = Path(source)
        if path.suffix.lower() in (".json", ".p", ".pkl"):
            if not path.is_file():
                raise CaseError("file is missing", file=source)
            try:
                net = pp.from_json(str(path)) if path.suffix.lower() == ".json" else pp.from_pickle(str(path))
            except Exception as exc:  # noqa: BLE001 - any reader failure is bad input
                raise CaseError(f"not a pandapower network: {type(exc).__name__}: {exc}", file=source) from None
            return net, path.stem
        from network.importers import load_pandapower_network

        return load_pandapower_network(source), source


def _is_radial(net: Any) -> bool:
    n_bus = int(net.bus.in_service.sum())
    n_branch = int(net.line.in_service.sum()) + int(net.trafo.in_service.sum())
    return len(net.ext_grid) == 1 and n_branch == n_bus - 1


def import_pandapower(source: str, kind: str = "auto", name: str | None = None) -> Case:
    """A case from a pandapower network (a ``pandapower.networks`` name or a file)."""
    from network.importers import (PANDAPOWER_CASES, from_pandapower_feeder, from_pandapower_lv_asymmetric,
                                   from_pandapower_transmission, import_pandapower_case)

    if kind == "auto" and source in PANDAPOWER_CASES:
        case = import_pandapower_case(source)
        return case if name is None else case.replace(name=name)
    net, stem = _pandapower_net(source)
    name = name or stem
    if kind == "auto":
        kind = "feeder" if _is_radial(net) else "transmission"
    if kind == "transmission":
        return from_pandapower_transmission(net, name)
    if len(getattr(net, "asymmetric_load", [])):
        return from_pandapower_lv_asymmetric(net, name)
    return from_pandapower_feeder(net, name)


def import_source(source: str, *, kind: str = "auto", name: str | None = None) -> tuple[Case, str]:
    """(the imported case, a one-line description of the importer used)."""
    suffix = Path(source).suffix.lower()
    if suffix == ".m":
        from network.importers import read_matpower

        case = read_matpower(source, name)
        return case, "network.importers.read_matpower (MATPOWER, DC transmission grid, MW)"
    if suffix == ".dss":
        raise CaseError("OpenDSS feeders cannot be imported yet (no .dss reader in network/importers); "
                        "export one from pandapower or MATPOWER instead", file=source)
    case = import_pandapower(source, kind, name)
    what = "transmission grid, DC, MW" if case.transmission is not None else "feeder"
    return case, f"network.importers, pandapower ({what})"


def _readme(case: Case, source: str, how: str) -> str:
    s = case.summary()
    lines = [f"# {case.name}", "", f"Imported from `{source}` by `python3 run.py import` with {how}.", "",
             f"{case.description}", "", "Counts (from the case loader):", ""]
    lines += [f"- {k}: {v}" for k, v in s.items()]
    lines += ["", f"Units: powers in {case.power_unit}; see the importer's module docstring for per-unit bases, "
                  "ids and what the import drops (e.g. shunts, phase shifters).", ""]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    case, how = import_source(args.source, kind=args.kind, name=args.name)
    folder = write_case(case, args.out)
    (folder / "README.md").write_text(_readme(case, args.source, how), encoding="utf-8")
    back = read_case(folder)  # the project's loader: the folder must load as the same case
    if back != case:
        raise CaseError("the written case folder does not read back as the imported case", file=str(folder))
    s = back.summary()
    print(f"wrote {folder}: " + ", ".join(f"{k} {v}" for k, v in s.items() if k != "name"))
    return 0
