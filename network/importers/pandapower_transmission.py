"""A pandapower network as a transmission :class:`~network.model.Case` (DC lines, MW).

One job: ``from_pandapower_transmission``. In-service buses, lines and
two-winding transformers become a :class:`TransmissionGrid` of DC lines: ``x`` in
pu on ``net.sn_mva``; a transformer's ``x`` is its short-circuit reactance
referred to the bus voltages times its off-nominal ratio (as in pandapower's and
MATPOWER's DC models, ``b = 1 / (x * ratio)``); phase shifts are ignored, and so is the
magnetizing branch (a shunt: the pi model, ``pandapower.rundcpp(net, trafo_model="pi")``; with
pandapower's default T model it changes the series reactance slightly). A negative line reactance
(a series capacitor, as in ``case300``) is kept (see :class:`~network.model.DCLine`).
Ratings in MVA: ``sqrt(3) * max_i_ka * vn_kv * parallel * df`` for lines and
``sn_mva * parallel * df`` for transformers, scaled by ``max_loading_percent``
when given. Generators (``gen``, ``sgen``, ``ext_grid``) become Units of owner
``GENCO``, loads become Loads of owner ``RETAIL``; costs come from ``poly_cost``
(the linear coefficient; non-zero quadratic coefficients go to the case
parameter ``cost_c2`` as ``{unit_id: c2}``). Powers in MW.
"""
from __future__ import annotations

import math
from typing import Any

from ..errors import CaseError
from ..model import TRANSMISSION, Bus, Case, DCLine, TransmissionGrid
from .common import _located, _transmission_case
from .pandapower_tables import (SQRT3, UNLIMITED_KA, _active, _branch_ids, _bus_ids, _col, _f, _merge_switches,
                                _pp_loads, _pp_units, _UnionFind, _unsupported)


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
    lid, tid = _branch_ids(lines_df, trafo_df)
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
    return _transmission_case(name, grid, units, loads, c2, source="pandapower",
                              description=f"{name}: transmission grid imported from pandapower (DC lines)")
