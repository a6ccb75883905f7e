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

One module a job: this entry module holds :func:`read_dss`, :class:`DssImport` and the reading
order; :mod:`.dss_engine` compiles and solves the script and reads the source, :mod:`.dss_lines`
the lines, :mod:`.dss_transformers` the transformers and regulators, :mod:`.dss_injections` the
loads, units and capacitors, :mod:`.dss_feeder` walks the branches into the feeder;
:mod:`.dss_common` holds the element classes, the owners and the branch record.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CaseError
from ..model import Case
from .common import _parameters
from .dss_common import IGNORED, OWNERS, PHASE, REASONS, REGULATORS, SUPPORTED
from .dss_engine import _Engine
from .dss_feeder import _FeederBuilder
from .dss_injections import _Injections
from .dss_lines import _Lines
from .dss_transformers import _Transformers


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


class _Reader(_Engine, _Lines, _Transformers, _FeederBuilder, _Injections):
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


def read_dss(path: str | Path, name: str | None = None, *, phases: str = "auto", s_base_kva: float = 1000.0,
             feeder_id: str = "F1", regulators: str = "refuse") -> DssImport:
    """Read an OpenDSS feeder script into a feeder case (see the module docstring). ``regulators``:
    ``"refuse"`` (a RegControl whose transformer OpenDSS solved off tap 1 is an error) or ``"nominal"``
    (such transformers at ratio 1, their controls off, the file solved again for the reference)."""
    path = Path(path)
    if not path.is_file():
        raise CaseError("file is missing", file=str(path))
    return _Reader(path, str(phases), s_base_kva, feeder_id, str(regulators)).read(name or path.stem)
