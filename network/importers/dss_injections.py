"""OpenDSS ``Load``, ``PVSystem``, ``Generator`` and ``Capacitor`` elements for :mod:`.opendss`: the
case's loads and units at the buses of the feeder, with OpenDSS's solved injections (the dispatch)."""
from __future__ import annotations

import json
import math

import numpy as np

from ..errors import CaseError
from ..model import Feeder, Unit
from .common import _load
from .dss_common import PHASE, SQRT3, _numbers


class _Injections:
    """Loads, units and capacitor banks, for :class:`~network.importers.opendss._Reader`."""

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
