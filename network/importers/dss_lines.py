"""OpenDSS ``Line`` elements as :class:`~network.importers.dss_common._Branch` records: the series
impedance from the element's ``YPrim`` (ohm, phase frame), the rating a file gives, the charging."""
from __future__ import annotations

import json
import math

import numpy as np

from .dss_common import PHASE, _Branch, _cplx


class _Lines:
    """The closed lines, for :class:`~network.importers.opendss._Reader`."""

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
