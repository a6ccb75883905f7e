"""The Mesa shell of a ``tso-dso`` strategic study: one model step is one market day.

Each day has its own wind: a new in-sample draw from the case's wind model with the day's
seed ``SeedSequence([seed, day])`` (the same study seed gives the same year). A day runs the
protocol twice on that wind, each on a fresh runtime (the TSO's and DSOs' cuts are valid for
one day's scenarios only):

1. the *strategic* run: every participant with a strategy offers at the price it chooses
   (``agents/tso_dso/strategic.py``), the others at the case's prices; after the scheme's final
   schedules, ``END_OF_DAY`` lets each strategy observe the day and learn; the strategies are
   then taken back from the participants' snapshots (they carry over to the next day);
2. the *competitive* benchmark: every participant at the case's prices (= marginal cost / value).

The analyst's figures of both runs (``market_power.day_figures``) are recorded per day and per
participant; a ``DataCollector`` records the day's headline figures. Participants are
``mesa.Agent``s holding their strategy between days. Works on Mesa 3.3 and 3.5 (``rng=``,
``step()`` without arguments, frames re-indexed by ``day``).
"""
from __future__ import annotations

import math
import pickle
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import mesa
import numpy as np
import pandas as pd

from network.model import Case

from ..boundary import Boundary
from ..host import Host
from ..runtime import LocalRuntime
from .market_power import day_figures
from .protocol import TSODSOProtocol
from .results import SchemeResult
from .setup import Roles, TSODSOConfig

__all__ = ["day_seed", "TSODSOMarketModel", "StudyParticipant"]


def day_seed(seed: int, day: int) -> int:
    """The wind seed of ``day`` of a study with ``seed`` (independent streams per day)."""
    return int(np.random.SeedSequence([int(seed), int(day)]).generate_state(1)[0])


class StudyParticipant(mesa.Agent):
    """A participant in the Mesa shell: its strategy between days and its last day's figures."""

    def __init__(self, model: "TSODSOMarketModel", agent_id: str, role: str, strategy: Any) -> None:
        super().__init__(model)
        self.agent_id, self.role, self.strategy = agent_id, role, strategy
        self.profit = math.nan
        self.markup = math.nan


class TSODSOMarketModel(mesa.Model):
    """A sequence of tso-dso market days with strategic participants and their competitive benchmark.

    ``wind_model``: ``scenarios.tso_dso.wind.WindModel`` of the case (anything with
    ``scenarios(factor, n_in, n_oos, seed=)``); ``strategies``: participant id -> strategy;
    ``grids``: participant id -> the markups of the analyst's exploitability search ($/MWh);
    ``audit_dir``: one audit log per run (``day-NNNN.jsonl.gz``, ``day-NNNN-competitive.jsonl.gz``).
    """

    def __init__(self, case: Case, config: TSODSOConfig, wind_model: Any, *, factor: float, scenarios: int,
                 strategies: Mapping[str, Any], seed: int = 0, grids: Mapping[str, Sequence[float]] | None = None,
                 exploitability_every: int = 1, audit_dir: str | Path | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        super().__init__(rng=seed)
        if len(config.schemes) != 1 or config.schemes[0] not in ("pcc", "cm"):
            raise ValueError(f"a strategic day runs one scheme with a day-ahead price, pcc or cm; got {config.schemes}")
        self.case, self.config, self.wind_model = case, config, wind_model
        self.factor, self.n_scenarios, self.seed = float(factor), int(scenarios), int(seed)
        self.grids = dict(grids or {})
        self.exploitability_every = int(exploitability_every)
        self.audit_dir = None if audit_dir is None else Path(audit_dir)
        self.progress = progress or (lambda s: None)
        self.roles = Roles.of(case)
        self.owner = {a.id: a.owner for a in (*case.units, *case.loads) if a.kind != "main_grid"}
        self.case_price = {a.id: (a.offer_da if hasattr(a, "offer_da") else a.bid_da)
                           for a in (*case.units, *case.loads) if a.kind != "main_grid"}
        self.day = 0
        self.day_rows: list[dict[str, Any]] = []
        self.agent_rows: list[dict[str, Any]] = []
        self.cap_rows: list[dict[str, Any]] = []
        self.participants = [StudyParticipant(self, p, r, strategies.get(p))
                             for p, r in self.roles.participants.items()]
        self.datacollector = mesa.DataCollector(model_reporters={
            "day": lambda m: m.day_rows[-1]["day"],
            "da_price": lambda m: m.day_rows[-1]["da_price"],
            "da_price_competitive": lambda m: m.day_rows[-1]["da_price_comp"],
            "welfare": lambda m: m.day_rows[-1]["welfare"],
            "welfare_loss": lambda m: m.day_rows[-1]["welfare_loss"],
            "lerner": lambda m: m.day_rows[-1]["lerner"],
            "hhi": lambda m: m.day_rows[-1]["hhi"],
            "caps_gen_mw": lambda m: m.day_rows[-1]["caps_gen_mw"],
        }, agent_reporters={"profit": "profit", "markup": "markup"})

    # ---------------------------------------------------------------- one run of the protocol
    def _run(self, wind: Any, strategies: Mapping[str, Any] | None, tag: str
             ) -> tuple[SchemeResult, dict[str, Any], dict[str, dict[str, Any]]]:
        """One scheme on ``wind`` on a fresh runtime: the result, the strategies after the day, the reports."""
        log = None
        if self.audit_dir is not None:
            self.audit_dir.mkdir(parents=True, exist_ok=True)
            log = self.audit_dir / f"day-{self.day:04d}{tag}.jsonl.gz"
        boundary = Boundary(log)
        runtime = LocalRuntime(boundary)
        try:
            proto = TSODSOProtocol(runtime, self.case, wind, self.config, strategies=strategies,
                                   progress=lambda s: self.progress(f"day {self.day}{tag}: {s}"))
            res = proto.run_scheme(self.config.schemes[0])
            proto.end_of_day()
            parts = list(self.roles.participants)
            reports = dict(zip(parts, runtime.analyst.read_many([(p, "report") for p in parts])))
            runtime.checkpoint()
            after = {p: Host.restore(runtime.last_snapshot(p)).agent.strategy for p in (strategies or {})}
        finally:
            runtime.shutdown()
            boundary.close()
        return res, after, reports

    def wind_of(self, day: int) -> Any:
        return self.wind_model.scenarios(self.factor, self.n_scenarios, 0, seed=day_seed(self.seed, day))

    def step(self) -> None:
        """Clear one market day (strategic and competitive runs on the day's wind), record it."""
        t0 = time.perf_counter()
        wind = self.wind_of(self.day)
        strategies = {p.agent_id: p.strategy for p in self.participants if p.strategy is not None}
        res, after, reports = self._run(wind, strategies, "")
        t1 = time.perf_counter()
        comp, _, _ = self._run(wind, None, "-competitive")
        t2 = time.perf_counter()
        every = self.exploitability_every
        grids = self.grids if every and self.day % every == 0 else None
        day, rows = self._figures(res, grids)
        dc, rows_c = self._figures(comp, None)
        by_agent_c = {r["agent"]: r for r in rows_c}
        out = {"day": self.day, "wind_seed": day_seed(self.seed, self.day),
               "wind_mw": float(np.asarray(wind.in_sample).sum(axis=0).mean()), "iterations": res.n_iterations,
               "converged": bool(res.converged and comp.converged), **day,
               **{f"{k}_comp": v for k, v in dc.items()}, "welfare_loss": dc["welfare"] - day["welfare"],
               "strategic_s": t1 - t0, "competitive_s": t2 - t1}
        for r in rows:
            rc = by_agent_c[r["agent"]]
            r |= {"day": self.day, "strategy": reports[r["agent"]]["strategy"].get("strategy", ""),
                  "profit_comp": rc["profit"], "quantity_mw_comp": rc["quantity_mw"]}
        mk, mkc = res.market, comp.market
        up, upc = mk.bounds(np.asarray(res.caps)), mkc.bounds(np.asarray(comp.caps))
        ic = mkc.index
        for i, k in enumerate(mk.ids):
            if mk.capped[i]:
                self.cap_rows.append({"day": self.day, "resource": k, "area": int(mk.area[i]), "kind": mk.kind[i],
                                      "p_max_mw": float(mk.qty[i]), "cap_mw": float(up[i]),
                                      "cap_mw_comp": float(upc[ic[k]]), "x_mw": float(res.x[i]),
                                      "x_mw_comp": float(comp.x[ic[k]])})
        self.day_rows.append(out)
        self.agent_rows += rows
        for p in self.participants:
            if p.agent_id in after:
                p.strategy = after[p.agent_id]
            r = next(r for r in rows if r["agent"] == p.agent_id)
            p.profit, p.markup = r["profit"], r["markup"]
        self.datacollector.collect(self)
        self.day += 1

    def _figures(self, res: SchemeResult, grids: Mapping[str, Sequence[float]] | None
                 ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        ev = res.in_sample
        assert ev is not None
        return day_figures(res.market, res.x, res.price, res.caps, self.case_price, self.owner,
                           float(ev.welfare.mean()), ev.tables["rt_resources"], grids=grids)

    # ---------------------------------------------------------------- checkpoints (--resume)
    def checkpoint(self) -> bytes:
        """Everything needed to go on after the last finished day (taken between days)."""
        return pickle.dumps({"day": self.day, "strategies": {p.agent_id: p.strategy for p in self.participants},
                             "figures": {p.agent_id: (p.profit, p.markup) for p in self.participants},
                             "day_rows": self.day_rows, "agent_rows": self.agent_rows, "cap_rows": self.cap_rows,
                             "model_vars": {k: list(v) for k, v in self.datacollector.model_vars.items()},
                             "random": self.random.getstate(),
                             "rng": self.rng.bit_generator.state if hasattr(self, "rng") else None})

    def restore(self, blob: bytes) -> None:
        """Go on from a :meth:`checkpoint` of a model built with the same arguments."""
        st = pickle.loads(blob)
        self.day = int(st["day"])
        self.day_rows, self.agent_rows, self.cap_rows = st["day_rows"], st["agent_rows"], st["cap_rows"]
        for p in self.participants:
            p.strategy = st["strategies"].get(p.agent_id)
            p.profit, p.markup = st["figures"].get(p.agent_id, (math.nan, math.nan))
        for k, v in st["model_vars"].items():
            self.datacollector.model_vars[k] = list(v)
        self.random.setstate(st["random"])
        if st.get("rng") is not None and hasattr(self, "rng"):
            self.rng.bit_generator.state = st["rng"]

    def days_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.day_rows)

    def agents_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.agent_rows)

    def caps_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.cap_rows)
