"""Reading pandapower tables, shared by the pandapower importers.

One job: turn pandapower's element tables into what the importers build from --
in-service rows (:func:`_active`), numbers with defaults (:func:`_f`,
:func:`_col`), element ids from names (:func:`_names`, :func:`_bus_ids`,
:func:`_branch_ids`), buses
merged by closed bus-bus switches and lines opened by switches
(:class:`_UnionFind`, :func:`_merge_switches`), cost coefficients from
``poly_cost``/``pwl_cost`` (:func:`_cost_table`), and the :class:`Load` and
:class:`Unit` records of the ``load``, ``ext_grid``, ``gen`` and ``sgen`` tables
(:func:`_pp_loads`, :func:`_pp_units`). pandapower itself is not imported: a
network is any object with pandapower's DataFrame attributes.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd

from ..errors import CaseError
from ..model import Load, Unit
from .common import _load, _located

SQRT3 = math.sqrt(3.0)
UNLIMITED_KA = 9999.0  # pandapower writes 99999 kA for "no limit" (MATPOWER rate 0)


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


def _branch_ids(lines: pd.DataFrame, trafos: pd.DataFrame) -> tuple[dict[Any, str], dict[Any, str]]:
    """Line and transformer ids (:func:`_names` with ``L``/``T``); ``L<index>`` and
    ``T<index>`` for all of them if a name is used by a line and a transformer."""
    lid = _names(lines, "L")
    tid = _names(trafos, "T")
    if set(lid.values()) & set(tid.values()):
        lid = {i: f"L{i}" for i in lines.index}
        tid = {i: f"T{i}" for i in trafos.index}
    return lid, tid


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
