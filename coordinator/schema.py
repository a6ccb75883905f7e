"""Message schemas: exact field types, shapes fixed by the protocol's dimensions, key scopes.

Every message is checked twice: when :meth:`Boundary.route <coordinator.boundary.Boundary.route>`
routes it (with the parties: keys included) and when its receiver gets it, inside the
actor or host (:func:`check_received`: the schema and the message's digest).

Two levels:

- the **type level** (every protocol): the exact message class (no subclass), the kind of
  every field (:data:`coordinator.messages.FIELD_KINDS`): ``float`` fields hold a finite
  Python ``float``, ``int`` fields an ``int`` (not a bool), enum fields a member of their
  enum, ``strs`` a tuple of ``str``, keyed fields a :class:`~coordinator.messages.FrozenMap`
  with ``str`` keys and finite values (read-only 1-D float64 arrays, or floats), no
  attribute outside the fields (the types are slotted); and the default *key scope* of
  every keyed field (:data:`KEY_SCOPES`);
- the **protocol level** (:class:`MessageSchema`, declared in
  ``coordinator/<protocol>/schema.py``): the shape of every array as a function of the
  protocol's :class:`Dims` (hours, scenario sets), the allowed enum values and strings,
  integer ranges, required optional fields, bounds, and cross-field rules.

A failed check raises :class:`SchemaError` naming the field; the boundary turns it into a
``BoundaryViolation`` that names sender, receiver and type as well.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .messages import (ARRAY, ARRAYS, BOOL, ENUMS, FLOAT, FLOATS, INT, OPT_FLOAT, STRS, TYPES, Bid, Caps, Exchange,
                       FeasibilityCut, FrozenMap, Injections, Message, Offer, OptimalityCut, PriceSignal, Schedule)

__all__ = ["Dims", "MessageSchema", "KeyScope", "SchemaError", "check_message", "check_received", "digest",
           "payload_text", "SENDER_OWN", "SENDER_DECISIONS", "SENDER_Q_DECISIONS", "RECEIVER_OWN",
           "RECEIVER_DECISIONS", "SENDER_SCOPE", "KEY_SCOPES", "non_negative", "KeysWithin", "CommandsOf", "Ticket"]


class SchemaError(ValueError):
    """A message outside its schema: ``field`` names the offending field ('' for the message as a whole)."""

    def __init__(self, field_name: str, what: str) -> None:
        self.field = field_name
        self.what = what
        super().__init__(f"field '{field_name}': {what}" if field_name else what)


@dataclass(frozen=True)
class Dims:
    """A protocol run's dimensions: ``hours`` (periods of a day), ``scenarios`` (scenario set -> count)."""

    hours: int | None = None
    scenarios: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"hours": self.hours, "scenarios": dict(self.scenarios)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> "Dims":
        d = d or {}
        return cls(d.get("hours"), dict(d.get("scenarios") or {}))

    @property
    def scenario_counts(self) -> tuple[int, ...]:
        return tuple(sorted({int(n) for n in self.scenarios.values() if int(n) > 0}))


# ------------------------------------------------------------------ key scopes
@dataclass(frozen=True)
class KeyScope:
    """Which ids a keyed field may use, given the sender's and the receiver's registration.

    ``ids(sender, receiver)`` with parties having ``public_ids`` and ``decision_ids``; scopes
    combine with ``&`` (both).
    """

    name: str
    ids: Callable[[Any, Any], frozenset[str]]

    def __and__(self, other: "KeyScope") -> "KeyScope":
        a, b = self, other
        return KeyScope(f"{a.name} and {b.name}", _Both(a.ids, b.ids))


@dataclass(frozen=True)
class _Both:
    a: Callable[[Any, Any], frozenset[str]]
    b: Callable[[Any, Any], frozenset[str]]

    def __call__(self, s: Any, r: Any) -> frozenset[str]:
        return self.a(s, r) & self.b(s, r)


def _sender_own(s: Any, r: Any) -> frozenset[str]:
    return s.public_ids


def _sender_decisions(s: Any, r: Any) -> frozenset[str]:
    return s.decision_ids


def _sender_q_decisions(s: Any, r: Any) -> frozenset[str]:
    return frozenset(k[:-2] for k in s.decision_ids if k.endswith("#q"))


def _sender_scope(s: Any, r: Any) -> frozenset[str]:
    return s.public_ids | s.decision_ids


def _receiver_own(s: Any, r: Any) -> frozenset[str]:
    return r.public_ids | r.decision_ids


def _receiver_decisions(s: Any, r: Any) -> frozenset[str]:
    return r.decision_ids


SENDER_OWN = KeyScope("the sender's own ids", _sender_own)
SENDER_DECISIONS = KeyScope("the sender's decisions", _sender_decisions)
SENDER_Q_DECISIONS = KeyScope("the sender's reactive decisions", _sender_q_decisions)
SENDER_SCOPE = KeyScope("the sender's own ids or decisions", _sender_scope)
RECEIVER_OWN = KeyScope("the receiver's own ids or decisions", _receiver_own)
RECEIVER_DECISIONS = KeyScope("the receiver's decisions", _receiver_decisions)

#: the key scope of every keyed field, by message type (a protocol's schema may narrow it)
KEY_SCOPES: dict[type[Message], dict[str, KeyScope]] = {
    PriceSignal: {"prices": SENDER_OWN},
    Offer: {"prices": SENDER_OWN, "quantities": SENDER_OWN},
    Bid: {"prices": SENDER_OWN, "quantities": SENDER_OWN},
    Schedule: {"quantities": RECEIVER_OWN & SENDER_DECISIONS, "prices": RECEIVER_OWN & SENDER_DECISIONS},
    Injections: {"p": SENDER_DECISIONS, "q": SENDER_Q_DECISIONS},
    FeasibilityCut: {"coefficients": RECEIVER_DECISIONS},
    OptimalityCut: {"coefficients": RECEIVER_DECISIONS & SENDER_SCOPE},
    Exchange: {"values": RECEIVER_OWN & SENDER_DECISIONS},
    Caps: {"caps": RECEIVER_OWN & SENDER_DECISIONS},
}


# ------------------------------------------------------------------ protocol schemas
Shapes = Callable[[Dims, Message], Iterable[tuple[int, ...]]]
Range = Callable[[Dims, Message], tuple[float, float]]
Rule = Callable[[Message, Dims, Any, Any], "tuple[str, str] | None"]


@dataclass(frozen=True)
class MessageSchema:
    """A protocol's schema of one message type (on top of the type level).

    ``shapes``: field -> allowed shapes of its arrays (every value of a keyed field);
    ``values``: field -> allowed values (enum members, or strings of a ``strs`` field);
    ``ranges``: field -> inclusive (low, high) of an ``int`` or ``float`` field;
    ``required``: optional fields that must be set; ``keys``: field -> :class:`KeyScope`
    (default :data:`KEY_SCOPES`); ``rules``: cross-field checks ``(msg, dims, sender,
    receiver) -> (field, what) or None`` (sender/receiver are None on receipt).
    """

    shapes: Mapping[str, Shapes] = field(default_factory=dict)
    values: Mapping[str, frozenset] = field(default_factory=dict)
    ranges: Mapping[str, Range] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    keys: Mapping[str, KeyScope] = field(default_factory=dict)
    rules: Sequence[Rule] = ()


def _what(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return f"a {v.dtype} array of shape {v.shape}"
    if isinstance(v, str):
        return f"the string {v[:40]!r}"
    return f"a {type(v).__name__}"


def _finite_array(name: str, a: Any) -> None:
    if type(a) is not np.ndarray or a.dtype != np.float64:
        raise SchemaError(name, f"must be a float64 array, got {_what(a)}")
    if a.flags.writeable:
        raise SchemaError(name, "must be read-only")
    if a.ndim != 1:
        raise SchemaError(name, f"must be 1-D, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise SchemaError(name, "must be finite (NaN or inf found)")


def _finite_float(name: str, v: Any) -> None:
    if type(v) is not float:
        raise SchemaError(name, f"must be a float, got {_what(v)}")
    if not math.isfinite(v):
        raise SchemaError(name, f"must be finite, got {v!r}")


def _check_kind(name: str, kind: str, v: Any) -> None:
    if kind in (ARRAYS, FLOATS):
        if type(v) is not FrozenMap:
            raise SchemaError(name, f"must be a frozen map of ids, got {_what(v)}")
        for k, x in v.items():
            if type(k) is not str:
                raise SchemaError(name, f"key {k!r} must be a str")
            if kind == ARRAYS:
                _finite_array(f"{name}[{k!r}]", x)
            else:
                _finite_float(f"{name}[{k!r}]", x)
    elif kind == FLOAT:
        _finite_float(name, v)
    elif kind == OPT_FLOAT:
        if v is not None:
            _finite_float(name, v)
    elif kind == INT:
        if type(v) is not int:
            raise SchemaError(name, f"must be an int, got {_what(v)}")
    elif kind == BOOL:
        if type(v) is not bool:
            raise SchemaError(name, f"must be a bool, got {_what(v)}")
    elif kind == STRS:
        if type(v) is not tuple or not all(type(s) is str for s in v):
            raise SchemaError(name, f"must be a tuple of strings, got {_what(v)}")
    elif kind == ARRAY:
        _finite_array(name, v)
    else:  # enums
        enum = ENUMS[kind.rstrip("?")]
        if v is None and kind.endswith("?"):
            return
        if type(v) is not enum:
            raise SchemaError(name, f"must be a {enum.__name__}, got {_what(v)}")


def check_message(msg: Any, schema: MessageSchema | None = None, dims: Dims = Dims(), sender: Any = None,
                  receiver: Any = None) -> None:
    """Raise :class:`SchemaError` unless ``msg`` holds to its type and ``schema`` (keys only with parties)."""
    cls = TYPES.get(type(msg).__name__)
    if cls is None or type(msg) is not cls:
        raise SchemaError("", f"{type(msg).__module__}.{type(msg).__qualname__} is not a message type "
                              "(subclasses are not accepted)")
    for name in ("sender", "receiver"):
        if type(getattr(msg, name)) is not str:
            raise SchemaError(name, f"must be a str, got {_what(getattr(msg, name))}")
    if type(msg.round) is not int or msg.round < 0:
        raise SchemaError("round", f"must be an int >= 0, got {msg.round!r}")
    kinds = cls.FIELDS
    for name, kind in kinds.items():
        _check_kind(name, kind, getattr(msg, name))
    s = schema or MessageSchema()
    for name in s.required:
        if getattr(msg, name) is None:
            raise SchemaError(name, "must be set")
    for name, allowed in s.values.items():
        v = getattr(msg, name)
        vals = v if kinds[name] == STRS else (v,)
        bad = [x for x in vals if x is not None and x not in allowed]
        if bad:
            shown = sorted(str(getattr(a, "value", a)) for a in allowed)
            raise SchemaError(name, f"{getattr(bad[0], 'value', bad[0])!r} is not one of {shown}")
    for name, rng in s.ranges.items():
        v = getattr(msg, name)
        if v is None:
            continue
        lo, hi = rng(dims, msg)
        if not lo <= v <= hi:
            raise SchemaError(name, f"{v!r} is outside [{lo:g}, {hi:g}]")
    for name, shapes_of in s.shapes.items():
        allowed_shapes = {tuple(x) for x in shapes_of(dims, msg)}
        v = getattr(msg, name)
        items = v.items() if isinstance(v, Mapping) else ((None, v),)
        for k, a in items:
            if a.shape not in allowed_shapes:
                where = name if k is None else f"{name}[{k!r}]"
                allowed = " or ".join(str(x) for x in sorted(allowed_shapes)) or \
                    "nothing (no dimensions: the run's Dims go to Boundary.use)"
                raise SchemaError(where, f"has shape {a.shape}; the protocol's dimensions allow {allowed}")
    if sender is not None and receiver is not None:
        scopes = {**KEY_SCOPES.get(cls, {}), **s.keys}
        for name in cls.KEYED:
            scope = scopes.get(name)
            if scope is None:
                raise SchemaError(name, "has no key scope")
            keys = getattr(msg, name).keys()
            bad = sorted(set(keys) - scope.ids(sender, receiver))
            if bad:
                raise SchemaError(name, f"has keys {bad[:5]}{' ...' if len(bad) > 5 else ''} outside "
                                        f"{scope.name}")
    for rule in s.rules:
        out = rule(msg, dims, sender, receiver)
        if out is not None:
            raise SchemaError(*out)


# ------------------------------------------------------------------ digests and receipt
def payload_text(msg: Message) -> str:
    """The message's payload as canonical JSON text (strict: ``ValueError`` on NaN or inf)."""
    return json.dumps(msg.payload(), allow_nan=False, separators=(",", ":"))


def digest(msg: Message, text: str | None = None) -> str:
    """SHA-256 of who, to whom, which round, which type and the payload text: what the boundary routed."""
    text = payload_text(msg) if text is None else text
    head = json.dumps([msg.kind, msg.sender, msg.receiver, msg.round], separators=(",", ":"))
    return hashlib.sha256((head + text).encode()).hexdigest()


@dataclass(frozen=True)
class Ticket:
    """What a receiver gets with a routed message: its routing seq, digest and schema (for the receipt check)."""

    seq: int
    digest: str
    schema: MessageSchema | None
    dims: Dims


def check_received(receiver: str, msg: Any, ticket: Ticket) -> None:
    """The receipt check inside the receiving host's process: addressed here, the schema, the routed digest.

    Raises :class:`SchemaError` (the runtime reports it as a ``BoundaryViolation``).
    """
    check_message(msg, ticket.schema, ticket.dims)
    if msg.receiver != receiver:
        raise SchemaError("receiver", f"the message (seq {ticket.seq}) is addressed to {msg.receiver!r}, "
                                      f"not to {receiver!r}")
    try:
        d = digest(msg)
    except ValueError as exc:
        raise SchemaError("", f"cannot be encoded: {exc}") from None
    if d != ticket.digest:
        raise SchemaError("", f"the message (seq {ticket.seq}) differs from what the boundary routed (changed "
                              "after routing)")


# ------------------------------------------------------------------ rules shared by protocols
def non_negative(d: Dims, m: Message) -> tuple[float, float]:
    """The range [0, inf) (for :attr:`MessageSchema.ranges`)."""
    return (0.0, math.inf)


@dataclass(frozen=True)
class KeysWithin:
    """A rule: the keys of ``field`` are among the keys of ``within`` (e.g. no quantity without a price)."""

    field: str
    within: str

    def __call__(self, m: Any, d: Dims, s: Any, r: Any) -> tuple[str, str] | None:
        extra = sorted(set(getattr(m, self.field)) - set(getattr(m, self.within)))
        return (self.field, f"has keys {extra[:5]} that '{self.within}' does not have") if extra else None


@dataclass(frozen=True)
class CommandsOf:
    """A rule of :class:`~coordinator.messages.Command`: its action is a step of its receiver's role."""

    commands: Mapping[str, frozenset]

    def __call__(self, m: Any, d: Dims, s: Any, r: Any) -> tuple[str, str] | None:
        if r is None:
            return None
        allowed = self.commands.get(r.role, frozenset())
        if m.action not in allowed:
            return ("action", f"{m.action.value!r} is not a step of {r.role} (its steps: "
                              f"{sorted(a.value for a in allowed) or 'none'})")
        return None
