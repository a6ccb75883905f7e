"""Plots of the tso-dso runs: Benders bounds per iteration, DSO caps against P max, and for the sweep
expected welfare, congestion and caps against wind penetration."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def plot_bounds(iterations: pd.DataFrame) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    schemes = list(dict.fromkeys(iterations["scheme"]))
    fig, axes = plt.subplots(1, len(schemes), figsize=(5 * len(schemes), 3.8), squeeze=False)
    for ax, s in zip(axes[0], schemes):
        d = iterations[iterations["scheme"] == s]
        it = np.arange(1, len(d) + 1)
        ax.plot(it, d["lower"], "o-", ms=3, label="lower bound (master)")
        ax.plot(it, d["upper"], "s-", ms=3, label="upper bound (iterate)")
        ax.plot(it, d["best_upper"], "--", label="best upper bound")
        lo = float(np.nanmin(d["best_upper"]))
        span = max(abs(lo) * 0.2, 1.0)
        ax.set_ylim(lo - 2 * span, lo + span)
        ax.set_title(f"{s}: {len(d)} iterations, gap {d['gap'].iloc[-1]:.1e}")
        ax.set_xlabel("Benders iteration")
        ax.set_ylabel("-SW_DA + E[RT cost] ($)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_caps(dispatch: pd.DataFrame) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = dispatch[(dispatch["scheme"] == "pcc") & dispatch["capped"]]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    if len(d):
        xs = np.arange(len(d))
        ax.bar(xs, d["p_max"], color="0.85", label="P max")
        ax.bar(xs, d["cap"], width=0.5, color="tab:blue", label="pcc cap")
        ax.plot(xs, d["da_quantity"], "k_", ms=12, mew=2, label="day-ahead quantity")
        ax.set_xticks(xs, [f"{r}\n(a{a})" for r, a in zip(d["resource"], d["area"])], fontsize=7)
    ax.set_ylabel("MW")
    ax.set_title("DSO pre-qualification caps against P max (pcc)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_sweep_welfare(welfare: pd.DataFrame, scenarios: pd.DataFrame) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    oos = scenarios[scenarios["set"] == "out_of_sample"] if len(scenarios) else scenarios
    which = "out_of_sample" if len(oos) else "in_sample"
    sc = scenarios[scenarios["set"] == which]
    for s in dict.fromkeys(welfare["scheme"]):
        w = welfare[welfare["scheme"] == s].sort_values("factor")
        pen = w["penetration_oos"] if which == "out_of_sample" else w["penetration_in"]
        q = sc[sc["scheme"] == s].groupby("factor")["welfare"]
        lo, hi, mean = q.quantile(0.2), q.quantile(0.8), q.mean()
        ax.plot(pen, mean.reindex(w["factor"]).to_numpy(), "o-", ms=3, label=s)
        ax.fill_between(pen, lo.reindex(w["factor"]).to_numpy(), hi.reindex(w["factor"]).to_numpy(), alpha=0.2)
    ax.set_xlabel("wind penetration (mean of sum W / sum P max demand)")
    ax.set_ylabel(f"expected social welfare ($), {which.replace('_', '-')}")
    ax.set_title("Expected welfare against wind penetration (band: 0.2-0.8 quantiles)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_sweep_congestion(welfare: pd.DataFrame) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for s in dict.fromkeys(welfare["scheme"]):
        w = welfare[welfare["scheme"] == s].sort_values("factor")
        pen = w["penetration_oos"] if "oos_congestion_count" in w and w["oos_congestion_count"].notna().any() \
            else w["penetration_in"]
        if "oos_congestion_count" in w:
            axes[0].plot(pen, w["oos_congestion_count"], "o-", ms=3, label=s)
            axes[1].plot(pen, w["oos_congestion_p2"], "o-", ms=3, label=s)
    axes[0].set_ylabel("expected number of congested TSO lines")
    axes[1].set_ylabel("P(at least two TSO lines congested)")
    for ax in axes:
        ax.set_xlabel("wind penetration")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        else:  # no out-of-sample evaluation in this sweep (--oos 0)
            ax.text(0.5, 0.5, "no out-of-sample scenarios", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle("Real-time congestion (out of sample; a line within 10.5 MW of its rating)")
    fig.tight_layout()
    return fig


def plot_sweep_caps(dispatch: pd.DataFrame, welfare: pd.DataFrame) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = dispatch[(dispatch["scheme"] == "pcc") & dispatch["capped"]]
    pen = welfare[welfare["scheme"] == "pcc"].set_index("factor")["penetration_in"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for a, g in d.groupby("area"):
        frac = g.groupby("factor").apply(lambda t: t["cap"].sum() / t["p_max"].sum(), include_groups=False)
        ax.plot(pen.reindex(frac.index).to_numpy(), frac.to_numpy(), "o-", ms=3, label=f"area {a}")
    ax.set_xlabel("wind penetration (in sample)")
    ax.set_ylabel("sum of caps / sum of P max")
    ax.set_title("pcc: DSO caps against P max")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


__all__ = ["plot_bounds", "plot_caps", "plot_sweep_welfare", "plot_sweep_congestion", "plot_sweep_caps"]
