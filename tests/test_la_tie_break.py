"""The load aggregator's tie-break of purchases (least-norm QP): a fallback solver, never a silent vertex.

Units offering the same price make the purchases non-unique; the LA takes the least-norm
cost-minimal purchases (a QP, HiGHS first, then Clarabel). These tests force the QP's solver
to fail, whatever version of it is installed, and check that the next solver produces the
same polished point, and that with every solver failing the tie-break is skipped loudly (a warning,
``tie_break_solver == "unpolished"``) while the market goes on with the LA's own optimal purchases.
"""
from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from agents.base import SolveError
from agents.tes.customers import Customer
from agents.tes.la_polish import POLISH_ATTEMPTS, POLISH_PROBLEM, UNPOLISHED
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
def test_every_solver_failing_keeps_the_optimal_purchases(monkeypatch, caplog, how):
    """The tie-break is a refinement of an optimal point: when every solver fails it is skipped with a
    warning naming the agent, the problem and every solver, and the LA keeps its own purchases (feasible
    and cost-minimal: the same profit), never stopping the market."""
    ref = LoadAggregator("LA", customers(), price_sum_cap=0.72).solve(tied_offers())
    break_qp(monkeypatch, {"HIGHS", "CLARABEL"}, how)
    with caplog.at_level("WARNING", logger="agents.tes.la_polish"):
        sol = LoadAggregator("LA", customers(), price_sum_cap=0.72).solve(tied_offers())
    assert sol.tie_break_solver == UNPOLISHED
    text = caplog.text
    assert "LA" in text and POLISH_PROBLEM in text and "HIGHS" in text and "CLARABEL" in text
    assert sol.profit == pytest.approx(ref.profit, rel=1e-9)
    total = sum(sol.loads.values())
    np.testing.assert_allclose(sol.purchases["G"] + sol.purchases["H"] + sol.purchases["MG"], total, atol=1e-6)
    np.testing.assert_allclose(sol.purchases["MG"], 0.0, atol=1e-6)  # still cost-minimal


def test_the_qp_holds_the_solvers_point_when_it_violates_a_cut_slightly():
    """A solver meets its cuts to its tolerance only. Purchases that violate a cut by 1e-5 where meeting it
    costs more (a cut asking for 1e-5 kW of the dearer main grid in hour 0) must leave the tie-break QP
    feasible: each cut is relaxed by the solver's own violation, so the polish succeeds and the tied
    units share. (Without the relaxation both solvers report the QP infeasible.)"""
    from agents.tes.la_polish import polish
    from agents.tes.la_problem import Round

    la = LoadAggregator("LA", customers(), price_sum_cap=0.72)
    sol = la.solve(tied_offers())
    ids = list(la.supplier_ids)
    offers = tied_offers()
    price = np.array([offers[u][0] for u in ids])
    qty = np.array([np.minimum(offers[u][1], 1e6) for u in ids])
    p = np.array([sol.loads[c] for c in la.customer_ids])
    x = np.array([sol.purchases[u] for u in ids])
    x[ids.index("G")], x[ids.index("H")] = x[ids.index("G")] + x[ids.index("H")], 0.0  # a vertex of the face
    C, U = p.shape[0], len(ids)
    Gy = np.zeros((1, C + U))
    Gy[0, C + ids.index("MG")] = 1.0  # lhs = h - x_MG[0] <= 0: at least h kW from the main grid in hour 0
    rnd = Round(price, qty, Gy, np.array([1e-5]), np.array([0]), np.array([0]), 1, None, C)
    assert rnd.cut_lhs(p, x)[0] == pytest.approx(1e-5)  # the point violates the cut by 1e-5
    x2, solver = polish("LA", la._retail(), tuple(ids), {}, rnd, p, x)
    assert solver in {a.solver for a in POLISH_ATTEMPTS}
    np.testing.assert_allclose(x2[ids.index("G")], x2[ids.index("H")], atol=1e-6)
    np.testing.assert_allclose(x2.sum(axis=0), p.sum(axis=0), atol=1e-9)
