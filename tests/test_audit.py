"""The audit log and ``run.py audit``: a fresh run of each protocol verifies; tampering, forged content, a
recorded violation and a reused log are caught (exit 1, the first offending line named)."""
from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coordinator.auditlog import FILE_MODE, AuditLogExists
from coordinator.boundary import COORDINATOR, Boundary, read_audit_log, read_audit_records
from coordinator.messages import Action, Command, FeasibilityCut, decode, encode
from coordinator.runtime import LocalRuntime
from coordinator.tes.policy import TES_POLICY
from coordinator.tes.schema import dims as tes_dims
from coordinator.tes.setup import TESConfig, make_hosts
from scenarios.registry import load_case
from scenarios.runs import file_mode

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def tes_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tes") / "run"
    p = _run("tes-day", "--out", str(out), cwd=out.parent)
    assert p.returncode == 0, p.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def tso_dso_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tso_dso") / "run"
    p = _run("tso-dso", "--scenarios", "2", "--oos", "3", "--schemes", "cm,fc", "--out", str(out), cwd=out.parent)
    assert p.returncode == 0, p.stderr[-2000:]
    return out


def _lines(path: Path) -> list[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8").read().splitlines()
    return path.read_text(encoding="utf-8").splitlines()


def _write(folder: Path, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "audit.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _rechain(lines: list[str]) -> list[str]:
    """Renumber and re-hash every line (what a forger with write access does)."""
    out, prev = [], None
    for i, line in enumerate(lines, start=1):
        rec = json.loads(line)
        rec.pop("prev", None)
        rec["n"] = i
        rec = {"n": i, **{k: v for k, v in rec.items() if k != "n"}, "prev": prev}
        text = json.dumps(rec, separators=(",", ":"), allow_nan=False)
        out.append(text)
        prev = hashlib.sha256(text.encode()).hexdigest()
    return out


def _audit(target: Path, capsys) -> tuple[int, str]:
    """``run.py audit`` in process: (exit status, stderr)."""
    from coordinator.audit import main

    rc = main(target, quiet=True)
    return rc, capsys.readouterr().err


def _first_route(lines: list[str], kind: str) -> int:
    return next(i for i, line in enumerate(lines) if '"rec":"route"' in line and f'"type":"{kind}"' in line)


# ------------------------------------------------------------------ fresh runs verify
def test_audit_passes_on_a_fresh_tes_run(tes_run, tmp_path):
    p = _run("audit", str(tes_run), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "audit.jsonl.gz: verified" in p.stdout and "hash chain intact" in p.stdout
    for title in ("Messages: who sent what to whom", "Information received", "Analyst channel reads"):
        assert title in p.stdout
    assert "FeasibilityCut" in p.stdout and "TESO" in p.stdout
    recs = read_audit_records(tes_run / "audit.jsonl.gz")
    assert recs[0]["rec"] == "header" and recs[0]["protocol"] == "tes" and recs[-1]["rec"] == "end"
    routed = {r["seq"] for r in recs if r["rec"] == "route"}
    delivered = [s for r in recs if r["rec"] == "delivery" for s in r["seqs"]]
    assert len(delivered) == len(set(delivered)) and set(delivered) <= routed
    assert {r["what"] for r in recs if r["rec"] == "analyst_read"} == {"report", "solves"}
    assert (os.stat(tes_run / "audit.jsonl.gz").st_mode & 0o777) == file_mode()


def test_audit_passes_on_a_fresh_tso_dso_run(tso_dso_run, tmp_path):
    p = _run("audit", str(tso_dso_run), "--quiet", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "protocol tso-dso" in p.stdout and "audit: OK (1 log(s))" in p.stdout
    assert not (tso_dso_run / "audit.jsonl").exists()  # tso-dso logs are written gzipped
    recs = read_audit_records(tso_dso_run / "audit.jsonl.gz")
    # the TSO's reports are delivered to the coordinator; fc's schedules carry no price
    to_me = {s for r in recs if r["rec"] == "delivery" and r["receiver"] == COORDINATOR for s in r["seqs"]}
    assert to_me and all(r["type"] in ("MasterBound", "RealTimeBounds", "IterationBounds")
                         for r in recs if r["rec"] == "route" and r["seq"] in to_me)
    fc = [r for r in recs if r["rec"] == "route" and r["type"] == "IterationBounds"
          and r["payload"]["scheme"] == "fc"]
    assert fc and all(r["payload"]["price"] is None for r in fc)
    # a single log file verifies too, gzipped or not
    plain = tmp_path / "audit.jsonl"
    with gzip.open(tso_dso_run / "audit.jsonl.gz", "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert _run("audit", str(plain), "--quiet", cwd=tmp_path).returncode == 0


# ------------------------------------------------------------------ tampering
def test_changing_one_number_is_caught(tes_run, tmp_path):
    lines = _lines(tes_run / "audit.jsonl.gz")
    i = _first_route(lines, "FeasibilityCut")
    rec = json.loads(lines[i])
    old = rec["payload"]["constant"]
    lines[i] = lines[i].replace(json.dumps(old), json.dumps(old + 1e-3), 1)
    assert lines[i] != _lines(tes_run / "audit.jsonl.gz")[i]
    p = _run("audit", str(_write(tmp_path / "changed", lines)), cwd=tmp_path)
    assert p.returncode == 1
    assert f"line {i + 1}: changed after it was written" in p.stderr, p.stderr


def test_deleting_a_line_is_caught(tes_run, tmp_path):
    lines = _lines(tes_run / "audit.jsonl.gz")
    i = _first_route(lines, "Injections")
    del lines[i]
    p = _run("audit", str(_write(tmp_path / "deleted", lines)), cwd=tmp_path)
    assert p.returncode == 1
    assert f"line {i + 1}: numbered {i + 2} where {i + 1} was expected" in p.stderr, p.stderr


def test_swapping_two_lines_is_caught(tes_run, tmp_path):
    lines = _lines(tes_run / "audit.jsonl.gz")
    i = _first_route(lines, "Offer")
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    p = _run("audit", str(_write(tmp_path / "swapped", lines)), cwd=tmp_path)
    assert p.returncode == 1
    assert f"line {i + 1}: numbered {i + 2} where {i + 1} was expected" in p.stderr, p.stderr


def test_cutting_the_log_short_is_caught(tes_run, tmp_path, capsys):
    lines = _lines(tes_run / "audit.jsonl.gz")[:-3]
    rc, err = _audit(_write(tmp_path / "short", lines), capsys)
    assert rc == 1 and "ends without its end record" in err, err


# ------------------------------------------------------------------ forged content with a valid chain
@pytest.mark.parametrize("forge, what", [
    # an injection keyed by a feeder node instead of a meter
    (lambda rec: rec["payload"]["p"].update({"13": rec["payload"]["p"].pop("RL1")}), "field 'p': has keys ['13']"),
    # an impedance field smuggled into a cut
    (lambda rec: rec["payload"].update(impedances=[[0.3, 0.1], [0.1, 0.3]]), "has no field(s) ['impedances']"),
    # a cut constant that is a tensor
    (lambda rec: rec["payload"].update(constant=[[0.30075068] * 3] * 3), "field 'constant': must be a float"),
])
def test_forged_messages_are_rechecked(tes_run, tmp_path, capsys, forge, what):
    lines = _lines(tes_run / "audit.jsonl.gz")
    kind = "Injections" if "'p'" in what else "FeasibilityCut"
    i = _first_route(lines, kind)
    rec = json.loads(lines[i])
    forge(rec)
    lines[i] = json.dumps(rec, separators=(",", ":"))
    rc, err = _audit(_write(tmp_path / "forged", _rechain(lines)), capsys)
    assert rc == 1
    assert f"line {i + 1}: " in err and what in err, err


def test_a_forged_second_delivery_is_caught(tes_run, tmp_path, capsys):
    lines = _lines(tes_run / "audit.jsonl.gz")
    i = next(k for k, line in enumerate(lines) if '"rec":"delivery"' in line)
    lines.insert(i + 1, lines[i])
    rc, err = _audit(_write(tmp_path / "twice", _rechain(lines)), capsys)
    assert rc == 1 and f"line {i + 2}: delivers seq" in err and "a second time" in err


def test_a_forged_policy_is_caught(tes_run, tmp_path, capsys):
    lines = _lines(tes_run / "audit.jsonl.gz")
    head = json.loads(lines[0])
    head["policy"]["rules"].append(["tes.operator", "tes.der_manager", ["FeasibilityCut"]])
    lines[0] = json.dumps(head, separators=(",", ":"))
    rc, err = _audit(_write(tmp_path / "policy", _rechain(lines)), capsys)
    assert rc == 1 and "line 1: the policy recorded in the log is not the code's policy 'tes'" in err


def test_a_non_finite_number_is_not_strict_json(tes_run, tmp_path, capsys):
    lines = _lines(tes_run / "audit.jsonl.gz")
    i = _first_route(lines, "FeasibilityCut")
    rec = json.loads(lines[i])
    lines[i] = lines[i].replace(json.dumps(rec["payload"]["violation"]), "NaN", 1)
    rc, err = _audit(_write(tmp_path / "nan", lines), capsys)
    assert rc == 1 and f"line {i + 1}: not a strict JSON line (NaN is not strict JSON)" in err


# ------------------------------------------------------------------ the log itself
def _tes_boundary(path: Path) -> tuple[Boundary, LocalRuntime]:
    case = load_case("tes_feeder")
    b = Boundary(path)
    b.use(TES_POLICY, tes_dims(case))
    rt = LocalRuntime(b)
    rt.add_all(make_hosts(case, TESConfig()))
    return b, rt


def test_a_recorded_violation_fails_the_audit(tmp_path, capsys):
    b, rt = _tes_boundary(tmp_path / "audit.jsonl")
    with pytest.raises(Exception):
        b.route(FeasibilityCut("TESO", "LA", 1, period=99, coefficients={"RL1": 1.0}), produced_by="TESO")
    rt.shutdown()
    b.close()
    rc, err = _audit(tmp_path, capsys)
    assert rc == 1 and "the run recorded a boundary violation: FeasibilityCut from TESO to LA: field " \
                                  "'period'" in err, err


def test_full_precision_and_round_trip(tmp_path):
    b, rt = _tes_boundary(tmp_path / "audit.jsonl")
    x = 0.1 + 0.2
    cut = FeasibilityCut("TESO", "LA", 1, period=3, coefficients={"RL1": x, "RL2": -1e-300}, constant=math.pi,
                         violation=5e-324, families=("voltage_max",))
    b.route(cut, produced_by="TESO")
    b.close()
    (rec,) = [r for r in read_audit_log(tmp_path / "audit.jsonl") if r["type"] == "FeasibilityCut"]
    assert rec["payload"]["coefficients"] == {"RL1": x, "RL2": -1e-300} and rec["payload"]["constant"] == math.pi
    assert rec["payload"]["violation"] == 5e-324
    assert encode(decode(rec))["payload"] == encode(cut)["payload"]


def test_an_existing_log_is_never_appended_to(tmp_path, tes_run):
    path = tmp_path / "audit.jsonl"
    Boundary(path).close()
    with pytest.raises(AuditLogExists, match="an audit log exists already"):
        Boundary(path)
    out = tmp_path / "again"
    shutil.copytree(tes_run, out)
    p = _run("tes-day", "--out", str(out), cwd=tmp_path)
    assert p.returncode == 1 and "audit.jsonl.gz: an audit log exists already" in p.stderr, p.stderr
    assert _lines(out / "audit.jsonl.gz") == _lines(tes_run / "audit.jsonl.gz")  # untouched


def test_log_mode_follows_the_run_folders_policy(tmp_path):
    old = os.umask(0o027)
    try:
        Boundary(tmp_path / "audit.jsonl").close()
        assert file_mode() == 0o640
    finally:
        os.umask(old)
    assert FILE_MODE == 0o644 and (os.stat(tmp_path / "audit.jsonl").st_mode & 0o777) == 0o640


def test_the_header_names_run_protocol_and_policy(tmp_path):
    b, rt = _tes_boundary(tmp_path / "audit.jsonl")
    rt.exchange(rt.send([Command(COORDINATOR, "MG", 1, action=Action.OPEN)]))
    b.close()
    recs = read_audit_records(tmp_path / "audit.jsonl")
    head = recs[0]
    assert head["format"] == "tdmarket-audit/1" and len(head["run"]) == 32 and head["protocol"] == "tes"
    assert head["policy"]["name"] == "tes" and head["dims"] == {"tes": {"hours": 24, "scenarios": {}}}
    assert [r["rec"] for r in recs[1:5]] == ["party"] * 4
    assert np.all([r["n"] == k for k, r in enumerate(recs, start=1)])


# ------------------------------------------------------------------ written off the critical path, compressed
def test_a_compressed_log_written_in_the_background_verifies_and_catches_tampering(tmp_path, tes_run):
    """A log written to ``audit.jsonl.gz`` by the writer thread verifies; a changed number in it is caught."""
    from coordinator.auditlog import iter_lines

    folder = tmp_path / "gz"
    folder.mkdir()
    b, rt = _tes_boundary(folder / "audit.jsonl.gz")
    assert b._log._thread.is_alive()  # the writer thread
    b.route(FeasibilityCut("TESO", "LA", 1, period=3, coefficients={"RL1": 0.5}, constant=math.pi, violation=0.25,
                           families=("voltage_max",)), produced_by="TESO")
    rt.checkpoint()  # flushes the log: what was written so far is readable from the compressed file
    assert len(list(iter_lines(folder / "audit.jsonl.gz"))) == b._log.lines  # a stream not yet ended
    rt.shutdown()
    b.close()
    assert gzip.open(folder / "audit.jsonl.gz").read(1)  # really gzip
    p = _run("audit", str(folder), "--quiet", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    lines = gzip.open(folder / "audit.jsonl.gz", "rt", encoding="utf-8").read().splitlines()
    i = _first_route(lines, "FeasibilityCut")
    lines[i] = lines[i].replace(json.dumps(math.pi), json.dumps(math.pi + 1e-3), 1)
    bad = tmp_path / "bad"
    bad.mkdir()
    with gzip.open(bad / "audit.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    p = _run("audit", str(bad), cwd=tmp_path)
    assert p.returncode == 1 and f"line {i + 1}: changed after it was written" in p.stderr, p.stderr


def test_a_failing_writer_thread_is_reported_to_the_writer(tmp_path):
    b, rt = _tes_boundary(tmp_path / "audit.jsonl")
    b._log._raw.close()  # the file goes away under the writer thread
    rt.send([])
    with pytest.raises(OSError, match="writing the audit log .* failed"):
        b.flush()
