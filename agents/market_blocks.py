"""Named market pieces shared by the agents' problems (cvxpy blocks, vectorised over scenarios).

:func:`redispatch` is the real-time re-dispatch of a set of resources around their
day-ahead quantities, used by the TSO's transmission problem
(``agents/tso_dso/realtime.py``) and by each DSO's area problem (``agents/tso_dso/dso.py``)
alike: one up/down pair per resource, the quantity limits (a wind farm's upper limit is
its available output in each scenario), and active-power shedding at the nodes (or buses)
with demand. The caller adds its network (DC flow or branch flow) on the block's
:attr:`Redispatch.injection`.

Units and signs
---------------
Powers in MW, prices in $/MWh, costs in $ per scenario. A resource's real-time quantity
is ``y = x + sign * (up - down)`` with ``x`` its day-ahead quantity and ``sign`` +1 for a
producer, -1 for a demand (a demand's ``up`` is a reduction of its consumption); its
real-time cost is ``cost_up . up + cost_down . down`` (``cost_up = price_da + price_up``,
``cost_down = price_down - price_da``, see ``agents/tso_dso/participants.py``). Net
injections are generation minus demand; shedding is an injection at ``voll`` $/MWh,
bounded by the demand scheduled at that node.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

__all__ = ["ResourceVectors", "Redispatch", "redispatch", "bcast"]


def bcast(expr: cp.Expression, s: int) -> cp.Expression:
    """A ``(k,)`` expression broadcast to ``(k, s)`` (one column per scenario)."""
    return cp.reshape(expr, (expr.shape[0], 1), order="F") @ np.ones((1, s))


class ResourceVectors(Protocol):
    """What a block needs to know of its resources, as vectors in a fixed order (e.g. a ``ResourceSet``)."""

    sign: np.ndarray  # +1 producer, -1 demand
    p_min: np.ndarray  # MW
    p_max: np.ndarray  # MW (0 for a wind farm: its limit comes from the scenarios)
    is_wind: np.ndarray  # bool
    is_dem: np.ndarray  # bool
    cost_up: np.ndarray  # $/MWh of up
    cost_down: np.ndarray  # $/MWh of down
    wind_ids: tuple[str, ...]

    def __len__(self) -> int: ...


@dataclass
class Redispatch:
    """The cvxpy pieces of a real-time re-dispatch of ``n`` resources in ``S`` scenarios.

    - ``xv`` ``(n, S)``: the day-ahead quantities, one copy per scenario; ``fix``: ``x - xv
      == 0``, whose dual is the sensitivity of each scenario's cost to ``x`` ($/MWh);
    - ``up``, ``dn`` ``(n, S)`` >= 0 (MW); ``y = xv + sign (up - dn)`` the real-time quantity;
    - ``lower``: ``y >= p_min`` (wind: ``y >= 0``); ``upper``: ``y <= p_max`` (wind: ``y <=
      W``), its dual (>= 0) is minus the sensitivity of the cost to the upper limit;
    - ``shed`` ``(len(shed_rows), S)`` >= 0: shedding at the rows ``shed_rows`` of the
      placement (the nodes or buses with demand), ``shed_limit``: at most the demand there;
    - ``injection`` ``(n_rows, S)``: net injection per node or bus (MW, generation minus
      demand, shedding included); ``cost`` ``(S,)``: $ per scenario.
    """

    xv: cp.Variable
    fix: cp.Constraint
    up: cp.Variable
    dn: cp.Variable
    y: cp.Expression
    lower: cp.Constraint
    upper: cp.Constraint
    shed: cp.Variable | None
    shed_rows: np.ndarray
    shed_limit: cp.Constraint | None
    injection: cp.Expression
    cost: cp.Expression

    @property
    def limits(self) -> list[cp.Constraint]:
        """The quantity limits ``[lower, upper]``."""
        return [self.lower, self.upper]

    @property
    def constraints(self) -> list[cp.Constraint]:
        """Every constraint of the block: ``fix``, the limits, the shedding limit."""
        return [self.fix, *self.limits] + ([self.shed_limit] if self.shed_limit is not None else [])


def redispatch(res: ResourceVectors, place: sp.spmatrix, S: int, x: cp.Expression,
               wind: cp.Expression | np.ndarray | None, *, voll: float, name: str, label: str = "") -> Redispatch:
    """Build the real-time re-dispatch block of the resources ``res`` for ``S`` scenarios.

    ``place`` ``(n_rows, n)`` puts each resource on its node or bus (0/1); ``x`` ``(n,)``
    the day-ahead quantities (a Parameter in a decomposed subproblem, a Variable in an
    extensive form); ``wind`` ``(n_wind, S)`` the available output of the wind farms,
    rows in the order of ``res.wind_ids``; ``voll`` $/MWh of shedding; ``name`` suffixes
    the variable names, ``label`` prefixes error messages.
    """
    n = len(res)
    M = place @ sp.diags(res.sign)  # injection map
    xv = cp.Variable((n, S), name=f"xda_{name}")
    up = cp.Variable((n, S), nonneg=True, name=f"up_{name}")
    dn = cp.Variable((n, S), nonneg=True, name=f"dn_{name}")
    fix = bcast(x, S) - xv == 0
    y = xv + sp.diags(res.sign) @ (up - dn)
    lo = np.where(res.is_wind, 0.0, res.p_min)
    hi = np.where(res.is_wind, 0.0, res.p_max)
    y_hi: cp.Expression = cp.Constant(hi[:, None] @ np.ones((1, S)))
    w_idx = np.flatnonzero(res.is_wind)
    if w_idx.size:
        if wind is None:
            raise ValueError(f"{label + ': ' if label else ''}wind availability is needed for {res.wind_ids}")
        wsel = sp.csr_matrix((np.ones(w_idx.size), (w_idx, np.arange(w_idx.size))), shape=(n, w_idx.size))
        y_hi = y_hi + wsel @ wind
    lower = y >= lo[:, None] @ np.ones((1, S))
    upper = y <= y_hi
    injection = M @ y
    cost = res.cost_up @ up + res.cost_down @ dn
    # shedding: at the rows with demand, bounded by the demand there
    dem_place = place @ sp.diags(res.is_dem.astype(float))
    shed_rows = np.flatnonzero(np.asarray(dem_place.sum(axis=1)).reshape(-1) > 0)
    shed = shed_limit = None
    if shed_rows.size:
        shed = cp.Variable((shed_rows.size, S), nonneg=True, name=f"shed_{name}")
        sel = sp.csr_matrix((np.ones(shed_rows.size), (shed_rows, np.arange(shed_rows.size))),
                            shape=(place.shape[0], shed_rows.size))
        injection = injection + sel @ shed
        shed_limit = shed <= sel.T @ (dem_place @ y)
        cost = cost + voll * cp.sum(shed, axis=0)
    return Redispatch(xv, fix, up, dn, y, lower, upper, shed, shed_rows, shed_limit, injection, cost)
