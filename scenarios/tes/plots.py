"""Figures of a ``tes`` market day (matplotlib, Agg)."""
from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def prices_heatmap(res: Any) -> Any:
    s = res.solution
    ids = list(s.prices)
    m = np.array([np.asarray(s.prices[c]) for c in ids])
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(ids) + 1.5))
    im = ax.imshow(m, aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(ids)), ids)
    ax.set_xlabel("hour")
    ax.set_title(f"retail prices per customer and hour (day {res.day})")
    fig.colorbar(im, ax=ax, label="$/kWh")
    fig.tight_layout()
    return fig


def dispatch_stack(res: Any) -> Any:
    s = res.solution
    hours = np.arange(len(next(iter(s.loads.values()))))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    bottom = np.zeros_like(hours, dtype=float)
    for k, v in s.purchases.items():
        v = np.asarray(v, dtype=float)
        ax.bar(hours, v, bottom=bottom, label=k)
        bottom += v
    load = sum(np.asarray(v, dtype=float) for v in s.loads.values())
    ax.step(hours, load, where="mid", color="k", lw=1.5, label="total load")
    if res.unconstrained is not None:
        load0 = sum(np.asarray(v, dtype=float) for v in res.unconstrained.loads.values())
        ax.step(hours, load0, where="mid", color="grey", ls="--", lw=1, label="load, no network limits")
    ax.set_xlabel("hour")
    ax.set_ylabel("kW")
    ax.set_title(f"dispatch by source (day {res.day})")
    ax.legend(ncol=4, fontsize=8)
    fig.tight_layout()
    return fig


MODEL_OF_CHECK = {"linear": ("lindist3flow", "LinDist3Flow"), "ac": ("opendss", "OpenDSS")}


def voltage_heatmaps(res: Any) -> Any:
    """|V| per node-phase and hour before and after the cuts, in the model of the check that drove them."""
    model, label = MODEL_OF_CHECK[getattr(res, "network_check", "linear")]
    v = res.voltages
    if "model" in v.columns:
        v = v[v["model"] == model]
    if v.empty:
        fig, ax = plt.subplots()
        ax.set_title("no voltage data")
        return fig
    stages = [s for s in ("before", "after") if s in set(v["stage"])]
    fig, axes = plt.subplots(1, len(stages), figsize=(6 * len(stages), 6), squeeze=False)
    lo, hi = 0.95, 1.05
    vmin = min(v["v_pu"].min(), lo - 0.01)
    vmax = max(v["v_pu"].max(), hi + 0.01)
    for ax, st in zip(axes[0], stages):
        d = v[v.stage == st]
        piv = d.pivot_table(index=["node", "phase"], columns="hour", values="v_pu", sort=False)
        im = ax.imshow(piv.to_numpy(), aspect="auto", cmap="RdBu_r", vmin=vmin, vmax=vmax)
        ax.set_yticks(range(len(piv.index)), [f"{n}{p}" for n, p in piv.index], fontsize=7)
        bad = (piv.to_numpy() < lo - 1e-9) | (piv.to_numpy() > hi + 1e-9)
        yy, xx = np.nonzero(bad)
        ax.scatter(xx, yy, marker="x", color="k", s=12, label="outside 0.95-1.05")
        ax.set_xlabel("hour")
        ax.set_title(f"|V| ({label}, the check) {st} the cuts")
        if bad.any():
            ax.legend(fontsize=7, loc="lower right")
    fig.colorbar(im, ax=axes[0].tolist(), label="pu")
    return fig


def voltage_models(res: Any) -> Any:
    """Both checks side by side: per hour, the highest and lowest |V| over the node-phases in LinDist3Flow and
    in OpenDSS, for the schedules before and after the cuts; hours that got a cut are shaded."""
    v = res.voltages
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    check = getattr(res, "network_check", "linear")
    if v.empty or "model" not in v.columns:
        axes[0].set_title("no voltage data")
        return fig
    cut_hours = sorted({int(h) for s in res.iterations.get("violated_hours", pd.Series(dtype=str)).astype(str)
                        for h in s.split(",") if h.strip()})
    style = {("lindist3flow", "before"): ("tab:blue", "--"), ("lindist3flow", "after"): ("tab:blue", "-"),
             ("opendss", "before"): ("tab:red", "--"), ("opendss", "after"): ("tab:red", "-")}
    name = {"lindist3flow": "LinDist3Flow", "opendss": "OpenDSS"}
    for ax, agg, lim, what in ((axes[0], "max", 1.05, "highest"), (axes[1], "min", 0.95, "lowest")):
        for (model, stage), (color, ls) in style.items():
            d = v[(v["model"] == model) & (v["stage"] == stage)]
            if d.empty:
                continue
            ext = d.groupby("hour")["v_pu"].agg(agg)
            ax.plot(ext.index, ext.to_numpy(), color=color, ls=ls, marker="." if stage == "after" else None,
                    label=f"{name[model]}, {stage} the cuts")
        ax.axhline(lim, color="k", lw=0.8, ls=":", label=f"limit {lim} pu")
        for h in cut_hours:
            ax.axvspan(h - 0.5, h + 0.5, color="orange", alpha=0.15, lw=0)
        ax.set_xlabel("hour")
        ax.set_ylabel("|V| (pu)")
        ax.set_title(f"{what} |V| over the node-phases")
    axes[0].legend(fontsize=7)
    driver = "LinDist3Flow" if check == "linear" else "OpenDSS (AC)"
    fig.suptitle(f"LinDist3Flow vs OpenDSS (day {res.day}); the cuts (shaded hours) come from the {check} check, "
                 f"{driver}")
    fig.tight_layout()
    return fig


def violation_per_iteration(res: Any) -> Any:
    """E* per iteration: the sum over hours and limits of the excess, split by unit."""
    it = res.iterations
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.semilogy(it["iteration"], np.maximum(it["e_star"].to_numpy(dtype=float), 1e-12), "o-", color="k",
                label="E* (all limits)")
    for col, label in (("e_star_voltage_pu2", "voltage limits: sum of |V|^2 excess (pu^2)"),
                       ("e_star_flow_pu", "line flows and import: sum of excess (pu)")):
        if col in it and (it[col] > 0).any():
            ax.semilogy(it["iteration"], np.maximum(it[col].to_numpy(dtype=float), 1e-12), ".--", label=label)
    ax.axhline(1e-6, color="grey", ls="--", label="tolerance 1e-6 per hour")
    ax.set_xlabel("Benders iteration")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("E* = sum of excess (pu^2 for |V|^2, pu for flows)")
    ax.set_title(f"network violation per iteration ({getattr(res, 'network_check', 'linear')} check)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def mccormick_gap(res: Any) -> Any:
    gap = getattr(res.solution, "mccormick_gap", None)
    fig, ax = plt.subplots(figsize=(10, 4))
    if not gap:
        ax.text(0.5, 0.5, "exact bilevel solve: no McCormick relaxation (gap = 0 by construction)",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    ids = list(gap)
    m = np.array([np.asarray(gap[c]) for c in ids])
    im = ax.imshow(m, aspect="auto", cmap="magma")
    ax.set_yticks(range(len(ids)), ids)
    ax.set_xlabel("hour")
    ax.set_title("McCormick gap w* - p* pi* ($/h)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def all_figures(res: Any) -> dict[str, Any]:
    return {"prices": prices_heatmap(res), "dispatch": dispatch_stack(res), "voltages": voltage_heatmaps(res),
            "voltage_models": voltage_models(res), "violation": violation_per_iteration(res),
            "mccormick_gap": mccormick_gap(res)}


__all__ = ["all_figures", "pd"]


def feeders_overview(feeders: pd.DataFrame) -> Any:
    """Several feeders, the last day: Benders iterations, the relative gap to each feeder's centralized solve
    (LA profit, |decomposed - centralized| / |centralized|, log scale) and the largest LinDist3Flow |V| (pu)
    of the final schedule against the 1.05 pu limit; one bar per feeder (``feeders.parquet``)."""
    last = feeders[feeders["day"] == feeders["day"].max()]
    x = np.arange(len(last))
    fig, axes = plt.subplots(3, 1, figsize=(max(6.0, 0.25 * len(last) + 2), 7.5), sharex=True)
    colours = np.where(last["converged"].to_numpy(bool), "tab:blue", "tab:red")
    axes[0].bar(x, last["iterations"], color=colours)
    axes[0].set_ylabel("iterations")
    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_title(f"{len(last)} feeders, day {int(last['day'].iloc[0])} (red: not converged)")
    gap = pd.to_numeric(last["relative_gap"], errors="coerce").abs().clip(lower=1e-12)
    if gap.notna().any():
        axes[1].bar(x, gap.fillna(0.0), color="tab:green")
        axes[1].set_yscale("log")
    else:
        axes[1].text(0.5, 0.5, "no centralized benchmark (--no-benchmarks)", ha="center", va="center",
                     transform=axes[1].transAxes)
    axes[1].set_ylabel("gap to centralized")
    axes[2].bar(x, last["v_max_lindist3flow_pu"], color="tab:purple")
    axes[2].axhline(1.05, color="k", linestyle="--", linewidth=1, label="1.05 pu")
    lo = min(1.0, float(last["v_max_lindist3flow_pu"].min()))
    axes[2].set_ylim(lo - 0.005, max(1.06, float(last["v_max_lindist3flow_pu"].max()) + 0.005))
    axes[2].set_ylabel("max |V| (pu)")
    axes[2].legend(fontsize=7, loc="lower right")
    axes[2].set_xticks(x, last["feeder"], rotation=90, fontsize=7)
    fig.tight_layout()
    return fig
