"""Replay monopoly learners on the analyst's profit curves (run by hand; no market is solved).

    python3 bench/replay_learners.py results/curves-tes_feeder/curves.parquet [--seeds 0 1 2 3 4 5]
    python3 bench/replay_learners.py CURVES --study scenarios/studies/tes_monopoly.toml   # its learner only
    python3 bench/replay_learners.py CURVES --run RUN_FOLDER      # a study's thirds, and judged on CURVES' game

``CURVES``: ``bench/profit_curves.py``'s table for a one-manager case (day, markup, profit): with one DER
manager the day's profit of each markup does not depend on what the learner played before, so a learner can
be replayed on it (its reward: the profit of the curve's markup nearest to the one it plays; the
observation: that profit on one unit and one hour). Prints, per learner and seed, by thirds of the days: the
mean played markup, the mean |played - best response| (the analyst's best markup of its exploitability grid,
``coordinator.tes.metrics.EXPLOIT_GRID``) and the mean exploitability against that grid; and the benchmark
of a learner without context: the best single markup in hindsight per third and its exploitability.
``--run``: the same thirds for a study's run folder (its ``agents.parquet``).
"""
from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.strategies import Observation, make_strategy  # noqa: E402
from coordinator.tes.metrics import EXPLOIT_GRID  # noqa: E402

#: the learners replayed by default: the earlier monopoly study's Roth-Erev (the analyst's grid, as
#: bench/compare_competition.py ran it) and tes_monopoly.toml's learner
OLD_ROTH_EREV = ("roth-erev", {"grid": list(EXPLOIT_GRID), "recency": 0.05, "experimentation": 0.1})
STUDY = Path(__file__).resolve().parents[1] / "scenarios" / "studies" / "tes_monopoly.toml"


def study_learner(path: Path) -> tuple[str, dict]:
    table = dict(tomllib.loads(path.read_text(encoding="utf-8"))["agents"]["DERM"])
    return table.pop("strategy"), table


def replay(curves: pd.DataFrame, name: str, params: dict, seed: int) -> pd.DataFrame:
    P = curves.pivot(index="day", columns="markup", values="profit").sort_index()
    ms = P.columns.to_numpy(float)
    col = {m: int(np.argmin(np.abs(ms - m))) for m in EXPLOIT_GRID}
    s = make_strategy(name, strict=True, seed=seed, **params)
    one = lambda v: np.array([[float(v)]])  # noqa: E731
    rows = []
    for d in range(len(P)):
        m = float(s.markup)
        row = P.iloc[d].to_numpy(float)
        r = float(row[int(np.argmin(np.abs(ms - m)))])
        an = {g: row[c] for g, c in col.items()}
        best = max(an, key=an.get)
        rows.append({"day": int(P.index[d]), "markup_played": m, "best_markup": best,
                     "exploitability": max(0.0, max(an[best], r) - r)})
        s.observe(Observation(cost=one(0), cap=np.array([1.0]), floor=0.0, offer=one(1), offered=one(1e9),
                              sold=one(max(r, 0.0)), paid=one(1)))
        s.update(r)
    return pd.DataFrame(rows)


def by_thirds(df: pd.DataFrame) -> pd.DataFrame:
    df = df.dropna(subset=["exploitability"]).copy()
    df["third"] = pd.cut(df["day"], 3, labels=["first", "second", "last"])
    df["gap"] = (df["markup_played"] - df["best_markup"]).abs()
    return df.groupby("third", observed=True).agg(markup=("markup_played", "mean"), best=("best_markup", "mean"),
                                                  gap=("gap", "mean"), exploitability=("exploitability", "mean"))


def against_curves(run: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """A study's plays judged on ``curves`` (e.g. with the network limits): per day of the curves, the best
    markup of the analyst's grid and its profit minus the run's own (settled) profit."""
    P = curves.pivot(index="day", columns="markup", values="profit").sort_index()
    ms = P.columns.to_numpy(float)
    rows = []
    for d, r in run.set_index("day").iterrows():
        if d not in P.index:
            continue
        an = {g: float(P.loc[d].iloc[int(np.argmin(np.abs(ms - g)))]) for g in EXPLOIT_GRID}
        an = {g: v for g, v in an.items() if np.isfinite(v)}
        best = max(an, key=an.get)
        rows.append({"day": d, "markup_played": r["markup_played"], "best_markup": best,
                     "exploitability": max(0.0, an[best] - r["profit"])})
    return pd.DataFrame(rows)


def hindsight(curves: pd.DataFrame) -> pd.DataFrame:
    """Per third: the best single markup of the analyst's grid in hindsight and its mean exploitability."""
    P = curves.pivot(index="day", columns="markup", values="profit").sort_index()
    ms = P.columns.to_numpy(float)
    A = np.stack([P.iloc[:, int(np.argmin(np.abs(ms - g)))].to_numpy(float) for g in EXPLOIT_GRID], axis=1)
    A = np.where(np.isfinite(A), A, -np.inf)  # a re-solve that failed: never the best
    ex = A.max(axis=1, keepdims=True) - A
    third = pd.cut(P.index, 3, labels=["first", "second", "last"])
    out = []
    for t in ["first", "second", "last"]:
        e = ex[np.asarray(third == t)].mean(axis=0)
        out.append({"third": t, "best_fixed_markup": EXPLOIT_GRID[int(np.argmin(e))], "its_exploitability": e.min()})
    e = ex.mean(axis=0)
    out.append({"third": "all", "best_fixed_markup": EXPLOIT_GRID[int(np.argmin(e))], "its_exploitability": e.min()})
    return pd.DataFrame(out).set_index("third")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("curves")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--study", default=None, help="replay only this study file's [agents.DERM] learner")
    ap.add_argument("--run", default=None, help="a study run folder: its learner's thirds")
    a = ap.parse_args()
    curves = pd.read_parquet(a.curves)
    pd.set_option("display.width", 160)
    print(f"{curves['day'].nunique()} days; the benchmark without context (best single markup in hindsight):")
    print(hindsight(curves).round(4).to_string())
    if a.run:
        ag = pd.read_parquet(Path(a.run) / "agents.parquet")
        print(f"\nrun {a.run}, the analyst's metrics (its exploitability re-solves):\n{by_thirds(ag).round(4).to_string()}")
        print(f"\nthe same run on the days of CURVES, against CURVES' game (exploitability: CURVES' best profit "
              f"on the analyst's grid minus the run's own profit; best markup: CURVES' argmax):")
        print(by_thirds(against_curves(ag, curves)).round(4).to_string())
        return 0
    learners = [study_learner(Path(a.study))] if a.study else [OLD_ROTH_EREV, study_learner(STUDY)]
    for name, params in learners:
        print(f"\n{name} {({k: v for k, v in params.items() if k != 'grid'})}, grid {params.get('grid')}")
        for seed in a.seeds:
            t = by_thirds(replay(curves, name, params, seed))
            print(f"  seed {seed}: " + " | ".join(f"{k}: markup {r.markup:.3f} gap {r.gap:.3f} exploitability "
                                                  f"{r.exploitability:5.1f}" for k, r in t.iterrows()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
