"""Shared Benders machinery: bounds, gap, stopping rule, log (the cut pool: tests/test_cuts.py)."""
from __future__ import annotations

import math

from coordinator.benders import Bounds, IterationLog, StoppingRule, relative_gap


def test_bounds_gap_and_stopping():
    b = Bounds()
    assert math.isinf(b.gap)
    b.update(lower=-110.0, upper=-100.0)
    b.update(lower=-120.0, upper=-90.0)  # worse bounds are ignored
    assert (b.lower, b.upper) == (-110.0, -100.0)
    assert b.gap == relative_gap(-110.0, -100.0) == 0.1
    rule = StoppingRule(gap_tol=1e-3, violation_tol=1e-6, max_iterations=5)
    assert rule.check(1, gap=0.1) == (False, "")
    assert rule.check(1, gap=1e-4)[0]
    assert rule.check(1, violation=1e-7)[0]
    assert rule.check(5, gap=0.1) == (True, "iteration limit 5 reached")


def test_iteration_log():
    log = IterationLog()
    log.record(1, lower=-2.0, upper=-1.0)
    log.record(2, lower=-1.5, upper=-1.4)
    df = log.to_frame()
    assert list(df["iteration"]) == [1, 2] and log.last["upper"] == -1.4
