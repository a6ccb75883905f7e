"""The recovery record of every hosted agent: its last snapshot and the deliveries it handled since.

A snapshot (the agent's ``snapshot()`` bytes) is taken every ``every`` deliveries to the agent
(one delivery per protocol round the agent takes part in), on demand (:meth:`Runtime.checkpoint`),
and when asked for (:meth:`Runtime.last_snapshot`); not after every delivery. Between two
snapshots the runtime keeps the batches of messages the agent handled, in order: an agent is
recovered by restoring its last snapshot and replaying them (hosts are deterministic given their
state, so the recovered agent is the one that was lost, bit for bit).
"""
from __future__ import annotations

import os

from ..messages import Message

__all__ = ["SnapshotLog", "DEFAULT_SNAPSHOT_EVERY", "SNAPSHOT_EVERY_ENV", "snapshot_every"]

#: deliveries to an agent between two of its snapshots, unless ``--snapshot-every`` says otherwise
DEFAULT_SNAPSHOT_EVERY = 10
#: set by ``--snapshot-every K`` (``scenarios.runs.add_runtime_arguments``)
SNAPSHOT_EVERY_ENV = "TDMARKET_SNAPSHOT_EVERY"


def snapshot_every(every: int | None = None) -> int:
    """``every``, else ``$TDMARKET_SNAPSHOT_EVERY``, else :data:`DEFAULT_SNAPSHOT_EVERY`."""
    if every is not None:
        return int(every)
    v = os.environ.get(SNAPSHOT_EVERY_ENV, "").strip()
    try:
        return int(v) if v else DEFAULT_SNAPSHOT_EVERY
    except ValueError:
        raise ValueError(f"{SNAPSHOT_EVERY_ENV} must be a whole number, got {v!r}") from None


class SnapshotLog:
    """Per agent: the last snapshot (bytes) and the batches delivered since (the replay log)."""

    def __init__(self, every: int | None = None) -> None:
        every = snapshot_every(every)
        if every < 1:
            raise ValueError(f"snapshots every {every} deliveries: must be at least 1")
        self.every = int(every)
        self._blob: dict[str, bytes] = {}
        self._replay: dict[str, list[list[Message]]] = {}
        self.taken = 0  # snapshots taken after the first (for reports and tests)

    def start(self, agent_id: str, blob: bytes) -> None:
        self._blob[agent_id] = blob
        self._replay[agent_id] = []

    def due(self, agent_id: str) -> bool:
        """Whether the delivery about to be handled by ``agent_id`` is to be followed by a snapshot."""
        return len(self._replay[agent_id]) + 1 >= self.every

    def delivered(self, agent_id: str, batch: list[Message], blob: bytes | None = None) -> None:
        """Record a handled delivery; with ``blob`` (the snapshot taken right after it) the log restarts."""
        if blob is not None:
            self.snapshot(agent_id, blob)
        else:
            self._replay[agent_id].append(list(batch))

    def snapshot(self, agent_id: str, blob: bytes) -> None:
        self._blob[agent_id] = blob
        self._replay[agent_id] = []
        self.taken += 1

    def blob(self, agent_id: str) -> bytes:
        return self._blob[agent_id]

    def replay(self, agent_id: str) -> list[list[Message]]:
        """The batches to hand again, in order, to the agent restored from :meth:`blob`."""
        return list(self._replay[agent_id])

    def pending(self, agent_id: str) -> int:
        """Deliveries since the last snapshot."""
        return len(self._replay[agent_id])
