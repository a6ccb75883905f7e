"""Benders machinery shared by the protocols: bounds, gap, stopping rule, iteration log.

Conventions: the master problem is a *minimisation*. Its optimal value (with the
cuts so far) is a lower bound; a feasible point evaluated exactly is an upper
bound. Feasibility-only schemes (``tes``) track the violation E* instead. The cuts
themselves live in the one cut pool of the project, :mod:`agents.cuts`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd


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
