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

Per unit and voltage zones: a transformer at its nominal ratio is, in per unit of each side's own
voltage base, a series impedance, so each bus gets a voltage base from its zone: the source's
(``basekv``) at the head, times ``kV_2 / kV_1`` (the rated winding voltages) across every transformer
on the way. A zone's ``z_base = v_ln^2 / s_ph`` (``v_ln`` its phase-neutral base in kV, ``s_ph`` the
per-phase power base in MVA: ``s_base_kva`` / 1000, a third of it in the positive-sequence form),
so ``z_base = v_base_kv^2 / (s_base_kva / 1000)`` at the head (default ``s_base_kva`` 1000, the 1 MVA
base of the tso-dso feeders). Impedances (in ohm from OpenDSS) are divided by their own zone's
``z_base``, ratings use their zone's voltage, and node voltages are in pu of their zone's base: so
LinDist3Flow's per-unit voltages compare directly with OpenDSS's volts over the same base. The
case keeps one ``v_base_kv``, the head zone's; :attr:`DssImport.bases` and the notes give the
zones (and where they differ from the file's ``set voltagebases``). Powers in kW, three-phase
totals (the case's power unit ``kW``).

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
- ``Transformer``: two windings of equal kVA at tap 1 on both (the nominal ratio): a line with
  the leakage impedance ``(%R_1 + %R_2)/100 + j XHL/100`` on the transformer's kVA, as ohm on the
  downstream side (``z_pu kV^2 / MVA``, per phase) divided by that zone's ``z_base``; ``s_max`` =
  its kVA per phase (nameplate). A transformer is OpenDSS's bank of single-phase units, so a
  grounded wye-wye one is a diagonal phase-frame impedance (exact). Single-phase units between the
  same two buses on different phases (a regulator bank) are one line ``<name1>+<name2>+...``.
  Delta windings: in the positive-sequence form any three-phase connection (balanced, a delta-wye
  shift turns all angles alike); in the three-phase form only a delta-wye substation transformer
  with its delta on the source bus and nothing else there: the delta sees the source's balanced
  EMF behind the source impedance's positive- and negative-sequence part only (a delta carries no
  zero-sequence current), so the source's impedance and the transformer are one line from the
  head node with ``z_t I + z1_src (I - J/3)`` (exact), and the delta bus is not a node. The
  magnetizing branch (``%imag``, ``%noloadloss``) and the ``ppm_antifloat`` shunt are neglected
  (noted with their kW/kvar at nominal voltage). Refused in one line: three-winding and
  center-tap transformers, a tap other than 1 (an off-nominal ratio: LinDist3Flow's
  ``v_j = v_i - 2(rP + xQ)`` has no ratio ``a`` in ``v_j = v_i / a^2 - ...``), unequal winding
  kVA, a neutral impedance (``Rneut``/``Xneut``), an ungrounded wye, a delta-wye elsewhere in the
  three-phase form, and parallel transformers that are not a single-phase bank.
- ``RegControl``: the tap OpenDSS solved (its controls run in the snapshot). A regulator at tap 1
  is a nominal-ratio transformer (noted); at any other tap it is refused, naming the RegControl
  and the tap, unless ``regulators="nominal"`` (``run.py import --regulators nominal``): then the
  regulated transformers are set to ratio 1, the RegControls disabled and the file solved again;
  that solution is the reference (voltages, operating point), and the notes give each solved tap
  and how far the file's own solution (regulators acting) is from it.
- ``Capacitor`` (shunt, wye to a grounded neutral or three-phase delta, no series ``R``/``XL``):
  a Unit of kind ``capacitor`` (owner ``DERM``, ``p_min`` = ``p_max`` = 0) injecting a constant
  ``q_min`` = ``q_max`` = the rated kvar of the steps OpenDSS solved closed, at 1.0 pu of the bus's
  base (``kvar (V_base / kV)^2``). The bank is a constant impedance (Q ~ V^2): the note gives the
  kvar OpenDSS solved and the error of the constant injection at that voltage; under unbalanced
  voltages its phases also draw unequal kvar, where the unit splits its kvar equally.
  ``CapControl``: the bank is taken in the state OpenDSS solved (noted). tso-dso's DSO holds a
  unit's q in [q_min, q_max] (here fixed); tes gives units no reactive power, so in a tes run a
  bank is absent.
- ``Load``: constant-PQ (``model=1``) only; wye to a grounded neutral (one Load on its phases,
  ``p_max`` = kW, ``tan_phi`` = kvar/kW, owner ``LA``); a three-phase delta load only in the
  positive-sequence form (balanced, it draws what a wye load of the same power draws).
- ``PVSystem``: a Unit of kind ``pv`` (owner ``DERM``), ``p_max`` = min(Pmpp, kVA), unity power
  factor only (no ``kvar``/``pf``, no InvControl).
- ``Generator``: constant-PQ (``model=1``) only: a Unit of kind ``thermal`` (owner ``DERM``),
  ``p_max`` = kW, ``q_min`` = ``q_max`` = kvar.
- Metering and protection that do not change a snapshot power flow (``EnergyMeter``, ``Monitor``,
  ``Sensor``, ``Fuse``, ``Relay``, ``Recloser``, ``SwtControl``) are ignored (listed in the notes).
- Everything else (``Reactor``, ``Storage``, ``InvControl``, ``ISource``, a second ``Vsource``,
  ...) is refused.

:func:`read_dss` returns a :class:`DssImport`: the case, the operating point OpenDSS solved
(each load's and unit's solved kW/kvar, the node voltages in pu of their zone's base), the zones' bases
and the notes.
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
SUPPORTED = ("vsource", "line", "load", "pvsystem", "generator", "transformer", "capacitor", "regcontrol",
             "capcontrol")
IGNORED = ("energymeter", "monitor", "sensor", "fuse", "relay", "recloser", "swtcontrol")
REASONS = {
    "reactor": "reactors are not held by the feeder form (no shunt elements; a series reactor can be a line)",
    "storage": "storage is not held by an imported feeder (no state of charge in the form)",
    "vsource": "a second source: the feeder form has one head (slack)",
    "invcontrol": "inverter controls (volt-var, volt-watt) are not held by the feeder form",
}
REGULATORS = ("refuse", "nominal")
STIFF_PU = 1e-8
OWNERS = (Owner("DSO", "dso", 1), Owner("LA", "load_aggregator", 1), Owner("DERM", "der_manager", 1))
SQRT3 = math.sqrt(3)


@dataclass(frozen=True)
class DssImport:
    """What :func:`read_dss` read: the ``case``; the operating point of OpenDSS's own solution of
    the file: ``dispatch`` (load id -> solved consumption (kW, kvar); unit id -> solved injection
    (kW, kvar), three-phase totals; a capacitor bank's solved kvar at its solved voltage) and
    ``voltages`` ((node, phase) -> |V| in pu of the node's own voltage base, phase to neutral);
    ``notes`` (what was neglected, approximated or ignored, one line each); ``bases`` (node -> its
    voltage base in kV, phase to neutral: the source's, times the nominal ratios of the transformers
    on the way); ``rated_q`` (capacitor unit id -> the constant kvar the case holds: rated kvar at
    1.0 pu)."""

    case: Case
    dispatch: dict[str, tuple[float, float]]
    voltages: dict[tuple[str, str], float]
    notes: list[str] = field(default_factory=list)
    converged: bool = True
    bases: dict[str, float] = field(default_factory=dict)
    rated_q: dict[str, float] = field(default_factory=dict)


@dataclass
class _Branch:
    """A series element between two buses: a line or the source's Thevenin impedance (``z`` in ohm,
    phase frame of ``nodes``), or a two-winding transformer at nominal ratio (``kv``: bus -> rated
    winding voltage, phase to neutral (wye-equivalent), kV; ``zt``: node -> (leakage impedance in pu of
    its own kVA, that kVA per phase))."""

    element: str
    b1: str
    b2: str
    nodes: list[int]
    z: np.ndarray | None = None
    amps: float = math.inf
    b_sh: float = 0.0  # line charging, S (sum over both ends)
    kv: dict[str, float] = field(default_factory=dict)
    zt: dict[int, tuple[complex, float]] = field(default_factory=dict)
    conns: tuple[str, str] = ("wye", "wye")
    extra_pu: np.ndarray | None = None  # the source's impedance folded into a substation delta-wye transformer
    kva: float = math.inf  # a transformer's nameplate kVA (all phases)

    @property
    def is_transformer(self) -> bool:
        return bool(self.kv)


def _numbers(text: Any) -> list[float]:
    """The numbers of an OpenDSS property value such as ``'[ 0, 0]'``."""
    return [float(t) for t in str(text).strip("[]() ").replace(",", " ").split()]


def _cplx(v: Any) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    return a[0::2] + 1j * a[1::2]


class _Reader:
    def __init__(self, path: Path, phases: str, s_base_kva: float, feeder_id: str, regulators: str) -> None:
        self.path, self.file = path, path.name
        self.mode_opt, self.s_base_kva, self.fid = phases, float(s_base_kva), feeder_id
        if regulators not in REGULATORS:
            raise CaseError(f"regulators must be one of {', '.join(REGULATORS)}, got {regulators!r}",
                            file=self.file, column="--regulators")
        self.regulators = regulators
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
        self.e = e
        self._solve()
        return e

    def _solve(self) -> None:
        e = self.e
        try:
            e.Text.Command("set mode=snapshot maxiterations=100 tolerance=1e-10")  # a tight reference solution
            e.Solution.Solve()
        except Exception as exc:  # noqa: BLE001
            raise CaseError(f"OpenDSS cannot solve it: {' '.join(str(exc).split())}", file=self.file) from None
        self.converged = bool(e.Solution.Converged())
        if not self.converged:
            self.notes.append("OpenDSS's own power flow of the file did not converge (no reference voltages)")

    def _node_volts(self) -> dict[tuple[str, int], float]:
        e = self.e
        return {(b.lower(), int(k)): float(v) for (b, _, k), v in
                zip((nm.rpartition(".") for nm in e.Circuit.AllNodeNames()), e.Circuit.AllBusVMag())}

    # ------------------------------------------------------------------ reading
    def read(self, name: str) -> DssImport:
        e = self.compile()
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
        self._regulators(by_class.get("regcontrol", []))
        for full in by_class.get("capcontrol", []):
            e.Circuit.SetActiveElement(full)
            cap = str(e.Properties.Value("Capacitor"))
            self.notes.append(f"{full}: its control is not modelled; Capacitor.{cap} is taken in the state OpenDSS "
                              f"solved (a constant injection)")
        self._source(by_class["vsource"][0])
        branches = self._lines(by_class.get("line", [])) + self._transformers(by_class.get("transformer", []))
        feeder = self._feeder(branches)
        loads, units, dispatch = self._injections(feeder, by_class)
        units += self._capacitors(by_class.get("capacitor", []), dispatch)
        volts = self._voltages(feeder) if self.converged else {}
        if self.reg_volts is not None and volts:
            node = {v: k for k, v in PHASE.items()}
            diff = max(abs(self.reg_volts[(n, node[p])] / (self.base_ln[n] * 1000.0) - v)
                       for (n, p), v in volts.items() if (n, node[p]) in self.reg_volts)
            self.notes.append(f"--regulators nominal: OpenDSS's own solution of the file (regulators acting) differs "
                              f"from its solution with the regulators at ratio 1 (the reference here) by up to "
                              f"{diff:.4g} pu")
        self._base_notes(feeder)
        try:
            case = Case(name, feeders=[feeder], owners=OWNERS, units=units, loads=loads,
                        parameters={**_parameters("opendss", "kW", {}), "frequency_hz": float(e.Solution.Frequency())},
                        power_unit="kW", description=f"{name}: {self.form_text} feeder imported from OpenDSS "
                                                     f"({self.file})")
        except CaseError as exc:
            raise self.err(self.element_of.get(exc.key or "", exc.key), exc.message) from None
        bases = {n.id: self.base_ln[n.id] for n in feeder.nodes}
        return DssImport(case, dispatch, volts, self.notes, self.converged, bases, self.rated_q)

    def _regulators(self, names: list[str]) -> None:
        """RegControls: at tap 1 in the solved snapshot, a nominal-ratio transformer; otherwise refused, or
        (--regulators nominal) their transformers set to ratio 1, the controls off, and the file solved again."""
        e = self.e
        self.reg_volts: dict[tuple[str, int], float] | None = None
        self.regulated: dict[str, str] = {}  # transformer (lower case) -> its RegControl
        moved = []
        for full in names:
            e.RegControls.Name(full.partition(".")[2])
            tr, wdg = str(e.RegControls.Transformer()).lower(), int(e.RegControls.Winding())
            e.Transformers.Name(tr)
            e.Transformers.Wdg(wdg)
            tap = float(e.Transformers.Tap())
            self.regulated[tr] = full
            if abs(tap - 1.0) <= 1e-12:
                self.notes.append(f"{full}: Transformer.{tr} is at tap 1 in the solved snapshot: held at its nominal "
                                  f"ratio (the control is not modelled)")
                continue
            if self.regulators != "nominal":
                raise self.err(full, f"regulates Transformer.{tr}, which OpenDSS solved at tap {tap:.6g} on winding "
                                     f"{wdg}: an off-nominal ratio is not held by the feeder form (LinDist3Flow has "
                                     f"no ratio); import with --regulators nominal (the regulator at ratio 1, noted)")
            moved.append((full, tr, wdg, tap))
        if not moved:
            return
        self.reg_volts = self._node_volts() if self.converged else None
        for full, tr, wdg, tap in moved:
            e.Text.Command(f"{full}.enabled=no")
            e.Transformers.Name(tr)
            e.Transformers.Wdg(wdg)
            e.Transformers.Tap(1.0)
            self.notes.append(f"{full}: --regulators nominal: Transformer.{tr} at ratio 1 (OpenDSS solved tap "
                              f"{tap:.6g} on winding {wdg}, {100 * (tap - 1):+.3g}% of voltage); the control is off")
        self._solve()

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
        v_ln = float(f"{basekv / SQRT3:.12g}") if n == 3 else basekv
        self.v_head = float(e.Vsources.PU())
        self.v_base_kv = v_ln if self.mode == "three" else basekv
        self.v_ln_kv = v_ln  # the head zone's phase-neutral base
        # per-phase power base (kVA): a positive-sequence feeder's s_base_kva is three-phase
        self.s_ph = self.s_base_kva / 3.0 if self.mode == "positive" else self.s_base_kva
        self.frame = "abc" if self.mode == "three" else "a"
        bus = e.CktElement.BusNames()[0].partition(".")[0].lower()
        y = _cplx(e.CktElement.YPrim())
        m = int(round(math.sqrt(y.size)))
        z = np.linalg.inv(y.reshape(m, m)[:n, :n])
        self.source_bus, self.head = bus, bus
        self.source_line: _Branch | None = None
        if np.abs(z).max() / self._z_base(v_ln) > STIFF_PU:
            self.head = f"vsource.{full.partition('.')[2].lower()}"
            self.source_line = _Branch(full, self.head, bus, list(range(1, n + 1)), z=z)
            self.notes.append(f"{full}: its Thevenin impedance is the line {self.head} from head node {self.head} "
                              f"to bus {bus}")
        self.n_src = n

    def _z_base(self, v_ln_kv: float) -> float:
        """ohm: the impedance base of a zone whose phase-neutral voltage base is ``v_ln_kv``."""
        return v_ln_kv ** 2 / (self.s_ph / 1000.0)

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

    def _lines(self, names: list[str]) -> list[_Branch]:
        """The closed lines (and the source's impedance), Z in ohm."""
        e = self.e
        out = [] if self.source_line is None else [self.source_line]
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
            out.append(_Branch(full, b1, b2, n1, z=z, amps=self._rating_given(full), b_sh=b_sh))
        return out

    def _transformers(self, names: list[str]) -> list[_Branch]:
        """Two-winding transformers at nominal ratio (single-phase units between the same two buses on
        different phases, such as a regulator bank, are one branch)."""
        e = self.e
        out: list[_Branch] = []
        shunt_kw = shunt_kvar = ppm_kvar = 0.0
        for full in names:
            nm = full.partition(".")[2].lower()
            e.Circuit.SetActiveElement(full)
            e.Transformers.Name(nm)
            if any(e.CktElement.IsOpen(t, 0) for t in (1, 2)):
                self.notes.append(f"{full}: open in the file, left out")
                continue
            nw = int(e.Transformers.NumWindings())
            if nw != 2:
                raise self.err(full, f"has {nw} windings: only two-winding transformers are held (a three-winding or "
                                     f"center-tap transformer is not)")
            n = int(e.CktElement.NumPhases())
            nodes = list(e.CktElement.NodeOrder())
            m = len(nodes) // 2
            t1, t2 = nodes[:m], nodes[m:]
            b1, b2 = (b.partition(".")[0].lower() for b in e.CktElement.BusNames())
            kv, kva, r, taps, conns = [], [], [], [], []
            for w in (1, 2):
                e.Transformers.Wdg(w)
                kv.append(float(e.Transformers.kV()))
                kva.append(float(e.Transformers.kVA()))
                r.append(float(e.Transformers.R()))
                taps.append(float(e.Transformers.Tap()))
                conns.append("delta" if e.Transformers.IsDelta() else "wye")
            x = float(e.Transformers.Xhl())
            if abs(kva[0] - kva[1]) > 1e-9 * kva[0]:
                raise self.err(full, f"kVA ratings {kva[0]:g} and {kva[1]:g} differ: only equal winding ratings are "
                                     f"held")
            for w, tap in enumerate(taps, start=1):
                if abs(tap - 1.0) > 1e-12:
                    hint = " (its RegControl is off: --regulators nominal sets it to ratio 1)" \
                        if nm in self.regulated else ""
                    raise self.err(full, f"tap {tap:g} on winding {w}: an off-nominal ratio is not held by the feeder "
                                         f"form (LinDist3Flow has no ratio){hint}")
            ph = t1[:n]
            if t2[:n] != ph or any(k not in PHASE for k in ph) or len(set(ph)) != n:
                raise self.err(full, f"connects nodes {t1[:n]} to nodes {t2[:n]}: a transformer must connect the "
                                     f"same phases (distinct nodes among 1, 2, 3) on both sides")
            for w, (conn, t) in enumerate(zip(conns, (t1, t2)), start=1):
                if conn == "wye" and any(k != 0 for k in t[n:]):
                    raise self.err(full, f"winding {w}: wye with its neutral on node {t[n:]}: only a grounded neutral "
                                         f"(node 0) is held")
                if conn == "delta" and n != 3:
                    raise self.err(full, f"winding {w}: a delta (phase-to-phase) winding on a {n}-phase transformer is "
                                         f"not held")
                e.Transformers.Wdg(w)
                rn, xn = float(e.Properties.Value("Rneut")), float(e.Properties.Value("Xneut"))
                if conn == "wye" and rn >= 0 and (rn, xn) != (0.0, 0.0):
                    raise self.err(full, f"winding {w}: a neutral impedance (Rneut {rn:g}, Xneut {xn:g} ohm) is not "
                                         f"held (a solidly grounded neutral is)")
            kw_nl = float(e.Properties.Value("%noloadloss")) * kva[0] / 100.0
            kvar_m = float(e.Properties.Value("%imag")) * kva[0] / 100.0
            shunt_kw, shunt_kvar = shunt_kw + kw_nl, shunt_kvar + kvar_m
            ppm_kvar += float(e.Properties.Value("ppm_antifloat")) * 1e-6 * kva[0]
            zpu = (r[0] + r[1]) / 100.0 + 1j * x / 100.0  # on the transformer's kVA, its own voltages
            v_ph = {b1: kv[0] / SQRT3 if n == 3 else kv[0], b2: kv[1] / SQRT3 if n == 3 else kv[1]}
            out.append(_Branch(full, b1, b2, sorted(ph), kv=v_ph, zt={k: (zpu, kva[0] / n) for k in ph},
                               conns=(conns[0], conns[1]), kva=kva[0]))
        if shunt_kw or shunt_kvar:
            self.notes.append(f"transformer magnetizing branches neglected (%noloadloss, %imag): {shunt_kw:.4g} kW and "
                              f"{shunt_kvar:.4g} kvar in all at nominal voltage")
        if ppm_kvar:
            self.notes.append(f"transformer anti-floating shunts neglected (ppm_antifloat): {ppm_kvar:.3g} kvar in all "
                              f"at nominal voltage")
        return self._merge_banks(out)

    def _merge_banks(self, trs: list[_Branch]) -> list[_Branch]:
        groups: dict[frozenset, list[_Branch]] = {}
        for t in trs:
            groups.setdefault(frozenset((t.b1, t.b2)), []).append(t)
        out = []
        for g in groups.values():
            if len(g) == 1:
                out.append(g[0])
                continue
            first = g[0]
            names = ", ".join(t.element for t in g)
            same = all(t.kv == first.kv and t.conns == ("wye", "wye") for t in g)
            nodes = [k for t in g for k in t.nodes]
            if not same or len(set(nodes)) != len(nodes):
                raise self.err(first.element, f"is in parallel with {names}: only single-phase wye units of the same "
                                              f"ratio on different phases (a bank) are held")
            zt = {k: v for t in g for k, v in t.zt.items()}
            out.append(_Branch("+".join(t.element for t in g), first.b1, first.b2, sorted(nodes), kv=first.kv, zt=zt,
                               kva=sum(t.kva for t in g)))
            self.notes.append(f"{names}: one bank, the line {self._line_id(out[-1].element)}")
        return out

    @staticmethod
    def _line_id(element: str) -> str:
        if element.lower().startswith("vsource"):
            return element.lower()
        return "+".join(p.partition(".")[2].lower() for p in element.split("+"))

    def _fold_substation(self, branches: list[_Branch]) -> list[_Branch]:
        """Three-phase form: a delta-wye transformer on the source bus, with nothing else there, becomes the
        first line; the source's impedance (if any) is folded into it as seen from the wye side (positive and
        negative sequence only: the delta carries no zero-sequence current)."""
        at_src = [b for b in branches if self.source_bus in (b.b1, b.b2) and b is not self.source_line]
        subs = [b for b in at_src if b.is_transformer and b.conns != ("wye", "wye")]
        for b in branches:
            if b.is_transformer and b.conns != ("wye", "wye") and b not in subs:
                raise self.err(b.element, f"a {b.conns[0]}-{b.conns[1]} transformer inside the feeder: the three-phase "
                                          f"form holds a delta winding only on the source bus (a substation "
                                          f"transformer); import a balanced feeder with --phases 1")
        if not subs:
            return branches
        (t,) = subs[:1]
        delta_side = t.b1 if t.conns[0] == "delta" else t.b2
        if t.conns.count("delta") != 1 or delta_side != self.source_bus:
            raise self.err(t.element, f"a {t.conns[0]}-{t.conns[1]} transformer: the three-phase form holds a "
                                      f"delta-wye transformer with its delta winding on the source bus only")
        if len(at_src) > 1:
            raise self.err(t.element, f"a delta-wye substation transformer: nothing else may be on its delta bus "
                                      f"{self.source_bus} in the three-phase form, but {at_src[1].element} is")
        self.folded_bus = self.source_bus
        if self.source_line is None:
            self.notes.append(f"{t.element}: delta-wye at the stiff source: the first line (exact: the delta sees "
                              f"ideal balanced voltages)")
            return branches
        zs = self.source_line.z / self._z_base(self.v_ln_kv)
        z1 = complex(zs[0, 0] - zs[0, 1])
        t.extra_pu = z1 * (np.eye(3) - np.ones((3, 3)) / 3.0)
        if t.b1 == self.source_bus:
            t.b1 = self.head
        else:
            t.b2 = self.head
        t.kv[self.head] = t.kv.pop(self.source_bus)
        self.notes.append(f"{t.element}: delta-wye substation transformer: with {self.source_line.element}'s "
                          f"impedance (positive and negative sequence, z1 = {z1.real:.4g} + j{z1.imag:.4g} pu; the "
                          f"delta blocks zero sequence) one line from head node {self.head}; its delta bus "
                          f"{self.source_bus} is not a node (its phase voltages mix the wye side's by 30 degrees)")
        return [b for b in branches if b is not self.source_line]

    def _feeder(self, branches: list[_Branch]) -> Feeder:
        self.folded_bus = None
        if self.mode == "three":
            branches = self._fold_substation(branches)
        adj: dict[str, list[int]] = {}
        for k, br in enumerate(branches):
            if br.b1 == br.b2:
                raise self.err(br.element, f"connects bus {br.b1} to itself")
            adj.setdefault(br.b1, []).append(k)
            adj.setdefault(br.b2, []).append(k)
        parent: dict[str, str | None] = {self.head: None}
        phases: dict[str, str] = {self.head: self.frame}
        self.base_ln: dict[str, float] = {self.head: self.v_ln_kv}
        used: set[int] = set()
        flines: list[FeederLine] = []
        self.element_of: dict[str, str] = {}
        charging_kvar, charged = 0.0, 0
        queue = deque([self.head])
        while queue:
            u = queue.popleft()
            for k in adj.get(u, []):
                if k in used:
                    continue
                used.add(k)
                br = branches[k]
                full = br.element.split("+")[0]
                w = br.b2 if br.b1 == u else br.b1
                if w in parent:
                    raise self.err(full, f"closes a loop (bus {w} is already fed): the feeder must be radial (open "
                                         f"a switch: 'open {full} 1')")
                if br.is_transformer:
                    vb = self.base_ln[u] * br.kv[w] / br.kv[u]  # the nominal ratio
                    zb = self._z_base(vb)
                    zpu = np.diag([br.zt[k][0] * br.kv[w] ** 2 / (br.zt[k][1] / 1000.0) / zb for k in br.nodes])
                    if br.extra_pu is not None:
                        zpu = zpu + br.extra_pu
                    smax = br.kva / len(br.nodes) / self.s_ph
                else:
                    vb = self.base_ln[u]
                    zpu = br.z / self._z_base(vb)
                    smax = br.amps * vb / self.s_ph if math.isfinite(br.amps) else math.inf
                    if br.b_sh:
                        charged += 1
                        charging_kvar += br.b_sh * (vb * 1e3) ** 2 / 1e3
                ph, r, x = self._impedance(full, br.nodes, zpu, folded=br.extra_pu is not None)
                parent[w] = u
                phases[w] = ph
                self.base_ln[w] = vb
                lid = self._line_id(br.element)
                self.element_of[f"line_id={lid}"] = full
                self.element_of[f"node={w}"] = full
                try:
                    flines.append(FeederLine(lid, u, w, ph, r, x, s_max=smax))
                except CaseError as exc:
                    raise self.err(full, exc.message) from None
                queue.append(w)
        for k, br in enumerate(branches):
            if k not in used:
                raise self.err(br.element.split("+")[0], f"is not connected to the source (bus {br.b1} - {br.b2} is "
                                                         f"an island)")
        if charged:
            self.notes.append(f"line charging neglected: {charged} lines with shunt capacitance, about "
                              f"{charging_kvar:.4g} kvar at nominal voltage")
        self.parent, self.node_phases = parent, phases
        nodes = [FeederNode(b, phases[b], p) for b, p in parent.items()]
        try:
            return Feeder(self.fid, nodes, flines, n_phases=3 if self.mode == "three" else 1, v_head=self.v_head,
                          s_base_kva=self.s_base_kva, v_base_kv=self.v_base_kv)
        except CaseError as exc:
            raise self.err(self.element_of.get(exc.key or "", exc.key), exc.message) from None

    def _base_notes(self, feeder: Feeder) -> None:
        zones = sorted({round(v, 9) for v in self.base_ln.values()}, reverse=True)
        if len(zones) > 1:
            self.notes.append("voltage zones (transformers at nominal ratio): bases " + ", ".join(
                f"{v * (SQRT3 if self.n_src == 3 else 1):.6g} kV" for v in zones) + (
                " line to line" if self.n_src == 3 else "") + "; impedances and voltages are per unit of each node's "
                "own zone (the case keeps the head zone's v_base_kv)")
        e = self.e
        off = []
        for n in feeder.nodes:
            if n.id == self.head and self.source_line is not None:
                continue
            e.Circuit.SetActiveBus(n.id)
            kvb = float(e.Bus.kVBase())
            if kvb > 0 and abs(kvb - self.base_ln[n.id]) > 1e-6 * kvb:
                off.append(f"{n.id} ({kvb:.6g} kV there, {self.base_ln[n.id]:.6g} kV here)")
        if off:
            self.notes.append(f"the file's voltage bases (set voltagebases) differ from the nominal ratios' at "
                              f"{len(off)} buses, e.g. {off[0]}: voltages here are in pu of the nominal ratios' bases")

    def _impedance(self, full: str, nodes: list[int], zpu: np.ndarray,
                   folded: bool = False) -> tuple[str, np.ndarray, np.ndarray]:
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

    def _bus_of(self, full: str) -> str:
        e = self.e
        bus = e.CktElement.BusNames()[0].partition(".")[0].lower()
        if bus not in self.parent:
            if bus == self.folded_bus:
                raise self.err(full, f"is on bus {bus}, the delta side of the substation transformer, which the "
                                     f"three-phase form folds into its first line")
            raise self.err(full, f"is on bus {bus}, which no closed line connects to the source")
        return bus

    def _injections(self, feeder: Feeder, by_class: dict[str, list[str]]) -> tuple[list, list, dict]:
        e = self.e
        loads, units, dispatch = [], [], {}
        for cls in ("load", "pvsystem", "generator"):
            for full in by_class.get(cls, []):
                e.Circuit.SetActiveElement(full)
                nm = full.partition(".")[2].lower()
                n = int(e.CktElement.NumPhases())
                nodes = list(e.CktElement.NodeOrder())
                bus = self._bus_of(full)
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

    def _capacitors(self, names: list[str], dispatch: dict) -> list[Unit]:
        """Shunt capacitor banks: a unit of kind ``capacitor`` injecting a constant kvar, the rated kvar of
        the steps OpenDSS solved closed at 1.0 pu of the bus's base."""
        e = self.e
        units = []
        self.rated_q: dict[str, float] = {}
        for full in names:
            e.Circuit.SetActiveElement(full)
            nm = full.partition(".")[2].lower()
            e.Capacitors.Name(nm)
            n = int(e.CktElement.NumPhases())
            nodes = list(e.CktElement.NodeOrder())
            delta = bool(e.Capacitors.IsDelta())
            t1, t2 = nodes[:len(nodes) // 2], nodes[len(nodes) // 2:]
            if any(k != 0 for k in t2):
                raise self.err(full, f"its second terminal is on nodes {t2}: a series capacitor (bus2 set) is not "
                                     f"held by the feeder form (a shunt bank is)")
            ph_nodes = t1[:n]
            if any(k not in PHASE for k in ph_nodes) or len(set(ph_nodes)) != n or n == 2 or (delta and n != 3) or (
                    not delta and any(k != 0 for k in t1[n:])):
                raise self.err(full, f"{'delta' if delta else 'wye'} on nodes {t1}: the form holds one- or three-phase "
                                     f"banks wye to a grounded neutral, and three-phase delta banks")
            filt = [v for key in ("R", "XL") for v in _numbers(e.Properties.Value(key))]
            if any(v != 0 for v in filt):
                raise self.err(full, "has a series R or XL (a filter bank): not held by the feeder form")
            if self.mode == "positive" and n != 3:
                raise self.err(full, f"has {n} phase(s): a positive-sequence feeder (--phases 1) needs three-phase "
                                     f"banks")
            if self.mode == "single" and ph_nodes != [1]:
                raise self.err(full, f"on nodes {ph_nodes}: a single-phase feeder has node 1 only")
            bus = self._bus_of(full)
            steps = json.loads(e.Element.ToJSON()).get("kvar", e.Capacitors.kvar())
            steps = [float(s) for s in (steps if isinstance(steps, list) else [steps])]
            states = list(e.Capacitors.States())
            kv = float(e.Capacitors.kV())
            v_elem = self.base_ln[bus] * (SQRT3 if n == 3 else 1.0)  # kv is line to line on a three-phase bank
            on = sum(s for s, st in zip(steps, states) if st)
            pw = np.asarray(e.CktElement.Powers(), dtype=float)
            q_sol = -float(pw[1::2][:len(t1)].sum())
            vmag = self._bus_vpu(bus)
            if on <= 0:
                self.notes.append(f"{full}: all its steps are open in OpenDSS's solution: left out")
                continue
            q = float(f"{on * (v_elem / kv) ** 2:.12g}")  # 12 digits: the bases' own rounding
            phases = "a" if self.mode != "three" else "".join(PHASE[k] for k in sorted(ph_nodes))
            self.element_of[f"unit_id={nm}"] = full
            try:
                units.append(Unit(nm, "capacitor", "DERM", self.fid, bus, phases, p_min=0.0, p_max=0.0, q_min=q,
                                  q_max=q))
            except CaseError as exc:
                raise self.err(full, exc.message) from None
            dispatch[nm] = (-float(pw[0::2][:len(t1)].sum()), q_sol)
            self.rated_q[nm] = q
            closed = f"{sum(1 for st in states if st)} of {len(states)} steps closed as solved, " if len(states) > 1 \
                else ""
            other = "" if abs(v_elem - kv) < 1e-9 * kv else f" of {v_elem:.6g} kV; rated {on:.6g} kvar at {kv:.6g} kV"
            self.notes.append(f"{full}: a unit of kind capacitor (owner DERM, no active power) injecting a constant "
                              f"{q:.6g} kvar ({closed}rated at 1.0 pu{other}); "
                              f"the bank is a constant impedance (Q ~ V^2): OpenDSS solved {q_sol:.6g} kvar at "
                              f"{vmag:.5g} pu ({100 * (q_sol / q - 1):+.3g}%)")
        return units

    def _bus_vpu(self, bus: str) -> float:
        e = self.e
        e.Circuit.SetActiveBus(bus)
        mags = np.asarray(e.Bus.VMagAngle(), dtype=float)[0::2]
        nodes = list(e.Bus.Nodes())
        v = [m for m, k in zip(mags, nodes) if k in PHASE]
        return float(np.mean(v)) / (self.base_ln[bus] * 1000.0) if v else math.nan

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
        wanted = {(n.id, p) for n in feeder.nodes for p in n.phases}
        for nm, v in zip(e.Circuit.AllNodeNames(), e.Circuit.AllBusVMag()):
            b, _, k = nm.rpartition(".")
            key = (b.lower(), PHASE.get(int(k), "?"))
            if key in wanted:
                out[key] = float(v) / (self.base_ln[key[0]] * 1000.0)
        if self.source_line is not None:  # the head node is the ideal source behind its impedance
            out.update({(self.head, p): self.v_head for p in self.frame})
        return out


def read_dss(path: str | Path, name: str | None = None, *, phases: str = "auto", s_base_kva: float = 1000.0,
             feeder_id: str = "F1", regulators: str = "refuse") -> DssImport:
    """Read an OpenDSS feeder script into a feeder case (see the module docstring). ``regulators``:
    ``"refuse"`` (a RegControl whose transformer OpenDSS solved off tap 1 is an error) or ``"nominal"``
    (such transformers at ratio 1, their controls off, the file solved again for the reference)."""
    path = Path(path)
    if not path.is_file():
        raise CaseError("file is missing", file=str(path))
    return _Reader(path, str(phases), s_base_kva, feeder_id, str(regulators)).read(name or path.stem)
