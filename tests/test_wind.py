"""The correlated wind-scenario generator (scenarios/wind.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from scenarios.registry import load_case
from scenarios.tso_dso.wind import IN_SAMPLE, OUT_OF_SAMPLE, WindModel, wind_levels


@pytest.fixture(scope="module")
def case():
    return load_case("tso24_dso5")


@pytest.fixture(scope="module")
def model(case):
    return WindModel.from_case(case)


def _reference_matrices(case):
    """Sigma and rho computed here, independently, from the reference note's formula and the case data."""
    farms = [u for u in case.units if u.kind == "wind"]
    total = sum(d.p_max for d in case.loads)
    sd = np.array([0.1 * u.mean_share * total for u in farms])
    n = len(farms)
    rho = np.empty((n, n))
    for i, a in enumerate(farms):
        for j, b in enumerate(farms):
            rho[i, j] = 1.1 * math.exp(-math.hypot(a.x - b.x, a.y - b.y) / 1.0) - 0.1
    return np.outer(sd, sd) * rho, rho, sd


def test_case_wind_data(case, model):
    assert model.farm_ids == ("W1", "W2", "W3", "W4", "W5", "W6", "W7")
    assert model.total_demand == pytest.approx(5718.9, abs=1e-9)
    assert model.shares.sum() == pytest.approx(1.0)
    # the mean at factor f is f * share * total demand P max
    np.testing.assert_allclose(model.mean(0.5), 0.5 * np.array([.25, .25, .15, .10, .10, .05, .10]) * 5718.9,
                               rtol=0, atol=1e-9)


def test_covariance_and_correlation_match_the_formula(case, model):
    cov, rho, sd = _reference_matrices(case)
    assert model.covariance().shape == (7, 7)
    np.testing.assert_allclose(model.correlation(), rho, rtol=0, atol=1e-9)
    np.testing.assert_allclose(model.covariance(), cov, rtol=0, atol=1e-9)
    np.testing.assert_allclose(model.std, sd, rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.diag(model.correlation()), 1.0, atol=1e-12)
    # spot values: sigma_1 = 0.1 * 0.25 * 5718.9; rho_12 = 1.1 exp(-0.25) - 0.1
    assert model.covariance()[0, 0] == pytest.approx(142.9725 ** 2, abs=1e-6)
    assert model.correlation()[0, 1] == pytest.approx(1.1 * math.exp(-0.25) - 0.1, abs=1e-12)
    assert np.all(np.linalg.eigvalsh(model.correlation()) > 0)


def test_spread_does_not_depend_on_the_wind_level(model):
    """Only the mean moves with the wind factor (sigma fixed at 0.1 x mean at factor 1)."""
    np.testing.assert_allclose(model.std, 0.1 * model.mean(1.0), rtol=1e-12)
    a = model.sample(0.3, 50, seed=4) - model.mean(0.3)[:, None]
    b = model.sample(1.2, 50, seed=4) - model.mean(1.2)[:, None]
    pos = (model.sample(0.3, 50, seed=4) > 0)
    np.testing.assert_allclose(a[pos], b[pos], atol=1e-9)  # common random numbers


def test_sample_statistics_converge(model):
    n = 200_000
    z = model.deviations(n, seed=11)
    cov = np.cov(z)
    sd = model.std
    # standard error of a covariance entry ~ sd_i sd_j sqrt((1 + rho^2) / n); allow 5 of them
    tol = 5 * np.outer(sd, sd) * np.sqrt((1 + model.correlation() ** 2) / n)
    assert np.all(np.abs(cov - model.covariance()) <= tol)
    assert np.all(np.abs(z.mean(axis=1)) <= 5 * sd / math.sqrt(n))
    np.testing.assert_allclose(np.corrcoef(z), model.correlation(), atol=0.02)
    # at factor 1 the mean is 10 standard deviations above 0: truncation is invisible
    w = model.sample(1.0, n, seed=11)
    np.testing.assert_allclose(w.mean(axis=1), model.mean(1.0), rtol=5e-3)
    assert np.all(np.abs(np.cov(w) - model.covariance()) <= tol)


def test_truncation_at_zero(model):
    w = model.sample(0.05, 2000, seed=3)  # mean = 0.5 sigma: many negative draws
    assert w.min() == 0.0
    assert (w == 0).mean() > 0.1
    assert np.all(w >= 0)


def test_seeded_reproducible_and_disjoint(model):
    ws = model.scenarios(0.7, 20, 300, seed=5)
    again = model.scenarios(0.7, 20, 300, seed=5)
    np.testing.assert_array_equal(ws.in_sample, again.in_sample)
    np.testing.assert_array_equal(ws.out_of_sample, again.out_of_sample)
    assert ws.in_sample.shape == (7, 20) and ws.out_of_sample.shape == (7, 300)
    # disjoint: no out-of-sample scenario equals an in-sample one
    d = np.abs(ws.in_sample[:, :, None] - ws.out_of_sample[:, None, :]).max(axis=0)
    assert d.min() > 1e-6
    # the in-sample set does not depend on how many out-of-sample scenarios are drawn (and vice versa)
    other = model.scenarios(0.7, 20, 10, seed=5)
    np.testing.assert_array_equal(other.in_sample, ws.in_sample)
    np.testing.assert_array_equal(other.out_of_sample, ws.out_of_sample[:, :10])
    assert not np.array_equal(model.scenarios(0.7, 20, 0, seed=6).in_sample, ws.in_sample)
    # day-ahead offer = in-sample mean; equiprobable
    np.testing.assert_allclose(ws.da_offer, ws.in_sample.mean(axis=1))
    np.testing.assert_allclose(ws.probabilities, 1 / 20)


def test_common_random_numbers_across_levels(model):
    levels = wind_levels(20)
    assert levels[0] == pytest.approx(0.05) and levels[-1] == pytest.approx(1.5) and len(levels) == 20
    sets = model.sweep(levels[[3, 12]], 20, 30, seed=2)
    for which in (IN_SAMPLE, OUT_OF_SAMPLE):
        a = getattr(sets[0], which) - sets[0].mean[:, None]
        b = getattr(sets[1], which) - sets[1].mean[:, None]
        keep = getattr(sets[0], which) > 0
        np.testing.assert_allclose(a[keep], b[keep], atol=1e-9)
    # penetration (the sweep's x-axis) grows with the level
    assert sets[0].penetration() < sets[1].penetration()
    assert sets[1].penetration() == pytest.approx(levels[12], rel=0.05)


def test_bad_input(model):
    with pytest.raises(ValueError):
        model.mean(-0.1)
    with pytest.raises(ValueError):
        model.deviations(3, stream="other")
    with pytest.raises(ValueError):
        model.scenarios(1.0, 0, 10)
