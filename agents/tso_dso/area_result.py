"""What a DSO's evaluation of its area gives (``tso-dso``, seed 004): :class:`AreaResult` (costs, cut
coefficients, diagnostics and, on request, the whole solution), the cuts it makes, the relaxation gap per line,
and the merge of results solved in blocks of scenarios. Units: $, MW, Mvar, $/MWh.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Sequence

import numpy as np

from network.distflow import BranchFlow

__all__ = ["AreaResult", "line_gaps", "cut_columns", "take", "scatter", "merge", "SOLUTION_CONSTANTS"]

#: the entries of ``AreaResult.solution`` that are not per scenario (ids, the schedule, offers, line data): left
#: as they are when scenarios are taken, merged or replaced (an array of them may happen to have S entries)
SOLUTION_CONSTANTS = frozenset({"feeder", "resources", "kinds", "nodes", "x", "cost_up", "cost_down", "node_ids",
                                "line_ids", "from", "to", "r", "x_line", "s_max", "voll"})


def line_gaps(bf: BranchFlow, S: int) -> tuple[np.ndarray, np.ndarray]:
    """The SOCP relaxation gap ``l v_from - P^2 - Q^2`` per line and scenario ``(n_line, S)``: absolute (MW^2 on the
    1 MVA base) and relative to the line's rating squared ``s_max^2`` (lines without a rating: to ``max(P^2 + Q^2,
    1)``). Relative to the rating, an idle line's gap does not explode (relative to its own ``P^2 + Q^2`` a gap of
    5e-5 MW^2 on a line carrying almost nothing reads as 0.26)."""
    if bf.l.value is None:
        raise ValueError("the branch-flow problem has not been solved")
    L = len(bf.line_ids)
    P = np.asarray(bf.P.value, dtype=float).reshape(L, S)
    Q = np.asarray(bf.Q.value, dtype=float).reshape(L, S)
    ell = np.asarray(bf.l.value, dtype=float).reshape(L, S)
    s2 = P ** 2 + Q ** 2
    gap = ell * bf.v_from().reshape(L, S) - s2
    smax = np.array([ln.s_max for ln in bf.feeder.lines], dtype=float)[:, None]
    scale = np.where(np.isfinite(smax), smax ** 2, np.maximum(s2, 1.0))
    return gap, gap / scale


@dataclass
class AreaResult:
    """What one DSO evaluation gives, per scenario (arrays of length S)."""

    cost: np.ndarray  # D_e(x_e, p_s) including the slack penalty, at the evaluation points p
    rt_cost: np.ndarray  # without the penalty
    beta: np.ndarray  # d cost / d p  (PCC price, $/MWh)
    g: np.ndarray  # (n, S) d cost / d x  ($/MWh)
    p: np.ndarray  # the exchanges it was evaluated at (the requested ones unless shifted, see shifted)
    p_head: np.ndarray  # the power that entered the feeder
    slack: np.ndarray  # |p_head - p|
    relaxation_gap: np.ndarray  # max over lines of l v - P^2 - Q^2 (MW^2)
    relaxation_gap_rel: np.ndarray  # max over lines of the same / s_max^2 (see line_gaps)
    v_min: np.ndarray  # lowest voltage (pu) per scenario
    v_max: np.ndarray
    losses: np.ndarray  # MW
    shed: np.ndarray  # MW of active shedding
    solve_time: float
    wind: np.ndarray  # (n_wind, S) the availability it used
    nu: np.ndarray  # (n_wind, S) d cost / d W
    requested: np.ndarray | None = None  # the exchanges asked for
    shifted: float = 0.0  # > 0: evaluated at requested - shifted * sign (a degenerate point could not be solved)
    inaccurate: bool = False
    dispatch: np.ndarray | None = None  # (n, S) real-time quantities
    requested_value: np.ndarray | None = None  # the cost at the requested exchanges (see AreaDSO.evaluate)
    solution: dict[str, Any] | None = None  # the whole solution (keep_dispatch; see AreaDSO._solution)
    wall: np.ndarray | None = None  # (S,) +1/-1: the request was at or beyond +/- the PCC rating, else 0
    rating: float = math.inf
    penalty: float = 0.0

    @property
    def value(self) -> np.ndarray:
        """The cost at the requested exchanges (extrapolated along the cut where the point was moved)."""
        if self.requested_value is not None:
            return self.requested_value
        if self.requested is None or self.shifted == 0.0:
            return self.cost
        return self.cost + self.beta * (self.requested - self.p)

    def wall_cut(self, s: int, ids: Sequence[str], x: np.ndarray, pcc_id: str) -> tuple[dict[str, float], float]:
        """The cut at the PCC rating on side ``wall[s]``: ``D(x, p) >= D(x, +/-R) + penalty (|p| - R)``.

        Exact beyond the rating (the flow into the feeder never exceeds it, so the slack
        takes the rest at the penalty) and valid everywhere (the penalised cost is
        ``penalty``-Lipschitz in ``p``); ``D(x, +/-R)`` is bounded below by the cut at the
        evaluated point.
        """
        side = float(self.wall[s])
        coef = {pcc_id: side * self.penalty}
        coef.update({k: float(self.g[i, s]) for i, k in enumerate(ids)})
        const = float(self.cost[s] - self.g[:, s] @ x + self.beta[s] * (side * self.rating - self.p[s])
                      - self.penalty * self.rating)
        return coef, const

    def cut(self, s: int, ids: Sequence[str], x: np.ndarray, pcc_id: str, *, source: int | None = None,
            wind: np.ndarray | None = None, move: bool = False) -> tuple[dict[str, float], float]:
        """Coefficients (PCC id and resource ids) and constant of a cut for scenario ``s``.

        ``source`` (default ``s``): the scenario whose solution gives the cut. A cut of
        another scenario is moved to scenario ``s`` with the wind sensitivity,
        ``+ nu . (W_s - W_source)``: the cost is jointly convex in the schedule, the
        exchange and the available wind, so the moved cut is valid for ``s``. ``move``:
        always move (the source is a column of another batch, ``wind`` the target's wind).
        """
        j = s if source is None else source
        coef = {pcc_id: float(self.beta[j])}
        coef.update({k: float(self.g[i, j]) for i, k in enumerate(ids)})
        const = float(self.cost[j] - self.beta[j] * self.p[j] - self.g[:, j] @ x)
        if (move or j != s) and self.nu.size:
            w_s = self.wind[:, s] if wind is None else wind
            const += float(self.nu[:, j] @ (w_s - self.wind[:, j]))
        return coef, const


def cut_columns(r: AreaResult, n: int) -> AreaResult:
    """The first ``n`` scenarios of a block's result (drops the padding)."""
    if n == r.cost.size:
        return r
    return take(r, np.arange(n))


def take(r: AreaResult, idx: np.ndarray) -> AreaResult:
    """The scenarios ``idx`` (columns) of a result, in that order (copies)."""
    S = r.cost.size
    idx = np.asarray(idx, dtype=int)

    def cut(v: Any) -> Any:
        if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[-1] == S:
            return v[..., idx]
        return v

    out = AreaResult(**{f.name: cut(getattr(r, f.name)) for f in fields(AreaResult)})
    if r.solution is not None:
        out.solution = {k: v if k in SOLUTION_CONSTANTS else cut(v) for k, v in r.solution.items()}
    return out


def scatter(base: AreaResult, part: AreaResult, idx: np.ndarray) -> AreaResult:
    """``base`` (S scenarios) with its scenarios ``idx`` replaced by the columns of ``part`` (``len(idx)`` scenarios):
    a new result; ``base`` is left as it is. Scalars: the solve time adds up, ``shifted`` is the larger,
    ``inaccurate`` if either is; the solution must be kept in both or in neither."""
    S, n = base.cost.size, part.cost.size
    idx = np.asarray(idx, dtype=int)
    if idx.size != n:
        raise ValueError(f"scatter: {n} columns for {idx.size} scenarios")
    if n == S:  # every scenario (the columns of a full evaluation are never repeated)
        return take(part, np.argsort(idx))

    def put(b: Any, v: Any) -> Any:
        if isinstance(b, np.ndarray) and b.ndim >= 1 and b.shape[-1] == S and isinstance(v, np.ndarray) \
                and v.shape[-1] == n:
            out = np.array(b, dtype=np.result_type(b, v), copy=True)
            out[..., idx] = v
            return out
        return b

    kw = {f.name: put(getattr(base, f.name), getattr(part, f.name)) for f in fields(AreaResult)}
    kw.update(solve_time=float(part.solve_time), shifted=max(base.shifted, part.shifted),
              inaccurate=bool(base.inaccurate or part.inaccurate), solution=None)
    out = AreaResult(**kw)
    if (base.solution is None) != (part.solution is None):
        raise ValueError("scatter: the solution is kept in one result and not in the other")
    if base.solution is not None and part.solution is not None:
        out.solution = {k: v if k in SOLUTION_CONSTANTS else put(v, part.solution[k])
                        for k, v in base.solution.items()}
    return out


def merge(parts: Sequence[AreaResult]) -> AreaResult:
    """One result from the results of consecutive blocks of scenarios."""
    first = parts[0]
    S = [r.cost.size for r in parts]

    def join(vals: list[Any]) -> Any:
        v0 = vals[0]
        if isinstance(v0, np.ndarray) and v0.ndim >= 1 and v0.shape[-1] == S[0]:
            return np.concatenate(vals, axis=-1)
        return v0

    kw = {f.name: join([getattr(r, f.name) for r in parts]) for f in fields(AreaResult)}
    kw["solve_time"] = float(sum(r.solve_time for r in parts))
    kw["inaccurate"] = any(r.inaccurate for r in parts)
    out = AreaResult(**kw)
    if first.solution is not None:
        out.solution = {k: first.solution[k] if k in SOLUTION_CONSTANTS  # type: ignore[index]
                        else join([r.solution[k] for r in parts]) for k in first.solution}  # type: ignore[index]
    return out
