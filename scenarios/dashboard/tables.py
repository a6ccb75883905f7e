"""A study's run folder as the dashboard reads it: what study it is, and its tables in one shape for both
protocols.

``run.py study`` writes (atomically, after every finished day) ``days.parquet`` (one row per day) and
``agents.parquet`` (one row per day and agent); a ``tes`` study also writes ``participants.parquet`` (the
Mesa DataCollector's rows, the load aggregator included). A ``tso-dso`` study adds the competitive run's
figures as ``<column>_comp``. This module only reads: :func:`check_run_folder` says whether a folder is a
study's, :func:`read_info` what study it is, :func:`read_tables` its tables now (a study still running has
fewer days than planned; a table not written yet is an empty frame).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

MANIFEST = "manifest.json"


class DashboardError(Exception):
    """A folder the dashboard cannot show (one line: where and what)."""


@dataclass(frozen=True)
class StudyInfo:
    """What the manifest says: the study's name (its file's stem), protocol, status and planned days."""

    folder: Path
    name: str
    protocol: str
    status: str
    days_planned: int | None


@dataclass(frozen=True)
class Metric:
    """A per-day figure: its column in ``days``, label, format and (if the table has it) the competitive column."""

    column: str
    label: str
    fmt: str
    comp: str | None = None


@dataclass
class Tables:
    """``days`` (one row per day, sorted), ``agents`` (day, agent, profit, markup [, profit_comp]), the protocol's
    price and metric columns that exist, and the units of prices and markups."""

    days: pd.DataFrame
    agents: pd.DataFrame
    prices: list[Metric] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    price_unit: str = "$/kWh"

    @property
    def day_numbers(self) -> list[int]:
        return [int(d) for d in self.days["day"]] if "day" in self.days else []

    def day_row(self, day: int) -> pd.Series | None:
        rows = self.days[self.days["day"] == day] if "day" in self.days else self.days.iloc[0:0]
        return None if rows.empty else rows.iloc[0]

    def agents_of(self, day: int) -> pd.DataFrame:
        return self.agents[self.agents["day"] == day] if "day" in self.agents else self.agents


#: per protocol: (column, label, format, competitive column); only the columns a table has are shown
PRICES = {
    "tes": [Metric("lmp_mean", "main-grid LMP, mean", "{:.4f}")],
    "tso-dso": [Metric("da_price", "day-ahead price", "{:.2f}", "da_price_comp")],
}
METRICS = {
    "tes": [Metric("lerner", "Lerner index", "{:.3f}"), Metric("hhi", "HHI", "{:.0f}"),
            Metric("welfare_loss", "welfare loss $", "{:.2f}"),
            Metric("customer_surplus_change", "customer surplus change $", "{:.2f}"),
            Metric("exploitability_max", "exploitability (max) $", "{:.2f}"),
            Metric("retail_margin", "retail margin $/kWh", "{:.4f}"),
            Metric("pivotal_hours", "pivotal hours", "{:.0f}"),
            Metric("iterations", "Benders iterations", "{:.0f}")],
    "tso-dso": [Metric("lerner", "Lerner index", "{:.3f}", "lerner_comp"), Metric("hhi", "HHI", "{:.0f}", "hhi_comp"),
                Metric("welfare_loss", "welfare loss $", "{:.2f}"),
                Metric("exploitability_max", "exploitability (max) $", "{:.2f}"),
                Metric("welfare", "welfare at true costs $", "{:.2f}", "welfare_comp"),
                Metric("caps_dem_mw", "demand caps MW", "{:.1f}", "caps_dem_mw_comp"),
                Metric("iterations", "Benders iterations", "{:.0f}")],
}
PRICE_UNIT = {"tes": "$/kWh", "tso-dso": "$/MWh"}


def fmt(metric: Metric, value: object) -> str:
    """``value`` in ``metric``'s format; '-' for a missing figure."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    try:
        text = metric.fmt.format(float(value))
    except (TypeError, ValueError):
        return str(value)
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.00"


def _manifest(folder: Path) -> dict:
    try:
        m = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DashboardError(f"{folder}: not a run folder (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise DashboardError(f"{folder / MANIFEST}: cannot be read ({exc})") from None
    if not isinstance(m, dict):
        raise DashboardError(f"{folder / MANIFEST}: not a run manifest")
    return m


def check_run_folder(path: str | Path) -> Path:
    """``path`` as a study's run folder, or a :class:`DashboardError` naming what is wrong."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise DashboardError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise DashboardError(f"{folder}: not a folder")
    m = _manifest(folder)
    if m.get("scenario") != "study":
        raise DashboardError(f"{folder}: not a study's run folder (its manifest is of {m.get('scenario')!r}; "
                             "the dashboard shows folders of run.py study)")
    return folder.resolve()


def read_info(folder: Path) -> StudyInfo:
    m = _manifest(folder)
    params = m.get("parameters") or {}
    source = params.get("study") or params.get("file") or folder.name
    days = params.get("days")
    return StudyInfo(folder=folder, name=Path(str(source)).stem, protocol=str(params.get("protocol", "tes")),
                     status=str(m.get("status", "unknown")), days_planned=days if isinstance(days, int) else None)


def _read(folder: Path, name: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(folder / name)
    except FileNotFoundError:
        return pd.DataFrame()


def read_tables(folder: Path, protocol: str) -> Tables:
    """The tables as they are on disk now, in the dashboard's shape."""
    days = _read(folder, "days.parquet")
    agents = _read(folder, "participants.parquet") if protocol == "tes" else pd.DataFrame()
    per_agent = _read(folder, "agents.parquet")
    if agents.empty:
        agents = per_agent
    if not days.empty:
        days = days.sort_values("day").reset_index(drop=True)
        if "exploitability_max" not in days and "exploitability" in per_agent:
            worst = per_agent.groupby("day")["exploitability"].max()
            days["exploitability_max"] = days["day"].map(worst)
    keep = [c for c in ("day", "agent", "role", "side", "strategy", "profit", "profit_comp", "markup")
            if c in agents]
    agents = agents[keep].sort_values(["day", "agent"]).reset_index(drop=True) if not agents.empty else agents
    return Tables(days=days, agents=agents,
                  prices=[p for p in PRICES.get(protocol, []) if p.column in days],
                  metrics=[m for m in METRICS.get(protocol, []) if m.column in days],
                  price_unit=PRICE_UNIT.get(protocol, ""))
