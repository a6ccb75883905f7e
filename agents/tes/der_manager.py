"""DER manager: owns units, posts offer prices from a strategy, produces what was bought."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from network.model import Case

from ..base import Agent
from ..strategies import MarginalCost, Observation, Strategy


@dataclass(frozen=True)
class DERUnit:
    """A unit as its owner sees it: marginal cost ($/energy unit) and hourly availability (power unit)."""

    id: str
    kind: str
    cost: float
    p_min: float
    p_max: np.ndarray  # (T,) available capacity per period

    def __post_init__(self) -> None:
        a = np.array(self.p_max, dtype=float)
        a.setflags(write=False)
        object.__setattr__(self, "p_max", a)


def der_units_from_case(case: Case, owner_id: str) -> list[DERUnit]:
    """The units of ``owner_id`` with their availability profiles (no location)."""
    out = []
    for u in case.units_of(owner_id):
        avail = case.profile(u.avail_profile) if u.avail_profile else np.full(case.horizon, u.p_max)
        out.append(DERUnit(u.id, u.kind, 0.0 if np.isnan(u.cost) else u.cost, u.p_min, np.minimum(avail, u.p_max)))
    return out


class DERManager(Agent):
    """Offers each unit's available power at a strategy price within ``[price_min, max(cap_floor, LMP_t)]``.

    Prices in $/kWh (tes) — any consistent energy-price unit works.
    """

    role = "tes.der_manager"

    def __init__(self, agent_id: str, units: list[DERUnit], strategy: Strategy | None = None, *,
                 price_min: float = 0.0, cap_floor: float = 0.16) -> None:
        super().__init__(agent_id)
        self.units = list(units)
        self.strategy = strategy or MarginalCost()
        self.price_min = price_min
        self.cap_floor = cap_floor
        self.sold: dict[str, np.ndarray] = {}
        self.paid: dict[str, np.ndarray] = {}
        self.last_offer: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.last_cap: np.ndarray | None = None

    def new_day(self, available: dict[str, np.ndarray]) -> None:
        """The day's available power of its own units (unit id -> (T,) kW, within the unit's rating)."""
        import dataclasses

        self.units = [dataclasses.replace(u, p_max=np.asarray(available[u.id], float)) if u.id in available else u
                      for u in self.units]

    def public_ids(self) -> frozenset[str]:
        return frozenset(u.id for u in self.units)

    def price_cap(self, lmp: np.ndarray) -> np.ndarray:
        return np.maximum(self.cap_floor, np.asarray(lmp, dtype=float))

    def offers(self, lmp: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """unit id -> (offer price per period, offered quantity per period)."""
        cap = self.price_cap(lmp)
        self.last_cap = cap
        cost = np.array([[u.cost] * len(cap) for u in self.units])
        prices = self.strategy.prices(cost, cap, self.price_min)
        self.last_offer = {u.id: (prices[i], u.p_max.copy()) for i, u in enumerate(self.units)}
        return dict(self.last_offer)

    def deliver(self, quantities: dict[str, np.ndarray], prices: dict[str, np.ndarray]) -> None:
        """Record what was bought (and at which price); the units produce exactly that."""
        for u in self.units:
            q = np.asarray(quantities.get(u.id, np.zeros_like(u.p_max)), dtype=float)
            if np.any(q > u.p_max + 1e-6) or np.any(q < -1e-6):
                raise ValueError(f"{self.id}: schedule for {u.id} outside [0, available]")
            self.sold[u.id] = q
            self.paid[u.id] = np.asarray(prices.get(u.id, self.last_offer[u.id][0]), dtype=float)

    def settlement(self) -> dict[str, dict[str, float]]:
        """Per unit: energy sold, revenue, production cost, profit."""
        out = {}
        for u in self.units:
            q = self.sold.get(u.id, np.zeros_like(u.p_max))
            pr = self.paid.get(u.id, np.zeros_like(u.p_max))
            rev, cost = float(q @ pr), float(u.cost * q.sum())
            out[u.id] = {"energy": float(q.sum()), "revenue": rev, "cost": cost, "profit": rev - cost}
        return out

    def end_of_day(self) -> float:
        """Feed the day's observation (own offers, sales, prices paid; the public bounds) and profit
        to the strategy; returns the profit."""
        profit = sum(v["profit"] for v in self.settlement().values())
        if self.last_offer and getattr(self, "last_cap", None) is not None:
            T = len(self.last_cap)
            z = np.zeros(T)
            self.strategy.observe(Observation(
                cost=np.array([[u.cost] * T for u in self.units]), cap=np.asarray(self.last_cap, float),
                floor=self.price_min, offer=np.stack([self.last_offer[u.id][0] for u in self.units]),
                offered=np.stack([self.last_offer[u.id][1] for u in self.units]),
                sold=np.stack([self.sold.get(u.id, z) for u in self.units]),
                paid=np.stack([self.paid.get(u.id, z) for u in self.units])))
        self.strategy.update(profit)
        return profit
