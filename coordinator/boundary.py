"""The information boundary: who may send what to whom, checked, delivered once and recorded.

Every message goes through :meth:`Boundary.route`, which

1. checks that sender and receiver are registered and that the sender is who the runtime
   says produced the message;
2. checks ``(sender role, receiver role, message type)`` against the protocol's
   :class:`Policy`, and that the two parties share an area where the policy scopes a
   pair of roles to areas (tso-dso: a DSO and its area's participants);
3. checks the message against its schema (:mod:`coordinator.schema`): exact type, field
   types, finite values, shapes fixed by the protocol's dimensions, enumerations, and the
   scope of every key (the sender's own ids, or the receiver's decisions, as the type says);
4. gives it a routing seq (its token) and appends it to the audit log.

The runtime then hands a message to its receiver only through :meth:`Boundary.release`,
which accepts a message that was routed and not yet delivered (the very object routed: no
copy, no replay) and records the delivery; the receiver's process re-checks the schema
and the message's digest (:func:`coordinator.schema.check_received`). Anything else
raises :class:`BoundaryViolation`, naming sender, receiver, type and field, and the run
stops. Reads of the analyst channel are recorded too (:meth:`Boundary.analyst_read`).
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .auditlog import FILE_MODE, AuditLog, iter_lines
from .messages import TYPES, Message
from .schema import Dims, MessageSchema, SchemaError, Ticket, check_message, check_received, digest, payload_text

__all__ = ["COORDINATOR", "Policy", "EMPTY_POLICY", "BoundaryViolation", "Party", "Boundary", "read_audit_log",
           "read_audit_records", "receipt_check"]

COORDINATOR = "coordinator"

Rules = Mapping[tuple[str, str], frozenset[type[Message]]]


@dataclass(frozen=True)
class Policy:
    """Who may send which message types to whom, and in which form.

    ``rules``: ``(sender role, receiver role) -> types``. Each protocol declares its own
    (``coordinator/<protocol>/policy.py``) with roles named within the protocol
    (``tes.operator``, ``tso_dso.dso``, ...). The coordinator may send the
    ``coordinator_types`` to every role of the policy; a role may report to the coordinator
    only the types listed for it in ``to_coordinator`` (``role -> types``: the figures a
    protocol's decisions are made from, e.g. bounds and gaps). ``area_scoped``: role pairs
    whose parties must share an area (either direction). ``schemas``: the protocol's
    :class:`~coordinator.schema.MessageSchema` per type (shapes from the run's
    :class:`~coordinator.schema.Dims`). A coordinator that runs two protocols composes
    their policies explicitly with :meth:`compose`.
    """

    name: str
    rules: Rules
    coordinator_types: frozenset[type[Message]] = frozenset()
    to_coordinator: Mapping[str, frozenset[type[Message]]] = field(default_factory=dict)
    schemas: Mapping[type[Message], MessageSchema] = field(default_factory=dict, compare=False)
    area_scoped: frozenset[tuple[str, str]] = frozenset()

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(r for pair in self.rules for r in pair) | frozenset(self.to_coordinator)

    @property
    def parts(self) -> tuple["Policy", ...]:
        return (self,)

    def allowed(self, sender_role: str, receiver_role: str) -> frozenset[type[Message]]:
        if sender_role == COORDINATOR and receiver_role in self.roles:
            return self.coordinator_types
        if receiver_role == COORDINATOR:
            return frozenset(self.to_coordinator.get(sender_role, frozenset()))
        return self.rules.get((sender_role, receiver_role), frozenset())

    def scoped(self, sender_role: str, receiver_role: str) -> bool:
        """Whether the two roles may talk only within one area."""
        return (sender_role, receiver_role) in self.area_scoped or (receiver_role, sender_role) in self.area_scoped

    def part_for(self, sender_role: str, receiver_role: str, kind: type[Message]) -> "Policy | None":
        """The (part of the) policy that allows the message: its schemas apply."""
        for p in self.parts:
            if kind in p.allowed(sender_role, receiver_role):
                return p
        return None

    def describe(self) -> dict[str, Any]:
        """The policy as JSON (for the audit log's header)."""
        return {"name": self.name, "parts": [p.name for p in self.parts],
                "rules": sorted([s, r, sorted(t.__name__ for t in ts)] for (s, r), ts in self.rules.items()),
                "coordinator_types": {p.name: sorted(t.__name__ for t in p.coordinator_types) for p in self.parts},
                "to_coordinator": {k: sorted(t.__name__ for t in v) for k, v in sorted(self.to_coordinator.items())},
                "area_scoped": sorted(list(p) for p in self.area_scoped),
                "schemas": sorted({t.__name__ for p in self.parts for t in p.schemas})}

    def compose(self, other: "Policy", name: str | None = None) -> "Policy":
        """The union of two policies (explicit: the roles of both stay apart by their names; each part's
        coordinator types go to its own roles, each part's schemas apply to what it allows)."""
        rules = {k: frozenset(v) for k, v in self.rules.items()}
        for k, v in other.rules.items():
            rules[k] = rules.get(k, frozenset()) | frozenset(v)
        reports = {k: frozenset(v) for k, v in self.to_coordinator.items()}
        for k, v in other.to_coordinator.items():
            reports[k] = reports.get(k, frozenset()) | frozenset(v)
        return _ComposedPolicy(name or f"{self.name}+{other.name}", rules, frozenset(), reports,
                               area_scoped=self.area_scoped | other.area_scoped,
                               members=(*self.parts, *other.parts))


@dataclass(frozen=True)
class _ComposedPolicy(Policy):
    """Two policies together; the coordinator may send each part's types to that part's roles."""

    members: tuple[Policy, ...] = ()

    @property
    def parts(self) -> tuple[Policy, ...]:
        return self.members

    def allowed(self, sender_role: str, receiver_role: str) -> frozenset[type[Message]]:
        if sender_role == COORDINATOR:
            out: frozenset[type[Message]] = frozenset()
            for part in self.members:
                out |= part.allowed(sender_role, receiver_role)
            return out
        if receiver_role == COORDINATOR:
            return frozenset(self.to_coordinator.get(sender_role, frozenset()))
        return self.rules.get((sender_role, receiver_role), frozenset())


#: the policy of a boundary that no protocol has claimed yet: nothing is allowed
EMPTY_POLICY = Policy("empty", {})


class BoundaryViolation(RuntimeError):
    """A message outside the information policy, its schema, or the delivery rules.

    ``sender``, ``receiver``, ``kind`` (the message type) and ``field`` name what was refused.
    """

    def __init__(self, message: str, *, sender: str = "", receiver: str = "", kind: str = "",
                 field: str = "") -> None:
        super().__init__(message)
        self.sender, self.receiver, self.kind, self.field = sender, receiver, kind, field


def _violation(msg: Any, field_name: str, what: str) -> BoundaryViolation:
    kind = type(msg).__name__
    s, r = getattr(msg, "sender", "?"), getattr(msg, "receiver", "?")
    where = f": field '{field_name}'" if field_name else ""
    return BoundaryViolation(f"{kind} from {s} to {r}{where}: {what}", sender=str(s), receiver=str(r), kind=kind,
                             field=field_name)


def receipt_check(receiver: str, batch: list[Any], tickets: list[Ticket]) -> None:
    """The receiver's check of a delivery, in its own process: every message addressed to it, within its
    schema, and the message the boundary routed (its digest). Raises :class:`BoundaryViolation`."""
    if len(batch) != len(tickets):
        raise BoundaryViolation(f"a delivery to {receiver} of {len(batch)} message(s) came with {len(tickets)} "
                                "routing ticket(s)", receiver=receiver)
    for m, t in zip(batch, tickets):
        try:
            check_received(receiver, m, t)
        except SchemaError as exc:
            raise _violation(m, exc.field, f"refused on receipt by {receiver}: {exc.what}") from None


@dataclass(frozen=True)
class Party:
    id: str
    role: str
    public_ids: frozenset[str]  # identifiers this party owns and may expose
    decision_ids: frozenset[str]  # identifiers of its decisions (keys of cuts it may receive)
    area: int | None = None  # its area, where the protocol has areas


class Boundary:
    """Policy and schema enforcement, once-only delivery, and the audit log (:mod:`coordinator.auditlog`).

    ``log_path``: the run's audit log (created; an existing file is refused), or None to
    keep the records in memory (with payloads) only. ``file_mode``: the log's mode before
    the umask (the run folder's, ``scenarios.runs.FILE_MODE``).
    """

    def __init__(self, log_path: str | Path | None = None, policy: Policy | None = None, *,
                 run_id: str | None = None, file_mode: int = FILE_MODE) -> None:
        self.policy = EMPTY_POLICY if policy is None else policy
        self.dims: dict[str, Dims] = {}
        self.parties: dict[str, Party] = {COORDINATOR: Party(COORDINATOR, COORDINATOR, frozenset(), frozenset())}
        self.log_path = Path(log_path) if log_path is not None else None
        self._log = AuditLog(self.log_path, self._header, mode=file_mode, run_id=run_id) \
            if self.log_path is not None else None
        self._seq = 0
        self._pending: dict[int, tuple[Message, Ticket]] = {}
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.RLock()
        self.records: list[dict] = []  # the route records (with payloads when there is no log file)
        self.deliveries = 0
        self.analyst_reads: list[dict] = []
        self.keep_payloads = self._log is None

    # ---------------------------------------------------------------- policy
    def _header(self) -> dict[str, Any]:
        return {"protocol": self.policy.name, "policy": self.policy.describe(),
                "dims": {k: v.to_json() for k, v in self.dims.items()}}

    def use(self, policy: Policy, dims: Dims | None = None) -> None:
        """Adopt a protocol's policy (with its run's dimensions); a second, different protocol's policy is
        composed with the first."""
        with self._lock:
            before = (self.policy.describe(), dict(self.dims))
            if self.policy is EMPTY_POLICY or self.policy == policy:
                self.policy = policy
            elif policy.name not in [p.name for p in self.policy.parts]:
                self.policy = self.policy.compose(policy)
            if dims is not None or policy.name not in self.dims:
                self.dims[policy.name] = dims or Dims()
            if self._log is not None and self._log.lines and (self.policy.describe(), dict(self.dims)) != before:
                self._log.write("policy", self._header())

    # ---------------------------------------------------------------- parties
    def register(self, agent_id: str, role: str, public_ids: Iterable[str] = (), decision_ids: Iterable[str] = (),
                 area: int | None = None) -> None:
        """Register a party: its role, public ids, decision ids and area (None: no area)."""
        party = Party(str(agent_id), str(role), frozenset(map(str, public_ids)), frozenset(map(str, decision_ids)),
                      None if area is None else int(area))
        with self._lock:
            if party.id in self.parties:
                raise ValueError(f"'{party.id}' is registered already (as {self.parties[party.id].role})")
            self.parties[party.id] = party
            if self._log is not None:
                self._log.write("party", {"id": party.id, "role": party.role, "area": party.area,
                                          "public_ids": sorted(party.public_ids),
                                          "decision_ids": sorted(party.decision_ids)})

    def role(self, agent_id: str) -> str:
        return self.parties[agent_id].role

    # ------------------------------------------------------------------ check
    def check(self, msg: Any, *, produced_by: str | None = None) -> tuple[MessageSchema | None, Dims]:
        """Raise :class:`BoundaryViolation` unless ``msg`` is allowed; returns its schema and dimensions."""
        cls = TYPES.get(type(msg).__name__)
        if cls is None or type(msg) is not cls:
            raise _violation(msg, "", f"{type(msg).__module__}.{type(msg).__qualname__} is not a message type "
                                      "(subclasses are not accepted)")
        if produced_by is not None and msg.sender != produced_by:
            raise _violation(msg, "sender", f"{produced_by} tried to send a {msg.kind} as '{msg.sender}'")
        for name in ("sender", "receiver"):
            who = getattr(msg, name)
            if not isinstance(who, str) or who not in self.parties:
                raise _violation(msg, name, f"'{who}' is not registered")
        s, r = self.parties[msg.sender], self.parties[msg.receiver]
        part = self.policy.part_for(s.role, r.role, cls)
        if part is None:
            allowed = self.policy.allowed(s.role, r.role)
            raise _violation(msg, "", f"{msg.kind} from {msg.sender} ({s.role}) to {msg.receiver} ({r.role}) is not "
                                      f"allowed by the information policy '{self.policy.name}' (allowed: "
                                      f"{sorted(t.__name__ for t in allowed) or 'nothing'})")
        if self.policy.scoped(s.role, r.role) and (s.area is None or s.area != r.area):
            raise _violation(msg, "", f"{s.role} and {r.role} talk only within one area: {msg.sender} is in area "
                                      f"{s.area}, {msg.receiver} in area {r.area}")
        schema, dims = part.schemas.get(cls), self.dims.get(part.name, Dims())
        try:
            check_message(msg, schema, dims, s, r)
        except SchemaError as exc:
            raise _violation(msg, exc.field, exc.what) from None
        return schema, dims

    def _refused(self, msg: Any, exc: BoundaryViolation) -> BoundaryViolation:
        if self._log is not None:
            self._log.write("violation", {"type": exc.kind, "sender": exc.sender, "receiver": exc.receiver,
                                          "field": exc.field, "error": str(exc)})
            self._log.flush()
        return exc

    # ------------------------------------------------------------------ route
    def route(self, msg: Message, *, produced_by: str | None = None) -> Message:
        """Check ``msg``, give it its routing seq and append it to the audit log; returns it."""
        with self._lock:
            try:
                schema, dims = self.check(msg, produced_by=produced_by)
                if msg._seq is not None:
                    raise _violation(msg, "", f"was routed already (seq {msg._seq}); a message is routed once")
                text = payload_text(msg)
            except BoundaryViolation as exc:
                raise self._refused(msg, exc) from None
            self._seq += 1
            seq = self._seq
            object.__setattr__(msg, "_seq", seq)
            self._pending[seq] = (msg, Ticket(seq, digest(msg, text), schema, dims))
            s, r = self.parties[msg.sender], self.parties[msg.receiver]
            rec = {"seq": seq, "time": round(time.time(), 6), "round": msg.round, "type": msg.kind,
                   "sender": msg.sender, "sender_role": s.role, "receiver": msg.receiver, "receiver_role": r.role}
            self._counts[(msg.sender, msg.receiver, msg.kind)] += 1
            if self._log is not None:
                self._log.write("route", rec, text)
            else:
                rec["payload"] = msg.payload()
            self.records.append(rec)
        return msg

    def route_all(self, msgs: Iterable[Message], *, produced_by: str | None = None) -> list[Message]:
        return [self.route(m, produced_by=produced_by) for m in msgs]

    # ---------------------------------------------------------------- deliver
    def release(self, msgs: list[Message]) -> list[Ticket]:
        """Hand routed messages over for delivery, each once: their tickets, in order; records the deliveries.

        Refuses (all of them) if one was never routed, was delivered already, or is not the
        object that was routed.
        """
        with self._lock:
            seen: set[int] = set()
            for m in msgs:
                try:
                    if TYPES.get(type(m).__name__) is not type(m):
                        raise _violation(m, "", "is not a message type")
                    seq = m._seq
                    if seq is None:
                        raise _violation(m, "", "was never routed through the boundary")
                    entry = self._pending.get(seq)
                    if entry is None:
                        raise _violation(m, "", f"was delivered already (seq {seq}); a routed message is "
                                                "delivered once")
                    if entry[0] is not m:
                        raise _violation(m, "", f"is not the message routed as seq {seq} (a copy)")
                    if seq in seen:
                        raise _violation(m, "", f"appears twice in one delivery (seq {seq})")
                except BoundaryViolation as exc:
                    raise self._refused(m, exc) from None
                seen.add(seq)
            tickets = [self._pending.pop(m._seq)[1] for m in msgs]  # type: ignore[index]
            by_receiver: dict[str, list[int]] = {}
            for m, t in zip(msgs, tickets):
                by_receiver.setdefault(m.receiver, []).append(t.seq)
            self.deliveries += len(msgs)
            if self._log is not None:
                for rid, seqs in by_receiver.items():
                    self._log.write("delivery", {"receiver": rid, "seqs": seqs})
            return tickets

    def refused_on_receipt(self, exc: BoundaryViolation) -> BoundaryViolation:
        """Record a message that its receiver's receipt check refused."""
        with self._lock:
            return self._refused(None, exc)

    @property
    def undelivered(self) -> list[Message]:
        """Messages routed and not (yet) delivered."""
        return [m for m, _ in self._pending.values()]

    # ---------------------------------------------------------------- analyst
    def analyst_read(self, agent_id: str, what: str, args: list[Any], nbytes: int, sha256: str) -> None:
        """Record a read of the analyst channel (who was read, what, how much)."""
        rec = {"agent": agent_id, "role": self.parties[agent_id].role if agent_id in self.parties else None,
               "what": what, "args": args, "bytes": int(nbytes), "sha256": sha256}
        with self._lock:
            self.analyst_reads.append(rec)
            if self._log is not None:
                self._log.write("analyst_read", rec)

    # ---------------------------------------------------------------- summary
    def summary(self) -> list[dict]:
        """Message counts per (sender, receiver, type)."""
        return [{"sender": s, "receiver": r, "type": t, "count": n} for (s, r, t), n in sorted(self._counts.items())]

    def flush(self) -> None:
        if self._log is not None:
            self._log.flush()

    def close(self) -> None:
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> "Boundary":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_audit_records(path: str | Path) -> list[dict]:
    """Every record of an audit log (``.gz`` too), in order."""
    import json

    return [json.loads(line) for line in iter_lines(path) if line.strip()]


def read_audit_log(path: str | Path) -> list[dict]:
    """The routed messages of an audit log (its ``route`` records, with payloads)."""
    return [r for r in read_audit_records(path) if r.get("rec") == "route"]
