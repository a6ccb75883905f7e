"""Where the agents run: in process (:class:`LocalRuntime`) or as Ray actors (:class:`RayRuntime`).

A runtime *hosts* agents and moves messages between them; every message it
moves goes through :meth:`Boundary.route`, and replies are checked against the
host that actually produced them, so an agent can neither send a message
outside the information policy nor speak for somebody else.

The host contract
-----------------
A host is any picklable object with

- ``id`` (str) and ``role`` (str);
- ``handle(messages: list[Message]) -> list[Message]``: all the messages
  addressed to it in one delivery, in order; returns the messages it sends;
- ``snapshot() -> bytes`` and a class/static method ``restore(blob) -> host``;
- ``public_ids()`` and ``decision_ids()`` (iterables of str) for the boundary;
- ``ANALYST_READS`` (optional): the names of its read-only methods that the analyst
  channel may call (:attr:`Runtime.analyst`); ``area`` (optional): its area, for
  policies that scope roles to areas.

Hosts must be deterministic given their state: a lost Ray shard is rebuilt from
its agents' last snapshots, the deliveries since are replayed and the delivery in
flight is sent again, which gives the same numbers only if ``handle`` is deterministic.

Both runtimes have the same semantics:

- :meth:`Runtime.add` registers the host with the boundary and starts hosting a
  *copy* of it (``restore(snapshot())``): the caller's object is never touched
  again, on either runtime;
- :meth:`Runtime.send` routes coordinator-originated messages;
- :meth:`Runtime.exchange` delivers routed messages, each once: the boundary
  releases each (:meth:`Boundary.release`: routed, not delivered before, the very object
  routed) and records the delivery, and the receiver's process re-checks it
  (:func:`~coordinator.boundary.receipt_check`: schema and routed digest) before its
  host's ``handle``; one ``handle`` call per receiver, the shards in parallel on Ray;
  it snapshots each receiver every K deliveries to it and keeps the deliveries since
  (:mod:`.snapshots`), and returns the routed replies in a
  deterministic order: order of the receivers' first appearance in the input, then
  reply order; :meth:`Runtime.collect` takes delivery of the messages addressed to the
  coordinator the same way;
- :attr:`Runtime.analyst` is the one way to read an agent's state besides messages: a
  declared, read-only channel whose reads are deep copies, each recorded in the audit
  log (:class:`Analyst`). What it reads never goes to an agent (only routed messages do);
- an exception inside a host is re-raised with its own type (``SolveError``,
  ``InfeasibleSetup``, ...), its message naming the agent, the remote traceback
  added as a note; all receivers of a delivery are run before the first error
  (in receiver order) is raised, so the hosts' states do not depend on the
  runtime.

Ray is imported only when a :class:`RayRuntime` is made.
"""
from __future__ import annotations

import abc
import hashlib
import logging
import pickle
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..boundary import COORDINATOR, Boundary, BoundaryViolation, receipt_check
from ..messages import Message
from ..schema import Ticket
from .errors import _label

__all__ = ["Runtime", "Analyst", "PID_METHOD", "PROJECT_PACKAGES"]

#: the method name that answers with the process id hosting the agent (deployment, not agent state)
PID_METHOD = "__pid__"
#: the project's top-level packages (shipped to a cluster as ``py_modules``)
PROJECT_PACKAGES = ("agents", "coordinator", "network", "scenarios")
log = logging.getLogger(__name__)
_FORBIDDEN_READS = frozenset({"handle", "snapshot", "restore"})


def _project_root() -> Path | None:
    """The source checkout holding the project packages, or None when installed."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").exists() else None


def _json_arg(a: Any) -> Any:
    return a if isinstance(a, (str, int, float, bool)) or a is None else repr(a)[:80]


# --------------------------------------------------------------------------- analyst channel
class Analyst:
    """The analyst channel of a runtime: declared, read-only reads of an agent's state, each logged.

    A host declares the methods it may be read through in ``ANALYST_READS``; a read returns a
    deep copy (what the caller does with it never reaches the agent) and is recorded in the
    audit log as an ``analyst_read`` (agent, what, arguments, size and SHA-256 of what was
    read). Benchmarks, plots and figures read here; the protocol's decisions are made from
    messages, and nothing read here is sent to an agent (only routed messages are delivered).
    """

    def __init__(self, runtime: "Runtime") -> None:
        self._rt = runtime

    def read(self, agent_id: str, what: str, *args: Any, **kwargs: Any) -> Any:
        """Read ``what`` (a declared read of the agent's host, called with ``args``) from ``agent_id``."""
        return self.read_many([(agent_id, what, args, kwargs)])[0]

    def read_many(self, reads: Iterable[Sequence[Any]]) -> list[Any]:
        """``(agent_id, what[, args[, kwargs]])`` reads, in parallel on Ray; results in order."""
        rt = self._rt
        rt._check_open()
        norm = []
        for c in reads:
            c = tuple(c)
            if not 2 <= len(c) <= 4:
                raise ValueError(f"analyst.read_many(): expected (agent_id, what[, args[, kwargs]]), got {c!r}")
            aid, what = str(c[0]), str(c[1])
            args = tuple(c[2]) if len(c) > 2 and c[2] is not None else ()
            kwargs = dict(c[3]) if len(c) > 3 and c[3] is not None else {}
            if aid not in rt._roles:
                raise ValueError(f"analyst.read(): no agent {aid!r}")
            declared = rt._reads[aid]
            if what not in declared or what.startswith("_") or what in _FORBIDDEN_READS:
                raise BoundaryViolation(
                    f"analyst read of {_label(aid, rt._roles[aid])}: field '{what}': not a declared read (its "
                    f"ANALYST_READS: {sorted(declared) or 'none'}); messages go through exchange()",
                    sender=aid, receiver="analyst", kind="analyst read", field=what)
            norm.append((aid, what, args, kwargs))
        out = []
        for (aid, what, args, kwargs), value in zip(norm, rt._call_many(norm) if norm else []):
            blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            rt.boundary.analyst_read(aid, what, [_json_arg(a) for a in args]
                                     + [f"{k}={_json_arg(v)}" for k, v in kwargs.items()], len(blob),
                                     hashlib.sha256(blob).hexdigest())
            out.append(pickle.loads(blob))  # a deep copy: the caller's changes never reach the agent
        return out


# --------------------------------------------------------------------------- base
class Runtime(abc.ABC):
    """Hosts agents and moves messages between them through a :class:`Boundary`."""

    def __init__(self, boundary: Boundary) -> None:
        self.boundary = boundary
        self._roles: dict[str, str] = {}
        self._reads: dict[str, frozenset[str]] = {}
        self._closed = False
        self.analyst = Analyst(self)

    # ---------------------------------------------------------------- hosts
    @property
    def agent_ids(self) -> list[str]:
        """Hosted agents, in the order they were added."""
        return list(self._roles)

    def role(self, agent_id: str) -> str:
        return self._roles[agent_id]

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._roles

    def add(self, host: Any) -> None:
        """Register ``host`` with the boundary and start hosting (a copy of) it."""
        self._check_open()
        for attr in ("id", "role", "handle", "snapshot", "restore", "public_ids", "decision_ids"):
            if not hasattr(host, attr):
                raise TypeError(f"{type(host).__name__} is not a host: it has no '{attr}'")
        aid, role = str(host.id), str(host.role)
        if aid in self._roles:
            raise ValueError(f"agent {aid!r} is already hosted")
        if aid == COORDINATOR:
            raise ValueError(f"'{COORDINATOR}' is the coordinator's id: no agent may use it")
        reads = frozenset(map(str, getattr(host, "ANALYST_READS", ())))
        bad = sorted(r for r in reads if r.startswith("_") or r in _FORBIDDEN_READS or not callable(getattr(host, r,
                                                                                                             None)))
        if bad:
            raise TypeError(f"{type(host).__name__}: ANALYST_READS names {bad}, which are not public read methods")
        self.boundary.register(aid, role, host.public_ids(), host.decision_ids(), getattr(host, "area", None))
        self._roles[aid] = role
        self._reads[aid] = reads
        try:
            self._start(aid, host)
        except BaseException:
            del self._roles[aid]
            raise

    def add_all(self, hosts: Iterable[Any]) -> None:
        for h in hosts:
            self.add(h)

    # ------------------------------------------------------------- messages
    def send(self, msgs: Iterable[Message]) -> list[Message]:
        """Route coordinator-originated messages through the boundary (check + audit log); returns them.

        The coordinator is trusted: its messages are checked against the policy and logged, but
        are not tied to one producer (replies of hosts are, in :meth:`exchange`).
        """
        self._check_open()
        out = []
        for m in msgs:
            if not isinstance(m, Message):
                raise BoundaryViolation(f"send(): {type(m).__name__} is not a message type")
            out.append(self.boundary.route(m))
        return out

    def exchange(self, msgs: Iterable[Message]) -> list[Message]:
        """Deliver routed messages (each once), one ``handle`` call per receiver, and return the routed replies.

        Receivers run in parallel (on Ray); replies are ordered by the receivers' first
        appearance in ``msgs``, then in the order each receiver returned them.
        """
        self._check_open()
        msgs = list(msgs)
        for m in msgs:
            if not isinstance(m, Message):
                raise TypeError(f"exchange(): {type(m).__name__} is not a message")
            if m.receiver not in self._roles:
                raise ValueError(f"exchange(): {m.kind} from {m.sender} is addressed to {m.receiver!r}, "
                                 f"which is not hosted by this runtime")
        if not msgs:
            return []
        tickets = self.boundary.release(msgs)
        batches: dict[str, list[Message]] = {}
        held: dict[str, list[Ticket]] = {}
        for m, t in zip(msgs, tickets):
            batches.setdefault(m.receiver, []).append(m)
            held.setdefault(m.receiver, []).append(t)
        try:
            replies = self._deliver(batches, held)
        except BoundaryViolation as exc:  # refused on receipt
            raise self.boundary.refused_on_receipt(exc)
        out: list[Message] = []
        for rid in batches:
            for r in replies[rid]:
                if not isinstance(r, Message):
                    raise BoundaryViolation(f"{_label(rid, self._roles[rid])} returned a {type(r).__name__}, "
                                            f"which is not a message type", sender=rid, kind=type(r).__name__)
                out.append(self.boundary.route(r, produced_by=rid))
        return out

    def collect(self, msgs: Iterable[Message]) -> list[Message]:
        """Take delivery of routed messages addressed to the coordinator (each once, checked on receipt)."""
        self._check_open()
        msgs = list(msgs)
        bad = [m for m in msgs if getattr(m, "receiver", None) != COORDINATOR]
        if bad:
            raise ValueError(f"collect(): {bad[0].kind} from {bad[0].sender} is addressed to {bad[0].receiver!r}, "
                             f"not to the coordinator")
        if msgs:
            try:
                receipt_check(COORDINATOR, msgs, self.boundary.release(msgs))
            except BoundaryViolation as exc:
                raise self.boundary.refused_on_receipt(exc)
        return msgs

    def pid(self, agent_id: str) -> int:
        """Process id of the process hosting ``agent_id`` (deployment information, not agent state)."""
        self._check_open()
        if agent_id not in self._roles:
            raise ValueError(f"pid(): no host {agent_id!r}")
        return int(self._call_many([(agent_id, PID_METHOD, (), {})])[0])

    # ---------------------------------------------------------------- state
    @abc.abstractmethod
    def checkpoint(self) -> None:
        """Snapshot every host now (the runtime keeps the last snapshot of each) and flush the audit log."""

    @abc.abstractmethod
    def last_snapshot(self, agent_id: str) -> bytes:
        """The last snapshot kept for ``agent_id`` (after its last delivery or checkpoint)."""

    def shutdown(self) -> None:
        self._closed = True
        self.boundary.flush()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} has been shut down")

    # ------------------------------------------------------- implementation
    @abc.abstractmethod
    def _start(self, agent_id: str, host: Any) -> None: ...

    @abc.abstractmethod
    def _deliver(self, batches: dict[str, list[Message]], tickets: dict[str, list[Ticket]]
                 ) -> dict[str, list[Message]]:
        """Hand each batch to its receiver; the receiver's process runs :func:`receipt_check` first."""

    @abc.abstractmethod
    def _call_many(self, calls: list[tuple[str, str, tuple, dict]]) -> list[Any]: ...
