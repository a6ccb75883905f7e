"""Convert the reference data (``../shared/data``) into the project's case folders.

Run by hand, once, when the reference data change::

    python -m scenarios.convert_reference ../shared/data scenarios/data

Nothing at run time reads ``../shared``: the converted folders in
``scenarios/data/`` are the built-in cases. Every number of the source is kept
(per-unit impedances, limits, prices, profiles); the source files that the
project schema does not need (line codes in ohm/km, ohm matrices) are copied
into ``<case>/source/`` for provenance.
"""
from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from network.io import write_case
from network.model import (PHASES, TRANSMISSION, Bus, Case, DCLine, Feeder, FeederLine, FeederNode, Load, Owner,
                           TransmissionGrid, Unit)


def _s(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def convert_tes_feeder(src: Path) -> Case:
    nodes_df = pd.read_csv(src / "nodes.csv")
    lines_df = pd.read_csv(src / "lines.csv")
    ders = pd.read_csv(src / "ders.csv")
    cust = pd.read_csv(src / "customers.csv")
    prof = pd.read_csv(src / "profiles.csv")
    system = pd.read_csv(src / "system.csv").set_index("key")["value"]
    trafo = pd.read_csv(src / "transformer.csv").iloc[0]
    fid = "LV1"
    slack = _s(system["slack_node"])
    nodes = []
    for r in nodes_df.itertuples():
        if r.role == "MG":
            continue  # node 1 is the MG side of T1, not part of the LV model
        parent = None if _s(r.node) == slack else _s(int(r.parent_node))
        nodes.append(FeederNode(_s(r.node), r.phases, parent, float(r.v_min_pu), float(r.v_max_pu)))
    lines = []
    for r in lines_df.to_dict("records"):
        rm = np.array([[r[f"r_{p}{q}_pu"] for q in PHASES] for p in PHASES], dtype=float)
        xm = np.array([[r[f"x_{p}{q}_pu"] for q in PHASES] for p in PHASES], dtype=float)
        lines.append(FeederLine(r["line_id"], _s(r["from_node"]), _s(r["to_node"]), r["phases"], rm, xm,
                                p_max=float(r["p_limit_pu"]), q_max=float(r["q_limit_pu"]),
                                length_km=float(r["length_km"]), linecode=r["linecode"]))
    feeder = Feeder(fid, nodes, lines, n_phases=3, v_head=float(system["slack_v_pu"]),
                    s_base_kva=float(system["s_base_kva"]), v_base_kv=float(system["v_base_kv"]),
                    import_min=float(trafo["p_import_min_kw"]), import_max=float(trafo["p_import_max_kw"]))
    owners = [Owner("DERM", "der_manager"), Owner("LA", "load_aggregator"), Owner("TESO", "dso"),
              Owner("MG", "main_grid")]
    units = []
    for r in ders.to_dict("records"):
        avail = None if isinstance(r["p_avail_column"], float) else r["p_avail_column"]
        units.append(Unit(r["der_id"], r["type"], "DERM", fid, _s(r["node"]), r["phases"], p_min=float(r["p_min_kw"]),
                          p_max=float(r["p_max_kw"]), cost=float(r["cost_usd_per_kwh"]), avail_profile=avail,
                          power_factor=float(r["power_factor"])))
    # The main grid sells at LMP through T1 at the head node; its capacity is the
    # transformer's (a network limit the TESO enforces; see Feeder.import_max).
    units.append(Unit("MG", "main_grid", "MG", fid, slack, "abc", p_min=0.0, p_max=float(trafo["p_import_max_kw"]),
                      cost=math.nan, price_profile="lmp_usd_per_kwh"))
    loads = []
    for r in cust.to_dict("records"):
        cid = r["customer_id"]
        loads.append(Load(cid, r["type"], "LA", fid, _s(r["node"]), r["phases"], p_max=float(r["p0_peak_kw"]),
                          tan_phi=float(r["tan_phi"]), band_min=float(r["band_min_factor"]),
                          band_max=float(r["band_max_factor"]), beta=float(r["beta_usd_per_kw2h"]),
                          baseline_profile=f"p0_{cid}_kw", alpha_profile=f"alpha_{cid}_usd_per_kwh",
                          power_factor=float(r["power_factor"])))
    profiles = prof.drop(columns=["hour"]).astype(float)
    params = {
        "horizon": int(system["horizon_h"]),
        "dt_h": float(system["dt_h"]),
        "frequency_hz": float(system["frequency_hz"]),
        "earth_resistivity_ohm_m": float(system["earth_resistivity_ohm_m"]),
        "retail_price_min": float(system["retail_price_min_usd_per_kwh"]),
        "retail_price_max": float(system["retail_price_max_usd_per_kwh"]),
        "retail_price_sum_cap": float(system["retail_price_sum_cap_usd_per_kwh"]),
        "retail_price_mid": float(system["retail_price_mid_usd_per_kwh"]),
        "der_price_min": float(system["der_price_min_usd_per_kwh"]),
        "der_price_cap_floor": float(system["der_price_cap_floor_usd_per_kwh"]),
        "lmp_profile": "lmp_usd_per_kwh",
        "der_price_max_profile": "der_price_max_usd_per_kwh",
        "import_max_alt": float(trafo["p_import_max_alt_kw"]),
        "transformer_id": str(trafo["trafo_id"]),
        "transformer_tap": int(trafo["tap_position"]),
        "energy_price_unit": "$/kWh",
    }
    return Case("tes_feeder", feeders=[feeder], owners=owners, units=units, loads=loads, profiles=profiles,
                parameters=params, power_unit="kW",
                description="13-node three-phase unbalanced LV feeder (220/380 V) with a DER manager, a load "
                            "aggregator of 9 customers, and 24-h profiles (seed 000 TES case)")


def convert_tso24_dso5(src: Path) -> Case:
    buses_df = pd.read_csv(src / "buses.csv")
    br = pd.read_csv(src / "branches.csv")
    gens = pd.read_csv(src / "generators.csv")
    dems = pd.read_csv(src / "demands.csv")
    wind = pd.read_csv(src / "wind_farms.csv")
    tbuses = [Bus(_s(r.bus), int(r.area), float(r.v_min_pu), float(r.v_max_pu)) for r in buses_df.itertuples()
              if r.area == 0]
    tlines = [DCLine(f"T{_s(r.from_bus)}-{_s(r.to_bus)}", _s(r.from_bus), _s(r.to_bus), float(r.x_pu),
                     float(r.s_max_mw), r=float(r.r_pu)) for r in br.itertuples() if r.kind == "transmission"]
    grid = TransmissionGrid(tbuses, tlines, base_mva=1.0, ref_bus="1")
    area_of = {_s(r.bus): int(r.area) for r in buses_df.itertuples()}
    vlim = {_s(r.bus): (float(r.v_min_pu), float(r.v_max_pu)) for r in buses_df.itertuples()}
    feeders = []
    for pcc in br[br.kind == "pcc"].itertuples():
        tbus, root = _s(pcc.from_bus), _s(pcc.to_bus)
        area = area_of[root]
        fid = f"F{area}"
        # The feeder's head node is the PCC terminal on the transmission side (named
        # after the transmission bus); the PCC line joins it to the feeder's root.
        nodes = [FeederNode(tbus, "a", None, *vlim[tbus])]
        lines = [FeederLine(f"L{tbus}-{root}", tbus, root, "a", [[pcc.r_pu]], [[pcc.x_pu]], s_max=float(pcc.s_max_mw))]
        members = [b for b, a in area_of.items() if a == area]
        parent_of = {}
        for r in br[br.kind == "distribution"].itertuples():
            f, t = _s(r.from_bus), _s(r.to_bus)
            if f in members:
                parent_of[t] = f
                lines.append(FeederLine(f"L{f}-{t}", f, t, "a", [[r.r_pu]], [[r.x_pu]], s_max=float(r.s_max_mw)))
        for b in members:
            nodes.append(FeederNode(b, "a", parent_of.get(b, tbus), *vlim[b]))
        feeders.append(Feeder(fid, nodes, lines, n_phases=1, v_head=1.0, s_base_kva=1000.0, v_base_kv=1.0,
                              pcc_bus=tbus))
    feeder_of_bus = {n.id: f.id for f in feeders for n in f.nodes if n.parent is not None}

    def where(bus: object) -> tuple[str, str, str]:
        b = _s(bus)
        if b in feeder_of_bus:
            return feeder_of_bus[b], b, "a"
        return TRANSMISSION, b, "abc"

    owners = [Owner("TSO", "tso", 0)]
    owners += [Owner(f"DSO{a}", "dso", a) for a in range(1, 6)]
    owners += [Owner(f"DERM{a}", "der_manager", a) for a in range(1, 6)]
    owners += [Owner(f"LA{a}", "load_aggregator", a) for a in range(1, 6)]
    owners += [Owner("GENCO", "der_manager", 0), Owner("RETAIL", "load_aggregator", 0)]
    units = []
    for r in gens.to_dict("records"):
        g, n, ph = where(r["bus"])
        a = int(r["owner_area"])
        units.append(Unit(r["id"], "thermal", f"DERM{a}" if a else "GENCO", g, n, ph, p_min=float(r["p_min_mw"]),
                          p_max=float(r["p_max_mw"]), q_min=float(r["q_min_mvar"]), q_max=float(r["q_max_mvar"]),
                          offer_da=float(r["offer_da"]), offer_up=float(r["offer_up"]),
                          offer_down=float(r["offer_down"])))
    for r in wind.to_dict("records"):
        g, n, ph = where(r["bus"])
        a = int(r["owner_area"])
        units.append(Unit(r["id"], "wind", f"DERM{a}" if a else "GENCO", g, n, ph, p_min=0.0, p_max=0.0,
                          offer_da=float(r["offer_da"]), offer_up=float(r["offer_up"]),
                          offer_down=float(r["offer_down"]), x=float(r["x"]), y=float(r["y"]),
                          mean_share=float(r["mean_share"])))
    loads = []
    for r in dems.to_dict("records"):
        g, n, ph = where(r["bus"])
        a = int(r["owner_area"])
        loads.append(Load(r["id"], "demand", f"LA{a}" if a else "RETAIL", g, n, ph, p_max=float(r["p_max_mw"]),
                          q_min=float(r["q_min_mvar"]), q_max=float(r["q_max_mvar"]), bid_da=float(r["bid_da"]),
                          bid_up=float(r["bid_up"]), bid_down=float(r["bid_down"])))
    params = {
        "horizon": 1,
        "voll": 10000.0,
        "voll_da": 10000.0,
        "voll_rt": 10000.0,
        "wind_price_da": 0.0,
        "wind_sd_fraction": 0.1,
        "wind_corr_kappa": 1.0,
        "wind_corr_a": 1.1,
        "wind_corr_b": 0.1,
        "energy_price_unit": "$/MWh",
    }
    return Case("tso24_dso5", transmission=grid, feeders=feeders, owners=owners, units=units, loads=loads,
                parameters=params, power_unit="MW",
                description="24-bus transmission grid (modified IEEE RTS-96) with five radial distribution feeders, "
                            "19 generators, 27 demands and 7 wind farms (seed 004 case)")


def main(argv: list[str]) -> None:
    src = Path(argv[0]) if argv else Path("../shared/data")
    dst = Path(argv[1]) if len(argv) > 1 else Path(__file__).parent / "data"
    for name, fn in (("tes_feeder", convert_tes_feeder), ("tso24_dso5", convert_tso24_dso5)):
        case = fn(src / name)
        readme = dst / name / "README.md"
        keep = readme.read_text(encoding="utf-8") if readme.exists() else None
        out = write_case(case, dst / name)
        if keep is not None:
            (out / "README.md").write_text(keep, encoding="utf-8")
        (out / "source").mkdir(exist_ok=True)
        for f in sorted((src / name).iterdir()):
            shutil.copy(f, out / "source" / f.name)
        print(f"wrote {out}: {case!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
