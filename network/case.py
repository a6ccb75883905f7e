"""A complete market :class:`Case`: grids, owners, assets, profiles and parameters.

One job: put the grids (:mod:`network.grids`) and the element records
(:mod:`network.elements`) together and check what only the whole case can check
-- feeders attached to existing transmission buses, assets at existing
nodes/phases with known owners, unique meter ids, profiles that exist, are
finite and match the horizon -- then answer queries (owners by role, assets of an
owner, profiles, the meter map) and make validated copies (:meth:`Case.replace`).

Units and sign conventions are in :mod:`network.model`.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable, Mapping

import numpy as np

from .elements import (F_LOADS, F_META, F_OWNERS, F_PROFILES, F_UNITS, ROLES, TRANSMISSION, Load, MeterLocation, Owner,
                       ReadOnlyDict, Unit, _unique)
from .errors import CaseError
from .grids import Feeder, TransmissionGrid

if TYPE_CHECKING:  # pandas is imported where a case is made: a process that only unpickles feeders skips it
    import pandas as pd


class Case:
    """A complete market case: grids, owners, assets, profiles and scalar parameters.

    ``meters`` (the meter -> node/phase map) is derived from the assets' locations;
    only network operators may be given it. ``profiles`` has one row per period
    (index 0..horizon-1).
    """

    def __init__(self, name: str, *, transmission: TransmissionGrid | None = None,
                 feeders: Iterable[Feeder] = (), owners: Iterable[Owner] = (), units: Iterable[Unit] = (),
                 loads: Iterable[Load] = (), profiles: pd.DataFrame | None = None,
                 parameters: Mapping[str, object] | None = None, power_unit: str = "kW",
                 description: str = "") -> None:
        self.name = str(name)
        self.description = description
        if power_unit not in ("kW", "MW"):
            raise CaseError(f"power_unit must be 'kW' or 'MW', got {power_unit!r}", file=F_META, column="power_unit")
        self.power_unit = power_unit
        self.transmission = transmission
        feeders = tuple(feeders)
        _unique(feeders, file=F_META, column="feeders")
        if TRANSMISSION in {f.id for f in feeders}:  # reserved whether or not the case has a transmission grid
            raise CaseError(f"feeder id '{TRANSMISSION}' is reserved for the transmission grid; rename the feeder",
                            file=F_META, column="feeders.id")
        self.feeders: Mapping[str, Feeder] = ReadOnlyDict({f.id: f for f in feeders})
        self.owners: tuple[Owner, ...] = tuple(owners)
        self.units: tuple[Unit, ...] = tuple(units)
        self.loads: tuple[Load, ...] = tuple(loads)
        self.parameters: Mapping[str, object] = ReadOnlyDict(dict(parameters or {}))
        for k, v in self.parameters.items():
            if isinstance(v, float) and not math.isfinite(v):
                raise CaseError(f"parameter '{k}' must be finite, got {v}", file=F_META, column=f"parameters.{k}")
        declared = self.parameters.get("horizon")
        if declared is not None and (isinstance(declared, bool) or not isinstance(declared, (int, float))
                                     or declared != int(declared) or declared < 1):
            raise CaseError(f"horizon must be a positive whole number of periods, got {declared!r}", file=F_META,
                            column="parameters.horizon")
        import pandas as pd

        if profiles is None:
            profiles = pd.DataFrame(index=pd.RangeIndex(int(self.parameters.get("horizon", 1)), name="hour"))
        self.profiles = profiles.copy()
        self.profiles.index.name = "hour"
        self._validate()
        for col in self.profiles.columns:  # make the arrays read-only
            self.profiles[col].to_numpy().setflags(write=False)

    # ---------------------------------------------------------------- validation
    def _validate(self) -> None:
        import pandas as pd

        _unique(self.owners, file=F_OWNERS, column="owner_id")
        _unique(self.units, file=F_UNITS, column="unit_id")
        _unique(self.loads, file=F_LOADS, column="load_id")
        unit_ids = {u.id for u in self.units}
        for i, d in enumerate(self.loads, start=1):
            if d.id in unit_ids:
                raise CaseError(f"id '{d.id}' is used both as a unit and as a load (meter ids must be unique)",
                                file=F_LOADS, row=d.row or i, column="load_id")
        owners = {o.id for o in self.owners}
        for f in self.feeders.values():
            if f.pcc_bus is not None:
                if self.transmission is None or f.pcc_bus not in self.transmission.bus_index:
                    raise CaseError(f"feeder {f.id} is attached to unknown transmission bus '{f.pcc_bus}'",
                                    file=F_META, column=f"feeders.{f.id}.pcc_bus")
        # profiles
        p = self.profiles
        horizon = len(p)
        declared = self.parameters.get("horizon")
        if declared is not None and int(declared) != horizon:
            raise CaseError(f"horizon is {declared} in case.json but profiles.csv has {horizon} rows",
                            file=F_PROFILES, column="hour")
        if horizon < 1:
            raise CaseError("the horizon must have at least one period", file=F_PROFILES, column="hour")
        for col in p.columns:
            vals = pd.to_numeric(p[col], errors="coerce").to_numpy(dtype=float)
            bad = np.flatnonzero(~np.isfinite(vals))
            if bad.size:
                raise CaseError(f"value is missing, not a number, or infinite ({p[col].iloc[bad[0]]!r})",
                                file=F_PROFILES, row=int(bad[0]) + 1, column=str(col))
        for table, file, id_col in ((self.units, F_UNITS, "unit_id"), (self.loads, F_LOADS, "load_id")):
            for i, a in enumerate(table, start=1):
                row = a.row or i
                k = f"{id_col}={a.id}"
                if a.owner not in owners:
                    raise CaseError(f"unknown owner '{a.owner}'", file=file, row=row, column="owner", key=k)
                self._check_location(a, file, row, k)
                for col in ("avail_profile", "price_profile", "baseline_profile", "alpha_profile"):
                    name = getattr(a, col, None)
                    if name is not None and name not in p.columns:
                        raise CaseError(f"profile column '{name}' is missing from profiles.csv", file=file, row=row,
                                        column=col, key=k)
                    if name is not None and col in ("avail_profile", "baseline_profile") and (p[name] < 0).any():
                        h = int(np.flatnonzero(p[name].to_numpy() < 0)[0])
                        raise CaseError(f"negative value {p[name].iloc[h]} in profile '{name}'", file=F_PROFILES,
                                        row=h + 1, column=name)
            for i, a in enumerate(table, start=1):
                if isinstance(a, Load) and a.baseline_profile is not None and math.isnan(a.band_min):
                    raise CaseError("a load with a baseline profile needs band_min and band_max", file=file,
                                    row=a.row or i, column="band_min", key=f"{id_col}={a.id}")

    def _check_location(self, a: Unit | Load, file: str, row: int, key: str) -> None:
        if a.grid == TRANSMISSION:
            if self.transmission is None:
                raise CaseError("asset on the transmission grid but the case has none", file=file, row=row,
                                column="grid", key=key)
            if a.node not in self.transmission.bus_index:
                raise CaseError(f"unknown transmission bus '{a.node}'", file=file, row=row, column="node", key=key)
            return
        if a.grid not in self.feeders:
            raise CaseError(f"unknown grid '{a.grid}' (feeders: {', '.join(self.feeders) or 'none'})", file=file,
                            row=row, column="grid", key=key)
        f = self.feeders[a.grid]
        try:
            node = f.node(a.node)
        except KeyError:
            raise CaseError(f"unknown node '{a.node}' in feeder {f.id}", file=file, row=row, column="node",
                            key=key) from None
        missing = [ph for ph in a.phases if ph not in node.phases]
        if missing:
            raise CaseError(f"phase(s) {''.join(missing)} not present at node {a.node} (phases {node.phases})",
                            file=file, row=row, column="phases", key=key)

    # ------------------------------------------------------------------- queries
    @property
    def horizon(self) -> int:
        return len(self.profiles)

    @property
    def meters(self) -> Mapping[str, MeterLocation]:
        """meter id -> location for every unit and load. Network-operator data."""
        return ReadOnlyDict({a.id: MeterLocation(a.grid, a.node, a.phases) for a in (*self.units, *self.loads)})

    def owner(self, owner_id: str) -> Owner:
        for o in self.owners:
            if o.id == owner_id:
                return o
        raise KeyError(owner_id)

    def owners_with_role(self, role: str) -> list[Owner]:
        return [o for o in self.owners if o.role == role]

    def units_of(self, owner_id: str) -> list[Unit]:
        return [u for u in self.units if u.owner == owner_id]

    def loads_of(self, owner_id: str) -> list[Load]:
        return [d for d in self.loads if d.owner == owner_id]

    def profile(self, column: str) -> np.ndarray:
        return self.profiles[column].to_numpy(dtype=float)

    def param(self, key: str, default: object = None) -> object:
        return self.parameters.get(key, default)

    def replace(self, **changes: object) -> "Case":
        """A new validated case with some fields replaced (the case itself is immutable)."""
        kw = dict(transmission=self.transmission, feeders=tuple(self.feeders.values()), owners=self.owners,
                  units=self.units, loads=self.loads, profiles=self.profiles, parameters=dict(self.parameters),
                  power_unit=self.power_unit, description=self.description)
        name = changes.pop("name", self.name)
        kw.update(changes)
        return Case(str(name), **kw)  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Case):
            return NotImplemented
        return (self.name == other.name and self.power_unit == other.power_unit
                and self.transmission == other.transmission and dict(self.feeders) == dict(other.feeders)
                and self.owners == other.owners and self.units == other.units and self.loads == other.loads
                and dict(self.parameters) == dict(other.parameters)
                and self.profiles.shape == other.profiles.shape
                and list(self.profiles.columns) == list(other.profiles.columns)
                and np.array_equal(self.profiles.to_numpy(dtype=float), other.profiles.to_numpy(dtype=float))
                and self.description == other.description)

    __hash__ = None  # type: ignore[assignment]

    def summary(self) -> dict[str, object]:
        """Counts and totals for ``run.py inspect``."""
        out: dict[str, object] = {"case": self.name, "power unit": self.power_unit, "horizon": self.horizon}
        if self.transmission is not None:
            out["transmission buses"] = self.transmission.n_buses
            out["transmission lines"] = self.transmission.n_lines
        out["feeders"] = len(self.feeders)
        out["feeder nodes"] = sum(f.n_nodes for f in self.feeders.values())
        out["feeder lines"] = sum(f.n_lines for f in self.feeders.values())
        for role in ROLES:
            n = len(self.owners_with_role(role))
            if n:
                out[f"owners: {role}"] = n
        out["units"] = len(self.units)
        out["loads"] = len(self.loads)
        out[f"unit capacity ({self.power_unit})"] = round(sum(u.p_max for u in self.units if u.kind != "main_grid"), 3)
        out[f"load peak ({self.power_unit})"] = round(sum(d.p_max for d in self.loads), 3)
        return out

    def __repr__(self) -> str:
        return (f"Case({self.name!r}, transmission={self.transmission!r}, feeders={list(self.feeders)}, "
                f"{len(self.units)} units, {len(self.loads)} loads)")
