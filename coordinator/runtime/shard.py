"""A shard: one Ray actor (one process) hosting many agents, each with its own state.

Sharding is deployment only: the shard holds a dict of hosts and calls each one's ``handle`` with
the batch the coordinator's boundary released for it (re-checked here on receipt, per agent). Two
agents of one shard never see each other: a message between them goes out in one agent's reply,
is routed and logged by the boundary in the driver, and comes back in a later delivery, exactly as
between agents of different shards. Agents of one shard run one after the other, in the order of
the jobs; shards run in parallel.

The shard never raises: every per-agent outcome is ``("ok", value)`` or ``("err", ...)`` (an
exception packed with its type and remote traceback, re-raised in the driver with the agent's name).
This module does not import Ray at module level (the actor class is made in :mod:`.ray`).
"""
from __future__ import annotations

import os
import pickle
import traceback
from typing import Any

from ..boundary import BoundaryViolation, receipt_check
from ..messages import Message
from ..schema import Ticket
from .base import PID_METHOD
from .errors import HostError, _annotate, _describe_batch, _label

__all__ = ["ShardHost", "unpack_ok", "unpack_error"]


def _pack_error(exc: BaseException, stage: str) -> tuple:
    """An exception as a picklable outcome: ("err", cls, args, attrs, type name, message, traceback, stage)."""
    tb = "".join(traceback.format_exception(exc))
    payload: tuple = (type(exc), tuple(exc.args), dict(getattr(exc, "__dict__", {})))
    try:
        pickle.dumps(payload)
    except Exception:
        try:
            payload = (type(exc), tuple(str(a) for a in exc.args), {})
            pickle.dumps(payload)
        except Exception:
            payload = (None, (), {})
    return ("err", *payload, type(exc).__name__, str(exc), tb, stage)


def unpack_error(outcome: tuple, agent_id: str, role: str) -> BaseException:
    _, cls, args, attrs, tname, message, tb, stage = outcome
    exc: BaseException | None = None
    if cls is not None:
        try:
            exc = cls.__new__(cls, *args)  # rebuilt without __init__ (SolveError has required arguments)
            exc.args = tuple(args)
            if attrs:
                exc.__dict__.update(attrs)
        except Exception:
            exc = None
    if exc is None:
        exc = HostError(agent_id, f"{_label(agent_id, role)}: {tname}: {message}")
    return _annotate(exc, agent_id, role, stage, tb)


def _ok(value: Any, stage: str) -> tuple:
    """``("ok", pickle of value)``: pickled here, so that a value that cannot be sent is one agent's error
    (packed with its name), not the failure of the whole shard's call."""
    try:
        return ("ok", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as exc:
        return _pack_error(exc, stage)


def unpack_ok(outcome: tuple) -> Any:
    """The value of an ``("ok", pickle)`` outcome made by a shard's ``deliver`` or ``invoke``."""
    return pickle.loads(outcome[1])


class ShardHost:
    """The agents of one shard (the body of the shard's Ray actor)."""

    def __init__(self, shard: int) -> None:
        self.shard = shard
        self._hosts: dict[str, Any] = {}
        self._broken: dict[str, tuple] = {}  # agents that could not be loaded: the packed error

    def load(self, entries: list[tuple[str, bytes, list[list[Message]]]]) -> int:
        """Host agents: ``(agent_id, pickle of (host class, snapshot bytes), batches to replay)``.

        Each agent is restored from its snapshot, then handed the replayed batches again (its
        replies are dropped: they were routed when first produced). Never raises: an agent that
        cannot be loaded keeps its error, returned by its next call. Returns the process id.
        """
        for aid, packed, replay in entries:
            self._hosts.pop(aid, None)
            self._broken.pop(aid, None)
            try:
                cls, blob = pickle.loads(packed)
            except Exception as exc:
                self._broken[aid] = _pack_error(exc, "loading its host class and snapshot (can this node import "
                                                     "the project?)")
                continue
            try:
                host = cls.restore(blob)
                for batch in replay:
                    host.handle(list(batch))
            except Exception as exc:
                self._broken[aid] = _pack_error(exc, "being restored from its snapshot")
                continue
            self._hosts[aid] = host
        return os.getpid()

    def _host(self, aid: str) -> tuple[Any, tuple | None]:
        if aid in self._broken:
            return None, self._broken[aid]
        if aid not in self._hosts:
            return None, _pack_error(KeyError(f"shard {self.shard} does not host {aid!r}"), "being looked up")
        return self._hosts[aid], None

    def deliver(self, jobs: list[tuple[str, list[Message], list[Ticket], bool]]) -> list[tuple[tuple, bytes | None]]:
        """Per job ``(agent_id, batch, tickets, snapshot?)``: (outcome, the snapshot after it or None)."""
        out: list[tuple[tuple, bytes | None]] = []
        for aid, batch, tickets, snap in jobs:
            host, bad = self._host(aid)
            if bad is not None:
                out.append((bad, None))
                continue
            try:
                receipt_check(aid, batch, tickets)  # in the receiver's own process
            except BoundaryViolation as exc:
                out.append((_pack_error(exc, "checking a delivery on receipt"), None))
                continue
            try:
                replies = list(host.handle(list(batch)) or [])
            except Exception as exc:
                out.append((_pack_error(exc, _describe_batch(batch)), None))
                continue
            blob = None
            if snap:
                try:
                    blob = host.snapshot()
                except Exception as exc:
                    out.append((_pack_error(exc, "taking a snapshot"), None))
                    continue
            out.append((_ok(replies, "returning its replies"), blob))
        return out

    def invoke(self, calls: list[tuple[str, str, tuple, dict]]) -> list[tuple]:
        """Per call ``(agent_id, method, args, kwargs)``: the outcome of ``method(*args, **kwargs)``."""
        out: list[tuple] = []
        for aid, method, args, kwargs in calls:
            if method == PID_METHOD:
                out.append(_ok(os.getpid(), "returning its pid"))
                continue
            host, bad = self._host(aid)
            if bad is not None:
                out.append(bad)
                continue
            try:
                value = getattr(host, method)(*args, **kwargs)
            except Exception as exc:
                out.append(_pack_error(exc, f"in call {method}()"))
                continue
            out.append(_ok(value, f"returning the result of {method}()"))
        return out

    def snapshot(self, aids: list[str]) -> list[tuple]:
        out: list[tuple] = []
        for aid in aids:
            host, bad = self._host(aid)
            if bad is not None:
                out.append(bad)
                continue
            try:
                out.append(("ok", bytes(host.snapshot())))
            except Exception as exc:
                out.append(_pack_error(exc, "taking a snapshot"))
        return out

    def pid(self) -> int:
        return os.getpid()

    def node(self) -> str:
        """The id of the Ray node this shard runs on."""
        import ray

        return ray.get_runtime_context().get_node_id()
