"""pandapower distribution feeders as feeder :class:`~network.model.Case` s.

One job: radial feeders from pandapower, with the lines oriented away from the
head (the ext_grid bus) and zero-impedance lines and closed bus-bus switches
collapsed.

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

Per-unit of single-phase-equivalent feeders: ``s_base_kva`` is the three-phase
base and ``v_base_kv`` the line-to-line voltage, so ``z_base = v_base_kv^2 /
(s_base_kva / 1000)`` (the same as phase-neutral voltage over per-phase power).
Three-phase feeders use a per-phase ``s_base_kva`` and a phase-neutral
``v_base_kv``, as the built-in ``tes_feeder``.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import CaseError
from ..model import Case, Feeder, FeederLine, FeederNode, Load, Owner, Unit
from .common import _load, _located, _parameters
from .pandapower_tables import (SQRT3, UNLIMITED_KA, _active, _branch_ids, _bus_ids, _col, _f, _merge_switches, _names,
                                _pp_loads, _pp_units, _UnionFind, _unsupported)


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


def _power_scale(power_unit: str) -> float:
    """Powers in ``power_unit`` (``"MW"`` or ``"kW"``) per MW."""
    if power_unit not in ("MW", "kW"):
        raise CaseError(f"power_unit must be 'MW' or 'kW', got {power_unit!r}", column="power_unit")
    return 1000.0 if power_unit == "kW" else 1.0


def _feeder_nodes(parent: Mapping[Any, Any], names: Mapping[Any, str], bus_df: pd.DataFrame, phases: str,
                  v_min: float, v_max: float) -> list[FeederNode]:
    """One node per bus of the tree ``parent`` (bus -> parent bus, head -> None), on ``phases``;
    voltage limits from ``min_vm_pu``/``max_vm_pu``, else ``v_min``/``v_max``."""
    nodes = []
    for b, p in parent.items():
        with _located("bus", b, {"v_min_pu": "min_vm_pu", "v_max_pu": "max_vm_pu"}):
            nodes.append(FeederNode(names[b], phases, None if p is None else names[p],
                                    _col(bus_df, b, "min_vm_pu", v_min), _col(bus_df, b, "max_vm_pu", v_max)))
    return nodes


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
    scale = _power_scale(power_unit)
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
    nodes = _feeder_nodes(parent, names, bus_df, "a", 0.95, 1.05)
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
    return _feeder_case(net, name, feeder, nid, loads, scale=scale, power_unit=power_unit,
                        description=f"{name}: single-phase radial feeder imported from pandapower")


FEEDER_OWNERS = (Owner("DSO", "dso", 1), Owner("LA", "load_aggregator", 1), Owner("DERM", "der_manager", 1),
                 Owner("MG", "main_grid"))


def _feeder_case(net: Any, name: str, feeder: Feeder, nid: Mapping[Any, str], loads: list[Load], *, scale: float,
                 power_unit: str, description: str) -> Case:
    """The case of one imported feeder: ``loads`` (of ``LA``), the generators as Units of
    ``DERM`` and the ext_grid, if its ``max_p_mw`` is finite, as the ``main_grid`` Unit ``MG``
    of owner ``MG``; the feeder operated by ``DSO``."""
    units, c2 = _pp_units(net, nid, feeder.id, feeder.phase_frame, "DERM", scale=scale, ext_grid_pmax=None,
                          ext_grid_kind="main_grid", ext_grid_owner="MG")
    units = [_rename(u, "MG") if u.kind == "main_grid" else u for u in units]
    return Case(name, feeders=[feeder], owners=FEEDER_OWNERS, units=units, loads=loads,
                parameters=_parameters("pandapower", power_unit, c2), power_unit=power_unit, description=description)


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
    scale = _power_scale(power_unit)
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
    nodes = _feeder_nodes(parent, names, bus_df, "abc", 0.9, 1.1)
    lines_df = _active(net, "line")
    lid, tid = _branch_ids(lines_df, trafo_df)
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
    return _feeder_case(net, name, feeder, nid, loads, scale=scale, power_unit=power_unit,
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
