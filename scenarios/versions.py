"""Which package versions a run used, and whether they are the tested ones (``constraints.txt``).

Standard library only: ``.ci/versions.py`` uses it before anything else is importable.
"""
from __future__ import annotations

import hashlib
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONSTRAINTS = REPO / "constraints.txt"
#: the libraries whose versions every run manifest records
VERSIONED = ("numpy", "scipy", "cvxpy", "clarabel", "highspy", "pyscipopt", "pandas", "networkx", "ray", "mesa",
             "opendssdirect.py", "dss-python", "tdmarket")

__all__ = ["VERSIONED", "CONSTRAINTS", "versions", "pinned", "differences", "constraints_status"]


def norm(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """Versions of Python and the main libraries (read from package metadata, nothing is imported)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    out.update({d: _version(d) for d in VERSIONED})
    return out


def pinned(path: Path = CONSTRAINTS) -> dict[str, str]:
    """The pins of a constraints file that apply to this Python: ``{name: version}`` (markers: python_version only)."""
    if not path.exists():
        return {}
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" not in line:
            continue
        spec, _, marker = line.partition(";")
        if marker.strip() and f'"{py}"' not in marker:
            continue
        name, ver = spec.split("==", 1)
        out[norm(name.strip())] = ver.strip()
    return out


def differences(path: Path = CONSTRAINTS) -> dict[str, tuple[str | None, str]]:
    """``{name: (installed, pinned)}`` for every pin that this environment does not match."""
    out = {}
    for name, ver in pinned(path).items():
        have = _version(name)
        if have != ver:
            out[name] = (have, ver)
    return out


def constraints_status(path: Path = CONSTRAINTS) -> dict[str, object]:
    """For the run manifest: the constraints file's hash and the packages that differ from it."""
    if not path.exists():
        return {"file": None, "note": "no constraints.txt next to the code (an installed copy): versions above"}
    diff = differences(path)
    return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "matches": not diff, "differs": {k: {"installed": a, "pinned": b} for k, (a, b) in diff.items()}}
