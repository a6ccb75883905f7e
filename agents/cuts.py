"""The one cut pool of the project.

A Benders cut is an affine function of the receiver's decisions, attached to an *index*
(the period of a feasibility cut, the scenario of a multi-cut optimality cut):

- feasibility cut: ``constant + coefficients . y <= 0``;
- optimality cut: ``theta_index >= constant + coefficients . y``.

:class:`CutPool` keeps the cuts an agent has received or made, per index, as rows over a
fixed decision vector (``n_vars`` columns) or over named decisions (``keys``: the column
set grows as cuts name new decisions; the receiver's own decision ids). It

- drops a cut equal to one already held (``|c0 - c| <= rtol (1 + |c|)`` and
  coefficients equal within ``rtol``/``atol``): a repeated cut adds nothing;
- optionally tracks which cuts were active (positive dual) and prunes stale ones when an
  index holds more than ``keep`` cuts (every cut is valid, so any subset is too);
- gives dense arrays for vectorised constraints: :meth:`rows` per index, :meth:`padded`
  as ``(K, S)`` blocks with unused slots repeating the index's first cut (a repeated
  cut is redundant), :meth:`padded_at` the same with some decisions held at given
  values (a cut on ``(z, y)`` seen as a cut on ``z`` for a known ``y``), :meth:`slots` as
  ``K`` rows per index with unused rows all zero (``0 <= 0``: for a problem that reads
  each cut's own dual), and :func:`capacity_for` the fixed capacity of a block of cvxpy
  Parameters (doubled when full, so that a problem is rebuilt only ``log2`` times).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

__all__ = ["Cut", "CutPool", "capacity_for"]


@dataclass(frozen=True)
class Cut:
    """One cut: ``index`` (period or scenario), ``constant``, ``coefficients`` (by decision id or as a vector)."""

    index: int
    constant: float
    coefficients: Any  # Mapping[str, float] (keyed pool) or np.ndarray (vector pool)
    iteration: int = 0
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def period(self) -> int:
        return self.index

    def value(self, y: Mapping[str, float] | np.ndarray) -> float:
        """``constant + coefficients . y``."""
        if isinstance(self.coefficients, Mapping):
            return self.constant + sum(float(c) * float(y[k]) for k, c in self.coefficients.items())  # type: ignore[index]
        return self.constant + float(np.asarray(self.coefficients) @ np.asarray(y, dtype=float))


def capacity_for(n: int, start: int = 8) -> int:
    """The smallest ``start * 2^j >= n``: the size of a fixed-capacity block of cut Parameters."""
    cap = max(1, int(start))
    while cap < n:
        cap *= 2
    return cap


class CutPool:
    """Cuts per index, de-duplicated, with optional activity-based pruning (see the module docstring)."""

    def __init__(self, n_index: int | None = None, n_vars: int | None = None, *, keys: Sequence[str] | None = None,
                 rtol: float = 1e-9, atol: float = 1e-9, keep: int | None = None, max_age: int = 8) -> None:
        if (n_vars is None) == (keys is None):
            if n_vars is None:
                keys = ()
            else:
                raise ValueError("give n_vars (a vector pool) or keys (a keyed pool), not both")
        self.keyed = keys is not None
        self.keys: list[str] = list(keys or ())
        self._col = {k: j for j, k in enumerate(self.keys)}
        self.n_vars = len(self.keys) if self.keyed else int(n_vars)  # type: ignore[arg-type]
        self.n_index = n_index
        self.rtol, self.atol = float(rtol), float(atol)
        self.keep, self.max_age = (None if keep is None else int(keep)), int(max_age)
        self._cuts: dict[int, list[Cut]] = {}
        self._g: dict[int, list[np.ndarray]] = {}
        self._active: dict[int, list[int]] = {}
        self._order: list[tuple[int, int]] = []  # (index, position) in arrival order (for iteration)
        self.clock = 0
        self.added = 0
        self.pruned = 0

    # ------------------------------------------------------------------ state
    def __getstate__(self) -> dict[str, Any]:
        """A vector pool is pickled as a few arrays per index (agents snapshot their pools often; thousands of
        small ``Cut`` objects made that slow); a keyed pool as it is."""
        state = dict(self.__dict__)
        if self.keyed:
            return state
        packed = {}
        for i, cuts in self._cuts.items():
            G = np.vstack(self._g[i]) if cuts else np.zeros((0, self.n_vars))
            packed[i] = (np.array([c.constant for c in cuts], dtype=float), G,
                         np.array([c.iteration for c in cuts], dtype=int), [dict(c.info) for c in cuts],
                         np.array(self._active[i], dtype=int))
        for k in ("_cuts", "_g", "_active"):
            del state[k]
        state["_order"] = np.array(self._order, dtype=int).reshape(-1, 2)
        state["_packed"] = packed
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        packed = state.pop("_packed", None)
        self.__dict__.update(state)
        if packed is None:
            return
        self._cuts, self._g, self._active = {}, {}, {}
        for i, (c, G, it, info, act) in packed.items():
            self._g[i] = [g.copy() for g in G]
            self._cuts[i] = [Cut(i, float(c[r]), G[r].copy(), int(it[r]), info[r]) for r in range(c.size)]
            self._active[i] = [int(a) for a in act]
        self._order = [(int(i), int(k)) for i, k in np.asarray(self._order).reshape(-1, 2)]

    # ------------------------------------------------------------------ adding
    def _vector(self, coefficients: Mapping[str, float] | np.ndarray) -> np.ndarray:
        if not self.keyed:
            g = np.asarray(coefficients, dtype=float).reshape(-1)
            if g.size != self.n_vars:
                raise ValueError(f"a cut with {g.size} coefficients for a pool over {self.n_vars} decisions")
            return g
        for k in coefficients:  # type: ignore[union-attr]
            if k not in self._col:
                self._col[k] = len(self.keys)
                self.keys.append(str(k))
        self.n_vars = len(self.keys)
        g = np.zeros(self.n_vars)
        for k, v in coefficients.items():  # type: ignore[union-attr]
            g[self._col[k]] = float(v)
        return g

    def _same(self, c0: float, g0: np.ndarray, c: float, g: np.ndarray) -> bool:
        if abs(c0 - c) > self.rtol * (1 + abs(c)):
            return False
        n = max(g0.size, g.size)
        a, b = np.zeros(n), np.zeros(n)
        a[:g0.size], b[:g.size] = g0, g
        return bool(np.allclose(a, b, rtol=self.rtol, atol=self.atol))

    def add(self, index: int, constant: float, coefficients: Mapping[str, float] | np.ndarray, *,
            iteration: int = 0) -> bool:
        """Add a cut; returns False (and keeps nothing) if an equal cut is already held at ``index``."""
        index = int(index)
        if self.n_index is not None and not 0 <= index < self.n_index:
            raise ValueError(f"cut index {index} outside 0..{self.n_index - 1}")
        g = self._vector(coefficients)
        c = float(constant)
        for c0, g0 in zip((k.constant for k in self._cuts.get(index, [])), self._g.get(index, [])):
            if self._same(c0, g0, c, g):
                return False
        coefs = dict(coefficients) if self.keyed else g.copy()  # type: ignore[arg-type]
        self._cuts.setdefault(index, []).append(Cut(index, c, coefs, iteration))
        self._g.setdefault(index, []).append(g.copy())
        self._active.setdefault(index, []).append(self.clock)
        self._order.append((index, len(self._cuts[index]) - 1))
        self.added += 1
        return True

    def add_cut(self, cut: Cut) -> bool:
        return self.add(cut.index, cut.constant, cut.coefficients, iteration=cut.iteration)

    def extend(self, cuts: Iterable[Cut]) -> int:
        return sum(self.add_cut(c) for c in cuts)

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return sum(len(v) for v in self._cuts.values())

    def __iter__(self) -> Iterator[Cut]:
        """Every cut, in arrival order."""
        return (self._cuts[i][k] for i, k in self._order)

    def indices(self) -> list[int]:
        return sorted(self._cuts)

    def count(self, index: int | None = None) -> int:
        """Cuts at ``index``, or the largest count over the indices."""
        if index is not None:
            return len(self._cuts.get(int(index), []))
        return max((len(v) for v in self._cuts.values()), default=0)

    def by_index(self, index: int) -> list[Cut]:
        return list(self._cuts.get(int(index), []))

    def rows(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(constants (k,), G (k, n_vars))`` of the cuts at ``index`` (keyed: columns in :attr:`keys` order)."""
        cuts = self._cuts.get(int(index), [])
        G = np.zeros((len(cuts), self.n_vars))
        for r, g in enumerate(self._g.get(int(index), [])):
            G[r, :g.size] = g
        return np.array([c.constant for c in cuts], dtype=float), G

    def matrix(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every cut in arrival order: ``(G (N, n_vars), constants (N,), index (N,))``."""
        G = np.zeros((len(self._order), self.n_vars))
        h = np.zeros(len(self._order))
        idx = np.zeros(len(self._order), dtype=int)
        for r, (i, k) in enumerate(self._order):
            g = self._g[i][k]
            G[r, :g.size] = g
            h[r] = self._cuts[i][k].constant
            idx[r] = i
        return G, h, idx

    def padded(self, K: int, n_index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(C (K, S), G (K, S, n_vars))``: slot k of index s is its k-th cut; unused slots repeat its first."""
        S = int(n_index if n_index is not None else (self.n_index or 0))
        C = np.zeros((K, S))
        G = np.zeros((K, S, self.n_vars))
        for s in range(S):
            c, g = self.rows(s)
            if not c.size:
                raise RuntimeError(f"index {s} has no cut yet")
            if c.size > K:
                raise ValueError(f"index {s} holds {c.size} cuts, more than the {K} slots")
            j = np.where(np.arange(K) < c.size, np.arange(K), 0)
            C[:, s], G[:, s] = c[j], g[j]
        return C, G

    def padded_at(self, K: int, fixed: Sequence[int], y: np.ndarray, n_index: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The cuts with the decisions ``fixed`` (column numbers) held at ``y``, padded like :meth:`padded`.

        A cut ``theta_s >= c + g . (z, y)`` becomes ``theta_s >= (c + g_fixed . y) + g_free . z``.
        Returns ``(C (K, S), G_free (K, S, n_free), G_fixed (K, S, n_fixed))`` with ``C`` the
        constants at ``y``; the free columns keep their order, unused slots repeat an index's
        first cut.
        """
        S = int(n_index if n_index is not None else (self.n_index or 0))
        fixed = np.asarray(fixed, dtype=int)
        free = np.setdiff1d(np.arange(self.n_vars), fixed)
        y = np.asarray(y, dtype=float)
        C = np.zeros((K, S))
        G_free = np.zeros((K, S, free.size))
        G_fixed = np.zeros((K, S, fixed.size))
        for s in range(S):
            c, g = self.rows(s)
            if not c.size:
                raise RuntimeError(f"index {s} has no cut yet")
            if c.size > K:
                raise ValueError(f"index {s} holds {c.size} cuts, more than the {K} slots")
            g_fixed = np.ascontiguousarray(g[:, fixed])
            c = c + g_fixed @ y
            j = np.where(np.arange(K) < c.size, np.arange(K), 0)
            C[:, s], G_free[:, s], G_fixed[:, s] = c[j], g[:, free][j], g_fixed[j]
        return C, G_free, G_fixed

    def slots(self, K: int, n_index: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(C (S*K,), G (S*K, n_vars), slot (N,))``: row ``s*K + k`` holds the k-th cut of index s,
        unused rows are all zero (``0 + 0 . y <= 0``, always met); ``slot[r]`` is the row of the
        r-th cut of :meth:`matrix` (arrival order). Unlike :meth:`padded`, no cut is repeated, so
        each cut's dual is the dual of its own row."""
        S = int(n_index if n_index is not None else (self.n_index or 0))
        C = np.zeros(S * K)
        G = np.zeros((S * K, self.n_vars))
        slot = np.zeros(len(self._order), dtype=int)
        for r, (i, k) in enumerate(self._order):  # k: the cut's position among the cuts of index i
            if not 0 <= i < S:
                raise ValueError(f"cut index {i} outside 0..{S - 1}")
            if k >= K:
                raise ValueError(f"index {i} holds {self.count(i)} cuts, more than the {K} slots")
            slot[r] = i * K + k
            g = self._g[i][k]
            G[slot[r], :g.size] = g
            C[slot[r]] = self._cuts[i][k].constant
        return C, G, slot

    # ------------------------------------------------------------------ activity and pruning
    def mark(self, duals: np.ndarray, tol: float = 1e-9) -> None:
        """Record which cuts were active in the last solve: ``duals[k, s]`` of slot k of index s (padded layout)."""
        self.clock += 1
        duals = np.asarray(duals, dtype=float)
        for s in range(duals.shape[1]):
            act = self._active.get(s)
            if not act:
                continue
            for k in range(duals.shape[0]):
                j = k if k < len(act) else 0
                if duals[k, s] > tol:
                    act[j] = self.clock

    def prune(self) -> int:
        """Drop cuts inactive for more than ``max_age`` solves where an index holds more than ``keep``."""
        if self.keep is None:
            return 0
        dropped = 0
        for s in list(self._cuts):
            n = len(self._cuts[s])
            if n <= self.keep:
                continue
            act = self._active[s]
            keep = [k for k in range(n) if self.clock - act[k] <= self.max_age]
            if len(keep) < self.keep:  # keep the most recently active ones
                order = sorted(range(n), key=lambda k: -act[k])
                keep = sorted(order[:self.keep])
            if len(keep) < n:
                dropped += n - len(keep)
                self._cuts[s] = [self._cuts[s][k] for k in keep]
                self._g[s] = [self._g[s][k] for k in keep]
                self._active[s] = [act[k] for k in keep]
        if dropped:
            self._order = [(i, k) for i in sorted(self._cuts) for k in range(len(self._cuts[i]))]
            self.pruned += dropped
        return dropped
