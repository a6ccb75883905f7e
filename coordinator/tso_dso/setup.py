"""Set-up of the ``tso-dso`` protocol: its settings, the roles of a case, and the hosts of every agent.

:func:`make_hosts` gives each agent only its own data: a participant its resources (and
its wind farms' scenarios), a DSO its feeder and the node of each of its area's
resources, the TSO the transmission grid, the bus of each transmission-connected
resource, the PCC bus of each area, and the market registration (kind and area of
every resource).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from agents.tso_dso.dso import DEFAULT_PENALTY_FACTOR, AreaDSO
from agents.tso_dso.participants import WIND, RTDERManager, RTLoadAggregator, locations_from_case, resources_from_case
from agents.tso_dso.tso import TSO
from network.errors import CaseError
from network.model import TRANSMISSION, Case

from .hosts import AreaDSOHost, ParticipantHost, TSOHost

__all__ = ["TSODSOConfig", "Roles", "make_hosts", "area_of_resources", "SCHEMES", "QUANTILES", "IN_SAMPLE",
           "OUT_OF_SAMPLE"]

SCHEMES = ("pcc", "cm", "fc")
QUANTILES = (0.1, 0.2, 0.3, 0.7, 0.8, 0.9)
IN_SAMPLE, OUT_OF_SAMPLE = "in_sample", "out_of_sample"


@dataclass(frozen=True)
class TSODSOConfig:
    """Settings of a run. The stopping rules (``gap_tol``, ``max_iterations``, ``inner_tol``, ``oos_tol``,
    ``inner_max_rounds``, ``inexact``) are applied by the protocol; the rest configures the agents."""

    schemes: tuple[str, ...] = SCHEMES
    gap_tol: float = 5e-5  # gap (best upper bound - master bound) / welfare scale at which Benders stops
    max_iterations: int = 100
    inner_tol: float = 1e-6  # relative gap per scenario at which the TSO <-> DSO loop has solved it
    oos_tol: float = 1e-5  # the same in the out-of-sample evaluation
    settle: bool = True  # an evaluation leaves the scenarios within its tolerance alone (False: re-solves all)
    inner_max_rounds: int = 80
    inexact: float = math.inf  # within Benders: rounds until sum phi (U - L) <= inexact x outer gap (inf: one round)
    neighbours: int = 0  # DSO cuts moved from neighbouring scenarios (0: only each scenario's own)
    warmup: int = 5  # exchanges a DSO evaluates on its first call for a scenario set
    share_cuts: bool = False  # one pool of DSO cuts for all schemes (default: one per scheme, reproducible alone)
    rt_cut_keep: int | None = 24  # the TSO prunes stale DSO cuts of a scenario beyond this many (None: never)
    rt_cut_max_age: int = 8  # a DSO cut is stale after this many real-time master solves without a positive dual
    penalty_factor: float = DEFAULT_PENALTY_FACTOR  # DSO slack penalty = factor x VOLL
    congestion_margin: float = 10.5  # MW: a TSO line within this of its rating is congested (paper's code)
    oos: bool = True

    def __post_init__(self) -> None:
        bad = [s for s in self.schemes if s not in SCHEMES]
        if bad:
            raise ValueError(f"unknown scheme(s) {bad}; choose from {', '.join(SCHEMES)}")
        if not (0 < self.gap_tol < 1) or self.max_iterations < 1:
            raise ValueError("gap_tol must be in (0, 1) and max_iterations >= 1")


@dataclass
class Roles:
    """Agent ids of the tso-dso case."""

    tso: str
    dsos: dict[str, str]  # dso id -> feeder id
    area_of_dso: dict[str, int]
    participants: dict[str, str]  # id -> role
    operator_of: dict[str, str]  # participant -> the operator of its real-time offers
    pcc_id: dict[str, str]  # dso id -> its PCC identifier

    @classmethod
    def of(cls, case: Case) -> "Roles":
        tsos = case.owners_with_role("tso")
        if len(tsos) != 1:
            have = "none" if not tsos else f"{len(tsos)} ({', '.join(o.id for o in tsos)})"
            raise CaseError(f"tso-dso needs exactly one tso owner; {case.name} has {have}; see README § case "
                            f"folders", file="owners.csv", column="role")
        if case.transmission is None:
            raise CaseError(f"tso-dso needs a transmission grid; {case.name} has none (buses.csv, branches.csv)",
                            file="case.json", column="transmission")
        owner_area = {o.id: o.area for o in case.owners}
        feeder_area: dict[str, int] = {}
        for f in case.feeders.values():
            areas = {owner_area[a.owner] for a in (*case.units, *case.loads) if a.grid == f.id}
            if len(areas) != 1 or None in areas:
                raise CaseError(f"feeder {f.id}: tso-dso needs its units and loads owned by owners of one area, "
                                f"got areas {sorted(areas, key=str)}", file="owners.csv", column="area")
            feeder_area[f.id] = int(next(iter(areas)))
            if f.pcc_bus is None:
                raise CaseError(f"feeder {f.id} has no PCC bus; tso-dso attaches every feeder to a transmission "
                                f"bus", file="case.json", column="feeders.pcc_bus")
        dso_of_area = {int(o.area): o.id for o in case.owners_with_role("dso") if o.area is not None}
        dsos, area_of_dso, pcc = {}, {}, {}
        for fid, a in sorted(feeder_area.items(), key=lambda kv: kv[1]):
            if a not in dso_of_area:
                raise CaseError(f"no dso owner for area {a} (feeder {fid}); tso-dso needs one per area",
                                file="owners.csv", column="role")
            d = dso_of_area[a]
            dsos[d], area_of_dso[d], pcc[d] = fid, a, f"PCC{a}"
        parts, op = {}, {}
        for o in case.owners:
            if o.role in ("der_manager", "load_aggregator") and (case.units_of(o.id) or case.loads_of(o.id)):
                parts[o.id] = o.role
                a = int(o.area or 0)
                op[o.id] = tsos[0].id if a == 0 else dso_of_area[a]
        return cls(tsos[0].id, dsos, area_of_dso, parts, op, pcc)




def area_of_resources(case: Case, roles: Roles) -> dict[str, int]:
    """resource id -> its area (0: transmission-connected)."""
    feeder_area = {f: roles.area_of_dso[d] for d, f in roles.dsos.items()}
    loc = locations_from_case(case)
    return {k: (0 if g == TRANSMISSION else feeder_area[g]) for k, (g, _) in loc.items()}


def _wind_sets(wind: Any, farm: str) -> dict[str, np.ndarray]:
    i = list(wind.farm_ids).index(farm)
    out = {IN_SAMPLE: np.asarray(wind.in_sample[i], dtype=float)}
    oos = getattr(wind, "out_of_sample", None)
    if oos is not None and np.asarray(oos).shape[1] > 0:
        out[OUT_OF_SAMPLE] = np.asarray(oos[i], dtype=float)
    return out


def make_hosts(case: Case, wind: Any, config: TSODSOConfig = TSODSOConfig(), *,
               strategies: Mapping[str, Any] | None = None) -> tuple[list[Any], Roles]:
    """Hosts of every agent, each agent given only its own data.

    ``wind``: an object with ``farm_ids``, ``in_sample`` ``(n_farms, S)`` and
    ``out_of_sample`` ``(n_farms, S_oos)`` (e.g. ``scenarios.tso_dso.wind.WindScenarios``).
    ``strategies``: participant id -> its offer strategy (``agents/strategies.py``); the others offer
    at the case's day-ahead prices. Every participant is told the public price cap (the case's
    ``voll_da``, $/MWh).
    """
    strategies = dict(strategies or {})
    unknown = sorted(set(strategies) - set(Roles.of(case).participants))
    if unknown:
        raise ValueError(f"strategy for {unknown[0]!r}, which is not a participant of {case.name}")
    price_cap = float(case.param("voll_da", case.param("voll", 10_000.0)))
    roles = Roles.of(case)
    loc = locations_from_case(case)
    area_of = area_of_resources(case, roles)
    voll = float(case.param("voll_rt", case.param("voll", 10_000.0)))
    hosts: list[Any] = []
    # participants
    for pid, role in roles.participants.items():
        res = resources_from_case(case, pid)
        w = {r.id: _wind_sets(wind, r.id) for r in res if r.kind == WIND}
        cls = RTDERManager if role == "der_manager" else RTLoadAggregator
        owner = case.owner(pid)
        agent = cls(pid, res, area=int(owner.area or 0), wind=w, strategy=strategies.get(pid), price_cap=price_cap)
        hosts.append(ParticipantHost(agent, roles.tso, roles.operator_of[pid]))
    # DSOs: their feeder and the node of each of their area's resources
    for d, fid in roles.dsos.items():
        feeder = case.feeders[fid]
        nodes = {k: n for k, (g, n) in loc.items() if g == fid}
        agent = AreaDSO(d, feeder, nodes, roles.pcc_id[d], voll=voll, penalty=config.penalty_factor * voll)
        hosts.append(AreaDSOHost(agent, roles.tso, neighbours=config.neighbours, warmup=config.warmup,
                                 area=roles.area_of_dso[d]))
    # TSO: the transmission grid, the bus of each transmission-connected resource, the PCC buses;
    # market registration: the kind and area of every resource
    t_nodes = {k: n for k, (g, n) in loc.items() if g == TRANSMISSION}
    areas = {d: (roles.pcc_id[d], case.feeders[f].pcc_bus, roles.area_of_dso[d]) for d, f in roles.dsos.items()}
    registry = {r.id: (r.kind, area_of[r.id]) for r in resources_from_case(case)}
    tso = TSO(roles.tso, case.transmission, t_nodes, areas, registry, voll=voll,
              share_cuts=config.share_cuts, rt_cut_keep=config.rt_cut_keep, rt_cut_max_age=config.rt_cut_max_age,
              settle={IN_SAMPLE: config.inner_tol, OUT_OF_SAMPLE: config.oos_tol} if config.settle else None)
    hosts.append(TSOHost(tso, roles.participants))
    return hosts, roles
