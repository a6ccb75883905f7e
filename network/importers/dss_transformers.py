"""OpenDSS ``Transformer`` and ``RegControl`` elements for :mod:`.opendss`: two-winding transformers at
nominal ratio as :class:`~network.importers.dss_common._Branch` records, single-phase banks merged,
the regulators' solved taps (refused, or set to ratio 1), and the three-phase form's delta-wye
substation transformer folded with the source's impedance."""
from __future__ import annotations

import numpy as np

from .dss_common import PHASE, SQRT3, _Branch


class _Transformers:
    """Transformers and regulators, for :class:`~network.importers.opendss._Reader`."""

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
