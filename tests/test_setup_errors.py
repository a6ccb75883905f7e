"""Protocol set-up errors are bad input: one line naming file, row and column, exit status 2, and
no run folder marked complete."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from network.errors import CaseError
from network.io import read_case
from scenarios.tso_dso.wind import WindModel
from tests.test_validation import copy_case, set_cell

ROOT = Path(__file__).resolve().parent.parent
# units.csv of tso24_dso5: W1 is data row 20, W2 row 21 (row 0 is the header)
W1, W2 = 20, 21


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def _no_complete_folder(out: Path) -> None:
    m = out / "manifest.json"
    assert not m.exists() or json.loads(m.read_text())["status"] != "complete"


def test_negative_mean_share_names_file_row_farm(tmp_path):
    folder = copy_case(tmp_path, "tso24_dso5")
    set_cell(folder, "units.csv", W2, "mean_share", "-0.1")
    with pytest.raises(CaseError) as err:
        WindModel.from_case(read_case(folder))
    e = err.value
    assert (e.file, e.row, e.column, e.key) == ("units.csv", W2, "mean_share", "W2"), str(e)


def test_co_located_farms_are_named(tmp_path):
    folder = copy_case(tmp_path, "tso24_dso5")
    set_cell(folder, "units.csv", W2, "x", "0.0")  # W1 is at (0, 0)
    with pytest.raises(CaseError, match=r"units.csv, row 20 \(W1\), column 'x': wind farms W1 and W2 \(row 21\) "
                                        r"are at the same location"):
        WindModel.from_case(read_case(folder))


def test_wind_errors_on_the_command_line(tmp_path):
    folder = copy_case(tmp_path, "tso24_dso5")
    set_cell(folder, "units.csv", W1, "mean_share", "-1")
    out = tmp_path / "out"
    proc = _cli(["tso-dso", "--case", str(folder), "--scenarios", "2", "--oos", "0", "--out", str(out)], tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and "units.csv, row 20 (W1), column 'mean_share'" in lines[0], lines
    _no_complete_folder(out)


def test_reserved_owner_id_is_refused_at_reading(tmp_path):
    from coordinator.boundary import COORDINATOR

    folder = copy_case(tmp_path, "tes_feeder")
    set_cell(folder, "owners.csv", 4, "owner_id", COORDINATOR)  # MG's owner row
    set_cell(folder, "units.csv", 5, "owner", COORDINATOR)
    with pytest.raises(CaseError) as err:
        read_case(folder)
    e = err.value
    assert (e.file, e.row, e.column) == ("owners.csv", 4, "owner_id") and "reserved" in e.message, str(e)


def test_feeder_named_T_is_refused_in_case_json(tmp_path):
    folder = copy_case(tmp_path, "tes_feeder")
    meta = json.loads((folder / "case.json").read_text())
    old = meta["feeders"][0]["id"]
    meta["feeders"][0]["id"] = "T"
    (folder / "case.json").write_text(json.dumps(meta))
    for name in ("feeder_nodes.csv", "feeder_lines.csv", "units.csv", "loads.csv"):
        p = folder / name
        lines = p.read_text().splitlines()
        head = lines[0].split(",")
        col = head.index("feeder" if "feeder" in head else "grid")
        out = [lines[0]]
        for line in lines[1:]:
            cells = line.split(",")
            if cells[col] == old:
                cells[col] = "T"
            out.append(",".join(cells))
        p.write_text("\n".join(out) + "\n")
    with pytest.raises(CaseError) as err:
        read_case(folder)
    assert err.value.file == "case.json" and "reserved for the transmission grid" in err.value.message, str(err.value)
