"""Benchmark: build and solve a 24-hour LinDist3Flow feasibility LP (run by hand).

    python3 bench/bench_lindist3flow.py [--solver HIGHS] [--form auto|dense|sparse] [--skip-european]
                                        [--no-reduce]

For each feeder it times
- ``model``: building :class:`network.lindist3flow.LinDist3Flow` (the affine maps);
- ``build``: model + cvxpy problem (variables, Parameters, all network limits) +
  the first compilation (cvxpy canonicalisation, reported by cvxpy);
- ``solve``: the solver's own time, and ``resolve``: a second solve after the
  Parameters (baselines, availability) changed, wall clock including cvxpy's
  parameter update.
The LP: loads either free within their bands or fixed at baseline (q = p tan_phi),
units within [p_min, availability], every network limit (voltage, line P/Q,
import); objective: minimum head import. The constraint builder is given the metered node-phases (``active``), so
it keeps only the limit rows that can bind (exact; ``--no-reduce`` keeps all);
the solution is then checked against every row. Targets: build <= 2 s,
solve <= 3 s on 2 cores.

Feeders: tes_feeder (scenarios/data); pandapower's ``ieee_european_lv_asymmetric``
through ``network.importers`` if that module is available; and a synthetic
~900-node random three-phase radial feeder (always, so the bench runs regardless).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from network.io import read_case  # noqa: E402
from network.lindist3flow import LinDist3Flow  # noqa: E402
from network.model import Case, Feeder, FeederLine, FeederNode, Load, Owner, Unit  # noqa: E402

T = 24
# a residential-looking daily shape (per unit of peak) for loads without a profile
SHAPE = np.array([0.45, 0.4, 0.38, 0.37, 0.38, 0.45, 0.6, 0.75, 0.7, 0.6, 0.55, 0.55,
                  0.6, 0.55, 0.5, 0.5, 0.6, 0.8, 0.95, 1.0, 0.95, 0.8, 0.65, 0.5])
SUN = np.clip(np.sin(np.pi * (np.arange(T) + 0.5 - 6) / 13), 0, None) ** 1.3


# --------------------------------------------------------------------------- feeders


def european_lv() -> Case | None:
    """The pandapower IEEE European LV case through network.importers, if present."""
    try:
        import network.importers as imp  # type: ignore[import-not-found]
    except ImportError as exc:
        print(f"  (network.importers not available: {exc})")
        return None
    if callable(getattr(imp, "import_pandapower_case", None)):
        return imp.import_pandapower_case("ieee_european_lv_asymmetric")
    for name in ("import_pandapower_european_lv", "european_lv", "import_european_lv", "ieee_european_lv"):
        fn = getattr(imp, name, None)
        if callable(fn):
            return fn()
    print(f"  (network.importers has no European LV importer; found {[n for n in dir(imp) if not n.startswith('_')]})")
    return None


def synthetic_feeder(n_nodes: int = 900, n_loads: int = 55, n_pv: int = 10, seed: int = 7) -> Case:
    """A random three-phase radial LV feeder: a long trunk with laterals, 5-30 m
    0.5-6 m cable sections (like the European LV case), single-phase households on random phases and a few PV units."""
    rng = np.random.default_rng(seed)
    zb = 0.22 ** 2 / 1.0  # 0.0484 ohm, 1000 kVA per phase
    rs, rm, xs, xm = 0.27, 0.12, 0.17, 0.09  # ohm/km (CAB4x240AL-like)
    nodes = [FeederNode("0", "abc", None)]
    lines = []
    for i in range(1, n_nodes):
        # prefer recent nodes as parents: long chains with occasional branching
        parent = i - 1 if rng.random() < 0.85 else int(rng.integers(max(0, i - 60), i))
        length = rng.uniform(0.0005, 0.006)
        r = (np.full((3, 3), rm) + np.eye(3) * (rs - rm)) * length / zb
        x = (np.full((3, 3), xm) + np.eye(3) * (xs - xm)) * length / zb
        nodes.append(FeederNode(str(i), "abc", str(parent), 0.9, 1.1))
        lines.append(FeederLine(f"L{i}", str(parent), str(i), "abc", r, x, p_max=0.25, q_max=0.25))
    f = Feeder("SYN", nodes, lines, n_phases=3, v_head=1.03, import_min=-200.0, import_max=400.0)
    at = rng.choice(np.arange(1, n_nodes), size=n_loads + n_pv, replace=False)
    loads = [Load(f"H{k}", "RL", "LA", "SYN", str(at[k]), "abc"[k % 3], p_max=float(rng.uniform(2, 6)),
                  tan_phi=0.33, band_min=0.9, band_max=1.1, beta=0.05, baseline_profile=f"p0_H{k}")
             for k in range(n_loads)]
    units = [Unit(f"PV{k}", "pv", "DERM", "SYN", str(at[n_loads + k]), "abc", p_max=40.0, avail_profile="pv")
             for k in range(n_pv)]
    prof = {f"p0_H{k}": loads[k].p_max * SHAPE * rng.uniform(0.8, 1.0, T) for k in range(n_loads)}
    prof["pv"] = 40.0 * SUN
    import pandas as pd

    return Case("synthetic900", feeders=[f], owners=[Owner("LA", "load_aggregator"), Owner("DERM", "der_manager")],
                units=units, loads=loads, profiles=pd.DataFrame(prof), parameters={"horizon": T}, power_unit="kW")


# --------------------------------------------------------------------------- LP


def _series(case: Case, column: str | None, default: float) -> np.ndarray:
    if column is not None and column in case.profiles.columns:
        v = case.profile(column)
        return np.resize(v, T) if len(v) != T else v
    return np.full(T, default)


def day_lp(case: Case, feeder_id: str, *, free_loads: bool, form: str, reduce: bool = True):
    t0 = time.perf_counter()
    f = case.feeders[feeder_id]
    model = LinDist3Flow(f, power_unit=case.power_unit)
    t_model = time.perf_counter() - t0
    loads = [d for d in case.loads if d.grid == feeder_id and d.node != f.head]
    units = [u for u in case.units if u.grid == feeder_id and u.node != f.head and u.kind != "main_grid"]
    base = np.array([_series(case, d.baseline_profile, d.p_max) if d.baseline_profile else d.p_max * SHAPE
                     for d in loads]).reshape(len(loads), T)
    avail = np.array([_series(case, u.avail_profile, u.p_max) for u in units]).reshape(len(units), T)
    nz = lambda v, d: d if math.isnan(v) else v  # noqa: E731
    lo = np.array([nz(d.band_min, 0.9) for d in loads])[:, None]
    hi = np.array([nz(d.band_max, 1.1) for d in loads])[:, None]
    tan = np.array([nz(d.tan_phi, 0.33) for d in loads])[:, None]
    p0 = cp.Parameter((len(loads), T), value=base)
    av = cp.Parameter((len(units), T), value=avail)
    pl = cp.Variable((len(loads), T), name="p_load")
    pg = cp.Variable((len(units), T), name="p_unit")
    a_l = model.injection_matrix(case.meters, [d.id for d in loads])
    a_g = model.injection_matrix(case.meters, [u.id for u in units], sign=-1.0)
    p_net = a_l @ pl + a_g @ pg
    q_net = a_l @ cp.multiply(tan, pl)
    nc = model.constraints(p_net, q_net, form=form, active=sp.hstack([a_l, a_g]) if reduce else None)
    pmin = np.array([u.p_min for u in units])[:, None]
    cons = [pg >= pmin, pg <= av] + nc.constraints
    cons += [pl >= cp.multiply(lo, p0), pl <= cp.multiply(hi, p0)] if free_loads else [pl == p0]
    prob = cp.Problem(cp.Minimize(cp.sum(p_net)), cons)
    t_problem = time.perf_counter() - t0
    return prob, model, nc, (p0, av, base, avail), t_model, t_problem


def run(case: Case, feeder_id: str, solver: str, form: str, reduce: bool = True) -> None:
    f = case.feeders[feeder_id]
    print(f"\n{case.name}/{feeder_id}: {f.n_nodes} nodes, {f.n_lines} lines, "
          f"{sum(len(n.phases) for n in f.nodes if n.id != f.head)} node-phases")
    for free in (True, False):
        prob, model, nc, (p0, av, base, avail), t_model, t_problem = day_lp(case, feeder_id, free_loads=free,
                                                                               form=form, reduce=reduce)
        t0 = time.perf_counter()
        prob.solve(solver=solver)
        t_first = time.perf_counter() - t0
        comp = prob.compilation_time or 0.0
        solve = prob.solver_stats.solve_time
        # check the solution against every (unreduced) limit row
        p_net, q_net = _net(prob, model, case, feeder_id)
        worst = max(float(u.max()) for u in model.limit_values(p_net, q_net).values())
        # second solve with changed data (Parameters): loads +2 %, availability -5 %
        p0.value, av.value = base * 1.02, avail * 0.95
        t0 = time.perf_counter()
        prob.solve(solver=solver)
        t_re = time.perf_counter() - t0
        rows = sum(fc.family.n_rows for fc in nc.values()) * T
        print(f"  loads {'free in band' if free else 'at baseline '} [{nc.form}, {solver}]: "
              f"model {t_model:.3f} s, problem {t_problem:.3f} s, build {t_problem + comp:.3f} s "
              f"(compile {comp:.3f}), solve {solve if solve is not None else float('nan'):.3f} s "
              f"(first call {t_first:.3f}), resolve {t_re:.3f} s; status {prob.status}; "
              f"{rows} limit rows kept of {sum(f.n_rows for f in model.families.values()) * T}; "
              f"vars {sum(v.size for v in prob.variables())}; max u over all rows {worst:.2e}")


def _net(prob: cp.Problem, model: LinDist3Flow, case: Case, feeder_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Numeric p_net, q_net of the solution (the loads' and units' variables by name)."""
    f = case.feeders[feeder_id]
    var = {v.name(): v for v in prob.variables()}
    loads = [d for d in case.loads if d.grid == feeder_id and d.node != f.head]
    units = [u for u in case.units if u.grid == feeder_id and u.node != f.head and u.kind != "main_grid"]
    tan = np.array([0.33 if math.isnan(d.tan_phi) else d.tan_phi for d in loads])[:, None]
    a_l = model.injection_matrix(case.meters, [d.id for d in loads])
    a_g = model.injection_matrix(case.meters, [u.id for u in units], sign=-1.0)
    pl, pg = var["p_load"].value, var["p_unit"].value
    return a_l @ pl + a_g @ pg, a_l @ (tan * pl)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--solver", default="HIGHS")
    ap.add_argument("--form", default="auto", choices=["auto", "dense", "sparse"])
    ap.add_argument("--skip-european", action="store_true")
    ap.add_argument("--no-reduce", action="store_true", help="keep every limit row (no exact row reduction)")
    args = ap.parse_args(argv)
    red = not args.no_reduce
    print(f"cvxpy {cp.__version__}, {os.cpu_count()} cpus, solver {args.solver}, "
          f"{'exact row reduction' if red else 'all rows'}")
    run(read_case(ROOT / "scenarios" / "data" / "tes_feeder"), "LV1", args.solver, args.form, red)
    if not args.skip_european:
        t0 = time.perf_counter()
        eu = european_lv()
        if eu is not None:
            print(f"  (European LV import took {time.perf_counter() - t0:.2f} s)")
            run(eu, next(iter(eu.feeders)), args.solver, args.form, red)
    run(synthetic_feeder(), "SYN", args.solver, args.form, red)


if __name__ == "__main__":
    main()
