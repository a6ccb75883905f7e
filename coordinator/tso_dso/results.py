"""Results of the ``tso-dso`` protocol: per scheme, per evaluation, per wind level; welfare and congestion figures.

Units: $ per market day (welfare, costs), MW (quantities, exchanges). Welfare is
``SW = SW_DA - real-time cost``; the Benders bounds are of the minimisation of ``-SW_DA +
E[real-time cost]``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from agents.tso_dso.day_ahead import DAMarket

from .setup import QUANTILES

__all__ = ["welfare_stats", "congestion", "Evaluation", "SchemeResult", "LevelResult"]


def welfare_stats(sw: np.ndarray, quantiles: Sequence[float] = QUANTILES) -> dict[str, float]:
    sw = np.asarray(sw, dtype=float)
    out = {"expected": float(sw.mean()), "std": float(sw.std(ddof=0))}
    for q in quantiles:
        out[f"q{int(round(q * 100)):02d}"] = float(np.quantile(sw, q))
    return out


def congestion(flows: np.ndarray, ratings: np.ndarray, margin: float = 10.5) -> dict[str, Any]:
    """Both congestion metrics of the reference note, from TSO line flows ``(n_line, S)``.

    ``expected_count``: expected number of TSO lines within ``margin`` MW of their
    rating (the paper's code); ``p_two_or_more``: probability that at least two TSO
    lines are congested (the appendix caption).
    """
    f = np.abs(np.asarray(flows, dtype=float))
    r = np.asarray(ratings, dtype=float)[:, None]
    cong = (r - f) < margin
    n = cong.sum(axis=0)
    return {"expected_count": float(n.mean()), "p_two_or_more": float((n >= 2).mean()),
            "per_line": cong.mean(axis=1), "per_scenario": n}


@dataclass
class Evaluation:
    """Real-time costs of a scheme's day-ahead decision on a scenario set."""

    scheme: str
    scenario_set: str
    da_welfare: float
    rt_cost: np.ndarray  # (S,) real-time cost per scenario (decomposed, upper value)
    lower: np.ndarray  # (S,) the TSO's lower bound per scenario
    rounds: int
    congestion: dict[str, Any]
    relaxation_gap: pd.DataFrame  # feeder, scenario, gap_mw2, gap_rel_rating (max over the feeder's lines)
    diagnostics: pd.DataFrame  # feeder, scenario, slack, v_min, v_max, losses, shed
    time_s: float
    pcc: np.ndarray  # (E, S)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # the real-time dispatch (outputs.py)
    line_ids: list[str] = field(default_factory=list)  # TSO lines, in the order of congestion["per_line"]
    ratings: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def welfare(self) -> np.ndarray:
        return self.da_welfare - self.rt_cost

    def stats(self) -> dict[str, float]:
        return {"da_welfare": self.da_welfare, "expected_rt_cost": float(self.rt_cost.mean()),
                **{f"sw_{k}": v for k, v in welfare_stats(self.welfare).items()}}


@dataclass
class SchemeResult:
    scheme: str
    converged: bool
    stop_reason: str
    iterations: pd.DataFrame
    lower: float
    upper: float
    gap: float
    x: np.ndarray
    caps: np.ndarray
    price: float
    market: DAMarket
    time_s: float
    scale: float = math.nan  # the stopping rule's welfare scale W ($)
    in_sample: Evaluation | None = None
    out_of_sample: Evaluation | None = None
    master_solutions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_iterations(self) -> int:
        return len(self.iterations)

    @property
    def da_welfare(self) -> float:
        return -self.market.cost(self.x)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scheme": self.scheme, "iterations": self.n_iterations, "converged": self.converged,
                               "gap": self.gap, "lower": self.lower, "upper": self.upper, "welfare_scale": self.scale,
                               "time_s": self.time_s,
                               "da_price": self.price, "da_welfare": self.da_welfare}
        if self.in_sample is not None:
            out.update({f"in_{k}": v for k, v in self.in_sample.stats().items()})
        if self.out_of_sample is not None:
            out.update({f"oos_{k}": v for k, v in self.out_of_sample.stats().items()})
            out["oos_congestion_count"] = self.out_of_sample.congestion["expected_count"]
            out["oos_congestion_p2"] = self.out_of_sample.congestion["p_two_or_more"]
            out["oos_time_s"] = self.out_of_sample.time_s
        return out


@dataclass
class LevelResult:
    factor: float
    penetration_in: float
    penetration_oos: float
    schemes: dict[str, SchemeResult]
    time_s: float
    messages: list[dict]
    congestion_margin: float = 10.5  # MW (the congestion metric's margin)
    solves: pd.DataFrame | None = None  # which solver produced each result (coordinator/solves.py)

    def summary(self) -> pd.DataFrame:
        rows = []
        for r in self.schemes.values():
            rows.append({"factor": self.factor, "penetration_in": self.penetration_in,
                         "penetration_oos": self.penetration_oos, **r.summary()})
        return pd.DataFrame(rows)
