"""``python3 run.py make-case``: a case at scale from a transmission grid and copies of feeders.

Two kinds (``--protocol``):

- ``tso-dso``: a transmission grid (``--transmission``: a pandapower name such as ``case118``, a
  MATPOWER ``.m`` file, or a case folder / built-in case with a transmission grid) and ``--feeders
  N`` copies of feeders (``--feeder CASE[:FEEDER]``, repeatable, used in turn; default the five
  feeders of ``tso24_dso5``), each attached at a PCC bus (``--pcc-buses``, or spread out over the
  grid: farthest-first by hops from the reference bus, seeded). Feeder copy k is feeder ``F<k>``
  with owners ``DSO<k>`` (dso), ``DERM<k>`` (its units) and ``LA<k>`` (its loads), all of area k;
  its head node is named after its PCC bus (as in ``tso24_dso5``). Each copy's loads, units and
  line ratings are scaled by ``share x (transmission load) / N / (feeder load) x U(1 - spread, 1 +
  spread)`` (seeded), so that the feeders together carry about ``--feeder-share`` of the
  transmission grid's load. The prices and parameters are filled in as in ``tso24_dso5``:
  transmission units keep their merit order (by the imported linear cost) with day-ahead offers
  spread over 16.93-22.52 $/MWh, regulation prices and demand bids drawn from the ranges of
  ``tso24_dso5`` (``OFFER_RANGES``); feeder resources keep the source feeder's prices, and a price the
  source does not give (an imported feeder) is drawn from the ranges of ``tso24_dso5``'s feeders. ``--wind-farms``
  wind farms (kind ``wind``, ``p_max`` 0: the scenario generator gives their output from
  ``mean_share``, summing to 1) go on random transmission buses and feeder nodes (the source
  feeders' own wind farms are left out), with random
  coordinates (km/100 as in the source) and the wind parameters of ``tso24_dso5``.
- ``tes``: ``--feeders N`` copies of a ``tes`` feeder case (``--feeder``, default ``tes_feeder``),
  feeders ``LV<k>`` with owners ``TESO<k>`` (dso), ``LA<k>``, ``DERM<k>`` (area k; with several DER managers
  in the source, e.g. ``tes_competition``, ``<manager>_LV<k>``) and one shared
  main grid ``MG`` that owns one supply point ``MG_LV<k>`` per feeder at the same LMP profile.
  Each copy's customer baselines and peaks are scaled by ``U(1 - spread, 1 + spread)`` and its DER
  ratings and availability by another such factor (seeded); feeders are independent.

The folder is written with :func:`network.io.write_case`, read back with the project's loader
(and checked by the protocol's own case check), and gets a README.md of what was done.
"""
from __future__ import annotations

import argparse
import dataclasses
from collections import deque
from pathlib import Path

import numpy as np
import pandas as pd

from network.errors import CaseError
from network.io import read_case, write_case
from network.model import TRANSMISSION, Case, Feeder, Owner, Unit

#: tso24_dso5's price ranges ($/MWh): (low, high) for each column drawn at random
OFFER_RANGES = {"t_unit": {"offer_da": (16.93, 22.52), "offer_up": (10.1, 20.8), "offer_down": (4.7, 22.9)},
                "t_load": {"bid_da": (18.0, 19.9), "bid_up": (8.0, 21.0), "bid_down": (5.0, 8.0)},
                "wind": {"offer_da": (0.0, 0.0), "offer_up": (2.1, 5.1), "offer_down": (115.4, 119.5)},
                # its feeders' generators and demands: for feeder resources that come without prices (an
                # imported feeder: pandapower, OpenDSS)
                "f_unit": {"offer_da": (20.1, 23.9), "offer_up": (1.0, 3.1), "offer_down": (0.6, 1.7)},
                "f_load": {"bid_da": (20.0, 23.0), "bid_up": (20.0, 29.0), "bid_down": (1.0, 8.0)}}
#: tso24_dso5's case-wide parameters (VOLL $/MWh, wind-scenario parameters)
TSO_DSO_PARAMETERS = {"horizon": 1, "voll": 10000.0, "voll_da": 10000.0, "voll_rt": 10000.0, "wind_price_da": 0.0,
                      "wind_sd_fraction": 0.1, "wind_corr_kappa": 1.0, "wind_corr_a": 1.1, "wind_corr_b": 0.1,
                      "energy_price_unit": "$/MWh"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--protocol", choices=("tso-dso", "tes"), default="tso-dso")
    p.add_argument("--transmission", default="case118",
                   help="tso-dso: pandapower name, MATPOWER .m file or case folder (default case118)")
    p.add_argument("--feeders", type=int, default=20, help="number of feeder copies (default 20)")
    p.add_argument("--feeder", action="append", default=None,
                   help="CASE[:FEEDER] to copy (repeatable, used in turn); default: tso24_dso5's feeders "
                        "(tso-dso) or tes_feeder (tes)")
    p.add_argument("--pcc-buses", default=None, help="tso-dso: comma-separated PCC buses (default: spread out)")
    p.add_argument("--feeder-share", type=float, default=0.3,
                   help="tso-dso: the feeders' total load as a share of the transmission load (default 0.3)")
    p.add_argument("--spread", type=float, default=0.2, help="random scaling in [1 - spread, 1 + spread]")
    p.add_argument("--wind-farms", type=int, default=6, help="tso-dso: number of wind farms (default 6)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default=None, help="the case name (default: the folder's name)")
    p.add_argument("--out", required=True, help="the case folder to write (replaced if it exists)")


# ------------------------------------------------------------------ helpers


def _load_any(spec: str) -> Case:
    from scenarios.import_case import import_source
    from scenarios.registry import case_folder, case_names

    if spec in case_names() or Path(spec).is_dir() or Path(spec).name == "case.json":
        return read_case(case_folder(spec))
    return import_source(spec)[0]


def _feeder_spec(spec: str) -> tuple[Case, Feeder]:
    name, _, fid = spec.partition(":")
    case = _load_any(name)
    if not case.feeders:
        raise CaseError(f"{name} has no feeder", file=spec)
    if fid and fid not in case.feeders:
        raise CaseError(f"{name} has no feeder {fid!r} (it has {', '.join(case.feeders)})", file=spec)
    return case, case.feeders[fid or next(iter(case.feeders))]


def spread_buses(case: Case, n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct buses spread over the grid: farthest-first by hops (ties at random), from the reference."""
    t = case.transmission
    adj: dict[str, set[str]] = {b.id: set() for b in t.buses}
    for ln in t.lines:
        adj[ln.from_bus].add(ln.to_bus)
        adj[ln.to_bus].add(ln.from_bus)
    if n > len(adj):
        raise CaseError(f"{n} feeders need {n} distinct PCC buses; the grid has {len(adj)}", file="--feeders")
    dist = {b: np.inf for b in adj}
    chosen: list[str] = []
    nxt = t.ref_bus
    while len(chosen) < n:
        chosen.append(nxt)
        q = deque([(nxt, 0)])
        seen = {nxt}
        while q:
            b, d = q.popleft()
            dist[b] = min(dist[b], d)
            for c in adj[b]:
                if c not in seen:
                    seen.add(c)
                    q.append((c, d + 1))
        far = max(dist[b] for b in adj if b not in chosen) if len(chosen) < len(adj) else 0
        cands = sorted(b for b in adj if b not in chosen and dist[b] == far)
        nxt = cands[int(rng.integers(len(cands)))] if cands else nxt
    return chosen


def _copy_feeder(f: Feeder, fid: str, head: str, rating_scale: float, pcc: str | None,
                 prefix: str = "", import_scale: float | None = None) -> tuple[Feeder, dict]:
    """Feeder ``f`` as ``fid`` with its head renamed ``head`` and the other nodes ``prefix + id``;
    (feeder, old node -> new node). Line ratings (pu of the feeder's own base) are scaled by
    ``rating_scale``, the head's import limits (in the case's power unit) by ``import_scale``
    (default ``rating_scale``: a different power unit changes the latter only)."""
    ren = {n.id: (head if n.parent is None else f"{prefix}{n.id}") for n in f.nodes}
    nodes = [dataclasses.replace(n, id=ren[n.id], parent=None if n.parent is None else ren[n.parent], row=None)
             for n in f.nodes]
    lines = []
    for ln in f.lines:
        new_id = f"L{ren[ln.from_node]}-{ren[ln.to_node]}" if ln.from_node == f.head and head != f.head \
            else f"{prefix}{ln.id}"
        lines.append(dataclasses.replace(ln, id=new_id, from_node=ren[ln.from_node], to_node=ren[ln.to_node],
                                         s_max=ln.s_max * rating_scale, p_max=ln.p_max * rating_scale,
                                         q_max=ln.q_max * rating_scale, row=None))
    k = rating_scale if import_scale is None else import_scale
    imp = [v * k if np.isfinite(v) else v for v in (f.import_min, f.import_max)]
    return Feeder(fid, nodes, lines, n_phases=f.n_phases, v_head=f.v_head, s_base_kva=f.s_base_kva,
                  v_base_kv=f.v_base_kv, import_min=imp[0], import_max=imp[1], pcc_bus=pcc), ren


def _draw(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return round(float(rng.uniform(*lo_hi)), 2)


def _missing_prices(asset: object, ranges: str, rng: np.random.Generator) -> dict[str, float]:
    """The prices ``asset`` does not have (NaN), drawn from ``OFFER_RANGES[ranges]``; none drawn (and the
    seeded stream unchanged) when it has them all, as the built-in feeders do."""
    return {col: _draw(rng, lo_hi) for col, lo_hi in OFFER_RANGES[ranges].items()
            if np.isnan(getattr(asset, col))}


# ------------------------------------------------------------------ tso-dso


def make_tso_dso(transmission: Case, feeders: list[tuple[Case, Feeder]], n: int, *, seed: int = 0,
                 pcc_buses: list[str] | None = None, share: float = 0.3, spread: float = 0.2, wind_farms: int = 6,
                 name: str = "made") -> tuple[Case, list[str]]:
    """(the case, the README's lines)."""
    if transmission.transmission is None:
        raise CaseError(f"{transmission.name} has no transmission grid", file="--transmission")
    rng = np.random.default_rng(seed)
    t = transmission.transmission
    buses = {b.id for b in t.buses}
    if pcc_buses is None:
        pcc_buses = spread_buses(transmission, n, rng)
    elif len(pcc_buses) != n or not set(pcc_buses) <= buses:
        bad = [b for b in pcc_buses if b not in buses]
        raise CaseError(f"--pcc-buses needs {n} buses of the grid; " + (f"unknown {bad}" if bad else
                        f"got {len(pcc_buses)}"), file="--pcc-buses")
    t_units = [u for u in transmission.units if u.grid == TRANSMISSION]
    t_loads = [d for d in transmission.loads if d.grid == TRANSMISSION]
    t_load = sum(d.p_max for d in t_loads)
    owners = [Owner("TSO", "tso", 0), Owner("GENCO", "der_manager", 0), Owner("RETAIL", "load_aggregator", 0)]
    units, loads = [], []
    # transmission units: merit order kept (by imported cost), prices in tso24_dso5's ranges
    costs = [u.cost if np.isfinite(u.cost) else 0.0 for u in t_units]
    rank = np.argsort(np.argsort(costs, kind="stable"), kind="stable")
    lo, hi = OFFER_RANGES["t_unit"]["offer_da"]
    for k, u in enumerate(t_units):
        da = lo + (hi - lo) * (rank[k] / max(1, len(t_units) - 1))
        units.append(dataclasses.replace(u, owner="GENCO", kind="thermal", offer_da=round(float(da), 2),
                                         offer_up=_draw(rng, OFFER_RANGES["t_unit"]["offer_up"]),
                                         offer_down=_draw(rng, OFFER_RANGES["t_unit"]["offer_down"]), row=None))
    for d in t_loads:
        r = OFFER_RANGES["t_load"]
        loads.append(dataclasses.replace(d, owner="RETAIL", bid_da=_draw(rng, r["bid_da"]),
                                         bid_up=_draw(rng, r["bid_up"]), bid_down=_draw(rng, r["bid_down"]),
                                         q_min=0.0, q_max=3.0, tan_phi=float("nan"), row=None))
    new_feeders, readme = [], []
    for k in range(1, n + 1):
        src_case, src = feeders[(k - 1) % len(feeders)]
        fid, pcc = f"F{k}", pcc_buses[k - 1]
        src_load = sum(d.p_max for d in src_case.loads if d.grid == src.id)
        if src_load <= 0:
            raise CaseError(f"feeder {src.id} of {src_case.name} has no load to scale", file="--feeder")
        to_mw = 1.0 if src_case.power_unit == "MW" else 1e-3
        factor = share * t_load / n / (src_load * to_mw) * float(rng.uniform(1 - spread, 1 + spread))
        # a rating in pu of the feeder's base scales with the power (same base; a kW source's loads in MW are
        # the same pu), the import limits (power unit) with the power in MW
        feeder, ren = _copy_feeder(src, fid, pcc, factor, pcc, prefix=f"{fid}_", import_scale=factor * to_mw)
        new_feeders.append(feeder)
        owners += [Owner(f"DSO{k}", "dso", k), Owner(f"DERM{k}", "der_manager", k), Owner(f"LA{k}", "load_aggregator", k)]
        # the source feeder's wind farms are left out: --wind-farms places the case's farms
        for u in (u for u in src_case.units if u.grid == src.id and u.kind not in ("main_grid", "wind")):
            units.append(dataclasses.replace(u, id=f"{u.id}_{fid}", owner=f"DERM{k}", grid=fid, node=ren[u.node],
                                             p_min=u.p_min * factor * to_mw, p_max=u.p_max * factor * to_mw,
                                             q_min=u.q_min * factor * to_mw, q_max=u.q_max * factor * to_mw,
                                             **_missing_prices(u, "f_unit", rng), row=None))
        for d in (d for d in src_case.loads if d.grid == src.id):
            loads.append(dataclasses.replace(d, id=f"{d.id}_{fid}", owner=f"LA{k}", grid=fid, node=ren[d.node],
                                             p_max=d.p_max * factor * to_mw, q_min=d.q_min * factor * to_mw,
                                             q_max=d.q_max * factor * to_mw, **_missing_prices(d, "f_load", rng),
                                             row=None))
        readme.append(f"- {fid}: copy of {src_case.name}:{src.id} at PCC bus {pcc}, scaled x{factor * to_mw:.4g}")
    # wind farms, on transmission buses and feeder nodes, mean shares summing to 1
    shares = rng.dirichlet(np.ones(wind_farms)) if wind_farms else []
    for w in range(wind_farms):
        if rng.random() < 0.5 or not new_feeders:
            grid, node, owner, ph = TRANSMISSION, str(rng.choice(sorted(buses))), "GENCO", "abc"
        else:
            k = int(rng.integers(len(new_feeders)))
            f = new_feeders[k]
            grid, owner, ph = f.id, f"DERM{k + 1}", f.phase_frame
            node = str(rng.choice([nd.id for nd in f.nodes if nd.parent is not None]))
        r = OFFER_RANGES["wind"]
        units.append(Unit(f"W{w + 1}", "wind", owner, grid, node, ph, p_min=0.0, p_max=0.0, q_min=0.0, q_max=0.0,
                          offer_da=0.0, offer_up=_draw(rng, r["offer_up"]), offer_down=_draw(rng, r["offer_down"]),
                          x=round(float(rng.uniform(0, 4)), 2), y=round(float(rng.uniform(0, 4)), 2),
                          mean_share=round(float(shares[w]), 6)))
    total = sum(u.mean_share for u in units if u.kind == "wind")
    if wind_farms:  # rounding: the last farm takes the remainder so the shares sum to 1
        last = next(i for i in range(len(units) - 1, -1, -1) if units[i].kind == "wind")
        units[last] = dataclasses.replace(units[last], mean_share=round(units[last].mean_share + 1 - total, 6))
    case = Case(name, transmission=t, feeders=new_feeders, owners=owners, units=units, loads=loads,
                parameters=dict(TSO_DSO_PARAMETERS), power_unit="MW",
                description=f"{transmission.name} with {n} distribution feeders (make-case, seed {seed})")
    return case, readme


# ------------------------------------------------------------------ tes


def make_tes(base: Case, n: int, *, seed: int = 0, spread: float = 0.2, name: str = "made") -> tuple[Case, list[str]]:
    """``n`` copies of the single-feeder tes case ``base``, each with its own TESO, LA and DER manager."""
    if len(base.feeders) != 1:
        raise CaseError(f"{base.name}: a tes feeder case has one feeder", file="--feeder")
    rng = np.random.default_rng(seed)
    (src,) = base.feeders.values()
    mg_owner = base.owners_with_role("main_grid")[0].id
    (mg_unit,) = base.units_of(mg_owner)
    prof = {c: base.profiles[c].to_numpy() for c in base.profiles.columns}
    shared = {u.price_profile for u in base.units if u.price_profile}
    for key in ("lmp_profile", "der_price_max_profile"):
        if isinstance(base.param(key), str):
            shared.add(str(base.param(key)))
    new_prof = {c: v for c, v in prof.items() if c in shared}
    owners = [Owner("MG", "main_grid")]
    src_ders = base.owners_with_role("der_manager")
    feeders, units, loads, readme = [], [], [], []
    for k in range(1, n + 1):
        fid = f"LV{k}"
        f_load, f_der = (float(rng.uniform(1 - spread, 1 + spread)) for _ in range(2))
        feeder, ren = _copy_feeder(src, fid, src.head, 1.0, None)
        feeders.append(feeder)
        derm = {o.id: (f"DERM{k}" if len(src_ders) == 1 else f"{o.id}_{fid}") for o in src_ders}
        owners += [Owner(f"TESO{k}", "dso", k), Owner(f"LA{k}", "load_aggregator", k),
                   *(Owner(m, "der_manager", k) for m in derm.values())]
        units.append(dataclasses.replace(mg_unit, id=f"MG_{fid}", owner="MG", grid=fid, row=None))
        for u in (u for u in base.units if u.kind != "main_grid"):
            av = None
            if u.avail_profile:
                av = f"{u.avail_profile}_{fid}"
                new_prof[av] = prof[u.avail_profile] * f_der
            units.append(dataclasses.replace(u, id=f"{u.id}_{fid}", owner=derm[u.owner], grid=fid, p_max=u.p_max * f_der,
                                             avail_profile=av, row=None))
        for d in base.loads:
            bl, al = f"{d.baseline_profile}_{fid}", f"{d.alpha_profile}_{fid}"
            new_prof[bl] = prof[d.baseline_profile] * f_load
            new_prof[al] = prof[d.alpha_profile]
            loads.append(dataclasses.replace(d, id=f"{d.id}_{fid}", owner=f"LA{k}", grid=fid, p_max=d.p_max * f_load,
                                             baseline_profile=bl, alpha_profile=al, row=None))
        readme.append(f"- {fid}: copy of {base.name}:{src.id}; loads x{f_load:.4f}, DERs x{f_der:.4f}")
    profiles = pd.DataFrame(new_prof, index=base.profiles.index)
    case = Case(name, feeders=feeders, owners=owners, units=units, loads=loads, profiles=profiles,
                parameters=dict(base.parameters), power_unit=base.power_unit,
                description=f"{n} copies of the tes feeder {base.name} (make-case, seed {seed})")
    return case, readme


# ------------------------------------------------------------------ command


def _readme(case: Case, args: argparse.Namespace, lines: list[str]) -> str:
    s = case.summary()
    src = (f"transmission grid `{args.transmission}`, " if args.protocol == "tso-dso" else "") + \
        f"feeders {', '.join(args.feeder or ['(default)'])}"
    out = [f"# {case.name}", "", f"{case.description}.", "",
           f"Made by `python3 run.py make-case --protocol {args.protocol} --feeders {args.feeders} --seed {args.seed}` "
           f"from {src} (scenarios/make_case.py; its docstring gives every rule).", "", "## Counts", ""]
    out += [f"- {k}: {v}" for k, v in s.items()]
    out += ["", "## Feeders", "", *lines, ""]
    if args.protocol == "tso-dso":
        out += ["## Units and signs", "",
                "As `tso24_dso5`: powers in MW and Mvar; prices in $/MWh (`offer_da`, `offer_up`/`offer_down`: "
                "real-time up/down regulation on top of the day-ahead price; demands `bid_da`, `bid_up`, "
                "`bid_down`); feeder lines' ratings and impedances in pu of each feeder's own base (kept from the "
                "source feeder, ratings scaled with its loads); the head node of each feeder is its PCC bus. Wind "
                "farms have `p_max` 0: their output comes from the scenario generator (mean f x `mean_share` x "
                "total demand). Signs: output positive injection, demand positive consumption, feeder flows "
                "positive from the PCC into the feeder.", ""]
    else:
        out += ["## Units and signs", "",
                f"As the source feeder: powers in {case.power_unit}, prices in $/kWh; the main grid `MG` sells at "
                "the same LMP profile at every feeder head (one supply point `MG_<feeder>` each). Profiles of each "
                "copy are the source's columns with the feeder id appended.", ""]
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    if args.feeders < 1:
        raise CaseError(f"--feeders must be at least 1, got {args.feeders}", file="--feeders")
    if not (0 <= args.spread < 1):
        raise CaseError(f"--spread must be in [0, 1), got {args.spread}", file="--spread")
    name = args.name or Path(args.out).name
    if args.protocol == "tso-dso":
        t = _load_any(args.transmission)
        specs = args.feeder or [f"tso24_dso5:F{i}" for i in range(1, 6)]
        pcc = args.pcc_buses.split(",") if args.pcc_buses else None
        case, lines = make_tso_dso(t, [_feeder_spec(s) for s in specs], args.feeders, seed=args.seed,
                                   pcc_buses=pcc, share=args.feeder_share, spread=args.spread,
                                   wind_farms=args.wind_farms, name=name)
    else:
        base = _load_any((args.feeder or ["tes_feeder"])[0])
        case, lines = make_tes(base, args.feeders, seed=args.seed, spread=args.spread, name=name)
    folder = write_case(case, args.out)
    (folder / "README.md").write_text(_readme(case, args, lines), encoding="utf-8")
    back = read_case(folder)
    if args.protocol == "tso-dso":
        from coordinator.tso_dso.setup import Roles

        from scenarios.tso_dso.wind import WindModel

        Roles.of(back)
        if args.wind_farms:
            WindModel.from_case(back)  # the wind farms' data (positions, shares) as the scenario generator needs
    else:
        from coordinator.tes.setup import check_case

        check_case(back)
    print(f"wrote {folder}: " + ", ".join(f"{k} {v}" for k, v in back.summary().items() if k != "name"))
    return 0
