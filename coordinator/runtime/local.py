"""The in-process runtime: sequential, deterministic, the same semantics as the Ray runtime."""
from __future__ import annotations

import os
from typing import Any

from ..boundary import Boundary, BoundaryViolation, receipt_check
from ..messages import Message
from ..schema import Ticket
from .base import PID_METHOD, Runtime
from .errors import _annotate, _describe_batch

__all__ = ["LocalRuntime"]


class LocalRuntime(Runtime):
    """In-process, sequential and deterministic; same semantics as :class:`RayRuntime`."""

    def __init__(self, boundary: Boundary) -> None:
        super().__init__(boundary)
        self._hosts: dict[str, Any] = {}
        self._snapshots: dict[str, bytes] = {}

    def _start(self, agent_id: str, host: Any) -> None:
        blob = host.snapshot()
        self._hosts[agent_id] = type(host).restore(blob)
        self._snapshots[agent_id] = blob

    def _deliver(self, batches: dict[str, list[Message]], tickets: dict[str, list[Ticket]]
                 ) -> dict[str, list[Message]]:
        out: dict[str, list[Message]] = {}
        first_error: BaseException | None = None
        for rid, batch in batches.items():
            host = self._hosts[rid]
            try:
                receipt_check(rid, batch, tickets[rid])
            except BoundaryViolation as exc:
                first_error = first_error or exc
                continue
            try:
                replies = list(host.handle(list(batch)) or [])
                self._snapshots[rid] = host.snapshot()
            except Exception as exc:
                if first_error is None:
                    first_error = _annotate(exc, rid, self._roles[rid], _describe_batch(batch))
                continue
            out[rid] = replies
        if first_error is not None:
            raise first_error
        return out

    def _call_many(self, calls: list[tuple[str, str, tuple, dict]]) -> list[Any]:
        out = []
        for aid, method, args, kwargs in calls:
            if method == PID_METHOD:
                out.append(os.getpid())
                continue
            try:
                out.append(getattr(self._hosts[aid], method)(*args, **kwargs))
            except Exception as exc:
                raise _annotate(exc, aid, self._roles[aid], f"in call {method}()")
        return out

    def checkpoint(self) -> None:
        for aid, host in self._hosts.items():
            self._snapshots[aid] = host.snapshot()

    def last_snapshot(self, agent_id: str) -> bytes:
        return self._snapshots[agent_id]

    def restart(self, agent_id: str) -> None:
        """Rebuild ``agent_id`` from its last snapshot, as a Ray actor is after a crash.

        Whatever the host held outside its snapshot (solver caches, built cvxpy problems) is
        gone; a host whose results depend on such state gives other numbers after this.
        """
        host = self._hosts[agent_id]
        self._hosts[agent_id] = type(host).restore(self._snapshots[agent_id])
