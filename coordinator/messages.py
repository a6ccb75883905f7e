"""Every message type that may cross an agent boundary.

Messages are frozen, slotted dataclasses (no attribute can be added to one) with
immutable payloads: float arrays are read-only ``float64`` copies, payload
dictionaries are :class:`FrozenMap`\\ s keyed by *public* identifiers (unit, meter
and customer ids, PCC ids). No message type has a field for topology, impedances,
network limits, cost curves or utilities, so such data has no place to go. Every
field has a kind (:data:`FIELD_KINDS`): the constructor normalises what it can
(lists to read-only arrays, numpy scalars to ``float``/``int``, enum values to
their enum) and leaves anything else as it is, for the boundary to refuse. What
may be sent, between which roles, with which shapes, is decided by
:mod:`coordinator.boundary` and the protocol's schemas (:mod:`coordinator.schema`).

Explicit representations instead of non-finite numbers (every float a message
carries is finite):

- an offer with no quantity for a unit (``quantities`` omits the key) offers an
  unlimited quantity (tes: the main grid at the LMP); see :meth:`Offer.quantity`;
- a ``Schedule`` with no ``prices`` entry has no price (tso-dso: ``fc`` has no
  day-ahead market price); ``IterationBounds.price`` is ``None`` then;
- ``Status.gap`` is ``None`` when unknown.

Sign conventions
----------------
- Powers are in the case's power unit (kW or MW), three-phase totals.
- ``Injections.p``/``.q``: positive = power *drawn from* the grid at that meter
  (consumption); a generator's output appears with a negative sign.
- ``FeasibilityCut``: ``constant + sum_k coefficients[k] * x_k <= 0`` where ``x_k``
  is the receiver's decision ``k`` in period ``period`` (same units and sign as
  in the ``Injections`` the cut answers, decision id ``"<meter>"`` for active and
  ``"<meter>#q"`` for reactive power).
- ``OptimalityCut``: ``theta >= constant + sum_k coefficients[k] * x_k``.

The audit log's form of a message is :func:`encode` (strict JSON, floats at full
precision); :func:`decode` rebuilds the message from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, ClassVar, Mapping

import numpy as np


class FrozenMap(dict):
    """A read-only dict (picklable, unlike ``MappingProxyType``)."""

    __slots__ = ()

    def _readonly(self, *a: Any, **k: Any) -> None:
        raise TypeError("message payloads are read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _readonly  # type: ignore

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (dict(self),))


class Product(str, Enum):
    """What an offer or bid is for: day-ahead energy, or real-time up/down regulation."""

    DAY_AHEAD = "day_ahead"
    UP = "up"  # real-time upward regulation (more output, or less consumption)
    DOWN = "down"  # real-time downward regulation


class PriceKind(str, Enum):
    """What a :class:`PriceSignal` posts: the locational marginal price, or an energy price."""

    LMP = "lmp"
    ENERGY = "energy"


class Note(str, Enum):
    """The note of a :class:`Status` (a closed set: a status carries no free text)."""

    NONE = ""
    CONVERGED = "converged"
    ITERATION_LIMIT = "iteration_limit"
    NO_PROGRESS = "no_progress"


class Action(str, Enum):
    """What the coordinator asks an agent to do (the ``action`` of a :class:`Command`).

    tes: ``OPEN`` (main grid: post the LMP; DER managers: offer), ``CLOSE`` (load
    aggregator: send each seller its final schedule), ``END_OF_DAY`` (DER managers: learn
    from the day), ``NEW_DAY`` (main grid, DER managers, load aggregator: take day
    ``iteration``'s data from their own private data set; the command carries only the day). tso-dso: ``OFFER_DAY_AHEAD``, ``OFFER_REAL_TIME`` (participants, for a
    scenario set), ``SCENARIO_SET`` (operators: the set the next offers and exchanges
    belong to), ``LOWER_BOUND`` (DSOs: a lower bound of their real-time cost), and the
    TSO's steps of the Benders loop, which the protocol drives (``MASTER``,
    ``REAL_TIME_ROUND``, ``CLOSE_ITERATION``, ``EVALUATE``, ``CLOSE_EVALUATION``,
    ``FINAL``).
    """

    OPEN = "open"
    CLOSE = "close"
    END_OF_DAY = "end_of_day"
    NEW_DAY = "new_day"
    OFFER_DAY_AHEAD = "offer_day_ahead"
    OFFER_REAL_TIME = "offer_real_time"
    SCENARIO_SET = "scenario_set"
    LOWER_BOUND = "lower_bound"
    MASTER = "master"
    REAL_TIME_ROUND = "real_time_round"
    CLOSE_ITERATION = "close_iteration"
    EVALUATE = "evaluate"
    CLOSE_EVALUATION = "close_evaluation"
    FINAL = "final"


class Scheme(str, Enum):
    """tso-dso coordination schemes (``docs/tso_dso_reference.md``)."""

    PCC = "pcc"
    CM = "cm"
    FC = "fc"


class ScenarioSet(str, Enum):
    """Which wind scenarios: the in-sample set of the day-ahead decision, or the out-of-sample set."""

    IN_SAMPLE = "in_sample"
    OUT_OF_SAMPLE = "out_of_sample"


# ------------------------------------------------------------------ field kinds and normalisation
#: field kinds: ``arrays`` {id: read-only float64 array}, ``floats`` {id: float}, ``float``, ``float?`` (or
#: None), ``int``, ``bool``, ``strs`` (tuple of str), ``array`` (read-only float64), ``<Enum>`` / ``<Enum>?``
ARRAYS, FLOATS, FLOAT, OPT_FLOAT, INT, BOOL, STRS, ARRAY = "arrays", "floats", "float", "float?", "int", "bool", \
    "strs", "array"
ENUMS: dict[str, type[Enum]] = {e.__name__: e for e in (Product, PriceKind, Note, Action, Scheme, ScenarioSet)}
_NUMBER = (int, float, np.integer, np.floating)


def frozen_array(v: Any) -> Any:
    """A read-only float64 copy of ``v`` (a view of a read-only base: its flag cannot be set back), or ``v``
    itself when it is not numeric."""
    if isinstance(v, (str, bytes, Mapping)) or v is None:
        return v
    try:
        raw = np.asarray(v)
        if raw.dtype.kind not in "biuf":  # numbers only: strings and objects stay as they are (and are refused)
            return v
        base = np.array(raw, dtype=np.float64)
    except (TypeError, ValueError):
        return v
    base.setflags(write=False)
    out = base.view()
    out.setflags(write=False)
    return out


def _number(v: Any, kind: type) -> Any:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, _NUMBER):
        return v
    if kind is int:
        return int(v) if isinstance(v, (int, np.integer)) else v
    return float(v)


def _normalise(kind: str, v: Any) -> Any:
    if kind == ARRAYS:
        if not isinstance(v, Mapping):
            return v
        return FrozenMap({(k if isinstance(k, str) else str(k)): frozen_array(x) for k, x in v.items()})
    if kind == FLOATS:
        if not isinstance(v, Mapping):
            return v
        return FrozenMap({(k if isinstance(k, str) else str(k)): _number(x, float) for k, x in v.items()})
    if kind in (FLOAT, OPT_FLOAT):
        return _number(v, float)
    if kind == INT:
        return _number(v, int)
    if kind == BOOL:
        return bool(v) if isinstance(v, np.bool_) else v
    if kind == STRS:
        if isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v):
            return tuple(v)
        return v
    if kind == ARRAY:
        return frozen_array(v)
    enum = ENUMS[kind.rstrip("?")]
    if isinstance(v, str) and not isinstance(v, enum) and v in enum._value2member_map_:
        return enum(v)
    return v


def _rebuild(cls: type, args: tuple, values: dict[str, Any]) -> "Message":
    return cls(*args, **values)


@dataclass(frozen=True, slots=True)
class Message:
    """Base class: who sends to whom, in which protocol round.

    ``_seq`` is the routing token the boundary sets when it routes the message (not a
    field of its content: not compared, not encoded, not pickled).
    """

    sender: str
    receiver: str
    round: int = 0
    _seq: int | None = field(default=None, init=False, repr=False, compare=False)

    #: field name -> kind (see :data:`FIELD_KINDS`) of the payload fields
    FIELDS: ClassVar[dict[str, str]] = {}
    #: payload fields whose dictionary keys are public identifiers
    KEYED: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "round", _number(self.round, int))
        for name, kind in self.FIELDS.items():
            set_(self, name, _normalise(kind, getattr(self, name)))
        self._validate()

    def _validate(self) -> None:
        """Constructor checks of a type (a programming error raises ValueError here)."""

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt through the constructor: arrays come back read-only, the routing token stays behind
        return (_rebuild, (type(self), (self.sender, self.receiver, self.round),
                           {n: getattr(self, n) for n in self.FIELDS}))

    @property
    def kind(self) -> str:
        return type(self).__name__

    def keys(self) -> set[str]:
        """All identifiers used as payload keys."""
        out: set[str] = set()
        for f in self.KEYED:
            v = getattr(self, f)
            if isinstance(v, Mapping):
                out.update(v.keys())
        return out

    def payload(self) -> dict[str, Any]:
        """The payload fields in the audit log's form (see :func:`encode`)."""
        out: dict[str, Any] = {}
        for n, kind in self.FIELDS.items():
            v = getattr(self, n)
            if kind == ARRAYS and type(v) is FrozenMap:  # the common case, fast: read-only float arrays
                out[n] = {k: (x.tolist() if type(x) is np.ndarray else _encode_value(x)) for k, x in v.items()}
            elif kind == FLOATS and type(v) is FrozenMap:
                out[n] = {k: (x if type(x) is float else _encode_value(x)) for k, x in v.items()}
            else:
                out[n] = _encode_value(v)
        return out


@dataclass(frozen=True, slots=True)
class PriceSignal(Message):
    """A public price per period (e.g. the main grid's LMP in $/kWh), keyed by the sender's unit ids."""

    product: PriceKind = PriceKind.ENERGY
    prices: Mapping[str, np.ndarray] = field(default_factory=dict)
    FIELDS: ClassVar[dict[str, str]] = {"product": "PriceKind", "prices": ARRAYS}
    KEYED: ClassVar[tuple[str, ...]] = ("prices",)


@dataclass(frozen=True, slots=True)
class Offer(Message):
    """Sell offers of one product: price and quantity per period, keyed by the sender's unit ids.

    A unit with a price and no quantity offers an unlimited quantity (:meth:`quantity`).
    """

    product: Product = Product.DAY_AHEAD
    prices: Mapping[str, np.ndarray] = field(default_factory=dict)
    quantities: Mapping[str, np.ndarray] = field(default_factory=dict)
    FIELDS: ClassVar[dict[str, str]] = {"product": "Product", "prices": ARRAYS, "quantities": ARRAYS}
    KEYED: ClassVar[tuple[str, ...]] = ("prices", "quantities")

    def quantity(self, unit: str) -> np.ndarray:
        """The quantity offered for ``unit``: its entry, or +inf in every period (unlimited) when it has none."""
        q = self.quantities.get(unit)
        return np.full(np.shape(self.prices[unit]), np.inf) if q is None else np.asarray(q)


@dataclass(frozen=True, slots=True)
class Bid(Message):
    """Buy bids of one product: price and quantity per period, keyed by the sender's load ids."""

    product: Product = Product.DAY_AHEAD
    prices: Mapping[str, np.ndarray] = field(default_factory=dict)
    quantities: Mapping[str, np.ndarray] = field(default_factory=dict)
    FIELDS: ClassVar[dict[str, str]] = {"product": "Product", "prices": ARRAYS, "quantities": ARRAYS}
    KEYED: ClassVar[tuple[str, ...]] = ("prices", "quantities")


@dataclass(frozen=True, slots=True)
class Schedule(Message):
    """Cleared quantities (and the price paid, where there is one) per period, keyed by unit/load ids."""

    quantities: Mapping[str, np.ndarray] = field(default_factory=dict)
    prices: Mapping[str, np.ndarray] = field(default_factory=dict)
    FIELDS: ClassVar[dict[str, str]] = {"quantities": ARRAYS, "prices": ARRAYS}
    KEYED: ClassVar[tuple[str, ...]] = ("quantities", "prices")


@dataclass(frozen=True, slots=True)
class Injections(Message):
    """Per-meter active/reactive power per period (positive = drawn from the grid)."""

    p: Mapping[str, np.ndarray] = field(default_factory=dict)
    q: Mapping[str, np.ndarray] = field(default_factory=dict)
    FIELDS: ClassVar[dict[str, str]] = {"p": ARRAYS, "q": ARRAYS}
    KEYED: ClassVar[tuple[str, ...]] = ("p", "q")


@dataclass(frozen=True, slots=True)
class FeasibilityCut(Message):
    """``constant + sum_k coefficients[k] x_k <= 0`` in period ``period``.

    ``violation`` is the sender's E* for that period (sum of the slacks, pu);
    ``families`` names the violated limit families (``voltage_max``,
    ``import_max``, ...) without saying where they are.
    """

    period: int = 0
    coefficients: Mapping[str, float] = field(default_factory=dict)
    constant: float = 0.0
    violation: float = 0.0
    families: tuple[str, ...] = ()
    FIELDS: ClassVar[dict[str, str]] = {"period": INT, "coefficients": FLOATS, "constant": FLOAT, "violation": FLOAT,
                                        "families": STRS}
    KEYED: ClassVar[tuple[str, ...]] = ("coefficients",)


@dataclass(frozen=True, slots=True)
class OptimalityCut(Message):
    """``theta >= constant + sum_k coefficients[k] x_k`` for scenario ``scenario``."""

    scenario: int = 0
    coefficients: Mapping[str, float] = field(default_factory=dict)
    constant: float = 0.0
    value: float = 0.0
    FIELDS: ClassVar[dict[str, str]] = {"scenario": INT, "coefficients": FLOATS, "constant": FLOAT, "value": FLOAT}
    KEYED: ClassVar[tuple[str, ...]] = ("coefficients",)


@dataclass(frozen=True, slots=True)
class Exchange(Message):
    """An agreed exchange at a boundary point (e.g. PCC active power per scenario)."""

    values: Mapping[str, np.ndarray] = field(default_factory=dict)
    FIELDS: ClassVar[dict[str, str]] = {"values": ARRAYS}
    KEYED: ClassVar[tuple[str, ...]] = ("values",)


@dataclass(frozen=True, slots=True)
class Caps(Message):
    """Pre-qualification caps per resource (power unit), keyed by unit/load ids."""

    caps: Mapping[str, float] = field(default_factory=dict)
    FIELDS: ClassVar[dict[str, str]] = {"caps": FLOATS}
    KEYED: ClassVar[tuple[str, ...]] = ("caps",)


@dataclass(frozen=True, slots=True)
class Status(Message):
    """Convergence status of the protocol (``gap`` None: unknown; ``note`` from :class:`Note`)."""

    converged: bool = False
    iteration: int = 0
    gap: float | None = None
    note: Note = Note.NONE
    FIELDS: ClassVar[dict[str, str]] = {"converged": BOOL, "iteration": INT, "gap": OPT_FLOAT, "note": "Note"}


@dataclass(frozen=True, slots=True)
class Command(Message):
    """The coordinator asks its receiver to take one step of the protocol.

    ``scheme`` and ``scenario_set`` are the step's arguments where it has them (tso-dso);
    ``iteration`` is the protocol's iteration the step belongs to.
    """

    action: Action = Action.OPEN
    scheme: Scheme | None = None
    scenario_set: ScenarioSet | None = None
    iteration: int = 0
    FIELDS: ClassVar[dict[str, str]] = {"action": "Action", "scheme": "Scheme?", "scenario_set": "ScenarioSet?",
                                        "iteration": INT}


@dataclass(frozen=True, slots=True)
class MasterBound(Message):
    """A master's answer to ``Command(MASTER)`` (TSO -> coordinator), in $ of ``-SW_DA + E[real-time cost]``.

    ``lower``: the master's bound, a lower bound of the scheme's optimum (the MIP dual
    bound of a MILP master); ``objective``: the master's value at its solution.
    """

    scheme: Scheme | None = None
    iteration: int = 0
    lower: float = math.nan
    objective: float = math.nan
    FIELDS: ClassVar[dict[str, str]] = {"scheme": "Scheme?", "iteration": INT, "lower": FLOAT, "objective": FLOAT}


@dataclass(frozen=True, slots=True)
class RealTimeBounds(Message):
    """The bounds of each scenario's real-time cost after a TSO <-> DSO round (TSO -> coordinator), $.

    ``upper[s]`` (``U_s``): the transmission cost plus the DSOs' costs at the round's PCC
    exchanges, the cost of a feasible real-time dispatch; ``lower[s]`` (``L_s``): the
    TSO's real-time master value, a lower bound. Both are empty after the warm-up round
    of a scenario set (the first, at the TSO's initial exchanges, when it holds no DSO
    cut yet: it has no real-time solution to bound). ``inner_round``: the rounds of the
    run so far, the warm-up round included.
    """

    scenario_set: ScenarioSet | None = None
    iteration: int = 0
    inner_round: int = 0
    upper: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lower: np.ndarray = field(default_factory=lambda: np.zeros(0))
    FIELDS: ClassVar[dict[str, str]] = {"scenario_set": "ScenarioSet?", "iteration": INT, "inner_round": INT,
                                        "upper": ARRAY, "lower": ARRAY}

    def _validate(self) -> None:
        if np.shape(self.upper) != np.shape(self.lower):
            raise ValueError(f"RealTimeBounds: upper {np.shape(self.upper)} and lower {np.shape(self.lower)} "
                             "differ in shape")

    @property
    def bounded(self) -> bool:
        """False after the warm-up round (no bounds yet)."""
        return np.size(self.upper) > 0


@dataclass(frozen=True, slots=True)
class IterationBounds(Message):
    """The close of a Benders iteration (TSO -> coordinator), $ of ``-SW_DA + E[real-time cost]``.

    ``lower``: the master's bound; ``upper``: the iterate's value, ``da_cost`` (``-SW_DA``)
    plus ``expected_rt`` (``sum_s phi_s U_s``); ``price``: the iterate's day-ahead price
    ($/MWh; None for fc, which has no day-ahead market price).
    """

    scheme: Scheme | None = None
    iteration: int = 0
    lower: float = math.nan
    upper: float = math.nan
    da_cost: float = math.nan
    expected_rt: float = math.nan
    price: float | None = None
    FIELDS: ClassVar[dict[str, str]] = {"scheme": "Scheme?", "iteration": INT, "lower": FLOAT, "upper": FLOAT,
                                        "da_cost": FLOAT, "expected_rt": FLOAT, "price": OPT_FLOAT}


@dataclass(frozen=True, slots=True)
class Accept(Message):
    """The network operator accepts the schedule it was sent (E* <= tolerance)."""

    violation: float = 0.0
    FIELDS: ClassVar[dict[str, str]] = {"violation": FLOAT}


@dataclass(frozen=True, slots=True)
class Losses(Message):
    """The network losses of the schedule the receiver sent (network operator -> participant).

    ``losses[t]``: active power (power unit) entering the network at its head beyond the sum of
    the metered net loads in period ``t``, as the operator's AC power flow gives it for that
    schedule. The receiver's supply covers it: ``sum purchases = sum consumption + losses``,
    so its injections sum to ``-losses``. Sent only when the losses the schedule covers differ
    from these; one aggregate per period, no identifiers.
    """

    losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    FIELDS: ClassVar[dict[str, str]] = {"losses": ARRAY}


ALL_TYPES: tuple[type[Message], ...] = (PriceSignal, Offer, Bid, Schedule, Injections, FeasibilityCut,
                                         OptimalityCut, Exchange, Caps, Status, Command, Accept, MasterBound,
                                         RealTimeBounds, IterationBounds, Losses)
TYPES: dict[str, type[Message]] = {t.__name__: t for t in ALL_TYPES}
#: every type's field kinds
FIELD_KINDS: dict[type[Message], dict[str, str]] = {t: dict(t.FIELDS) for t in ALL_TYPES}

assert all({f.name for f in fields(t)} == {"sender", "receiver", "round", "_seq", *t.FIELDS} for t in ALL_TYPES)


# ------------------------------------------------------------------ the audit log's form
def _encode_value(v: Any) -> Any:
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, Mapping):
        return {k: _encode_value(x) for k, x in v.items()}
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, tuple):
        return [_encode_value(x) for x in v]
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    return v


def encode(msg: Message) -> dict[str, Any]:
    """``{"type", "sender", "receiver", "round", "payload"}``: JSON values, floats exact (``repr``)."""
    return {"type": msg.kind, "sender": msg.sender, "receiver": msg.receiver, "round": msg.round,
            "payload": msg.payload()}


def _decode_value(kind: str, v: Any) -> Any:
    if kind == ARRAYS and isinstance(v, dict):
        return {k: (np.array(x, dtype=float) if isinstance(x, list) else x) for k, x in v.items()}
    if kind == ARRAY and isinstance(v, list):
        return np.array(v, dtype=float)
    if kind == STRS and isinstance(v, list):
        return tuple(v)
    return v


def decode(body: Mapping[str, Any]) -> Message:
    """The message of an :func:`encode`\\ d body (``ValueError`` for an unknown type or field)."""
    cls = TYPES.get(str(body.get("type")))
    if cls is None:
        raise ValueError(f"unknown message type {body.get('type')!r}")
    payload = body.get("payload") or {}
    extra = set(payload) - set(cls.FIELDS)
    if extra:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(extra)}")
    values = {n: _decode_value(k, payload[n]) for n, k in cls.FIELDS.items() if n in payload}
    return cls(body["sender"], body["receiver"], body.get("round", 0), **values)
