"""The dashboard's Mesa model: a study's run folder replayed day by day.

``step()`` re-reads the run folder's tables (only when a file changed on disk) and moves to the next day
that is there, so a study that is still running shows its new days as they are written; ``goto(day)`` is
the page's day slider. The model holds no market: the study's own model wrote the tables.
"""
from __future__ import annotations

import os
from pathlib import Path

import mesa

from .tables import StudyInfo, Tables, check_run_folder, read_info, read_tables

#: the environment variable that gives the page its run folder (set by ``run.py dashboard``)
ENV_RUN_FOLDER = "TDMARKET_DASHBOARD_RUN"
TABLES = ("manifest.json", "days.parquet", "agents.parquet", "participants.parquet")


class StudyReplay(mesa.Model):
    """A study's days, one per ``step()``. ``day`` is the day shown (None before the first day is written);
    the model starts on the last day written (``start="last"``) or on the first (``start="first"``).
    ``running`` stays True while the study runs or days remain to replay."""

    def __init__(self, run_folder: str | None = None, start: str = "last") -> None:
        super().__init__()
        self.folder: Path = check_run_folder(run_folder or os.environ.get(ENV_RUN_FOLDER, ""))
        self._stamp: tuple = ()
        self.tables_version = 0  # +1 each time the tables are re-read (the page's figures depend on it)
        self.info: StudyInfo
        self.tables: Tables
        self.refresh()
        days = self.tables.day_numbers
        self.day: int | None = (days[-1] if start == "last" else days[0]) if days else None
        self._update_running()

    # ------------------------------------------------------------------ the folder

    def _files_stamp(self) -> tuple:
        out = []
        for name in TABLES:
            try:
                st = (self.folder / name).stat()
                out.append((name, st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((name, None, None))
        return tuple(out)

    def refresh(self) -> bool:
        """Re-read the manifest and tables if a file changed on disk; True if they did."""
        stamp = self._files_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        self.tables_version += 1
        self.info = read_info(self.folder)
        self.tables = read_tables(self.folder, self.info.protocol)
        return True

    # ------------------------------------------------------------------ days

    @property
    def days(self) -> list[int]:
        """The study days written so far."""
        return self.tables.day_numbers

    @property
    def last_day(self) -> int | None:
        days = self.days
        return days[-1] if days else None

    def _update_running(self) -> None:
        self.running = self.info.status == "running" or (self.day is not None and self.day != self.last_day)

    def goto(self, day: int) -> None:
        """Show ``day`` (the nearest day written if that one is not)."""
        days = self.days
        if days:
            self.day = min(days, key=lambda d: (abs(d - int(day)), d))
        self._update_running()

    def step(self) -> None:
        """The next day: re-read the folder, then move one day on if there is one."""
        self.refresh()
        later = [d for d in self.days if self.day is None or d > self.day]
        if later:
            self.day = later[0]
        self._update_running()
