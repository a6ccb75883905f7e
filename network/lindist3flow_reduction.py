"""Exact row reduction of the LinDist3Flow limits, for large feeders.

One job: given the node-phases that may inject (``active``), find the smallest
tree the constraint builder of :class:`~network.lindist3flow.LinDist3Flow` needs
and the limit rows that can bind (:func:`reduce_rows`, called through
:meth:`LinDist3Flow.reduction`, which documents the rule). Nodes inside chains
of proportional lines and meterless branches drop out: their voltage rows are
redundant and a chain keeps only its tightest line limit per phase. The
reduction is exact -- any net load that is zero outside ``active`` meets the kept
rows if and only if it meets all rows -- and on the 907-node IEEE European LV
feeder it keeps 1 row in 8. Units and signs are those of
:mod:`network.lindist3flow`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Mapping

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from .lindist3flow import LimitFamily, LinDist3Flow

#: Two lines' drop matrices count as proportional when their normalised (MP, MQ)
#: differ by at most this much (case data carry about 8 significant digits).
_PROPORTIONAL = 1e-7


@dataclass(frozen=True, eq=False)
class Reduction:
    """The tree the constraint builder works on (see :meth:`LinDist3Flow.reduction`).

    ``key``: the node-phase indices kept, in order; ``parent[k]``: position in
    ``key`` of row k's parent row (-1 below the head); ``dp``/``dq``: block-diagonal
    MP/MQ summed over each key node's chain of lines; ``families``: the kept limit
    rows (LimitFamily objects with ``sel``/``rows`` subsets of the full ones);
    ``pos[family]``: for each kept row, the position in ``key`` of the variable
    (w, or the chain flow P/Q) it bounds.
    """

    key: np.ndarray
    parent: np.ndarray
    dp: sp.csr_matrix
    dq: sp.csr_matrix
    families: dict[str, LimitFamily]
    pos: dict[str, np.ndarray]


def reduce_rows(model: LinDist3Flow, active, blocks: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Reduction:
    """:meth:`LinDist3Flow.reduction` of ``model``; ``blocks`` maps each non-head node to the
    (MP, MQ) of its incoming line."""
    mask = _active_mask(model.n, active)
    f = model.feeder
    nodes = [nd for nd in f.node_order if nd != f.head]
    if mask.all():
        key_nodes = set(nodes)
    else:
        act = {model.node_phases[i][0] for i in np.flatnonzero(mask)}
        lim = {nd: (f.node(nd).v_min, f.node(nd).v_max) for nd in f.node_order}
        sig = {nd: _drop_signature(blocks, nd) for nd in nodes}
        needed: dict[str, bool] = {}
        key_nodes = set()
        for nd in reversed(nodes):
            par = f.node(nd).parent
            below = [c for c in f.graph.successors(nd) if needed[c]]
            if nd in act or par == f.head or len(below) >= 2:
                is_key = True
            elif len(below) == 1:
                c = below[0]
                is_key = (lim[nd] != lim[par] or lim[nd] != lim[c] or f.node(c).phases != f.node(nd).phases
                          or not np.allclose(sig[nd], sig[c], rtol=0.0, atol=_PROPORTIONAL))
            else:  # nothing below: no flow, voltage = the parent's
                is_key = lim[nd] != lim[par]
            if is_key:
                key_nodes.add(nd)
            needed[nd] = is_key or bool(below)
    return _reduced(model, blocks, nodes, key_nodes)


def _active_mask(n: int, active) -> np.ndarray:
    """``active`` (None, a boolean mask, indices, or an injection matrix) as a boolean mask over the n node-phases."""
    if active is None:
        return np.ones(n, bool)
    if sp.issparse(active) or (isinstance(active, np.ndarray) and active.ndim == 2):
        a = sp.csr_matrix(active)
        if a.shape[0] != n:
            raise ValueError(f"an injection matrix for 'active' needs {n} rows, got {a.shape[0]}")
        return np.diff(a.indptr) > 0  # rows with stored entries
    a = np.asarray(active)
    if a.dtype == bool:
        if a.shape != (n,):
            raise ValueError(f"an 'active' mask needs shape ({n},), got {a.shape}")
        return a.copy()
    mask = np.zeros(n, bool)
    mask[a.astype(int)] = True
    return mask


def _drop_signature(blocks: Mapping[str, tuple[np.ndarray, np.ndarray]], nd: str) -> np.ndarray:
    mp, mq = blocks[nd]
    v = np.concatenate([mp.ravel(), mq.ravel()])
    return v / np.linalg.norm(v)


def _reduced(model: LinDist3Flow, blocks: Mapping[str, tuple[np.ndarray, np.ndarray]], nodes: list[str],
             key_nodes: set[str]) -> Reduction:
    f = model.feeder
    key = np.array([i for i, (nd, _) in enumerate(model.node_phases) if nd in key_nodes], int)
    pos = np.full(model.n, -1)
    pos[key] = np.arange(len(key))
    parent = np.full(len(key), -1)
    dp_rows, dq_rows, cols, dp_v, dq_v = [], [], [], [], []
    p_lim = {"P": (model.p_max, np.full(len(key), np.inf), np.zeros(len(key), int)),
             "Q": (model.q_max, np.full(len(key), np.inf), np.zeros(len(key), int))}
    for nd in (x for x in nodes if x in key_nodes):
        phases = f.node(nd).phases
        rows_j = np.array([model.index[(nd, ph)] for ph in phases])
        chain = [nd]  # nodes whose incoming lines form the chain up to the key parent
        up = f.node(nd).parent
        while up != f.head and up not in key_nodes:
            chain.append(up)
            up = f.node(up).parent
        blk_p = np.zeros((len(phases), len(phases)))
        blk_q = np.zeros_like(blk_p)
        for c in chain:  # every chain node has the phases of nd
            r = np.array([model.index[(c, ph)] for ph in phases])
            blk_p += blocks[c][0]
            blk_q += blocks[c][1]
            for lim_all, best, arg in p_lim.values():
                better = lim_all[r] < best[pos[rows_j]]
                best[pos[rows_j[better]]] = lim_all[r[better]]
                arg[pos[rows_j[better]]] = r[better]
        for a, ph in enumerate(phases):
            j = pos[rows_j[a]]
            if up != f.head:
                parent[j] = pos[model.index[(up, ph)]]
            for b in range(len(phases)):
                dp_rows.append(j)
                cols.append(pos[rows_j[b]])
                dp_v.append(blk_p[a, b])
                dq_v.append(blk_q[a, b])
    k = len(key)
    dp = sp.csr_matrix((dp_v, (dp_rows, cols)), shape=(k, k))
    dq = sp.csr_matrix((dq_v, (dp_rows, cols)), shape=(k, k))
    fams: dict[str, LimitFamily] = {}
    positions: dict[str, np.ndarray] = {}
    for name, fam in model.families.items():
        if fam.quantity == "w":
            keep = np.flatnonzero(np.isin(fam.sel, key))
            sel, bound, where = fam.sel[keep], fam.bound[keep], pos[fam.sel[keep]]
        elif fam.quantity in ("P", "Q"):
            _, best, arg = p_lim[fam.quantity]
            where = np.flatnonzero(np.isfinite(best))
            sel = arg[where]
            bound = fam.sign * best[where]  # bound is +lim for *_max and -lim for *_min
        else:
            fams[name] = fam
            continue
        if len(sel):
            rows = model.node_phases if fam.quantity == "w" else model.line_phases
            fams[name] = replace(fam, rows=tuple(rows[i] for i in sel), sel=sel,
                                 bound=np.asarray(bound, float))
            positions[name] = where
    return Reduction(key, parent, dp, dq, fams, positions)
