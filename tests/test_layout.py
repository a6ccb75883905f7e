"""The code layout: imports go one way, only the runtime knows Ray, modules stay small.

``scenarios -> coordinator -> agents -> network``: ``network`` imports none of the others;
``agents`` imports neither the coordinator nor the scenarios, and never Ray or Mesa; the
coordinator never imports the scenarios; only ``coordinator/runtime/`` imports Ray. Each check
is also run on a small tree with one violation, to show it fails on what it guards against.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("network", "agents", "coordinator", "scenarios")
#: package -> top-level modules it must never import
FORBIDDEN = {
    "network": {"agents", "coordinator", "scenarios", "ray", "mesa"},
    "agents": {"coordinator", "scenarios", "ray", "mesa"},
    "coordinator": {"scenarios"},
}
#: modules over MAX_LINES, each with the reason it is not split further
MAX_LINES = 550
LARGE_MODULES: dict[str, str] = {}


def imports_of(path: Path, package: str) -> set[str]:
    """Top-level names of every module ``path`` imports (relative imports resolved within ``package``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: stays inside the package
                out.add(package)
            elif node.module:
                out.add(node.module.split(".")[0])
    return out


def violations(root: Path) -> list[str]:
    found = []
    for pkg, banned in FORBIDDEN.items():
        for path in sorted((root / pkg).rglob("*.py")):
            bad = imports_of(path, pkg) & banned
            if bad:
                found.append(f"{path.relative_to(root)} imports {sorted(bad)}")
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root)
            if "ray" in imports_of(path, pkg) and rel.parts[:2] != ("coordinator", "runtime"):
                found.append(f"{rel} imports ray (only coordinator/runtime/ may)")
    return found


def large_modules(root: Path) -> list[str]:
    out = []
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = str(path.relative_to(root))
            n = len(path.read_text(encoding="utf-8").splitlines())
            if n > MAX_LINES and rel not in LARGE_MODULES:
                out.append(f"{rel}: {n} lines")
    return out


def test_imports_go_one_way():
    assert violations(ROOT) == []


def test_the_import_check_fails_on_a_violation(tmp_path):
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "x.py").write_text("from coordinator.messages import Offer\n")
    (tmp_path / "network").mkdir()
    (tmp_path / "network" / "y.py").write_text("import ray\n")
    (tmp_path / "coordinator").mkdir()
    (tmp_path / "coordinator" / "z.py").write_text("from . import w\nimport ray.util\n")
    found = violations(tmp_path)
    assert any("agents/x.py imports ['coordinator']" in f for f in found), found
    assert any("network/y.py imports ['ray']" in f for f in found), found
    assert any("coordinator/z.py imports ray" in f for f in found), found


def test_modules_stay_small():
    assert large_modules(ROOT) == [], f"split these or list them in LARGE_MODULES with a reason (>{MAX_LINES} lines)"


def test_the_size_check_fails_on_a_big_module(tmp_path):
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "big.py").write_text("x = 1\n" * (MAX_LINES + 1))
    assert large_modules(tmp_path) == [f"agents/big.py: {MAX_LINES + 1} lines"]


@pytest.mark.parametrize("pkg", ["agents", "coordinator", "scenarios"])
@pytest.mark.parametrize("protocol", ["tes", "tso_dso"])
def test_one_house_per_protocol(pkg, protocol):
    house = ROOT / pkg / protocol
    assert (house / "__init__.py").exists(), f"{pkg}/{protocol}/ is missing"
