"""The radial :class:`~network.model.Feeder` of :mod:`.opendss`, from its branch records: the walk from
the head (each node's voltage zone, per-unit impedances and ratings in the form's phase frame),
the zones' notes, and OpenDSS's solved node voltages in pu of each node's base."""
from __future__ import annotations

import math
from collections import deque

import numpy as np

from ..errors import CaseError
from ..model import Feeder, FeederLine, FeederNode
from .dss_common import PHASE, SQRT3, _Branch


class _FeederBuilder:
    """The feeder from the branches, for :class:`~network.importers.opendss._Reader`."""

    @staticmethod
    def _line_id(element: str) -> str:
        if element.lower().startswith("vsource"):
            return element.lower()
        return "+".join(p.partition(".")[2].lower() for p in element.split("+"))

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
