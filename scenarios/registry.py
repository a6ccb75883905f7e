"""Built-in cases and runnable market scenarios, by name.

Cases
-----
The built-in cases are the folders of ``scenarios/data/`` (each holds a ``case.json``).
:func:`load_case` accepts a built-in name or a path to any case folder (or to its
``case.json``) and returns the validated :class:`~network.model.Case`; every problem,
including an unknown name, raises :class:`~network.errors.CaseError`.

Scenarios
---------
A scenario is a module with two functions::

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...   # optional
    def run(args: argparse.Namespace) -> int: ...                      # the exit status

To add one, put a line in :data:`SCENARIOS` (name -> (one-line description, module
path)). ``run.py`` lists every entry in ``--help`` and imports a scenario's module
only when that scenario is run (so listing them stays fast and a heavy import of
one does not slow down the others). ``run.py`` gives every scenario the common
options ``--out`` and ``--seed`` (see :func:`scenarios.runs.add_run_arguments`)
before calling the module's ``add_arguments``.
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

from network.errors import CaseError
from network.io import read_case
from network.model import F_META, Case

DATA = Path(__file__).parent / "data"


# ------------------------------------------------------------------------ cases


def case_names() -> list[str]:
    """Names of the built-in cases (sub-folders of ``scenarios/data`` with a ``case.json``)."""
    if not DATA.is_dir():
        return []
    return sorted(p.name for p in DATA.iterdir() if (p / F_META).is_file())


def list_cases() -> list[tuple[str, str]]:
    """``(name, description)`` of every built-in case; the description is case.json's."""
    out = []
    for name in case_names():
        try:
            meta = json.loads((DATA / name / F_META).read_text(encoding="utf-8"))
            desc = str(meta.get("description", "")) if isinstance(meta, dict) else ""
        except (OSError, ValueError):
            desc = "(case.json cannot be read)"
        out.append((name, desc))
    return out


def case_folder(name_or_path: str | Path) -> Path:
    """The folder of a built-in case (by name) or of a case given by path.

    A built-in name wins over a folder of the same name in the current directory;
    write ``./tes_feeder`` to mean the latter.
    """
    s = str(name_or_path)
    if s in case_names():
        return DATA / s
    p = Path(name_or_path)
    if p.is_file() and p.name == F_META:
        return p.parent
    if p.is_dir():
        return p
    builtin = ", ".join(case_names()) or "none"
    raise CaseError(f"unknown case '{s}': not a built-in case ({builtin}) and not a case folder")


def load_case(name_or_path: str | Path) -> Case:
    """Read and validate a built-in case (by name) or a case folder (by path)."""
    return read_case(case_folder(name_or_path))


# -------------------------------------------------------------------- scenarios


class ScenarioEntry(NamedTuple):
    description: str
    module: str  # import path of a module with run(args) -> int and, optionally, add_arguments(parser)


#: name -> (one-line description, module path). Add new scenarios here.
SCENARIOS: dict[str, ScenarioEntry] = {
    "tes-day": ScenarioEntry("personalized-preserving Benders market on a distribution feeder (seed 000), day by day",
                             "scenarios.tes.cli"),
    "tso-dso": ScenarioEntry("TSO-DSO coordination under wind uncertainty (seed 004): pcc, cm and fc at one wind "
                             "level, with out-of-sample evaluation", "scenarios.tso_dso.cli"),
    "tso-dso-sweep": ScenarioEntry("the tso-dso schemes over a sweep of wind levels (parallel, --resume)",
                                   "scenarios.tso_dso.sweep"),
}


def register(name: str, description: str, module: str) -> None:
    """Add a scenario at run time (tests, plug-ins). Built-in scenarios go in :data:`SCENARIOS`."""
    if name in SCENARIOS:
        raise ValueError(f"scenario '{name}' is already registered")
    SCENARIOS[name] = ScenarioEntry(description, module)


def list_scenarios() -> list[tuple[str, str]]:
    """``(name, description)`` of every registered scenario, in registration order."""
    return [(name, e.description) for name, e in SCENARIOS.items()]


def load_scenario(name: str) -> ModuleType:
    """Import the module of scenario ``name`` and check that it has ``run``."""
    try:
        entry = SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario '{name}'; known: {', '.join(SCENARIOS) or 'none'}") from None
    mod = importlib.import_module(entry.module)
    if not callable(getattr(mod, "run", None)):
        raise TypeError(f"scenario module {entry.module} has no run(args) function")
    return mod
