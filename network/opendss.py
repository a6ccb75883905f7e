"""Export a feeder to an OpenDSS script and solve it (AC check of LinDist3Flow).

The exported model follows the tes_feeder reference (README section 6):

- a stiff Vsource at the head node at ``v_head`` pu with angles 0/-120/+120 deg
  (line-to-line base ``sqrt(3) * v_base_kv`` on a three-phase feeder);
- every feeder line with its phase-frame ohm matrices (``pu * z_base_ohm``, only
  the line's present phases, mapped to bus nodes 1/2/3 = a/b/c) and no capacitance;
- loads as constant-PQ wye loads (``model=1``, ``vminpu=0.5``, ``vmaxpu=2`` so they
  never turn into constant impedance); a single-phase load is connected
  phase-to-neutral (the neutral is at 0 V);
- generators as ``Generator`` model 1 with ``kvar=0`` unless a kvar is given.

Powers given to :func:`feeder_to_dss` are three-phase totals in the case's power
unit (kW or MW), split equally over the element's phases; loads are positive
consumption and generator output positive injection.

:func:`solve_dss` runs a script in-process with opendssdirect (each call clears
the previous circuit, so repeated calls in one process are independent) and
returns ``{(node, phase): |V| in pu}`` with ``V_base = v_base_kv``
phase-to-neutral.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Mapping

from .model import Case, Feeder, MeterLocation

_NODE_NUM = {"a": 1, "b": 2, "c": 3}
_PHASE_OF = {v: k for k, v in _NODE_NUM.items()}
_TAG = "! tdmarket "
_KW = {"kW": 1.0, "MW": 1000.0}


def _safe_names(ids, prefix: str) -> dict[str, str]:
    """Map ids to unique OpenDSS-safe names (OpenDSS names are case-insensitive)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for i, x in enumerate(ids):
        name = re.sub(r"[^A-Za-z0-9_\-]", "_", str(x)) or f"{prefix}{i}"
        if name.lower() in used:
            name = f"{prefix}{i}_{name}"
        used.add(name.lower())
        out[x] = name
    return out


def _matrix(m) -> str:
    """Lower triangle in OpenDSS ``[a | b c | d e f]`` form."""
    n = len(m)
    return "[" + " | ".join(" ".join(f"{float(m[i][j]):.12g}" for j in range(i + 1)) for i in range(n)) + "]"


def _pq(v) -> tuple[float, float]:
    if isinstance(v, (tuple, list)):
        return float(v[0]), float(v[1])
    return float(v), 0.0


def feeder_to_dss(case_or_feeder: Case | Feeder, loads: Mapping[str, object],
                  gens: Mapping[str, object] | None = None, *, feeder_id: str | None = None,
                  meters: Mapping[str, MeterLocation] | None = None, power_unit: str | None = None,
                  v_head: float | None = None, frequency_hz: float | None = None) -> str:
    """An OpenDSS script of one feeder with the given loads and generators.

    ``loads``: meter id -> ``(p, q)`` or ``p`` (consumption, three-phase total,
    power unit, kVAr/MVAr for q); ``gens``: meter id -> ``p`` or ``(p, q)``
    (injection; q defaults to 0). Locations come from ``meters`` (default
    ``case.meters``). With a Case, ``feeder_id`` may be omitted if the case has one
    feeder; ``power_unit`` defaults to the case's (``"kW"`` for a bare Feeder), the
    frequency to ``case.parameters['frequency_hz']`` or 50 Hz.
    """
    if isinstance(case_or_feeder, Case):
        case = case_or_feeder
        if feeder_id is None:
            if len(case.feeders) != 1:
                raise ValueError(f"the case has feeders {list(case.feeders)}: give feeder_id")
            feeder_id = next(iter(case.feeders))
        feeder = case.feeders[feeder_id]
        meters = case.meters if meters is None else meters
        power_unit = power_unit or case.power_unit
        if frequency_hz is None:
            frequency_hz = float(case.param("frequency_hz", 50.0))  # type: ignore[arg-type]
    else:
        feeder = case_or_feeder
        if meters is None and (loads or gens):
            raise ValueError("meters (id -> MeterLocation) are needed with a bare Feeder")
    power_unit = power_unit or "kW"
    to_kw = _KW[power_unit]
    frequency_hz = 50.0 if frequency_hz is None else float(frequency_hz)
    v_head = feeder.v_head if v_head is None else float(v_head)
    three = feeder.n_phases == 3
    v_ln = feeder.v_base_kv
    v_ll = v_ln * math.sqrt(3) if three else v_ln
    z_base = feeder.z_base_ohm
    frame = feeder.phase_frame
    bus = _safe_names([n.id for n in feeder.nodes], "n")
    lname = _safe_names([ln.id for ln in feeder.lines], "l")

    def terminal(node: str, phases: str) -> str:
        return f"{bus[node]}." + ".".join(str(_NODE_NUM[p]) for p in phases)

    def kv(phases: str) -> float:
        return v_ll if (three and len(phases) > 1) else v_ln

    out = [f"{_TAG}feeder {json.dumps(feeder.id)}", f"{_TAG}v_base_kv {v_ln!r}"]
    out += [f"{_TAG}bus {bus[n.id]} {json.dumps(n.id)}" for n in feeder.nodes]
    head = feeder.node(feeder.head)
    out += ["clear", f"set DefaultBaseFrequency={frequency_hz:g}",
            f"new circuit.{_safe_names([feeder.id], 'f')[feeder.id]} phases={len(head.phases)} "
            f"basekv={kv(head.phases):.12g} pu={v_head:.12g} angle=0 bus1={terminal(head.id, head.phases)} "
            f"MVAsc3=1e10 MVAsc1=1e10"]
    for ln in feeder.lines:
        ix = [frame.index(p) for p in ln.phases]
        r = [[ln.r[i, j] * z_base for j in ix] for i in ix]
        x = [[ln.x[i, j] * z_base for j in ix] for i in ix]
        c = [[0.0] * len(ix) for _ in ix]
        out.append(f"new line.{lname[ln.id]} phases={len(ix)} bus1={terminal(ln.from_node, ln.phases)} "
                   f"bus2={terminal(ln.to_node, ln.phases)} length=1 units=none "
                   f"rmatrix={_matrix(r)} xmatrix={_matrix(x)} cmatrix={_matrix(c)}")
    ename = _safe_names([*loads, *(gens or {})], "e")
    for kind, items in (("load", loads), ("generator", gens or {})):
        for mid, val in items.items():
            m = meters[mid]  # type: ignore[index]
            if m.grid != feeder.id:
                raise ValueError(f"meter '{mid}' is on grid '{m.grid}', not on feeder '{feeder.id}'")
            p, q = _pq(val)
            conn = " conn=wye" if kind == "load" else ""
            out.append(f"new {kind}.{ename[mid]} phases={len(m.phases)} bus1={terminal(m.node, m.phases)}{conn} "
                       f"kV={kv(m.phases):.12g} kW={p * to_kw:.12g} kvar={q * to_kw:.12g} model=1 "
                       f"vminpu=0.5 vmaxpu=2")
    out += [f"set voltagebases=[{v_ll:.12g}]", "calcvoltagebases",
            "set mode=snapshot controlmode=off maxiterations=100 tolerance=1e-10", "solve"]
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class DssResult:
    """An OpenDSS solution: ``voltages[(node, phase)]`` = |V| in pu (phase to
    neutral), ``source_kw``/``source_kvar`` = three-phase power delivered by the
    head source (the feeder import, losses included)."""

    voltages: dict[tuple[str, str], float]
    source_kw: float
    source_kvar: float
    converged: bool
    iterations: int


def run_dss(script: str) -> DssResult:
    """Run an exported script in-process and read the results.

    Raises RuntimeError if the power flow does not converge.
    """
    import opendssdirect as dss

    bus_map: dict[str, str] = {}
    v_base_kv = None
    commands = []
    for line in script.splitlines():
        s = line.strip()
        if s.startswith(_TAG):
            key, _, rest = s[len(_TAG):].partition(" ")
            if key == "bus":
                name, _, node = rest.partition(" ")
                bus_map[name.lower()] = json.loads(node)
            elif key == "v_base_kv":
                v_base_kv = float(rest)
        elif s and not s.startswith("!") and not s.startswith("//"):
            commands.append(s)
    dss.Basic.ClearAll()
    dss.Text.Command("clear")
    for cmd in commands:
        dss.Text.Command(cmd)
    converged = bool(dss.Solution.Converged())
    if not converged:
        raise RuntimeError("OpenDSS power flow did not converge")
    names = dss.Circuit.AllNodeNames()
    if v_base_kv is None:
        mags = dss.Circuit.AllBusMagPu()
    else:
        mags = [v / (v_base_kv * 1000.0) for v in dss.Circuit.AllBusVMag()]
    volts: dict[tuple[str, str], float] = {}
    for name, v in zip(names, mags):
        b, _, k = name.rpartition(".")
        if int(k) in _PHASE_OF:
            volts[(bus_map.get(b.lower(), b), _PHASE_OF[int(k)])] = float(v)
    kw, kvar = dss.Circuit.TotalPower()
    return DssResult(volts, -float(kw), -float(kvar), converged, int(dss.Solution.Iterations()))


def solve_dss(script: str) -> dict[tuple[str, str], float]:
    """``{(node, phase): |V| pu}`` of an exported script (see :func:`run_dss`)."""
    return run_dss(script).voltages
