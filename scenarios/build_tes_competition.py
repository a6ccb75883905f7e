"""Build the ``tes_competition`` and ``tes_oligopoly`` cases: ``tes_feeder`` with its DER units split among
several DER managers.

    python3 -m scenarios.build_tes_competition          # writes scenarios/data/tes_competition (3 managers),
                                                        # tes_competition5 (5), tes_oligopoly1, 2, 3 and 5

**By technology** (``tes_competition``, ``tes_competition5``: :func:`competition_case`):

The total supply is that of ``tes_feeder`` (gas G1 125 kW at 0.075 $/kWh, gas G2 100 kW at 0.05 $/kWh,
wind WT 80 kW and PV 60 kW at 0 $/kWh), only its ownership changes, so that studies with 1, 2, 3
and 5 managers compare the same market with more or fewer competitors:

- 1 manager: ``tes_feeder`` itself (DERM owns every unit);
- 2 managers: DER1 owns G1 and PV, DER2 owns G2 and WT;
- 3 managers: DER1 owns G1, DER2 owns G2, DER3 owns WT and PV;
- 5 managers: G1 and G2 are each split in two units of half the rating at the same node
  (G1a/G1b 62.5 kW, G2a/G2b 50 kW), one per manager DER1-DER4; DER5 owns WT and PV.

In these splits one manager keeps every zero-cost unit (wind and PV) at 3 and 5 managers: adding the gas
owners adds rivals whose offers start at 0.05 $/kWh, so the largest seller's residual demand hardly changes
with the number of managers (README, strategic studies).

**Symmetric, with supply to spare** (``tes_oligopoly<N>``, N = 1, 2, 3, 5: :func:`oligopoly_case`, the
competition experiment of ``bench/compare_competition.py``): ``tes_feeder``'s fleet with every unit's
rating doubled (:data:`FLEET_SCALE`: G1 250 kW, G2 200 kW, WT 160 kW, PV 120 kW, the same costs), every unit
split into N equal parts at its node, one per manager DER1..DERN (``G1_1`` .. ``G1_N``, and so on): N
identical firms each owning 1/N of the same fleet. The parts of a wind or PV unit share one availability
column, the unit's times ``FLEET_SCALE / N`` (``wt_avail_kw_x2_1of<N>``); :func:`split_profiles` turns
``tes_feeder``'s generated days into the split case's, so every N sees the same days.

Why double the fleet: in this pay-as-bid market with a nearly inelastic demand and the main grid at LMP as
the outside option, a seller whose rivals cannot cover the demand below the LMP sells its residual demand at
any price up to the LMP, so its best price is the LMP whatever N. With ``tes_feeder``'s fleet (capacity
offered below the LMP / demand: median 1.11 over 120 generated days) a firm holding 1/N of it is pivotal in
that sense in 100, 95 and 77 % of the hours for N = 2, 3, 5 and competition cannot lower prices; with the
fleet doubled (median 2.2) in 32, 16 and 9 % (``bench/profit_curves.py``' hours table; README): two firms
already compete (Bertrand). ``oligopoly_case(base, n, 1.5)`` (``compare_competition.py --scale 1.5``) leaves
them capacity-constrained (pivotal in 86, 32, 21 %: Bertrand-Edgeworth), where prices fall gradually with N.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from network.elements import Owner
from network.io import write_case
from network.model import Case

DATA = Path(__file__).parent / "data"

#: number of managers -> {manager: [(unit id in tes_feeder, new unit id, share of its rating)]}
SPLITS: dict[int, dict[str, list[tuple[str, str, float]]]] = {
    2: {"DER1": [("G1", "G1", 1.0), ("PV", "PV", 1.0)], "DER2": [("G2", "G2", 1.0), ("WT", "WT", 1.0)]},
    3: {"DER1": [("G1", "G1", 1.0)], "DER2": [("G2", "G2", 1.0)], "DER3": [("WT", "WT", 1.0), ("PV", "PV", 1.0)]},
    5: {"DER1": [("G1", "G1a", 0.5)], "DER2": [("G1", "G1b", 0.5)], "DER3": [("G2", "G2a", 0.5)],
        "DER4": [("G2", "G2b", 0.5)], "DER5": [("WT", "WT", 1.0), ("PV", "PV", 1.0)]},
}


def competition_case(base: Case, n_managers: int) -> Case:
    """``base`` (tes_feeder) with its DER units owned by ``n_managers`` managers (1, 2, 3 or 5)."""
    if n_managers == 1:
        return base
    if n_managers not in SPLITS:
        raise ValueError(f"n_managers must be one of 1, {', '.join(map(str, SPLITS))}")
    (old,) = [o.id for o in base.owners if o.role == "der_manager"]
    by_id = {u.id: u for u in base.units}
    units = [u for u in base.units if u.owner != old]
    for mgr, parts in SPLITS[n_managers].items():
        for src, uid, share in parts:
            u = by_id[src]
            units.append(dataclasses.replace(u, id=uid, owner=mgr, p_max=u.p_max * share, row=None))
    owners = [o for o in base.owners if o.id != old] + [Owner(m, "der_manager") for m in SPLITS[n_managers]]
    return base.replace(name="tes_competition" if n_managers == 3 else f"tes_competition{n_managers}",
                        owners=tuple(owners), units=tuple(units),
                        description=f"tes_feeder with its DER units split among {n_managers} DER managers "
                                    f"(scenarios/build_tes_competition.py)")


#: the symmetric splits built into scenarios/data (tes_oligopoly<N>), and the factor on tes_feeder's ratings
OLIGOPOLY_COUNTS = (1, 2, 3, 5)
FLEET_SCALE = 2.0


def _part_column(col: str, n: int, scale: float) -> str:
    return f"{col}_x{scale:g}_1of{n}"


def oligopoly_case(base: Case, n_managers: int, scale: float = FLEET_SCALE) -> Case:
    """``base`` (tes_feeder) with every DER unit's rating times ``scale`` and split into ``n_managers`` equal
    parts, one per manager DER1..DERN (identical firms, each 1/N of the fleet)."""
    if n_managers < 1 or scale <= 0:
        raise ValueError("n_managers must be >= 1 and scale > 0")
    (old,) = [o.id for o in base.owners if o.role == "der_manager"]
    mgrs = [f"DER{k}" for k in range(1, n_managers + 1)]
    units = [u for u in base.units if u.owner != old]
    prof = split_profiles(base, base.profiles, n_managers, scale)
    for u in base.units_of(old):
        av = _part_column(u.avail_profile, n_managers, scale) if u.avail_profile else None
        units += [dataclasses.replace(u, id=f"{u.id}_{k}", owner=m, p_max=u.p_max * scale / n_managers,
                                      avail_profile=av, row=None) for k, m in enumerate(mgrs, start=1)]
    owners = [o for o in base.owners if o.id != old] + [Owner(m, "der_manager") for m in mgrs]
    return base.replace(name=f"tes_oligopoly{n_managers}", owners=tuple(owners), units=tuple(units),
                        profiles=prof,
                        description=f"tes_feeder's DER fleet with its ratings times {scale:g}, each unit split into "
                                    f"{n_managers} equal parts, one per DER manager: {n_managers} identical "
                                    "firm(s) (scenarios/build_tes_competition.py)")


def split_profiles(base: Case, profiles: pd.DataFrame, n_managers: int, scale: float = FLEET_SCALE) -> pd.DataFrame:
    """``base``'s (tes_feeder's) profiles of a day with the availability columns of :func:`oligopoly_case`'s
    parts added (the unit's times ``scale / N``): the same day for the split case."""
    out = profiles.copy()
    for u in base.units:
        if u.avail_profile and u.kind != "main_grid":
            out[_part_column(u.avail_profile, n_managers, scale)] = (out[u.avail_profile].to_numpy(float)
                                                                     * scale / n_managers)
    return out


def main() -> None:
    from scenarios.registry import load_case

    base = load_case("tes_feeder")
    for n in (3, 5):
        case = competition_case(base, n)
        folder = write_case(case, DATA / case.name)
        (folder / "README.md").write_text(
            f"# {case.name}\n\n{case.description}.\n\nMade by `python3 -m scenarios.build_tes_competition` from "
            "`tes_feeder` with `network.io.write_case`; the total supply and every other table are those of "
            "`tes_feeder`. Ownership:\n\n"
            + "".join(f"- {m}: " + ", ".join(f"{uid} ({src}, {share:g} of its rating)" for src, uid, share in p)
                      + "\n" for m, p in SPLITS[n].items()), encoding="utf-8")
        print(f"wrote {folder}")
    for n in OLIGOPOLY_COUNTS:
        case = oligopoly_case(base, n)
        folder = write_case(case, DATA / case.name)
        x = f"{FLEET_SCALE:g}"
        (folder / "README.md").write_text(
            f"# {case.name}\n\n{case.description}.\n\nMade by `python3 -m scenarios.build_tes_competition` from "
            f"`tes_feeder` with `network.io.write_case`: every DER unit of `tes_feeder` (G1 gas 125 kW at 0.075 "
            f"$/kWh, G2 gas 100 kW at 0.05 $/kWh, WT 80 kW and PV 60 kW at 0 $/kWh) has its rating times {x} and "
            f"is split into {n} equal part(s) at its node, part k owned by DER k (`G1_k`, `G2_k`, `WT_k`, `PV_k`); "
            f"the parts of WT and PV share one availability column, the unit's times {x}/{n} "
            f"(`wt_avail_kw_x{x}_1of{n}`, `pv_avail_kw_x{x}_1of{n}`). Every other table is `tes_feeder`'s; the "
            "managers are identical firms (the competition experiment of `bench/compare_competition.py`; why the "
            "fleet is doubled: `scenarios/build_tes_competition.py`).\n", encoding="utf-8")
        print(f"wrote {folder}")


if __name__ == "__main__":
    main()
