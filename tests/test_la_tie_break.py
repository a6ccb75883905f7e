"""The load aggregator's tie-break of purchases (least-norm QP): a fallback solver, never a silent vertex.

Units offering the same price make the purchases non-unique; the LA takes the least-norm
cost-minimal purchases (a QP, HiGHS first, then Clarabel). These tests force the QP's solver
to fail, whatever version of it is installed, and check that the next solver produces the
same polished point, and that with every solver failing the error is loud.
"""
from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from agents.base import SolveError
from agents.tes.customers import Customer
from agents.tes.la_polish import POLISH_ATTEMPTS, POLISH_PROBLEM
from agents.tes.load_aggregator import LoadAggregator

T3 = 3


def customers() -> list[Customer]:
    return [Customer("A", "RL", [10.0, 10.0, 10.0], [0.30, 0.32, 0.34], 0.01, 0.5, 1.5, 0.2),
            Customer("B", "IL", [10.0, 10.0, 10.0], [0.40, 0.40, 0.40], 0.02, 0.9, 1.1, 0.3)]


def tied_offers() -> dict:
    """G and H offer at the same price with room to spare: only the sum of their purchases is fixed."""
    return {"G": (np.full(T3, 0.05), np.full(T3, 30.0)), "H": (np.full(T3, 0.05), np.full(T3, 30.0)),
            "MG": (np.full(T3, 0.10), np.full(T3, np.inf))}


def break_qp(monkeypatch, solvers: set[str], how: str = "raise") -> list[str]:
    """Make the tie-break QP fail with ``solvers``: raise a SolverError, or return a point that costs
    more than the optimum (``how="bad_point"``). Returns the solvers the QP was tried with."""
    tried: list[str] = []
    orig = cp.Problem.solve

    def solve(self, *args, **kwargs):
        solver = kwargs.get("solver")
        if not isinstance(self.objective, cp.Minimize):  # the LA's market problems maximise
            return orig(self, *args, **kwargs)
        tried.append(solver)
        if solver not in solvers:
            return orig(self, *args, **kwargs)
        if how == "raise":
            raise cp.error.SolverError(f"Solver '{solver}' failed (forced by the test)")
        out = orig(self, *args, **kwargs)
        for v in self.variables():  # the purchases (G, H, MG) -> (MG's, G's, H's): the main grid is dearer
            v.value = np.roll(v.value, 1, axis=0)
        return out

    monkeypatch.setattr(cp.Problem, "solve", solve)
    return tried


def check_polished(sol, offers) -> None:
    """Feasible, cost-minimal, and the least-norm split: the tied units share equally."""
    total = sum(sol.loads.values())
    np.testing.assert_allclose(sol.purchases["G"] + sol.purchases["H"] + sol.purchases["MG"], total, atol=1e-9)
    np.testing.assert_allclose(sol.purchases["G"], sol.purchases["H"], atol=1e-6)
    np.testing.assert_allclose(sol.purchases["MG"], 0.0, atol=1e-9)  # the cheap units have room
    for u, (_, q) in offers.items():
        assert np.all(sol.purchases[u] >= 0) and np.all(sol.purchases[u] <= q)


@pytest.mark.parametrize("pricing", ["personalized", "uniform"])
def test_tied_units_share_the_purchase(pricing):
    sol = LoadAggregator("LA", customers(), price_sum_cap=0.72, pricing=pricing).solve(tied_offers())
    assert sol.tie_break_solver in {a.solver for a in POLISH_ATTEMPTS}
    check_polished(sol, tied_offers())


def test_no_tie_no_tie_break():
    offers = {"G": (np.full(T3, 0.05), np.full(T3, 30.0)), "MG": (np.full(T3, 0.10), np.full(T3, np.inf))}
    sol = LoadAggregator("LA", customers(), price_sum_cap=0.72).solve(offers)
    assert sol.tie_break_solver == ""


@pytest.mark.parametrize("how", ["raise", "bad_point"])
def test_failed_highs_falls_back_to_clarabel(monkeypatch, how):
    assert [a.solver for a in POLISH_ATTEMPTS] == ["HIGHS", "CLARABEL"]
    ref = LoadAggregator("LA", customers(), price_sum_cap=0.72).solve(tied_offers())
    tried = break_qp(monkeypatch, {"HIGHS"}, how)
    sol = LoadAggregator("LA", customers(), price_sum_cap=0.72).solve(tied_offers())
    assert tried == ["HIGHS", "CLARABEL"]
    assert sol.tie_break_solver == "CLARABEL"
    check_polished(sol, tied_offers())
    # the same point of the optimal face as the first solver's (or Clarabel's, if that is what ran)
    assert sol.objective == pytest.approx(ref.objective, rel=1e-9)
    for u in ref.purchases:
        np.testing.assert_allclose(sol.purchases[u], ref.purchases[u], atol=1e-6)
    for c in ref.loads:
        np.testing.assert_array_equal(sol.loads[c], ref.loads[c])


@pytest.mark.parametrize("how", ["raise", "bad_point"])
def test_every_solver_failing_is_loud(monkeypatch, how):
    break_qp(monkeypatch, {"HIGHS", "CLARABEL"}, how)
    with pytest.raises(SolveError) as ei:
        LoadAggregator("LA", customers(), price_sum_cap=0.72).solve(tied_offers())
    e = ei.value
    assert e.agent == "LA" and e.problem == POLISH_PROBLEM
    text = str(e)
    assert "LA" in text and POLISH_PROBLEM in text and "HIGHS" in text and "CLARABEL" in text
