"""``python3 run.py study STUDY_FILE``: a strategic study, dispatched by the study file's ``protocol``.

The study file is TOML; its ``protocol`` key (default ``"tes"``) picks the module that checks
and runs it, from :data:`PROTOCOLS`. A protocol's study module has two functions:

- ``load(raw: dict, file: str) -> dict``: the checked study of the parsed file (a
  :class:`network.errors.CaseError` names the file, the key and what is wrong); the dict has
  ``"protocol"`` and ``"file"``;
- ``run(args: argparse.Namespace, study: dict) -> int``: run it (``args.out``, ``args.resume``);
  the exit status.

The ``tes`` study is :mod:`scenarios.study_tes`, the ``tso-dso`` study
:mod:`scenarios.study_tso_dso` (their file formats are in their docstrings).
"""
from __future__ import annotations

import argparse
import importlib
import tomllib
from pathlib import Path
from typing import Any

from network.errors import CaseError

#: protocol -> the module of its study (``load`` and ``run``, see the module docstring)
PROTOCOLS: dict[str, str] = {"tes": "scenarios.study_tes", "tso-dso": "scenarios.study_tso_dso"}


def strategy_tables(raw: dict[str, Any], file: str, example: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """The checked strategy tables of a study file: ``[default]`` and each ``[agents.<id>]`` -> (strategy name,
    its parameters). A CaseError names the file and the table when one is not a table with a known
    ``strategy`` whose parameters the strategy takes; ``example``: an agent table to show, e.g. ``agents.DER1``."""
    from agents.strategies import STRATEGIES, make_strategy

    agents = raw.get("agents", {})
    if not isinstance(agents, dict):
        raise CaseError(f"must be a table of agent tables ([{example}])", file=file, column="agents")
    tables = {"default": raw.get("default", {"strategy": "marginal-cost"})} | {f"agents.{a}": t
                                                                                for a, t in agents.items()}
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for key, t in tables.items():
        if not isinstance(t, dict) or "strategy" not in t:
            raise CaseError("must be a table with a 'strategy'", file=file, column=key)
        params = {k: v for k, v in t.items() if k != "strategy"}
        if t["strategy"] not in STRATEGIES:
            raise CaseError(f"unknown strategy {t['strategy']!r} (known: {', '.join(STRATEGIES)})", file=file,
                            column=f"{key}.strategy")
        try:
            make_strategy(t["strategy"], strict=True, **params)
        except (ValueError, TypeError) as exc:
            raise CaseError(str(exc), file=file, column=key) from None
        out[key] = (t["strategy"], params)
    return out


def read_toml(path: str | Path) -> dict[str, Any]:
    """The parsed study file; a CaseError names the file when it cannot be read or parsed."""
    f = str(path)
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CaseError(f"cannot read the study file: {exc.strerror}", file=f) from None
    except tomllib.TOMLDecodeError as exc:
        raise CaseError(f"not valid TOML: {exc}", file=f) from None


def study_module(protocol: Any, file: str) -> Any:
    """The study module of ``protocol`` (a CaseError naming the file and ``protocol`` if there is none)."""
    if not isinstance(protocol, str) or protocol not in PROTOCOLS:
        raise CaseError(f"no study for protocol {protocol!r} (known: {', '.join(sorted(PROTOCOLS))})", file=file,
                        column="protocol")
    return importlib.import_module(PROTOCOLS[protocol])


def load_study(path: str | Path) -> dict[str, Any]:
    """The checked study of a TOML file, by its protocol's study module."""
    raw = read_toml(path)
    return study_module(raw.get("protocol", "tes"), str(path)).load(raw, str(path))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", help="a study file (TOML), e.g. scenarios/studies/tes_monopoly.toml")
    p.add_argument("--out", default=None, help="run folder (default: results/study-<time>)")
    p.add_argument("--resume", action="store_true", help="go on from the last finished day of the run in --out")


def run(args: argparse.Namespace) -> int:
    study = load_study(args.study)
    return study_module(study["protocol"], study["file"]).run(args, study)
