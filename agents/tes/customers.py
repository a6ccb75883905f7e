"""The load aggregator's customers: price-responsive loads with quadratic utility (``tes``).

Each customer ``c`` draws ``p`` kW (three-phase total, consumption positive) in each hour and
has the utility ``U_t(p) = alpha_t p - beta p^2 / 2`` ($ per hour, ``alpha`` in $/kWh, ``beta``
in $/kWh per kW). At a retail price ``pi`` ($/kWh) it consumes its best response (decision 1 of
``docs/tes_reference.md``)::

    p(pi) = argmax_{lo <= p <= hi}  U(p) - pi p = clip((alpha - pi) / beta, lo, hi),
    lo = band_min * p0,  hi = band_max * p0,

with ``p0`` its baseline (kW). The reactive draw is ``q = tan_phi * p`` (kVAr). The load
aggregator knows each customer's meter id, never where the meter is connected.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CUSTOMER_KINDS", "Q_SUFFIX", "Customer", "customers_from_case"]

#: residential, industrial, commercial, agricultural
CUSTOMER_KINDS = ("RL", "IL", "CL", "AL")
#: decision id of a customer's reactive power: ``"<customer>#q"``
Q_SUFFIX = "#q"


def _ro(a: Any, n: int | None = None, name: str = "") -> np.ndarray:
    arr = np.array(a, dtype=float).reshape(-1)
    if n is not None and arr.size == 1:
        arr = np.full(n, float(arr[0]))
    if n is not None and arr.size != n:
        raise ValueError(f"{name} must have {n} values, got {arr.size}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Customer:
    """A price-responsive customer with quadratic utility ``alpha_t p - beta p^2 / 2``.

    ``p0`` is the baseline (kW, three-phase total), the load stays within ``[band_min p0,
    band_max p0]``; ``tan_phi`` fixes the reactive draw ``q = tan_phi p``. The LA knows the
    customer's meter id (``id``) but not where it is connected.
    """

    id: str
    kind: str
    p0: np.ndarray
    alpha: np.ndarray
    beta: float
    band_min: float
    band_max: float
    tan_phi: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", str(self.id))
        p0 = _ro(self.p0, name=f"customer {self.id}: p0")
        object.__setattr__(self, "p0", p0)
        object.__setattr__(self, "alpha", _ro(self.alpha, p0.size, f"customer {self.id}: alpha"))
        for name in ("beta", "band_min", "band_max", "tan_phi"):
            v = float(getattr(self, name))
            if not math.isfinite(v):
                raise ValueError(f"customer {self.id}: {name} must be finite, got {v}")
            object.__setattr__(self, name, v)
        if not (np.all(np.isfinite(self.p0)) and np.all(np.isfinite(self.alpha))):
            raise ValueError(f"customer {self.id}: p0 and alpha must be finite")
        if np.any(self.p0 < 0):
            raise ValueError(f"customer {self.id}: the baseline p0 must be non-negative")
        if self.beta <= 0:
            raise ValueError(f"customer {self.id}: beta must be positive, got {self.beta}")
        if not 0 <= self.band_min <= self.band_max:
            raise ValueError(f"customer {self.id}: need 0 <= band_min <= band_max, got "
                             f"{self.band_min}, {self.band_max}")
        if Q_SUFFIX in self.id:
            raise ValueError(f"customer id {self.id!r} may not contain {Q_SUFFIX!r}")

    @property
    def horizon(self) -> int:
        return int(self.p0.size)

    @property
    def lo(self) -> np.ndarray:
        return self.band_min * self.p0

    @property
    def hi(self) -> np.ndarray:
        return self.band_max * self.p0

    def best_response(self, price: np.ndarray | float) -> np.ndarray:
        """The customer's load at retail price ``price`` ($/kWh), per hour."""
        return np.clip((self.alpha - np.asarray(price, dtype=float)) / self.beta, self.lo, self.hi)

    def utility(self, p: np.ndarray) -> np.ndarray:
        """Hourly utility ``alpha p - beta p^2 / 2`` ($)."""
        p = np.asarray(p, dtype=float)
        return self.alpha * p - 0.5 * self.beta * p * p

    def surplus(self, price: np.ndarray, p: np.ndarray | None = None) -> np.ndarray:
        """Hourly surplus ``U(p) - price p`` at the best response (or at the given load)."""
        price = np.asarray(price, dtype=float)
        p = self.best_response(price) if p is None else np.asarray(p, dtype=float)
        return self.utility(p) - price * p

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Customer):
            return NotImplemented
        return (self.id == other.id and self.kind == other.kind and np.array_equal(self.p0, other.p0)
                and np.array_equal(self.alpha, other.alpha) and self.beta == other.beta
                and self.band_min == other.band_min and self.band_max == other.band_max
                and self.tan_phi == other.tan_phi)

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_load(cls, load: Any, case: Any) -> "Customer":
        """A customer from a :class:`network.model.Load` with baseline and alpha profiles."""
        if load.baseline_profile is None or load.alpha_profile is None or math.isnan(load.beta):
            raise ValueError(f"load {load.id} has no baseline_profile/alpha_profile/beta: it is not a "
                             "price-responsive customer")
        tan_phi = load.tan_phi
        if math.isnan(tan_phi):
            pf = load.power_factor
            tan_phi = math.tan(math.acos(pf)) if not math.isnan(pf) and 0 < pf <= 1 else 0.0
        return cls(id=load.id, kind=load.kind, p0=case.profile(load.baseline_profile),
                   alpha=case.profile(load.alpha_profile), beta=load.beta, band_min=load.band_min,
                   band_max=load.band_max, tan_phi=tan_phi)


def customers_from_case(case: Any, owner_id: str) -> list[Customer]:
    """The customers (loads) of ``owner_id`` in ``case``, in the case's order."""
    loads = case.loads_of(owner_id)
    if not loads:
        raise ValueError(f"owner {owner_id!r} has no loads in case {case.name!r}")
    return [Customer.from_load(d, case) for d in loads]

