"""The one solver-call helper of the project, with one status policy.

Every local problem of every agent is solved through :func:`solve`: it tries a list of
*attempts* (a solver and its options) in order and

- returns at the first attempt whose status is ``"optimal"``;
- otherwise, if ``accept_inaccurate`` and some attempt gave ``"optimal_inaccurate"``,
  solves again with the first such attempt and returns that (``accurate`` is then False,
  and callers count it);
- otherwise raises :class:`agents.base.SolveError` naming the agent, the problem, the
  iteration and what every attempt gave.

A status listed in ``stop_on`` (e.g. :data:`INFEASIBLE`) ends the search without an error:
it is the problem's own verdict, which the caller diagnoses (``Solved.status`` says which),
not a solver failure that another attempt could mend.

A solver that raises (``cvxpy.error.SolverError``; cvxpy raises ``ValueError`` on a
status it does not know) counts as a failed attempt; it is never swallowed: either a
later attempt succeeds, and :class:`Solved` says which solver produced the result, or
the error names every failure.

Every result is recorded in the active :class:`SolveLedger`, if one is active
(:func:`recording`): the host of an agent keeps one per agent and activates it while it
handles messages, so a run can report which solver, with which status and after how many
attempts, produced each result of each agent (the run folder's ``solves`` table).

The status policy (:data:`OPTIMAL`, :data:`INACCURATE`, :data:`INFEASIBLE`) is defined
here once; no other module compares status strings of its own.

Two recipes cover the project:

- :func:`solve_conic`: Clarabel, retried with other settings (:data:`CONIC_RETRIES`);
  each setting is complete, since cvxpy keeps settings passed to Clarabel for later
  solves of the same problem;
- :func:`solve_lp`: an LP or MILP solver (HiGHS), then Clarabel as a numerical fallback
  (LPs only: a MILP has no fallback and fails loudly).
"""
from __future__ import annotations

import contextlib
import contextvars
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import cvxpy as cp

from .base import SolveError

__all__ = ["OPTIMAL", "INACCURATE", "INFEASIBLE", "INFEASIBLE_OR_UNBOUNDED", "Attempt", "Solved", "solve",
           "solve_conic", "solve_lp", "check_status", "is_solved", "CONIC_RETRIES", "SolveLedger", "recording"]

#: the status of a solution that is used as is
OPTIMAL = "optimal"
#: accepted only where the caller says so (and counted)
INACCURATE = "optimal_inaccurate"
#: the statuses that mean "no feasible point" (a diagnosis, not a solver failure)
INFEASIBLE = ("infeasible", "infeasible_inaccurate")
#: a presolve's verdict (HiGHS, SCIP); on a problem bounded by construction it means infeasible
INFEASIBLE_OR_UNBOUNDED = "infeasible_or_unbounded"

_CLARABEL_BASE = {"equilibrate_enable": True, "iterative_refinement_enable": True, "max_iter": 200}
#: Clarabel settings tried in turn when a conic solve is not "optimal"
CONIC_RETRIES: tuple[dict[str, Any], ...] = (dict(_CLARABEL_BASE), {**_CLARABEL_BASE, "equilibrate_enable": False},
                                              {**_CLARABEL_BASE, "iterative_refinement_enable": False},
                                              {**_CLARABEL_BASE, "max_iter": 2000})


@dataclass(frozen=True)
class Attempt:
    """One try: ``prob.solve(solver=solver, **options)``."""

    solver: str
    options: Mapping[str, Any]


@dataclass(frozen=True)
class Solved:
    """The outcome of :func:`solve`: which solver produced the values, its status, and the attempt number."""

    solver: str
    status: str
    attempt: int

    @property
    def accurate(self) -> bool:
        return self.status == OPTIMAL


class SolveLedger:
    """Which solver produced each result: counts per (agent, problem, iteration, solver, status, attempt).

    ``attempt`` is the 0-based position of the attempt that gave the result in the list tried
    (0: the first choice; > 0: a fallback solver or setting). ``iteration`` is -1 where the
    caller names none. Per key it also sums the time (s): ``wall_s`` of the whole
    :func:`solve` call (cvxpy's canonicalisation, every attempt, the solver) and
    ``solver_s`` the solvers' own times as they report them (``solver_stats.solve_time``,
    0 where a solver reports none). Plain data: it pickles with its host's snapshot.
    """

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, int, str, str, int]] = Counter()
        self.wall: dict[tuple, float] = {}
        self.solver: dict[tuple, float] = {}

    def record(self, agent: str, problem: str, iteration: int | None, solved: "Solved",
               wall_s: float = 0.0, solver_s: float = 0.0) -> None:
        it = -1 if iteration is None else int(iteration)
        key = (agent, problem, it, solved.solver, solved.status, int(solved.attempt))
        self.counts[key] += 1
        self.wall[key] = self.wall.get(key, 0.0) + float(wall_s)
        self.solver[key] = self.solver.get(key, 0.0) + float(solver_s)

    def rows(self) -> list[dict[str, Any]]:
        """One row per key: agent, problem, iteration, solver, status, attempt, count, wall_s, solver_s."""
        keys = ("agent", "problem", "iteration", "solver", "status", "attempt")
        wall, solver = getattr(self, "wall", {}), getattr(self, "solver", {})
        return [dict(zip(keys, k), count=n, wall_s=wall.get(k, 0.0), solver_s=solver.get(k, 0.0))
                for k, n in sorted(self.counts.items())]


_LEDGER: contextvars.ContextVar[SolveLedger | None] = contextvars.ContextVar("solve_ledger", default=None)


@contextlib.contextmanager
def recording(ledger: SolveLedger) -> Iterator[SolveLedger]:
    """Record every :func:`solve` result made inside the block in ``ledger``."""
    token = _LEDGER.set(ledger)
    try:
        yield ledger
    finally:
        _LEDGER.reset(token)


def _done(agent: str, problem: str, iteration: int | None, solved: "Solved", t0: float,
          solver_s: float) -> "Solved":
    ledger = _LEDGER.get()
    if ledger is not None:
        ledger.record(agent, problem, iteration, solved, time.perf_counter() - t0, solver_s)
    return solved


def _solver_time(prob: cp.Problem) -> float:
    try:
        t = prob.solver_stats.solve_time
    except Exception:  # no stats (the solver raised): nothing to add
        return 0.0
    return float(t) if t is not None else 0.0


def is_solved(status: str, *, accept_inaccurate: bool = True) -> bool:
    """Does ``status`` carry a usable solution under the project's policy?"""
    return status == OPTIMAL or (accept_inaccurate and status == INACCURATE)


#: cvxpy warm-starts by default: HiGHS from the Problem's cached last solution, Clarabel by reusing
#: its solver object (with the settings of the last solve). A cached solution is state that a
#: snapshot does not carry, so an agent restored from its snapshot would solve cold and could land
#: on another optimal vertex: results would depend on whether a process died. Every solve here
#: is cold (an attempt's options may still ask for a warm start), so a restored agent reproduces
#: an undisturbed one bit for bit.
WARM_START = False


def _try(prob: cp.Problem, a: Attempt, errors: list[str]) -> str | None:
    try:
        with warnings.catch_warnings():  # an inaccurate status is handled here, not warned about
            warnings.simplefilter("ignore", UserWarning)
            prob.solve(solver=a.solver, **{"warm_start": WARM_START, **dict(a.options)})
    except (cp.error.SolverError, ValueError) as exc:
        errors.append(f"{a.solver}: {exc}"[:200])
        return None
    return str(prob.status)


def solve(prob: cp.Problem, attempts: Sequence[Attempt], agent: str, problem: str, *,
          iteration: int | None = None, accept_inaccurate: bool = True, stop_on: Sequence[str] = ()) -> Solved:
    """Solve ``prob`` by the first attempt that works (see the module docstring)."""
    errors: list[str] = []
    inaccurate: int | None = None
    t0, ts = time.perf_counter(), 0.0
    for i, a in enumerate(attempts):
        st = _try(prob, a, errors)
        if st is None:
            continue
        ts += _solver_time(prob)
        if st == OPTIMAL or st in stop_on:
            return _done(agent, problem, iteration, Solved(a.solver, st, i), t0, ts)
        if st == INACCURATE and inaccurate is None:
            inaccurate = i
        errors.append(f"{a.solver}: {st}")
    if accept_inaccurate and inaccurate is not None and inaccurate == len(attempts) - 1:
        # its values are still in place
        return _done(agent, problem, iteration, Solved(attempts[inaccurate].solver, INACCURATE, inaccurate), t0, ts)
    if accept_inaccurate and inaccurate is not None:  # solve again with the attempt that gave it
        a = attempts[inaccurate]
        st = _try(prob, a, errors)
        if st is not None and is_solved(st):
            return _done(agent, problem, iteration, Solved(a.solver, st, inaccurate), t0, ts + _solver_time(prob))
    status = errors[-1].split(": ", 1)[-1] if errors else "not solved"
    raise SolveError(agent, problem, "not solved" if len(attempts) > 1 else status, iteration=iteration,
                     detail="; ".join(errors))


def solve_conic(prob: cp.Problem, agent: str, problem: str, iteration: int | None = None, *,
                solver: str = "CLARABEL", options: Mapping[str, Any] | None = None) -> bool:
    """A conic problem with Clarabel and its retry settings; returns False if only "optimal_inaccurate"."""
    attempts = [Attempt(solver, {**dict(options or {}), **extra}) for extra in CONIC_RETRIES]
    return solve(prob, attempts, agent, problem, iteration=iteration).accurate


def solve_lp(prob: cp.Problem, agent: str, problem: str, iteration: int | None = None, *,
             solver: str = "HIGHS", fallback: str | None = "CLARABEL") -> Solved:
    """An LP (or a MILP with ``fallback=None``): ``solver``, then ``fallback``; "optimal" only."""
    names = list(dict.fromkeys([solver] + ([fallback] if fallback else [])))
    return solve(prob, [Attempt(n, {}) for n in names], agent, problem, iteration=iteration,
                 accept_inaccurate=False)


def check_status(prob: cp.Problem, agent: str, problem: str, iteration: int | None = None,
                 accept_inaccurate: bool = True) -> None:
    """Raise :class:`SolveError` unless ``prob`` (solved by the caller) has a usable solution."""
    if not is_solved(str(prob.status), accept_inaccurate=accept_inaccurate):
        raise SolveError(agent, problem, str(prob.status), iteration=iteration)
