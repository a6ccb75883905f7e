"""The element records of a case and the checks they share; validated when built, immutable afterwards.

One job: the rows of the case tables as frozen dataclasses, each validating
itself in ``__post_init__`` -- transmission :class:`Bus` and :class:`DCLine`,
feeder :class:`FeederNode` and :class:`FeederLine`, market :class:`Owner`,
:class:`Unit` and :class:`Load`, and :class:`MeterLocation` -- plus the
constants of the case-folder schema (:data:`PHASES`, :data:`ROLES`,
:data:`TRANSMISSION`, the table names ``F_*``) and the field checks
(``_finite``, ``_phases``, ``_check_range``, ``_unique``, ...) that the grids in
:mod:`network.grids` and the case in :mod:`network.case` use too.

Units and sign conventions are in :mod:`network.model`. Each ``__post_init__``
raises :class:`CaseError` naming the table (the case-folder file name), the
1-based row and the column.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from .errors import CaseError

PHASES = "abc"
ROLES = ("der_manager", "load_aggregator", "dso", "tso", "main_grid")
TRANSMISSION = "T"  # the grid id of the transmission grid in Unit.grid / Load.grid
#: owner ids that a case may not use: the coordinator's own party id in the information boundary
RESERVED_OWNER_IDS = ("coordinator",)

# File (table) names of the case-folder schema; used in error messages.
F_BUSES = "buses.csv"
F_BRANCHES = "branches.csv"
F_NODES = "feeder_nodes.csv"
F_LINES = "feeder_lines.csv"
F_UNITS = "units.csv"
F_LOADS = "loads.csv"
F_OWNERS = "owners.csv"
F_PROFILES = "profiles.csv"
F_META = "case.json"


# --------------------------------------------------------------------------- helpers


class ReadOnlyDict(dict):
    """A read-only dict that pickles (``MappingProxyType`` does not, and agents are pickled)."""

    def _readonly(self, *a: object, **k: object) -> None:
        raise TypeError("read-only mapping")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]

    def __reduce__(self) -> tuple:
        return (ReadOnlyDict, (dict(self),))


def _finite(value: float, *, file: str, row: int | None, column: str, key: str | None = None,
            allow_nan: bool = False, allow_inf: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise CaseError(f"expected a number, got {value!r}", file=file, row=row, column=column, key=key)
    if math.isnan(v) and not allow_nan:
        raise CaseError("value is missing or NaN", file=file, row=row, column=column, key=key)
    if math.isinf(v) and not allow_inf:
        raise CaseError(f"value must be finite, got {v}", file=file, row=row, column=column, key=key)
    return v


def _phases(value: str, *, file: str, row: int | None, column: str = "phases", key: str | None = None,
            allowed: str = PHASES) -> str:
    if not isinstance(value, str) or not value:
        raise CaseError(f"phases must be a non-empty string of letters from '{allowed}', got {value!r}",
                        file=file, row=row, column=column, key=key)
    if any(ch not in allowed for ch in value) or len(set(value)) != len(value):
        raise CaseError(f"phases must be distinct letters from '{allowed}', got {value!r}",
                        file=file, row=row, column=column, key=key)
    return "".join(ch for ch in allowed if ch in value)  # canonical order


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a


def _check_range(lo: float, hi: float, *, file: str, row: int | None, lo_col: str, hi_col: str,
                 key: str | None = None) -> None:
    if lo > hi:
        raise CaseError(f"lower limit {lo} is above upper limit {hi} (column '{hi_col}')",
                        file=file, row=row, column=lo_col, key=key)


def _unique(records: Iterable[object], *, file: str, column: str, scope: str = "") -> None:
    """Ids (``record.id``) must be unique; rows are the records' own (their position if they have none)."""
    seen: dict[str, int] = {}
    for i, rec in enumerate(records, start=1):
        x = rec.id  # type: ignore[attr-defined]
        row = getattr(rec, "row", None) or i
        if x in seen:
            raise CaseError(f"duplicate id '{x}'{scope} (first seen in row {seen[x]})",
                            file=file, row=row, column=column)
        seen[x] = row


def _nan_eq(a: float, b: float) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


# ------------------------------------------------------------------- transmission


@dataclass(frozen=True)
class Bus:
    """A transmission bus. ``area`` 0 is transmission; 1.. are distribution areas."""

    id: str
    area: int = 0
    v_min: float = 0.9
    v_max: float = 1.1
    row: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        k = f"bus={self.id}"
        _finite(self.v_min, file=F_BUSES, row=self.row, column="v_min_pu", key=k)
        _finite(self.v_max, file=F_BUSES, row=self.row, column="v_max_pu", key=k)
        if self.v_min <= 0:
            raise CaseError(f"voltage limit must be positive, got {self.v_min}", file=F_BUSES,
                            row=self.row, column="v_min_pu", key=k)
        _check_range(self.v_min, self.v_max, file=F_BUSES, row=self.row, lo_col="v_min_pu",
                     hi_col="v_max_pu", key=k)


@dataclass(frozen=True)
class DCLine:
    """A transmission line in the DC approximation: flow = (theta_from - theta_to) / x.

    ``x`` may be negative: a series-compensated branch (a series capacitor, as in ``case300``).
    Whether the grid as a whole still has a DC power flow (a non-singular reduced susceptance
    matrix) is checked by :class:`~network.grids.TransmissionGrid`.
    """

    id: str
    from_bus: str
    to_bus: str
    x: float  # pu on TransmissionGrid.base_mva
    rating: float  # power unit; |flow| <= rating
    r: float = 0.0  # kept for information; ignored by the DC model
    row: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        k = f"line_id={self.id}"
        for col, v in (("x_pu", self.x), ("s_max", self.rating), ("r_pu", self.r)):
            _finite(v, file=F_BRANCHES, row=self.row, column=col, key=k, allow_inf=(col == "s_max"))
        if self.x == 0:  # negative is a series capacitor (compensation); the grid checks its B matrix
            raise CaseError("reactance must be non-zero (a zero-impedance branch has no DC flow equation), got 0",
                            file=F_BRANCHES, row=self.row, column="x_pu", key=k)
        if self.r < 0:
            raise CaseError(f"resistance must be non-negative, got {self.r}", file=F_BRANCHES, row=self.row,
                            column="r_pu", key=k)
        if self.rating <= 0:
            raise CaseError(f"rating must be positive, got {self.rating}", file=F_BRANCHES, row=self.row,
                            column="s_max", key=k)
        if self.from_bus == self.to_bus:
            raise CaseError(f"line connects bus '{self.from_bus}' to itself", file=F_BRANCHES, row=self.row,
                            column="to_bus", key=k)


# ------------------------------------------------------------------ feeder elements


@dataclass(frozen=True)
class FeederNode:
    id: str
    phases: str
    parent: str | None  # None for the head (slack) node
    v_min: float = 0.95
    v_max: float = 1.05
    row: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        k = f"node={self.id}"
        object.__setattr__(self, "phases", _phases(self.phases, file=F_NODES, row=self.row, key=k))
        _finite(self.v_min, file=F_NODES, row=self.row, column="v_min_pu", key=k)
        _finite(self.v_max, file=F_NODES, row=self.row, column="v_max_pu", key=k)
        if self.v_min <= 0:
            raise CaseError(f"voltage limit must be positive, got {self.v_min}", file=F_NODES, row=self.row,
                            column="v_min_pu", key=k)
        _check_range(self.v_min, self.v_max, file=F_NODES, row=self.row, lo_col="v_min_pu",
                     hi_col="v_max_pu", key=k)
        if self.parent == self.id:
            raise CaseError(f"node '{self.id}' is its own parent", file=F_NODES, row=self.row, column="parent", key=k)


@dataclass(frozen=True, eq=False)
class FeederLine:
    """A feeder line from parent ``from_node`` to child ``to_node``.

    ``r`` and ``x`` are ``n x n`` per-unit matrices in the feeder's phase frame
    (n = 3 for a three-phase feeder, 1 for a single-phase feeder). ``p_max``,
    ``q_max`` bound |P| and |Q| per phase, ``s_max`` bounds sqrt(P^2+Q^2) per phase,
    all in pu (``inf`` = unlimited).
    """

    id: str
    from_node: str
    to_node: str
    phases: str
    r: np.ndarray
    x: np.ndarray
    p_max: float = math.inf
    q_max: float = math.inf
    s_max: float = math.inf
    length_km: float = math.nan
    linecode: str | None = None
    row: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        k = f"line_id={self.id}"
        object.__setattr__(self, "phases", _phases(self.phases, file=F_LINES, row=self.row, key=k))
        r = np.atleast_2d(np.asarray(self.r, dtype=float))
        x = np.atleast_2d(np.asarray(self.x, dtype=float))
        n = r.shape[0]
        if r.shape not in ((1, 1), (3, 3)) or x.shape != r.shape:
            raise CaseError(f"impedance matrices must be 1x1 or 3x3, got {r.shape} and {x.shape}",
                            file=F_LINES, row=self.row, column="r_aa_pu", key=k)
        frame = PHASES[:n] if n == 3 else "a"
        for name, m in (("r", r), ("x", x)):
            for i, p in enumerate(frame):
                for j, q in enumerate(frame):
                    col = f"{name}_{p}{q}_pu"
                    v = m[i, j]
                    if not math.isfinite(v):
                        raise CaseError(f"impedance must be finite, got {v}", file=F_LINES, row=self.row,
                                        column=col, key=k)
                    if p in self.phases and q in self.phases:
                        if i == j and v <= 0:
                            raise CaseError(f"self impedance of phase {p} must be positive, got {v}",
                                            file=F_LINES, row=self.row, column=col, key=k)
                    elif v != 0:
                        raise CaseError(f"entry for absent phase must be 0 or empty, got {v}",
                                        file=F_LINES, row=self.row, column=col, key=k)
            if n == 3 and not np.allclose(m, m.T, rtol=1e-6, atol=1e-12):
                i, j = next((i, j) for i in range(3) for j in range(i + 1, 3)
                            if not np.isclose(m[i, j], m[j, i], rtol=1e-6, atol=1e-12))
                raise CaseError(f"the {name} matrix is not symmetric: {name}_{PHASES[i]}{PHASES[j]}_pu = {m[i, j]} "
                                f"but {name}_{PHASES[j]}{PHASES[i]}_pu = {m[j, i]}", file=F_LINES, row=self.row,
                                column=f"{name}_{PHASES[i]}{PHASES[j]}_pu", key=k)
        object.__setattr__(self, "r", _readonly(r))
        object.__setattr__(self, "x", _readonly(x))
        for col, v in (("p_max_pu", self.p_max), ("q_max_pu", self.q_max), ("s_max_pu", self.s_max)):
            v = _finite(v, file=F_LINES, row=self.row, column=col, key=k, allow_inf=True)
            if v <= 0:
                raise CaseError(f"limit must be positive, got {v}", file=F_LINES, row=self.row, column=col, key=k)
        if self.from_node == self.to_node:
            raise CaseError(f"line connects node '{self.from_node}' to itself", file=F_LINES, row=self.row,
                            column="to_node", key=k)

    @property
    def r1(self) -> float:
        """Series resistance of a single-phase line (pu)."""
        return float(self.r[0, 0])

    @property
    def x1(self) -> float:
        return float(self.x[0, 0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeederLine):
            return NotImplemented
        same_num = all(_nan_eq(a, b) for a, b in ((self.p_max, other.p_max), (self.q_max, other.q_max),
                                                  (self.s_max, other.s_max), (self.length_km, other.length_km)))
        return (self.id == other.id and self.from_node == other.from_node and self.to_node == other.to_node
                and self.phases == other.phases and np.array_equal(self.r, other.r)
                and np.array_equal(self.x, other.x) and same_num and self.linecode == other.linecode)

    __hash__ = None  # type: ignore[assignment]



# ------------------------------------------------------------------------- assets


@dataclass(frozen=True)
class Owner:
    """A market participant or operator. ``role`` is one of :data:`ROLES`."""

    id: str
    role: str
    area: int | None = None
    row: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.id in RESERVED_OWNER_IDS:
            raise CaseError(f"owner id '{self.id}' is reserved (the coordinator's id in the information boundary)",
                            file=F_OWNERS, row=self.row, column="owner_id", key=self.id)
        if self.role not in ROLES:
            raise CaseError(f"unknown role '{self.role}'; expected one of {', '.join(ROLES)}", file=F_OWNERS,
                            row=self.row, column="role", key=f"owner_id={self.id}")


@dataclass(frozen=True, eq=False)
class Unit:
    """A producing unit (gas/thermal generator, wind, PV) or the main-grid supply point.

    Powers in the case's power unit (three-phase total), prices per energy unit
    ($/kWh or $/MWh, matching the power unit). ``avail_profile`` and
    ``price_profile`` name columns of the profiles table. ``x``/``y``/``mean_share``
    are used by the wind scenario generator.
    """

    id: str
    kind: str
    owner: str
    grid: str
    node: str
    phases: str = "abc"
    p_min: float = 0.0
    p_max: float = 0.0
    q_min: float = 0.0
    q_max: float = 0.0
    cost: float = math.nan
    offer_da: float = math.nan
    offer_up: float = math.nan
    offer_down: float = math.nan
    avail_profile: str | None = None
    price_profile: str | None = None
    x: float = math.nan
    y: float = math.nan
    mean_share: float = math.nan
    power_factor: float = math.nan
    row: int | None = field(default=None, compare=False, repr=False)

    NUMERIC = ("p_min", "p_max", "q_min", "q_max", "cost", "offer_da", "offer_up", "offer_down", "x", "y",
               "mean_share", "power_factor")
    OPTIONAL = ("cost", "offer_da", "offer_up", "offer_down", "x", "y", "mean_share", "power_factor")

    def __post_init__(self) -> None:
        _validate_asset(self, F_UNITS, "unit_id")

    def __eq__(self, other: object) -> bool:
        return _asset_eq(self, other)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class Load:
    """A demand (customer of a load aggregator, or a transmission/feeder demand).

    ``p_max`` is the maximum (peak) consumption, three-phase total. Flexible
    customers have a baseline profile ``baseline_profile`` and a band
    ``band_min * p0_t <= p_t <= band_max * p0_t``; their utility is
    ``alpha_t p - beta p^2 / 2`` with ``alpha`` from ``alpha_profile``. ``tan_phi``
    fixes q = p tan_phi; otherwise q is free in [q_min, q_max].
    """

    id: str
    kind: str
    owner: str
    grid: str
    node: str
    phases: str = "abc"
    p_max: float = 0.0
    q_min: float = 0.0
    q_max: float = 0.0
    tan_phi: float = math.nan
    band_min: float = math.nan
    band_max: float = math.nan
    beta: float = math.nan
    bid_da: float = math.nan
    bid_up: float = math.nan
    bid_down: float = math.nan
    baseline_profile: str | None = None
    alpha_profile: str | None = None
    power_factor: float = math.nan
    row: int | None = field(default=None, compare=False, repr=False)

    NUMERIC = ("p_max", "q_min", "q_max", "tan_phi", "band_min", "band_max", "beta", "bid_da", "bid_up",
               "bid_down", "power_factor")
    OPTIONAL = ("tan_phi", "band_min", "band_max", "beta", "bid_da", "bid_up", "bid_down", "power_factor")

    def __post_init__(self) -> None:
        _validate_asset(self, F_LOADS, "load_id")
        k = f"load_id={self.id}"
        if not math.isnan(self.band_min) or not math.isnan(self.band_max):
            if math.isnan(self.band_min) or math.isnan(self.band_max):
                raise CaseError("band_min and band_max must be given together", file=F_LOADS, row=self.row,
                                column="band_min" if math.isnan(self.band_min) else "band_max", key=k)
            if self.band_min < 0:
                raise CaseError(f"band_min must be non-negative, got {self.band_min}", file=F_LOADS, row=self.row,
                                column="band_min", key=k)
            _check_range(self.band_min, self.band_max, file=F_LOADS, row=self.row, lo_col="band_min",
                         hi_col="band_max", key=k)
        if not math.isnan(self.beta) and self.beta <= 0:
            raise CaseError(f"utility curvature beta must be positive, got {self.beta}", file=F_LOADS, row=self.row,
                            column="beta", key=k)

    def __eq__(self, other: object) -> bool:
        return _asset_eq(self, other)

    __hash__ = None  # type: ignore[assignment]


def _validate_asset(a: Unit | Load, file: str, id_col: str) -> None:
    k = f"{id_col}={a.id}"
    if not a.id:
        raise CaseError("empty id", file=file, row=a.row, column=id_col)
    for name in a.NUMERIC:
        v = getattr(a, name)
        v = _finite(v, file=file, row=a.row, column=name, key=k, allow_nan=name in a.OPTIONAL)
        object.__setattr__(a, name, v)
    object.__setattr__(a, "phases", _phases(a.phases, file=file, row=a.row, key=k))
    pmax = a.p_max
    if pmax < 0:
        raise CaseError(f"capacity must be non-negative, got {pmax}", file=file, row=a.row, column="p_max", key=k)
    if isinstance(a, Unit):
        _check_range(a.p_min, a.p_max, file=file, row=a.row, lo_col="p_min", hi_col="p_max", key=k)
    _check_range(a.q_min, a.q_max, file=file, row=a.row, lo_col="q_min", hi_col="q_max", key=k)


def _asset_eq(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return NotImplemented  # type: ignore[return-value]
    for f in a.__dataclass_fields__:  # type: ignore[attr-defined]
        if f == "row":
            continue
        va, vb = getattr(a, f), getattr(b, f)
        if not _nan_eq(va, vb):
            return False
    return True


@dataclass(frozen=True)
class MeterLocation:
    """Where a meter sits: grid id (``"T"`` or a feeder id), node and phases. DSO-private."""

    grid: str
    node: str
    phases: str
