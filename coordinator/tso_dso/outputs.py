"""The real-time dispatch of an evaluation as tables (the analyst's reads, after the run; nothing here is used by
the protocol's decisions).

After :meth:`TSODSOProtocol.evaluate` the analyst reads the TSO's record of the evaluation (its
transmission re-dispatch at the final round) and each DSO's last solution (its feeder at the
same round's exchanges), and :func:`realtime_tables` turns them into one frame per kind. Every
row carries ``scheme``, ``set`` (``in_sample`` / ``out_of_sample``) and ``scenario``; the run
folder adds ``level`` and ``factor``.

Units and signs (see the README's table per file): powers in MW and Mvar (the case's 1 MVA
base: per-unit power = MW), voltages in pu, money in $ per scenario; a unit's output and a
demand's consumption are positive; ``up`` is more output or less consumption; feeder line
flows are measured at the from-node (parent side) and are positive towards the child, the
PCC exchange is positive into the feeder; transmission flows are positive from ``from_bus``
to ``to_bus``.

- ``rt_resources``: every generator, demand and wind farm (transmission- and
  distribution-connected): day-ahead quantity, real-time P (and Q in a feeder; the DC
  transmission model has none), up/down regulation, wind available and spilled, and the
  real-time cost ``cost_up * up + cost_down * down`` ($).
- ``rt_shedding``: active and reactive shedding per bus / feeder node (MW, Mvar; priced at
  VOLL); reactive shedding exists in the feeders only.
- ``rt_voltages``: feeder node voltage magnitudes (pu); the PCC terminal (feeder head) is the
  transmission bus's voltage as seen from the feeder.
- ``rt_feeder_lines``: feeder line flows at both ends (P, Q), the squared current ``l`` (pu on the
  feeder's base: ``l v = P^2 + Q^2`` when the SOCP relaxation is exact), the rating and the
  relaxation gap ``l v_from - P^2 - Q^2`` absolute (MW^2) and relative to the rating squared.
- ``rt_pcc``: per area, the exchange the TSO scheduled, the power that entered the feeder,
  the reactive exchange and the DSO's slack (0 at a solution).
- ``rt_transmission``: transmission line flows (DC, MW) and ratings.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from agents.tso_dso.participants import DEM

__all__ = ["realtime_tables", "TABLES", "recompute_rt_cost"]

#: the tables of :func:`realtime_tables`, in the order they are written
TABLES = ("rt_resources", "rt_shedding", "rt_voltages", "rt_feeder_lines", "rt_pcc", "rt_transmission")


def _long(values: np.ndarray, ids: Sequence[str], name: str, S: int) -> dict[str, Any]:
    """Columns ``scenario`` and ``name`` of an ``(n, S)`` array, row-major by id."""
    n = len(ids)
    return {"scenario": np.tile(np.arange(S), n), name: np.asarray(values, dtype=float).reshape(n, S).reshape(-1)}


def _resources(grid: str, ids: Sequence[str], kinds: Sequence[str], nodes: Sequence[str], x: np.ndarray,
               p: np.ndarray, q: np.ndarray | None, up: np.ndarray, down: np.ndarray, avail: np.ndarray,
               cost_up: np.ndarray, cost_down: np.ndarray, S: int) -> pd.DataFrame:
    n = len(ids)
    rep = lambda a: np.repeat(np.asarray(a), S)  # noqa: E731
    flat = lambda a: np.asarray(a, dtype=float).reshape(n, S).reshape(-1)  # noqa: E731
    is_wind = np.array([k == "wind" for k in kinds])
    spilled = np.where(is_wind[:, None], np.maximum(np.asarray(avail) - np.asarray(p), 0.0), np.nan)
    cost = cost_up[:, None] * up + cost_down[:, None] * down
    return pd.DataFrame({"grid": grid, "resource": rep(ids), "kind": rep(kinds), "node": rep(nodes),
                         "scenario": np.tile(np.arange(S), n), "da_mw": rep(x), "p_mw": flat(p),
                         "q_mvar": flat(q) if q is not None else np.nan, "up_mw": flat(up), "down_mw": flat(down),
                         "available_mw": flat(avail), "spilled_mw": flat(spilled), "cost_usd": flat(cost)})


def realtime_tables(ev: Mapping[str, Any], solutions: Mapping[str, Mapping[str, Any] | None],
                    areas: Mapping[str, int], scheme: str, sset: str) -> dict[str, pd.DataFrame]:
    """The tables of one evaluation: ``ev`` the TSO's record (``TSO.close_evaluation``), ``solutions`` each DSO's
    last solution (``AreaDSO._solution``) by DSO id, ``areas`` DSO id -> area number."""
    S = int(np.asarray(ev["U"]).size)
    out: dict[str, list[pd.DataFrame]] = {k: [] for k in TABLES}
    # transmission side
    out["rt_resources"].append(_resources("T", ev["resources"], ev["kinds"], ev["buses"], ev["x_T"], ev["dispatch"],
                                          None, ev["up"], ev["down"], ev["available"], ev["cost_up"],
                                          ev["cost_down"], S))
    sb = ev.get("shed_buses") or []
    if sb:
        out["rt_shedding"].append(pd.DataFrame({"grid": "T", "node": np.repeat(sb, S),
                                                **_long(ev["shed_bus"], sb, "p_shed_mw", S), "q_shed_mvar": np.nan}))
    lids = ev["line_ids"]
    ends = ev["line_ends"]
    out["rt_transmission"].append(pd.DataFrame({
        "line": np.repeat(lids, S), "from_bus": np.repeat([a for a, _ in ends], S),
        "to_bus": np.repeat([b for _, b in ends], S), **_long(ev["flows"], lids, "p_mw", S),
        "rating_mw": np.repeat(ev["ratings"], S)}))
    # each feeder
    pcc = ev["pcc"]
    for e, (d, sol) in enumerate(solutions.items()):
        if sol is None:
            raise RuntimeError(f"{d} holds no solution of its last evaluation on {sset}")
        f = sol["feeder"]
        out["rt_resources"].append(_resources(f, sol["resources"], sol["kinds"], sol["nodes"], sol["x"], sol["p"],
                                              sol["q"], sol["up"], sol["down"], sol["available"], sol["cost_up"],
                                              sol["cost_down"], S))
        nodes = sol["node_ids"]
        out["rt_shedding"].append(pd.DataFrame({"grid": f, "node": np.repeat(nodes, S),
                                                **_long(sol["shed_p"], nodes, "p_shed_mw", S),
                                                "q_shed_mvar": np.asarray(sol["shed_q"]).reshape(-1)}))
        out["rt_voltages"].append(pd.DataFrame({"feeder": f, "node": np.repeat(nodes, S),
                                                **_long(sol["v"], nodes, "v_pu", S)}))
        lines = sol["line_ids"]
        P, Q, ell = (np.asarray(sol[k], dtype=float) for k in ("P", "Q", "l"))
        r, xl = np.asarray(sol["r"])[:, None], np.asarray(sol["x_line"])[:, None]
        out["rt_feeder_lines"].append(pd.DataFrame({
            "feeder": f, "line": np.repeat(lines, S), "from_node": np.repeat(sol["from"], S),
            "to_node": np.repeat(sol["to"], S), **_long(P, lines, "p_mw", S), "q_mvar": Q.reshape(-1),
            "l_pu": ell.reshape(-1), "p_to_mw": (P - r * ell).reshape(-1), "q_to_mvar": (Q - xl * ell).reshape(-1),
            "s_max_mva": np.repeat(sol["s_max"], S), "gap_mw2": np.asarray(sol["gap_abs"]).reshape(-1),
            "gap_rel_rating": np.asarray(sol["gap_rel"]).reshape(-1)}))
        pid, bus = pcc[d]
        out["rt_pcc"].append(pd.DataFrame({
            "area": areas[d], "feeder": f, "pcc": pid, "bus": bus, "scenario": np.arange(S),
            "p_mw": np.asarray(ev["p"])[e], "p_head_mw": sol["p_head"], "q_head_mvar": sol["q_head"],
            "slack_mw": sol["slack"], "v_head_pu": np.asarray(sol["v"])[0]}))
    return {k: pd.concat(v, ignore_index=True).assign(scheme=scheme, set=sset) if v else pd.DataFrame()
            for k, v in out.items()}


def recompute_rt_cost(resources: pd.DataFrame, shedding: pd.DataFrame, prices: Mapping[str, tuple[float, float, float]],
                      voll: float) -> pd.Series:
    """Each scenario's real-time cost ($) from the dispatch alone: ``sum over resources of (price_da + price_up) up
    + (price_down - price_da) down`` with ``up``/``down`` the deviations of ``p_mw`` from ``da_mw`` (more output
    or less consumption is up), plus ``voll`` times the shedding (MW and Mvar). ``prices[id] = (price_da, price_up,
    price_down)``, the offers. A check of the written tables against the reported costs (tests)."""
    r = resources
    sign = np.where(r["kind"] == DEM, -1.0, 1.0)
    dev = sign * (r["p_mw"].to_numpy() - r["da_mw"].to_numpy())
    pr = np.array([prices[k] for k in r["resource"]])
    cost = (pr[:, 0] + pr[:, 1]) * np.maximum(dev, 0.0) + (pr[:, 2] - pr[:, 0]) * np.maximum(-dev, 0.0)
    keys = ["scheme", "set", "scenario"]
    by = pd.DataFrame({**{k: r[k] for k in keys}, "cost": cost}).groupby(keys)["cost"].sum()
    shed = shedding.assign(c=voll * (shedding["p_shed_mw"].fillna(0.0) + shedding["q_shed_mvar"].fillna(0.0)))
    return by.add(shed.groupby(keys)["c"].sum(), fill_value=0.0)
