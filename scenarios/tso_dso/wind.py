"""Correlated wind-power scenarios for the ``tso-dso`` protocol (seed 004).

The model (``docs/tso_dso_reference.md``, "Wind scenarios"):

- the output of the wind farms is multivariate normal, negative draws set to 0;
- mean at wind factor ``f``: ``f * s_r * sum_d Pmax_d`` with ``s_r`` the farm's
  ``mean_share`` (case column) and ``sum_d Pmax_d`` the total demand capacity;
- standard deviation ``sigma_r = sd_fraction * mean_r(f=1)`` (0.1 in the case), the
  same at every ``f``: only the mean moves with the wind level;
- correlation ``rho_ij = a * exp(-d_ij / kappa) - b`` (a = 1.1, b = 0.1, kappa = 1)
  with ``d_ij`` the Euclidean distance between the farms' ``(x, y)``;
  ``Sigma_ij = sigma_i sigma_j rho_ij``.

Sampling and reproducibility
----------------------------
A scenario at wind level ``f`` is ``max(0, mean(f) + z)`` where ``z ~ N(0, Sigma)``
is drawn from a seeded stream. Because ``Sigma`` does not depend on ``f``, the same
deviations ``z`` serve every level: **common random numbers** across the sweep
(scenario ``k`` at two levels differs only by the mean shift, before truncation).

The in-sample and the out-of-sample sets come from two independent child streams
of ``numpy.random.SeedSequence(seed)`` (``spawn(2)``), so they are disjoint and
each is reproducible on its own: asking for more out-of-sample scenarios never
changes the in-sample ones, and the first ``n`` scenarios of a stream do not
depend on how many are drawn (draws are made row by row from the stream).

Nothing here is random without a seed. Shapes: arrays of scenarios are
``(n_farms, n_scenarios)`` (one column per scenario, the convention of the
network builders); farm order is the case's unit order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from network.errors import CaseError
from network.model import Case

__all__ = ["WindModel", "WindScenarios", "IN_SAMPLE", "OUT_OF_SAMPLE", "wind_levels"]

IN_SAMPLE = "in_sample"
OUT_OF_SAMPLE = "out_of_sample"
_STREAMS = (IN_SAMPLE, OUT_OF_SAMPLE)


def wind_levels(n: int = 20, lo: float = 0.05, hi: float = 1.5) -> np.ndarray:
    """The sweep's wind factors: ``linspace(lo, hi, n)`` (the paper's 0.05 .. 1.5, 20 levels)."""
    if n < 1:
        raise ValueError(f"the number of wind levels must be >= 1, got {n}")
    return np.linspace(lo, hi, n) if n > 1 else np.array([lo])


@dataclass(frozen=True)
class WindScenarios:
    """In-sample and out-of-sample wind scenarios at one wind level.

    ``in_sample`` ``(n_farms, S)`` and ``out_of_sample`` ``(n_farms, S_oos)`` in the
    case's power unit; scenarios are equiprobable (``probabilities``). ``da_offer``
    is the in-sample mean per farm (the day-ahead wind offer).
    """

    farm_ids: tuple[str, ...]
    factor: float
    seed: int
    in_sample: np.ndarray
    out_of_sample: np.ndarray
    mean: np.ndarray  # the distribution's (untruncated) mean at this factor
    total_demand: float

    @property
    def n_in(self) -> int:
        return int(self.in_sample.shape[1])

    @property
    def n_oos(self) -> int:
        return int(self.out_of_sample.shape[1])

    @property
    def probabilities(self) -> np.ndarray:
        return np.full(self.n_in, 1.0 / self.n_in)

    @property
    def da_offer(self) -> np.ndarray:
        """The day-ahead wind offer per farm: the in-sample mean."""
        return self.in_sample.mean(axis=1)

    def penetration(self, which: str = OUT_OF_SAMPLE) -> float:
        """Mean over the set of ``sum_r W_r / sum_d Pmax_d`` (the sweep's x-axis)."""
        w = self.out_of_sample if which == OUT_OF_SAMPLE else self.in_sample
        return float(w.sum(axis=0).mean() / self.total_demand)

    def farm(self, farm_id: str, which: str = IN_SAMPLE) -> np.ndarray:
        """One farm's scenarios ``(S,)``."""
        w = self.out_of_sample if which == OUT_OF_SAMPLE else self.in_sample
        return w[self.farm_ids.index(farm_id)].copy()


@dataclass(frozen=True)
class WindModel:
    """The wind-farm scenario model of a case (see the module docstring)."""

    farm_ids: tuple[str, ...]
    shares: np.ndarray
    xy: np.ndarray
    total_demand: float
    sd_fraction: float = 0.1
    kappa: float = 1.0
    a: float = 1.1
    b: float = 0.1
    _chol: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        shares = np.asarray(self.shares, dtype=float).reshape(-1)
        xy = np.asarray(self.xy, dtype=float).reshape(-1, 2)
        n = len(self.farm_ids)
        if shares.shape != (n,) or xy.shape != (n, 2):
            raise ValueError(f"{n} farms but shares {shares.shape} and coordinates {xy.shape}")
        if n == 0:
            raise ValueError("the case has no wind farms")
        for name, v in (("total demand", self.total_demand), ("sd fraction", self.sd_fraction),
                        ("kappa", self.kappa)):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v}")
        if np.any(~np.isfinite(shares)) or np.any(shares < 0):
            raise ValueError(f"mean shares must be finite and >= 0, got {shares}")
        if np.any(~np.isfinite(xy)):
            raise ValueError("farm coordinates must be finite")
        object.__setattr__(self, "shares", _ro(shares))
        object.__setattr__(self, "xy", _ro(xy))
        cov = self.covariance()
        # Cholesky of the covariance (a zero-variance farm gets a zero row)
        sd = self.std
        pos = sd > 0
        chol = np.zeros((n, n))
        if pos.any():
            rho = self.correlation()[np.ix_(pos, pos)]
            try:
                lr = np.linalg.cholesky(rho)
            except np.linalg.LinAlgError:
                raise ValueError("the correlation matrix a*exp(-d/kappa)-b is not positive definite for these "
                                 "farm coordinates") from None
            chol[np.ix_(pos, pos)] = sd[pos, None] * lr
        assert np.allclose(chol @ chol.T, cov, rtol=1e-12, atol=1e-9)
        object.__setattr__(self, "_chol", _ro(chol))

    # ------------------------------------------------------------------ building
    @classmethod
    def from_case(cls, case: Case, *, sd_fraction: float | None = None) -> "WindModel":
        """The model of ``case``: its wind units (kind ``wind``) and its parameters.

        ``total_demand`` is the sum of the loads' ``p_max``; the correlation and
        spread parameters come from ``case.json`` (``wind_sd_fraction``,
        ``wind_corr_kappa``, ``wind_corr_a``, ``wind_corr_b``).
        """
        farms = [u for u in case.units if u.kind == "wind"]
        if not farms:
            raise CaseError(f"case {case.name} has no wind farms (units of kind 'wind'); the tso-dso protocol needs "
                            f"them (see README § case folders)", file="units.csv", column="kind")
        for u in farms:
            for col in ("x", "y", "mean_share"):
                if math.isnan(getattr(u, col)):
                    raise CaseError(f"wind farm {u.id} has no '{col}'", file="units.csv", row=u.row, column=col,
                                    key=u.id)
            if u.mean_share < 0:
                raise CaseError(f"the mean share of wind farm {u.id} must be >= 0, got {u.mean_share!r}",
                                file="units.csv", row=u.row, column="mean_share", key=u.id)
        for i, u in enumerate(farms):
            for w in farms[i + 1:]:
                if (u.x, u.y) == (w.x, w.y):
                    raise CaseError(f"wind farms {u.id} and {w.id} (row {w.row}) are at the same location "
                                    f"({u.x:g}, {u.y:g}): their correlation matrix is singular; move one or "
                                    f"merge them", file="units.csv", row=u.row, column="x", key=u.id)
        p = case.parameters
        try:
            return cls(farm_ids=tuple(u.id for u in farms), shares=np.array([u.mean_share for u in farms]),
                       xy=np.array([[u.x, u.y] for u in farms]),
                       total_demand=float(sum(d.p_max for d in case.loads)),
                       sd_fraction=float(sd_fraction if sd_fraction is not None else p.get("wind_sd_fraction", 0.1)),
                       kappa=float(p.get("wind_corr_kappa", 1.0)), a=float(p.get("wind_corr_a", 1.1)),
                       b=float(p.get("wind_corr_b", 0.1)))
        except ValueError as exc:  # the model's own checks, on the case's wind parameters
            raise CaseError(str(exc), file="case.json", column="parameters") from None

    # ------------------------------------------------------------------- moments
    @property
    def n_farms(self) -> int:
        return len(self.farm_ids)

    def mean(self, factor: float) -> np.ndarray:
        """Expected output per farm at wind factor ``factor`` (before truncation)."""
        _check_factor(factor)
        return factor * self.shares * self.total_demand

    @property
    def std(self) -> np.ndarray:
        """Standard deviation per farm: ``sd_fraction * mean(1)`` (the same at every factor)."""
        return self.sd_fraction * self.shares * self.total_demand

    def distances(self) -> np.ndarray:
        d = self.xy[:, None, :] - self.xy[None, :, :]
        return np.sqrt((d ** 2).sum(axis=2))

    def correlation(self) -> np.ndarray:
        """``rho_ij = a exp(-d_ij / kappa) - b`` for every pair (the diagonal is ``a - b``, 1 in the case)."""
        return self.a * np.exp(-self.distances() / self.kappa) - self.b

    def covariance(self) -> np.ndarray:
        """``Sigma_ij = sigma_i sigma_j rho_ij``."""
        sd = self.std
        return np.outer(sd, sd) * self.correlation()

    # ------------------------------------------------------------------ sampling
    def deviations(self, n: int, *, seed: int = 0, stream: str = IN_SAMPLE) -> np.ndarray:
        """``n`` zero-mean normal deviations ``(n_farms, n)`` with covariance Sigma (not truncated).

        The common random numbers of every wind level: the scenario at factor ``f``
        is ``max(0, mean(f) + deviations)``.
        """
        if stream not in _STREAMS:
            raise ValueError(f"stream must be one of {_STREAMS}, got {stream!r}")
        if n < 0:
            raise ValueError(f"the number of scenarios must be >= 0, got {n}")
        child = np.random.SeedSequence(int(seed)).spawn(2)[_STREAMS.index(stream)]
        rng = np.random.default_rng(child)
        z = rng.standard_normal((n, self.n_farms))  # row by row: a prefix does not depend on n
        return self._chol @ z.T

    def sample(self, factor: float, n: int, *, seed: int = 0, stream: str = IN_SAMPLE) -> np.ndarray:
        """``n`` scenarios ``(n_farms, n)`` at wind factor ``factor``, negative values set to 0."""
        return np.maximum(self.mean(factor)[:, None] + self.deviations(n, seed=seed, stream=stream), 0.0)

    def scenarios(self, factor: float, n_in: int = 20, n_oos: int = 300, *, seed: int = 0) -> WindScenarios:
        """In-sample and (disjoint) out-of-sample scenarios at ``factor``."""
        if n_in < 1:
            raise ValueError(f"at least one in-sample scenario is needed, got {n_in}")
        return WindScenarios(farm_ids=self.farm_ids, factor=float(factor), seed=int(seed),
                             in_sample=_ro(self.sample(factor, n_in, seed=seed, stream=IN_SAMPLE)),
                             out_of_sample=_ro(self.sample(factor, n_oos, seed=seed, stream=OUT_OF_SAMPLE)),
                             mean=_ro(self.mean(factor)), total_demand=self.total_demand)

    def sweep(self, factors: Iterable[float], n_in: int = 20, n_oos: int = 300, *,
              seed: int = 0) -> list[WindScenarios]:
        """Scenario sets at several wind levels with common random numbers."""
        return [self.scenarios(f, n_in, n_oos, seed=seed) for f in factors]


def _check_factor(factor: float) -> None:
    if not (isinstance(factor, (int, float, np.floating)) and math.isfinite(factor) and factor >= 0):
        raise ValueError(f"the wind factor must be a finite number >= 0, got {factor!r}")


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a
