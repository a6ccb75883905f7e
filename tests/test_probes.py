"""Malformed-input probes through the command line's one error path: file-system oddities,
encodings, protocol set-up and ids. Each ends with exit status 2 and one line on stderr naming
the file (and the column where there is one), and leaves no run folder marked complete.

Rows are 1-based data rows (see tests/test_validation.py for the row maps of the built-in cases).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import pytest

import run as cli
from scenarios import runs
from tests.test_validation import copy_case, delete_rows, rows_of, set_cell, write_rows


def _meta(folder: Path, change: Callable[[dict], None]) -> None:
    m = json.loads((folder / "case.json").read_text())
    change(m)
    (folder / "case.json").write_text(json.dumps(m))


def _text(name: str, text: str | bytes) -> Callable[[Path], None]:
    def go(folder: Path) -> None:
        p = folder / name
        p.unlink()
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return go


def _reencode(name: str, encoding: str) -> Callable[[Path], None]:
    def go(folder: Path) -> None:
        p = folder / name
        p.write_bytes(p.read_text(encoding="utf-8").encode(encoding))
    return go


def _param(key: str, value: object) -> Callable[[Path], None]:
    return lambda f: _meta(f, lambda m: m["parameters"].__setitem__(key, value))


def _cell(file: str, row: int, col: str, value: str) -> Callable[[Path], None]:
    return lambda f: set_cell(f, file, row, col, value)


def _replace(name: str, make: Callable[[Path], None]) -> Callable[[Path], None]:
    def go(folder: Path) -> None:
        (folder / name).unlink()
        make(folder / name)
    return go


def _header_only(name: str) -> Callable[[Path], None]:
    return lambda f: write_rows(f / name, rows_of(f / name)[:1])


def _no_loads_of(owner: str) -> Callable[[Path], None]:
    return lambda f: delete_rows(f, "loads.csv", lambda r: r["owner"] != owner)


def _nul(name: str) -> Callable[[Path], None]:
    def go(folder: Path) -> None:
        p = folder / name
        b = p.read_bytes()
        p.write_bytes(b[:40] + b"\x00" + b[40:])
    return go


TES, TSO = ("tes-day", "tes_feeder"), ("tso-dso", "tso24_dso5")
EXTRA = {"tes-day": ["--no-benchmarks"], "tso-dso": ["--scenarios", "2", "--oos", "0", "--schemes", "cm"]}

# (id, command and case, how to break the case, words the one line must contain)
PROBES = [
    # --- file system
    ("case.json FIFO", TES, _replace("case.json", lambda p: os.mkfifo(p)), ["case.json", "FIFO"]),
    ("buses.csv directory", TSO, _replace("buses.csv", lambda p: p.mkdir()), ["buses.csv", "is a directory"]),
    ("branches.csv dangling link", TSO, _replace("branches.csv", lambda p: os.symlink("x.csv", p)),
     ["branches.csv", "dangling symbolic link"]),
    ("profiles.csv empty", TES, _text("profiles.csv", b""), ["profiles.csv", "empty"]),
    ("feeder_nodes.csv link loop", TES, _replace("feeder_nodes.csv", lambda p: os.symlink(p.name, p)),
     ["feeder_nodes.csv", "symbolic link loop"]),
    ("owners.csv socket-free FIFO", TSO, _replace("owners.csv", lambda p: os.mkfifo(p)), ["owners.csv", "FIFO"]),
    # --- encodings
    ("owners.csv UTF-16", TES, _reencode("owners.csv", "utf-16"), ["owners.csv", "UTF-8"]),
    ("loads.csv latin-1", TES, lambda f: _text("loads.csv", (f / "loads.csv").read_text().replace("RL1", "RL\u00e91")
                                               .encode("latin-1"))(f), ["loads.csv", "UTF-8"]),
    ("units.csv NUL byte", TES, _nul("units.csv"), ["units.csv"]),
    ("case.json UTF-16", TES, _reencode("case.json", "utf-16"), ["case.json", "UTF-8"]),
    ("case.json a list", TES, _text("case.json", "[1, 2]"), ["case.json", "JSON object"]),
    ("case.json trailing garbage", TES, lambda f: (f / "case.json").write_text((f / "case.json").read_text() + "}x"),
     ["case.json", "invalid JSON"]),
    # --- protocol set-up: tes
    # several feeders are a tes case now (one market per feeder); a T&D case has no main grid
    ("tes on a T&D case", ("tes-day", "tso24_dso5"), lambda f: None, ["owners.csv", "column 'role'",
                                                                      "exactly one main_grid owner", "has 0"]),
    ("tes LA role changed", TES, _cell("owners.csv", 2, "role", "der_manager"),
     ["owners.csv", "column 'role'", "exactly one load_aggregator owner", "has none"]),
    ("tes operator role changed", TES, _cell("owners.csv", 3, "role", "der_manager"),
     ["owners.csv", "column 'role'", "exactly one dso owner"]),
    ("tes main grid without price", TES, _cell("units.csv", 5, "price_profile", ""),
     ["units.csv", "row 5 (MG)", "column 'price_profile'"]),
    ("tes units header only", TES, _header_only("units.csv"), ["units.csv", "column 'owner'", "supply point"]),
    ("tes retail min not a number", TES, _param("retail_price_min", "cheap"),
     ["case.json", "column 'parameters.retail_price_min'", "'cheap'"]),
    ("tes retail min above max", TES, _param("retail_price_min", 0.5),
     ["case.json", "column 'parameters.retail_price_min'", "exceeds retail_price_max"]),
    ("tes retail cap a bool", TES, _param("retail_price_sum_cap", True),
     ["case.json", "column 'parameters.retail_price_sum_cap'"]),
    ("tes DER floor null-like string", TES, _param("der_price_cap_floor", "0.16"),
     ["case.json", "column 'parameters.der_price_cap_floor'"]),
    ("tes customer without alpha", TES, _cell("loads.csv", 2, "alpha_profile", ""),
     ["loads.csv", "row 2 (RL2)", "column 'alpha_profile'"]),
    ("tes customer without beta", TES, _cell("loads.csv", 7, "beta", ""),
     ["loads.csv", "row 7 (IL1)", "column 'beta'"]),
    ("tes LA without customers", TES, _no_loads_of("LA"), ["loads.csv", "column 'owner'", "owns no loads"]),
    ("tes two main grids", TES, lambda f: (f / "owners.csv").write_text((f / "owners.csv").read_text()
                                                                        + "MG2,main_grid,\n"),
     ["owners.csv", "column 'role'", "exactly one main_grid owner", "MG, MG2"]),
    # --- protocol set-up: tso-dso
    ("tso-dso on a feeder case", ("tso-dso", "tes_feeder"), lambda f: None,
     ["owners.csv", "column 'role'", "exactly one tso owner"]),
    ("tso-dso two TSOs", TSO, _cell("owners.csv", 2, "role", "tso"),
     ["owners.csv", "column 'role'", "exactly one tso owner", "TSO, DSO1"]),
    ("tso-dso area without DSO", TSO, _cell("owners.csv", 4, "role", "der_manager"),
     ["owners.csv", "column 'role'", "no dso owner for area 3"]),
    ("tso-dso feeder without PCC", TSO, lambda f: _meta(f, lambda m: m["feeders"][0].__setitem__("pcc_bus", None)),
     ["case.json", "column 'feeders.pcc_bus'", "feeder F1 has no PCC bus"]),
    ("tso-dso wind farm without x", TSO, _cell("units.csv", 20, "x", ""), ["units.csv", "row 20 (W1)", "column 'x'"]),
    ("tso-dso co-located farms", TSO, _cell("units.csv", 21, "x", "0.0"),
     ["units.csv", "column 'x'", "same location"]),
    # --- ids
    ("owner id coordinator", TES, lambda f: (_cell("owners.csv", 4, "owner_id", "coordinator")(f),
                                             _cell("units.csv", 5, "owner", "coordinator")(f)),
     ["owners.csv", "row 4", "column 'owner_id'", "reserved"]),
    ("feeder id T", TES, lambda f: _meta(f, lambda m: m["feeders"][0].__setitem__("id", "T")),
     ["case.json", "reserved for the transmission grid"]),
]


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch):
    monkeypatch.setattr(runs, "ACTIVE", [])


@pytest.mark.parametrize("name, cmd, breakit, words", PROBES, ids=[p[0] for p in PROBES])
def test_probe(tmp_path, capsys, name, cmd, breakit, words):
    command, case = cmd
    folder = copy_case(tmp_path, case)
    breakit(folder)
    out = tmp_path / "out"
    rc = cli.main([command, "--case", str(folder), "--out", str(out), *EXTRA[command]])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    for w in words:
        assert w in err[0], (w, err[0])
    m = out / "manifest.json"
    assert not m.exists() or json.loads(m.read_text())["status"] != "complete"


def test_enough_probes():
    assert len(PROBES) >= 30
