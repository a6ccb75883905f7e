"""``python run.py tso-dso-sweep``: the wind sweep of the tso-dso protocol (see :mod:`scenarios.tso_dso`)."""
from __future__ import annotations

from .tso_dso import add_sweep_arguments as add_arguments
from .tso_dso import run_sweep as run

__all__ = ["add_arguments", "run"]
