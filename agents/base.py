"""The agent contract.

An agent is private data plus a local optimisation problem. It exposes only
identifiers it owns (``public_ids``) and the identifiers of its decisions
(``decision_ids``: the keys a cut sent to it may use). Agents are plain Python:
no Ray, no Mesa, no coordinator imports. The coordinator hosts each agent and
translates messages into calls of the agent's domain methods (see
``coordinator/hosts.py``), so the agent never handles transport or policy.

State: ``snapshot()`` returns bytes from which ``restore()`` rebuilds an agent in
the same state (cached cvxpy problems are dropped and rebuilt lazily). Methods
are deterministic given the state, so a crashed actor restored from its last
snapshot and given the same messages gives the same answers.
"""
from __future__ import annotations

import pickle
from typing import Any, ClassVar, Iterable


class SolveError(RuntimeError):
    """A local problem could not be solved: names the agent, the problem and the iteration."""

    def __init__(self, agent: str, problem: str, status: str, *, iteration: int | None = None,
                 detail: str = "") -> None:
        self.agent, self.problem, self.status, self.iteration = agent, problem, status, iteration
        it = f" at iteration {iteration}" if iteration is not None else ""
        msg = f"{agent}: {problem} ended with status '{status}'{it}"
        super().__init__(msg + (f": {detail}" if detail else ""))
        self.detail = detail

    def __reduce__(self) -> tuple:
        return (SolveError, (self.agent, self.problem, self.status),
                {"iteration": self.iteration, "detail": self.detail, "args": self.args})

    def __setstate__(self, state: dict) -> None:
        self.iteration = state["iteration"]
        self.detail = state["detail"]
        self.args = state["args"]


class InfeasibleSetup(RuntimeError):
    """The set-up has no feasible schedule; the message names the period and the limit family."""


class Agent:
    """Base class of every agent."""

    role: ClassVar[str] = ""

    def __init__(self, agent_id: str) -> None:
        self.id = str(agent_id)

    def public_ids(self) -> frozenset[str]:
        """Identifiers this agent owns and may expose in messages (units, meters, customers)."""
        return frozenset()

    def decision_ids(self) -> frozenset[str]:
        """Identifiers of this agent's decisions: the keys a cut sent to it may use."""
        return frozenset()

    # ---------------------------------------------------------------- state
    def __getstate__(self) -> dict[str, Any]:
        # cached solver objects (names starting with "_cache") are rebuilt on demand
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_cache")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def snapshot(self) -> bytes:
        return pickle.dumps(self)

    @staticmethod
    def restore(blob: bytes) -> "Agent":
        agent = pickle.loads(blob)
        if not isinstance(agent, Agent):
            raise TypeError("snapshot does not hold an Agent")
        return agent

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"


def ids(items: Iterable[Any]) -> frozenset[str]:
    return frozenset(str(getattr(x, "id", x)) for x in items)
