"""Setting up a ``tes`` day: the configuration, the case with its transformer limit, the roles,
and the agents and hosts, each agent given only its own private data.

Units: the transformer limit in kW, the markup in $/kWh; the tolerance on E* (the sum of the limits'
excess: pu^2 for squared voltages, pu for flows and the import), the loss tolerance in kW.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from agents.strategies import make_strategy
from agents.tes.customers import customers_from_case
from agents.tes.der_manager import DERManager, der_units_from_case
from agents.tes.load_aggregator import LoadAggregator
from agents.tes.main_grid import MainGrid
from agents.tes.operator import DSO, NETWORK_CHECKS
from network.model import Case, Feeder

from .hosts import DERManagerHost, LoadAggregatorHost, MainGridHost, OperatorHost

__all__ = ["TESConfig", "prepare_case", "Roles", "make_agents", "make_hosts"]

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


def prepare_case(case: Case, config: TESConfig) -> Case:
    """The case with the transformer limit of ``config`` applied."""
    if config.transformer_kw is None:
        return case
    (feeder,) = case.feeders.values()
    f2 = Feeder(feeder.id, feeder.nodes, feeder.lines, n_phases=feeder.n_phases, v_head=feeder.v_head,
                s_base_kva=feeder.s_base_kva, v_base_kv=feeder.v_base_kv, import_min=feeder.import_min,
                import_max=float(config.transformer_kw), pcc_bus=feeder.pcc_bus)
    return case.replace(feeders=(f2,))


@dataclass
class Roles:
    """Agent ids of the ``tes`` case by role (the TES operator is the case's owner with role "dso")."""

    main_grid: str
    der_managers: list[str]
    load_aggregator: str
    operator: str

    @classmethod
    def of(cls, case: Case) -> "Roles":
        def one(role: str) -> str:
            owners = case.owners_with_role(role)
            if len(owners) != 1:
                raise ValueError(f"the tes protocol needs exactly one '{role}', the case has {len(owners)}")
            return owners[0].id

        return cls(one("main_grid"), [o.id for o in case.owners_with_role("der_manager")], one("load_aggregator"),
                   one("dso"))


def make_agents(case: Case, config: TESConfig) -> dict[str, Any]:
    """The agents of a ``tes`` day, each given only its own private data."""
    roles = Roles.of(case)
    lo = case.param("retail_price_min", 0.12)
    hi = case.param("retail_price_max", 0.24)
    cap = case.param("retail_price_sum_cap", 4.32)
    mg = MainGrid.from_case(case, roles.main_grid)
    ders = [DERManager(d, der_units_from_case(case, d),
                       make_strategy(config.strategy, markup=config.markup, seed=config.seed),
                       price_min=float(case.param("der_price_min", 0.0)),
                       cap_floor=float(case.param("der_price_cap_floor", 0.16))) for d in roles.der_managers]
    suppliers = [u.id for d in ders for u in d.units] + [mg.unit_id]
    la = LoadAggregator(roles.load_aggregator, customers_from_case(case, roles.load_aggregator), case.horizon,
                        price_min=float(lo), price_max=float(hi), price_sum_cap=float(cap),
                        pricing=config.pricing, relaxation=config.relaxation, supplier_ids=suppliers)
    (feeder,) = case.feeders.values()
    op = DSO(roles.operator, feeder, case.meters, power_unit=case.power_unit, tolerance=config.tolerance,
             network_check=config.network_check, loss_tolerance=config.loss_tolerance / _KW[case.power_unit],
             frequency_hz=float(case.param("frequency_hz", 50.0)))
    return {"roles": roles, "main_grid": mg, "der_managers": ders, "load_aggregator": la, "operator": op}


def make_hosts(case: Case, config: TESConfig) -> list[Any]:
    """The hosts of a ``tes`` day, each with the peers it talks to (keyed by role)."""
    a = make_agents(case, config)
    r: Roles = a["roles"]
    hosts = [MainGridHost(a["main_grid"], {"der_manager": r.der_managers, "load_aggregator": [r.load_aggregator]})]
    hosts += [DERManagerHost(d, {"load_aggregator": [r.load_aggregator]}) for d in a["der_managers"]]
    hosts.append(LoadAggregatorHost(a["load_aggregator"], {"operator": [r.operator]}))
    hosts.append(OperatorHost(a["operator"]))
    return hosts
