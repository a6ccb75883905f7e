"""An OpenDSS feeder (a ``.dss`` script) as a feeder :class:`~network.model.Case`.

One job: :func:`read_dss` compiles the script with ``opendssdirect`` (in its own engine, without
changing the process's working directory), solves it once (snapshot), and reads the circuit into
one radial :class:`~network.model.Feeder` with its loads and generators. What the feeder form
cannot hold faithfully raises a one-line :class:`CaseError` naming the OpenDSS element; nothing
that changes the power flow is dropped silently.

The form (``phases``):

- ``"auto"``: a three-phase source gives a three-phase feeder (``n_phases`` 3: 3x3 phase-frame
  impedances, ``v_base_kv`` phase-to-neutral = the source's ``basekv / sqrt(3)``, ``s_base_kva``
  per phase), a one-phase source a single-phase feeder (``n_phases`` 1, ``v_base_kv`` = the
  source's ``basekv``, as :mod:`network.opendss` exports a single-phase-equivalent feeder);
- ``"1"`` with a three-phase source: the positive-sequence (single-phase-equivalent) feeder of a
  balanced circuit, as the tso-dso DSOs use (``v_base_kv`` line-to-line, ``s_base_kva``
  three-phase, ``z1 = z_self - z_mutual``): every line must be three-phase with equal self and
  equal mutual impedances (transposed), every load and generator three-phase.

Per unit: ``z_base = v_base_kv^2 / (s_base_kva / 1000)`` (default ``s_base_kva`` 1000, the 1 MVA
base of the tso-dso feeders). Powers in kW, three-phase totals (the case's power unit ``kW``).

Elements:

- ``Vsource``: exactly one, the head (slack) at ``pu`` (``v_head``); its angle is ignored (all
  angles turn with it). Its Thevenin impedance (from ``MVAsc3``/``MVAsc1`` or ``Z1``/``Z0``)
  becomes a line ``vsource.<name>`` from a head node ``vsource.<name>`` to the source bus, unless
  it is below 1e-8 pu (a stiff source such as :mod:`network.opendss` writes).
- ``Line``: the series impedance from the element's primitive admittance (``YPrim``, so line codes,
  lengths and units are OpenDSS's own), oriented away from the source; phases = its bus-1 nodes
  (1/2/3 = a/b/c), which must equal its bus-2 nodes. Ratings: ``normamps`` when the line or its
  line code gives one (``s_max`` per phase in pu; OpenDSS's 400 A default is not a rating), else
  unlimited. Shunt capacitance (line charging) is neglected, as LinDist3Flow and the pandapower
  importers do; the notes give its total at nominal voltage. Disabled lines and lines open at a
  terminal are left out (listed in the notes). A loop, a fourth (neutral) conductor or a phase
  transposition is an error.
- ``Load``: constant-PQ (``model=1``) only; wye to a grounded neutral (one Load on its phases,
  ``p_max`` = kW, ``tan_phi`` = kvar/kW, owner ``LA``); a three-phase delta load only in the
  positive-sequence form (balanced, it draws what a wye load of the same power draws).
- ``PVSystem``: a Unit of kind ``pv`` (owner ``DERM``), ``p_max`` = min(Pmpp, kVA), unity power
  factor only (no ``kvar``/``pf``, no InvControl).
- ``Generator``: constant-PQ (``model=1``) only: a Unit of kind ``thermal`` (owner ``DERM``),
  ``p_max`` = kW, ``q_min`` = ``q_max`` = kvar.
- Metering and protection that do not change a snapshot power flow (``EnergyMeter``, ``Monitor``,
  ``Sensor``, ``Fuse``, ``Relay``, ``Recloser``, ``SwtControl``) are ignored (listed in the notes).
- Everything else (``Transformer``, ``Capacitor``, ``Reactor``, ``Storage``, ``RegControl``,
  ``CapControl``, ``InvControl``, ``ISource``, a second ``Vsource``, ...) is refused: the feeder
  form has one voltage base, no shunt elements and no controls.

:func:`read_dss` returns a :class:`DssImport`: the case, the operating point OpenDSS solved
(each load's and unit's solved kW/kvar, the node voltages in pu of ``v_base_kv``) and the notes.
No main-grid unit is made (OpenDSS gives the source no price or limit); owners ``DSO``, ``LA`` and
``DERM`` of area 1.
"""
from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CaseError
from ..model import Case, Feeder, FeederLine, FeederNode, Owner, Unit
from .common import _load, _parameters

PHASE = {1: "a", 2: "b", 3: "c"}
SUPPORTED = ("vsource", "line", "load", "pvsystem", "generator")
IGNORED = ("energymeter", "monitor", "sensor", "fuse", "relay", "recloser", "swtcontrol")
REASONS = {
    "transformer": "transformers are not held by the feeder form (one voltage base, no ratio): import the part "
                   "below the transformer (the source on its secondary bus)",
    "capacitor": "shunt capacitors are not held by the feeder form (no shunt elements)",
    "reactor": "reactors are not held by the feeder form (no shunt elements; a series reactor can be a line)",
    "storage": "storage is not held by an imported feeder (no state of charge in the form)",
    "vsource": "a second source: the feeder form has one head (slack)",
    "regcontrol": "voltage regulators are not held by the feeder form (no controls)",
    "capcontrol": "capacitor controls are not held by the feeder form (no controls)",
    "invcontrol": "inverter controls (volt-var, volt-watt) are not held by the feeder form",
}
STIFF_PU = 1e-8
OWNERS = (Owner("DSO", "dso", 1), Owner("LA", "load_aggregator", 1), Owner("DERM", "der_manager", 1))


@dataclass(frozen=True)
class DssImport:
    """What :func:`read_dss` read: the ``case``; the operating point of OpenDSS's own solution of
    the file: ``dispatch`` (load id -> solved consumption (kW, kvar); unit id -> solved injection
    (kW, kvar), three-phase totals) and ``voltages`` ((node, phase) -> |V| in pu of the feeder's
    voltage base, phase to neutral); ``notes`` (what was neglected or ignored, one line each)."""

    case: Case
    dispatch: dict[str, tuple[float, float]]
    voltages: dict[tuple[str, str], float]
    notes: list[str] = field(default_factory=list)
    converged: bool = True


def _cplx(v: Any) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    return a[0::2] + 1j * a[1::2]


class _Reader:
    def __init__(self, path: Path, phases: str, s_base_kva: float, feeder_id: str) -> None:
        self.path, self.file = path, path.name
        self.mode_opt, self.s_base_kva, self.fid = phases, float(s_base_kva), feeder_id
        self.notes: list[str] = []

    def err(self, element: str | None, message: str) -> CaseError:
        return CaseError(message, file=self.file, key=element)

    # ------------------------------------------------------------------ engine
    def compile(self) -> Any:
        try:
            from opendssdirect import dss
        except ImportError:
            raise CaseError("reading .dss files needs opendssdirect.py (pip install opendssdirect.py)",
                            file=self.file) from None

        e = dss.NewContext()
        e.Basic.AllowChangeDir(False)
        try:
            e.Text.Command("clear")
            e.Text.Command(f'redirect "{self.path.resolve()}"')
        except Exception as exc:  # noqa: BLE001 - an OpenDSS error is bad input
            raise CaseError(f"OpenDSS cannot compile it: {' '.join(str(exc).split())}", file=self.file) from None
        if not e.Circuit.Name():
            raise CaseError("the script defines no circuit ('new circuit.<name> ...')", file=self.file)
        try:
            e.Text.Command("set mode=snapshot maxiterations=100 tolerance=1e-10")  # a tight reference solution
            e.Solution.Solve()
        except Exception as exc:  # noqa: BLE001
            raise CaseError(f"OpenDSS cannot solve it: {' '.join(str(exc).split())}", file=self.file) from None
        self.converged = bool(e.Solution.Converged())
        if not self.converged:
            self.notes.append("OpenDSS's own power flow of the file did not converge (no reference voltages)")
        return e

    # ------------------------------------------------------------------ reading
    def read(self, name: str) -> DssImport:
        e = self.e = self.compile()
        by_class: dict[str, list[str]] = {}
        ignored: list[str] = []
        for full in e.Circuit.AllElementNames():
            cls, _, nm = full.partition(".")
            e.Circuit.SetActiveElement(full)
            if not e.CktElement.Enabled():
                self.notes.append(f"{full}: disabled in the file, left out")
                continue
            c = cls.lower()
            if c in IGNORED:
                ignored.append(full)
                continue
            if c not in SUPPORTED or (c == "vsource" and by_class.get("vsource")):
                raise self.err(full, REASONS.get(c, f"{cls} elements are not held by the feeder case form"))
            by_class.setdefault(c, []).append(full)
        if ignored:
            self.notes.append(f"ignored (no effect on a snapshot power flow): {', '.join(ignored)}")
        if not by_class.get("vsource"):
            raise CaseError("no Vsource: the circuit has no source", file=self.file)
        self._source(by_class["vsource"][0])
        lines = self._lines(by_class.get("line", []))
        feeder = self._feeder(lines)
        loads, units, dispatch = self._injections(feeder, by_class)
        volts = self._voltages(feeder) if self.converged else {}
        try:
            case = Case(name, feeders=[feeder], owners=OWNERS, units=units, loads=loads,
                        parameters={**_parameters("opendss", "kW", {}), "frequency_hz": float(e.Solution.Frequency())},
                        power_unit="kW", description=f"{name}: {self.form_text} feeder imported from OpenDSS "
                                                     f"({self.file})")
        except CaseError as exc:
            raise self.err(self.element_of.get(exc.key or "", exc.key), exc.message) from None
        return DssImport(case, dispatch, volts, self.notes, self.converged)

    def _source(self, full: str) -> None:
        e = self.e
        e.Circuit.SetActiveElement(full)
        e.Vsources.Name(full.partition(".")[2])
        n = int(e.CktElement.NumPhases())
        nodes = list(e.CktElement.NodeOrder())
        if n not in (1, 3) or sorted(nodes[:n]) != list(range(1, n + 1)):
            raise self.err(full, f"the source must be one- or three-phase on nodes 1(.2.3), got {n} phases on nodes "
                                 f"{nodes[:n]}")
        if any(k != 0 for k in nodes[n:]):
            raise self.err(full, f"the source's second terminal must be grounded, got nodes {nodes[n:]}")
        opt = self.mode_opt
        if opt not in ("auto", "1", "3"):
            raise CaseError(f"phases must be auto, 1 or 3, got {opt!r}", file=self.file, column="--phases")
        if opt == "3" and n == 1:
            raise self.err(full, "a one-phase source cannot give a three-phase feeder (--phases 3)")
        self.mode = "three" if n == 3 and opt != "1" else ("positive" if n == 3 else "single")
        self.form_text = {"three": "three-phase", "single": "single-phase",
                          "positive": "single-phase-equivalent (positive-sequence)"}[self.mode]
        basekv = float(e.Vsources.BasekV())
        # phase to neutral, to 12 significant digits (the precision network.opendss writes sqrt(3) x v_base_kv)
        v_ln = float(f"{basekv / math.sqrt(3):.12g}") if n == 3 else basekv
        self.v_head = float(e.Vsources.PU())
        self.v_base_kv = v_ln if self.mode == "three" else basekv
        self.v_ln_kv = v_ln  # the nodes' phase-neutral base
        self.z_base = self.v_base_kv ** 2 / (self.s_base_kva / 1000.0)
        self.frame = "abc" if self.mode == "three" else "a"
        bus = e.CktElement.BusNames()[0].partition(".")[0].lower()
        y = _cplx(e.CktElement.YPrim())
        m = int(round(math.sqrt(y.size)))
        z = np.linalg.inv(y.reshape(m, m)[:n, :n])
        self.source_bus, self.head = bus, bus
        self.source_line = None
        if np.abs(z).max() / self.z_base > STIFF_PU:
            self.head = f"vsource.{full.partition('.')[2].lower()}"
            self.source_line = (full, self.head, bus, list(range(1, n + 1)), z)
            self.notes.append(f"{full}: its Thevenin impedance is the line {self.head} from head node {self.head} "
                              f"to bus {bus}")
        self.n_src = n

    def _rating_given(self, full: str) -> float:
        """normamps of a line when the line or its line code sets it, else inf."""
        e = self.e
        e.Circuit.SetActiveElement(full)
        props = json.loads(e.Element.ToJSON())
        amps = float(e.CktElement.NormalAmps())
        code = props.get("LineCode")
        if not code:
            return amps if "NormAmps" in props else math.inf
        e.Circuit.SetActiveClass("LineCode")
        e.ActiveClass.Name(str(code))
        code_props = json.loads(e.Element.ToJSON())
        e.Circuit.SetActiveElement(full)
        if "NormAmps" in code_props or amps != 400.0:
            return amps
        return math.inf

    def _lines(self, names: list[str]) -> list[tuple[str, str, str, list[int], np.ndarray, float]]:
        """(element, bus1, bus2, nodes, Z ohm (n x n), normamps) of the closed lines."""
        e = self.e
        out = []
        if self.source_line is not None:
            full, head, bus, nodes, z = self.source_line
            out.append((full, head, bus, nodes, z, math.inf))
        charging_kvar, charged = 0.0, 0
        for full in names:
            e.Circuit.SetActiveElement(full)
            if any(e.CktElement.IsOpen(t, 0) for t in (1, 2)):
                self.notes.append(f"{full}: open in the file, left out")
                continue
            n, nc = int(e.CktElement.NumPhases()), int(e.CktElement.NumConductors())
            if nc != n:
                raise self.err(full, f"{nc} conductors for {n} phases (a neutral or earth wire): Kron-reduce the "
                                     f"line (kron=yes on its line code or geometry) before importing")
            nodes = list(e.CktElement.NodeOrder())
            n1, n2 = nodes[:n], nodes[n:2 * n]
            if n1 != n2:
                raise self.err(full, f"connects nodes {n1} to nodes {n2}: a phase change is not held by the form")
            if any(k not in PHASE for k in n1) or len(set(n1)) != n:
                raise self.err(full, f"nodes {n1}: phases must be distinct nodes among 1, 2, 3 (a neutral or earth "
                                     f"conductor must be Kron-reduced first)")
            b1, b2 = (b.partition(".")[0].lower() for b in e.CktElement.BusNames())
            y = _cplx(e.CktElement.YPrim()).reshape(2 * n, 2 * n)
            yser = -y[:n, n:]
            z = np.linalg.inv(yser)
            if not np.allclose(z, z.T, rtol=1e-9, atol=1e-12 * np.abs(z).max()):
                raise self.err(full, "the series impedance is not symmetric (a non-reciprocal line)")
            z = (z + z.T) / 2
            shunt = (y[:n, :n] - yser, y[n:, n:] - yser)
            b_sh = sum(float(np.imag(np.diag(s)).sum()) for s in shunt)
            if abs(b_sh) > 0:
                charged += 1
                charging_kvar += b_sh * (self.v_ln_kv * 1e3) ** 2 / 1e3
            out.append((full, b1, b2, n1, z, self._rating_given(full)))
        if charged:
            self.notes.append(f"line charging neglected: {charged} lines with shunt capacitance, about "
                              f"{charging_kvar:.4g} kvar at nominal voltage")
        return out

    def _feeder(self, lines: list[tuple[str, str, str, list[int], np.ndarray, float]]) -> Feeder:
        adj: dict[str, list[int]] = {}
        for k, (_, b1, b2, *_rest) in enumerate(lines):
            if b1 == b2:
                raise self.err(lines[k][0], f"connects bus {b1} to itself")
            adj.setdefault(b1, []).append(k)
            adj.setdefault(b2, []).append(k)
        parent: dict[str, str | None] = {self.head: None}
        phases: dict[str, str] = {self.head: self.frame}
        used: set[int] = set()
        flines: list[FeederLine] = []
        self.element_of: dict[str, str] = {}
        queue = deque([self.head])
        while queue:
            u = queue.popleft()
            for k in adj.get(u, []):
                if k in used:
                    continue
                used.add(k)
                full, b1, b2, nodes, z, amps = lines[k]
                w = b2 if b1 == u else b1
                if w in parent:
                    raise self.err(full, f"closes a loop (bus {w} is already fed): the feeder must be radial (open "
                                         f"a switch: 'open {full} 1')")
                ph, r, x = self._impedance(full, nodes, z)
                parent[w] = u
                phases[w] = ph
                lid = full.partition(".")[2].lower() if not full.lower().startswith("vsource") else full.lower()
                smax = amps * self._kva_per_amp() / self.s_base_kva if math.isfinite(amps) else math.inf
                self.element_of[f"line_id={lid}"] = full
                self.element_of[f"node={w}"] = full
                try:
                    flines.append(FeederLine(lid, u, w, ph, r, x, s_max=smax))
                except CaseError as exc:
                    raise self.err(full, exc.message) from None
                queue.append(w)
        for k, ln in enumerate(lines):
            if k not in used:
                raise self.err(ln[0], f"is not connected to the source (bus {ln[1]} - {ln[2]} is an island)")
        self.parent, self.node_phases = parent, phases
        nodes = [FeederNode(b, phases[b], p) for b, p in parent.items()]
        try:
            return Feeder(self.fid, nodes, flines, n_phases=3 if self.mode == "three" else 1, v_head=self.v_head,
                          s_base_kva=self.s_base_kva, v_base_kv=self.v_base_kv)
        except CaseError as exc:
            raise self.err(self.element_of.get(exc.key or "", exc.key), exc.message) from None

    def _kva_per_amp(self) -> float:
        """kVA (per phase, or three-phase in the positive-sequence form) carried by 1 A at the base voltage."""
        return math.sqrt(3) * self.v_base_kv if self.mode == "positive" else self.v_base_kv

    def _impedance(self, full: str, nodes: list[int], z: np.ndarray) -> tuple[str, np.ndarray, np.ndarray]:
        zpu = z / self.z_base
        if self.mode == "three":
            m = np.zeros((3, 3), dtype=complex)
            ix = [k - 1 for k in nodes]
            m[np.ix_(ix, ix)] = zpu
            return "".join(PHASE[k] for k in sorted(nodes)), m.real, m.imag
        if self.mode == "single":
            if nodes != [1]:
                raise self.err(full, f"on nodes {nodes}: a one-phase source feeds a single-phase feeder on node 1 only")
            return "a", zpu.real, zpu.imag
        if sorted(nodes) != [1, 2, 3]:
            raise self.err(full, f"has {len(nodes)} phase(s): a positive-sequence feeder (--phases 1) needs "
                                 f"three-phase lines")
        d, o = np.diag(zpu), zpu[~np.eye(3, dtype=bool)]
        tol = 1e-6 * abs(d[0])
        if np.abs(d - d[0]).max() > tol or np.abs(o - o[0]).max() > tol:
            raise self.err(full, "is not balanced (unequal self or mutual impedances, untransposed): a "
                                 "positive-sequence feeder (--phases 1) needs transposed lines; import it three-phase")
        z1 = d[0] - o[0]
        return "a", np.array([[z1.real]]), np.array([[z1.imag]])

    def _injections(self, feeder: Feeder, by_class: dict[str, list[str]]) -> tuple[list, list, dict]:
        e = self.e
        loads, units, dispatch = [], [], {}
        for cls in ("load", "pvsystem", "generator"):
            for full in by_class.get(cls, []):
                e.Circuit.SetActiveElement(full)
                nm = full.partition(".")[2].lower()
                n = int(e.CktElement.NumPhases())
                nodes = list(e.CktElement.NodeOrder())
                bus = e.CktElement.BusNames()[0].partition(".")[0].lower()
                if bus not in self.parent:
                    raise self.err(full, f"is on bus {bus}, which no closed line connects to the source")
                delta = len(nodes) == n and n > 1  # no neutral terminal: delta (or phase-to-phase)
                ph_nodes = nodes[:n]
                if any(k not in PHASE for k in ph_nodes) or (not delta and any(k != 0 for k in nodes[n:])):
                    raise self.err(full, f"connected to nodes {nodes}: the form holds wye elements to a grounded "
                                         "neutral (and three-phase delta loads in the positive-sequence form)")
                if self.mode == "positive":
                    if sorted(ph_nodes) != [1, 2, 3]:
                        raise self.err(full, f"has {n} phase(s): a positive-sequence feeder (--phases 1) needs "
                                             f"three-phase loads and generators")
                    phases = "a"
                elif delta:
                    raise self.err(full, "is delta-connected: phase-to-phase elements are not held by the form "
                                         "(only in the positive-sequence form, --phases 1, for three-phase loads)")
                elif self.mode == "single" and ph_nodes != [1]:
                    raise self.err(full, f"on nodes {ph_nodes}: a single-phase feeder has node 1 only")
                else:
                    phases = "".join(PHASE[k] for k in sorted(ph_nodes))
                pw = np.asarray(e.CktElement.Powers(), dtype=float)
                p_sol, q_sol = float(pw[0::2][:len(nodes)].sum()), float(pw[1::2][:len(nodes)].sum())
                self.element_of[f"load_id={nm}"] = self.element_of[f"unit_id={nm}"] = full
                try:
                    if cls == "load":
                        loads.append(self._load(full, nm, bus, phases, p_sol))
                        dispatch[nm] = (p_sol, q_sol)
                    else:
                        units.append(self._unit(cls, full, nm, bus, phases))
                        dispatch[nm] = (-p_sol, -q_sol)
                except CaseError as exc:
                    raise self.err(full, exc.message) from None
        return loads, units, dispatch

    def _load(self, full: str, nm: str, bus: str, phases: str, p_sol: float):
        e = self.e
        e.Loads.Name(nm)
        if int(e.Loads.Model()) != 1:
            raise self.err(full, f"model={e.Loads.Model()}: the form holds constant-PQ loads only (model=1)")
        kw, kvar = float(e.Loads.kW()), float(e.Loads.kvar())
        mult = float(e.Solution.LoadMult())
        if self.converged and abs(p_sol - kw * mult) > 1e-6 * max(1.0, abs(kw)):
            self.notes.append(f"{full}: OpenDSS solved it at {p_sol:.6g} kW, not kW x loadmult = {kw * mult:.6g} "
                              f"(outside vminpu..vmaxpu it is a constant impedance)")
        if kw < 0:
            raise self.err(full, f"negative load {kw} kW (a generator?) is not held as a load")
        return _load(nm, "LA", self.fid, bus, phases, kw, kvar)

    def _unit(self, cls: str, full: str, nm: str, bus: str, phases: str) -> Unit:
        e = self.e
        if cls == "pvsystem":
            e.PVsystems.Name(nm)
            if abs(float(e.PVsystems.pf()) - 1.0) > 1e-12 or abs(float(e.PVsystems.kvar())) > 1e-12:
                raise self.err(full, f"power factor {e.PVsystems.pf()} / kvar {e.PVsystems.kvar()}: the form holds "
                                     f"PV at unity power factor only")
            p_max = min(float(e.PVsystems.Pmpp()), float(e.PVsystems.kVARated()))
            return Unit(nm, "pv", "DERM", self.fid, bus, phases, p_min=0.0, p_max=p_max, power_factor=1.0)
        e.Generators.Name(nm)
        if int(e.Generators.Model()) != 1:
            raise self.err(full, f"model={e.Generators.Model()}: the form holds constant-PQ generators only (model=1)")
        kw, kvar = float(e.Generators.kW()), float(e.Generators.kvar())
        if kw < 0:
            raise self.err(full, f"negative output {kw} kW")
        return Unit(nm, "thermal", "DERM", self.fid, bus, phases, p_min=0.0, p_max=kw, q_min=kvar, q_max=kvar)

    def _voltages(self, feeder: Feeder) -> dict[tuple[str, str], float]:
        e = self.e
        out: dict[tuple[str, str], float] = {}
        base = self.v_ln_kv * 1000.0
        wanted = {(n.id, p) for n in feeder.nodes for p in n.phases}
        for nm, v in zip(e.Circuit.AllNodeNames(), e.Circuit.AllBusVMag()):
            b, _, k = nm.rpartition(".")
            key = (b.lower(), PHASE.get(int(k), "?"))
            if key in wanted:
                out[key] = float(v) / base
        if self.source_line is not None:  # the head node is the ideal source behind its impedance
            out.update({(self.head, p): self.v_head for p in self.frame})
        return out


def read_dss(path: str | Path, name: str | None = None, *, phases: str = "auto", s_base_kva: float = 1000.0,
             feeder_id: str = "F1") -> DssImport:
    """Read an OpenDSS feeder script into a feeder case (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise CaseError("file is missing", file=str(path))
    return _Reader(path, str(phases), s_base_kva, feeder_id).read(name or path.stem)
