"""Import grids from pandapower networks and MATPOWER case files into :class:`~network.model.Case`.

Every importer returns a validated :class:`Case` (the model validates on
construction). Bad data raise :class:`CaseError` naming the source table (the
pandapower table, e.g. ``line``, or ``case9.m:mpc.branch``), the row (the
pandapower index, or the 1-based MATPOWER row) and the column.

What is imported
----------------
``from_pandapower_transmission``
    In-service buses, lines and two-winding transformers become a
    :class:`TransmissionGrid` of DC lines: ``x`` in pu on ``net.sn_mva``; a
    transformer's ``x`` is its short-circuit reactance referred to the bus
    voltages times its off-nominal ratio (as in pandapower's and MATPOWER's DC
    models, ``b = 1 / (x * ratio)``); phase shifts are ignored. Ratings in MVA:
    ``sqrt(3) * max_i_ka * vn_kv * parallel * df`` for lines and
    ``sn_mva * parallel * df`` for transformers, scaled by ``max_loading_percent``
    when given. Generators (``gen``, ``sgen``, ``ext_grid``) become Units of owner
    ``GENCO``, loads become Loads of owner ``RETAIL``; costs come from
    ``poly_cost`` (the linear coefficient; non-zero quadratic coefficients go to
    the case parameter ``cost_c2`` as ``{unit_id: c2}``). Powers in MW.
``from_pandapower_feeder``
    A radial single-phase-equivalent feeder (e.g. ``case33bw``): the ext_grid bus
    is the head (``v_head`` = its ``vm_pu``); lines are oriented away from the
    head; ``r``/``x`` in pu on ``s_base_mva`` (default ``net.sn_mva``) and the
    head bus voltage; out-of-service lines (tie switches) are dropped; closed
    bus-bus switches and zero-impedance lines are collapsed.
``from_pandapower_lv_asymmetric``
    A three-phase four-wire LV feeder (``ieee_european_lv_asymmetric``): the
    phase-frame 3x3 impedance of each line from its sequence data
    (``Zs = (Z0 + 2 Z1)/3``, ``Zm = (Z0 - Z1)/3``); the transformer is a line from
    the ext_grid (head) node to its LV bus with its impedance referred to the LV
    side (zero sequence as pandapower's three-phase T model of a Dyn transformer);
    single-phase asymmetric loads become single-phase Loads (``p_max`` = their
    power, ``tan_phi`` = q/p).
``read_matpower``
    A MATPOWER ``.m`` case (``baseMVA``, ``bus``, ``gen``, ``branch``,
    ``gencost``) into a :class:`TransmissionGrid` case, DC as above.

Per-unit of single-phase-equivalent feeders: ``s_base_kva`` is the three-phase
base and ``v_base_kv`` the line-to-line voltage, so ``z_base = v_base_kv^2 /
(s_base_kva / 1000)`` (the same as phase-neutral voltage over per-phase power).
Three-phase feeders use a per-phase ``s_base_kva`` and a phase-neutral
``v_base_kv``, as the built-in ``tes_feeder``.
"""
from __future__ import annotations

import copy
import math
import os
import re
from collections import deque
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd

from .errors import CaseError
from .model import (TRANSMISSION, Bus, Case, DCLine, Feeder, FeederLine, FeederNode, Load, Owner, TransmissionGrid,
                    Unit)

__all__ = ["from_pandapower_transmission", "from_pandapower_feeder", "from_pandapower_lv_asymmetric",
           "import_pandapower_case", "load_pandapower_network", "read_matpower", "parse_matpower", "PANDAPOWER_CASES"]

SQRT3 = math.sqrt(3.0)
UNLIMITED_KA = 9999.0  # pandapower writes 99999 kA for "no limit" (MATPOWER rate 0)


# --------------------------------------------------------------------------- helpers


@contextmanager
def _located(table: str, row: Any, columns: Mapping[str, str] | None = None) -> Iterator[None]:
    """Re-raise a model CaseError as one about the source ``table``/``row``/column."""
    try:
        yield
    except CaseError as exc:
        col = (columns or {}).get(exc.column or "", exc.column)
        raise CaseError(exc.message, file=table, row=None if row is None else int(row), column=col,
                        key=exc.key) from None


def _f(v: Any, default: float = math.nan) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(x) else x


def _col(df: pd.DataFrame, idx: Any, col: str, default: float = math.nan) -> float:
    return _f(df.at[idx, col], default) if col in df.columns else default


def _active(net: Any, table: str) -> pd.DataFrame:
    df = getattr(net, table, None)
    if df is None or len(df) == 0:
        return pd.DataFrame()
    if "in_service" in df.columns:
        df = df[df["in_service"].astype(bool)]
    return df


def _names(df: pd.DataFrame, prefix: str) -> dict[Any, str]:
    """Element ids: the ``name`` column if unique and non-empty, else ``prefix + index``."""
    if "name" in df.columns and len(df):
        names = [None if (n is None or (isinstance(n, float) and math.isnan(n))) else str(n).strip()
                 for n in df["name"]]
        if all(names) and len(set(names)) == len(names):
            return dict(zip(df.index, names))  # type: ignore[arg-type]
    return {i: f"{prefix}{i}" for i in df.index}


def _bus_ids(net: Any) -> dict[int, str]:
    buses = _active(net, "bus")
    return _names(buses, "")


class _UnionFind:
    def __init__(self, items: Any) -> None:
        self.parent = {i: i for i in items}

    def find(self, a: Any) -> Any:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: Any, b: Any, keep: Any = None) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if keep is not None and self.find(keep) == rb:
            ra, rb = rb, ra
        self.parent[rb] = ra


def _merge_switches(net: Any, uf: _UnionFind, head: Any = None) -> set[Any]:
    """Collapse closed bus-bus switches; return the indices of lines opened by switches."""
    open_lines: set[Any] = set()
    sw = getattr(net, "switch", None)
    if sw is None or len(sw) == 0:
        return open_lines
    for i, r in sw.iterrows():
        closed = bool(r["closed"])
        if r["et"] == "b" and closed and r["bus"] in uf.parent and r["element"] in uf.parent:
            uf.union(r["bus"], r["element"], keep=head)
        elif r["et"] == "l" and not closed:
            open_lines.add(r["element"])
    return open_lines


def _unsupported(net: Any, tables: tuple[str, ...]) -> None:
    for t in tables:
        df = _active(net, t)
        if len(df):
            raise CaseError(f"in-service '{t}' elements are not supported by this importer", file=t,
                            row=int(df.index[0]))


def _cost_table(net: Any) -> dict[tuple[str, int], tuple[float, float]]:
    """(element type, index) -> (linear, quadratic) cost coefficients."""
    out: dict[tuple[str, int], tuple[float, float]] = {}
    pc = getattr(net, "poly_cost", None)
    if pc is not None and len(pc):
        for _, r in pc.iterrows():
            out[(str(r["et"]), int(r["element"]))] = (_f(r.get("cp1_eur_per_mw"), 0.0),
                                                       _f(r.get("cp2_eur_per_mw2"), 0.0))
    pw = getattr(net, "pwl_cost", None)
    if pw is not None and len(pw):
        for _, r in pw.iterrows():
            if str(r.get("power_type", "p")) != "p":
                continue
            pts = r["points"]
            if pts:
                p0, p1, c = pts[0]
                out[(str(r["et"]), int(r["element"]))] = (float(c), 0.0)
    return out


def _unit_kind(et: str, typ: Any) -> str:
    t = str(typ or "").lower()
    if et == "sgen":
        if "wind" in t or t.startswith("wp"):
            return "wind"
        if "pv" in t or "solar" in t:
            return "pv"
    return "thermal"


# ------------------------------------------------------------------- transmission


def from_pandapower_transmission(net: Any, name: str) -> Case:
    """A transmission :class:`Case` (DC lines, MW) from a pandapower network.

    Bus ids are the bus names when unique (``"1"`` ... ``"24"`` for
    ``case24_ieee_rts``), else the pandapower indices. Line ids are the names or
    ``L<index>``; transformer ids the names or ``T<index>``. Units are
    ``gen<i>``, ``sgen<i>``, ``ext_grid<i>`` (kind ``thermal``, ``wind`` or ``pv``),
    loads ``load<i>``; reactive bounds come from ``min/max_q_mvar`` and loads keep
    ``q = p tan_phi``. An ext_grid without a finite ``max_p_mw`` gets ``p_max`` =
    the total load. Shunts are ignored (the DC model has none). The reference bus
    is the first in-service ext_grid's bus (else a slack gen's, else the first bus).
    """
    _unsupported(net, ("trafo3w", "impedance", "dcline", "xward", "tcsc", "vsc"))
    sn = float(net.sn_mva)
    bus_df = _active(net, "bus")
    if len(bus_df) == 0:
        raise CaseError("the network has no in-service bus", file="bus")
    uf = _UnionFind(bus_df.index)
    open_lines = _merge_switches(net, uf)
    names = _bus_ids(net)
    bid = {i: names[uf.find(i)] for i in bus_df.index}
    vn = bus_df["vn_kv"].astype(float)
    buses = []
    for i, r in bus_df.iterrows():
        if uf.find(i) != i:
            continue
        with _located("bus", i, {"v_min_pu": "min_vm_pu", "v_max_pu": "max_vm_pu"}):
            buses.append(Bus(bid[i], 0, _col(bus_df, i, "min_vm_pu", 0.9), _col(bus_df, i, "max_vm_pu", 1.1)))
    lines_df = _active(net, "line")
    trafo_df = _active(net, "trafo")
    lid = _names(lines_df, "L")
    tid = _names(trafo_df, "T")
    if set(lid.values()) & set(tid.values()):
        lid = {i: f"L{i}" for i in lines_df.index}
        tid = {i: f"T{i}" for i in trafo_df.index}
    lines: list[DCLine] = []
    for i, r in lines_df.iterrows():
        if i in open_lines or r["from_bus"] not in bid or r["to_bus"] not in bid:
            continue
        f, t = bid[r["from_bus"]], bid[r["to_bus"]]
        if f == t:
            continue  # closed by a bus-bus switch into a self loop
        par = _f(r.get("parallel"), 1.0)
        zb = vn[r["from_bus"]] ** 2 / sn
        x = _f(r["x_ohm_per_km"]) * _f(r["length_km"]) / par / zb
        rr = _f(r["r_ohm_per_km"]) * _f(r["length_km"]) / par / zb
        imax = _f(r.get("max_i_ka"))
        rating = (math.inf if not math.isfinite(imax) or imax >= UNLIMITED_KA
                  else SQRT3 * imax * vn[r["from_bus"]] * par * _f(r.get("df"), 1.0)
                  * _col(lines_df, i, "max_loading_percent", 100.0) / 100.0)
        with _located("line", i, {"x_pu": "x_ohm_per_km", "r_pu": "r_ohm_per_km", "s_max": "max_i_ka",
                                  "to_bus": "to_bus"}):
            lines.append(DCLine(lid[i], f, t, x, rating, r=rr))
    for i, r in trafo_df.iterrows():
        if r["hv_bus"] not in bid or r["lv_bus"] not in bid:
            continue
        hv, lv = r["hv_bus"], r["lv_bus"]
        par = _f(r.get("parallel"), 1.0)
        s_tr = _f(r["sn_mva"])
        to_lv = (_f(r["vn_lv_kv"]) / vn[lv]) ** 2 * sn / s_tr
        z = _f(r["vk_percent"]) / 100.0 * to_lv
        rr = _f(r["vkr_percent"]) / 100.0 * to_lv
        x = math.sqrt(max(z * z - rr * rr, 0.0)) / par
        ratio = (_f(r["vn_hv_kv"]) / vn[hv]) / (_f(r["vn_lv_kv"]) / vn[lv])
        pos, neutral, step = _f(r.get("tap_pos"), 0.0), _f(r.get("tap_neutral"), 0.0), _f(r.get("tap_step_percent"), 0.0)
        tap = 1.0 + (pos - neutral) * step / 100.0
        ratio = ratio * tap if str(r.get("tap_side", "hv")) != "lv" else ratio / tap
        rating = s_tr * par * _f(r.get("df"), 1.0) * _col(trafo_df, i, "max_loading_percent", 100.0) / 100.0
        with _located("trafo", i, {"x_pu": "vk_percent", "r_pu": "vkr_percent", "s_max": "sn_mva",
                                   "to_bus": "lv_bus"}):
            lines.append(DCLine(tid[i], bid[hv], bid[lv], x * ratio, rating, r=rr / par * ratio))
    ref = None
    eg = _active(net, "ext_grid")
    gen = _active(net, "gen")
    if len(eg):
        ref = bid.get(eg["bus"].iloc[0])
    elif len(gen) and "slack" in gen.columns and gen["slack"].astype(bool).any():
        ref = bid.get(gen[gen["slack"].astype(bool)]["bus"].iloc[0])
    with _located("line", None):
        grid = TransmissionGrid(buses, lines, base_mva=sn, ref_bus=ref, name=name)
    loads = _pp_loads(net, bid, TRANSMISSION, "abc", "RETAIL", scale=1.0)
    total_load = sum(d.p_max for d in loads)
    units, c2 = _pp_units(net, bid, TRANSMISSION, "abc", "GENCO", scale=1.0, ext_grid_pmax=total_load)
    owners = [Owner("TSO", "tso", 0), Owner("GENCO", "der_manager", 0), Owner("RETAIL", "load_aggregator", 0)]
    params: dict[str, Any] = {"horizon": 1, "source": "pandapower", "energy_price_unit": "$/MWh"}
    if c2:
        params["cost_c2"] = c2
    return Case(name, transmission=grid, owners=owners, units=units, loads=loads, parameters=params,
                power_unit="MW", description=f"{name}: transmission grid imported from pandapower (DC lines)")


def _pp_loads(net: Any, bid: Mapping[Any, str], grid: str, phases: str, owner: str, *, scale: float,
              tables: tuple[str, ...] = ("load",)) -> list[Load]:
    """Balanced loads: ``p_max`` = p, ``tan_phi`` = q/p (or q fixed by q_min = q_max if p = 0)."""
    out = []
    for t in tables:
        df = _active(net, t)
        for i, r in df.iterrows():
            if r["bus"] not in bid:
                raise CaseError(f"load at bus {r['bus']}, which is out of service or not connected", file=t, row=i,
                                column="bus")
            sc = _f(r.get("scaling"), 1.0)
            if t == "asymmetric_load":
                p = sum(_f(r[f"p_{ph}_mw"], 0.0) for ph in "abc") * sc * scale
                q = sum(_f(r[f"q_{ph}_mvar"], 0.0) for ph in "abc") * sc * scale
            else:
                p, q = _f(r["p_mw"], 0.0) * sc * scale, _f(r["q_mvar"], 0.0) * sc * scale
            if p < 0:
                raise CaseError(f"negative load {p} (a generator?) is not supported", file=t, row=i, column="p_mw")
            with _located(t, i, {"p_max": "p_mw", "q_min": "q_mvar", "q_max": "q_mvar"}):
                out.append(_load(f"{t}{i}", owner, grid, bid[r["bus"]], phases, p, q))
    return out


def _load(lid: str, owner: str, grid: str, node: str, phases: str, p: float, q: float) -> Load:
    if p > 0:
        return Load(lid, "demand", owner, grid, node, phases, p_max=p, tan_phi=q / p)
    return Load(lid, "demand", owner, grid, node, phases, p_max=p, q_min=q, q_max=q)


def _pp_units(net: Any, bid: Mapping[Any, str], grid: str, phases: str, owner: str, *, scale: float,
              ext_grid_pmax: float | None, ext_grid_kind: str = "thermal", ext_grid_owner: str | None = None
              ) -> tuple[list[Unit], dict[str, float]]:
    costs = _cost_table(net)
    units: list[Unit] = []
    c2: dict[str, float] = {}
    cols = {"p_min": "min_p_mw", "p_max": "max_p_mw", "q_min": "min_q_mvar", "q_max": "max_q_mvar"}
    for t in ("ext_grid", "gen", "sgen"):
        df = _active(net, t)
        for i, r in df.iterrows():
            if r["bus"] not in bid:
                raise CaseError(f"{t} at bus {r['bus']}, which is out of service or not connected", file=t, row=i,
                                column="bus")
            sc = _f(r.get("scaling"), 1.0)
            p_nom = _f(r.get("p_mw"), 0.0) * sc
            pmax = _col(df, i, "max_p_mw")
            pmin = _col(df, i, "min_p_mw")
            if t == "ext_grid":
                if not math.isfinite(pmax):
                    if ext_grid_pmax is None:
                        continue
                    pmax = ext_grid_pmax / scale
                pmin = pmin if math.isfinite(pmin) else 0.0
            else:
                pmax = pmax if math.isfinite(pmax) else p_nom
                pmin = pmin if math.isfinite(pmin) else min(0.0, pmax)
            c1, c2i = costs.get((t, int(i)), (math.nan, 0.0))
            uid = f"{t}{i}"
            kind = ext_grid_kind if t == "ext_grid" else _unit_kind(t, r.get("type"))
            with _located(t, i, cols):
                units.append(Unit(uid, kind, ext_grid_owner if (t == "ext_grid" and ext_grid_owner) else owner, grid,
                                  bid[r["bus"]], phases, p_min=pmin * scale, p_max=pmax * scale,
                                  q_min=_col(df, i, "min_q_mvar", 0.0) * scale,
                                  q_max=_col(df, i, "max_q_mvar", 0.0) * scale,
                                  cost=c1 / scale if math.isfinite(c1) else math.nan))
            if c2i:
                c2[uid] = c2i / scale ** 2
    return units, c2


# ------------------------------------------------------------------------- feeders


def _feeder_tree(net: Any, head_bus: Any, edges: list[tuple[str, Any, Any, Any, bool]],
                 uf: _UnionFind) -> tuple[dict[Any, Any], list[tuple[str, Any, Any, Any]]]:
    """Orient ``edges`` (table, index, bus_a, bus_b, zero_impedance) away from ``head_bus``.

    Zero-impedance edges are collapsed first (``uf``). Returns ``parent`` (root bus
    -> parent root bus, head -> None) of the buses reachable from the head and the
    oriented edges ``(table, index, from_root, to_root)``. A loop raises CaseError.
    """
    for t, i, a, b, zero in edges:
        if zero:
            uf.union(a, b, keep=head_bus)
    head = uf.find(head_bus)
    adj: dict[Any, list[tuple[str, Any, Any]]] = {}
    for t, i, a, b, zero in edges:
        if zero:
            continue
        ra, rb = uf.find(a), uf.find(b)
        if ra == rb:
            raise CaseError("the line connects two buses that are already joined (a loop)", file=t, row=i,
                            column="to_bus")
        adj.setdefault(ra, []).append((t, i, rb))
        adj.setdefault(rb, []).append((t, i, ra))
    parent: dict[Any, Any] = {head: None}
    used: set[tuple[str, Any]] = set()
    oriented: list[tuple[str, Any, Any, Any]] = []
    queue = deque([head])
    while queue:
        u = queue.popleft()
        for t, i, w in adj.get(u, []):
            if (t, i) in used:
                continue
            used.add((t, i))
            if w in parent:
                raise CaseError("this line closes a loop: the network is not radial (open a switch or set "
                                "in_service=False)", file=t, row=i, column="to_bus")
            parent[w] = u
            oriented.append((t, i, u, w))
            queue.append(w)
    return parent, oriented


def _head_of(net: Any) -> tuple[Any, float]:
    eg = _active(net, "ext_grid")
    if len(eg) != 1:
        raise CaseError(f"a feeder needs exactly one in-service ext_grid (the head), found {len(eg)}",
                        file="ext_grid")
    return eg["bus"].iloc[0], _f(eg["vm_pu"].iloc[0], 1.0)


def from_pandapower_feeder(net: Any, name: str, *, s_base_mva: float | None = None, feeder_id: str = "F1",
                           power_unit: str = "MW") -> Case:
    """A single-phase radial :class:`Feeder` case (e.g. ``case33bw``) from pandapower.

    The ext_grid bus is the head (voltage ``vm_pu``; its ``max_p_mw``, if finite,
    becomes a ``main_grid`` Unit ``MG`` of owner ``MG`` at the head). ``r``/``x`` are
    in pu on ``s_base_mva`` (default ``net.sn_mva``; three-phase) and the bus
    ``vn_kv`` (line-to-line); ``s_max`` in pu from ``max_i_ka`` (``>= 9999`` kA
    means no limit). Node voltage limits from ``min_vm_pu``/``max_vm_pu``.
    Loads are Loads of owner ``LA`` (``p_max`` = p, ``tan_phi`` = q/p), static
    generators Units of owner ``DERM``, in ``power_unit`` (MW or kW, three-phase
    totals). Transformers inside the feeder are lines with their short-circuit
    impedance (nominal ratio only).
    """
    if power_unit not in ("MW", "kW"):
        raise CaseError(f"power_unit must be 'MW' or 'kW', got {power_unit!r}", column="power_unit")
    scale = 1000.0 if power_unit == "kW" else 1.0
    _unsupported(net, ("trafo3w", "impedance", "dcline", "xward", "ward"))
    sb = float(net.sn_mva if s_base_mva is None else s_base_mva)
    head_bus, v_head = _head_of(net)
    bus_df = _active(net, "bus")
    vn = bus_df["vn_kv"].astype(float)
    uf = _UnionFind(bus_df.index)
    open_lines = _merge_switches(net, uf, head=head_bus)
    lines_df = _active(net, "line")
    trafo_df = _active(net, "trafo")
    imp: dict[tuple[str, Any], tuple[float, float, float]] = {}
    edges = []
    for i, r in lines_df.iterrows():
        if i in open_lines or r["from_bus"] not in uf.parent or r["to_bus"] not in uf.parent:
            continue
        if not math.isclose(vn[r["from_bus"]], vn[r["to_bus"]], rel_tol=1e-6):
            raise CaseError("the line joins buses of different nominal voltage", file="line", row=i, column="to_bus")
        par = _f(r.get("parallel"), 1.0)
        zb = vn[r["from_bus"]] ** 2 / sb
        length = _f(r["length_km"])
        rr = _f(r["r_ohm_per_km"]) * length / par / zb
        xx = _f(r["x_ohm_per_km"]) * length / par / zb
        imax = _f(r.get("max_i_ka"))
        smax = (math.inf if not math.isfinite(imax) or imax >= UNLIMITED_KA
                else SQRT3 * imax * vn[r["from_bus"]] * par * _f(r.get("df"), 1.0) / sb)
        imp[("line", i)] = (rr, xx, smax)
        edges.append(("line", i, r["from_bus"], r["to_bus"], rr == 0 and xx == 0))
    for i, r in trafo_df.iterrows():
        if r["hv_bus"] not in uf.parent or r["lv_bus"] not in uf.parent:
            continue
        ratio = (_f(r["vn_hv_kv"]) / vn[r["hv_bus"]]) / (_f(r["vn_lv_kv"]) / vn[r["lv_bus"]])
        if _f(r.get("tap_pos"), 0.0) != _f(r.get("tap_neutral"), 0.0) or not math.isclose(ratio, 1.0, rel_tol=1e-9):
            raise CaseError("off-nominal transformer ratios are not supported in a branch-flow feeder", file="trafo",
                            row=i, column="tap_pos")
        to_lv = (_f(r["vn_lv_kv"]) / vn[r["lv_bus"]]) ** 2 * sb / _f(r["sn_mva"])
        par = _f(r.get("parallel"), 1.0)
        z, rr = _f(r["vk_percent"]) / 100 * to_lv / par, _f(r["vkr_percent"]) / 100 * to_lv / par
        imp[("trafo", i)] = (rr, math.sqrt(max(z * z - rr * rr, 0.0)), _f(r["sn_mva"]) * par / sb)
        edges.append(("trafo", i, r["hv_bus"], r["lv_bus"], z == 0))
    parent, oriented = _feeder_tree(net, head_bus, edges, uf)
    names = _bus_ids(net)
    nid = {i: names[uf.find(i)] for i in bus_df.index if uf.find(i) in parent}
    nodes = []
    for b, p in parent.items():
        with _located("bus", b, {"v_min_pu": "min_vm_pu", "v_max_pu": "max_vm_pu"}):
            nodes.append(FeederNode(names[b], "a", None if p is None else names[p],
                                    _col(bus_df, b, "min_vm_pu", 0.95), _col(bus_df, b, "max_vm_pu", 1.05)))
    lid = _names(lines_df, "L")
    tid = _names(trafo_df, "T")
    flines = []
    for t, i, a, b in oriented:
        rr, xx, smax = imp[(t, i)]
        with _located(t, i, {"r_aa_pu": "r_ohm_per_km", "x_aa_pu": "x_ohm_per_km", "s_max_pu": "max_i_ka"}):
            flines.append(FeederLine((lid if t == "line" else tid)[i], names[a], names[b], "a", [[rr]], [[xx]],
                                     s_max=smax, length_km=_f(lines_df.at[i, "length_km"]) if t == "line" else math.nan))
    feeder = Feeder(feeder_id, nodes, flines, n_phases=1, v_head=v_head, s_base_kva=1000.0 * sb,
                    v_base_kv=float(vn[head_bus]))
    loads = _pp_loads(net, nid, feeder_id, "a", "LA", scale=scale)
    units, c2 = _pp_units(net, nid, feeder_id, "a", "DERM", scale=scale, ext_grid_pmax=None,
                          ext_grid_kind="main_grid", ext_grid_owner="MG")
    units = [_rename(u, "MG") if u.kind == "main_grid" else u for u in units]
    owners = [Owner("DSO", "dso", 1), Owner("LA", "load_aggregator", 1), Owner("DERM", "der_manager", 1),
              Owner("MG", "main_grid")]
    params: dict[str, Any] = {"horizon": 1, "source": "pandapower",
                              "energy_price_unit": f"$/{'MWh' if power_unit == 'MW' else 'kWh'}"}
    if c2:
        params["cost_c2"] = c2
    return Case(name, feeders=[feeder], owners=owners, units=units, loads=loads, parameters=params,
                power_unit=power_unit, description=f"{name}: single-phase radial feeder imported from pandapower")


def _rename(u: Unit, new_id: str) -> Unit:
    kw = {f: getattr(u, f) for f in u.__dataclass_fields__ if f != "row"}  # type: ignore[attr-defined]
    kw["id"] = new_id
    return Unit(**kw)


def _sequence_to_phase(z1: complex, z0: complex) -> np.ndarray:
    zs, zm = (z0 + 2 * z1) / 3, (z0 - z1) / 3
    return np.full((3, 3), zm) + np.eye(3) * (zs - zm)


def from_pandapower_lv_asymmetric(net: Any, name: str, *, s_base_kva: float = 1000.0, feeder_id: str = "LV1",
                                  power_unit: str = "kW", include_trafo: bool = True) -> Case:
    """A three-phase unbalanced :class:`Feeder` case from a pandapower LV network.

    Made for ``pandapower.networks.ieee_european_lv_asymmetric()``. Per unit:
    ``s_base_kva`` per phase and the phase-neutral voltage of the LV buses. Line
    impedances: 3x3 phase frame from the positive- and zero-sequence data
    (``r/x_ohm_per_km``, ``r0/x0_ohm_per_km``), neutral Kron-reduced as in
    the sequence model. With ``include_trafo`` the head is the ext_grid (MV) node,
    at ``vm_pu`` referred through the transformer ratio, and the transformer is a
    line (id = its name) with its impedance on the LV side (``vk0``/``vkr0`` for the
    zero sequence; the LV winding must be grounded, e.g. ``Dyn``); otherwise the
    head is the transformer's LV bus (ideal transformer). The ext_grid's own
    short-circuit impedance is neglected (stiff source). ``s_max`` per phase from
    ``max_i_ka``. Asymmetric wye loads become one Load per loaded phase
    (``<name>`` if one phase is loaded, ``<name>_<phase>`` otherwise; a load equal on
    all three phases stays one three-phase Load), with ``p_max`` = p and
    ``tan_phi`` = q/p, in ``power_unit`` (kW by default). Node voltage limits
    from ``min_vm_pu``/``max_vm_pu`` if the network has them, else 0.9-1.1 pu
    (EN 50160; the base case of ``ieee_european_lv_asymmetric`` reaches 1.068 pu
    on phase c with the source at 1.05 pu).
    """
    if power_unit not in ("MW", "kW"):
        raise CaseError(f"power_unit must be 'MW' or 'kW', got {power_unit!r}", column="power_unit")
    scale = 1000.0 if power_unit == "kW" else 1.0
    _unsupported(net, ("trafo3w", "impedance", "dcline", "xward", "ward"))
    ext_bus, vm = _head_of(net)
    bus_df = _active(net, "bus")
    vn = bus_df["vn_kv"].astype(float)
    trafo_df = _active(net, "trafo")
    if len(trafo_df) > 1:
        raise CaseError("at most one transformer (the substation) is supported", file="trafo",
                        row=int(trafo_df.index[1]))
    sb_mva = s_base_kva / 1000.0
    uf = _UnionFind(bus_df.index)
    edges = []
    imp: dict[tuple[str, Any], tuple[np.ndarray, np.ndarray, float]] = {}
    head_bus, v_head = ext_bus, vm
    if len(trafo_df):
        tr = trafo_df.iloc[0]
        ti = trafo_df.index[0]
        if tr["hv_bus"] != ext_bus:
            raise CaseError("the transformer's hv_bus must be the ext_grid bus", file="trafo", row=ti, column="hv_bus")
        lv = tr["lv_bus"]
        pos, neutral = _f(tr.get("tap_pos"), 0.0), _f(tr.get("tap_neutral"), 0.0)
        tap = 1.0 + (pos - neutral) * _f(tr.get("tap_step_percent"), 0.0) / 100.0
        tap = 1.0 / tap if str(tr.get("tap_side", "hv")) != "lv" else tap
        v_head = vm * vn[ext_bus] / _f(tr["vn_hv_kv"]) * _f(tr["vn_lv_kv"]) / vn[lv] * tap
        vg = str(tr.get("vector_group", "Dyn") or "Dyn")
        lv_group = vg[1:] if vg[:1] in "DYZ" and not vg.startswith("YN") else vg[2:]
        if include_trafo:
            if "n" not in lv_group.lower():
                raise CaseError(f"vector group {vg!r}: the LV winding must be grounded (e.g. Dyn) for a four-wire "
                                "feeder", file="trafo", row=ti, column="vector_group")
            zb_lv = (vn[lv] / SQRT3) ** 2 / sb_mva
            zt_ohm = _f(tr["vn_lv_kv"]) ** 2 / _f(tr["sn_mva"])
            par = _f(tr.get("parallel"), 1.0)

            def _z(vk: float, vkr: float) -> complex:
                z, r = vk / 100 * zt_ohm, vkr / 100 * zt_ohm
                return complex(r, math.sqrt(max(z * z - r * r, 0.0))) / par

            z1 = _z(_f(tr["vk_percent"]), _f(tr["vkr_percent"]))
            z0 = _z(_col(trafo_df, ti, "vk0_percent", _f(tr["vk_percent"])),
                    _col(trafo_df, ti, "vkr0_percent", _f(tr["vkr_percent"])))
            mag0 = _col(trafo_df, ti, "mag0_percent")
            si0 = _col(trafo_df, ti, "si0_hv_partial")
            if vg.lower() == "dyn" and math.isfinite(mag0) and math.isfinite(si0):
                # pandapower's zero-sequence T model: leakage split si0 (HV) / 1 - si0 (LV)
                # around the magnetising branch z_m = |z0| mag0/100 (r/x = mag0_rx); the
                # delta shorts the HV side, so the LV side sees z_lv + (z_hv || z_m).
                rx = _col(trafo_df, ti, "mag0_rx", 0.0)
                xm = abs(z0) * mag0 / 100.0 / math.sqrt(rx * rx + 1.0)
                zm = complex(xm * rx, xm)
                z_hv, z_lv = si0 * z0, (1.0 - si0) * z0
                z0 = z_lv + z_hv * zm / (z_hv + zm)
            zp = _sequence_to_phase(z1, z0) / zb_lv
            imax_ph = _f(tr["sn_mva"]) * par / 3 / sb_mva
            imp[("trafo", ti)] = (zp.real, zp.imag, imax_ph)
            edges.append(("trafo", ti, ext_bus, lv, False))
        else:
            head_bus = lv
    open_lines = _merge_switches(net, uf, head=head_bus)
    for i, r in _active(net, "line").iterrows():
        if i in open_lines or r["from_bus"] not in uf.parent or r["to_bus"] not in uf.parent:
            continue
        for c in ("r0_ohm_per_km", "x0_ohm_per_km"):
            if c not in r.index or not math.isfinite(_f(r[c])):
                raise CaseError("zero-sequence data are needed for the phase-frame impedance", file="line", row=i,
                                column=c)
        par, length = _f(r.get("parallel"), 1.0), _f(r["length_km"])
        z1 = complex(_f(r["r_ohm_per_km"]), _f(r["x_ohm_per_km"])) * length / par
        z0 = complex(_f(r["r0_ohm_per_km"]), _f(r["x0_ohm_per_km"])) * length / par
        zb = (vn[r["from_bus"]] / SQRT3) ** 2 / sb_mva
        zp = _sequence_to_phase(z1, z0) / zb
        imax = _f(r.get("max_i_ka"))
        smax = (math.inf if not math.isfinite(imax) or imax >= UNLIMITED_KA
                else imax * vn[r["from_bus"]] / SQRT3 * par * _f(r.get("df"), 1.0) / sb_mva)
        imp[("line", i)] = (zp.real, zp.imag, smax)
        edges.append(("line", i, r["from_bus"], r["to_bus"], z1 == 0 and z0 == 0))
    if head_bus not in uf.parent:
        raise CaseError("the head bus is out of service", file="bus", row=head_bus)
    parent, oriented = _feeder_tree(net, head_bus, edges, uf)
    names = _bus_ids(net)
    nid = {i: names[uf.find(i)] for i in bus_df.index if uf.find(i) in parent}
    if ext_bus not in nid:  # ideal transformer: the ext_grid sits at the LV head
        nid[ext_bus] = names[uf.find(head_bus)]
    nodes = []
    for b, p in parent.items():
        with _located("bus", b, {"v_min_pu": "min_vm_pu", "v_max_pu": "max_vm_pu"}):
            nodes.append(FeederNode(names[b], "abc", None if p is None else names[p],
                                    _col(bus_df, b, "min_vm_pu", 0.9), _col(bus_df, b, "max_vm_pu", 1.1)))
    lines_df = _active(net, "line")
    lid = _names(lines_df, "L")
    tid = _names(trafo_df, "T")
    if set(lid.values()) & set(tid.values()):
        lid = {i: f"L{i}" for i in lines_df.index}
        tid = {i: f"T{i}" for i in trafo_df.index}
    flines = []
    for t, i, a, b in oriented:
        rm, xm, smax = imp[(t, i)]
        with _located(t, i, {"r_aa_pu": "r_ohm_per_km", "x_aa_pu": "x_ohm_per_km", "s_max_pu": "max_i_ka"}):
            flines.append(FeederLine((lid if t == "line" else tid)[i], names[a], names[b], "abc", rm, xm, s_max=smax,
                                     length_km=_f(lines_df.at[i, "length_km"]) if t == "line" else math.nan,
                                     linecode=(str(lines_df.at[i, "std_type"]) if t == "line"
                                               and "std_type" in lines_df.columns
                                               and isinstance(lines_df.at[i, "std_type"], str) else None)))
    lv_bus = trafo_df["lv_bus"].iloc[0] if len(trafo_df) else head_bus
    feeder = Feeder(feeder_id, nodes, flines, n_phases=3, v_head=v_head, s_base_kva=s_base_kva,
                    v_base_kv=float(vn[lv_bus]) / SQRT3)
    loads = _pp_loads(net, nid, feeder_id, "abc", "LA", scale=scale)
    loads += _asym_loads(net, nid, feeder_id, scale)
    units, c2 = _pp_units(net, nid, feeder_id, "abc", "DERM", scale=scale, ext_grid_pmax=None,
                          ext_grid_kind="main_grid", ext_grid_owner="MG")
    units = [_rename(u, "MG") if u.kind == "main_grid" else u for u in units]
    owners = [Owner("DSO", "dso", 1), Owner("LA", "load_aggregator", 1), Owner("DERM", "der_manager", 1),
              Owner("MG", "main_grid")]
    params: dict[str, Any] = {"horizon": 1, "source": "pandapower",
                              "energy_price_unit": f"$/{'MWh' if power_unit == 'MW' else 'kWh'}"}
    if c2:
        params["cost_c2"] = c2
    return Case(name, feeders=[feeder], owners=owners, units=units, loads=loads, parameters=params,
                power_unit=power_unit,
                description=f"{name}: three-phase unbalanced LV feeder imported from pandapower")


def _asym_loads(net: Any, nid: Mapping[Any, str], feeder_id: str, scale: float) -> list[Load]:
    df = _active(net, "asymmetric_load")
    out: list[Load] = []
    ids = _names(df, "asymmetric_load")
    for i, r in df.iterrows():
        if r["bus"] not in nid:
            raise CaseError(f"load at bus {r['bus']}, which is out of service or not connected to the head",
                            file="asymmetric_load", row=i, column="bus")
        if str(r.get("type", "wye") or "wye") != "wye":
            raise CaseError(f"only wye-connected loads are supported, got {r.get('type')!r}", file="asymmetric_load",
                            row=i, column="type")
        sc = _f(r.get("scaling"), 1.0)
        pq = {ph: (_f(r[f"p_{ph}_mw"], 0.0) * sc * scale, _f(r[f"q_{ph}_mvar"], 0.0) * sc * scale) for ph in "abc"}
        for ph, (p, _) in pq.items():
            if p < 0:
                raise CaseError(f"negative load {p} is not supported", file="asymmetric_load", row=i,
                                column=f"p_{ph}_mw")
        loaded = [ph for ph in "abc" if pq[ph] != (0.0, 0.0)]
        if not loaded:
            continue
        base = ids[i]
        if len(loaded) == 3 and len({pq[ph] for ph in "abc"}) == 1:
            p, q = pq["a"]
            with _located("asymmetric_load", i, {"p_max": "p_a_mw"}):
                out.append(_load(base, "LA", feeder_id, nid[r["bus"]], "abc", 3 * p, 3 * q))
            continue
        for ph in loaded:
            p, q = pq[ph]
            with _located("asymmetric_load", i, {"p_max": f"p_{ph}_mw", "q_min": f"q_{ph}_mvar",
                                                 "q_max": f"q_{ph}_mvar"}):
                out.append(_load(base if len(loaded) == 1 else f"{base}_{ph}", "LA", feeder_id, nid[r["bus"]], ph, p, q))
    return out


# ----------------------------------------------------------------- named networks


PANDAPOWER_CASES = ("case24_ieee_rts", "case33bw", "ieee_european_lv_asymmetric")


@lru_cache(maxsize=None)
def _pandapower_network(name: str) -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pandapower.networks as pn

        fn = getattr(pn, name, None)
        if fn is None or name.startswith("_") or not callable(fn):
            raise CaseError(f"unknown pandapower network {name!r}")
        return fn()


def load_pandapower_network(name: str) -> Any:
    """A fresh copy of ``pandapower.networks.<name>()`` (the loaded network is cached)."""
    return copy.deepcopy(_pandapower_network(name))


@lru_cache(maxsize=None)
def import_pandapower_case(name: str) -> Case:
    """Import one of the pandapower example networks by name (see ``PANDAPOWER_CASES``).

    The result is cached (a :class:`Case` is immutable).
    """
    if name not in PANDAPOWER_CASES:
        raise CaseError(f"unknown pandapower case {name!r}; known: {', '.join(PANDAPOWER_CASES)}")
    net = _pandapower_network(name)  # the importers only read the network
    if name == "case24_ieee_rts":
        return from_pandapower_transmission(net, name)
    if name == "case33bw":
        return from_pandapower_feeder(net, name)
    return from_pandapower_lv_asymmetric(net, name)


# ------------------------------------------------------------------------ MATPOWER

BUS_COLS = ("BUS_I", "BUS_TYPE", "PD", "QD", "GS", "BS", "BUS_AREA", "VM", "VA", "BASE_KV", "ZONE", "VMAX", "VMIN")
GEN_COLS = ("GEN_BUS", "PG", "QG", "QMAX", "QMIN", "VG", "MBASE", "GEN_STATUS", "PMAX", "PMIN")
BRANCH_COLS = ("F_BUS", "T_BUS", "BR_R", "BR_X", "BR_B", "RATE_A", "RATE_B", "RATE_C", "TAP", "SHIFT", "BR_STATUS")
GENCOST_COLS = ("MODEL", "STARTUP", "SHUTDOWN", "NCOST")

_NUM = re.compile(r"^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf|inf|NaN|nan)$")


def _strip_comments(text: str) -> str:
    out = []
    for line in text.splitlines():
        in_str = False
        cut = len(line)
        for k, ch in enumerate(line):
            if ch == "'":
                in_str = not in_str
            elif ch == "%" and not in_str:
                cut = k
                break
        out.append(line[:cut])
    return "\n".join(out)


def parse_matpower(text: str, *, file: str = "case.m") -> dict[str, Any]:
    """Parse the numeric parts of a MATPOWER case: ``{"baseMVA": float, "bus": array, ...}``.

    Reads ``mpc.<field> = <number>;`` and ``mpc.<field> = [ ... ];`` (rows separated
    by ``;`` or new lines, entries by spaces, tabs or commas); cell arrays and
    anything else are skipped.
    """
    body = _strip_comments(text)
    out: dict[str, Any] = {}
    for m in re.finditer(r"mpc\.(\w+)\s*=\s*([^;\[{]+);", body):
        try:
            out[m.group(1)] = float(m.group(2).strip().strip("'"))
        except ValueError:
            out[m.group(1)] = m.group(2).strip().strip("'")
    for m in re.finditer(r"mpc\.(\w+)\s*=\s*\[(.*?)\]\s*;", body, flags=re.S):
        key = m.group(1)
        rows = []
        for k, raw in enumerate(re.split(r"[;\n]", m.group(2))):
            toks = [t for t in re.split(r"[\s,]+", raw.strip()) if t]
            if not toks:
                continue
            bad = [t for t in toks if not _NUM.match(t)]
            if bad:
                raise CaseError(f"not a number: {bad[0]!r}", file=f"{file}:mpc.{key}", row=len(rows) + 1)
            rows.append([float(t) for t in toks])
        if rows:
            width = max(len(r) for r in rows)
            for k, r in enumerate(rows, start=1):
                if len(r) != width and key != "gencost":
                    raise CaseError(f"has {len(r)} columns, the first row has {len(rows[0])}",
                                    file=f"{file}:mpc.{key}", row=k)
            arr = np.full((len(rows), width), np.nan)
            for k, r in enumerate(rows):
                arr[k, :len(r)] = r
            out[key] = arr
        else:
            out[key] = np.zeros((0, 0))
    return out


def _mp_bus_id(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def read_matpower(path: str | os.PathLike[str], name: str | None = None) -> Case:
    """Read a MATPOWER ``.m`` case into a transmission :class:`Case` (DC lines, MW).

    - Buses: id = ``BUS_I``; ``VMIN``/``VMAX``; area 0 (transmission; the MATPOWER
      area is not kept); isolated buses (type 4) are dropped. The reference bus is
      the first of type 3.
    - Branches in service: ``DCLine`` ``L<row>`` with ``x = BR_X * TAP`` (TAP 0 means
      1), as MATPOWER's DC model ``b = 1/(x tap)``; rating ``RATE_A`` (0 = no
      limit); ``BR_R`` kept; ``SHIFT`` is ignored (noted in the description).
    - Generators in service: Units ``G<row>`` (kind ``thermal``, owner ``GENCO``)
      with ``PMIN..PMAX``, ``QMIN..QMAX``; ``cost`` = the linear coefficient of a
      polynomial ``gencost`` (model 2), or the first segment's slope of a
      piecewise-linear one (model 1); non-zero quadratic coefficients go to the
      parameter ``cost_c2`` as ``{unit_id: c2}``.
    - Loads: ``D<bus>`` for each bus with ``PD`` or ``QD`` non-zero (owner
      ``RETAIL``, ``tan_phi`` = QD/PD). Bus shunts ``GS``/``BS`` are ignored.
    """
    path = Path(path)
    if not path.exists():
        raise CaseError("file is missing", file=str(path))
    fname = path.name
    mpc = parse_matpower(path.read_text(encoding="utf-8"), file=fname)
    name = name or path.stem
    for key, cols in (("bus", BUS_COLS), ("gen", GEN_COLS), ("branch", BRANCH_COLS)):
        if key not in mpc:
            raise CaseError(f"matrix mpc.{key} is missing", file=fname)
        if mpc[key].ndim != 2 or mpc[key].shape[1] < len(cols):
            raise CaseError(f"mpc.{key} needs at least {len(cols)} columns ({', '.join(cols)})",
                            file=f"{fname}:mpc.{key}", column=cols[min(mpc[key].shape[1], len(cols) - 1)])
    base = mpc.get("baseMVA")
    if not isinstance(base, float) or not (base > 0):
        raise CaseError(f"baseMVA must be a positive number, got {base!r}", file=fname, column="baseMVA")
    bus, gen, branch = mpc["bus"], mpc["gen"], mpc["branch"]
    tb, tg, tl, tc = (f"{fname}:mpc.{k}" for k in ("bus", "gen", "branch", "gencost"))
    B = {c: k for k, c in enumerate(BUS_COLS)}
    G = {c: k for k, c in enumerate(GEN_COLS)}
    L = {c: k for k, c in enumerate(BRANCH_COLS)}
    buses, loads, live = [], [], set()
    ref = None
    for k, r in enumerate(bus, start=1):
        for c in ("BUS_I", "BUS_TYPE", "PD", "QD"):
            if not math.isfinite(r[B[c]]):
                raise CaseError("value must be a finite number", file=tb, row=k, column=c)
        bid = _mp_bus_id(r[B["BUS_I"]])
        btype = int(r[B["BUS_TYPE"]])
        if btype not in (1, 2, 3, 4):
            raise CaseError(f"bus type must be 1, 2, 3 or 4, got {btype}", file=tb, row=k, column="BUS_TYPE")
        if btype == 4:
            continue
        if btype == 3 and ref is None:
            ref = bid
        live.add(bid)
        with _located(tb, k, {"v_min_pu": "VMIN", "v_max_pu": "VMAX", "bus": "BUS_I"}):
            buses.append(Bus(bid, 0, float(r[B["VMIN"]]), float(r[B["VMAX"]]), row=k))
        pd_, qd = float(r[B["PD"]]), float(r[B["QD"]])
        if pd_ < 0:
            raise CaseError(f"negative demand {pd_} is not supported", file=tb, row=k, column="PD")
        if pd_ or qd:
            with _located(tb, k, {"p_max": "PD", "q_min": "QD", "q_max": "QD"}):
                loads.append(_load(f"D{bid}", "RETAIL", TRANSMISSION, bid, "abc", pd_, qd))
    if ref is None:
        raise CaseError("no reference bus (BUS_TYPE 3)", file=tb, column="BUS_TYPE")
    with _located(tb, None, {"bus": "BUS_I"}):
        _check_unique([b.id for b in buses], tb, "BUS_I")
    lines, shifted = [], 0
    for k, r in enumerate(branch, start=1):
        if r[L["BR_STATUS"]] == 0:
            continue
        f, t = _mp_bus_id(r[L["F_BUS"]]), _mp_bus_id(r[L["T_BUS"]])
        for c, b in (("F_BUS", f), ("T_BUS", t)):
            if b not in live:
                raise CaseError(f"unknown or isolated bus {b}", file=tl, row=k, column=c)
        tap = float(r[L["TAP"]]) or 1.0
        rate = float(r[L["RATE_A"]])
        shifted += int(float(r[L["SHIFT"]]) != 0.0)
        with _located(tl, k, {"x_pu": "BR_X", "r_pu": "BR_R", "s_max": "RATE_A", "to_bus": "T_BUS"}):
            lines.append(DCLine(f"L{k}", f, t, float(r[L["BR_X"]]) * tap, math.inf if rate == 0 else rate,
                                r=float(r[L["BR_R"]]), row=k))
    with _located(tl, None):
        grid = TransmissionGrid(buses, lines, base_mva=base, ref_bus=ref, name=name)
    gencost = mpc.get("gencost")
    units, c2 = [], {}
    for k, r in enumerate(gen, start=1):
        if r[G["GEN_STATUS"]] <= 0:
            continue
        b = _mp_bus_id(r[G["GEN_BUS"]])
        if b not in live:
            raise CaseError(f"unknown or isolated bus {b}", file=tg, row=k, column="GEN_BUS")
        c1, c2k = _mp_cost(gencost, k, tc)
        uid = f"G{k}"
        with _located(tg, k, {"p_min": "PMIN", "p_max": "PMAX", "q_min": "QMIN", "q_max": "QMAX"}):
            units.append(Unit(uid, "thermal", "GENCO", TRANSMISSION, b, "abc", p_min=float(r[G["PMIN"]]),
                              p_max=float(r[G["PMAX"]]), q_min=float(r[G["QMIN"]]), q_max=float(r[G["QMAX"]]),
                              cost=c1, row=k))
        if c2k:
            c2[uid] = c2k
    owners = [Owner("TSO", "tso", 0), Owner("GENCO", "der_manager", 0), Owner("RETAIL", "load_aggregator", 0)]
    params: dict[str, Any] = {"horizon": 1, "source": "matpower", "energy_price_unit": "$/MWh"}
    if c2:
        params["cost_c2"] = c2
    desc = f"{name}: transmission grid read from the MATPOWER file {fname} (DC lines)"
    if shifted:
        desc += f"; {shifted} phase shift(s) ignored"
    return Case(name, transmission=grid, owners=owners, units=units, loads=loads, parameters=params,
                power_unit="MW", description=desc)


def _check_unique(ids: list[str], file: str, column: str) -> None:
    seen: dict[str, int] = {}
    for k, x in enumerate(ids, start=1):
        if x in seen:
            raise CaseError(f"duplicate bus number {x} (first in row {seen[x]})", file=file, row=k, column=column)
        seen[x] = k


def _mp_cost(gencost: np.ndarray | None, k: int, file: str) -> tuple[float, float]:
    """(linear, quadratic) cost of generator row ``k`` (1-based); NaN if there is no gencost."""
    if gencost is None or gencost.size == 0:
        return math.nan, 0.0
    if k > gencost.shape[0]:
        raise CaseError(f"mpc.gencost has {gencost.shape[0]} rows, fewer than the generators", file=file, row=k)
    r = gencost[k - 1]
    model, n = int(r[0]), int(r[3]) if gencost.shape[1] > 3 else 0
    coeffs = r[4:4 + (2 * n if model == 1 else n)]
    if len(coeffs) < (2 * n if model == 1 else n) or not np.all(np.isfinite(coeffs)):
        raise CaseError(f"expected {2 * n if model == 1 else n} cost values after NCOST", file=file, row=k,
                        column="COST")
    if model == 2:
        c1 = float(coeffs[-2]) if n >= 2 else 0.0
        c2 = float(coeffs[-3]) if n >= 3 else 0.0
        return c1, c2
    if model == 1:
        if n < 2:
            raise CaseError("a piecewise-linear cost needs at least two points", file=file, row=k, column="NCOST")
        p0, f0, p1, f1 = coeffs[:4]
        if p1 == p0:
            raise CaseError("the first two cost points have the same power", file=file, row=k, column="COST")
        return float((f1 - f0) / (p1 - p0)), 0.0
    raise CaseError(f"cost model must be 1 or 2, got {model}", file=file, row=k, column="MODEL")
