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
``0o644`` minus the umask (``scenarios.runs.FILE_MODE``). It is written off the critical
path: the caller's thread only numbers the record and encodes it as JSON, and hands records
to a writer thread 256 at a time; the writer chains them (computes ``prev``), compresses them
when the path ends in ``.gz`` (gzip, level 6) and writes them through a 1 MiB buffer. :meth:`AuditLog.flush` (at a violation, at a checkpoint,
at shutdown) waits until everything written so far is on disk; :meth:`AuditLog.close` ends
the log. An error of the writer thread (a full disk) is raised by the next write, flush or
close. ``python3 run.py audit RUN_FOLDER`` verifies it (:mod:`coordinator.audit`).
"""
from __future__ import annotations

import datetime as _dt
import errno
import gzip
import hashlib
import io
import json
import os
import queue
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = ["AuditLog", "AuditLogExists", "FORMAT", "FILE_MODE", "open_text", "iter_lines"]

FORMAT = "tdmarket-audit/1"
#: the mode of the audit log before the umask (the run folder's policy, ``scenarios.runs.FILE_MODE``)
FILE_MODE = 0o644
_BUFFER = 1 << 20
_BATCH = 256  # records handed to the writer thread at a time
_FLUSH, _CLOSE = object(), object()


class AuditLogExists(FileExistsError):
    """The audit log exists already: a run writes a log of its own (exit status 1)."""


def _dumps(obj: Any) -> str:
    return json.dumps(obj, allow_nan=False, separators=(",", ":"))


class AuditLog:
    """Writes the chained JSON lines of one run (see the module docstring), in a writer thread."""

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
        raw = os.fdopen(fd, "wb", buffering=_BUFFER)
        self._raw = raw
        self._fh: Any = gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0) \
            if self.path.suffix == ".gz" else raw
        self.lines = 0
        self._open = True
        self._error: BaseException | None = None
        self._queue: queue.Queue[Any] = queue.Queue()
        self._batch: list[tuple[str, bool]] = []
        self._thread = threading.Thread(target=self._writer, name=f"audit-log {self.path.name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ writer thread
    def _writer(self) -> None:
        prev: str | None = None
        q = self._queue
        while True:
            item = q.get()
            try:
                if item is _FLUSH or item is _CLOSE:
                    if self._error is None:
                        self._fh.flush()
                        if item is _CLOSE:
                            if self._fh is not self._raw:
                                self._fh.close()
                            self._raw.close()
                    if item is _CLOSE:
                        return
                    continue
                if self._error is not None:
                    continue
                out = []
                for text, chained in item:  # a batch of records
                    if chained:  # the previous line's hash goes in as the last field
                        text = f'{text[:-1]},"prev":"{prev}"}}'
                    data = text.encode()
                    prev = hashlib.sha256(data).hexdigest()
                    out.append(data)
                out.append(b"")
                self._fh.write(b"\n".join(out))
            except BaseException as exc:  # kept, raised in the caller's thread
                self._error = exc
            finally:
                q.task_done()

    def _check(self) -> None:
        if self._error is not None:
            raise OSError(f"writing the audit log {self.path} failed: {self._error}") from self._error

    def _put(self, text: str, chained: bool = True) -> None:
        self._batch.append((text, chained))
        if len(self._batch) >= _BATCH:
            self._hand_over()

    def _hand_over(self) -> None:
        """Pass the records written since the last hand-over to the writer thread (one queue item)."""
        self._check()
        if self._batch:
            self._queue.put(self._batch)
            self._batch = []

    # ----------------------------------------------------------------- caller
    def write(self, rec: str, fields: dict[str, Any], payload: str | None = None) -> None:
        """Append one record of kind ``rec``; ``payload`` is JSON text spliced in as the ``payload`` field."""
        if not self._open:
            raise ValueError(f"the audit log {self.path} is closed")
        if self.lines == 0:
            self._write_header()
        self.lines += 1
        text = _dumps({"n": self.lines, "rec": rec, **fields})
        if payload is not None:
            text = f'{text[:-1]},"payload":{payload}}}'
        self._put(text)

    def _write_header(self) -> None:
        self.lines = 1
        head = {"n": 1, "rec": "header", "format": FORMAT, "run": self.run_id, "folder": self.path.parent.name,
                "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), **self._header(),
                "prev": None}
        self._put(_dumps(head), chained=False)

    def flush(self) -> None:
        """Wait until every record written so far is in the file (compressed data up to a sync point)."""
        if not self._open:
            return
        self._hand_over()
        self._queue.put(_FLUSH)
        self._queue.join()
        self._check()

    def close(self) -> None:
        if not self._open:
            return
        if self.lines == 0:
            self._write_header()
        self.lines += 1
        self._put(f'{{"n":{self.lines},"rec":"end"}}')
        self._open = False
        self._hand_over()
        self._queue.put(_CLOSE)
        self._thread.join()
        self._check()


def open_text(path: str | os.PathLike[str]) -> io.TextIOBase:
    """A log file for reading (``.gz`` transparently)."""
    p = Path(path)
    if p.suffix == ".gz":
        return gzip.open(p, "rt", encoding="utf-8", newline="\n")  # type: ignore[return-value]
    return open(p, encoding="utf-8", newline="\n")


def iter_lines(path: str | os.PathLike[str]) -> Iterator[str]:
    """The lines of a log without their newline (of a ``.gz`` log still being written or cut short: the
    lines up to where its compressed stream ends)."""
    with open_text(path) as fh:
        while True:
            try:
                line = fh.readline()
            except EOFError:  # a gzip stream without its end marker (flushed, not closed)
                return
            if not line:
                return
            yield line[:-1] if line.endswith("\n") else line
