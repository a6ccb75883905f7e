"""The Mesa shell: one model step clears one market day through a protocol.

Participants are ``mesa.Agent``s that hold their strategy's description and a
handle to the runtime where the real agent (its private data and local problem)
lives, possibly in a Ray actor. Between days the participants' strategies adapt
(the DER managers' strategies receive the day's profit). A ``DataCollector``
records per-day figures of the model and of each participant (``agent_reporters``:
role, profit in $, markup in $/kWh, energy sold in kWh; :meth:`TESMarketModel.agents_frame`).

Days that differ (``profiles``: one profiles table per day, e.g. from
:class:`scenarios.days.DayGenerator`): each agent is given its own part of every day
as private data when its host is made (:func:`coordinator.tes.setup.private_days`),
and before each day the coordinator sends ``Command(NEW_DAY, iteration=day)`` to the
main grid, the DER managers and the load aggregator; only the day number travels.
The analyst (benchmarks, metrics) sees the day's whole case (:meth:`TESMarketModel.case_of`).

Works on Mesa 3.3 (Python 3.11) and Mesa 3.5 (Python 3.12+): the model is
seeded with ``rng=``, ``step()`` takes no arguments, and the collected frames are
re-indexed by ``day`` instead of relying on the DataCollector's index type.
"""
from __future__ import annotations

import pickle
from typing import Any, Callable, Sequence

import mesa
import pandas as pd

from network.model import Case

from .boundary import COORDINATOR
from .host import Host
from .messages import Action, Command
from .tes.protocol import DayResult, TESProtocol
from .tes.setup import TESConfig, make_hosts, prepare_case, private_days
from .runtime import Runtime


class Participant(mesa.Agent):
    """A market participant in the Mesa shell: a role, a runtime handle, and its day figures."""

    def __init__(self, model: "TESMarketModel", agent_id: str, role: str) -> None:
        super().__init__(model)
        self.agent_id = agent_id
        self.role = role
        self.profit = 0.0
        self.energy_kwh = 0.0
        self.strategy: dict[str, Any] = {}

    @property
    def markup(self) -> float:
        """The markup its strategy played on the day ($/kWh; NaN for a participant with no offer strategy)."""
        return float(self.strategy.get("markup", 0.0 if self.strategy else float("nan")))

    def observe(self) -> None:
        """Read this participant's published figures for the day from its runtime host (the analyst channel)."""
        rep = self.model.runtime.analyst.read(self.agent_id, "report")
        if self.role == "der_manager":
            self.profit = sum(v["profit"] for v in rep["settlement"].values())
            self.energy_kwh = sum(v["energy"] for v in rep["settlement"].values())
            self.strategy = rep["strategy"]
        elif self.role == "load_aggregator" and rep.get("solution") is not None:
            self.profit = float(rep["solution"].objective)
            self.energy_kwh = float(sum(v.sum() for v in rep["solution"].loads.values()))


class TESMarketModel(mesa.Model):
    """A sequence of ``tes`` market days on one runtime."""

    def __init__(self, case: Case, runtime: Runtime, config: TESConfig = TESConfig(), *, seed: int = 0,
                 benchmarks: bool = True, progress: Callable[[str], None] | None = None,
                 hosts: list[Any] | None = None, profiles: Sequence[pd.DataFrame] | None = None,
                 network_reports: bool = True, keep_results: int | None = None) -> None:
        """``profiles``: one profiles table per day when the days differ (None: every day is the case's);
        ``hosts``: the hosts of a checkpoint (they already hold their private days); ``network_reports``:
        the analyst's voltage and loss tables of each day (OpenDSS power flows; studies leave them out);
        ``keep_results``: keep only the last N days' :class:`DayResult` in :attr:`results` (and so in a
        checkpoint: a study that records its own per-day rows keeps 1; None keeps every day, which the
        multi-day tables of ``tes-day`` need)."""
        super().__init__(rng=seed)
        self.runtime = runtime
        self.profiles = None if profiles is None else list(profiles)
        if hosts is None and self.profiles is not None:
            hosts = make_hosts(prepare_case(case, config), config, self.profiles)
        self.protocol = TESProtocol(runtime, case, config, progress=progress, hosts=hosts)
        self._base_case = self.protocol.case
        self.protocol.analyst.network_reports = network_reports
        self.benchmarks = benchmarks
        self.day = 0
        self.keep_results = keep_results
        self.results: list[DayResult] = []
        r = self.protocol.roles
        self.participants = [Participant(self, d, "der_manager") for d in r.der_managers]
        self.participants.append(Participant(self, r.load_aggregator, "load_aggregator"))
        self.datacollector = mesa.DataCollector(model_reporters={
            "day": lambda m: m.day,
            "iterations": lambda m: len(m.results[-1].iterations),
            "converged": lambda m: m.results[-1].converged,
            "la_profit": lambda m: m.results[-1].solution.objective,
            "der_profit": lambda m: sum(p.profit for p in m.participants if p.role == "der_manager"),
            "der_markup": lambda m: next((p.strategy.get("markup", 0.0) for p in m.participants
                                          if p.role == "der_manager"), 0.0),
            "centralized_gap": lambda m: (m.results[-1].objective_gap if m.results[-1].centralized is not None
                                          else float("nan")),
            "wall_time_s": lambda m: m.results[-1].wall_time_s,
        }, agent_reporters={
            "day": lambda a: a.model.day, "agent": "agent_id", "role": "role", "profit": "profit",
            "markup": lambda a: a.markup, "energy_kwh": "energy_kwh",
        })

    def case_of(self, day: int) -> Case:
        """The case of ``day`` as the analyst sees it (the day's profiles; the transformer limit applied)."""
        if self.profiles is None:
            return self._base_case
        if not 0 <= day < len(self.profiles):
            raise ValueError(f"no profiles for day {day}: the model was given {len(self.profiles)} day(s)")
        return self._base_case.replace(profiles=self.profiles[day])

    def step(self) -> None:
        """Clear one market day, record it, then let strategies adapt."""
        if self.profiles is not None:  # each agent takes the day's data from its own private data set
            r = self.protocol.roles
            self.runtime.exchange(self.runtime.send(
                [Command(COORDINATOR, a, 0, action=Action.NEW_DAY, iteration=self.day)
                 for a in (r.main_grid, *r.der_managers, r.load_aggregator)]))
            self.protocol.analyst.case = self.case_of(self.day)
        res = self.protocol.run_day(self.day, benchmarks=self.benchmarks)
        self.results.append(res)
        if self.keep_results is not None:
            del self.results[:-self.keep_results]
        for p in self.participants:
            p.observe()
        self.datacollector.collect(self)
        ders = [p.agent_id for p in self.participants if p.role == "der_manager"]
        self.runtime.exchange(self.runtime.send(
            [Command(COORDINATOR, d, self.day, action=Action.END_OF_DAY) for d in ders]))
        self.day += 1

    # ------------------------------------------------------------------ checkpoints (--resume)
    def checkpoint(self) -> bytes:
        """Everything needed to go on after the last finished day: each agent's snapshot (its private
        state: cuts, strategy, learning), the day results, the participants' figures and the recorded
        per-day data. Taken between days, so no message is in flight."""
        self.runtime.checkpoint()
        state = {
            "day": self.day,
            "hosts": {aid: self.runtime.last_snapshot(aid) for aid in self.runtime.agent_ids},
            "results": self.results,
            "participants": [(p.agent_id, p.role, p.profit, p.strategy) for p in self.participants],
            "model_vars": {k: list(v) for k, v in self.datacollector.model_vars.items()},
            "agent_records": [list(v) for v in self.datacollector._agent_records.values()],
            "rng": self.rng.bit_generator.state if hasattr(self, "rng") else None,
            "random": self.random.getstate(),
        }
        return pickle.dumps(state)

    @classmethod
    def resume(cls, blob: bytes, case: Case, runtime: Runtime, config: TESConfig = TESConfig(), *,
               seed: int = 0, benchmarks: bool = True, progress: Callable[[str], None] | None = None,
               profiles: Sequence[pd.DataFrame] | None = None, network_reports: bool = True,
               keep_results: int | None = None) -> "TESMarketModel":
        """The model of a checkpoint, on a fresh runtime: the next :meth:`step` clears the next day.
        ``profiles``: the same days as the checkpointed run's (the analyst's view; the agents' own
        parts are in their snapshots)."""
        state = pickle.loads(blob)
        hosts = [Host.restore(b) for b in state["hosts"].values()]
        if profiles is not None:  # a longer run than the checkpointed one: each agent gets its own part of every day
            own = private_days(prepare_case(case, config), profiles)
            for h in hosts:
                if hasattr(h, "days"):
                    h.days = own.get(h.id)
        model = cls(case, runtime, config, seed=seed, benchmarks=benchmarks, progress=progress, hosts=hosts,
                    profiles=profiles, network_reports=network_reports, keep_results=keep_results)
        model.day = int(state["day"])
        model.results = list(state["results"])
        by_id = {p.agent_id: p for p in model.participants}
        for aid, role, profit, strategy in state["participants"]:
            by_id[aid].profit, by_id[aid].strategy = profit, strategy
        for k, v in state["model_vars"].items():
            model.datacollector.model_vars[k] = list(v)
        # keyed apart from the new run's steps (Mesa keys records by the step, which restarts at 0)
        for i, recs in enumerate(state.get("agent_records", [])):
            model.datacollector._agent_records[("checkpoint", i)] = [tuple(r) for r in recs]
        if state.get("rng") is not None and hasattr(model, "rng"):
            model.rng.bit_generator.state = state["rng"]
        model.random.setstate(state["random"])
        return model

    def days_frame(self) -> pd.DataFrame:
        df = self.datacollector.get_model_vars_dataframe().reset_index(drop=True)
        return df.set_index("day")

    def agents_frame(self) -> pd.DataFrame:
        """Per day and participant: day, agent, role, profit ($), markup ($/kWh), energy_kwh (sold by a DER
        manager, served by the load aggregator), in the order recorded (Mesa's own index dropped)."""
        return self.datacollector.get_agent_vars_dataframe().reset_index(drop=True)
