"""``python3 run.py import SOURCE --out FOLDER``: a grid from another tool as a case folder.

SOURCE is one of

- a MATPOWER case file (``*.m``): a transmission case (DC lines, MW) by
  :func:`network.importers.read_matpower`;
- a pandapower network: the name of a ``pandapower.networks`` function (``case118``,
  ``case300``, ``case33bw``, ``ieee_european_lv_asymmetric``, ...) or a pandapower file
  (``*.json``, ``*.p``/``*.pkl``);
- an OpenDSS feeder (``*.dss``): a radial feeder case (kW) by :func:`network.importers.read_dss`,
  three-phase or single-phase as the source is (``--phases 1``: the positive-sequence equivalent of
  a balanced three-phase feeder, the form the tso-dso DSOs use); two-winding transformers at their
  nominal ratio become lines (per unit of each voltage zone), shunt capacitor banks constant-kvar
  units, regulators are held at their solved tap when it is 1, refused otherwise unless
  ``--regulators nominal`` (ratio 1, noted); what the feeder form cannot hold (off-nominal taps,
  three-winding transformers, reactors, voltage-dependent loads, ...) is refused in one line naming
  the OpenDSS element. Its README adds what was neglected, approximated or ignored and OpenDSS's own
  solution of the file against LinDist3Flow on the imported case.

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
    p.add_argument("source", help="a MATPOWER file (.m), an OpenDSS feeder (.dss), or a pandapower network name "
                                  "(e.g. case118) or file (.json, .p)")
    p.add_argument("--out", required=True, help="the case folder to write (replaced if it exists)")
    p.add_argument("--name", default=None, help="the case name (default: the source's name)")
    p.add_argument("--kind", choices=KINDS, default="auto",
                   help="pandapower only: import as a transmission grid or as a feeder (default: auto)")
    p.add_argument("--phases", choices=("auto", "1", "3"), default="auto",
                   help="OpenDSS only: the feeder form: as the source (auto), 3 (three-phase) or 1 (single-phase; "
                        "the positive-sequence equivalent of a balanced three-phase feeder, as tso-dso needs)")
    p.add_argument("--regulators", choices=("refuse", "nominal"), default="refuse",
                   help="OpenDSS only: a voltage regulator (RegControl) that OpenDSS solved off tap 1 is refused "
                        "(default), or held at ratio 1 (nominal), with a note of its solved tap; the reference "
                        "solution is then the file's with the regulators at ratio 1")
    p.add_argument("--s-base-kva", type=float, default=1000.0,
                   help="OpenDSS only: the feeder's power base in kVA (per phase three-phase; default 1000, the "
                        "1 MVA base of the tso-dso feeders)")


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


def import_source(source: str, *, kind: str = "auto", name: str | None = None, phases: str = "auto",
                  s_base_kva: float = 1000.0, regulators: str = "refuse") -> tuple[Case, str, list[str]]:
    """(the imported case, a one-line description of the importer used, extra README lines)."""
    suffix = Path(source).suffix.lower()
    if suffix == ".m":
        from network.importers import read_matpower

        case = read_matpower(source, name)
        return case, "network.importers.read_matpower (MATPOWER, DC transmission grid, MW)", []
    if suffix == ".dss":
        from network.importers import read_dss

        imp = read_dss(source, name, phases=phases, s_base_kva=s_base_kva, regulators=regulators)
        f = next(iter(imp.case.feeders.values()))
        how = (f"network.importers.read_dss (OpenDSS, {'three' if f.n_phases == 3 else 'single'}-phase feeder, kW; "
               f"--phases {phases}; --regulators {regulators})")
        return imp.case, how, _dss_readme(imp)
    case = import_pandapower(source, kind, name)
    what = "transmission grid, DC, MW" if case.transmission is not None else "feeder"
    return case, f"network.importers, pandapower ({what})", []


def dss_check(imp, rated: bool = False) -> float | None:  # noqa: ANN001 - a network.importers.opendss.DssImport
    """max |V_LinDist3Flow - V_OpenDSS| (pu) over the node-phases of an imported feeder at OpenDSS's
    operating point (the file's loads and generators as OpenDSS solved them; capacitor banks at the
    kvar OpenDSS solved, or with ``rated`` at the constant kvar the case holds), or None without one."""
    import numpy as np

    from network.lindist3flow import LinDist3Flow

    if not imp.converged or not imp.voltages:
        return None
    case = imp.case
    (f,) = case.feeders.values()
    model = LinDist3Flow(f, power_unit=case.power_unit)
    ids = [d.id for d in case.loads] + [u.id for u in case.units]
    sign = [1.0] * len(case.loads) + [-1.0] * len(case.units)  # consumption positive
    q_of = {k: imp.dispatch[k][1] for k in ids}
    if rated:
        q_of.update(imp.rated_q)
    a = model.injection_matrix(case.meters, ids)
    p = a @ np.array([s * imp.dispatch[k][0] for s, k in zip(sign, ids)]) if ids else np.zeros(model.n)
    q = a @ np.array([s * q_of[k] for s, k in zip(sign, ids)]) if ids else np.zeros(model.n)
    v = model.evaluate(p, q).v
    ref = np.array([imp.voltages[k] for k in model.node_phases])
    return float(np.abs(v - ref).max()) if ref.size else 0.0


def _dss_readme(imp) -> list[str]:  # noqa: ANN001
    (f,) = imp.case.feeders.values()
    out = ["## OpenDSS import", "",
           f"Feeder {f.id}: {f.n_phases}-phase form, head (source) node `{f.head}` at {f.v_head:g} pu, "
           f"v_base_kv {f.v_base_kv:.12g} ({'phase to neutral' if f.n_phases == 3 else 'the source basekv'}), "
           f"s_base_kva {f.s_base_kva:g} ({'per phase' if f.n_phases == 3 else 'total'}), z_base "
           f"{f.z_base_ohm:.6g} ohm. Loads (owner LA) keep kW and kvar/kW; PV systems and generators are units "
           "of DERM; no main-grid unit (OpenDSS gives the source no price or limit).", ""]
    out += ["What was neglected, approximated or ignored:", ""] + [f"- {n}" for n in imp.notes or ["nothing"]] + [""]
    if imp.converged and imp.voltages:
        v = list(imp.voltages.values())
        diff = dss_check(imp)
        nominal = any(n.startswith("--regulators nominal") for n in imp.notes)
        what = "with its regulators at ratio 1 (see the notes)" if nominal else "of the file"
        out += [f"OpenDSS's own solution {what}: |V| {min(v):.6f} - {max(v):.6f} pu; LinDist3Flow on the "
                f"imported case at the same loads and generators differs by at most {diff:.3g} pu (its "
                "linearization error: losses neglected).", ""]
        if imp.rated_q:
            out += [f"With the capacitor banks at the constant kvar the case holds (rated, at 1.0 pu) instead of "
                    f"the kvar OpenDSS solved: {dss_check(imp, rated=True):.3g} pu.", ""]
    else:
        out += ["OpenDSS's own power flow of the file did not converge: no reference voltages.", ""]
    return out


def _readme(case: Case, source: str, how: str, extra: list[str] = ()) -> str:
    s = case.summary()
    lines = [f"# {case.name}", "", f"Imported from `{source}` by `python3 run.py import` with {how}.", "",
             f"{case.description}", "", "Counts (from the case loader):", ""]
    lines += [f"- {k}: {v}" for k, v in s.items()]
    lines += ["", f"Units: powers in {case.power_unit}; see the importer's module docstring for per-unit bases, "
                  "ids and what the import drops (e.g. shunts, phase shifters).", ""]
    return "\n".join([*lines, *extra])


def run(args: argparse.Namespace) -> int:
    case, how, extra = import_source(args.source, kind=args.kind, name=args.name, phases=args.phases,
                                     s_base_kva=args.s_base_kva, regulators=args.regulators)
    folder = write_case(case, args.out)
    (folder / "README.md").write_text(_readme(case, args.source, how, extra), encoding="utf-8")
    back = read_case(folder)  # the project's loader: the folder must load as the same case
    if back != case:
        raise CaseError("the written case folder does not read back as the imported case", file=str(folder))
    s = back.summary()
    print(f"wrote {folder}: " + ", ".join(f"{k} {v}" for k, v in s.items() if k != "name"))
    return 0
