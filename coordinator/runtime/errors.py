"""Errors of the runtimes: an agent's exception re-raised with its name, a host that keeps dying."""
from __future__ import annotations

from collections.abc import Sequence

from ..messages import Message

__all__ = ["HostError", "HostCrashed"]


class HostError(RuntimeError):
    """An exception inside a host that could not be re-raised with its own type."""

    def __init__(self, agent_id: str, message: str) -> None:
        self.agent_id = agent_id
        super().__init__(message)


class HostCrashed(RuntimeError):
    """A host's actor kept dying: gave up after ``max_restarts`` restarts."""

    def __init__(self, agent_id: str, role: str, restarts: int, max_restarts: int, cause: str) -> None:
        self.agent_id, self.role, self.restarts = agent_id, role, restarts
        super().__init__(f"agent {agent_id!r} ({role}): its actor died again after {restarts} restart(s); "
                         f"giving up (max_restarts={max_restarts}). Last cause: {cause}")


def _label(agent_id: str, role: str) -> str:
    return f"agent {agent_id!r} ({role})"


def _describe_batch(batch: Sequence[Message]) -> str:
    kinds = sorted({m.kind for m in batch})
    rounds = sorted({m.round for m in batch})
    r = f"round {rounds[0]}" if len(rounds) == 1 else f"rounds {rounds}"
    return f"handling {len(batch)} message(s) ({', '.join(kinds)}) in {r}"


def _annotate(exc: BaseException, agent_id: str, role: str, stage: str, remote_tb: str = "") -> BaseException:
    """Make ``exc`` name the agent (in its message when possible) and add notes."""
    label = _label(agent_id, role)
    try:
        if agent_id not in str(exc):
            if exc.args and isinstance(exc.args[0], str):
                exc.args = (f"{label}: {exc.args[0]}",) + tuple(exc.args[1:])
            elif not exc.args:
                exc.args = (f"{label}: {type(exc).__name__}",)
    except Exception:  # pragma: no cover - exotic exception classes
        pass
    if not hasattr(exc, "agent_id"):
        try:
            exc.agent_id = agent_id  # type: ignore[attr-defined]
        except Exception:  # pragma: no cover
            pass
    if hasattr(exc, "add_note"):
        exc.add_note(f"raised by {label} while {stage}")
        if remote_tb:
            exc.add_note("traceback inside the host:\n" + remote_tb.rstrip())
    return exc
