"""Short command-line runs shared by test modules (not tests themselves)."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

import run as cli


def short_tso_dso(case_dir: Path, run_dir: Path) -> pd.DataFrame:
    """``run.py tso-dso`` on a case folder with 2 scenarios, no out-of-sample and the cm scheme; its
    welfare table, checked to have run (exit 0, a finite upper bound of cm)."""
    assert cli.main(["tso-dso", "--case", str(case_dir), "--scenarios", "2", "--oos", "0", "--schemes", "cm",
                     "--out", str(run_dir)]) == 0
    w = pd.read_parquet(run_dir / "welfare.parquet")
    assert w.loc[0, "scheme"] == "cm" and math.isfinite(float(w.loc[0, "upper"]))
    return w
