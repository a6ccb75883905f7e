"""Drawings of grids (networkx + matplotlib, Agg backend, no display needed).

- :func:`draw_feeder`: a radial feeder as a tree from its head (top) down, laid out
  in layers by depth (a simple tidy-tree layout computed here, so no graphviz is
  needed). Line style and colour show the phases of each line; DERs (triangles)
  and customers (circles) are marked next to their node.
- :func:`draw_transmission`: the transmission grid (Kamada-Kawai layout) with each
  feeder hanging off its PCC bus, one colour per area.
- :func:`draw_case`: the right drawing for a case, as a matplotlib Figure; save it
  with :meth:`scenarios.runs.RunFolder.write_png`.
"""
from __future__ import annotations

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")  # never needs a display; must come before pyplot

import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from network.model import PHASES, TRANSMISSION, Case, Feeder  # noqa: E402

PHASE_COLOURS = {"a": "tab:red", "b": "tab:green", "c": "tab:blue"}
AREA_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
                "tab:olive", "tab:cyan"]
UNIT_COLOUR = "darkorange"
LOAD_COLOUR = "slategray"
MAX_LABELS = 150  # beyond this many nodes, node labels are left out


# ----------------------------------------------------------------------- layout


def tree_layout(graph: nx.DiGraph, root: str, *, order: list[str] | None = None) -> dict[str, tuple[float, float]]:
    """Layered layout of a rooted tree: y = -depth, leaves spaced 1 apart, parents centred over children.

    ``order`` fixes the left-to-right order of siblings (default: graph order).
    """
    rank = {n: i for i, n in enumerate(order or list(graph))}
    depth = {root: 0}
    for parent, child in nx.bfs_edges(graph, root):
        depth[child] = depth[parent] + 1
    children = {n: sorted(graph.successors(n), key=lambda c: rank.get(c, 0)) for n in graph}
    x: dict[str, float] = {}
    next_leaf = 0.0
    # iterative post-order with sorted children (no recursion limit on long feeders)
    stack: list[tuple[str, bool]] = [(root, False)]
    while stack:
        n, done = stack.pop()
        if done:
            kids = children[n]
            if kids:
                x[n] = (x[kids[0]] + x[kids[-1]]) / 2
            else:
                x[n] = next_leaf
                next_leaf += 1.0
            continue
        stack.append((n, True))
        stack.extend((c, False) for c in reversed(children[n]))
    return {n: (x[n], -float(depth[n])) for n in x}


# ----------------------------------------------------------------------- feeder


def _line_style(phases: str, n_phases: int) -> dict[str, Any]:
    if n_phases == 1 or len(phases) == 3:
        return {"color": "black", "width": 2.4, "style": "solid"}
    if len(phases) == 2:
        return {"color": "dimgray", "width": 1.6, "style": "dashed"}
    return {"color": PHASE_COLOURS[phases], "width": 1.2, "style": "dotted"}


def draw_feeder(case: Case, feeder_id: str, ax: Any = None) -> Any:
    """Draw feeder ``feeder_id`` of ``case`` on ``ax`` (a new axes if None); returns the axes."""
    f: Feeder = case.feeders[feeder_id]
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, 0.5 * f.n_nodes), 6.0))
    pos = tree_layout(f.graph, f.head, order=[n.id for n in f.nodes])
    labels = f.n_nodes <= MAX_LABELS
    for ln in f.lines:
        st = _line_style(ln.phases, f.n_phases)
        (x0, y0), (x1, y1) = pos[ln.from_node], pos[ln.to_node]
        ax.plot([x0, x1], [y0, y1], color=st["color"], lw=st["width"], ls=st["style"], zorder=1)
        if labels:
            ax.annotate(ln.id, ((x0 + x1) / 2, (y0 + y1) / 2), textcoords="offset points", xytext=(-3, 0),
                        ha="right", va="center", fontsize=6, color="dimgray")
    for n in f.nodes:
        x, y = pos[n.id]
        head = n.id == f.head
        ax.scatter([x], [y], s=260 if head else 170, marker="s" if head else "o", zorder=3,
                   facecolor="gold" if head else "white", edgecolor="black", linewidth=1.2)
        if labels:
            ax.annotate(n.id, (x, y), ha="center", va="center", fontsize=7, zorder=4)
            if f.n_phases == 3 and n.phases != "abc":
                ax.annotate(n.phases, (x, y), textcoords="offset points", xytext=(8, 8), ha="left",
                            fontsize=7, color=PHASE_COLOURS.get(n.phases, "black"), fontweight="bold")
    # assets: units to the right of their node, loads to the left, stacked downwards
    stacked_max = 0
    for assets, dx, marker, colour in ((case.units, 0.28, "^", UNIT_COLOUR), (case.loads, -0.28, "o", LOAD_COLOUR)):
        stacked: dict[str, int] = {}
        for a in assets:
            if a.grid != f.id:
                continue
            k = stacked.get(a.node, 0)
            stacked[a.node] = k + 1
            stacked_max = max(stacked_max, k)
            x, y = pos[a.node]
            ax_, ay = x + dx, y - 0.18 * k
            ax.plot([x, ax_], [y, ay], color=colour, lw=0.6, zorder=0)
            ax.scatter([ax_], [ay], s=45, marker=marker, color=colour, zorder=2)
            if labels:
                text = a.id if f.n_phases == 1 or a.phases == "abc" else f"{a.id} ({a.phases})"
                ax.annotate(text, (ax_, ay), textcoords="offset points", xytext=(5 if dx > 0 else -5, 0),
                            ha="left" if dx > 0 else "right", va="center", fontsize=6, color=colour)
    handles = [Line2D([], [], marker="s", ls="", mfc="gold", mec="black", ms=9, label=f"head {f.head}"),
               Line2D([], [], marker="^", ls="", color=UNIT_COLOUR, label="unit (DER / supply)"),
               Line2D([], [], marker="o", ls="", color=LOAD_COLOUR, label="load (customer)")]
    if f.n_phases == 3:
        present = {ln.phases if len(ln.phases) == 1 else len(ln.phases) for ln in f.lines}
        for key, label in ((3, "3-phase line"), (2, "2-phase line"), *((p, f"1-phase line ({p})") for p in PHASES)):
            if key in present:
                st = _line_style("abc" if key == 3 else "ab" if key == 2 else str(key), 3)
                handles.append(Line2D([], [], color=st["color"], lw=st["width"], ls=st["style"], label=label))
    else:
        handles.append(Line2D([], [], color="black", lw=2.4, label="line (single-phase equivalent)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    where = f", PCC bus {f.pcc_bus}" if f.pcc_bus else ""
    ax.set_title(f"{case.name}: feeder {f.id} ({f.n_phases}-phase, {f.n_nodes} nodes{where})", fontsize=10)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 1.2, max(xs) + 1.2)  # room for the asset markers, also on a one-leaf feeder
    ax.set_ylim(min(ys) - 0.3 - 0.18 * max(stacked_max, 0), max(ys) + 0.4)
    ax.set_axis_off()
    return ax


# ------------------------------------------------------------------ transmission


def draw_transmission(case: Case, ax: Any = None) -> Any:
    """Draw the transmission grid with the feeders hanging off their PCC buses; returns the axes."""
    t = case.transmission
    if t is None:
        raise ValueError(f"case {case.name} has no transmission grid")
    if ax is None:
        _, ax = plt.subplots(figsize=(10.0, 8.0))
    # one graph: transmission buses ("T", bus), feeder nodes (feeder, node); a feeder's head is its PCC bus
    g = nx.Graph()
    g.add_nodes_from((TRANSMISSION, b) for b in t.bus_ids)
    g.add_edges_from(((TRANSMISSION, ln.from_bus), (TRANSMISSION, ln.to_bus)) for ln in t.lines)
    at: dict[tuple[str, str], tuple[str, str]] = {}  # feeder node -> drawing node
    for f in case.feeders.values():
        for n in f.nodes:
            at[(f.id, n.id)] = (TRANSMISSION, f.pcc_bus) if n.id == f.head and f.pcc_bus else (f.id, n.id)
        g.add_edges_from((at[(f.id, ln.from_node)], at[(f.id, ln.to_node)]) for ln in f.lines)
    pos = nx.kamada_kawai_layout(g) if len(g) <= 400 else nx.spring_layout(g, seed=1)
    colour = {TRANSMISSION: "lightgray"}
    for i, f in enumerate(case.feeders.values()):
        colour[f.id] = AREA_COLOURS[i % len(AREA_COLOURS)]
    t_edges = [e for e in g.edges if e[0][0] == TRANSMISSION and e[1][0] == TRANSMISSION]
    nx.draw_networkx_edges(g, pos, edgelist=t_edges, ax=ax, width=1.6, edge_color="black")
    for f in case.feeders.values():
        edges = [(at[(f.id, ln.from_node)], at[(f.id, ln.to_node)]) for ln in f.lines]
        nx.draw_networkx_edges(g, pos, edgelist=edges, ax=ax, width=2.0, edge_color=colour[f.id], style="solid")
    gen_at = {(a.grid, a.node) for a in case.units if a.kind != "wind"}
    wind_at = {(a.grid, a.node) for a in case.units if a.kind == "wind"}
    load_at = {(a.grid, a.node) for a in case.loads}
    drawn = list(g.nodes)
    nx.draw_networkx_nodes(g, pos, nodelist=drawn, ax=ax, node_size=230,
                           node_color=[colour.get(n[0], "white") for n in drawn], edgecolors="black", linewidths=0.8)
    # markers for assets, just above each node (feeder heads map onto their PCC bus)
    for marks, marker, col, dy in ((gen_at, "s", UNIT_COLOUR, 0.035), (wind_at, "^", "teal", 0.035),
                                   (load_at, "v", LOAD_COLOUR, -0.035)):
        pts = [pos[at.get(k, k)] for k in marks if at.get(k, k) in pos]
        if pts:
            dx = -0.02 if marker == "^" else 0.02 if marker == "s" else 0.0
            ax.scatter([p[0] + dx for p in pts], [p[1] + dy for p in pts], s=22, marker=marker, color=col, zorder=4)
    if len(g) <= MAX_LABELS:
        nx.draw_networkx_labels(g, pos, labels={n: n[1] for n in g.nodes}, ax=ax, font_size=6)
    handles = [Line2D([], [], marker="o", ls="", mfc="lightgray", mec="black", ms=8, label="transmission bus"),
               Line2D([], [], color="black", lw=1.6, label="transmission line (DC)")]
    for f in case.feeders.values():
        handles.append(Line2D([], [], marker="o", color=colour[f.id], lw=2.0, mec="black",
                              label=f"feeder {f.id} (PCC bus {f.pcc_bus})"))
    handles += [Line2D([], [], marker="s", ls="", color=UNIT_COLOUR, label="generator"),
                Line2D([], [], marker="^", ls="", color="teal", label="wind farm"),
                Line2D([], [], marker="v", ls="", color=LOAD_COLOUR, label="demand")]
    ax.legend(handles=handles, loc="best", fontsize=7, frameon=False)
    ax.set_title(f"{case.name}: {t.n_buses} transmission buses, {t.n_lines} lines, {len(case.feeders)} feeders",
                 fontsize=10)
    ax.set_axis_off()
    return ax


# ------------------------------------------------------------------------- case


def draw_case(case: Case) -> Any:
    """A Figure of the whole case: the transmission grid with its feeders, or the feeder(s)."""
    if case.transmission is not None:
        fig, ax = plt.subplots(figsize=(11.0, 8.5))
        draw_transmission(case, ax)
        return fig
    feeders = list(case.feeders)
    if not feeders:
        raise ValueError(f"case {case.name} has no grid to draw")
    ncol = min(2, len(feeders))
    nrow = math.ceil(len(feeders) / ncol)
    # panel size from the widest and deepest tree (x: leaves, y: depth); the legend needs ~2.5 in
    spans = [tree_layout(f.graph, f.head) for f in case.feeders.values()]
    width = max(max(x for x, _ in pos.values()) - min(x for x, _ in pos.values()) for pos in spans)
    depth = max(-min(y for _, y in pos.values()) for pos in spans)
    fig, axes = plt.subplots(nrow, ncol, squeeze=False, layout="constrained",
                             figsize=(min(24.0, 1.6 * width + 6.5) * ncol, min(16.0, 0.8 * depth + 2.5) * nrow))
    for ax, fid in zip(axes.flat, feeders):
        draw_feeder(case, fid, ax)
    for ax in list(axes.flat)[len(feeders):]:
        ax.set_axis_off()
    return fig
