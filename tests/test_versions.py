"""The tested versions: constraints.txt pins the solver stack for every supported Python, and run
manifests record what was installed and whether it matches."""
from __future__ import annotations

import json
import sys

from scenarios import versions
from scenarios.runs import RunFolder

CORE = ("numpy", "scipy", "cvxpy", "clarabel", "highspy", "pyscipopt", "pandas", "networkx", "ray", "mesa", "pytest")


def test_constraints_pin_the_core_packages_for_this_python():
    pins = versions.pinned()
    missing = [p for p in CORE if p not in pins]
    assert not missing, f"constraints.txt does not pin {missing} for Python {sys.version_info[:2]}"


def test_markers_select_the_python(tmp_path):
    f = tmp_path / "c.txt"
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    f.write_text(f'# header\nfoo==1.0\nbar==2.0; python_version == "{py}"\nbar==3.0; python_version == "2.7"\n'
                 "Baz_Qux==4.0  # comment\n")
    assert versions.pinned(f) == {"foo": "1.0", "bar": "2.0", "baz-qux": "4.0"}


def test_differences_are_reported(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("numpy==0.0.1\n")
    diff = versions.differences(f)
    assert diff["numpy"][1] == "0.0.1" and diff["numpy"][0] is not None


def test_manifest_records_versions_and_constraints(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.write_manifest("x", {})
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert set(CORE) - {"pytest"} <= set(m["versions"])
    assert m["constraints"]["file"] == "constraints.txt" and len(m["constraints"]["sha256"]) == 64
    assert isinstance(m["constraints"]["matches"], bool)
