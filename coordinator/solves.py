"""The run's solver report: which solver produced each result of each agent.

Every agent's host keeps a solver ledger (:class:`agents.solve.SolveLedger`), readable by
the analyst (``runtime.analyst.read(agent, "solves")``). :class:`SolverTally` reads every
agent's ledger at the start of a span of work (a tes day, a tso-dso scheme) and at its end,
and gives the difference as a table: one row per (agent, problem, iteration, solver,
status, attempt) with the number of solves. ``attempt`` 0 is the first choice
(Clarabel for conic problems, HiGHS for LPs and MILPs); > 0 is a fallback solver or
setting; ``status`` ``optimal_inaccurate`` marks the results accepted as inaccurate.
The analyst's own solves (the benchmarks) are recorded in :attr:`SolverTally.analyst`
(``with recording(tally.analyst): ...``) and reported with role ``analyst``.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

import pandas as pd

from agents.solve import SolveLedger

from .runtime import Runtime

__all__ = ["SolverTally", "COLUMNS", "summary"]

KEYS = ("agent", "problem", "iteration", "solver", "status", "attempt")
VALUES = ("count", "wall_s", "solver_s")
COLUMNS = ("role", *KEYS, *VALUES)


def _counts(rows: Iterable[dict[str, Any]]) -> dict[tuple, Counter]:
    """Per value column: key -> value (older ledgers have no times: 0)."""
    out: dict[str, Counter] = {v: Counter() for v in VALUES}
    for r in rows:
        k = tuple(r[c] for c in KEYS)
        for v in VALUES:
            out[v][k] += r.get(v, 0)
    return out


class SolverTally:
    """The solves of every agent on ``runtime`` between :meth:`__init__` (or :meth:`start`) and :meth:`frame`."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.analyst = SolveLedger()
        self.start()

    def _read(self) -> dict[str, Counter]:
        ids = self.rt.agent_ids
        total: dict[str, Counter] = {v: Counter() for v in VALUES}
        for rows in self.rt.analyst.read_many([(a, "solves") for a in ids]):
            for v, c in _counts(rows).items():
                total[v].update(c)
        return total

    def start(self) -> None:
        self.base = self._read()
        self.analyst = SolveLedger()

    def frame(self) -> pd.DataFrame:
        """The solves since the start: ``COLUMNS``, sorted by agent, problem and iteration."""
        new = self._read()
        for v in VALUES:
            new[v].subtract(self.base[v])
        roles = {a: self.rt.role(a) for a in self.rt.agent_ids}
        rows = [dict(zip(KEYS, k), count=n, wall_s=new["wall_s"][k], solver_s=new["solver_s"][k],
                     role=roles.get(k[0], "")) for k, n in sorted(new["count"].items()) if n > 0]
        rows += [dict(r, role="analyst") for r in self.analyst.rows()]
        return pd.DataFrame(rows, columns=list(COLUMNS))


def summary(df: pd.DataFrame) -> str:
    """One line: solves per solver, and how many came from a fallback or were inaccurate."""
    if df is None or not len(df):
        return "no solves recorded"
    per = df.groupby("solver")["count"].sum()
    parts = [f"{s} {int(n)}" for s, n in per.items()]
    fallback = int(df.loc[df.attempt > 0, "count"].sum())
    inaccurate = int(df.loc[df.status == "optimal_inaccurate", "count"].sum())
    return (f"solves: {', '.join(parts)}; {fallback} from a fallback attempt, {inaccurate} accepted inaccurate; "
            f"{df['wall_s'].sum():.1f} s in solve calls ({df['solver_s'].sum():.1f} s in the solvers)")
