"""A strategic study of the ``tso-dso`` market (``protocol = "tso-dso"`` study files), in the Mesa shell.

A study file (TOML)::

    protocol = "tso-dso"
    case = "tso24_dso5"            # built-in case name or case folder
    days = 30                      # market days (one Mesa step each; each day a new wind draw)
    seed = 0                       # wind seeds SeedSequence([seed, day]); each learner's seed is seed + index
    scheme = "pcc"                 # pcc or cm (a scheme with a day-ahead price)
    scenarios = 3                  # in-sample wind scenarios per day (no out-of-sample evaluation)
    wind_factor = 0.3              # expected wind = factor x total demand P max
    gap = 1e-4                     # Benders gap tolerance (relative to the welfare scale)
    exploitability_every = 1       # the analyst's deviation search every N days (0: never)
    exploitability_grid = [0, 1, 2, 4]   # $/MWh, for participants whose strategy has no grid

    [gencos]                       # optional: split the transmission units of GENCO into firms
    GENCO_A = ["G1", "G2"]         #   (new der_manager owners in area 0; the rest stays with GENCO)

    [default]                      # strategy of every participant not listed (marginal-cost: case prices)
    strategy = "marginal-cost"

    [agents.GENCO_A]               # one table per participant: strategy name and its parameters
    strategy = "learning"          #   markups in $/MWh: give the grid, the defaults are in $/kWh
    grid = [0, 0.5, 1, 2, 4]

Writes, in a run folder: ``days.parquet`` (per day: wind, the day-ahead price, welfare at
true costs, Lerner, HHI, the caps, each also for the competitive run with suffix ``_comp``,
and the welfare loss), ``agents.parquet`` (per day and participant: strategy, markup,
profit, Lerner, share, RSI, pivotal, exploitability), ``caps.parquet`` (per day and capped
resource: P max, cap and quantity, strategic and competitive), the audit logs
(``audit/day-NNNN*.jsonl.gz``), ``markups.png`` and ``metrics.png``; ``resume=True`` goes on from
the last finished day.

Entry points: :func:`load_study` (file -> study dict), :func:`study_from_toml` (parsed TOML ->
study dict), :func:`run` (study dict, run folder); ``python3 -m scenarios.study_tso_dso FILE``.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from network.errors import CaseError

__all__ = ["KEYS", "load_study", "study_from_toml", "split_gencos", "run", "main"]

KEYS = {"protocol", "case", "days", "seed", "scheme", "scenarios", "wind_factor", "gap", "max_iterations",
        "exploitability_every", "exploitability_grid", "gencos", "default", "agents", "description"}
CHECKPOINT = "state/checkpoint.pkl"
DEFAULT_GRID = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)  # $/MWh


def _err(file: str, key: str, what: str) -> CaseError:
    return CaseError(what, file=file, column=key)


def load_study(path: str | Path) -> dict[str, Any]:
    """The study of a TOML file, checked; a CaseError names the file, the key and what is wrong."""
    f = str(path)
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CaseError(f"cannot read the study file: {exc.strerror}", file=f) from None
    except tomllib.TOMLDecodeError as exc:
        raise CaseError(f"not valid TOML: {exc}", file=f) from None
    return study_from_toml(raw, f)


def _num(f: str, raw: dict, key: str, default: Any, kind: type, lo: float, hi: float = math.inf) -> Any:
    v = raw.get(key, default)
    ok = not isinstance(v, bool) and isinstance(v, (int, float) if kind is float else int)
    if not ok or not (lo <= v <= hi) or (kind is float and not math.isfinite(v)):
        raise _err(f, key, f"must be {'an integer' if kind is int else 'a number'} in [{lo}, {hi}], got {v!r}")
    return kind(v)


def study_from_toml(raw: dict[str, Any], file: str = "<study>") -> dict[str, Any]:
    """The checked study of a parsed study file (``protocol = "tso-dso"``)."""
    from .study import strategy_tables

    f = file
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise _err(f, unknown[0], f"unknown key (known: {', '.join(sorted(KEYS))})")
    if raw.get("protocol") != "tso-dso":
        raise _err(f, "protocol", f"this runner takes protocol = \"tso-dso\", got {raw.get('protocol')!r}")
    if raw.get("scheme", "pcc") not in ("pcc", "cm"):
        raise _err(f, "scheme", f"must be 'pcc' or 'cm' (a scheme with a day-ahead price), got {raw.get('scheme')!r}")
    if not isinstance(raw.get("case", "tso24_dso5"), str):
        raise _err(f, "case", "must be a case name or folder (a string)")
    study: dict[str, Any] = {
        "file": f, "protocol": "tso-dso", "case": raw.get("case", "tso24_dso5"), "scheme": raw.get("scheme", "pcc"),
        "days": _num(f, raw, "days", 1, int, 1), "seed": _num(f, raw, "seed", 0, int, 0),
        "scenarios": _num(f, raw, "scenarios", 3, int, 1), "wind_factor": _num(f, raw, "wind_factor", 0.3, float, 0),
        "gap": _num(f, raw, "gap", 1e-4, float, 1e-9, 0.5), "max_iterations": _num(f, raw, "max_iterations", 100, int, 1),
        "exploitability_every": _num(f, raw, "exploitability_every", 1, int, 0), "agents": {}}
    grid = raw.get("exploitability_grid", list(DEFAULT_GRID))
    if not isinstance(grid, list) or not grid or not all(isinstance(g, (int, float)) and not isinstance(g, bool)
                                                         and math.isfinite(g) and g >= 0 for g in grid):
        raise _err(f, "exploitability_grid", f"must be a non-empty list of markups >= 0 ($/MWh), got {grid!r}")
    study["exploitability_grid"] = tuple(float(g) for g in grid)
    gencos = raw.get("gencos", {})
    if not isinstance(gencos, dict) or not all(isinstance(v, list) and v and all(isinstance(u, str) for u in v)
                                               for v in gencos.values()):
        raise _err(f, "gencos", "must be a table of firm = [unit ids] ([gencos] GENCO_A = [\"G1\", \"G2\"])")
    study["gencos"] = {k: tuple(v) for k, v in gencos.items()}
    study["agents"].update(strategy_tables(raw, f, "agents.GENCO_A"))
    return study


def split_gencos(case: Any, gencos: dict[str, tuple[str, ...]], file: str = "<study>") -> Any:
    """The case with the transmission units of each ``gencos`` entry owned by a new der_manager of area 0."""
    if not gencos:
        return case
    from dataclasses import replace

    from network.elements import Owner

    units = {u.id: u for u in case.units}
    new_owner: dict[str, str] = {}
    for firm, ids in gencos.items():
        if firm in {o.id for o in case.owners}:
            raise _err(file, f"gencos.{firm}", f"{firm!r} is already an owner of case {case.name}")
        for u in ids:
            if u not in units or units[u].grid != "T" or units[u].kind == "main_grid":
                raise _err(file, f"gencos.{firm}", f"{u!r} is not a transmission-connected unit of case {case.name}")
            if u in new_owner:
                raise _err(file, f"gencos.{firm}", f"unit {u!r} is given to both {new_owner[u]} and {firm}")
            new_owner[u] = firm
    owners = (*case.owners, *(Owner(firm, "der_manager", 0) for firm in gencos))
    return case.replace(owners=owners, units=tuple(replace(u, owner=new_owner.get(u.id, u.owner)) for u in case.units))


def strategies_of(study: dict[str, Any], participants: list[str]) -> tuple[dict[str, Any], dict[str, tuple]]:
    """participant -> strategy (marginal-cost ones left out: they offer the case's prices) and the grids of the
    exploitability search of the strategic ones."""
    from agents.strategies import make_strategy, strategy_parameters

    extra = sorted(k.split(".", 1)[1] for k in study["agents"] if k != "default"
                   and k.split(".", 1)[1] not in participants)
    if extra:
        raise _err(study["file"], f"agents.{extra[0]}", f"no participant {extra[0]!r} (participants: "
                   f"{', '.join(participants)})")
    out, grids = {}, {}
    for i, p in enumerate(participants):
        name, params = study["agents"].get(f"agents.{p}", study["agents"]["default"])
        if name == "marginal-cost":
            continue
        params = dict(params)
        if "seed" in strategy_parameters(name) and "seed" not in params:
            params["seed"] = study["seed"] + i
        out[p] = make_strategy(name, strict=True, **params)
        g = getattr(out[p], "grid", None)
        grids[p] = tuple(sorted(set(map(float, g)) | set(study["exploitability_grid"]))) if g \
            else study["exploitability_grid"]
    return out, grids


def load(raw: dict[str, Any], file: str) -> dict[str, Any]:
    """The checked study of a parsed file, for ``run.py study`` (:mod:`scenarios.study`)."""
    return {**study_from_toml(raw, file), "protocol": "tso-dso", "file": file}


def run(args: argparse.Namespace, study: dict[str, Any]) -> int:
    """``run.py study FILE [--out DIR] [--resume]`` for a tso-dso study (:mod:`scenarios.study`)."""
    return run_study(study, args.out, resume=args.resume)


def run_study(study: dict[str, Any], out: Any = None, *, resume: bool = False, quiet: bool = False) -> int:
    """Run a tso-dso study (a :func:`load_study` dict) into run folder ``out`` (a ``RunFolder``, a path, or None
    for ``results/study-<time>``); ``resume``: go on from the last finished day there. Returns the exit status
    (0, or 1 if a day's Benders did not converge)."""
    from rich.progress import Progress

    from coordinator.tso_dso.setup import Roles, TSODSOConfig
    from coordinator.tso_dso.study import TSODSOMarketModel

    from .registry import load_case
    from .runs import RunFolder, atomic_write
    from .tso_dso.wind import WindModel

    case = split_gencos(load_case(study["case"]), study["gencos"], study["file"])
    roles = Roles.of(case)
    strategies, grids = strategies_of(study, list(roles.participants))
    folder = out if isinstance(out, RunFolder) else None
    blob = None
    if resume:
        path = Path(out.path if folder is not None else (out or ""))
        if out is None or not (path / CHECKPOINT).is_file():
            raise CaseError("--resume needs --out with a finished day (state/checkpoint.pkl)", file="--out")
        blob = (path / CHECKPOINT).read_bytes()
    if folder is None:
        folder = RunFolder.create("study", None if out is None else str(out))
    folder.write_manifest("study", {k: (list(v) if isinstance(v, tuple) else v) for k, v in study.items()
                                    if k not in ("agents", "gencos")} | {"resume": bool(resume)}, seed=study["seed"])
    config = TSODSOConfig(schemes=(study["scheme"],), gap_tol=study["gap"], max_iterations=study["max_iterations"],
                          oos=False)
    model = TSODSOMarketModel(case, config, WindModel.from_case(case), factor=study["wind_factor"],
                              scenarios=study["scenarios"], strategies=strategies, seed=study["seed"], grids=grids,
                              exploitability_every=study["exploitability_every"], audit_dir=folder.file("audit"))
    if blob is not None:
        model.restore(blob)
    t0 = time.perf_counter()
    with Progress(disable=quiet) as progress:
        task = progress.add_task("market days", total=study["days"], completed=model.day)
        model.progress = lambda s: progress.update(task, description=s[:60])
        while model.day < study["days"]:
            model.step()
            d = model.day_rows[-1]
            for name, df in (("days", model.days_frame()), ("agents", model.agents_frame()),
                             ("caps", model.caps_frame())):
                folder.write_parquet(f"{name}.parquet", df)
            atomic_write(folder.file(CHECKPOINT), lambda fh: fh.write(model.checkpoint()), binary=True)
            progress.update(task, completed=model.day, description=f"day {d['day']}: price {d['da_price']:.2f} "
                            f"(competitive {d['da_price_comp']:.2f}) $/MWh")
    wall = time.perf_counter() - t0
    days, agents = model.days_frame(), model.agents_frame()
    folder.write_json("timing.json", {"days_run": int(len(days)), "wall_time_s": wall})
    write_plots(folder, days, agents, model.caps_frame())
    if not quiet:
        print(summary(days, agents))
        print(f"{study['days']} day(s), wall time {wall:.1f} s; run folder: {folder.path}")
    return 0 if bool(days["converged"].all()) else 1


def summary(days: Any, agents: Any) -> str:
    """Mean figures over the days, strategic against competitive."""
    m = days.mean(numeric_only=True)
    lines = [f"mean over {len(days)} day(s)        strategic   competitive",
             f"  day-ahead price ($/MWh)  {m['da_price']:10.2f}  {m['da_price_comp']:12.2f}",
             f"  welfare ($/day)          {m['welfare']:10.0f}  {m['welfare_comp']:12.0f}",
             f"  welfare loss ($/day)     {m['welfare_loss']:10.0f}",
             f"  caps of DER gens (MW)    {m['caps_gen_mw']:10.1f}  {m['caps_gen_mw_comp']:12.1f}",
             f"  caps of demands (MW)     {m['caps_dem_mw']:10.1f}  {m['caps_dem_mw_comp']:12.1f}",
             f"  Lerner                   {m['lerner']:10.3f}  {m['lerner_comp']:12.3f}",
             f"  HHI                      {m['hhi']:10.0f}  {m['hhi_comp']:12.0f}"]
    strat = agents[agents["strategy"] != "case-prices"]
    for a, g in strat.groupby("agent"):
        last = g.tail(max(1, len(g) // 3))
        lines.append(f"  {a}: markup {g['markup'].mean():.2f} $/MWh (last third {last['markup'].mean():.2f}), "
                     f"profit {g['profit'].mean():.0f} vs {g['profit_comp'].mean():.0f} $/day competitive"
                     + (f", exploitability {g['exploitability'].mean():.0f} $/day" if "exploitability" in g else ""))
    return "\n".join(lines)


def write_plots(folder: Any, days: Any, agents: Any, caps: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strat = agents[agents["strategy"] != "case-prices"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for a, g in strat.groupby("agent"):
        axes[0].plot(g["day"], g["markup"], marker=".", label=a)
        axes[1].plot(g["day"], g["profit"] - g["profit_comp"], marker=".", label=a)
        if "exploitability" in g:
            axes[2].plot(g["day"], g["exploitability"], marker=".", label=a)
    axes[0].set(xlabel="day", ylabel="$/MWh", title="markups (learning curves)")
    axes[1].set(xlabel="day", ylabel="$/day", title="profit minus competitive profit")
    axes[2].set(xlabel="day", ylabel="$/day", title="exploitability (day-ahead model)")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    folder.write_png("markups.png", fig)
    plt.close(fig)
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    axes[0].plot(days["day"], days["da_price"], label="strategic")
    axes[0].plot(days["day"], days["da_price_comp"], "--", label="competitive")
    axes[0].set(xlabel="day", ylabel="$/MWh", title="day-ahead price")
    axes[1].plot(days["day"], days["welfare_loss"])
    axes[1].set(xlabel="day", ylabel="$/day", title="welfare loss (competitive - strategic)")
    axes[2].plot(days["day"], days["caps_gen_mw"], label="DER generators")
    axes[2].plot(days["day"], days["caps_gen_mw_comp"], "--", label="DER generators, competitive")
    axes[2].plot(days["day"], days["caps_dem_mw"], label="demands")
    axes[2].plot(days["day"], days["caps_dem_mw_comp"], "--", label="demands, competitive")
    axes[2].set(xlabel="day", ylabel="MW", title="pre-qualification caps (sum)")
    axes[3].plot(days["day"], days["lerner"], label="Lerner")
    axes[3].plot(days["day"], days["lerner_comp"], "--", label="Lerner, competitive")
    axes[3].set(xlabel="day", title="Lerner index (energy-weighted)")
    for ax in (axes[0], axes[2], axes[3]):
        ax.legend(fontsize=7)
    fig.tight_layout()
    folder.write_png("metrics.png", fig)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """``python3 -m scenarios.study_tso_dso STUDY_FILE [--out DIR] [--resume]`` (until ``run.py study`` dispatches
    on the protocol). Errors: one line on stderr and exit status 1 (a bad study file: status 2)."""
    p = argparse.ArgumentParser(prog="python3 -m scenarios.study_tso_dso", description=__doc__.split("\n")[0])
    p.add_argument("study", help="a study file (TOML), e.g. scenarios/studies/tso_dso_gencos.toml")
    p.add_argument("--out", default=None, help="run folder (default: results/study-<time>)")
    p.add_argument("--resume", action="store_true", help="go on from the last finished day of the run in --out")
    args = p.parse_args(argv)
    try:
        return run_study(load_study(args.study), args.out, resume=args.resume)
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
