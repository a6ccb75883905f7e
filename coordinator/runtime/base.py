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
- optionally domain methods (``report()``, ...) that :meth:`Runtime.call` may
  invoke. Calls are for reading results: they are assumed not to change the
  host's state (call :meth:`Runtime.checkpoint` after one that does, or a
  restored actor will not have the change).

Hosts must be deterministic given their state: a crashed Ray actor is rebuilt
from its last snapshot and the delivery it was handling is replayed, which gives
the same numbers only if ``handle`` is deterministic.

Both runtimes have the same semantics:

- :meth:`Runtime.add` registers the host with the boundary and starts hosting a
  *copy* of it (``restore(snapshot())``): the caller's object is never touched
  again, on either runtime;
- :meth:`Runtime.send` routes coordinator-originated messages;
- :meth:`Runtime.exchange` delivers routed messages (one ``handle`` call per
  receiver, all receivers in parallel on Ray), checkpoints each receiver after
  its delivery and returns the routed replies in a deterministic order: order
  of the receivers' first appearance in the input, then reply order;
- an exception inside a host is re-raised with its own type (``SolveError``,
  ``InfeasibleSetup``, ...), its message naming the agent, the remote traceback
  added as a note; all receivers of a delivery are run before the first error
  (in receiver order) is raised, so the hosts' states do not depend on the
  runtime.

Ray is imported only when a :class:`RayRuntime` is made.
"""
from __future__ import annotations

import abc
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..boundary import Boundary, BoundaryViolation
from ..messages import Message
from .errors import _label

__all__ = ["Runtime", "PID_METHOD", "PROJECT_PACKAGES"]

#: the method name that :meth:`Runtime.call` answers with the process id hosting the agent
PID_METHOD = "__pid__"
#: the project's top-level packages (shipped to a cluster as ``py_modules``)
PROJECT_PACKAGES = ("agents", "coordinator", "network", "scenarios")
log = logging.getLogger(__name__)
_FORBIDDEN_CALLS = frozenset({"handle", "snapshot", "restore"})


def _check_call(method: str) -> None:
    if method == PID_METHOD:
        return
    if method.startswith("_") or method in _FORBIDDEN_CALLS:
        raise ValueError(f"call(): '{method}' cannot be called on a host (messages go through exchange(); "
                         f"private and state methods are not callable)")


def _normalise_calls(calls: Iterable[Sequence[Any]]) -> list[tuple[str, str, tuple, dict]]:
    out = []
    for c in calls:
        c = tuple(c)
        if not 2 <= len(c) <= 4:
            raise ValueError(f"call_many(): expected (agent_id, method[, args[, kwargs]]), got {c!r}")
        aid, method = str(c[0]), str(c[1])
        args = tuple(c[2]) if len(c) > 2 and c[2] is not None else ()
        kwargs = dict(c[3]) if len(c) > 3 and c[3] is not None else {}
        _check_call(method)
        out.append((aid, method, args, kwargs))
    return out


def _project_root() -> Path | None:
    """The source checkout holding the project packages, or None when installed."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").exists() else None


# --------------------------------------------------------------------------- base
class Runtime(abc.ABC):
    """Hosts agents and moves messages between them through a :class:`Boundary`."""

    def __init__(self, boundary: Boundary) -> None:
        self.boundary = boundary
        self._roles: dict[str, str] = {}
        self._closed = False

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
        self.boundary.register(aid, role, host.public_ids(), host.decision_ids())
        self._roles[aid] = role
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
        """Deliver routed messages, one ``handle`` call per receiver, and return the routed replies.

        Receivers run in parallel (on Ray); replies are ordered by the receivers' first
        appearance in ``msgs``, then in the order each receiver returned them.
        """
        self._check_open()
        batches: dict[str, list[Message]] = {}
        for m in msgs:
            if not isinstance(m, Message):
                raise TypeError(f"exchange(): {type(m).__name__} is not a message")
            if m.receiver not in self._roles:
                raise ValueError(f"exchange(): {m.kind} from {m.sender} is addressed to {m.receiver!r}, "
                                 f"which is not hosted by this runtime")
            batches.setdefault(m.receiver, []).append(m)
        if not batches:
            return []
        replies = self._deliver(batches)
        out: list[Message] = []
        for rid in batches:
            for r in replies[rid]:
                if not isinstance(r, Message):
                    raise BoundaryViolation(f"{_label(rid, self._roles[rid])} returned a {type(r).__name__}, "
                                            f"which is not a message type")
                out.append(self.boundary.route(r, produced_by=rid))
        return out

    # ---------------------------------------------------------------- calls
    def call(self, agent_id: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Invoke a (read-only) domain method of one host and return its result."""
        return self.call_many([(agent_id, method, args, kwargs)])[0]

    def call_many(self, calls: Iterable[Sequence[Any]]) -> list[Any]:
        """Invoke ``(agent_id, method[, args[, kwargs]])`` calls, in parallel on Ray; results in order."""
        self._check_open()
        norm = _normalise_calls(calls)
        for aid, *_ in norm:
            if aid not in self._roles:
                raise ValueError(f"call(): no host {aid!r}")
        return self._call_many(norm) if norm else []

    def pid(self, agent_id: str) -> int:
        """Process id of the process hosting ``agent_id``."""
        return int(self.call(agent_id, PID_METHOD))

    # ---------------------------------------------------------------- state
    @abc.abstractmethod
    def checkpoint(self) -> None:
        """Snapshot every host; the runtime keeps the last snapshot of each."""

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
    def _deliver(self, batches: dict[str, list[Message]]) -> dict[str, list[Message]]: ...

    @abc.abstractmethod
    def _call_many(self, calls: list[tuple[str, str, tuple, dict]]) -> list[Any]: ...
