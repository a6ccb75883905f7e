"""The in-process runtime: sequential, deterministic, the same semantics as the Ray runtime."""
from __future__ import annotations

import os
from typing import Any

from ..boundary import Boundary, BoundaryViolation, receipt_check
from ..messages import Message
from ..schema import Ticket
from .base import PID_METHOD, Runtime
from .errors import _annotate, _describe_batch
from .snapshots import SnapshotLog

__all__ = ["LocalRuntime"]


class LocalRuntime(Runtime):
    """In-process, sequential and deterministic; same semantics as :class:`RayRuntime`.

    ``snapshot_every``: deliveries to an agent between two of its snapshots (default:
    ``$TDMARKET_SNAPSHOT_EVERY`` or 10, :mod:`.snapshots`);
    :meth:`restart` restores the last one and replays the deliveries since.
    """

    def __init__(self, boundary: Boundary, snapshot_every: int | None = None) -> None:
        super().__init__(boundary)
        self._hosts: dict[str, Any] = {}
        self.snapshots = SnapshotLog(snapshot_every)

    def _start(self, agent_id: str, host: Any) -> None:
        blob = host.snapshot()
        self._hosts[agent_id] = type(host).restore(blob)
        self.snapshots.start(agent_id, blob)

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
                self.snapshots.delivered(rid, batch, host.snapshot() if self.snapshots.due(rid) else None)
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
            self.snapshots.snapshot(aid, host.snapshot())
        self.boundary.flush()

    def last_snapshot(self, agent_id: str) -> bytes:
        if self.snapshots.pending(agent_id):
            self.snapshots.snapshot(agent_id, self._hosts[agent_id].snapshot())
        return self.snapshots.blob(agent_id)

    def restart(self, agent_id: str) -> None:
        """Rebuild ``agent_id`` as a lost Ray actor is: restore its last snapshot, replay the deliveries since.

        Whatever the host held outside its snapshot (solver caches, built cvxpy problems) is
        gone; a host whose results depend on such state gives other numbers after this.
        """
        host = type(self._hosts[agent_id]).restore(self.snapshots.blob(agent_id))
        for batch in self.snapshots.replay(agent_id):
            host.handle(list(batch))
        self._hosts[agent_id] = host
