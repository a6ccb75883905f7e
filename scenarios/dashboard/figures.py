"""The dashboard's figures (matplotlib, no pyplot state): prices, profits, markups and metrics per day,
the selected day marked. Each function takes the replay's :class:`~scenarios.dashboard.tables.Tables` and
the selected day and returns a Figure."""
from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .tables import Tables

SIZE = (6.4, 3.9)
COMP_STYLE = {"linestyle": "--", "color": "0.45"}


def _mark(ax, day: int | None) -> None:
    """The selected day as a vertical line; whole days on the axis."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if day is not None:
        ax.axvline(day, color="tab:red", linewidth=1.0, alpha=0.6)


def _empty(fig: Figure, text: str) -> Figure:
    fig.text(0.5, 0.5, text, ha="center", va="center", color="0.4")
    return fig


def prices(t: Tables, day: int | None) -> Figure:
    fig = Figure(figsize=SIZE, layout="constrained")
    if t.days.empty or not t.prices:
        return _empty(fig, "no prices yet")
    ax = fig.add_subplot()
    for p in t.prices:
        ax.plot(t.days["day"], t.days[p.column], marker=".", label=f"{p.label} (strategic)" if p.comp else p.label)
        if p.comp and p.comp in t.days:
            ax.plot(t.days["day"], t.days[p.comp], marker=".", label=f"{p.label} (competitive)", **COMP_STYLE)
    _mark(ax, day)
    ax.set(xlabel="day", ylabel=t.price_unit, title="prices per day")
    ax.legend(fontsize="small")
    return fig


def profits(t: Tables, day: int | None) -> Figure:
    """Bars: each agent's profit on the selected day (and the competitive run's, where the table has it)."""
    fig = Figure(figsize=SIZE, layout="constrained")
    rows = t.agents_of(day) if day is not None else t.agents.iloc[0:0]
    if rows.empty or "profit" not in rows:
        return _empty(fig, "no profits yet")
    ax = fig.add_subplot()
    x = range(len(rows))
    comp = "profit_comp" in rows
    w = 0.4 if comp else 0.7
    ax.bar([i - (w / 2 if comp else 0) for i in x], rows["profit"], width=w, label="strategic")
    if comp:
        ax.bar([i + w / 2 for i in x], rows["profit_comp"], width=w, color="0.7", label="competitive")
        ax.legend(fontsize="small")
    ax.set_xticks(list(x), list(rows["agent"]), rotation=45 if len(rows) > 6 else 0, ha="right" if len(rows) > 6
                  else "center", fontsize="small")
    ax.axhline(0, color="0.3", linewidth=0.6)
    ax.set(ylabel="$", title=f"profit per agent, day {day}")
    return fig


def markups(t: Tables, day: int | None) -> Figure:
    """Lines: each agent's markup over the days (agents whose markup is ever set and not always zero)."""
    fig = Figure(figsize=SIZE, layout="constrained")
    a = t.agents
    if a.empty or "markup" not in a:
        return _empty(fig, "no markups yet")
    ax = fig.add_subplot()
    shown = 0
    for agent, g in a.groupby("agent", sort=True):
        if g["markup"].notna().any() and (g["markup"].fillna(0) != 0).any():
            ax.plot(g["day"], g["markup"], marker=".", label=str(agent))
            shown += 1
    if not shown:
        ax.text(0.5, 0.5, "every markup is 0", ha="center", va="center", transform=ax.transAxes, color="0.4")
    else:
        ax.legend(fontsize="small", ncols=2 if shown > 4 else 1)
    _mark(ax, day)
    ax.set(xlabel="day", ylabel=t.price_unit, title="markups per agent")
    return fig


def metrics(t: Tables, day: int | None) -> Figure:
    """Small multiples: Lerner, HHI, welfare loss, exploitability (against the competitive run where it exists)."""
    fig = Figure(figsize=(SIZE[0], 4.4), layout="constrained")
    wanted = [m for m in t.metrics if m.column in ("lerner", "hhi", "welfare_loss", "exploitability_max")]
    if t.days.empty or not wanted:
        return _empty(fig, "no metrics yet")
    axes = fig.subplots(2, 2, sharex=True).ravel()
    for ax, m in zip(axes, wanted):
        ax.plot(t.days["day"], t.days[m.column], marker=".", label="strategic")
        if m.comp and m.comp in t.days:
            ax.plot(t.days["day"], t.days[m.comp], marker=".", label="competitive", **COMP_STYLE)
            ax.legend(fontsize="x-small")
        _mark(ax, day)
        ax.set_title(m.label, fontsize="medium")
    for ax in axes[len(wanted):]:
        ax.set_visible(False)
    for ax in axes[2:]:
        ax.set_xlabel("day")
    return fig
