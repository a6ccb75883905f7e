"""Grid and case data model: validated when built, immutable afterwards.

Conventions
-----------
- Identifiers are strings (``"2"``, ``"L1"``, ``"G1"``), unique within their table
  (feeder nodes and feeder lines: unique within their feeder).
- Phases are strings of letters in ``abc`` order (``"abc"``, ``"b"``). A
  single-phase feeder (``Feeder.n_phases == 1``) uses phase ``"a"`` throughout.
- Feeder impedances ``r``/``x`` are per unit on the feeder's base and stored as
  ``n_phases x n_phases`` arrays in the phase frame (entries of absent phases are 0
  and ignored). Line limits are per unit, per phase (``inf`` = no limit).
- Transmission lines are DC lines: reactance ``x`` in pu on ``base_mva``, rating in
  the case's power unit.
- Powers of units and loads are in ``Case.power_unit`` (kW or MW), three-phase
  totals; a three-phase element splits its power equally over its phases.
- Sign conventions: unit output is positive injection, load is positive
  consumption; feeder line flows are positive from parent to child.

Each ``__post_init__`` validates its record and raises :class:`CaseError` naming the
table (the case-folder file name), the 1-based row and the column.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import networkx as nx
import numpy as np
import pandas as pd

from .errors import CaseError

PHASES = "abc"
ROLES = ("der_manager", "load_aggregator", "dso", "tso", "main_grid")
TRANSMISSION = "T"  # the grid id of the transmission grid in Unit.grid / Load.grid

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
    """A transmission line in the DC approximation: flow = (theta_from - theta_to) / x."""

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
        if self.x <= 0:
            raise CaseError(f"reactance must be positive, got {self.x}", file=F_BRANCHES, row=self.row,
                            column="x_pu", key=k)
        if self.r < 0:
            raise CaseError(f"resistance must be non-negative, got {self.r}", file=F_BRANCHES, row=self.row,
                            column="r_pu", key=k)
        if self.rating <= 0:
            raise CaseError(f"rating must be positive, got {self.rating}", file=F_BRANCHES, row=self.row,
                            column="s_max", key=k)
        if self.from_bus == self.to_bus:
            raise CaseError(f"line connects bus '{self.from_bus}' to itself", file=F_BRANCHES, row=self.row,
                            column="to_bus", key=k)


class TransmissionGrid:
    """A meshed transmission grid with DC lines and PCC attachment points of feeders."""

    def __init__(self, buses: Iterable[Bus], lines: Iterable[DCLine], *, base_mva: float = 100.0,
                 ref_bus: str | None = None, name: str = "transmission") -> None:
        self.name = name
        self.buses: tuple[Bus, ...] = tuple(buses)
        self.lines: tuple[DCLine, ...] = tuple(lines)
        self.base_mva = _finite(base_mva, file=F_META, row=None, column="transmission.base_mva")
        if self.base_mva <= 0:
            raise CaseError("base_mva must be positive", file=F_META, column="transmission.base_mva")
        if not self.buses:
            raise CaseError("the transmission grid has no buses", file=F_BUSES)
        _unique(self.buses, file=F_BUSES, column="bus")
        _unique(self.lines, file=F_BRANCHES, column="line_id")
        self.bus_ids: tuple[str, ...] = tuple(b.id for b in self.buses)
        self.bus_index: Mapping[str, int] = ReadOnlyDict({b: i for i, b in enumerate(self.bus_ids)})
        for i, ln in enumerate(self.lines, start=1):
            for col, b in (("from_bus", ln.from_bus), ("to_bus", ln.to_bus)):
                if b not in self.bus_index:
                    raise CaseError(f"unknown bus '{b}'", file=F_BRANCHES, row=ln.row or i, column=col,
                                    key=f"line_id={ln.id}")
        self.ref_bus = ref_bus if ref_bus is not None else self.bus_ids[0]
        if self.ref_bus not in self.bus_index:
            raise CaseError(f"reference bus '{self.ref_bus}' is not a bus", file=F_META,
                            column="transmission.ref_bus")
        g = nx.MultiGraph()
        g.add_nodes_from(self.bus_ids)
        for ln in self.lines:
            g.add_edge(ln.from_bus, ln.to_bus, key=ln.id, x=ln.x, rating=ln.rating)
        if not nx.is_connected(g):
            comps = sorted((sorted(c) for c in nx.connected_components(g)), key=len)
            raise CaseError(f"the transmission grid is not connected; isolated part: {comps[0][:10]}",
                            file=F_BRANCHES)
        nx.freeze(g)
        self.graph = g

    @property
    def n_buses(self) -> int:
        return len(self.buses)

    @property
    def n_lines(self) -> int:
        return len(self.lines)

    def incidence(self) -> np.ndarray:
        """Line x bus incidence matrix A (+1 at the from bus, -1 at the to bus)."""
        a = np.zeros((self.n_lines, self.n_buses))
        for k, ln in enumerate(self.lines):
            a[k, self.bus_index[ln.from_bus]] = 1.0
            a[k, self.bus_index[ln.to_bus]] = -1.0
        return a

    def susceptance(self) -> np.ndarray:
        """Per-line susceptance b = 1/x in pu on base_mva."""
        return np.array([1.0 / ln.x for ln in self.lines])

    def ratings(self) -> np.ndarray:
        return np.array([ln.rating for ln in self.lines])

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, TransmissionGrid) and self.buses == other.buses
                and self.lines == other.lines and self.base_mva == other.base_mva
                and self.ref_bus == other.ref_bus)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TransmissionGrid({self.n_buses} buses, {self.n_lines} lines)"


# ------------------------------------------------------------------------ feeders


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
        same_num = all(
            (a == b) or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
            for a, b in ((self.p_max, other.p_max), (self.q_max, other.q_max), (self.s_max, other.s_max),
                         (self.length_km, other.length_km)))
        return (self.id == other.id and self.from_node == other.from_node and self.to_node == other.to_node
                and self.phases == other.phases and np.array_equal(self.r, other.r)
                and np.array_equal(self.x, other.x) and same_num and self.linecode == other.linecode)

    __hash__ = None  # type: ignore[assignment]


class Feeder:
    """A radial distribution feeder (single-phase equivalent or three-phase unbalanced).

    The head node (``head``) is the slack: its voltage is ``v_head`` pu on every
    phase (the head's own v_min/v_max are not used by the feeder models).
    Bases: for a three-phase feeder ``s_base_kva`` is per phase and ``v_base_kv``
    phase-to-neutral; for a single-phase-equivalent feeder (``n_phases == 1``)
    ``s_base_kva`` is the three-phase base and ``v_base_kv`` line-to-line, which
    gives the same ``z_base_ohm``. ``pcc_bus`` names the transmission bus the head is attached to (if any).
    ``import_min``/``import_max`` bound the three-phase active power entering the
    feeder at the head (the substation transformer), in the case's power unit.
    """

    def __init__(self, id: str, nodes: Iterable[FeederNode], lines: Iterable[FeederLine], *,
                 n_phases: int = 3, v_head: float = 1.0, s_base_kva: float = 1000.0,
                 v_base_kv: float = 0.22, import_min: float = -math.inf, import_max: float = math.inf,
                 pcc_bus: str | None = None) -> None:
        self.id = str(id)
        self.nodes: tuple[FeederNode, ...] = tuple(nodes)
        self.lines: tuple[FeederLine, ...] = tuple(lines)
        scope = f" in feeder {self.id}"
        if n_phases not in (1, 3):
            raise CaseError(f"n_phases must be 1 or 3, got {n_phases}", file=F_META,
                            column=f"feeders.{self.id}.n_phases")
        self.n_phases = n_phases
        self.phase_frame = PHASES if n_phases == 3 else "a"
        meta = f"feeders.{self.id}"
        self.v_head = _finite(v_head, file=F_META, row=None, column=f"{meta}.v_head_pu")
        self.s_base_kva = _finite(s_base_kva, file=F_META, row=None, column=f"{meta}.s_base_kva")
        self.v_base_kv = _finite(v_base_kv, file=F_META, row=None, column=f"{meta}.v_base_kv")
        for col, v in (("v_head_pu", self.v_head), ("s_base_kva", self.s_base_kva), ("v_base_kv", self.v_base_kv)):
            if v <= 0:
                raise CaseError(f"must be positive, got {v}", file=F_META, column=f"{meta}.{col}")
        self.import_min = _finite(import_min, file=F_META, row=None, column=f"{meta}.import_min", allow_inf=True)
        self.import_max = _finite(import_max, file=F_META, row=None, column=f"{meta}.import_max", allow_inf=True)
        _check_range(self.import_min, self.import_max, file=F_META, row=None, lo_col=f"{meta}.import_min",
                     hi_col=f"{meta}.import_max")
        self.pcc_bus = None if pcc_bus is None else str(pcc_bus)
        if not self.nodes:
            raise CaseError(f"feeder {self.id} has no nodes", file=F_NODES)
        _unique(self.nodes, file=F_NODES, column="node", scope=scope)
        _unique(self.lines, file=F_LINES, column="line_id", scope=scope)
        node_by_id = {n.id: n for n in self.nodes}
        heads = [n for n in self.nodes if n.parent is None]
        if len(heads) != 1:
            raise CaseError(f"feeder {self.id} must have exactly one head node (empty parent), found "
                            f"{[n.id for n in heads]}", file=F_NODES, row=(heads[1].row if len(heads) > 1 else None),
                            column="parent")
        self.head = heads[0].id
        for i, n in enumerate(self.nodes, start=1):
            if any(p not in self.phase_frame for p in n.phases):
                raise CaseError(f"phases '{n.phases}' not in a {n_phases}-phase feeder", file=F_NODES,
                                row=n.row or i, column="phases", key=f"node={n.id}")
            if n.parent is not None and n.parent not in node_by_id:
                raise CaseError(f"unknown parent node '{n.parent}'{scope}", file=F_NODES, row=n.row or i,
                                column="parent", key=f"node={n.id}")
        # lines must be exactly the parent->child edges
        line_by_child: dict[str, FeederLine] = {}
        for i, ln in enumerate(self.lines, start=1):
            rk = dict(file=F_LINES, row=ln.row or i, key=f"line_id={ln.id}")
            for col, nd in (("from_node", ln.from_node), ("to_node", ln.to_node)):
                if nd not in node_by_id:
                    raise CaseError(f"unknown node '{nd}'{scope}", column=col, **rk)
            if ln.r.shape[0] != n_phases:
                raise CaseError(f"impedance matrix is {ln.r.shape[0]}x{ln.r.shape[0]} in a {n_phases}-phase feeder",
                                column="r_aa_pu", **rk)
            if any(p not in self.phase_frame for p in ln.phases):
                raise CaseError(f"phases '{ln.phases}' not in a {n_phases}-phase feeder", column="phases", **rk)
            if ln.to_node in line_by_child:
                raise CaseError(f"node '{ln.to_node}' is fed by two lines ({line_by_child[ln.to_node].id} and "
                                f"{ln.id}): the feeder is not radial", column="to_node", **rk)
            child = node_by_id[ln.to_node]
            if child.parent != ln.from_node:
                raise CaseError(f"line goes {ln.from_node}->{ln.to_node} but node {ln.to_node} has parent "
                                f"'{child.parent}' (a loop or a reversed line: the feeder is not radial)",
                                column="from_node", **rk)
            parent = node_by_id[ln.from_node]
            missing = [p for p in ln.phases if p not in parent.phases]
            if missing:
                raise CaseError(f"phase(s) {''.join(missing)} of the line are not present at its from-node "
                                f"'{ln.from_node}' (phases {parent.phases})", column="phases", **rk)
            if child.phases != ln.phases:
                raise CaseError(f"node '{child.id}' has phases '{child.phases}' but its incoming line has "
                                f"'{ln.phases}'", column="phases", **rk)
            line_by_child[ln.to_node] = ln
        for i, n in enumerate(self.nodes, start=1):
            if n.parent is not None and n.id not in line_by_child:
                raise CaseError(f"node '{n.id}' has parent '{n.parent}' but no line feeds it", file=F_NODES,
                                row=n.row or i, column="parent", key=f"node={n.id}")
        g = nx.DiGraph()
        for n in self.nodes:
            g.add_node(n.id, phases=n.phases, v_min=n.v_min, v_max=n.v_max)
        for ln in self.lines:
            g.add_edge(ln.from_node, ln.to_node, id=ln.id, phases=ln.phases)
        if not nx.is_weakly_connected(g):
            unreachable = sorted(set(g) - nx.descendants(g, self.head) - {self.head})
            # every other node has one parent and one incoming line, so the unreachable ones hang on a loop
            try:
                loop = [u for u, _ in nx.find_cycle(g.subgraph(unreachable))]
            except nx.NetworkXNoCycle:
                loop = []
            first = min((node_by_id[n] for n in loop or unreachable), key=lambda n: n.row or 0)
            what = f"nodes {' -> '.join(loop + loop[:1])} form a loop" if loop else "the feeder is disconnected"
            raise CaseError(f"feeder {self.id}: {what}; nodes {unreachable[:10]} are not reachable from the head "
                            f"'{self.head}' (the feeder is not radial)", file=F_NODES, row=first.row, column="parent",
                            key=f"node={first.id}")
        if not nx.is_arborescence(g):
            raise CaseError(f"feeder {self.id} is not radial (a loop among its nodes)", file=F_NODES, column="parent")
        reach = nx.descendants(g, self.head) | {self.head}
        if len(reach) != len(self.nodes):
            raise CaseError(f"feeder {self.id}: nodes {sorted(set(g) - reach)[:10]} are not reachable from the head",
                            file=F_NODES, column="parent")
        nx.freeze(g)
        self.graph = g
        # topological order (head first) for builders
        order = list(nx.topological_sort(g))
        self.node_order: tuple[str, ...] = tuple(order)
        self.node_index: Mapping[str, int] = ReadOnlyDict({n: i for i, n in enumerate(order)})
        self.line_by_child: Mapping[str, FeederLine] = ReadOnlyDict(dict(line_by_child))
        self._node_by_id = ReadOnlyDict(node_by_id)

    # ------------------------------------------------------------------ queries
    def node(self, node_id: str) -> FeederNode:
        return self._node_by_id[node_id]

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def n_lines(self) -> int:
        return len(self.lines)

    def pu_per(self, power_unit: str) -> float:
        """Per-unit value of one ``power_unit`` (``"kW"`` or ``"MW"``) on this feeder's base
        (per phase for a three-phase feeder, three-phase total for a single-phase equivalent)."""
        if power_unit == "kW":
            return 1.0 / self.s_base_kva
        if power_unit == "MW":
            return 1000.0 / self.s_base_kva
        raise ValueError(f"power_unit must be 'MW' or 'kW', got {power_unit!r}")

    @property
    def z_base_ohm(self) -> float:
        """Z_base = V_base^2 / S_base with V in kV (phase-neutral) and S in MVA per phase."""
        return self.v_base_kv ** 2 / (self.s_base_kva / 1000.0)

    def downstream(self, node_id: str) -> set[str]:
        """Nodes below ``node_id`` (excluding itself)."""
        return nx.descendants(self.graph, node_id)

    def path_from_head(self, node_id: str) -> list[FeederLine]:
        """Lines from the head down to ``node_id``, in order."""
        path = nx.shortest_path(self.graph, self.head, node_id)
        return [self.line_by_child[n] for n in path[1:]]

    def node_phase_pairs(self) -> list[tuple[str, str]]:
        """All (node, phase) pairs present, in topological node order."""
        return [(n, p) for n in self.node_order for p in self._node_by_id[n].phases]

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Feeder) and self.id == other.id and self.nodes == other.nodes
                and self.lines == other.lines and self.n_phases == other.n_phases
                and self.v_head == other.v_head and self.s_base_kva == other.s_base_kva
                and self.v_base_kv == other.v_base_kv and self.import_min == other.import_min
                and self.import_max == other.import_max and self.pcc_bus == other.pcc_bus)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Feeder({self.id!r}, {self.n_phases}-phase, {self.n_nodes} nodes, head {self.head})"


# ------------------------------------------------------------------------- assets


@dataclass(frozen=True)
class Owner:
    """A market participant or operator. ``role`` is one of :data:`ROLES`."""

    id: str
    role: str
    area: int | None = None
    row: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise CaseError(f"unknown role '{self.role}'; expected one of {', '.join(ROLES)}", file=F_OWNERS,
                            row=self.row, column="role", key=f"owner_id={self.id}")


def _nan_eq(a: float, b: float) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


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


# --------------------------------------------------------------------------- case


class Case:
    """A complete market case: grids, owners, assets, profiles and scalar parameters.

    ``meters`` (the meter -> node/phase map) is derived from the assets' locations;
    only network operators may be given it. ``profiles`` has one row per period
    (index 0..horizon-1).
    """

    def __init__(self, name: str, *, transmission: TransmissionGrid | None = None,
                 feeders: Iterable[Feeder] = (), owners: Iterable[Owner] = (), units: Iterable[Unit] = (),
                 loads: Iterable[Load] = (), profiles: pd.DataFrame | None = None,
                 parameters: Mapping[str, object] | None = None, power_unit: str = "kW",
                 description: str = "") -> None:
        self.name = str(name)
        self.description = description
        if power_unit not in ("kW", "MW"):
            raise CaseError(f"power_unit must be 'kW' or 'MW', got {power_unit!r}", file=F_META, column="power_unit")
        self.power_unit = power_unit
        self.transmission = transmission
        feeders = tuple(feeders)
        _unique(feeders, file=F_META, column="feeders")
        if transmission is not None and TRANSMISSION in {f.id for f in feeders}:
            raise CaseError(f"feeder id '{TRANSMISSION}' is reserved for the transmission grid", file=F_META,
                            column="feeders")
        self.feeders: Mapping[str, Feeder] = ReadOnlyDict({f.id: f for f in feeders})
        self.owners: tuple[Owner, ...] = tuple(owners)
        self.units: tuple[Unit, ...] = tuple(units)
        self.loads: tuple[Load, ...] = tuple(loads)
        self.parameters: Mapping[str, object] = ReadOnlyDict(dict(parameters or {}))
        for k, v in self.parameters.items():
            if isinstance(v, float) and not math.isfinite(v):
                raise CaseError(f"parameter '{k}' must be finite, got {v}", file=F_META, column=f"parameters.{k}")
        declared = self.parameters.get("horizon")
        if declared is not None and (isinstance(declared, bool) or not isinstance(declared, (int, float))
                                     or declared != int(declared) or declared < 1):
            raise CaseError(f"horizon must be a positive whole number of periods, got {declared!r}", file=F_META,
                            column="parameters.horizon")
        if profiles is None:
            profiles = pd.DataFrame(index=pd.RangeIndex(int(self.parameters.get("horizon", 1)), name="hour"))
        self.profiles = profiles.copy()
        self.profiles.index.name = "hour"
        self._validate()
        for col in self.profiles.columns:  # make the arrays read-only
            self.profiles[col].to_numpy().setflags(write=False)

    # ---------------------------------------------------------------- validation
    def _validate(self) -> None:
        _unique(self.owners, file=F_OWNERS, column="owner_id")
        _unique(self.units, file=F_UNITS, column="unit_id")
        _unique(self.loads, file=F_LOADS, column="load_id")
        unit_ids = {u.id for u in self.units}
        for i, d in enumerate(self.loads, start=1):
            if d.id in unit_ids:
                raise CaseError(f"id '{d.id}' is used both as a unit and as a load (meter ids must be unique)",
                                file=F_LOADS, row=d.row or i, column="load_id")
        owners = {o.id for o in self.owners}
        for f in self.feeders.values():
            if f.pcc_bus is not None:
                if self.transmission is None or f.pcc_bus not in self.transmission.bus_index:
                    raise CaseError(f"feeder {f.id} is attached to unknown transmission bus '{f.pcc_bus}'",
                                    file=F_META, column=f"feeders.{f.id}.pcc_bus")
        # profiles
        p = self.profiles
        horizon = len(p)
        declared = self.parameters.get("horizon")
        if declared is not None and int(declared) != horizon:
            raise CaseError(f"horizon is {declared} in case.json but profiles.csv has {horizon} rows",
                            file=F_PROFILES, column="hour")
        if horizon < 1:
            raise CaseError("the horizon must have at least one period", file=F_PROFILES, column="hour")
        for col in p.columns:
            vals = pd.to_numeric(p[col], errors="coerce").to_numpy(dtype=float)
            bad = np.flatnonzero(~np.isfinite(vals))
            if bad.size:
                raise CaseError(f"value is missing, not a number, or infinite ({p[col].iloc[bad[0]]!r})",
                                file=F_PROFILES, row=int(bad[0]) + 1, column=str(col))
        for table, file, id_col in ((self.units, F_UNITS, "unit_id"), (self.loads, F_LOADS, "load_id")):
            for i, a in enumerate(table, start=1):
                row = a.row or i
                k = f"{id_col}={a.id}"
                if a.owner not in owners:
                    raise CaseError(f"unknown owner '{a.owner}'", file=file, row=row, column="owner", key=k)
                self._check_location(a, file, row, k)
                for col in ("avail_profile", "price_profile", "baseline_profile", "alpha_profile"):
                    name = getattr(a, col, None)
                    if name is not None and name not in p.columns:
                        raise CaseError(f"profile column '{name}' is missing from profiles.csv", file=file, row=row,
                                        column=col, key=k)
                    if name is not None and col in ("avail_profile", "baseline_profile") and (p[name] < 0).any():
                        h = int(np.flatnonzero(p[name].to_numpy() < 0)[0])
                        raise CaseError(f"negative value {p[name].iloc[h]} in profile '{name}'", file=F_PROFILES,
                                        row=h + 1, column=name)
            for i, a in enumerate(table, start=1):
                if isinstance(a, Load) and a.baseline_profile is not None and math.isnan(a.band_min):
                    raise CaseError("a load with a baseline profile needs band_min and band_max", file=file,
                                    row=a.row or i, column="band_min", key=f"{id_col}={a.id}")

    def _check_location(self, a: Unit | Load, file: str, row: int, key: str) -> None:
        if a.grid == TRANSMISSION:
            if self.transmission is None:
                raise CaseError("asset on the transmission grid but the case has none", file=file, row=row,
                                column="grid", key=key)
            if a.node not in self.transmission.bus_index:
                raise CaseError(f"unknown transmission bus '{a.node}'", file=file, row=row, column="node", key=key)
            return
        if a.grid not in self.feeders:
            raise CaseError(f"unknown grid '{a.grid}' (feeders: {', '.join(self.feeders) or 'none'})", file=file,
                            row=row, column="grid", key=key)
        f = self.feeders[a.grid]
        try:
            node = f.node(a.node)
        except KeyError:
            raise CaseError(f"unknown node '{a.node}' in feeder {f.id}", file=file, row=row, column="node",
                            key=key) from None
        missing = [ph for ph in a.phases if ph not in node.phases]
        if missing:
            raise CaseError(f"phase(s) {''.join(missing)} not present at node {a.node} (phases {node.phases})",
                            file=file, row=row, column="phases", key=key)

    # ------------------------------------------------------------------- queries
    @property
    def horizon(self) -> int:
        return len(self.profiles)

    @property
    def meters(self) -> Mapping[str, MeterLocation]:
        """meter id -> location for every unit and load. Network-operator data."""
        return ReadOnlyDict({a.id: MeterLocation(a.grid, a.node, a.phases) for a in (*self.units, *self.loads)})

    def owner(self, owner_id: str) -> Owner:
        for o in self.owners:
            if o.id == owner_id:
                return o
        raise KeyError(owner_id)

    def owners_with_role(self, role: str) -> list[Owner]:
        return [o for o in self.owners if o.role == role]

    def units_of(self, owner_id: str) -> list[Unit]:
        return [u for u in self.units if u.owner == owner_id]

    def loads_of(self, owner_id: str) -> list[Load]:
        return [d for d in self.loads if d.owner == owner_id]

    def profile(self, column: str) -> np.ndarray:
        return self.profiles[column].to_numpy(dtype=float)

    def param(self, key: str, default: object = None) -> object:
        return self.parameters.get(key, default)

    def replace(self, **changes: object) -> "Case":
        """A new validated case with some fields replaced (the case itself is immutable)."""
        kw = dict(transmission=self.transmission, feeders=tuple(self.feeders.values()), owners=self.owners,
                  units=self.units, loads=self.loads, profiles=self.profiles, parameters=dict(self.parameters),
                  power_unit=self.power_unit, description=self.description)
        name = changes.pop("name", self.name)
        kw.update(changes)
        return Case(str(name), **kw)  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Case):
            return NotImplemented
        return (self.name == other.name and self.power_unit == other.power_unit
                and self.transmission == other.transmission and dict(self.feeders) == dict(other.feeders)
                and self.owners == other.owners and self.units == other.units and self.loads == other.loads
                and dict(self.parameters) == dict(other.parameters)
                and self.profiles.shape == other.profiles.shape
                and list(self.profiles.columns) == list(other.profiles.columns)
                and np.array_equal(self.profiles.to_numpy(dtype=float), other.profiles.to_numpy(dtype=float))
                and self.description == other.description)

    __hash__ = None  # type: ignore[assignment]

    def summary(self) -> dict[str, object]:
        """Counts and totals for ``run.py inspect``."""
        out: dict[str, object] = {"case": self.name, "power unit": self.power_unit, "horizon": self.horizon}
        if self.transmission is not None:
            out["transmission buses"] = self.transmission.n_buses
            out["transmission lines"] = self.transmission.n_lines
        out["feeders"] = len(self.feeders)
        out["feeder nodes"] = sum(f.n_nodes for f in self.feeders.values())
        out["feeder lines"] = sum(f.n_lines for f in self.feeders.values())
        for role in ROLES:
            n = len(self.owners_with_role(role))
            if n:
                out[f"owners: {role}"] = n
        out["units"] = len(self.units)
        out["loads"] = len(self.loads)
        out[f"unit capacity ({self.power_unit})"] = round(sum(u.p_max for u in self.units if u.kind != "main_grid"), 3)
        out[f"load peak ({self.power_unit})"] = round(sum(d.p_max for d in self.loads), 3)
        return out

    def __repr__(self) -> str:
        return (f"Case({self.name!r}, transmission={self.transmission!r}, feeders={list(self.feeders)}, "
                f"{len(self.units)} units, {len(self.loads)} loads)")
