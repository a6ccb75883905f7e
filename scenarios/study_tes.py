"""The ``tes`` study (``protocol = "tes"``): market days in the Mesa shell, market-power metrics.

Plugged into ``python3 run.py study`` by :data:`scenarios.study.PROTOCOLS`.

A study file (TOML)::

    protocol = "tes"                 # picks this module (scenarios.study.PROTOCOLS)
    case = "tes_competition"         # built-in case name or case folder
    days = 30                        # market days (one Mesa step each)
    seed = 0                         # the model's seed; each learner's seed is seed + its index unless given
    exploitability_every = 7         # the analyst's exploitability re-solves every N days (0: never; default 7)
    exploitability_network = false   # the metrics' re-solves keep the network limits (slower; default false)
    days_from = "generator"          # "case": every day is the case's; "generator": days that differ
    profile_seed = 0                 # the day generator's seed (default: seed); same seed, same year
    start_day = 0                    # day of the year of study day 0 (0 = 1 January; 172 ~ midsummer)

    [default]                        # strategy of every DER manager not listed in [agents]
    strategy = "marginal-cost"

    [agents.DER1]                    # one table per DER manager: strategy name and its parameters
    strategy = "roth-erev"
    recency = 0.05

Writes, in a run folder: ``days.parquet`` (per day: protocol figures and the market metrics),
``agents.parquet`` (per day and DER manager: markup, the markup its strategy played ``markup_played``,
Lerner, profit, RSI, exploitability and the analyst's best markup),
``markups.png``, ``metrics.png``; ``--resume`` goes on from the last finished day.
With ``days_from = "generator"`` each day's load, LMP, PV and wind come from
:class:`scenarios.days.DayGenerator`; each agent holds only its own part of the days (its private
data set) and takes a day's on the coordinator's ``NEW_DAY`` command (see
:mod:`coordinator.simulation`); the analyst's metrics use the day's whole case.
"""
from __future__ import annotations

import argparse
import pickle
import time
from pathlib import Path
from typing import Any

import pandas as pd

from network.errors import CaseError

KEYS = {"protocol", "case", "days", "seed", "exploitability_every", "default", "agents", "description", "days_from",
        "profile_seed", "start_day", "exploitability_network"}
DAYS_FROM = ("case", "generator")
EXPLOIT_EVERY = 7  # default: the exploitability re-solves are most of a day's metrics time
CHECKPOINT = "state/checkpoint.pkl"


def _err(file: str, key: str, what: str) -> CaseError:
    return CaseError(what, file=file, column=key)


def load(raw: dict[str, Any], f: str) -> dict[str, Any]:
    """The tes study of a parsed study file ``f``, checked; a CaseError names the file, the key and what is wrong."""
    from .study import strategy_tables

    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise _err(f, unknown[0], f"unknown key (known: {', '.join(sorted(KEYS))})")
    for k, lo in (("days", 1), ("seed", 0), ("exploitability_every", 0), ("profile_seed", 0), ("start_day", 0)):
        v = raw.get(k, {"days": 1, "seed": 0, "exploitability_every": EXPLOIT_EVERY, "start_day": 0,
                        "profile_seed": raw.get("seed", 0)}[k])
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise _err(f, k, f"must be an integer >= {lo}, got {v!r}")
        raw[k] = v
    if raw.get("days_from", "case") not in DAYS_FROM:
        raise _err(f, "days_from", f"must be one of {', '.join(DAYS_FROM)}, got {raw.get('days_from')!r}")
    if not isinstance(raw.get("exploitability_network", False), bool):
        raise _err(f, "exploitability_network", f"must be true or false, got {raw.get('exploitability_network')!r}")
    if not isinstance(raw.get("case", "tes_feeder"), str):
        raise _err(f, "case", "must be a case name or folder (a string)")
    study = {"protocol": "tes", "file": f, "case": raw.get("case", "tes_feeder"), "days": raw["days"], "seed": raw["seed"],
             "exploitability_every": raw["exploitability_every"], "agents": {},
             "days_from": raw.get("days_from", "case"), "profile_seed": raw["profile_seed"],
             "start_day": raw["start_day"], "exploitability_network": raw.get("exploitability_network", False)}
    study["agents"].update(strategy_tables(raw, f, "agents.DER1"))
    return study


def config_of(study: dict[str, Any], case: Any) -> Any:
    """The TESConfig: one strategy per DER manager of the case (its table, else [default])."""
    from coordinator.tes.setup import Roles, TESConfig

    roles = Roles.of(case)
    extra = sorted(set(k.split(".", 1)[1] for k in study["agents"] if k != "default") - set(roles.der_managers))
    if extra:
        raise _err(study["file"], f"agents.{extra[0]}", f"no DER manager {extra[0]!r} in case {case.name} "
                   f"(it has {', '.join(roles.der_managers)})")
    entries = []
    for i, d in enumerate(roles.der_managers):
        name, params = study["agents"].get(f"agents.{d}", study["agents"]["default"])
        params = dict(params)
        from agents.strategies import strategy_parameters

        if "seed" in strategy_parameters(name) and "seed" not in params:
            params["seed"] = study["seed"] + i
        entries.append((d, name, tuple(sorted(params.items(), key=lambda kv: kv[0]))))
    return TESConfig(strategies=tuple((d, n, tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in p))
                                      for d, n, p in entries), seed=study["seed"])


def run(args: argparse.Namespace, study: dict[str, Any]) -> int:
    """Run the checked tes ``study`` (:func:`load`) with the command's arguments (``--out``, ``--resume``)."""
    from rich.progress import Progress

    from coordinator.boundary import Boundary
    from coordinator.runtime import LocalRuntime
    from coordinator.simulation import TESMarketModel
    from coordinator.tes.metrics import tes_day_metrics
    from scenarios.registry import load_case
    from scenarios.runs import RunFolder, atomic_write

    case = load_case(study["case"])
    config = config_of(study, case)
    profiles = None
    if study["days_from"] == "generator":
        from scenarios.days import DayGenerator

        profiles = DayGenerator(case, study["profile_seed"], study["start_day"]).year(study["days"])
    blob = None
    if args.resume:
        if args.out is None or not (Path(args.out) / CHECKPOINT).is_file():
            raise CaseError("--resume needs --out with a finished day (state/checkpoint.pkl)", file="--out")
        blob = (Path(args.out) / CHECKPOINT).read_bytes()
    folder = RunFolder.create("study", args.out)
    folder.write_manifest("study", {"study": str(args.study), "days": study["days"], "case": study["case"],
                                    "resume": bool(args.resume), "days_from": study["days_from"],
                                    "profile_seed": study["profile_seed"], "start_day": study["start_day"]},
                          seed=study["seed"])
    boundary = Boundary(folder.file("audit.jsonl.gz" if blob is None else f"audit.resume-{time.time_ns()}.jsonl.gz"))
    runtime = LocalRuntime(boundary)
    network = None
    day_rows: list[dict] = []
    agent_rows: list[dict] = []
    if blob is None:
        model = TESMarketModel(case, runtime, config, seed=study["seed"], benchmarks=False, profiles=profiles,
                               network_reports=False, keep_results=1)
    else:
        state = pickle.loads(blob)
        model = TESMarketModel.resume(state["model"], case, runtime, config, seed=study["seed"], benchmarks=False,
                                      profiles=profiles, network_reports=False, keep_results=1)
        day_rows, agent_rows = state["day_rows"], state["agent_rows"]
    t0 = time.perf_counter()
    try:
        with Progress() as progress:
            task = progress.add_task("market days", total=study["days"], completed=model.day)
            while model.day < study["days"]:
                model.step()
                res = model.results[-1]
                every = study["exploitability_every"]
                tm = time.perf_counter()
                if study["exploitability_network"] and network is None:
                    from coordinator.tes.analysis import network_constraints

                    network = network_constraints(model.protocol.analyst.network)
                day, rows = tes_day_metrics(model.case_of(res.day), config, res,
                                            exploit=bool(every) and res.day % every == 0,
                                            market=model.protocol.analyst.market(), network=network)
                day |= {"iterations": len(res.iterations), "converged": res.converged,
                        "protocol_s": res.wall_time_s, "benchmarks_s": res.timings.get("benchmarks_s", float("nan")),
                        "metrics_s": time.perf_counter() - tm,
                        **day_inputs(model.case_of(res.day))}
                played = {p.agent_id: p.markup for p in model.participants if p.role == "der_manager"}
                rows = [r | {"markup_played": played.get(r["agent"], float("nan"))} for r in rows]
                day_rows.append(day)
                agent_rows += rows
                folder.write_parquet("days.parquet", pd.DataFrame(day_rows))
                folder.write_parquet("agents.parquet", pd.DataFrame(agent_rows))
                folder.write_parquet("participants.parquet", model.agents_frame())
                state = {"model": model.checkpoint(), "day_rows": day_rows, "agent_rows": agent_rows}
                atomic_write(folder.file(CHECKPOINT), lambda fh: fh.write(pickle.dumps(state)), binary=True)
                progress.update(task, completed=model.day,
                                description=f"day {res.day}: Lerner {day['lerner']:.3f}")
    finally:
        runtime.shutdown()
        boundary.close()
    wall = time.perf_counter() - t0
    folder.write_json("timing.json", {"days_run": model.day, "wall_time_s": wall})
    write_plots(folder, pd.DataFrame(day_rows), pd.DataFrame(agent_rows))
    print(f"{study['days']} day(s), wall time {wall:.1f} s; run folder: {folder.path}")
    return 0 if all(r["converged"] for r in day_rows) else 1


def day_inputs(case: Any) -> dict[str, float]:
    """The day's inputs in a few figures: mean LMP ($/kWh), customers' baseline energy, PV and wind
    availability (kWh)."""
    import numpy as np

    kinds: dict[str, float] = {"pv": 0.0, "wind": 0.0}
    for u in case.units:
        if u.avail_profile and u.kind in kinds:
            kinds[u.kind] += float(np.minimum(case.profile(u.avail_profile), u.p_max).sum())
    (mg,) = [u for u in case.units if u.kind == "main_grid"]
    return {"lmp_mean": float(case.profile(mg.price_profile).mean()),
            "baseline_kwh": float(sum(case.profile(ld.baseline_profile).sum() for ld in case.loads
                                      if ld.baseline_profile)),
            "pv_kwh": kinds["pv"], "wind_kwh": kinds["wind"]}


def write_plots(folder: Any, days: pd.DataFrame, agents: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for a, g in agents.groupby("agent"):
        line, = axes[0].plot(g["day"], g["markup_played"] if "markup_played" in g else g["markup"], label=a)
        if "exploitability" in g:
            ex = g.dropna(subset=["exploitability"])
            if "best_markup" in ex and len(agents["agent"].unique()) == 1:
                axes[0].plot(ex["day"], ex["best_markup"], "x", color="k", label="analyst's best response")
            axes[1].plot(ex["day"], ex["exploitability"], marker=".", lw=0.5, color=line.get_color(), alpha=0.5)
            k = max(1, len(ex) // 6)
            axes[1].plot(ex["day"], ex["exploitability"].rolling(k, min_periods=1).mean(), color=line.get_color(),
                         label=f"{a} (rolling mean of {k})")
    axes[0].set(xlabel="day", ylabel="markup ($/kWh)", title="markups played (learning curves)")
    axes[1].set(xlabel="day", ylabel="$", title="exploitability")
    for ax in axes[:2]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    folder.write_png("markups.png", fig)
    plt.close(fig)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    axes[0].plot(days["day"], days["lerner"]), axes[0].set(xlabel="day", title="Lerner (energy-weighted)")
    axes[1].plot(days["day"], days["welfare_loss"], label="welfare loss")
    axes[1].plot(days["day"], -days["customer_surplus_change"], label="customer surplus lost")
    axes[1].set(xlabel="day", ylabel="$ vs competitive", title="against the competitive offers"), axes[1].legend()
    axes[2].plot(days["day"], days["hhi"]), axes[2].set(xlabel="day", title="HHI")
    fig.tight_layout()
    folder.write_png("metrics.png", fig)
    plt.close(fig)
