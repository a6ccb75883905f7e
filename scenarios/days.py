"""Days that differ: a seeded generator of a year of ``tes`` market days.

From a case's one-day profiles, :class:`DayGenerator` makes the profiles of any day of a year,
with seasonal and daily patterns and noise:

- **load** (each customer's baseline ``p0``, kW): the case's hourly shape times a seasonal factor
  with two peaks (winter heating around day 15, summer cooling around day 197; +-7 %), a weekend
  factor (0.93 on days 5 and 6 of each week), a daily shock (lognormal, sigma 4 %) shared by all
  customers, and an hourly AR(1) noise per customer (sigma 3 %); the factor stays within [0.8, 1.2].
  Each customer's demand curve moves with its baseline: ``alpha += beta (p0_day - p0_case)``, so
  that it draws the day's baseline at the retail price at which it drew the case's (the case's
  calibration, e.g. ``alpha = retail_price_mid + beta p0``, is kept);
- **LMP** (the main grid's price, $/kWh): the case's hourly shape times the same seasonal factor
  (+-10 %), the load's daily shock amplified 1.5 times (prices follow demand), its own daily
  shock (sigma 6 %) and hourly noise (sigma 3 %); kept >= 0.2 of the case's;
- **PV** availability (kW): a daylight bell around 12:30 whose half-width runs from 4 h (winter
  solstice) to 8 h (summer solstice), peak irradiance from 55 % (winter) to 100 % (summer) of
  the case's PV peak, times a daily clear-sky index (beta distribution, clearer in summer) and an
  hourly cloud noise; within [0, the unit's rating];
- **wind** availability (kW): the case's hourly shape times a seasonal level (windier in winter,
  1.25 vs 0.75 in summer), a daily lognormal level (sigma 30 %) and an hourly AR(1) noise
  (phi 0.8, sigma 15 %); within [0, the unit's rating].

Day ``d`` of a study is day of the year ``(start + d) mod 365`` (day 0 = 1 January; day 172 ~ the
summer solstice); week days follow ``d mod 7`` (5 and 6: the weekend). Each day is drawn from its
own stream ``numpy.random.default_rng([seed, d])``: the same seed gives the same year, and a day's
profiles do not depend on which days were drawn before (``--resume`` continues the same year).
Other profiles (price caps) stay the case's.

Who gets what is decided elsewhere: the agents get only their own part of each day (their
private data set, :func:`coordinator.tes.setup.private_days`); the analyst gets the day's case.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from network.errors import CaseError
from network.model import Case

__all__ = ["DayGenerator", "SUMMER_SOLSTICE", "season"]

SUMMER_SOLSTICE = 172  # day of the year (0 = 1 January)
PV_KINDS, WIND_KINDS = ("pv", "solar"), ("wind", "wt")


def season(doy: int | np.ndarray) -> np.ndarray:
    """+1 at the summer solstice, -1 at the winter solstice (cosine over a 365-day year)."""
    return np.cos(2 * np.pi * (np.asarray(doy, dtype=float) - SUMMER_SOLSTICE) / 365.0)


def _ar1(rng: np.random.Generator, n: int, phi: float, sigma: float, size: tuple[int, ...] = ()) -> np.ndarray:
    """AR(1) noise of stationary standard deviation ``sigma``, ``n`` steps on the last axis."""
    e = rng.normal(0.0, sigma * np.sqrt(1 - phi * phi), size=size + (n,))
    z = np.empty_like(e)
    z[..., 0] = rng.normal(0.0, sigma, size=size)
    for t in range(1, n):
        z[..., t] = phi * z[..., t - 1] + e[..., t]
    return z


@dataclass(frozen=True)
class _Columns:
    lmp: str
    pv: tuple[tuple[str, float], ...]  # (profile column, unit rating kW)
    wind: tuple[tuple[str, float], ...]
    loads: tuple[str, ...]
    alphas: tuple[tuple[str, str, float], ...]  # (alpha column, baseline column, beta)


class DayGenerator:
    """The profiles of each day of a seeded year, from ``case``'s one-day profiles (see the module)."""

    def __init__(self, case: Case, seed: int = 0, start: int = 0) -> None:
        self.case, self.seed, self.start = case, int(seed), int(start)
        mg = [u for u in case.units if u.kind == "main_grid" and u.price_profile]
        if len(mg) != 1:
            raise CaseError(f"the day generator needs one main-grid unit with a price_profile; {case.name} has "
                            f"{len(mg)}", file="units.csv", column="price_profile")
        avail = [u for u in case.units if u.avail_profile]
        self.cols = _Columns(
            lmp=mg[0].price_profile,
            pv=tuple((u.avail_profile, float(u.p_max)) for u in avail if u.kind.lower() in PV_KINDS),
            wind=tuple((u.avail_profile, float(u.p_max)) for u in avail if u.kind.lower() in WIND_KINDS),
            loads=tuple(sorted({ld.baseline_profile for ld in case.loads if ld.baseline_profile})),
            alphas=tuple((ld.alpha_profile, ld.baseline_profile, float(ld.beta)) for ld in case.loads
                         if ld.baseline_profile and ld.alpha_profile and np.isfinite(ld.beta)))
        self.T = case.horizon
        self.base = case.profiles

    def day_of_year(self, d: int) -> int:
        return (self.start + int(d)) % 365

    def profiles(self, d: int) -> pd.DataFrame:
        """The case's profiles table for study day ``d`` (same columns; the generated ones replaced)."""
        rng = np.random.default_rng([self.seed, int(d)])
        doy, T, out = self.day_of_year(d), self.T, self.base.copy()
        s = float(season(doy))
        hours = np.arange(T) % 24 + 0.5
        two_peaks = float(np.cos(4 * np.pi * (doy - 15) / 365.0))  # +1 mid-winter and mid-summer
        weekend = 0.93 if int(d) % 7 in (5, 6) else 1.0
        shock = float(rng.normal(0.0, 0.04))
        # load
        noise = _ar1(rng, T, 0.7, 0.03, (len(self.cols.loads),))
        for k, col in enumerate(self.cols.loads):
            f = np.clip((1 + 0.07 * two_peaks) * weekend * np.exp(shock + noise[k]), 0.8, 1.2)
            out[col] = self.base[col].to_numpy(float) * f
        for a_col, p_col, beta in self.cols.alphas:
            out[a_col] = self.base[a_col].to_numpy(float) + beta * (out[p_col].to_numpy(float)
                                                                    - self.base[p_col].to_numpy(float))
        # LMP
        lmp = self.base[self.cols.lmp].to_numpy(float)
        f = (1 + 0.10 * two_peaks) * np.exp(1.5 * shock + rng.normal(0.0, 0.06) + rng.normal(0.0, 0.03, T))
        out[self.cols.lmp] = np.maximum(lmp * f, 0.2 * lmp)
        # PV: daylight bell, seasonal peak, clear-sky index, clouds
        half = 6.0 + 2.0 * s
        bell = np.clip(np.cos(np.pi * (hours - 12.5) / (2 * half)), 0.0, None) ** 1.5
        bell[np.abs(hours - 12.5) >= half] = 0.0
        amp = 0.775 + 0.225 * s
        clear = rng.beta(2.0 + 2.0 * (s + 1), 2.0)
        for col, rating in self.cols.pv:
            peak = float(np.max(self.base[col].to_numpy(float)))
            clouds = np.exp(rng.normal(0.0, 0.1, T))
            out[col] = np.clip(peak * amp * (0.3 + 0.7 * clear) * bell * clouds, 0.0, rating)
        # wind: seasonal level, daily level, hourly AR(1)
        level = (1.0 - 0.25 * s) * np.exp(rng.normal(-0.045, 0.3))
        for col, rating in self.cols.wind:
            z = _ar1(rng, T, 0.8, 0.15)
            out[col] = np.clip(self.base[col].to_numpy(float) * level * np.exp(z), 0.0, rating)
        return out

    def case_of(self, d: int) -> Case:
        """The case with study day ``d``'s profiles (the analyst's view of the day)."""
        return self.case.replace(profiles=self.profiles(d))

    def year(self, days: int) -> list[pd.DataFrame]:
        """The profiles of study days ``0 .. days - 1``."""
        return [self.profiles(d) for d in range(days)]
