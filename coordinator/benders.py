"""Benders machinery shared by the protocols: cut pool, bounds, gap, stopping rule, log.

Conventions: the master problem is a *minimisation*. Its optimal value (with the
cuts so far) is a lower bound; a feasible point evaluated exactly is an upper
bound. Feasibility-only schemes (``tes``) track the violation E* instead.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Cut:
    """``constant + sum_k coefficients[k] x_k <= 0`` (feasibility) or
    ``theta_index >= constant + sum_k coefficients[k] x_k`` (optimality).

    ``index`` identifies what the cut belongs to (a period for feasibility cuts,
    a scenario for multi-cut optimality cuts); ``iteration`` when it was made.
    """

    index: int
    coefficients: Mapping[str, float]
    constant: float
    iteration: int = 0
    kind: str = "feasibility"
    info: Mapping[str, Any] = field(default_factory=dict)

    def value(self, x: Mapping[str, float]) -> float:
        """constant + coefficients . x"""
        return self.constant + sum(c * float(x[k]) for k, c in self.coefficients.items())


class CutPool:
    """Cuts received so far, de-duplicated (a repeated cut adds nothing)."""

    def __init__(self, tol: float = 1e-10) -> None:
        self._cuts: list[Cut] = []
        self._tol = tol

    def add(self, cut: Cut) -> bool:
        """Add ``cut``; returns False if an identical cut (within tol) is already there."""
        for c in self._cuts:
            if c.index == cut.index and c.kind == cut.kind and abs(c.constant - cut.constant) <= self._tol * (
                    1 + abs(c.constant)) and c.coefficients.keys() == cut.coefficients.keys() and all(
                    abs(c.coefficients[k] - v) <= self._tol * (1 + abs(v)) for k, v in cut.coefficients.items()):
                return False
        self._cuts.append(cut)
        return True

    def extend(self, cuts: Iterable[Cut]) -> int:
        return sum(self.add(c) for c in cuts)

    def __iter__(self) -> Iterator[Cut]:
        return iter(self._cuts)

    def __len__(self) -> int:
        return len(self._cuts)

    def by_index(self, index: int) -> list[Cut]:
        return [c for c in self._cuts if c.index == index]

    def keys(self) -> list[str]:
        """All decision ids used by the cuts (sorted)."""
        return sorted({k for c in self._cuts for k in c.coefficients})

    def matrix(self, keys: list[str], n_index: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Dense form: (G, h, index) with row i meaning ``h_i + G_i . x <= 0`` over ``keys``."""
        col = {k: j for j, k in enumerate(keys)}
        g = np.zeros((len(self._cuts), len(keys)))
        h = np.zeros(len(self._cuts))
        idx = np.zeros(len(self._cuts), dtype=int)
        for i, c in enumerate(self._cuts):
            for k, v in c.coefficients.items():
                g[i, col[k]] = v
            h[i] = c.constant
            idx[i] = c.index
        return g, h, idx


def relative_gap(lower: float, upper: float) -> float:
    """(upper - lower) / max(1, |upper|) for a minimisation; inf if a bound is missing."""
    if not (math.isfinite(lower) and math.isfinite(upper)):
        return math.inf
    return (upper - lower) / max(1.0, abs(upper))


@dataclass
class Bounds:
    """Best bounds of a minimisation so far."""

    lower: float = -math.inf
    upper: float = math.inf

    def update(self, lower: float | None = None, upper: float | None = None) -> None:
        if lower is not None and lower > self.lower:
            self.lower = float(lower)
        if upper is not None and upper < self.upper:
            self.upper = float(upper)

    @property
    def gap(self) -> float:
        return relative_gap(self.lower, self.upper)


@dataclass(frozen=True)
class StoppingRule:
    """Stop when the relative gap <= ``gap_tol`` (optimality schemes), or the
    violation <= ``violation_tol`` (feasibility schemes), or after ``max_iterations``."""

    gap_tol: float = 1e-3
    violation_tol: float = 1e-6
    max_iterations: int = 50

    def check(self, iteration: int, *, gap: float | None = None, violation: float | None = None) -> tuple[bool, str]:
        if violation is not None and violation <= self.violation_tol:
            return True, f"violation {violation:.3g} <= {self.violation_tol:g}"
        if gap is not None and gap <= self.gap_tol:
            return True, f"gap {gap:.3g} <= {self.gap_tol:g}"
        if iteration >= self.max_iterations:
            return True, f"iteration limit {self.max_iterations} reached"
        return False, ""


class IterationLog:
    """One record per Benders iteration (bounds, gap, violation, cuts, timing, extras)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._t0 = time.perf_counter()

    def record(self, iteration: int, **values: Any) -> dict[str, Any]:
        rec = {"iteration": iteration, "elapsed_s": time.perf_counter() - self._t0, **values}
        self.records.append(rec)
        return rec

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame.from_records(self.records)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def last(self) -> dict[str, Any]:
        return self.records[-1] if self.records else {}
