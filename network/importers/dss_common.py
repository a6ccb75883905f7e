"""The shared vocabulary of the OpenDSS importer (:mod:`.opendss`): the element classes it holds, ignores
or refuses, the owners of an imported case, and :class:`_Branch`, a series element (line, source
impedance or transformer) read from the engine, on its way to a :class:`~network.model.FeederLine`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..model import Owner

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
