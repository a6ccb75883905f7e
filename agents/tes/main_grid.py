"""The main grid (upstream supplier): sells at the locational marginal price (LMP).

On a case with several feeders it has one supply point per feeder head (``unit_ids``), all at
the same LMP: a price-taker outside option for every feeder's load aggregator.
"""
from __future__ import annotations

import numpy as np

from network.model import Case

from ..base import Agent


class MainGrid(Agent):
    """Sells any quantity at LMP_t ($ per energy unit) through the supply point ``unit_id``.

    The transformer's import limit is a network limit enforced by the network
    operator, not an offer quantity, so the offered quantity is unlimited.
    """

    role = "tes.main_grid"

    def __init__(self, agent_id: str, lmp: np.ndarray, unit_id: str = "MG", *, unit_ids: tuple[str, ...] = ()) -> None:
        super().__init__(agent_id)
        self.lmp = np.array(lmp, dtype=float)
        self.unit_id = unit_id
        self.unit_ids = tuple(unit_ids) or (unit_id,)
        self.sold = np.zeros_like(self.lmp)
        self.sold_by_unit = {u: np.zeros_like(self.lmp) for u in self.unit_ids}

    @classmethod
    def from_case(cls, case: Case, owner_id: str) -> "MainGrid":
        units = case.units_of(owner_id)
        lmp = case.profile(units[0].price_profile)
        for u in units[1:]:
            if not np.array_equal(case.profile(u.price_profile), lmp):
                raise ValueError(f"the main grid's supply points must share one LMP; {u.id} differs")
        return cls(owner_id, lmp, units[0].id, unit_ids=tuple(u.id for u in units))

    def new_day(self, lmp: np.ndarray) -> None:
        """The day's LMP ($ per energy unit, (T,)): the main grid's own private data for the day."""
        lmp = np.array(lmp, dtype=float)
        if lmp.shape != self.lmp.shape or not np.all(np.isfinite(lmp)):
            raise ValueError(f"{self.id}: the day's LMP must be {self.lmp.size} finite prices")
        self.lmp = lmp
        self.sold = np.zeros_like(self.lmp)

    def public_ids(self) -> frozenset[str]:
        return frozenset(self.unit_ids)

    def offers(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {u: (self.lmp.copy(), np.full_like(self.lmp, np.inf)) for u in self.unit_ids}

    def deliver(self, quantities: dict[str, np.ndarray]) -> None:
        for u, q in quantities.items():
            if u in self.sold_by_unit:
                self.sold_by_unit[u] = np.asarray(q, dtype=float)
        self.sold = sum(self.sold_by_unit.values())

    def settlement(self) -> dict[str, float]:
        """Totals over the supply points, and ``by_unit``: energy and revenue of each."""
        return {"energy": float(self.sold.sum()), "revenue": float(self.sold @ self.lmp),
                "by_unit": {u: {"energy": float(q.sum()), "revenue": float(q @ self.lmp)}
                            for u, q in self.sold_by_unit.items()}}
