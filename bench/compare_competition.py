"""Competition comparison: the same generated days with 1, 2, 3 and 5 learning DER managers (run by hand).

    python3 bench/compare_competition.py [--days 60] [--every 5] [--strategy q-learning] [--seed 0]
                                         [--counts 1 2 3 5] [--family oligopoly] [--out results/compare-competition]
    python3 bench/compare_competition.py --summarise DIR [DIR ...] --days 100   # the table of earlier runs

``--family oligopoly`` (default): ``tes_oligopoly<N>`` (``scenarios/build_tes_competition.py``): tes_feeder's
fleet doubled (``--scale``: another factor, e.g. 1.5 for capacity-constrained firms) and split into N identical
firms, on tes_feeder's generated days (the same days for every N);
``--family technology``: the earlier split by technology (1 = tes_feeder, 2, 3, 5 = the tes_competition
cases), where one manager keeps all of wind and PV. Every DER manager is a learner of ``--strategy``:
``q-learning`` with the parameters of ``scenarios/studies/tes_monopoly.toml``'s learner (one markup a day,
epsilon-greedy with decaying epsilon), or ``roth-erev`` / ``exp-weights`` with the defaults and ``--grid``
(``analyst``: the analyst's exploitability grid, 0 to 0.16 $/kWh; ``study``: 0 to 0.1 $/kWh; ``fine``: 0 to
0.16 by 0.02, the monopoly study's). Prints per count, over the last third of the days: the
quantity-weighted markup ($/kWh), the markup the learners played, the energy-weighted Lerner index, the
welfare loss against competitive offers ($/day), the largest exploitability ($) and the analyst's
best-response markup (against the others' actual offers); for the monopoly, the learner's markup against
the best response and the exploitability by thirds of the days. Writes ``competition.parquet`` (per
count, day, agent), ``competition_days.parquet`` and ``competition.png``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coordinator.boundary import Boundary  # noqa: E402
from coordinator.runtime import LocalRuntime  # noqa: E402
from coordinator.simulation import TESMarketModel  # noqa: E402
from coordinator.tes.metrics import EXPLOIT_GRID, tes_day_metrics  # noqa: E402
from scenarios.build_tes_competition import FLEET_SCALE, competition_case, oligopoly_case, split_profiles  # noqa: E402
from scenarios.days import DayGenerator  # noqa: E402
from scenarios.registry import load_case  # noqa: E402
from scenarios.study_tes import config_of, load  # noqa: E402

#: the learners' markup grids ($/kWh): the built-in studies', or the analyst's exploitability grid (so that
#: the learner can play the analyst's best response)
GRIDS = {"study": [0.0, 0.02, 0.04, 0.06, 0.08, 0.1], "analyst": list(EXPLOIT_GRID),
         "fine": [round(0.02 * k, 6) for k in range(9)]}
MONOPOLY_STUDY = Path(__file__).resolve().parents[1] / "scenarios" / "studies" / "tes_monopoly.toml"


def learner_params(strategy: str, grid: list[float]) -> dict:
    """Every manager's strategy table: q-learning as in the monopoly study (its [agents.DERM] table)."""
    if strategy == "q-learning":
        import tomllib

        table = dict(tomllib.loads(MONOPOLY_STUDY.read_text(encoding="utf-8"))["agents"]["DERM"])
        assert table["strategy"] == "q-learning", table
        return table
    if strategy in ("roth-erev", "exp-weights"):
        return {"strategy": strategy, "grid": grid}
    return {"strategy": strategy}


def run_count(n: int, days: int, every: int, strategy: str, seed: int, grid: list[float], family: str = "oligopoly",
              scale: float = FLEET_SCALE) -> tuple[pd.DataFrame, pd.DataFrame]:
    base = load_case("tes_feeder")
    study_days = DayGenerator(base, seed).year(days)  # tes_feeder's days: the same for every count
    if family == "oligopoly":
        case = oligopoly_case(base, n, scale)
        profiles = [split_profiles(base, p, n, scale) for p in study_days]
    else:
        case = competition_case(base, n)
        profiles = DayGenerator(case, seed).year(days)  # the same days for every count (same seed and supply)
    study = load({"case": case.name, "days": days, "seed": seed, "default": learner_params(strategy, grid)},
                 "<compare>")
    config = config_of(study, case)
    model = TESMarketModel(case, LocalRuntime(Boundary()), config, seed=seed, benchmarks=False, profiles=profiles)
    day_rows, agent_rows = [], []
    t0 = time.perf_counter()
    for d in range(days):
        model.step()
        day, rows = tes_day_metrics(model.case_of(d), config, model.results[-1], exploit=d % every == 0 or
                                    d == days - 1, market=model.protocol.analyst.market())
        played = {p.agent_id: p.markup for p in model.participants if p.role == "der_manager"}
        day_rows.append(day | {"managers": n})
        agent_rows += [r | {"managers": n, "markup_played": played[r["agent"]]} for r in rows]
        print(f"\r  {n} manager(s): day {d + 1}/{days}, Lerner {day['lerner']:.3f}, {time.perf_counter() - t0:.0f} s",
              end="", flush=True)
    print()
    model.runtime.shutdown()
    return pd.DataFrame(day_rows), pd.DataFrame(agent_rows)


def summary(days: pd.DataFrame, agents: pd.DataFrame) -> pd.DataFrame:
    """Per count, means over the last third of the days."""
    out = []
    for n, g in days.groupby("managers"):
        a = agents[agents["managers"] == n]
        start = g["day"].max() + 1 - (g["day"].max() + 1) // 3
        late, alate = g[g["day"] >= start], a[a["day"] >= start]
        w = alate["energy_kwh"].clip(lower=0)
        out.append({"managers": n, "markup": float(alate["markup"].mean()),
                    "markup_played": float(alate["markup_played"].mean()),
                    "lerner": float(late["lerner"].mean()), "welfare_loss": float(late["welfare_loss"].mean()),
                    "welfare_loss_pct": float(100 * (late["welfare_loss"] / late["welfare_competitive"]).mean()),
                    "exploitability_max": float(late["exploitability_max"].mean()),
                    "best_response_markup": float(alate["best_markup"].mean()),
                    "hhi": float(late["hhi"].mean()), "pivotal_hours": float(late["pivotal_hours"].mean() / n),
                    "energy_weighted_markup":
                    float((alate["markup"] * w).sum() / w.sum()) if w.sum() > 0 else float("nan")})
    return pd.DataFrame(out)


def thirds(mono: pd.DataFrame) -> pd.DataFrame:
    """The monopoly's learner by thirds of the days (rows with exploitability): played markup, the analyst's
    best-response markup, |played - best response|, exploitability (mean and median)."""
    mono = mono.dropna(subset=["exploitability"]).copy()
    mono["third"] = pd.cut(mono["day"], 3, labels=["first", "second", "last"])
    mono["gap"] = (mono["markup_played"] - mono["best_markup"]).abs()
    return mono.groupby("third", observed=True).agg(
        days=("day", "size"), markup_played=("markup_played", "mean"), best_response=("best_markup", "mean"),
        gap=("gap", "mean"), exploitability=("exploitability", "mean"),
        exploitability_median=("exploitability", "median"))


def plot(days: pd.DataFrame, agents: pd.DataFrame, table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(11, 7))
    ax[0, 0].plot(table["managers"], table["markup"], "o-", label="markup ($/kWh)")
    ax[0, 0].plot(table["managers"], table["lerner"], "s-", label="Lerner")
    ax[0, 0].set(xlabel="DER managers", title="last third of the days"), ax[0, 0].legend()
    ax[0, 1].plot(table["managers"], table["welfare_loss"], "o-")
    ax[0, 1].set(xlabel="DER managers", ylabel="$ per day", title="welfare loss vs competitive offers")
    mono = agents[agents["managers"] == table["managers"].min()]
    ex = mono.dropna(subset=["exploitability"])
    ax[1, 0].plot(mono["day"], mono["markup_played"], label="learner's markup")
    ax[1, 0].plot(ex["day"], ex["best_markup"], "x", label="analyst's best response")
    ax[1, 0].set(xlabel="day", ylabel="$/kWh", title="monopoly: markup"), ax[1, 0].legend()
    ax[1, 1].plot(ex["day"], ex["exploitability"], "o-")
    ax[1, 1].set(xlabel="day", ylabel="$", title="monopoly: exploitability")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--every", type=int, default=5, help="exploitability every N days (and on the last)")
    ap.add_argument("--strategy", default="q-learning")
    ap.add_argument("--family", default="oligopoly", choices=("oligopoly", "technology"),
                    help="symmetric firms with the fleet scaled, or the split by technology")
    ap.add_argument("--scale", type=float, default=FLEET_SCALE, help="oligopoly: the factor on tes_feeder's ratings")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--counts", type=int, nargs="+", default=[1, 2, 3, 5])
    ap.add_argument("--grid", default="analyst", choices=sorted(GRIDS), help="the learners' markup grid")
    ap.add_argument("--out", default="results/compare-competition")
    ap.add_argument("--summarise", nargs="+", default=None, metavar="DIR",
                    help="no runs: the table of earlier runs' folders (their first --days days)")
    a = ap.parse_args()
    if a.summarise:
        days = pd.concat([pd.read_parquet(Path(d) / "competition_days.parquet") for d in a.summarise])
        agents = pd.concat([pd.read_parquet(Path(d) / "competition.parquet") for d in a.summarise])
        days, agents = days[days["day"] < a.days], agents[agents["day"] < a.days]
        pd.set_option("display.width", 200)
        table = summary(days, agents).sort_values("managers")
        print(table.round(4).to_string(index=False))
        Path(a.out).mkdir(parents=True, exist_ok=True)
        plot(days, agents, table, Path(a.out) / "competition.png")
        print(f"wrote {a.out}/competition.png")
        return 0
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for n in a.counts:  # the tables are written after each count: a count that fails keeps the others
        parts.append(run_count(n, a.days, a.every, a.strategy, a.seed, GRIDS[a.grid], a.family, a.scale))
        days = pd.concat([p[0] for p in parts], ignore_index=True)
        agents = pd.concat([p[1] for p in parts], ignore_index=True)
        days.to_parquet(out / "competition_days.parquet")
        agents.to_parquet(out / "competition.parquet")
    table = summary(days, agents)
    pd.set_option("display.width", 160)
    print(table.round(4).to_string(index=False))
    mono = agents[agents["managers"] == min(a.counts)]
    print(f"{min(a.counts)} manager(s), by thirds of the days:")
    print(thirds(mono[mono["agent"] == mono["agent"].iloc[0]]).round(4).to_string())
    plot(days, agents, table, out / "competition.png")
    print(f"wrote {out}/competition.parquet, competition_days.parquet, competition.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
