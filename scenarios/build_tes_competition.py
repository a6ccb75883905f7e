"""Build the ``tes_competition`` cases: ``tes_feeder`` with its DER units split among several DER managers.

    python3 -m scenarios.build_tes_competition          # writes scenarios/data/tes_competition (3 managers)
                                                        # and scenarios/data/tes_competition5 (5 managers)

The total supply is that of ``tes_feeder`` (gas G1 125 kW at 0.075 $/kWh, gas G2 100 kW at 0.05 $/kWh,
wind WT 80 kW and PV 60 kW at 0 $/kWh), only its ownership changes, so that studies with 1, 2, 3
and 5 managers compare the same market with more or fewer competitors:

- 1 manager: ``tes_feeder`` itself (DERM owns every unit);
- 2 managers: DER1 owns G1 and PV, DER2 owns G2 and WT;
- 3 managers: DER1 owns G1, DER2 owns G2, DER3 owns WT and PV;
- 5 managers: G1 and G2 are each split in two units of half the rating at the same node
  (G1a/G1b 62.5 kW, G2a/G2b 50 kW), one per manager DER1-DER4; DER5 owns WT and PV.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

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


if __name__ == "__main__":
    main()
