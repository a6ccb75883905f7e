"""The analyst's profit curves of a tes case: each DER manager's day profit against its own markup (run by hand).

    python3 bench/profit_curves.py --case tes_feeder --days 120 [--step 0.005] [--cap 0.16] [--agents DERM]
                                   [--seed 0] [--out results/curves-tes_feeder]
    python3 bench/profit_curves.py --managers 3 --agents DER1 ...    # tes_oligopoly3 on tes_feeder's days
    python3 bench/profit_curves.py --managers 2 --scale 1 --agents DER1 --days 7 --step 0.01  # 2 x half of it
    python3 bench/profit_curves.py --network --every 3 --analyst-grid ...  # the game with the network limits

For each generated day (``scenarios/days.py``, seeded like the studies) every DER manager offers at
marginal cost; then, for each listed agent and each markup m of the grid 0, step, ..., cap ($/kWh), the
analyst re-solves the unconstrained market (the metrics' model: the load aggregator without the network
limits) with that agent's units at ``clip(c + m, floor, cap_t)`` and its rivals at their competitive
offers, and records the agent's profit ($, paid as bid). ``--network``: the re-solves keep the network
limits (the LA problem with the operator's LinDist3Flow limits inside, the centralized benchmark's model,
which the decomposed market converges to): the game the sellers actually play, where the metrics' default
re-solves leave the limits out; ``--every K``: the curves of every K-th day only; ``--analyst-grid``: the
markups of the analyst's exploitability grid instead of ``--step``. With one DER manager (a monopoly against the
main grid) this is the day's whole game: the learner's reward of each arm, whatever it played before.
With rivals it is the unilateral market power of each agent (its best markup against competitive
rivals). Also writes, per day and hour, the competitive schedule: demand, main-grid purchases, DER
capacity offered below the main grid's price, DER energy bought (kW).

Writes ``curves.parquet`` (day, agent, markup, profit, energy_kwh) and ``hours.parquet``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.base import SolveError  # noqa: E402
from coordinator.boundary import Boundary  # noqa: E402
from coordinator.runtime import LocalRuntime  # noqa: E402
from coordinator.simulation import TESMarketModel  # noqa: E402
from coordinator.tes.analysis import network_constraints  # noqa: E402
from coordinator.tes.metrics import EXPLOIT_GRID, competitive_offers, profit_of  # noqa: E402
from coordinator.tes.setup import Roles, _param, make_agents  # noqa: E402
from scenarios.build_tes_competition import FLEET_SCALE, oligopoly_case, split_profiles  # noqa: E402
from scenarios.days import DayGenerator  # noqa: E402
from scenarios.registry import load_case  # noqa: E402
from scenarios.study_tes import config_of, load  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="tes_feeder")
    ap.add_argument("--managers", type=int, default=None,
                    help="instead of --case: tes_feeder split among N identical managers (tes_oligopoly<N>) "
                         "on tes_feeder's generated days")
    ap.add_argument("--scale", type=float, default=FLEET_SCALE, help="--managers: the factor on tes_feeder's ratings")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--step", type=float, default=0.005, help="markup grid step ($/kWh)")
    ap.add_argument("--cap", type=float, default=0.16, help="largest markup of the grid ($/kWh)")
    ap.add_argument("--agents", nargs="*", default=None, help="DER managers to sweep (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--network", action="store_true", help="re-solve with the network limits inside")
    ap.add_argument("--every", type=int, default=1, help="curves of every K-th day")
    ap.add_argument("--analyst-grid", action="store_true", help="the analyst's exploitability grid")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.managers is not None:
        base = load_case("tes_feeder")
        case = oligopoly_case(base, a.managers, a.scale)
        profiles = [split_profiles(base, p, a.managers, a.scale) for p in DayGenerator(base, a.seed).year(a.days)]
    else:
        case = load_case(a.case)
        profiles = DayGenerator(case, a.seed).year(a.days)
    out = Path(a.out or f"results/curves-{case.name}")
    out.mkdir(parents=True, exist_ok=True)
    study = load({"case": case.name, "days": a.days, "seed": a.seed, "default": {"strategy": "marginal-cost"}},
                 "<curves>")
    config = config_of(study, case)
    model = TESMarketModel(case, LocalRuntime(Boundary()), config, seed=a.seed, benchmarks=False, profiles=profiles,
                           network_reports=False)
    roles = Roles.of(case)
    agents = a.agents or list(roles.der_managers)
    grid = (np.asarray(EXPLOIT_GRID) if a.analyst_grid else np.round(np.arange(0, a.cap + 1e-9, a.step), 6))
    net = network_constraints(make_agents(case, config)["operator"]) if a.network else None
    rows, hours = [], []
    t0 = time.perf_counter()
    for d in range(a.days):
        model.step()
        res = model.results[-1]
        day_case = model.case_of(d)
        (mg,) = day_case.units_of(roles.main_grid)
        owner = {u.id: o for o in roles.der_managers for u in day_case.units_of(o)}
        cost = {u.id: (0.0 if np.isnan(u.cost) else float(u.cost)) for o in roles.der_managers
                for u in day_case.units_of(o)}
        lmp = day_case.profile(mg.price_profile)
        cap = np.maximum(_param(day_case, "der_price_cap_floor"), lmp)
        floor = _param(day_case, "der_price_min")
        la = model.protocol.analyst.market()
        comp = competitive_offers(res.offers, cost, cap, floor, set(owner))
        sol = la.solve(comp, cuts=(), network=net)
        demand = np.sum([np.asarray(v, float) for v in sol.loads.values()], axis=0)
        below = sum(np.where(comp[u][0] < lmp - 1e-9, np.minimum(comp[u][1], 1e12), 0.0) for u in owner)
        der = sum(np.asarray(sol.purchases[u], float) for u in owner)
        for t in range(len(demand)):
            hours.append({"day": d, "hour": t, "lmp": lmp[t], "demand_kw": demand[t],
                          "grid_kw": float(sol.purchases[mg.id][t]), "der_kw": der[t],
                          "der_capacity_below_lmp_kw": below[t],
                          "der_capacity_kw": float(sum(np.minimum(comp[u][1][t], 1e12) for u in owner))})
        for ag in (agents if d % a.every == 0 else []):
            for m in grid:
                dev = {u: ((np.clip(cost[u] + m, floor, cap), q) if owner.get(u) == ag else (p, q))
                       for u, (p, q) in comp.items()}
                try:
                    s = la.solve(dev, cuts=(), network=net)
                except SolveError as e:  # as in the metrics' exploitability: left out (NaN) and said
                    print(f"\n day {d} markup {m:g}: {e}")
                    rows.append({"day": d, "agent": ag, "markup": float(m), "profit": float("nan"),
                                 "energy_kwh": float("nan")})
                    continue
                rows.append({"day": d, "agent": ag, "markup": float(m),
                             "profit": profit_of(ag, dev, s.purchases, cost, owner),
                             "energy_kwh": float(sum(np.sum(s.purchases[u]) for u in owner if owner[u] == ag))})
        print(f"\r day {d + 1}/{a.days}, {time.perf_counter() - t0:.0f} s", end="", flush=True)
        pd.DataFrame(rows).to_parquet(out / "curves.parquet")
        pd.DataFrame(hours).to_parquet(out / "hours.parquet")
    print()
    model.runtime.shutdown()
    print(f"wrote {out}/curves.parquet, hours.parquet")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
