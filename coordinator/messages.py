"""Every message type that may cross an agent boundary.

Messages are frozen dataclasses with numpy payloads. Payload dictionaries are
keyed by *public* identifiers (unit, meter and customer ids, scenario and period
numbers); no message type has a field for topology, impedances, network limits,
cost curves or utilities, so such data cannot be sent at all. What may be sent,
between which roles, is decided by :mod:`coordinator.boundary`.

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
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Mapping

import numpy as np


class FrozenMap(dict):
    """A read-only dict (picklable, unlike ``MappingProxyType``)."""

    def _readonly(self, *a: Any, **k: Any) -> None:
        raise TypeError("message payloads are read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (dict(self),))


def _freeze_map(m: Mapping[str, Any] | None) -> Mapping[str, Any]:
    out = {}
    for k, v in (m or {}).items():
        if isinstance(v, (np.ndarray, list, tuple)):
            a = np.array(v, dtype=float)
            a.setflags(write=False)
            out[str(k)] = a
        else:
            out[str(k)] = float(v)
    return FrozenMap(out)


class Product(str, Enum):
    """What an offer or bid is for: day-ahead energy, or real-time up/down regulation."""

    DAY_AHEAD = "day_ahead"
    UP = "up"  # real-time upward regulation (more output, or less consumption)
    DOWN = "down"  # real-time downward regulation


class Action(str, Enum):
    """What the coordinator asks an agent to do (the ``action`` of a :class:`Command`).

    tes: ``OPEN`` (main grid: post the LMP; DER managers: offer), ``CLOSE`` (load
    aggregator: send each seller its final schedule), ``END_OF_DAY`` (DER managers: learn
    from the day). tso-dso: ``OFFER_DAY_AHEAD``, ``OFFER_REAL_TIME`` (participants, for a
    scenario set), ``SCENARIO_SET`` (operators: the set the next offers and exchanges
    belong to), ``LOWER_BOUND`` (DSOs: a lower bound of their real-time cost), and the
    TSO's steps of the Benders loop, which the protocol drives (``MASTER``,
    ``REAL_TIME_ROUND``, ``CLOSE_ITERATION``, ``EVALUATE``, ``CLOSE_EVALUATION``,
    ``FINAL``).
    """

    OPEN = "open"
    CLOSE = "close"
    END_OF_DAY = "end_of_day"
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


@dataclass(frozen=True)
class Message:
    """Base class: who sends to whom, in which protocol round."""

    sender: str
    receiver: str
    round: int = 0

    #: payload fields whose dictionary keys are public identifiers
    KEYED: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for f in self.KEYED:
            object.__setattr__(self, f, _freeze_map(getattr(self, f)))

    @property
    def kind(self) -> str:
        return type(self).__name__

    def keys(self) -> set[str]:
        """All identifiers used as payload keys."""
        out: set[str] = set()
        for f in self.KEYED:
            out.update(getattr(self, f).keys())
        return out

    def payload(self) -> dict[str, Any]:
        """JSON-friendly payload for the audit log."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("sender", "receiver", "round", "KEYED"):
                continue
            v = getattr(self, f.name)
            if isinstance(v, Mapping):
                v = {k: (np.round(x, 9).tolist() if isinstance(x, np.ndarray) else x) for k, x in v.items()}
            elif isinstance(v, np.ndarray):
                v = np.round(v, 9).tolist()
            elif isinstance(v, float) and not np.isfinite(v):
                v = None  # strict JSON in the audit log
            out[f.name] = v
        return out


@dataclass(frozen=True)
class PriceSignal(Message):
    """A public price per period (e.g. the main grid's LMP in $/kWh), product named."""

    product: str = "energy"
    prices: Mapping[str, np.ndarray] = field(default_factory=dict)  # {product: per-period prices}
    KEYED: tuple[str, ...] = field(default=("prices",), init=False, repr=False, compare=False)


@dataclass(frozen=True)
class Offer(Message):
    """Sell offers of one product: price and quantity per period, keyed by the sender's unit ids."""

    product: Product = Product.DAY_AHEAD
    prices: Mapping[str, np.ndarray] = field(default_factory=dict)
    quantities: Mapping[str, np.ndarray] = field(default_factory=dict)
    KEYED: tuple[str, ...] = field(default=("prices", "quantities"), init=False, repr=False, compare=False)


@dataclass(frozen=True)
class Bid(Message):
    """Buy bids of one product: price and quantity per period, keyed by the sender's load ids."""

    product: Product = Product.DAY_AHEAD
    prices: Mapping[str, np.ndarray] = field(default_factory=dict)
    quantities: Mapping[str, np.ndarray] = field(default_factory=dict)
    KEYED: tuple[str, ...] = field(default=("prices", "quantities"), init=False, repr=False, compare=False)


@dataclass(frozen=True)
class Schedule(Message):
    """Cleared quantities (and the price paid) per period, keyed by unit/load ids."""

    quantities: Mapping[str, np.ndarray] = field(default_factory=dict)
    prices: Mapping[str, np.ndarray] = field(default_factory=dict)
    KEYED: tuple[str, ...] = field(default=("quantities", "prices"), init=False, repr=False, compare=False)


@dataclass(frozen=True)
class Injections(Message):
    """Per-meter active/reactive power per period (positive = drawn from the grid)."""

    p: Mapping[str, np.ndarray] = field(default_factory=dict)
    q: Mapping[str, np.ndarray] = field(default_factory=dict)
    KEYED: tuple[str, ...] = field(default=("p", "q"), init=False, repr=False, compare=False)


@dataclass(frozen=True)
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
    KEYED: tuple[str, ...] = field(default=("coefficients",), init=False, repr=False, compare=False)


@dataclass(frozen=True)
class OptimalityCut(Message):
    """``theta >= constant + sum_k coefficients[k] x_k`` for scenario ``scenario``."""

    scenario: int = 0
    coefficients: Mapping[str, float] = field(default_factory=dict)
    constant: float = 0.0
    value: float = 0.0
    KEYED: tuple[str, ...] = field(default=("coefficients",), init=False, repr=False, compare=False)


@dataclass(frozen=True)
class Exchange(Message):
    """An agreed exchange at a boundary point (e.g. PCC active power per scenario)."""

    values: Mapping[str, np.ndarray] = field(default_factory=dict)
    KEYED: tuple[str, ...] = field(default=("values",), init=False, repr=False, compare=False)


@dataclass(frozen=True)
class Caps(Message):
    """Pre-qualification caps per resource (power unit), keyed by unit/load ids."""

    caps: Mapping[str, float] = field(default_factory=dict)
    KEYED: tuple[str, ...] = field(default=("caps",), init=False, repr=False, compare=False)


@dataclass(frozen=True)
class Status(Message):
    """Convergence status of the protocol."""

    converged: bool = False
    iteration: int = 0
    gap: float = float("nan")
    note: str = ""


@dataclass(frozen=True)
class Command(Message):
    """The coordinator asks its receiver to take one step of the protocol.

    ``scheme`` and ``scenario_set`` are the step's arguments where it has them (tso-dso);
    ``iteration`` is the protocol's iteration the step belongs to.
    """

    action: Action = Action.OPEN
    scheme: Scheme | None = None
    scenario_set: ScenarioSet | None = None
    iteration: int = 0


def _freeze_array(v: Any) -> np.ndarray:
    a = np.array(v, dtype=float).reshape(-1)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class MasterBound(Message):
    """A master's answer to ``Command(MASTER)`` (TSO -> coordinator), in $ of ``-SW_DA + E[real-time cost]``.

    ``lower``: the master's bound, a lower bound of the scheme's optimum (the MIP dual
    bound of a MILP master); ``objective``: the master's value at its solution.
    """

    scheme: Scheme | None = None
    iteration: int = 0
    lower: float = float("nan")
    objective: float = float("nan")


@dataclass(frozen=True)
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

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "upper", _freeze_array(self.upper))
        object.__setattr__(self, "lower", _freeze_array(self.lower))
        if self.upper.shape != self.lower.shape:
            raise ValueError(f"RealTimeBounds: upper {self.upper.shape} and lower {self.lower.shape} differ in shape")

    @property
    def bounded(self) -> bool:
        """False after the warm-up round (no bounds yet)."""
        return self.upper.size > 0


@dataclass(frozen=True)
class IterationBounds(Message):
    """The close of a Benders iteration (TSO -> coordinator), $ of ``-SW_DA + E[real-time cost]``.

    ``lower``: the master's bound; ``upper``: the iterate's value, ``da_cost`` (``-SW_DA``)
    plus ``expected_rt`` (``sum_s phi_s U_s``); ``price``: the iterate's day-ahead price
    ($/MWh, NaN for fc).
    """

    scheme: Scheme | None = None
    iteration: int = 0
    lower: float = float("nan")
    upper: float = float("nan")
    da_cost: float = float("nan")
    expected_rt: float = float("nan")
    price: float = float("nan")


@dataclass(frozen=True)
class Accept(Message):
    """The network operator accepts the schedule it was sent (E* <= tolerance)."""

    violation: float = 0.0


@dataclass(frozen=True)
class Losses(Message):
    """The network losses of the schedule the receiver sent (network operator -> participant).

    ``losses[t]``: active power (power unit) entering the network at its head beyond the sum of
    the metered net loads in period ``t``, as the operator's AC power flow gives it for that
    schedule. The receiver's supply covers it: ``sum purchases = sum consumption + losses``,
    so its injections sum to ``-losses``. Sent only when the losses the schedule covers differ
    from these; one aggregate per period, no identifiers.
    """

    losses: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "losses", _freeze_array(self.losses))
        if not np.all(np.isfinite(self.losses)):
            raise ValueError("Losses: losses must be finite")


ALL_TYPES: tuple[type[Message], ...] = (PriceSignal, Offer, Bid, Schedule, Injections, FeasibilityCut,
                                         OptimalityCut, Exchange, Caps, Status, Command, Accept, MasterBound,
                                         RealTimeBounds, IterationBounds, Losses)
