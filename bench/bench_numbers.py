"""Headline numbers of both protocols, to show that a change leaves them alone (run by hand).

    python3 bench/bench_numbers.py [--save FILE] [--compare FILE] [--rtol 1e-9]

Runs, through the command line (so it does not depend on the code layout):

- ``tes-day`` on ``tes_feeder`` with personalized and with uniform pricing: the load
  aggregator's objective, the centralized objective, the schedule (kW per source and
  hour) and the personalized prices;
- ``tso-dso --scenarios 5 --oos 20``: per scheme, the day-ahead welfare, the in-sample
  and out-of-sample expected welfare, the Benders iterations.

``--save`` writes the figures as JSON; ``--compare`` reads such a file and prints, per
figure, the largest relative difference ``|a - b| / max(1, |b|)`` against it, and exits
1 if one exceeds ``--rtol``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], out: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *args, "--out", str(out)], capture_output=True,
                          text=True, cwd=str(out.parent))
    if proc.returncode != 0:
        raise SystemExit(f"error: run.py {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return time.perf_counter() - t0


def tes_figures(tmp: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for pricing in ("personalized", "uniform"):
        folder = tmp / f"tes-{pricing}"
        _run(["tes-day", "--pricing", pricing], folder)
        w = pd.read_parquet(folder / "welfare.parquet")
        d = pd.read_parquet(folder / "dispatch.parquet").sort_values(["source", "hour"])
        p = pd.read_parquet(folder / "prices.parquet").sort_values(["customer", "hour"])
        out[f"tes/{pricing}/objective"] = [float(w["decomposed_objective"].iloc[0])]
        out[f"tes/{pricing}/centralized"] = [float(w["centralized_objective"].iloc[0])]
        out[f"tes/{pricing}/iterations"] = [float(w["iterations"].iloc[0])]
        out[f"tes/{pricing}/schedule_kw"] = d["kw"].astype(float).tolist()
        out[f"tes/{pricing}/prices"] = p["price_usd_per_kwh"].astype(float).tolist()
    return out


def tso_dso_figures(tmp: Path) -> dict[str, list[float]]:
    folder = tmp / "tso-dso"
    _run(["tso-dso", "--scenarios", "5", "--oos", "20"], folder)
    w = pd.read_parquet(folder / "welfare.parquet").sort_values("scheme")
    out: dict[str, list[float]] = {}
    for _, row in w.iterrows():
        s = row["scheme"]
        for col in ("da_welfare", "in_sw_expected", "oos_sw_expected", "iterations", "upper", "lower"):
            if col in row.index:
                out[f"tso-dso/{s}/{col}"] = [float(row[col])]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save", type=Path)
    ap.add_argument("--compare", type=Path)
    ap.add_argument("--rtol", type=float, default=1e-9)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        figs = {**tes_figures(Path(d)), **tso_dso_figures(Path(d))}
    for k, v in figs.items():
        shown = v if len(v) <= 3 else f"{len(v)} values, sum {sum(v):.9g}"
        print(f"{k:40s} {shown}")
    print(f"wall time {time.perf_counter() - t0:.1f} s")
    if a.save:
        a.save.write_text(json.dumps(figs, indent=1))
        print(f"saved {a.save}")
    if a.compare:
        ref = json.loads(a.compare.read_text())
        worst = 0.0
        print(f"\n{'figure':40s} {'max rel diff':>14s}")
        for k in sorted(set(ref) | set(figs)):
            if k not in ref or k not in figs or len(ref[k]) != len(figs[k]):
                print(f"{k:40s} {'missing/shape':>14s}")
                worst = np.inf
                continue
            a_, b_ = np.asarray(figs[k]), np.asarray(ref[k])
            diff = float(np.max(np.abs(a_ - b_) / np.maximum(1.0, np.abs(b_)))) if a_.size else 0.0
            worst = max(worst, diff)
            print(f"{k:40s} {diff:14.3e}")
        print(f"largest relative difference {worst:.3e} (rtol {a.rtol:g})")
        return 0 if worst <= a.rtol else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
