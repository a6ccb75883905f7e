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

:class:`DssCircuit` is the fast path for repeated checks of one feeder (the TES
operator's AC check): the circuit is compiled once, in its own OpenDSS engine
(``opendssdirect`` context, so other circuits in the same process do not disturb
it), with one constant-PQ load per meter (a generator is a load of negative
power: the same constant-PQ injection as a ``Generator`` model 1); each hour then
only updates the loads' kW/kvar and solves. Every solve starts from OpenDSS's
initial (no-load) guess, so a solution does not depend on the hours solved before
it (a restored agent gives the same numbers bit for bit).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np

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


def _parse(script: str) -> tuple[list[str], dict[str, str], float | None]:
    """(OpenDSS commands, bus name (lower case) -> node id, v_base_kv) of an exported script."""
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
    return commands, bus_map, v_base_kv


def run_dss(script: str) -> DssResult:
    """Run an exported script in-process and read the results.

    Raises RuntimeError if the power flow does not converge.
    """
    import opendssdirect as dss

    commands, bus_map, v_base_kv = _parse(script)
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


# --------------------------------------------------------------------------- fast path


@dataclass(frozen=True)
class AcFlow:
    """Hourly OpenDSS solutions of one feeder (:meth:`DssCircuit.solve`), arrays (n, T) or (T,).

    ``v``: |V| per node-phase (pu, phase to neutral, base ``v_base_kv``), rows in
    ``DssCircuit.node_phases``; ``p_flow``/``q_flow``: per-phase power entering the line
    that feeds each node-phase, at its parent end (pu of the feeder's per-phase base,
    positive parent -> child), same rows; ``import_power``/``q_import_power``: the
    three-phase power entering the lines that leave the head (power unit; the feeder
    import, losses included); ``losses``: active losses (power unit), the import minus the
    sum of the metered net loads; ``iterations``: OpenDSS iterations per hour.

    The import is summed over the head lines rather than read at the source
    (``Circuit.TotalPower``): the source is nearly ideal (``MVAsc3=1e10``), and its power,
    a product of a huge admittance and a tiny voltage difference, carries a rounding noise
    of ~1e-3 kW that would make the losses jump by as much between nearby schedules.
    """

    v: np.ndarray
    p_flow: np.ndarray
    q_flow: np.ndarray
    import_power: np.ndarray
    q_import_power: np.ndarray
    losses: np.ndarray
    iterations: np.ndarray

    @property
    def w(self) -> np.ndarray:
        """Squared voltage magnitudes (pu^2)."""
        return self.v ** 2


class DssCircuit:
    """One feeder compiled once in its own OpenDSS engine; hourly load updates and solves.

    ``meters``: meter id -> location; the meters of this feeder that are not at the head
    become constant-PQ wye loads (a meter at the head is the supply point: the source).
    :meth:`solve` takes each meter's net consumption (positive = drawn from the grid,
    three-phase total in the power unit). ``solves`` counts the OpenDSS power flows run.
    Not picklable (an OpenDSS engine): owners rebuild it when restored.
    """

    def __init__(self, feeder: Feeder, meters: Mapping[str, MeterLocation], *, power_unit: str = "kW",
                 frequency_hz: float = 50.0) -> None:
        from opendssdirect import dss

        self.feeder = feeder
        self.power_unit = power_unit
        self._to_kw = _KW[power_unit]
        self.meter_ids = tuple(m for m, loc in meters.items() if loc.grid == feeder.id and loc.node != feeder.head)
        script = feeder_to_dss(feeder, {m: (0.0, 0.0) for m in self.meter_ids}, meters=meters, power_unit=power_unit,
                               frequency_hz=frequency_hz)
        commands, bus_map, v_base_kv = _parse(script)
        self._engine = dss.NewContext()
        for cmd in commands:
            self._engine.Text.Command(cmd)
        if not self._engine.Solution.Converged():
            raise RuntimeError(f"OpenDSS: the no-load power flow of feeder {feeder.id} did not converge")
        self._names = _safe_names(list(self.meter_ids), "e")  # the names feeder_to_dss gave the loads
        head = feeder.head
        self.node_phases = [(n, p) for n in feeder.node_order if n != head for p in feeder.node(n).phases]
        where = {}
        for k, name in enumerate(self._engine.Circuit.AllNodeNames()):
            b, _, c = name.rpartition(".")
            if int(c) in _PHASE_OF:
                where[(bus_map.get(b.lower(), b), _PHASE_OF[int(c)])] = k
        self._rows = np.array([where[k] for k in self.node_phases], dtype=int)
        self._v_base_v = float(v_base_kv) * 1000.0  # type: ignore[arg-type]
        lname = _safe_names([ln.id for ln in feeder.lines], "l")
        # per line: its OpenDSS name and the node-phase rows (in its conductor order) it feeds
        index = {k: i for i, k in enumerate(self.node_phases)}
        self._lines = [(f"Line.{lname[ln.id]}", np.array([index[(ln.to_node, p)] for p in ln.phases], dtype=int))
                       for ln in feeder.lines]
        self._kw_to_pu = 1.0 / feeder.s_base_kva
        self._head_rows = np.array([i for i, (nd, _) in enumerate(self.node_phases) if feeder.node(nd).parent == head],
                                   dtype=int)
        self.solves = 0

    def solve(self, p: np.ndarray, q: np.ndarray) -> AcFlow:
        """Net consumption ``p``/``q`` (len(meter_ids), T) in the power unit -> hourly AC solutions.

        Raises RuntimeError naming the hour if a power flow does not converge.
        """
        e = self._engine
        p = np.atleast_2d(np.asarray(p, dtype=float)) * self._to_kw
        q = np.atleast_2d(np.asarray(q, dtype=float)) * self._to_kw
        n, T = len(self.node_phases), p.shape[1]
        v, pf, qf = np.zeros((n, T)), np.zeros((n, T)), np.zeros((n, T))
        its = np.zeros(T, dtype=int)
        loads = e.Loads
        for t in range(T):
            for k, m in enumerate(self.meter_ids):
                loads.Name(self._names[m])
                loads.kW(float(p[k, t]))
                loads.kvar(float(q[k, t]))
            e.Text.Command("set mode=snapshot")  # back to the initial guess: no memory of the last hour
            e.Solution.Solve()
            self.solves += 1
            if not e.Solution.Converged():
                raise RuntimeError(f"OpenDSS: the power flow of feeder {self.feeder.id} did not converge in "
                                   f"hour {t}")
            its[t] = e.Solution.Iterations()
            v[:, t] = np.asarray(e.Circuit.AllBusVMag())[self._rows] / self._v_base_v
            for name, rows in self._lines:
                e.Circuit.SetActiveElement(name)
                pw = e.CktElement.Powers()
                k = len(rows)
                pf[rows, t] = np.asarray(pw[0:2 * k:2]) * self._kw_to_pu
                qf[rows, t] = np.asarray(pw[1:2 * k:2]) * self._kw_to_pu
        to_unit = 1.0 / self._to_kw
        src = pf[self._head_rows].sum(axis=0) / self._kw_to_pu  # kW
        qsrc = qf[self._head_rows].sum(axis=0) / self._kw_to_pu
        return AcFlow(v=v, p_flow=pf, q_flow=qf, import_power=src * to_unit, q_import_power=qsrc * to_unit,
                      losses=(src - p.sum(axis=0)) * to_unit, iterations=its)
