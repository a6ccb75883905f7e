"""The main grid (upstream supplier): sells at the locational marginal price (LMP)."""
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

    def __init__(self, agent_id: str, lmp: np.ndarray, unit_id: str = "MG") -> None:
        super().__init__(agent_id)
        self.lmp = np.array(lmp, dtype=float)
        self.unit_id = unit_id
        self.sold = np.zeros_like(self.lmp)

    @classmethod
    def from_case(cls, case: Case, owner_id: str) -> "MainGrid":
        (unit,) = case.units_of(owner_id)
        return cls(owner_id, case.profile(unit.price_profile), unit.id)

    def new_day(self, lmp: np.ndarray) -> None:
        """The day's LMP ($ per energy unit, (T,)): the main grid's own private data for the day."""
        lmp = np.array(lmp, dtype=float)
        if lmp.shape != self.lmp.shape or not np.all(np.isfinite(lmp)):
            raise ValueError(f"{self.id}: the day's LMP must be {self.lmp.size} finite prices")
        self.lmp = lmp
        self.sold = np.zeros_like(self.lmp)

    def public_ids(self) -> frozenset[str]:
        return frozenset({self.unit_id})

    def offers(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {self.unit_id: (self.lmp.copy(), np.full_like(self.lmp, np.inf))}

    def deliver(self, quantities: dict[str, np.ndarray]) -> None:
        self.sold = np.asarray(quantities.get(self.unit_id, np.zeros_like(self.lmp)), dtype=float)

    def settlement(self) -> dict[str, float]:
        return {"energy": float(self.sold.sum()), "revenue": float(self.sold @ self.lmp)}
