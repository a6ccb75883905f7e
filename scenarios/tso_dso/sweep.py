"""``python run.py tso-dso-sweep``: the wind sweep of the tso-dso protocol (see :mod:`scenarios.tso_dso.cli`)."""
from __future__ import annotations

from .cli import add_sweep_arguments as add_arguments
from .cli import run_sweep as run

__all__ = ["add_arguments", "run"]
