"""read -> write -> read gives an identical case, for the built-in cases and every import."""
from __future__ import annotations

from pathlib import Path

import pytest

from network.importers import PANDAPOWER_CASES, import_pandapower_case, read_matpower
from network.io import read_case, write_case

DATA = Path(__file__).resolve().parents[1] / "scenarios" / "data"
CASE9 = Path(__file__).parent / "data" / "case9.m"


@pytest.mark.parametrize("name", ["tes_feeder", "tso24_dso5"])
def test_builtin_roundtrip(name, tmp_path):
    case = read_case(DATA / name)
    write_case(case, tmp_path / name)
    again = read_case(tmp_path / name)
    assert again == case
    # and a second write is byte-identical
    write_case(again, tmp_path / "again")
    for f in sorted((tmp_path / name).iterdir()):
        assert (tmp_path / "again" / f.name).read_bytes() == f.read_bytes(), f.name


@pytest.mark.parametrize("name", PANDAPOWER_CASES)
def test_pandapower_import_roundtrip(name, tmp_path):
    case = import_pandapower_case(name)
    write_case(case, tmp_path / name)
    assert read_case(tmp_path / name) == case


def test_matpower_import_roundtrip(tmp_path):
    case = read_matpower(CASE9)
    write_case(case, tmp_path / "case9")
    assert read_case(tmp_path / "case9") == case


def test_roundtrip_detects_a_change(tmp_path):
    case = read_matpower(CASE9)
    write_case(case, tmp_path / "case9")
    text = (tmp_path / "case9" / "branches.csv").read_text()
    (tmp_path / "case9" / "branches.csv").write_text(text.replace("0.0576", "0.0577"))
    assert read_case(tmp_path / "case9") != case
