"""Market participants of the ``tso-dso`` protocol and the market view of their resources.

A *resource* is a generator, a demand or a wind farm as the market operators see it
from offers and bids: its id, kind, power limits and prices. Nothing in it says
where it is connected (that is the network operator's meter data, see
:func:`locations_from_case`).

Prices ($/MWh, seed 004):

- day-ahead: ``price_da`` (generators' offer, demands' bid, wind's offer ``pi^R``);
- real-time: ``price_up`` and ``price_down``, paid on top of the day-ahead price.
  For every kind the real-time quantity is ``y = x + sign * (up - down)`` with
  ``x`` the day-ahead quantity and ``sign`` +1 for producers, -1 for demands (a
  demand's "up" is a reduction of consumption), and the real-time cost is
  ``price_da * (up - down) + price_up * up + price_down * down``, i.e.
  ``(price_da + price_up) up + (price_down - price_da) down`` (the seed's
  ``pi^DA (p^RT - p^DA) + pi^up p^up + pi^dn p^dn`` for a generator,
  ``pi^DA (p^DA - p^RT) + ...`` for a demand).

Participants (:class:`RTDERManager` for generators and wind farms,
:class:`RTLoadAggregator` for demands) hold their resources and, for wind farms,
the scenarios of their own output; they produce the day-ahead offers/bids for the
TSO and the real-time offers for the operator that re-dispatches them (the TSO for
transmission-connected resources, the DSO of the area otherwise).

Offer layouts (per resource id; the message side is ``coordinator/tso_dso/hosts.py``):

- day-ahead (:meth:`RTParticipant.da_offers`): ``([price_da], [quantity])``, the
  capacity, or the in-sample mean output of a wind farm (MW);
- real time, one offer per product (:meth:`RTParticipant.rt_offers`): up-regulation
  ``([price_up], [p_max, q_max] + W)`` and down-regulation ``([price_down], [p_min,
  q_min])``, the limits in MW and Mvar; ``W`` is, for a wind farm only, its available
  output in each scenario of the scenario set (MW: its real-time upper limit).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from network.model import Case

from ..base import Agent

__all__ = ["Resource", "ResourceSet", "resources_from_case", "locations_from_case", "RTParticipant",
           "RTDERManager", "RTLoadAggregator", "GEN", "DEM", "WIND", "UP_LIMITS", "DOWN_LIMITS"]

GEN, DEM, WIND = "gen", "dem", "wind"
KINDS = (GEN, DEM, WIND)
#: the limits in a real-time offer of each product (a wind farm's up offer appends W_1 .. W_S)
UP_LIMITS = ("p_max", "q_max")
DOWN_LIMITS = ("p_min", "q_min")


@dataclass(frozen=True)
class Resource:
    """A generator, demand or wind farm as seen in the market (no location)."""

    id: str
    kind: str
    p_min: float
    p_max: float  # wind: 0 (the output comes from the scenarios)
    q_min: float
    q_max: float
    price_da: float
    price_up: float
    price_down: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"resource {self.id}: kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("p_min", "p_max", "q_min", "q_max", "price_da", "price_up", "price_down"):
            v = getattr(self, name)
            if not math.isfinite(v):
                raise ValueError(f"resource {self.id}: {name} must be finite, got {v}")
        if self.p_min > self.p_max or self.q_min > self.q_max:
            raise ValueError(f"resource {self.id}: lower limit above upper limit")

    @property
    def sign(self) -> float:
        """+1 for producers (injection = quantity), -1 for demands."""
        return -1.0 if self.kind == DEM else 1.0

    def up_offer(self) -> tuple[np.ndarray, np.ndarray]:
        """``([price_up], [p_max, q_max])``: the up-regulation product (see the module docstring)."""
        return np.array([self.price_up]), np.array([getattr(self, k) for k in UP_LIMITS])

    def down_offer(self) -> tuple[np.ndarray, np.ndarray]:
        """``([price_down], [p_min, q_min])``: the down-regulation product."""
        return np.array([self.price_down]), np.array([getattr(self, k) for k in DOWN_LIMITS])

    @classmethod
    def from_rt_offers(cls, rid: str, kind: str, price_da: float, up: tuple[Sequence[float], Sequence[float]],
                       down: tuple[Sequence[float], Sequence[float]]) -> tuple["Resource", np.ndarray | None]:
        """The resource of a day-ahead price and its up and down offers ``(prices, quantities)``.

        Returns it and, if the up offer carries more than its limits, the wind availability
        per scenario that follows them (MW).
        """
        up_p, up_q = (np.asarray(a, dtype=float).reshape(-1) for a in up)
        dn_p, dn_q = (np.asarray(a, dtype=float).reshape(-1) for a in down)
        n_up, n_dn = len(UP_LIMITS), len(DOWN_LIMITS)
        if up_p.shape != (1,) or up_q.size < n_up or dn_p.shape != (1,) or dn_q.shape != (n_dn,):
            raise ValueError(f"real-time offers for {rid}: expected 1 price and {n_up} (+ wind) quantities up, "
                             f"1 price and {n_dn} quantities down; got {up_p.size}/{up_q.size} and "
                             f"{dn_p.size}/{dn_q.size}")
        lim = {**dict(zip(UP_LIMITS, up_q[:n_up])), **dict(zip(DOWN_LIMITS, dn_q))}
        res = cls(rid, kind, float(lim["p_min"]), float(lim["p_max"]), float(lim["q_min"]), float(lim["q_max"]),
                  float(price_da), float(up_p[0]), float(dn_p[0]))
        return res, (up_q[n_up:].copy() if up_q.size > n_up else None)


class ResourceSet:
    """Vectors of a list of resources, in a fixed order (problem builders use these)."""

    def __init__(self, resources: Iterable[Resource]) -> None:
        self.items: tuple[Resource, ...] = tuple(resources)
        self.ids: tuple[str, ...] = tuple(r.id for r in self.items)
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("duplicate resource ids")
        self.index = {k: i for i, k in enumerate(self.ids)}
        a = lambda name: np.array([getattr(r, name) for r in self.items], dtype=float)  # noqa: E731
        self.kind = np.array([r.kind for r in self.items], dtype=object)
        self.sign = np.array([r.sign for r in self.items], dtype=float)
        self.p_min, self.p_max = a("p_min"), a("p_max")
        self.q_min, self.q_max = a("q_min"), a("q_max")
        self.price_da, self.price_up, self.price_down = a("price_da"), a("price_up"), a("price_down")
        self.is_wind = self.kind == WIND
        self.is_dem = self.kind == DEM
        self.is_gen = self.kind == GEN

    def __len__(self) -> int:
        return len(self.items)

    @property
    def cost_up(self) -> np.ndarray:
        """Real-time cost per MW of ``up``: ``price_da + price_up``."""
        return self.price_da + self.price_up

    @property
    def cost_down(self) -> np.ndarray:
        """Real-time cost per MW of ``down``: ``price_down - price_da``."""
        return self.price_down - self.price_da

    @property
    def wind_ids(self) -> tuple[str, ...]:
        return tuple(i for i, w in zip(self.ids, self.is_wind) if w)

    def rt_cost_lower_bound(self) -> float:
        """A lower bound of the real-time cost of these resources (any schedule, any scenario).

        ``down <= p_max`` (a generator cannot go below 0, a demand cannot consume more
        than ``p_max``) and ``up >= 0``; wind's ``down <= W`` has a non-negative cost in
        the case (``price_down >= price_da``); otherwise its bound uses ``p_max`` too.
        """
        neg = np.minimum(self.cost_down, 0.0)
        return float(np.sum(neg * self.p_max) + np.sum(np.minimum(self.cost_up, 0.0) * self.p_max))

    def vector(self, values: Mapping[str, float], default: float | None = None) -> np.ndarray:
        """Values keyed by id, in this set's order."""
        out = np.empty(len(self))
        for i, k in enumerate(self.ids):
            if k in values:
                out[i] = float(np.asarray(values[k]).reshape(-1)[0])
            elif default is not None:
                out[i] = default
            else:
                raise KeyError(f"no value for resource {k}")
        return out


def resources_from_case(case: Case, owner: str | None = None, *, grid: str | None = None) -> list[Resource]:
    """The resources of ``owner`` (or all), optionally only those on ``grid`` (``"T"`` or a feeder id).

    Order: the case's units (generators and wind farms) then its loads.
    """
    out: list[Resource] = []
    for u in case.units:
        if (owner is not None and u.owner != owner) or (grid is not None and u.grid != grid):
            continue
        if u.kind == "main_grid":
            continue
        kind = WIND if u.kind == "wind" else GEN
        out.append(Resource(u.id, kind, u.p_min, u.p_max, u.q_min, u.q_max, _num(u.offer_da, u.id, "offer_da"),
                            _num(u.offer_up, u.id, "offer_up"), _num(u.offer_down, u.id, "offer_down")))
    for d in case.loads:
        if (owner is not None and d.owner != owner) or (grid is not None and d.grid != grid):
            continue
        out.append(Resource(d.id, DEM, 0.0, d.p_max, d.q_min, d.q_max, _num(d.bid_da, d.id, "bid_da"),
                            _num(d.bid_up, d.id, "bid_up"), _num(d.bid_down, d.id, "bid_down")))
    return out


def locations_from_case(case: Case) -> dict[str, tuple[str, str]]:
    """resource id -> (grid, node): network-operator data (``grid`` ``"T"`` or a feeder id)."""
    return {k: (m.grid, m.node) for k, m in case.meters.items()}


def _num(v: float, rid: str, name: str) -> float:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        raise ValueError(f"resource {rid} has no '{name}' price (needed by the tso-dso protocol)")
    return float(v)


# ------------------------------------------------------------------ participants


class RTParticipant(Agent):
    """Owner of resources: day-ahead offers/bids and real-time offers.

    ``wind`` maps each of its wind farms to its scenario sets: ``{farm: {"in_sample":
    (S,), "out_of_sample": (S_oos,)}}``; the day-ahead quantity of a wind farm is its
    in-sample mean.
    """

    def __init__(self, agent_id: str, resources: Iterable[Resource], *, area: int = 0,
                 wind: Mapping[str, Mapping[str, np.ndarray]] | None = None, strategy: Any = None,
                 price_cap: float = math.inf) -> None:
        super().__init__(agent_id)
        self.resources = ResourceSet(resources)
        self.area = int(area)
        self.wind = {k: {s: np.asarray(v, dtype=float).copy() for s, v in sets.items()}
                     for k, sets in (wind or {}).items()}
        for r in self.resources.items:
            if r.kind == WIND and r.id not in self.wind:
                raise ValueError(f"{agent_id}: no scenarios for its wind farm {r.id}")
        self.schedule: dict[str, float] = {}
        self.da_price: float = math.nan
        self.caps: dict[str, float] = {}
        # strategic offers (agents/tso_dso/strategic.py): None offers at the case's day-ahead prices
        self.strategy = strategy
        self.price_cap = float(price_cap)  # $/MWh: the public cap of day-ahead offers and bids
        self.offered: tuple[np.ndarray, np.ndarray] | None = None  # the last day-ahead (prices, quantities)
        self.profit: float = math.nan  # the last day's day-ahead settlement ($), after end_of_day()
        if strategy is not None:
            from .strategic import check_one_side

            check_one_side(self.resources)

    def public_ids(self) -> frozenset[str]:
        return frozenset(self.resources.ids)

    def da_offers(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """id -> ([price_da], [quantity]): capacity, or the in-sample mean for a wind farm.

        The price is the case's, or the strategy's choice for the day (``strategic.offer_prices``)."""
        qty = np.array([float(np.mean(self.wind[r.id]["in_sample"])) if r.kind == WIND else r.p_max
                        for r in self.resources.items])
        if self.strategy is None:
            prices = self.resources.price_da.copy()
        else:
            from .strategic import offer_prices

            prices = offer_prices(self.strategy, self.resources, self.price_cap)
        self.offered = (prices, qty)
        return {k: (np.array([prices[i]]), np.array([qty[i]])) for i, k in enumerate(self.resources.ids)}

    def end_of_day(self) -> float:
        """After the day's final schedule: the day-ahead settlement ($); a strategy observes the day and learns."""
        from .strategic import day_profit, observation

        if self.offered is None or not self.schedule:
            raise RuntimeError(f"{self.id}: end of day before its day-ahead offers and final schedule")
        x = self.resources.vector(self.schedule)
        self.profit = day_profit(self.resources, x, self.da_price)
        if self.strategy is not None:
            self.strategy.observe(observation(self.resources, self.offered[0], self.offered[1], x, self.da_price,
                                              self.price_cap))
            self.strategy.update(self.profit)
        return self.profit

    def rt_offers(self, scenario_set: str = "in_sample") -> tuple[dict[str, tuple[np.ndarray, np.ndarray]],
                                                                   dict[str, tuple[np.ndarray, np.ndarray]]]:
        """``(up, down)``, each id -> (prices, quantities): the real-time offers of the two products.

        up: ``([price_up], [p_max, q_max, W_1..W_S for a wind farm])`` with the wind of
        ``scenario_set``; down: ``([price_down], [p_min, q_min])``.
        """
        up, down = {}, {}
        for r in self.resources.items:
            p, q = r.up_offer()
            if r.kind == WIND:
                q = np.concatenate([q, self.wind[r.id][scenario_set]])
            up[r.id] = (p, q)
            down[r.id] = r.down_offer()
        return up, down

    def deliver(self, quantities: Mapping[str, float], price: float | None = None) -> None:
        """Record the day-ahead schedule (and price) it was given."""
        for k, v in quantities.items():
            if k not in self.resources.index:
                raise KeyError(f"{self.id}: schedule for unknown resource {k}")
            self.schedule[k] = float(np.asarray(v).reshape(-1)[0])
        if price is not None:
            self.da_price = float(price)

    def set_caps(self, caps: Mapping[str, float]) -> None:
        for k, v in caps.items():
            if k not in self.resources.index:
                raise KeyError(f"{self.id}: cap for unknown resource {k}")
            self.caps[k] = float(v)


class RTDERManager(RTParticipant):
    role = "tso_dso.der_manager"


class RTLoadAggregator(RTParticipant):
    role = "tso_dso.load_aggregator"
