"""Case files that are not plain readable files: each is a CaseError naming the file, never a
traceback, a hang or a silently missing table. Through ``read_case`` and through the command line
(exit status 2, one line on stderr)."""
from __future__ import annotations

import builtins
import os
import subprocess
import sys
from pathlib import Path

import pytest

from network.errors import CaseError
from network.io import read_case
from tests.test_validation import copy_case

ROOT = Path(__file__).resolve().parent.parent


def _replace(folder: Path, name: str, make) -> None:
    (folder / name).unlink()
    make(folder / name)


@pytest.mark.parametrize("name, make, words", [
    ("owners.csv", lambda p: p.mkdir(), "is a directory"),
    ("case.json", lambda p: p.mkdir(), "is a directory"),
    ("units.csv", lambda p: os.symlink(p.name, p), "symbolic link loop"),
    ("loads.csv", lambda p: os.symlink("nowhere.csv", p), "dangling symbolic link"),
    ("profiles.csv", lambda p: os.mkfifo(p), "FIFO"),
    ("feeder_lines.csv", lambda p: os.mkfifo(p), "FIFO"),
])
def test_not_a_regular_file(tmp_path, name, make, words):
    folder = copy_case(tmp_path, "tes_feeder")
    _replace(folder, name, make)
    with pytest.raises(CaseError) as err:
        read_case(folder)
    assert err.value.file == name and words in str(err.value), str(err.value)


def test_optional_tables_absent_are_still_fine(tmp_path):
    folder = copy_case(tmp_path, "tes_feeder")
    (folder / "units.csv").unlink()
    assert read_case(folder).units == ()


def test_byte_order_mark_is_dropped(tmp_path):
    folder = copy_case(tmp_path, "tes_feeder")
    for name in ("units.csv", "case.json"):
        p = folder / name
        p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    case = read_case(folder)
    assert [u.id for u in case.units][:2] == ["G1", "G2"]


def test_unreadable_file(tmp_path, monkeypatch):
    folder = copy_case(tmp_path, "tes_feeder")
    real_open = builtins.open

    def deny(path, *a, **k):  # root reads mode-000 files, so the refusal is simulated
        if str(path).endswith("loads.csv"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", deny)
    with pytest.raises(CaseError, match=r"loads.csv: cannot be read: Permission denied"):
        read_case(folder)


def test_not_utf8(tmp_path):
    folder = copy_case(tmp_path, "tes_feeder")
    (folder / "owners.csv").write_bytes("owner_id,role\nDERM\xe9,der_manager\n".encode("latin-1"))
    with pytest.raises(CaseError, match=r"owners.csv: cannot read the file as UTF-8"):
        read_case(folder)


@pytest.mark.parametrize("name, make, words", [
    ("profiles.csv", lambda p: os.mkfifo(p), "profiles.csv: is a FIFO"),
    ("loads.csv", lambda p: os.symlink("gone.csv", p), "loads.csv: is a dangling symbolic link"),
])
def test_command_line_one_line_exit_2(tmp_path, name, make, words):
    folder = copy_case(tmp_path, "tes_feeder")
    _replace(folder, name, make)
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "inspect", str(folder), "--no-plot",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], proc.stderr
