"""The result tables of a tso-dso level (Parquet in the run folder) and the console summary.

Units: money in $, powers in MW (the case's power unit), welfare = day-ahead welfare minus
the real-time cost of the scenario (positive = good); the relaxation gap of the branch-flow
SOCP per feeder and scenario in MW^2 (absolute) and relative to the line's rating squared.
The real-time dispatch tables (``rt_*``) are described in ``coordinator/tso_dso/outputs.py``
and, with a table per file, in the README.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from coordinator.tso_dso.outputs import TABLES as RT_TABLES

from .wind import WindScenarios


def level_tables(level: Any, wind: WindScenarios, level_index: int = 0) -> dict[str, pd.DataFrame]:
    """The Parquet tables of one level."""
    tag = {"level": level_index, "factor": level.factor}
    summ = level.summary().assign(level=level_index)
    iters, scen, disp, relax, exch, cong = [], [], [], [], [], []
    rt: dict[str, list[pd.DataFrame]] = {k: [] for k in RT_TABLES}
    for s, r in level.schemes.items():
        iters.append(r.iterations.assign(scheme=s, **tag))
        mk = r.market
        disp.append(pd.DataFrame({"resource": mk.ids, "kind": mk.kind, "area": mk.area, "capped": mk.capped,
                                  "price_da_offer": mk.price, "p_max": mk.qty, "da_quantity": r.x,
                                  "cap": np.where(mk.capped, r.caps, np.nan), "da_price": r.price}).assign(
            scheme=s, **tag))
        for ev in (r.in_sample, r.out_of_sample):
            if ev is None:
                continue
            wmat = wind.in_sample if ev.scenario_set == "in_sample" else wind.out_of_sample
            scen.append(pd.DataFrame({"scenario": np.arange(ev.rt_cost.size), "rt_cost": ev.rt_cost,
                                      "lower": ev.lower, "welfare": ev.welfare,
                                      "wind_total": np.asarray(wmat).sum(axis=0),
                                      "congested_lines": ev.congestion["per_scenario"]}).assign(
                scheme=s, set=ev.scenario_set, da_welfare=ev.da_welfare, **tag))
            relax.append(ev.relaxation_gap.merge(ev.diagnostics, on=["feeder", "scenario"]).assign(
                scheme=s, set=ev.scenario_set, **tag))
            E, S = ev.pcc.shape
            exch.append(pd.DataFrame({"area": np.repeat(np.arange(1, E + 1), S), "scenario": np.tile(np.arange(S), E),
                                      "p_pcc": ev.pcc.reshape(-1)}).assign(scheme=s, set=ev.scenario_set, **tag))
            if ev.line_ids:
                cong.append(pd.DataFrame({"line": ev.line_ids, "rating_mw": ev.ratings,
                                          "probability": ev.congestion["per_line"]}).assign(
                    scheme=s, set=ev.scenario_set, margin_mw=level.congestion_margin, **tag))
            for k in RT_TABLES:
                if len(ev.tables.get(k, ())):
                    rt[k].append(ev.tables[k].assign(**tag))
    return {"welfare": summ, "iterations": pd.concat(iters, ignore_index=True),
            "scenarios": pd.concat(scen, ignore_index=True) if scen else pd.DataFrame(),
            "dispatch": pd.concat(disp, ignore_index=True), "relaxation": pd.concat(relax, ignore_index=True),
            "exchanges": pd.concat(exch, ignore_index=True) if exch else pd.DataFrame(),
            "congestion": pd.concat(cong, ignore_index=True) if cong else pd.DataFrame(),
            "messages": pd.DataFrame(level.messages).assign(**tag),
            "solves": (level.solves if level.solves is not None else pd.DataFrame()).assign(**tag),
            **{k: pd.concat(v, ignore_index=True) if v else pd.DataFrame() for k, v in rt.items()}}


def summary_table(df: pd.DataFrame, title: str) -> Any:
    from rich.table import Table

    t = Table(title=title)
    cols = [("scheme", "scheme"), ("f", "factor"), ("DA W", "da_welfare"), ("E[RT]", None), ("E[SW]", None),
            ("std", None), ("q10", None), ("q20", None), ("q30", None), ("q70", None), ("q80", None), ("q90", None),
            ("iter", "iterations"), ("gap", "gap"), ("s", "time_s")]
    for name, _ in cols:
        t.add_column(name, justify="right")
    for _, r in df.iterrows():
        pre = "oos_" if "oos_sw_expected" in r and not pd.isna(r.get("oos_sw_expected")) else "in_"
        f = lambda v, fmt="{:,.0f}": "-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)  # noqa: E731
        t.add_row(str(r["scheme"]), f"{r['factor']:.3g}", f(r["da_welfare"]), f(r[f"{pre}expected_rt_cost"]),
                  f(r[f"{pre}sw_expected"]), f(r[f"{pre}sw_std"]),
                  *[f(r[f"{pre}sw_q{q}"]) for q in ("10", "20", "30", "70", "80", "90")],
                  str(int(r["iterations"])), f(r["gap"], "{:.1e}"), f(r["time_s"], "{:.1f}"))
    t.caption = ("$ per market day. DA W: day-ahead welfare; E[RT]: expected real-time cost; E[SW] = DA W - E[RT], "
                 "its standard deviation and quantiles, out of sample when --oos > 0 (else in sample); iter, gap: "
                 "Benders iterations and final relative gap; s: Benders wall time")
    return t


def wind_table(wind: WindScenarios) -> pd.DataFrame:
    rows = []
    for which, mat in (("in_sample", wind.in_sample), ("out_of_sample", wind.out_of_sample)):
        mat = np.asarray(mat)
        for i, f in enumerate(wind.farm_ids):
            for s in range(mat.shape[1]):
                rows.append((which, f, s, float(mat[i, s])))
    return pd.DataFrame(rows, columns=["set", "farm", "scenario", "mw"]).assign(factor=wind.factor)


def benchmarks(case: Any, wind: WindScenarios, level: Any, n: int = 5) -> pd.DataFrame:
    """Joint-SOCP check of the decomposed real-time costs, and fc's extensive form."""
    from coordinator.tso_dso.benchmarks import extensive_form, joint_rt, market_from_case

    rows = []
    market = market_from_case(case, wind)
    k = min(n, wind.n_in)
    for s, r in level.schemes.items():
        j = joint_rt(case, market, r.x, np.asarray(wind.in_sample)[:, :k], wind.farm_ids)
        dec = r.in_sample.rt_cost[:k]
        rel = np.abs(dec - j["cost"]) / np.maximum(1.0, np.abs(j["cost"]))
        rows.append({"check": f"{s}: decomposed vs joint real-time SOCP ({k} scenarios)", "value": float(rel.max()),
                     "unit": "max relative difference"})
    if "fc" in level.schemes:
        ext = extensive_form(case, wind, "fc")
        r = level.schemes["fc"]
        rows.append({"check": "fc: extensive form objective", "value": ext["objective"], "unit": "$"})
        rows.append({"check": "fc: decomposed bounds vs extensive form",
                     "value": max(abs(r.lower - ext["objective"]), abs(r.upper - ext["objective"])) /
                     abs(ext["objective"]), "unit": "max relative difference"})
    return pd.DataFrame(rows)


__all__ = ["level_tables", "summary_table", "wind_table", "benchmarks"]
