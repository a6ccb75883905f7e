"""The information boundary: who may send what to whom, checked and recorded.

Every message goes through :meth:`Boundary.route`, which

1. checks that sender and receiver are registered and that the sender is who
   the runtime says produced the message;
2. checks ``(sender role, receiver role, message type)`` against the
   protocol's :class:`Policy`;
3. checks that every payload key is a *public* identifier (a unit, meter or
   customer id that some agent registered as public), and that the keys of a cut
   are decision ids of its receiver;
4. appends the message to the JSON-lines audit log.

Anything else raises :class:`BoundaryViolation` and the run stops.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from .messages import FeasibilityCut, Message, OptimalityCut

COORDINATOR = "coordinator"

Rules = Mapping[tuple[str, str], frozenset[type[Message]]]


@dataclass(frozen=True)
class Policy:
    """Who may send which message types to whom: ``(sender role, receiver role) -> types``.

    Each protocol declares its own (``coordinator/<protocol>/policy.py``) with roles named
    within the protocol (``tes.operator``, ``tso_dso.dso``, ...). The coordinator may send
    the ``coordinator_types`` to every role of the policy; a role may report to the
    coordinator only the types listed for it in ``to_coordinator`` (``role -> types``:
    the figures a protocol's decisions are made from, e.g. bounds and gaps). A
    coordinator that runs two protocols composes their policies explicitly with
    :meth:`compose`.
    """

    name: str
    rules: Rules
    coordinator_types: frozenset[type[Message]] = frozenset()
    to_coordinator: Mapping[str, frozenset[type[Message]]] = field(default_factory=dict)

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(r for pair in self.rules for r in pair) | frozenset(self.to_coordinator)

    def allowed(self, sender_role: str, receiver_role: str) -> frozenset[type[Message]]:
        if sender_role == COORDINATOR and receiver_role in self.roles:
            return self.coordinator_types
        if receiver_role == COORDINATOR:
            return frozenset(self.to_coordinator.get(sender_role, frozenset()))
        return self.rules.get((sender_role, receiver_role), frozenset())

    def compose(self, other: "Policy", name: str | None = None) -> "Policy":
        """The union of two policies (explicit: the roles of both stay apart by their names)."""
        rules = {k: frozenset(v) for k, v in self.rules.items()}
        for k, v in other.rules.items():
            rules[k] = rules.get(k, frozenset()) | frozenset(v)
        reports = {k: frozenset(v) for k, v in self.to_coordinator.items()}
        for k, v in other.to_coordinator.items():
            reports[k] = reports.get(k, frozenset()) | frozenset(v)
        composed = _ComposedPolicy(name or f"{self.name}+{other.name}", rules, frozenset(), reports)
        object.__setattr__(composed, "parts", (self, other))
        return composed


@dataclass(frozen=True)
class _ComposedPolicy(Policy):
    """Two policies together; the coordinator may send each part's types to that part's roles."""

    def allowed(self, sender_role: str, receiver_role: str) -> frozenset[type[Message]]:
        if sender_role == COORDINATOR:
            out: frozenset[type[Message]] = frozenset()
            for part in getattr(self, "parts", ()):
                out |= part.allowed(sender_role, receiver_role)
            return out
        if receiver_role == COORDINATOR:
            return frozenset(self.to_coordinator.get(sender_role, frozenset()))
        return self.rules.get((sender_role, receiver_role), frozenset())


#: the policy of a boundary that no protocol has claimed yet: nothing is allowed
EMPTY_POLICY = Policy("empty", {})


class BoundaryViolation(RuntimeError):
    """A message outside the information policy."""


@dataclass(frozen=True)
class Party:
    id: str
    role: str
    public_ids: frozenset[str]  # identifiers this party owns and may expose
    decision_ids: frozenset[str]  # identifiers of its decisions (keys of cuts it may receive)


class Boundary:
    """Policy enforcement and audit log (JSON lines, one message per line)."""

    def __init__(self, log_path: str | Path | None = None, policy: Policy | None = None) -> None:
        self.policy = EMPTY_POLICY if policy is None else policy
        self.parties: dict[str, Party] = {COORDINATOR: Party(COORDINATOR, COORDINATOR, frozenset(), frozenset())}
        self.log_path = Path(log_path) if log_path is not None else None
        self._fh = open(self.log_path, "a", encoding="utf-8") if self.log_path is not None else None
        self._seq = 0
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()
        self.records: list[dict] = []  # in-memory copy of the log (without payloads if log is on disk)
        self.keep_payloads = self._fh is None

    # ---------------------------------------------------------------- policy
    def use(self, policy: Policy) -> None:
        """Adopt a protocol's policy; a second, different protocol's policy is composed with the first."""
        if self.policy is EMPTY_POLICY or self.policy == policy:
            self.policy = policy
        elif policy.name not in self.policy.name.split("+"):
            self.policy = self.policy.compose(policy)

    # ---------------------------------------------------------------- parties
    def register(self, agent_id: str, role: str, public_ids: Iterable[str] = (),
                 decision_ids: Iterable[str] = ()) -> None:
        """Register a party, its role, its public ids and its decision ids."""
        pub = frozenset(map(str, public_ids))
        dec = frozenset(map(str, decision_ids))
        self.parties[agent_id] = Party(agent_id, role, pub, dec)

    @property
    def public_ids(self) -> frozenset[str]:
        out: set[str] = set()
        for p in self.parties.values():
            out |= p.public_ids | p.decision_ids
        return frozenset(out)

    def role(self, agent_id: str) -> str:
        return self.parties[agent_id].role

    # ------------------------------------------------------------------ route
    def check(self, msg: Message, *, produced_by: str | None = None) -> None:
        """Raise :class:`BoundaryViolation` unless ``msg`` is allowed."""
        if produced_by is not None and msg.sender != produced_by:
            raise BoundaryViolation(f"{produced_by} tried to send a {msg.kind} as '{msg.sender}'")
        for who in (msg.sender, msg.receiver):
            if who not in self.parties:
                raise BoundaryViolation(f"{msg.kind} from {msg.sender} to {msg.receiver}: '{who}' is not registered")
        s, r = self.parties[msg.sender], self.parties[msg.receiver]
        allowed = self.policy.allowed(s.role, r.role)
        if type(msg) not in allowed:
            raise BoundaryViolation(
                f"{msg.kind} from {msg.sender} ({s.role}) to {msg.receiver} ({r.role}) is not allowed by the "
                f"information policy (allowed: {sorted(t.__name__ for t in allowed) or 'nothing'})")
        keys = msg.keys()
        unknown = keys - self.public_ids
        if unknown:
            raise BoundaryViolation(f"{msg.kind} from {msg.sender} to {msg.receiver} carries non-public "
                                    f"identifiers {sorted(unknown)[:5]}")
        if isinstance(msg, (FeasibilityCut, OptimalityCut)):
            foreign = keys - r.decision_ids
            if foreign:
                raise BoundaryViolation(f"{msg.kind} from {msg.sender} to {msg.receiver} has coefficients on "
                                        f"{sorted(foreign)[:5]}, which are not {msg.receiver}'s decisions")

    def route(self, msg: Message, *, produced_by: str | None = None) -> Message:
        """Check ``msg`` and append it to the audit log; returns it unchanged."""
        self.check(msg, produced_by=produced_by)
        with self._lock:
            self._seq += 1
            rec = {"seq": self._seq, "time": round(time.time(), 6), "round": msg.round, "type": msg.kind,
                   "sender": msg.sender, "sender_role": self.parties[msg.sender].role,
                   "receiver": msg.receiver, "receiver_role": self.parties[msg.receiver].role,
                   "payload": msg.payload()}
            self._counts[(msg.sender, msg.receiver, msg.kind)] += 1
            if self._fh is not None:
                self._fh.write(json.dumps(rec, default=_jsonable) + "\n")
                rec = {k: v for k, v in rec.items() if k != "payload"}
            self.records.append(rec)
        return msg

    def route_all(self, msgs: Iterable[Message], *, produced_by: str | None = None) -> list[Message]:
        return [self.route(m, produced_by=produced_by) for m in msgs]

    def summary(self) -> list[dict]:
        """Message counts per (sender, receiver, type)."""
        return [{"sender": s, "receiver": r, "type": t, "count": n} for (s, r, t), n in sorted(self._counts.items())]

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "Boundary":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _jsonable(o: object) -> object:
    if isinstance(o, float):
        return None
    if hasattr(o, "tolist"):
        return o.tolist()  # type: ignore[no-any-return]
    return str(o)


def read_audit_log(path: str | Path) -> list[dict]:
    """Read a JSON-lines audit log."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
