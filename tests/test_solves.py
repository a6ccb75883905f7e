"""The solver ledger: which solver, status and attempt produced each agent's result (agents/solve.py,
coordinator/solves.py)."""
from __future__ import annotations

import cvxpy as cp
import pandas as pd

from agents.base import Agent
from agents.solve import Attempt, SolveLedger, recording, solve, solve_lp
from coordinator.boundary import Boundary
from coordinator.host import Host
from coordinator.messages import Message
from coordinator.runtime.local import LocalRuntime
from coordinator.solves import SolverTally, summary


def _lp() -> cp.Problem:
    x = cp.Variable(2)
    return cp.Problem(cp.Minimize(x[0] + 2 * x[1]), [x >= 1])


def test_ledger_names_the_fallback_that_produced_the_result():
    ledger = SolveLedger()
    with recording(ledger):
        # the first attempt's solver does not exist: cvxpy raises, the second one produces the result
        got = solve(_lp(), [Attempt("NO_SUCH_SOLVER", {}), Attempt("CLARABEL", {})], "A1", "test LP", iteration=3)
        solve_lp(_lp(), "A1", "test LP", iteration=4)
    assert got.solver == "CLARABEL" and got.attempt == 1
    rows = pd.DataFrame(ledger.rows()).set_index("iteration")
    assert rows.loc[3, ["solver", "status", "attempt", "count"]].tolist() == ["CLARABEL", "optimal", 1, 1]
    assert rows.loc[4, ["solver", "attempt"]].tolist() == ["HIGHS", 0]
    assert (rows["wall_s"] > 0).all() and (rows["wall_s"] >= rows["solver_s"]).all()


def test_nothing_is_recorded_outside_a_ledger():
    ledger = SolveLedger()
    solve_lp(_lp(), "A1", "test LP")
    with recording(ledger):
        pass
    assert ledger.rows() == []


class _Solver(Agent):
    role = "test.solver"

    def __init__(self, agent_id: str) -> None:
        super().__init__(agent_id)


class _SolvingHost(Host):
    def _handle(self, messages: list[Message]) -> list[Message]:
        solve_lp(_lp(), self.id, "local LP", iteration=len(messages))
        return []


def test_tally_reads_every_hosted_agent_through_the_analyst(tmp_path):
    rt = LocalRuntime(Boundary(tmp_path / "audit.jsonl"))
    rt.add(_SolvingHost(_Solver("S1")))
    rt.add(_SolvingHost(_Solver("S2")))
    tally = SolverTally(rt)
    for h in ("S1", "S2"):  # what a delivery does: the host handles a batch inside its ledger
        rt._hosts[h].handle([])
    rt._hosts["S1"].handle([])
    df = tally.frame()
    assert df.groupby("agent")["count"].sum().to_dict() == {"S1": 2, "S2": 1}
    assert set(df["role"]) == {"test.solver"} and set(df["solver"]) == {"HIGHS"}
    assert summary(df).startswith("solves: HIGHS 3; 0 from a fallback")
    assert df["wall_s"].sum() > 0
    tally.start()
    assert tally.frame().empty  # the span starts afresh
