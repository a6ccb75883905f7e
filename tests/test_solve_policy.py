"""agents/solve.py: a problem's own verdict ends the search (``stop_on``); a last inaccurate attempt is not re-run."""
from __future__ import annotations

import cvxpy as cp
import pytest

from agents.base import SolveError
from agents.solve import INACCURATE, INFEASIBLE, Attempt, solve


def _infeasible_lp() -> cp.Problem:
    x = cp.Variable()
    return cp.Problem(cp.Minimize(x), [x >= 1, x <= 0])


def _counting(monkeypatch, status: str | None = None) -> list[str]:
    """Count solver calls; report ``status`` instead of the solver's when given."""
    calls: list[str] = []
    orig = cp.Problem.solve

    def run(self, *args, **kwargs):
        calls.append(kwargs.get("solver"))
        out = orig(self, *args, **kwargs)
        if status is not None:
            self._status = status
        return out

    monkeypatch.setattr(cp.Problem, "solve", run)
    return calls


def test_stop_on_infeasible_returns_the_verdict(monkeypatch):
    calls = _counting(monkeypatch)
    got = solve(_infeasible_lp(), [Attempt("HIGHS", {}), Attempt("CLARABEL", {})], "A", "toy LP", stop_on=INFEASIBLE)
    assert got.status in INFEASIBLE and got.solver == "HIGHS" and calls == ["HIGHS"]


def test_without_stop_on_infeasible_is_an_error():
    with pytest.raises(SolveError, match=r"A: toy LP .*HIGHS: infeasible.*CLARABEL: infeasible"):
        solve(_infeasible_lp(), [Attempt("HIGHS", {}), Attempt("CLARABEL", {})], "A", "toy LP", iteration=3)


def test_a_last_inaccurate_attempt_is_not_run_again(monkeypatch):
    x = cp.Variable()
    prob = cp.Problem(cp.Minimize(x), [x >= 1])
    calls = _counting(monkeypatch, INACCURATE)
    got = solve(prob, [Attempt("CLARABEL", {})], "A", "toy LP")
    assert (got.status, got.attempt, calls) == (INACCURATE, 0, ["CLARABEL"])
    assert x.value == pytest.approx(1.0)
    calls.clear()  # an earlier inaccurate attempt is run again: a later attempt overwrote its values
    got = solve(prob, [Attempt("CLARABEL", {}), Attempt("HIGHS", {})], "A", "toy LP")
    assert (got.status, got.attempt, calls) == (INACCURATE, 0, ["CLARABEL", "HIGHS", "CLARABEL"])
    with pytest.raises(SolveError):
        solve(prob, [Attempt("CLARABEL", {})], "A", "toy LP", accept_inaccurate=False)
