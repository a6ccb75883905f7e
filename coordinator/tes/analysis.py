"""The analyst's side of a ``tes`` day: benchmarks, settlement, voltage frames, and the
analyst's own copy of the network model.

Analysts' tools may see everything (they are not agents): the *centralized* benchmark (the
load aggregator's problem with the LinDist3Flow limits inside) and the *unconstrained* market
(no cuts, no losses) are solved on fresh copies of the agents; voltages, losses and violations
come from a private copy of the TES operator's network model; the settlement is read from the
participants' own published reports. Nothing computed here reaches an agent: the protocol's
decisions are made from messages alone (:mod:`coordinator.tes.protocol`).

With the AC check (``network_check="ac"``) the centralized benchmark is the same model as the
operator's cuts at the final schedule's AC operating point: the LinDist3Flow limits shifted by
``u_AC - u_LinDist3Flow`` of the final schedule (per limit and hour) and the final schedule's AC
losses in the balance. The voltages are reported in both models whatever the check: LinDist3Flow
and OpenDSS, for the schedules before and after the cuts.

Units: powers in kW (kVAr), positive = drawn from the grid; voltages in pu; money in $; energy
in kWh.
"""
from __future__ import annotations

from typing import Any, Callable

import cvxpy as cp
import numpy as np
import pandas as pd

from agents.tes.customers import customers_from_case
from agents.tes.la_problem import LASolution
from agents.tes.load_aggregator import LoadAggregator
from agents.tes.operator import DSO
from network.model import Case

from ..runtime import Runtime
from .setup import Roles, TESConfig, make_agents

__all__ = ["Analyst", "benchmark", "network_constraints", "injections", "voltage_frame", "settlement_frame"]


class Analyst:
    """The analyses of a run's days on one case: benchmarks, voltages and violations."""

    def __init__(self, case: Case, config: TESConfig) -> None:
        self.case, self.config = case, config  # ``case``: the day's (reassigned when the days differ)
        self._network: DSO | None = None
        self._market: LoadAggregator | None = None
        self._market_case: Case | None = None
        #: the voltage frames and the loss table of each day (three OpenDSS power flows); off in studies,
        #: which do not use them: :meth:`voltages` is then empty and :meth:`losses` None
        self.network_reports = True

    def market(self) -> LoadAggregator:
        """The analyst's own copy of the load aggregator for the current ``case``, built once and kept
        across days (its problems are reused); when the day's customers differ from the last day's it
        takes the day's baselines and utilities (``new_day``: the problems are rebuilt once)."""
        if self._market is None:
            self._market = make_agents(self.case, self.config)["load_aggregator"]
        elif self._market_case is not self.case:
            la = self._market
            day = {c.id: c for c in customers_from_case(self.case, la.id)}
            if any(not (np.array_equal(c.p0, day[c.id].p0) and np.array_equal(c.alpha, day[c.id].alpha))
                   for c in la.customers):
                la.new_day({k: c.p0 for k, c in day.items()}, {k: c.alpha for k, c in day.items()})
        self._market_case = self.case
        return self._market

    @property
    def network(self) -> DSO:
        """A private copy of the network model (the TES operator's), for voltages and violations."""
        if self._network is None:
            self._network = make_agents(self.case, self.config)["operator"]
        return self._network

    def benchmarks(self, offers: dict[str, tuple[np.ndarray, np.ndarray]], *, centralized: bool = True,
                   final: LASolution | None = None) -> tuple[LASolution, LASolution | None]:
        """(the unconstrained market, the centralized benchmark or None) for the day's offers; with the
        AC check the centralized benchmark is linearised at ``final``'s AC operating point."""
        unconstrained = self.market().solve(offers, cuts=())
        central = None
        if centralized:
            corr = losses = None
            if self.config.network_check == "ac" and final is not None:
                corr, losses = self.network.ac_correction(*injections(final))
            central = benchmark(self.case, self.config, offers, network=True, correction=corr, losses=losses)
        return unconstrained, central

    def voltages(self, before: LASolution, after: LASolution) -> pd.DataFrame:
        """Voltages of two schedules in both models: stages "before" and "after", models "lindist3flow"
        and "opendss" (see :func:`voltage_frame`); empty when ``network_reports`` is off."""
        if not self.network_reports:
            return pd.DataFrame(columns=["node", "phase", "hour", "stage", "model", "v_pu"])
        frames = []
        for sol, stage in ((before, "before"), (after, "after")):
            p, q = injections(sol)
            nps = self.network.model.node_phases
            frames += [voltage_frame(self._lindist3flow_v(p, q), nps, stage, "lindist3flow"),
                       voltage_frame(self.network.ac_flow(p, q).v, nps, stage, "opendss")]
        return pd.concat(frames, ignore_index=True)

    def _lindist3flow_v(self, p: dict[str, np.ndarray], q: dict[str, np.ndarray]) -> np.ndarray:
        net = self.network
        m = net.model
        p_ids, q_ids = [k for k in p if k in net.meters], [k for k in q if k in net.meters]
        P = np.vstack([np.atleast_2d(p[k]) for k in p_ids])
        Q = np.vstack([np.atleast_2d(q[k]) for k in q_ids])
        return m.evaluate(m.injection_matrix(net.meters, p_ids) @ P, m.injection_matrix(net.meters, q_ids) @ Q).v

    def losses(self, sol: LASolution) -> pd.DataFrame | None:
        """Per hour: the main-grid purchase, the feeder import in LinDist3Flow (lossless) and in OpenDSS
        (with losses), the AC losses and the losses the LA covered (kW); None when ``network_reports`` is off."""
        if not self.network_reports:
            return None
        p, q = injections(sol)
        ac = self.network.ac_flow(p, q)
        net = self.network
        head = [k for k in p if k in net.meters and net.meters[k].node == net.feeder.head]
        below = [k for k in p if k in net.meters and k not in head]
        lossless = sum(np.asarray(p[k], dtype=float) for k in below)
        mg = sum(np.asarray(sol.purchases[k], dtype=float) for k in head if k in sol.purchases)
        covered = sol.losses if sol.losses is not None else np.zeros_like(ac.losses)
        return pd.DataFrame({"hour": np.arange(ac.losses.size), "mg_purchase_kw": mg,
                             "import_lindist3flow_kw": lossless, "import_opendss_kw": ac.import_power,
                             "losses_opendss_kw": ac.losses, "losses_covered_kw": covered})

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
    mg = mg.get("by_unit", {}).get(roles.mg_unit, mg)  # several feeders: this feeder's supply point
    rows += [("main_grid", roles.main_grid, "energy_kwh", mg["energy"]),
             ("main_grid", roles.main_grid, "revenue", mg["revenue"])]
    return pd.DataFrame(rows, columns=["role", "participant", "item", "value"])


def voltage_frame(v: np.ndarray, node_phases: list[tuple[str, str]], stage: str, model: str) -> pd.DataFrame:
    """Long table node, phase, hour, stage, model, v_pu of voltages |V| (pu) per node-phase x hour."""
    v = np.asarray(v)
    nodes = [n for n, _ in node_phases]
    phases = [p for _, p in node_phases]
    t = v.shape[1]
    return pd.DataFrame({"node": np.repeat(nodes, t), "phase": np.repeat(phases, t),
                         "hour": np.tile(np.arange(t), len(nodes)), "stage": stage, "model": model,
                         "v_pu": v.ravel()})


def network_constraints(dso: DSO, correction: np.ndarray | None = None
                        ) -> Callable[[dict[str, Any], dict[str, Any]], list[Any]]:
    """The operator's LinDist3Flow limits ``U x + u0 <= 0`` (pu) as constraints on a participant's
    injection expressions (kW, kVAr; positive = drawn from the grid), keyed by meter id.
    ``correction`` (n_limits, T): added to ``u0`` (the AC correction of :meth:`DSO.ac_correction`)."""

    def build(p: dict[str, Any], q: dict[str, Any]) -> list[Any]:
        p_ids = [k for k in p if k in dso.meters]
        q_ids = [k for k in q if k in dso.meters]
        ls = dso.limit_set(p_ids, q_ids)
        x = cp.vstack([cp.reshape(p[k], (1, -1), order="C") for k in p_ids]
                      + [cp.reshape(q[k], (1, -1), order="C") for k in q_ids])
        u0 = ls.u0[:, None] if correction is None else ls.u0[:, None] + correction
        return [ls.U @ x + u0 <= 0]

    return build


def benchmark(case: Case, config: TESConfig, offers: dict[str, tuple[np.ndarray, np.ndarray]], *,
              network: bool, correction: np.ndarray | None = None, losses: np.ndarray | None = None) -> LASolution:
    """The LA problem for the same offers with no cuts: with the LinDist3Flow limits inside
    (``network=True``, the centralized benchmark; ``correction``/``losses``: linearised at an AC
    operating point) or without them (the unconstrained market)."""
    a = make_agents(case, config)
    net = network_constraints(a["operator"], correction) if network else None
    return a["load_aggregator"].solve(offers, cuts=(), network=net, losses=losses)
