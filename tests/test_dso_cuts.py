"""TESO feasibility cuts: LP duals of the slack problem vs the analytic sensitivities of appendix C.

Appendix C of seed 000 derives the cut coefficients from the radial structure.
Its formulas hold exactly in LinDist3Flow where they apply: a DER at a node
directly below the slack node (so the path to it is one line) and at a leaf (so
no downstream redistribution, C12/C13's alpha terms vanish):

- C8  (i = j):      d|v_j^phi1|^2 / dp_j^phi2 = MP_line[phi1, phi2]  (the line into j; the
                    appendix writes the same entry as -M^P[phi2, phi1] with its own
                    sign and index convention; the printed C4/C5 have typos, so the
                    coupling matrices of the case README, verified against OpenDSS,
                    are used)
- C11 (slack node): 0 (node 2 is held at 1 pu; not a row at all here)
- C13 (leaf DER):   dP_ij/dp_j = -1
- C14:              dQ_ij/dp_j = 0

The cut's coefficient on the DER meter is d(sum_l y_l u_l)/dx with x = -p_DER
(injections are positive when drawn from the grid).
"""
from __future__ import annotations

import numpy as np
import pytest

from agents.tes.operator import DSO
from network.lindist3flow import coupling_matrices
from network.model import PHASES, Feeder, FeederLine, FeederNode, MeterLocation

R3 = np.array([[0.6545, 0.1278, 0.1373], [0.1278, 0.6660, 0.1440], [0.1373, 0.1440, 0.6877]]) * 0.3 / 0.0484
X3 = np.array([[0.6060, 0.3096, 0.2497], [0.3096, 0.5863, 0.2822], [0.2497, 0.2822, 0.5501]]) * 0.3 / 0.0484


def _feeder(three_phase: bool, p_max: float = np.inf, q_max: float = np.inf) -> Feeder:
    ph = "abc" if three_phase else "a"
    r = R3 if three_phase else np.array([[R3[0, 0]]])
    x = X3 if three_phase else np.array([[X3[0, 0]]])
    nodes = [FeederNode("0", ph, None, 0.95, 1.05), FeederNode("1", ph, "0", 0.95, 1.05),
             FeederNode("2", ph, "0", 0.95, 1.05)]
    lines = [FeederLine("L1", "0", "1", ph, r, x, p_max=p_max, q_max=q_max),
             FeederLine("L2", "0", "2", ph, r * 0.5, x * 0.5, p_max=p_max, q_max=q_max)]
    return Feeder("F", nodes, lines, n_phases=3 if three_phase else 1, s_base_kva=1000.0)


def _meters(three_phase: bool, der_phase: str) -> dict[str, MeterLocation]:
    ph = "abc" if three_phase else "a"
    return {"DER": MeterLocation("F", "1", der_phase), "LOAD1": MeterLocation("F", "1", ph),
            "LOAD2": MeterLocation("F", "2", ph)}


@pytest.mark.parametrize("three_phase,der_phase", [(False, "a"), (True, "a"), (True, "b"), (True, "c")])
def test_voltage_cut_matches_c8(three_phase: bool, der_phase: str) -> None:
    f = _feeder(three_phase)
    dso = DSO("TESO", f, _meters(three_phase, der_phase))
    # a large DER injection at node 1 pushes its voltage above 1.05 on the DER's phase
    p = {"DER": np.array([-40.0]), "LOAD1": np.array([3.0]), "LOAD2": np.array([5.0])}
    q = {"LOAD1": np.array([1.0]), "LOAD2": np.array([1.5])}
    res = dso.check_schedule(p, q)
    assert len(res.cuts) == 1 and "voltage_max" in res.cuts[0].families
    viol = dso.violated_limits(p, q)
    frame = PHASES if three_phase else "a"
    mp, _ = coupling_matrices(f.lines[0].r, f.lines[0].x, f.lines[0].phases, frame)
    # analytic (C8): sum over the violated voltage rows phi1 of d w_1^phi1 / d p_DER^phi2,
    # times d p_DER^phi2 / d x_DER = -1/s_base (kW -> pu; single-phase DER puts all its power on its phase)
    k = frame.index(der_phase)
    expected = 0.0
    for v in viol:  # the mutual coupling may also pull another phase below 0.95 (voltage_min)
        assert v["family"] in ("voltage_max", "voltage_min") and " at 1 " in v["where"]
        phi1 = frame.index(v["where"].split()[-1])
        sign = 1.0 if v["family"] == "voltage_max" else -1.0  # u = w - vmax^2  or  u = vmin^2 - w
        expected += sign * -mp[phi1, k] / 1000.0
    assert res.cuts[0].coefficients["DER"] == pytest.approx(expected, rel=1e-9)
    # node 2 shares no line with node 1, so a cut on node 1 does not involve LOAD2 (C11: the slack is fixed)
    assert abs(res.cuts[0].coefficients.get("LOAD2", 0.0)) < 1e-15


def test_flow_cut_matches_c13_c14() -> None:
    f = _feeder(False, p_max=0.02, q_max=0.4)  # 20 kW per phase
    dso = DSO("TESO", f, _meters(False, "a"))
    p = {"DER": np.array([-30.0]), "LOAD1": np.array([2.0]), "LOAD2": np.array([1.0])}
    q = {"LOAD1": np.array([0.5]), "LOAD2": np.array([0.2])}
    res = dso.check_schedule(p, q)
    (cut,) = res.cuts
    assert "line_p_min" in cut.families  # reverse flow on L1 beyond 20 kW
    # u = -P_L1 - p_max, P_L1 = (LOAD1 + x_DER)/s_base: d u / d x_DER = -1/1000, i.e. C13: dP/dp_DER = -1
    assert cut.coefficients["DER"] == pytest.approx(-1.0 / 1000.0 + _vrow(dso, p, q), rel=1e-9)
    # C14: the DER (active power only) has no reactive coefficient
    assert "DER#q" not in cut.coefficients


def _vrow(dso: DSO, p: dict, q: dict) -> float:
    """Voltage-limit part of the DER coefficient (0 if no voltage limit is violated)."""
    mp, _ = coupling_matrices(dso.feeder.lines[0].r, dso.feeder.lines[0].x, "a", "a")
    return sum(-mp[0, 0] / 1000.0 for v in dso.violated_limits(p, q) if v["family"] == "voltage_max")


def test_cut_is_exact_for_the_affine_model() -> None:
    """The cut equals E* at x* and is a valid inequality: it bounds the violation sum below."""
    f = _feeder(True)
    dso = DSO("TESO", f, _meters(True, "abc"))
    rng = np.random.default_rng(1)
    p = {"DER": np.array([-70.0]), "LOAD1": np.array([3.0]), "LOAD2": np.array([5.0])}
    q = {"LOAD1": np.array([1.0]), "LOAD2": np.array([1.5])}
    (cut,) = dso.check_schedule(p, q).cuts
    x = {"DER": -70.0, "LOAD1": 3.0, "LOAD2": 5.0, "LOAD1#q": 1.0, "LOAD2#q": 1.5}
    val = cut.constant + sum(c * x[k] for k, c in cut.coefficients.items())
    assert val == pytest.approx(cut.violation, rel=1e-9)
    for _ in range(20):  # at any other point the cut is at most the true E*
        x2 = {k: v * rng.uniform(0, 2) for k, v in x.items()}
        p2 = {k: np.array([x2[k]]) for k in ("DER", "LOAD1", "LOAD2")}
        q2 = {k: np.array([x2[k + "#q"]]) for k in ("LOAD1", "LOAD2")}
        e2 = float(dso.check_schedule(p2, q2).violation[0])
        assert cut.constant + sum(c * x2[k] for k, c in cut.coefficients.items()) <= e2 + 1e-8


@pytest.mark.parametrize("failing", [{"CLARABEL"}, {"CLARABEL", "HIGHS"}])
def test_slack_lp_falls_back_or_fails_loudly(monkeypatch, failing) -> None:
    """A failed slack LP is solved by the next solver (same cut), or the error names the operator and problem."""
    import cvxpy as cp

    from agents.base import SolveError

    p = {"DER": np.array([-40.0]), "LOAD1": np.array([3.0]), "LOAD2": np.array([5.0])}
    q = {"LOAD1": np.array([1.0]), "LOAD2": np.array([1.5])}
    (ref,) = DSO("TESO", _feeder(True), _meters(True, "a")).check_schedule(p, q).cuts
    orig = cp.Problem.solve

    def solve(self, *args, **kwargs):
        if kwargs.get("solver") in failing:
            raise cp.error.SolverError(f"Solver '{kwargs.get('solver')}' failed (forced by the test)")
        return orig(self, *args, **kwargs)

    monkeypatch.setattr(cp.Problem, "solve", solve)
    dso = DSO("TESO", _feeder(True), _meters(True, "a"))
    if failing == {"CLARABEL"}:
        (cut,) = dso.check_schedule(p, q).cuts
        exact = sum(v["excess"] for v in dso.violated_limits(p, q, tol=0.0))  # E* = sum of max(0, u_l)
        assert cut.violation == pytest.approx(exact, rel=1e-12)  # HiGHS: a vertex, exact
        assert ref.violation == pytest.approx(exact, rel=1e-7)  # Clarabel: an interior point, to its tolerance
        assert cut.coefficients.keys() == ref.coefficients.keys()
        for k, v in ref.coefficients.items():
            assert cut.coefficients[k] == pytest.approx(v, rel=1e-9, abs=1e-15)
    else:
        with pytest.raises(SolveError, match=r"TESO: slack problem \(A5\)-\(A6\).*CLARABEL.*HIGHS") as ei:
            dso.check_schedule(p, q)
        assert ei.value.agent == "TESO" and ei.value.iteration == 1
