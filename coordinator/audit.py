"""``python3 run.py audit RUN_FOLDER``: verify a run's audit log(s) and show who told whom what.

For each log (``audit.jsonl``, or ``audit/*.jsonl.gz`` of a sweep, or one log file given
directly; gzip is read transparently):

1. **the chain**: every line strict JSON (no NaN or infinity), numbered ``n`` = its line
   number, carrying the SHA-256 of the previous line (``prev``), a header first and an
   ``end`` record last (:mod:`coordinator.auditlog`);
2. **the messages**: the policy named in the header is the code's (same rules), and every
   routed message, rebuilt from its line (:func:`coordinator.messages.decode`), passes the
   same checks as when it was routed (policy, areas, schema, keys; the parties as
   registered in the log); every delivery names routed messages of that receiver, each
   delivered once; no ``violation`` record;
3. **the tables**: messages per sender, receiver and type (count, bytes), the information
   each agent received (types, fields, keys), the analyst channel's reads, and what was
   routed but never delivered.

Exit status 0 when every log is clean, 1 with the first offending line (``<log>, line
<n>: <what>``) otherwise, 2 when there is no log to audit.
"""
from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .auditlog import FORMAT, iter_lines
from .boundary import Boundary, BoundaryViolation, Policy
from .messages import decode
from .schema import Dims
from .tes.policy import TES_POLICY
from .tso_dso.policy import TSO_DSO_POLICY

__all__ = ["POLICIES", "AuditError", "LogReport", "find_logs", "verify_log", "main"]

#: the protocols' policies by name (a composed policy is named "a+b")
POLICIES: dict[str, Policy] = {p.name: p for p in (TES_POLICY, TSO_DSO_POLICY)}


class AuditError(Exception):
    """A log that does not verify: ``line`` (1-based) and what is wrong with it."""

    def __init__(self, path: Path, line: int, what: str) -> None:
        self.path, self.line, self.what = path, line, what
        super().__init__(f"{path}, line {line}: {what}")


@dataclass
class LogReport:
    """What one verified log holds."""

    path: Path
    lines: int = 0
    run: str = ""
    protocol: str = ""
    routed: int = 0
    delivered: int = 0
    sent: Counter = field(default_factory=Counter)  # (sender, receiver, type) -> count
    sent_bytes: Counter = field(default_factory=Counter)
    received: dict = field(default_factory=lambda: defaultdict(lambda: {"count": 0, "fields": set(),
                                                                        "keys": set()}))
    analyst: Counter = field(default_factory=Counter)  # (agent, what) -> count
    analyst_bytes: Counter = field(default_factory=Counter)
    undelivered: Counter = field(default_factory=Counter)  # type -> count


def find_logs(target: Path) -> list[Path]:
    """The audit logs of a run folder (or ``target`` itself if it is a file)."""
    if target.is_file():
        return [target]
    if not target.is_dir():
        return []
    found = [target / n for n in ("audit.jsonl", "audit.jsonl.gz") if (target / n).is_file()]
    # the segments of a resumed multi-day run (tes-day --resume): one log each
    found += sorted(p for p in target.glob("audit.resume-*.jsonl*") if p.is_file())
    sub = target / "audit"
    if sub.is_dir():
        found += sorted(p for p in sub.iterdir() if p.is_file() and p.name.endswith((".jsonl", ".jsonl.gz")))
    return found


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not strict JSON")


def _policy_named(name: str) -> Policy | None:
    parts = [POLICIES.get(n) for n in name.split("+")]
    if not parts or any(p is None for p in parts):
        return None
    policy = parts[0]
    for p in parts[1:]:
        policy = policy.compose(p)  # type: ignore[union-attr]
    return policy


def _chain(path: Path) -> list[tuple[str, dict]]:
    """Pass 1: strict JSON, line numbers, the hash chain, header first and end last."""
    out: list[tuple[str, dict]] = []
    prev: str | None = None
    for i, line in enumerate(iter_lines(path), start=1):
        try:
            rec = json.loads(line, parse_constant=_reject_constant)
        except ValueError as exc:
            raise AuditError(path, i, f"not a strict JSON line ({exc})") from None
        if not isinstance(rec, dict) or "n" not in rec or "rec" not in rec or "prev" not in rec:
            raise AuditError(path, i, "not an audit record (no n, rec and prev)")
        if rec["n"] != i:
            raise AuditError(path, i, f"numbered {rec['n']!r} where {i} was expected: a line is missing before it, "
                                      "or lines were moved")
        if i == 1:
            if rec["rec"] != "header" or rec["prev"] is not None:
                raise AuditError(path, i, "the first line is not the log's header")
        elif rec["prev"] != prev:
            raise AuditError(path, i - 1, f"changed after it was written (its SHA-256 is not the one line {i} "
                                          "carries)")
        if out and out[-1][1]["rec"] == "end":
            raise AuditError(path, i, "a line after the end record")
        prev = hashlib.sha256(line.encode()).hexdigest()
        out.append((line, rec))
    if not out:
        raise AuditError(path, 1, "the log is empty")
    if out[-1][1]["rec"] != "end":
        raise AuditError(path, len(out), "the log ends without its end record (cut short, or the run did not "
                                         "finish)")
    return out


def verify_log(path: Path) -> LogReport:
    """Verify one log (raises :class:`AuditError` at the first offending line); returns its tables."""
    lines = _chain(path)
    rep = LogReport(path, len(lines))
    head = lines[0][1]
    if head.get("format") != FORMAT:
        raise AuditError(path, 1, f"format {head.get('format')!r}, not {FORMAT!r}")
    rep.run, rep.protocol = str(head.get("run", "")), str(head.get("protocol", ""))
    b = Boundary()

    def adopt(i: int, rec: dict) -> None:
        name = str(rec.get("protocol"))
        policy = _policy_named(name)
        if policy is None:
            raise AuditError(path, i, f"unknown protocol policy {name!r} (known: {sorted(POLICIES)})")
        if name != "empty" and policy.describe() != rec.get("policy"):
            raise AuditError(path, i, f"the policy recorded in the log is not the code's policy {name!r}")
        b.policy = policy
        b.dims = {k: Dims.from_json(v) for k, v in (rec.get("dims") or {}).items()}

    if rep.protocol != "empty":
        adopt(1, head)
    routed: dict[int, tuple[str, str, list[str], set[str]]] = {}
    delivered: set[int] = set()
    for i, (line, rec) in enumerate(lines[1:], start=2):
        kind = rec["rec"]
        try:
            if kind == "policy":
                adopt(i, rec)
            elif kind == "party":
                b.register(rec["id"], rec["role"], rec.get("public_ids", ()), rec.get("decision_ids", ()),
                           rec.get("area"))
            elif kind == "route":
                seq = rec.get("seq")
                if seq != rep.routed + 1:
                    raise AuditError(path, i, f"routing seq {seq!r} where {rep.routed + 1} was expected")
                msg = decode({k: rec.get(k) for k in ("type", "sender", "receiver", "round", "payload")})
                for side in ("sender", "receiver"):
                    who = getattr(msg, side)
                    if who in b.parties and rec.get(f"{side}_role") != b.parties[who].role:
                        raise AuditError(path, i, f"{side} {who} is recorded as {rec.get(f'{side}_role')!r}, but "
                                                  f"registered as {b.parties[who].role!r}")
                b.check(msg)
                rep.routed += 1
                payload = rec.get("payload") or {}
                keys = {k for v in payload.values() if isinstance(v, dict) for k in v}
                routed[seq] = (msg.receiver, msg.kind, sorted(payload), keys)
                rep.sent[(msg.sender, msg.receiver, msg.kind)] += 1
                rep.sent_bytes[(msg.sender, msg.receiver, msg.kind)] += len(line) + 1
            elif kind == "delivery":
                rid = rec.get("receiver")
                for seq in rec.get("seqs") or []:
                    if seq not in routed:
                        raise AuditError(path, i, f"delivers seq {seq!r}, which was not routed before")
                    if seq in delivered:
                        raise AuditError(path, i, f"delivers seq {seq} a second time")
                    receiver, mtype, fields, keys = routed[seq]
                    if receiver != rid:
                        raise AuditError(path, i, f"delivers seq {seq} to {rid!r}; it is addressed to {receiver!r}")
                    delivered.add(seq)
                    info = rep.received[(rid, mtype)]
                    info["count"] += 1
                    info["fields"].update(fields)
                    info["keys"].update(keys)
                rep.delivered = len(delivered)
            elif kind == "analyst_read":
                if rec.get("agent") not in b.parties:
                    raise AuditError(path, i, f"an analyst read of {rec.get('agent')!r}, which is not registered")
                rep.analyst[(rec["agent"], rec.get("what"))] += 1
                rep.analyst_bytes[(rec["agent"], rec.get("what"))] += int(rec.get("bytes") or 0)
            elif kind == "violation":
                raise AuditError(path, i, f"the run recorded a boundary violation: {rec.get('error')}")
            elif kind != "end":
                raise AuditError(path, i, f"unknown record kind {kind!r}")
        except BoundaryViolation as exc:
            raise AuditError(path, i, f"the message does not pass the boundary's checks: {exc}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise AuditError(path, i, f"{type(exc).__name__}: {exc}") from None
    for seq, (_, mtype, _, _) in routed.items():
        if seq not in delivered:
            rep.undelivered[mtype] += 1
    return rep


# ------------------------------------------------------------------ tables
def _console() -> Any:
    from rich.console import Console

    c = Console()
    return c if c.is_terminal else Console(width=120)


def _keys_text(keys: set[str], most: int = 6) -> str:
    shown = sorted(keys)
    return f"{len(shown)}: " + ", ".join(shown[:most]) + (" ..." if len(shown) > most else "") if shown else "-"


def tables(reports: list[LogReport]) -> list[Any]:
    """The tables of the verified logs (summed over logs)."""
    from rich.markup import escape
    from rich.table import Table

    sent, sbytes, received, analyst, abytes, undelivered = Counter(), Counter(), {}, Counter(), Counter(), Counter()
    for r in reports:
        sent.update(r.sent)
        sbytes.update(r.sent_bytes)
        analyst.update(r.analyst)
        abytes.update(r.analyst_bytes)
        undelivered.update(r.undelivered)
        for k, v in r.received.items():
            tgt = received.setdefault(k, {"count": 0, "fields": set(), "keys": set()})
            tgt["count"] += v["count"]
            tgt["fields"] |= v["fields"]
            tgt["keys"] |= v["keys"]
    t1 = Table(title="Messages: who sent what to whom (routed)")
    for c in ("sender", "receiver", "type", "count", "bytes"):
        t1.add_column(c, justify="right" if c in ("count", "bytes") else "left")
    for (s, r, k), n in sorted(sent.items()):
        t1.add_row(escape(s), escape(r), k, str(n), str(sbytes[(s, r, k)]))
    t2 = Table(title="Information received (delivered), per agent")
    for c in ("agent", "type", "count", "fields", "keys"):
        t2.add_column(c, justify="right" if c == "count" else "left", overflow="fold")
    for (a, k), v in sorted(received.items()):
        t2.add_row(escape(a), k, str(v["count"]), ", ".join(sorted(v["fields"])) or "-",
                   escape(_keys_text(v["keys"])))
    out = [t1, t2]
    if analyst:
        t3 = Table(title="Analyst channel reads (not sent to any agent)")
        for c in ("agent", "read", "count", "bytes"):
            t3.add_column(c, justify="right" if c in ("count", "bytes") else "left")
        for (a, w), n in sorted(analyst.items()):
            t3.add_row(escape(a), escape(str(w)), str(n), str(abytes[(a, w)]))
        out.append(t3)
    if undelivered:
        t4 = Table(title="Routed, never delivered")
        t4.add_column("type")
        t4.add_column("count", justify="right")
        for k, n in sorted(undelivered.items()):
            t4.add_row(k, str(n))
        out.append(t4)
    return out


def main(target: str | Path, *, quiet: bool = False) -> int:
    """Audit the logs of ``target``; print the tables (unless ``quiet``); the exit status."""
    target = Path(target)
    logs = find_logs(target)
    if not logs:
        where = "does not exist" if not target.exists() else "holds no audit log (audit.jsonl or audit/*.jsonl.gz)"
        print(f"error: {target} {where}", file=sys.stderr)
        return 2
    reports = []
    console = _console()
    for p in logs:
        try:
            r = verify_log(p)
        except AuditError as exc:
            print(f"audit: FAILED: {exc}", file=sys.stderr)
            return 1
        reports.append(r)
        und = sum(r.undelivered.values())
        console.print(f"{p}: verified ({r.lines} lines, hash chain intact; protocol {r.protocol}, run {r.run}): "
                      f"{r.routed} messages routed and re-checked, {r.delivered} delivered once"
                      + (f", {und} never delivered" if und else "") + f", {sum(r.analyst.values())} analyst reads",
                      markup=False, highlight=False)
    if not quiet:
        for t in tables(reports):
            console.print(t)
    console.print(f"audit: OK ({len(reports)} log(s))", markup=False, highlight=False)
    return 0
