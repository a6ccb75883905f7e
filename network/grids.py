"""The two kinds of grid: a meshed DC :class:`TransmissionGrid` and a radial :class:`Feeder`.

One job: assemble validated element records (:mod:`network.elements`) into a
grid, check its topology (unique ids, known end points, a connected
transmission grid; a radial feeder with one head and one line per child,
consistent phases) and answer the questions the network formulations ask of it
(incidence and susceptances; topological node order, paths, per-unit bases).
The graphs are frozen ``networkx`` graphs; a grid is immutable once built and
raises :class:`CaseError` (table, row, column) when it is not valid.

Units and sign conventions are in :mod:`network.model`.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import networkx as nx
import numpy as np

from .elements import (F_BRANCHES, F_BUSES, F_LINES, F_META, F_NODES, PHASES, Bus, DCLine, FeederLine, FeederNode,
                       ReadOnlyDict, _check_range, _finite, _unique)
from .errors import CaseError


# ------------------------------------------------------------------- transmission


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
        if any(ln.x < 0 for ln in self.lines):
            self._check_dc_solvable()

    #: the largest condition number (1-norm estimate) of the reduced susceptance matrix accepted
    MAX_B_CONDITION = 1e12

    def _check_dc_solvable(self) -> None:
        """With series capacitors (``x < 0``) the susceptance matrix is no longer a weighted
        Laplacian with positive weights, so connectedness alone does not make the DC power flow
        solvable: the reduced ``B`` (reference bus removed) must be non-singular, i.e. angles and
        PTDFs are finite. One line naming the grid's worst case otherwise."""
        import scipy.sparse as sp
        import scipy.sparse.linalg as spla

        n = self.n_buses
        rows = [self.bus_index[ln.from_bus] for ln in self.lines]
        cols = [self.bus_index[ln.to_bus] for ln in self.lines]
        b = np.array([1.0 / ln.x for ln in self.lines])
        off = sp.coo_matrix((np.r_[-b, -b], (np.r_[rows, cols], np.r_[cols, rows])), shape=(n, n)).tocsr()
        bbus = (off - sp.diags(np.asarray(off.sum(axis=1)).ravel())).tocsc()
        keep = np.array([i for i in range(n) if i != self.bus_index[self.ref_bus]], dtype=int)
        if keep.size == 0:
            return
        red = bbus[keep][:, keep].tocsc()
        neg = [ln.id for ln in self.lines if ln.x < 0]
        what = (f"the DC susceptance matrix is singular with the negative (series-capacitor) reactance of "
                f"{', '.join(neg[:5])}{' ...' if len(neg) > 5 else ''}: the DC power flow has no unique solution")
        try:
            lu = spla.splu(red)
        except RuntimeError:
            raise CaseError(what, file=F_BRANCHES, column="x_pu") from None
        op = spla.LinearOperator(red.shape, matvec=lu.solve, rmatvec=lambda v: lu.solve(v, trans="T"),
                                 dtype=float)
        cond = float(spla.onenormest(op)) * float(spla.norm(red, 1))
        if not math.isfinite(cond) or cond > self.MAX_B_CONDITION:
            raise CaseError(f"{what} (condition number {cond:.3g})", file=F_BRANCHES, column="x_pu")

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
