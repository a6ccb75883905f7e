"""The audit log: strict JSON lines at full precision, one file per run, chained by SHA-256.

Every line is one JSON object (no NaN or infinity anywhere; floats written with ``repr``,
so they read back to the same bits) with ``n`` (its line number, from 1), ``rec`` (its
kind) and ``prev`` (the SHA-256, hex, of the previous line's text without its newline;
``null`` on the first line). Kinds:

- ``header`` (line 1): ``format``, ``run`` (a fresh id), ``folder``, ``created``,
  ``protocol`` (the policy's name), ``policy`` (its rules, as text), ``dims``;
- ``policy``: the policy or dimensions in force from that line on (a protocol joined);
- ``party``: a registered agent: ``id``, ``role``, ``area``, ``public_ids``, ``decision_ids``;
- ``route``: a routed message: ``seq``, ``time``, ``round``, ``type``, ``sender``,
  ``sender_role``, ``receiver``, ``receiver_role``, ``payload`` (:func:`coordinator.messages.encode`);
- ``delivery``: routed messages handed to their receiver: ``receiver``, ``seqs``;
- ``analyst_read``: a read of the analyst channel: ``agent``, ``role``, ``what``, ``args``,
  ``bytes`` and ``sha256`` of what was read (its pickle);
- ``violation``: a message the boundary refused (the run stopped): ``type``, ``sender``,
  ``receiver``, ``field``, ``error``;
- ``end`` (last line): the log was closed.

The file is created exclusively (an existing log is never appended to) with mode
``0o644`` minus the umask (``scenarios.runs.FILE_MODE``), and written through a 64 KiB
buffer. ``python3 run.py audit RUN_FOLDER`` verifies it (:mod:`coordinator.audit`).
"""
from __future__ import annotations

import datetime as _dt
import errno
import gzip
import hashlib
import io
import json
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = ["AuditLog", "AuditLogExists", "FORMAT", "FILE_MODE", "open_text", "iter_lines"]

FORMAT = "tdmarket-audit/1"
#: the mode of the audit log before the umask (the run folder's policy, ``scenarios.runs.FILE_MODE``)
FILE_MODE = 0o644
_BUFFER = 1 << 16


class AuditLogExists(FileExistsError):
    """The audit log exists already: a run writes a log of its own (exit status 1)."""


def _dumps(obj: Any) -> str:
    return json.dumps(obj, allow_nan=False, separators=(",", ":"))


class AuditLog:
    """Writes the chained JSON lines of one run (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], header: Callable[[], dict[str, Any]], *,
                 mode: int = FILE_MODE, run_id: str | None = None) -> None:
        self.path = Path(path)
        self.run_id = run_id or uuid.uuid4().hex
        self._header = header
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            raise AuditLogExists(errno.EEXIST, "an audit log exists already (a run writes its own log: choose "
                                               "a new --out folder, or remove the old log)", str(self.path)) from None
        self._fh: io.TextIOWrapper | None = os.fdopen(fd, "w", encoding="utf-8", newline="\n", buffering=_BUFFER)
        self.lines = 0
        self._prev: str | None = None

    def _emit(self, line: str) -> None:
        assert self._fh is not None
        self._fh.write(line)
        self._fh.write("\n")
        self._prev = hashlib.sha256(line.encode()).hexdigest()

    def write(self, rec: str, fields: dict[str, Any], payload: str | None = None) -> None:
        """Append one record of kind ``rec``; ``payload`` is JSON text spliced in as the ``payload`` field."""
        if self._fh is None:
            raise ValueError(f"the audit log {self.path} is closed")
        if self.lines == 0:
            self._write_header()
        self.lines += 1
        text = _dumps({"n": self.lines, "rec": rec, **fields})
        if payload is not None:
            text = f'{text[:-1]},"payload":{payload}}}'
        self._emit(f'{text[:-1]},"prev":"{self._prev}"}}')

    def _write_header(self) -> None:
        self.lines = 1
        head = {"n": 1, "rec": "header", "format": FORMAT, "run": self.run_id, "folder": self.path.parent.name,
                "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), **self._header(),
                "prev": None}
        self._emit(_dumps(head))

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is None:
            return
        if self.lines == 0:
            self._write_header()
        self.lines += 1
        self._emit(_dumps({"n": self.lines, "rec": "end", "prev": self._prev}))
        self._fh.close()
        self._fh = None


def open_text(path: str | os.PathLike[str]) -> io.TextIOBase:
    """A log file for reading (``.gz`` transparently)."""
    p = Path(path)
    if p.suffix == ".gz":
        return gzip.open(p, "rt", encoding="utf-8", newline="\n")  # type: ignore[return-value]
    return open(p, encoding="utf-8", newline="\n")


def iter_lines(path: str | os.PathLike[str]) -> Iterator[str]:
    """The lines of a log without their newline."""
    with open_text(path) as fh:
        for line in fh:
            yield line[:-1] if line.endswith("\n") else line
