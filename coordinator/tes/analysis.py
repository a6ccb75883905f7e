"""The analyst's side of a ``tes`` day: benchmarks, settlement, voltage frames, and the
analyst's own copy of the network model.

Analysts' tools may see everything (they are not agents): the *centralized* benchmark (the
load aggregator's problem with the LinDist3Flow limits inside) and the *unconstrained* market
(no cuts) are solved on fresh copies of the agents; voltages and violations come from a private
copy of the TES operator's network model; the settlement is read from the participants' own
published reports. Nothing computed here reaches an agent: the protocol's decisions are made
from messages alone (:mod:`coordinator.tes.protocol`).

Units: powers in kW (kVAr), positive = drawn from the grid; voltages in pu; money in $; energy
in kWh.
"""
from __future__ import annotations

from typing import Any, Callable

import cvxpy as cp
import numpy as np
import pandas as pd

from agents.tes.la_problem import LASolution
from agents.tes.operator import DSO
from network.model import Case

from ..runtime import Runtime
from .setup import Roles, TESConfig, make_agents

__all__ = ["Analyst", "benchmark", "network_constraints", "injections", "voltage_frame", "settlement_frame"]


class Analyst:
    """The analyses of a run's days on one case: benchmarks, voltages and violations."""

    def __init__(self, case: Case, config: TESConfig) -> None:
        self.case, self.config = case, config
        self._network: DSO | None = None

    @property
    def network(self) -> DSO:
        """A private copy of the network model (the TES operator's), for voltages and violations."""
        if self._network is None:
            self._network = make_agents(self.case, self.config)["operator"]
        return self._network

    def benchmarks(self, offers: dict[str, tuple[np.ndarray, np.ndarray]], *,
                   centralized: bool = True) -> tuple[LASolution, LASolution | None]:
        """(the unconstrained market, the centralized benchmark or None) for the day's offers."""
        unconstrained = benchmark(self.case, self.config, offers, network=False)
        central = benchmark(self.case, self.config, offers, network=True) if centralized else None
        return unconstrained, central

    def voltages(self, before: LASolution, after: LASolution) -> pd.DataFrame:
        """LinDist3Flow voltages of two schedules, stages "before" and "after" (see :func:`voltage_frame`)."""
        b = self.network.check_schedule(*injections(before))
        a = self.network.check_schedule(*injections(after))
        return pd.concat([voltage_frame(b, "before"), voltage_frame(a, "after")], ignore_index=True)

    def violations(self, sol: LASolution) -> list[dict]:
        """Every network limit the schedule violates: family, place, period, excess (pu)."""
        return self.network.violated_limits(*injections(sol))


def injections(sol: LASolution) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """An LA solution's active and (customers') reactive injections per meter."""
    return sol.injections_p, {k: v for k, v in sol.injections_q.items() if k in sol.loads}


def settlement_frame(rt: Runtime, roles: Roles, sol: LASolution) -> pd.DataFrame:
    """Money and energy per participant: DER units, the LA, its customers, the main grid.

    Columns: role, participant, item (energy_kwh, revenue, cost, profit, surplus), value ($ or kWh).
    Read from the participants' own published reports (``report`` of their hosts, through the analyst channel).
    """
    rows: list[tuple[str, str, str, float]] = []
    for d, rep in zip(roles.der_managers, rt.analyst.read_many([(d, "report") for d in roles.der_managers])):
        for unit, v in rep["settlement"].items():
            rows += [("der_manager", f"{d}/{unit}", "energy_kwh", v["energy"]),
                     ("der_manager", f"{d}/{unit}", "revenue", v["revenue"]),
                     ("der_manager", f"{d}/{unit}", "cost", v["cost"]),
                     ("der_manager", f"{d}/{unit}", "profit", v["profit"])]
    st = sol.settlement()
    la = roles.load_aggregator
    rows += [("load_aggregator", la, "revenue", st["revenue"]), ("load_aggregator", la, "cost", st["cost"]),
             ("load_aggregator", la, "profit", st["profit"])]
    rows += [("customer", c, "surplus", v) for c, v in st["customer_surplus"].items()]
    rows += [("customer", c, "energy_kwh", float(np.sum(p))) for c, p in sol.loads.items()]
    mg = rt.analyst.read(roles.main_grid, "report")["settlement"]
    rows += [("main_grid", roles.main_grid, "energy_kwh", mg["energy"]),
             ("main_grid", roles.main_grid, "revenue", mg["revenue"])]
    return pd.DataFrame(rows, columns=["role", "participant", "item", "value"])


def voltage_frame(check: Any, stage: str) -> pd.DataFrame:
    """Long table node, phase, hour, stage, v_pu of an operator's check (LinDist3Flow voltages, pu)."""
    v = np.asarray(check.voltages)
    nodes = [n for n, _ in check.node_phases]
    phases = [p for _, p in check.node_phases]
    t = v.shape[1]
    return pd.DataFrame({"node": np.repeat(nodes, t), "phase": np.repeat(phases, t),
                         "hour": np.tile(np.arange(t), len(nodes)), "stage": stage, "v_pu": v.ravel()})


def network_constraints(dso: DSO) -> Callable[[dict[str, Any], dict[str, Any]], list[Any]]:
    """The operator's LinDist3Flow limits ``U x + u0 <= 0`` (pu) as constraints on a participant's
    injection expressions (kW, kVAr; positive = drawn from the grid), keyed by meter id."""

    def build(p: dict[str, Any], q: dict[str, Any]) -> list[Any]:
        p_ids = [k for k in p if k in dso.meters]
        q_ids = [k for k in q if k in dso.meters]
        ls = dso.limit_set(p_ids, q_ids)
        x = cp.vstack([cp.reshape(p[k], (1, -1), order="C") for k in p_ids]
                      + [cp.reshape(q[k], (1, -1), order="C") for k in q_ids])
        return [ls.U @ x + ls.u0[:, None] <= 0]

    return build


def benchmark(case: Case, config: TESConfig, offers: dict[str, tuple[np.ndarray, np.ndarray]], *,
              network: bool) -> LASolution:
    """The LA problem for the same offers with no cuts: with the LinDist3Flow limits inside
    (``network=True``, the centralized benchmark) or without them (the unconstrained market)."""
    a = make_agents(case, config)
    return a["load_aggregator"].solve(offers, cuts=(), network=network_constraints(a["operator"]) if network else None)
