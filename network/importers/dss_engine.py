"""The OpenDSS engine of :mod:`.opendss`: compiling and solving the script in its own context, the
solved node voltages, and the ``Vsource`` (the head, the form and the head zone's bases)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import CaseError
from .dss_common import SQRT3, STIFF_PU, _Branch, _cplx


class _Engine:
    """The engine and the source, for :class:`~network.importers.opendss._Reader`."""

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
