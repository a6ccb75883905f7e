"""Setting up a ``tes`` day: the configuration, the case with its transformer limit, the roles,
and the agents and hosts, each agent given only its own private data.

Units: the transformer limit in kW, the markup in $/kWh; the tolerance on E* (the sum of the limits'
excess: pu^2 for squared voltages, pu for flows and the import), the loss tolerance in kW.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from agents.strategies import make_strategy
from agents.tes.customers import customers_from_case
from agents.tes.der_manager import DERManager, der_units_from_case
from agents.tes.load_aggregator import LoadAggregator
from agents.tes.main_grid import MainGrid
from agents.tes.operator import DSO, NETWORK_CHECKS
from network.errors import CaseError
from network.model import Case, Feeder

from .hosts import DERManagerHost, LoadAggregatorHost, MainGridHost, OperatorHost

__all__ = ["TESConfig", "check_case", "prepare_case", "Roles", "make_agents", "make_hosts", "feeder_case",
           "feeder_roles", "private_days"]

_KW = {"kW": 1.0, "MW": 1000.0}  # kW per power unit


@dataclass(frozen=True)
class TESConfig:
    """The options of a ``tes`` run (see ``python run.py tes-day --help``)."""

    pricing: str = "personalized"  # or "uniform"
    relaxation: str = "exact"  # or "mccormick"
    transformer_kw: float | None = None  # None: the case's import limit
    strategy: str = "marginal-cost"  # DER managers' offer strategy
    markup: float = 0.02  # $/kWh, for strategy "markup"
    tolerance: float = 1e-6  # E* (pu^2 / pu, see agents/tes/operator.py) at which the schedule is accepted
    max_iterations: int = 50
    seed: int = 0
    network_check: str = "linear"  # the TES operator's check: LinDist3Flow ("linear") or OpenDSS ("ac")
    loss_tolerance: float = 1e-4  # kW: largest accepted gap between the AC losses and those the LA covers (ac)
    #: per DER manager: (agent id, strategy name, ((parameter, value), ...)); others use ``strategy``
    strategies: tuple = ()

    def strategy_of(self, agent_id: str) -> Any:
        """The strategy of DER manager ``agent_id``: its entry in ``strategies``, else ``strategy``."""
        for aid, name, params in self.strategies:
            if aid == agent_id:
                return make_strategy(name, strict=True, **dict(params))
        return make_strategy(self.strategy, markup=self.markup, seed=self.seed)

    def __post_init__(self) -> None:
        if self.pricing not in ("personalized", "uniform"):
            raise ValueError(f"pricing must be 'personalized' or 'uniform', got {self.pricing!r}")
        if self.relaxation not in ("exact", "mccormick"):
            raise ValueError(f"relaxation must be 'exact' or 'mccormick', got {self.relaxation!r}")
        if self.transformer_kw is not None and not (self.transformer_kw >= 0 and math.isfinite(self.transformer_kw)):
            raise ValueError(f"transformer limit must be a finite number >= 0 kW, got {self.transformer_kw}")
        if self.network_check not in NETWORK_CHECKS:
            raise ValueError(f"network check must be one of {', '.join(NETWORK_CHECKS)}, got {self.network_check!r}")
        if not (self.loss_tolerance > 0 and math.isfinite(self.loss_tolerance)):
            raise ValueError(f"loss tolerance must be a finite number > 0 kW, got {self.loss_tolerance}")


_SEE = "see README § case folders"
#: numeric case parameters read by tes, with their defaults
TES_PARAMETERS = {"retail_price_min": 0.12, "retail_price_max": 0.24, "retail_price_sum_cap": 4.32,
                  "der_price_min": 0.0, "der_price_cap_floor": 0.16}


def _param(case: Case, key: str) -> float:
    v = case.param(key, TES_PARAMETERS[key])
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise CaseError(f"tes needs a finite number, got {v!r}", file="case.json", column=f"parameters.{key}")
    return float(v)


def check_case(case: Case) -> None:
    """What the ``tes`` protocol needs of a case, each missing piece a :class:`CaseError` naming where.

    One feeder; exactly one owner of each role main_grid, load_aggregator and dso (the TES
    operator); the main grid owns one supply point with a ``price_profile`` (its LMP); the load
    aggregator owns loads with baseline and alpha profiles and a beta; numeric retail-price
    parameters with ``retail_price_min <= retail_price_max``.
    """
    if len(case.feeders) > 1:
        _check_feeders(case)
        for sub in feeder_cases(case).values():
            check_case(sub)
        return
    if len(case.feeders) != 1:
        raise CaseError(f"tes needs at least one feeder; {case.name} has none; {_SEE}",
                        file="case.json", column="feeders")
    for role in ("main_grid", "load_aggregator", "dso"):
        owners = case.owners_with_role(role)
        if len(owners) != 1:
            have = "none" if not owners else f"{len(owners)} ({', '.join(o.id for o in owners)})"
            raise CaseError(f"tes needs exactly one {role} owner; {case.name} has {have}; {_SEE}",
                            file="owners.csv", column="role", row=owners[1].row if len(owners) > 1 else None)
    mg = case.owners_with_role("main_grid")[0]
    units = case.units_of(mg.id)
    if len(units) != 1:
        raise CaseError(f"tes needs the main grid {mg.id} to own exactly one supply point; it owns {len(units)}",
                        file="units.csv", column="owner")
    if units[0].price_profile is None:
        raise CaseError(f"the main grid's supply point {units[0].id} needs a price_profile (its LMP)",
                        file="units.csv", row=units[0].row, column="price_profile", key=units[0].id)
    la = case.owners_with_role("load_aggregator")[0]
    loads = case.loads_of(la.id)
    if not loads:
        raise CaseError(f"the load aggregator {la.id} owns no loads; tes needs its customers", file="loads.csv",
                        column="owner")
    for d in loads:
        for col in ("baseline_profile", "alpha_profile"):
            if getattr(d, col) is None:
                raise CaseError(f"customer {d.id} of {la.id} needs a {col}", file="loads.csv", row=d.row,
                                column=col, key=d.id)
        if math.isnan(d.beta):
            raise CaseError(f"customer {d.id} of {la.id} needs a beta (utility curvature)", file="loads.csv",
                            row=d.row, column="beta", key=d.id)
    values = {k: _param(case, k) for k in TES_PARAMETERS}
    if values["retail_price_min"] > values["retail_price_max"]:
        raise CaseError(f"retail_price_min {values['retail_price_min']:g} exceeds retail_price_max "
                        f"{values['retail_price_max']:g}", file="case.json", column="parameters.retail_price_min")


def _grids_by_owner(case: Case) -> dict[str, set[str]]:
    """Owner id -> the grids (feeders) of its units and loads, in one pass over the case's assets."""
    out: dict[str, set[str]] = {}
    for a in (*case.units, *case.loads):
        out.setdefault(a.owner, set()).add(a.grid)
    return out


def _feeder_of(case: Case, owner_id: str, index: dict[str, set[str]] | None = None) -> set[str]:
    if index is not None:
        return index.get(owner_id, set())
    return {a.grid for a in (*case.units_of(owner_id), *case.loads_of(owner_id))}


def _check_feeders(case: Case) -> None:
    """Several feeders: each feeder's owners (one dso, one load_aggregator, its der_managers) share an area
    of their own; the one main_grid owner has one supply point on every feeder."""
    mgs = case.owners_with_role("main_grid")
    if len(mgs) != 1:
        raise CaseError(f"tes needs exactly one main_grid owner (shared by the feeders); {case.name} has "
                        f"{len(mgs)}", file="owners.csv", column="role")
    per_area: dict[int, list] = {}
    index = _grids_by_owner(case)
    for o in case.owners:
        if o.role == "main_grid":
            continue
        if o.area is None:
            raise CaseError(f"with several feeders every {o.role} owner needs the area of its feeder; {o.id} has "
                            f"none", file="owners.csv", row=o.row, column="area", key=o.id)
        per_area.setdefault(int(o.area), []).append(o)
    for area, owners in sorted(per_area.items()):
        grids = set().union(*(_feeder_of(case, o.id, index) for o in owners))
        if len(grids) != 1:
            raise CaseError(f"the owners of area {area} ({', '.join(o.id for o in owners)}) must own assets on "
                            f"one feeder; they own assets on {sorted(grids) or 'none'}", file="owners.csv",
                            column="area")
    feeders_seen = [next(iter(set().union(*(_feeder_of(case, o.id, index) for o in owners))))
                    for owners in per_area.values()]
    missing = sorted(set(case.feeders) - set(feeders_seen))
    if missing or len(feeders_seen) != len(set(feeders_seen)):
        raise CaseError(f"each feeder needs the owners of one area of its own; feeders without: {missing}, "
                        "or one feeder in two areas", file="owners.csv", column="area")
    mg_grids = [u.grid for u in case.units_of(mgs[0].id)]
    if sorted(mg_grids) != sorted(case.feeders):
        raise CaseError(f"the main grid {mgs[0].id} needs one supply point on each feeder; it has them on "
                        f"{sorted(mg_grids)}", file="units.csv", column="grid")


def feeder_case(case: Case, feeder_id: str, index: dict[str, set[str]] | None = None) -> Case:
    """The single-feeder case of one feeder of ``case``: the feeder, its area's owners and assets, the main
    grid with that feeder's supply point, the profile columns they use and the same parameters. A one-feeder
    case is itself. ``index``: :func:`_grids_by_owner` of ``case`` when the caller cuts many feeders."""
    if len(case.feeders) == 1 and feeder_id in case.feeders:
        return case
    index = _grids_by_owner(case) if index is None else index
    mg = [o for o in case.owners if o.role == "main_grid"]
    areas = {o.area for o in case.owners if o.role != "main_grid" and feeder_id in index.get(o.id, ())}
    owners = [*mg, *(o for o in case.owners if o.role != "main_grid" and o.area in areas)]
    keep = {o.id for o in owners}
    units = [u for u in case.units if u.grid == feeder_id and u.owner in keep]
    loads = [d for d in case.loads if d.grid == feeder_id and d.owner in keep]
    used = {c for a in units for c in (a.avail_profile, a.price_profile) if c} | {
        c for d in loads for c in (d.baseline_profile, d.alpha_profile) if c}
    profiles = case.profiles[[c for c in case.profiles.columns if c in used]]  # its own columns, in order
    return Case(f"{case.name}/{feeder_id}", feeders=[case.feeders[feeder_id]], owners=owners, units=units,
                loads=loads, profiles=profiles, parameters=dict(case.parameters), power_unit=case.power_unit,
                description=case.description)


def feeder_cases(case: Case) -> dict[str, Case]:
    """Every feeder's single-feeder case (:func:`feeder_case`), cut in one pass."""
    index = _grids_by_owner(case)
    return {fid: feeder_case(case, fid, index) for fid in case.feeders}


def prepare_case(case: Case, config: TESConfig) -> Case:
    """The case with the transformer limit of ``config`` applied to every feeder (after :func:`check_case`)."""
    check_case(case)
    if config.transformer_kw is None:
        return case
    f2 = tuple(Feeder(feeder.id, feeder.nodes, feeder.lines, n_phases=feeder.n_phases, v_head=feeder.v_head,
                      s_base_kva=feeder.s_base_kva, v_base_kv=feeder.v_base_kv, import_min=feeder.import_min,
                      import_max=float(config.transformer_kw), pcc_bus=feeder.pcc_bus)
               for feeder in case.feeders.values())
    return case.replace(feeders=f2)


@dataclass
class Roles:
    """Agent ids of the ``tes`` case by role (the TES operator is the case's owner with role "dso")."""

    main_grid: str
    der_managers: list[str]
    load_aggregator: str
    operator: str
    feeder: str | None = None  # the feeder these roles serve
    area: int = 1  # the area of its DER managers, load aggregator and operator (the policy scopes them)
    mg_unit: str | None = None  # the main grid's supply point at this feeder's head

    @classmethod
    def of(cls, case: Case) -> "Roles":
        def one(role: str) -> str:
            owners = case.owners_with_role(role)
            if len(owners) != 1:
                raise ValueError(f"the tes protocol needs exactly one '{role}', the case has {len(owners)}")
            return owners[0].id

        (fid,) = case.feeders
        mg = one("main_grid")
        return cls(mg, [o.id for o in case.owners_with_role("der_manager")], one("load_aggregator"),
                   one("dso"), feeder=fid, mg_unit=case.units_of(mg)[0].id)


def feeder_roles(case: Case, subs: dict[str, Case] | None = None) -> list[Roles]:
    """The roles of every feeder of ``case``, in the case's feeder order; one feeder: ``[Roles.of(case)]``.
    ``subs``: :func:`feeder_cases` of ``case``, if the caller has them."""
    if len(case.feeders) == 1:
        return [Roles.of(case)]
    subs = feeder_cases(case) if subs is None else subs
    out = []
    for fid in case.feeders:
        r = Roles.of(subs[fid])
        area = case.owner(r.load_aggregator).area
        out.append(Roles(r.main_grid, r.der_managers, r.load_aggregator, r.operator, feeder=fid, area=int(area),
                         mg_unit=r.mg_unit))
    return out


def make_agents(case: Case, config: TESConfig) -> dict[str, Any]:
    """The agents of a ``tes`` day, each given only its own private data."""
    check_case(case)
    roles = Roles.of(case)
    lo, hi, cap = (_param(case, k) for k in ("retail_price_min", "retail_price_max", "retail_price_sum_cap"))
    mg = MainGrid.from_case(case, roles.main_grid)
    ders = [DERManager(d, der_units_from_case(case, d),
                       config.strategy_of(d),
                       price_min=_param(case, "der_price_min"),
                       cap_floor=_param(case, "der_price_cap_floor")) for d in roles.der_managers]
    suppliers = [u.id for d in ders for u in d.units] + [mg.unit_id]
    la = LoadAggregator(roles.load_aggregator, customers_from_case(case, roles.load_aggregator), case.horizon,
                        price_min=float(lo), price_max=float(hi), price_sum_cap=float(cap),
                        pricing=config.pricing, relaxation=config.relaxation, supplier_ids=suppliers)
    (feeder,) = case.feeders.values()
    op = DSO(roles.operator, feeder, case.meters, power_unit=case.power_unit, tolerance=config.tolerance,
             network_check=config.network_check, loss_tolerance=config.loss_tolerance / _KW[case.power_unit],
             frequency_hz=float(case.param("frequency_hz", 50.0)))
    return {"roles": roles, "main_grid": mg, "der_managers": ders, "load_aggregator": la, "operator": op}


def _scoped(host: Any, area: int) -> Any:
    host.area = area  # the boundary keeps a DER manager, load aggregator and operator within their feeder's area
    return host


def private_days(case: Case, profiles: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
    """Each agent's own part of a sequence of days: agent id -> day -> the keyword arguments of its
    ``new_day``. ``profiles``: one profiles table per day (the columns of ``case.profiles``). The main
    grid gets its LMP, each DER manager its own units' availability (within their ratings), the load
    aggregator its own customers' baselines (kW) and utility ``alpha`` ($/kWh); nobody gets anyone else's."""
    roles = Roles.of(case)
    (mg,) = case.units_of(roles.main_grid)
    out: dict[str, list[dict[str, Any]]] = {roles.main_grid: [], roles.load_aggregator: []}
    out |= {d: [] for d in roles.der_managers}
    loads = [(ld.id, ld.baseline_profile, ld.alpha_profile) for ld in case.loads_of(roles.load_aggregator)]
    for prof in profiles:
        out[roles.main_grid].append({"lmp": prof[mg.price_profile].to_numpy(float)})
        out[roles.load_aggregator].append({"baselines": {c: prof[p].to_numpy(float) for c, p, _ in loads},
                                           "alphas": {c: prof[a].to_numpy(float) for c, _, a in loads}})
        for d in roles.der_managers:
            out[d].append({"available": {u.id: np.minimum(prof[u.avail_profile].to_numpy(float), u.p_max)
                                         for u in case.units_of(d) if u.avail_profile}})
    return out


def make_hosts(case: Case, config: TESConfig, profiles: Sequence[Any] | None = None) -> list[Any]:
    """The hosts of a ``tes`` day, each with the peers it talks to (keyed by role).

    Several feeders: per feeder its own TES operator, load aggregator and DER managers (built from
    :func:`feeder_case`, so each gets only its feeder's data), and one main grid for all, which offers each
    load aggregator the supply point at its feeder's head. Each feeder's hosts carry its area.
    ``profiles``: one profiles table per day when the days differ (one-feeder cases); each host gets its
    own part (:func:`private_days`)."""
    if len(case.feeders) > 1:
        _check_feeders(case)  # and make_agents checks each feeder's case
        subs = feeder_cases(case)
    else:
        check_case(case)
        subs = {fid: case for fid in case.feeders}
    roles = feeder_roles(case, subs)
    if profiles is not None and len(roles) > 1:
        raise CaseError("days that differ (generated days) run on one-feeder cases only", file=case.name)
    own = private_days(case, profiles) if profiles is not None else {}
    mg = MainGrid.from_case(case, roles[0].main_grid)
    hosts: list[Any] = [MainGridHost(mg, {"der_manager": [d for r in roles for d in r.der_managers],
                                          "load_aggregator": [r.load_aggregator for r in roles]},
                                     own.get(mg.id),
                                     unit_of={r.load_aggregator: r.mg_unit for r in roles} if len(roles) > 1
                                     else None)]
    for r in roles:
        a = make_agents(subs[r.feeder], config)
        hosts += [_scoped(DERManagerHost(d, {"load_aggregator": [r.load_aggregator]}, own.get(d.id)), r.area)
                  for d in a["der_managers"]]
        hosts.append(_scoped(LoadAggregatorHost(a["load_aggregator"], {"operator": [r.operator]},
                                                own.get(r.load_aggregator)), r.area))
        hosts.append(_scoped(OperatorHost(a["operator"]), r.area))
    return hosts
