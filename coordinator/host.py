"""The host: the message side of an agent.

A host wraps one agent (plain Python, from ``agents/``) and turns the messages
addressed to it into calls of the agent's domain methods, and the results into
messages. Hosts run in-process (``LocalRuntime``) or inside Ray actors
(``RayRuntime``); every message they return is checked by the boundary before it
goes anywhere. The agent itself never sees a message object, so ``agents``
stays free of transport and policy code. The hosts of each protocol are in
``coordinator/<protocol>/hosts.py``.
"""
from __future__ import annotations

import pickle
from typing import Any

from agents.base import Agent
from agents.solve import SolveLedger, recording

from .messages import Message


class Host:
    """Base host: ``handle(batch) -> replies``; snapshot/restore; ``report()``.

    ``ANALYST_READS``: the read-only methods the analyst channel may call
    (``runtime.analyst.read(agent, what)``); ``solves`` (the agent's solver ledger) is
    readable on every host. ``area``: the agent's area (None: none), for policies that scope
    roles to areas.
    """

    ANALYST_READS: tuple[str, ...] = ("report", "solves")

    def __init__(self, agent: Agent, peers: dict[str, list[str]] | None = None) -> None:
        self.agent = agent
        self.peers = {k: list(v) for k, v in (peers or {}).items()}  # role -> agent ids it talks to
        self.round = 0
        area = getattr(agent, "area", None)
        self.area: int | None = None if area is None else int(area)
        self.ledger = SolveLedger()  # which solver produced each of the agent's results

    @property
    def id(self) -> str:
        return self.agent.id

    @property
    def role(self) -> str:
        return self.agent.role

    def public_ids(self) -> frozenset[str]:
        return self.agent.public_ids()

    def decision_ids(self) -> frozenset[str]:
        return self.agent.decision_ids()

    def handle(self, messages: list[Message]) -> list[Message]:
        """Replies carry the next round number: one round per hop of the protocol."""
        if messages:
            self.round = max(m.round for m in messages) + 1
        if not hasattr(self, "ledger"):  # a host restored from a snapshot taken before ledgers existed
            self.ledger = SolveLedger()
        with recording(self.ledger):
            return self._handle(messages)

    def _handle(self, messages: list[Message]) -> list[Message]:
        raise NotImplementedError

    def report(self) -> dict[str, Any]:
        return {}

    def solves(self) -> list[dict[str, Any]]:
        """The agent's solver ledger so far: see :class:`agents.solve.SolveLedger` (the analyst's read)."""
        ledger = getattr(self, "ledger", None)
        return [] if ledger is None else ledger.rows()

    def snapshot(self) -> bytes:
        return pickle.dumps(self)

    @staticmethod
    def restore(blob: bytes) -> "Host":
        return pickle.loads(blob)
