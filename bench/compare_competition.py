"""Competition comparison: the same generated days with 1, 2, 3 and 5 learning DER managers (run by hand).

    python3 bench/compare_competition.py [--days 30] [--every 5] [--strategy roth-erev] [--seed 0]
                                         [--counts 1 2 3 5] [--out results/compare-competition]

The same supply split among more owners (``scenarios/build_tes_competition.py``: 1 = tes_feeder,
2 and 3 and 5 = the tes_competition cases), the same seeded days (``scenarios/days.py``), every DER
manager a learner of ``--strategy`` (``--grid analyst``: the analyst's exploitability grid, 0 to 0.16
$/kWh, so that a learner can play the analyst's best response; ``--grid study``: the built-in studies'
0 to 0.1 $/kWh). Prints per
count, over the last half of the days: the quantity-weighted markup ($/kWh), the energy-weighted
Lerner index, the welfare loss against competitive offers ($/day), the largest exploitability ($)
and the analyst's best-response markup; for the monopoly, the learner's markup against the best
response and the exploitability over the first and last thirds of the days. Writes
``competition.parquet`` (per count, day, agent), ``competition_days.parquet`` and ``competition.png``.
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
from scenarios.build_tes_competition import competition_case  # noqa: E402
from scenarios.days import DayGenerator  # noqa: E402
from scenarios.registry import load_case  # noqa: E402
from scenarios.study_tes import config_of, load  # noqa: E402

#: the learners' markup grids ($/kWh): the built-in studies', or the analyst's exploitability grid (so that
#: the learner can play the analyst's best response)
GRIDS = {"study": [0.0, 0.02, 0.04, 0.06, 0.08, 0.1], "analyst": list(EXPLOIT_GRID)}


def run_count(n: int, days: int, every: int, strategy: str, seed: int, grid: list[float]
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    case = competition_case(load_case("tes_feeder"), n)
    params = {"strategy": strategy, "grid": grid} if strategy in ("roth-erev", "exp-weights", "q-learning") else {
        "strategy": strategy}
    study = load({"case": case.name, "days": days, "seed": seed, "default": params}, "<compare>")
    config = config_of(study, case)
    profiles = DayGenerator(case, seed).year(days)  # the same days for every count (same seed and supply)
    model = TESMarketModel(case, LocalRuntime(Boundary()), config, seed=seed, benchmarks=False, profiles=profiles)
    day_rows, agent_rows = [], []
    t0 = time.perf_counter()
    for d in range(days):
        model.step()
        day, rows = tes_day_metrics(model.case_of(d), config, model.results[-1], exploit=d % every == 0 or
                                    d == days - 1, market=model.protocol.analyst.market())
        day_rows.append(day | {"managers": n})
        agent_rows += [r | {"managers": n} for r in rows]
        print(f"\r  {n} manager(s): day {d + 1}/{days}, Lerner {day['lerner']:.3f}, {time.perf_counter() - t0:.0f} s",
              end="", flush=True)
    print()
    model.runtime.shutdown()
    return pd.DataFrame(day_rows), pd.DataFrame(agent_rows)


def summary(days: pd.DataFrame, agents: pd.DataFrame) -> pd.DataFrame:
    out = []
    for n, g in days.groupby("managers"):
        a = agents[agents["managers"] == n]
        half = g["day"].max() // 2
        late, alate = g[g["day"] >= half], a[a["day"] >= half]
        w = alate["energy_kwh"].clip(lower=0)
        out.append({"managers": n, "markup": float(alate["markup"].mean()),
                    "lerner": float(late["lerner"].mean()), "welfare_loss": float(late["welfare_loss"].mean()),
                    "welfare_loss_pct": float(100 * (late["welfare_loss"] / late["welfare_competitive"]).mean()),
                    "exploitability_max": float(late["exploitability_max"].mean()),
                    "best_response_markup": float(alate["best_markup"].mean()),
                    "hhi": float(late["hhi"].mean()), "energy_weighted_markup":
                    float((alate["markup"] * w).sum() / w.sum()) if w.sum() > 0 else float("nan")})
    return pd.DataFrame(out)


def plot(days: pd.DataFrame, agents: pd.DataFrame, table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(11, 7))
    ax[0, 0].plot(table["managers"], table["markup"], "o-", label="markup ($/kWh)")
    ax[0, 0].plot(table["managers"], table["lerner"], "s-", label="Lerner")
    ax[0, 0].set(xlabel="DER managers", title="last half of the days"), ax[0, 0].legend()
    ax[0, 1].plot(table["managers"], table["welfare_loss"], "o-")
    ax[0, 1].set(xlabel="DER managers", ylabel="$ per day", title="welfare loss vs competitive offers")
    mono = agents[agents["managers"] == table["managers"].min()]
    ex = mono.dropna(subset=["exploitability"])
    ax[1, 0].plot(mono["day"], mono["markup"], label="learner's markup")
    ax[1, 0].plot(ex["day"], ex["best_markup"], "x", label="analyst's best response")
    ax[1, 0].set(xlabel="day", ylabel="$/kWh", title="monopoly: markup"), ax[1, 0].legend()
    ax[1, 1].plot(ex["day"], ex["exploitability"], "o-")
    ax[1, 1].set(xlabel="day", ylabel="$", title="monopoly: exploitability")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--every", type=int, default=5, help="exploitability every N days (and on the last)")
    ap.add_argument("--strategy", default="roth-erev")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--counts", type=int, nargs="+", default=[1, 2, 3, 5])
    ap.add_argument("--grid", default="analyst", choices=sorted(GRIDS), help="the learners' markup grid")
    ap.add_argument("--out", default="results/compare-competition")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = [run_count(n, a.days, a.every, a.strategy, a.seed, GRIDS[a.grid]) for n in a.counts]
    days = pd.concat([p[0] for p in parts], ignore_index=True)
    agents = pd.concat([p[1] for p in parts], ignore_index=True)
    days.to_parquet(out / "competition_days.parquet")
    agents.to_parquet(out / "competition.parquet")
    table = summary(days, agents)
    pd.set_option("display.width", 160)
    print(table.round(4).to_string(index=False))
    mono = agents[agents["managers"] == min(a.counts)].dropna(subset=["exploitability"])
    third = max(1, len(mono) // 3)
    print(f"monopoly ({min(a.counts)} manager): exploitability first third {mono['exploitability'][:third].mean():.2f} $,"
          f" last third {mono['exploitability'][-third:].mean():.2f} $; |markup - best response| first third "
          f"{(mono['markup'] - mono['best_markup']).abs()[:third].mean():.4f}, last third "
          f"{(mono['markup'] - mono['best_markup']).abs()[-third:].mean():.4f} $/kWh")
    plot(days, agents, table, out / "competition.png")
    print(f"wrote {out}/competition.parquet, competition_days.parquet, competition.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
