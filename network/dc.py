"""DC power flow of a :class:`~network.model.TransmissionGrid`, as pieces for problem builders.

PowerModels.jl style: a builder takes the *injection expression* the caller built
from its own decision variables and returns the network's constraints and
variables; the caller adds its objective and other constraints and solves.

Conventions
-----------
- Matrices are ``(n_bus, S)`` and ``(n_line, S)``: one column per period or
  scenario. Bus rows follow ``grid.bus_ids``, line rows ``grid.lines``.
- ``p_inj`` is the net injection at each bus, **generation minus demand**, in the
  case's power unit (``"MW"`` or ``"kW"``; give ``power_unit``).
- Line flow is positive from ``from_bus`` to ``to_bus``, in the case's power unit:
  ``flow = k * (theta_from - theta_to) / x`` with ``k = base_mva`` (MW) or
  ``1000 * base_mva`` (kW); ``x`` in pu on ``base_mva``; angles in radians.
- The reference bus angle is 0; ``|flow| <= rating`` for lines with a finite
  rating (two one-sided constraints, so their duals are the congestion prices).
- Nodal balances are written ``demand - supply == 0``, i.e.
  ``A^T flow - p_inj == 0`` (outflow + demand - generation). With cvxpy's sign
  convention the dual of that constraint is the nodal price (LMP), in cost units
  per power unit (and per period, if the objective is per period): raising the
  demand at a bus by one unit raises the optimal cost by the dual. This is
  unit-tested on a two-bus case.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .model import TransmissionGrid

__all__ = ["DCFlow", "power_scale", "incidence", "ptdf", "dc_btheta", "dc_ptdf", "dc_power_flow"]


def power_scale(grid: TransmissionGrid, power_unit: str = "MW") -> float:
    """Power (in ``power_unit``) per (radian / pu reactance): ``base_mva`` in MW, x1000 in kW."""
    if power_unit == "MW":
        return float(grid.base_mva)
    if power_unit == "kW":
        return 1000.0 * float(grid.base_mva)
    raise ValueError(f"power_unit must be 'MW' or 'kW', got {power_unit!r}")


def incidence(grid: TransmissionGrid) -> sp.csr_matrix:
    """Sparse line x bus incidence matrix (+1 at the from bus, -1 at the to bus)."""
    n_l, n_b = grid.n_lines, grid.n_buses
    rows = np.repeat(np.arange(n_l), 2)
    cols = np.array([[grid.bus_index[ln.from_bus], grid.bus_index[ln.to_bus]] for ln in grid.lines],
                    dtype=int).reshape(-1)
    vals = np.tile([1.0, -1.0], n_l)
    return sp.csr_matrix((vals, (rows, cols)), shape=(n_l, n_b))


def _branch_matrices(grid: TransmissionGrid, power_unit: str) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(A, Bf): incidence and flow matrix with ``flow = Bf @ theta`` in the power unit."""
    a = incidence(grid)
    bf = sp.diags(power_scale(grid, power_unit) * grid.susceptance()) @ a
    return a, sp.csr_matrix(bf)


def ptdf(grid: TransmissionGrid) -> np.ndarray:
    """Power transfer distribution factors, ``(n_line, n_bus)``, reference bus as slack.

    ``flow = ptdf(grid) @ p_inj`` for a balanced injection vector (any imbalance is
    taken by the reference bus, whose column is 0). Dimensionless: it is
    independent of ``base_mva`` and of the power unit.
    """
    a = incidence(grid).toarray()
    b = grid.susceptance()
    bf = b[:, None] * a
    bbus = a.T @ bf
    ref = grid.bus_index[grid.ref_bus]
    keep = np.array([i for i in range(grid.n_buses) if i != ref], dtype=int)
    out = np.zeros((grid.n_lines, grid.n_buses))
    if keep.size:
        out[:, keep] = np.linalg.solve(bbus[np.ix_(keep, keep)].T, bf[:, keep].T).T
    return out


def dc_power_flow(grid: TransmissionGrid, p_inj: np.ndarray, *, power_unit: str = "MW",
                  return_theta: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Line flows (power unit, from -> to) for numeric injections, for checking.

    ``p_inj`` is ``(n_bus,)`` or ``(n_bus, S)``, generation minus demand in
    ``power_unit``. Solves ``B theta = p_inj`` with the reference angle 0 (the
    reference bus takes any imbalance). With ``return_theta`` also returns the
    angles in radians.
    """
    p = np.asarray(p_inj, dtype=float)
    if p.shape[0] != grid.n_buses:
        raise ValueError(f"p_inj has {p.shape[0]} rows, the grid has {grid.n_buses} buses")
    a, bf = _branch_matrices(grid, power_unit)
    bbus = (a.T @ bf).tocsc()
    ref = grid.bus_index[grid.ref_bus]
    keep = np.array([i for i in range(grid.n_buses) if i != ref], dtype=int)
    theta = np.zeros(p.shape)
    if keep.size:
        red = bbus[keep][:, keep]
        sol = spla.spsolve(red, p[keep])
        theta[keep] = sol.reshape(p[keep].shape)
    flows = bf @ theta
    return (flows, theta) if return_theta else flows


def _as_2d(expr: cp.Expression | np.ndarray, n: int, what: str) -> cp.Expression:
    e = expr if isinstance(expr, cp.Expression) else cp.Constant(np.asarray(expr, dtype=float))
    if e.ndim == 1:
        e = cp.reshape(e, (e.shape[0], 1), order="F")
    if e.ndim != 2 or e.shape[0] != n:
        raise ValueError(f"{what} must have shape ({n}, S), got {e.shape}")
    return e


@dataclass
class DCFlow:
    """The constraints and variables of a DC network piece (B-theta or PTDF form).

    Attributes
    ----------
    form:
        ``"btheta"`` or ``"ptdf"``.
    flow:
        ``(n_line, S)`` line flows in the power unit (a Variable in the B-theta
        form, an affine expression of ``p_inj`` in the PTDF form).
    theta:
        ``(n_bus, S)`` bus angles in radians (B-theta form; ``None`` for PTDF).
    balance:
        B-theta: the nodal balances ``A^T flow - p_inj == 0`` (``n_bus x S``); its
        dual is the LMP. PTDF: the system balance ``sum(-p_inj) == 0`` (``1 x S``);
        its dual is the price at the reference bus.
    flow_max, flow_min:
        ``flow[limited] <= rating`` and ``-flow[limited] <= rating`` (``None`` if
        no line is limited). Their duals (>= 0) are the congestion prices.
    rating:
        cvxpy Parameter (``len(limited)``) with the finite ratings; change its
        value to re-solve with other limits.
    limited:
        Indices of the lines with a finite rating.
    constraints:
        Everything to add to the caller's problem.
    """

    form: str
    grid: TransmissionGrid
    flow: cp.Expression
    theta: cp.Variable | None
    balance: cp.Constraint
    flow_max: cp.Constraint | None
    flow_min: cp.Constraint | None
    rating: cp.Parameter | None
    limited: np.ndarray
    constraints: list[cp.Constraint] = field(default_factory=list)
    ptdf: np.ndarray | None = None

    def congestion_prices(self) -> np.ndarray:
        """``(n_line, S)``: dual of the upper minus dual of the lower flow limit (0 if unlimited)."""
        s = self.flow.shape[1]
        mu = np.zeros((self.grid.n_lines, s))
        if self.flow_max is not None:
            mu[self.limited] = np.asarray(self.flow_max.dual_value) - np.asarray(self.flow_min.dual_value)
        return mu

    def nodal_prices(self) -> np.ndarray:
        """LMPs ``(n_bus, S)`` in cost units per power unit, after a successful solve.

        B-theta: the duals of the nodal balances. PTDF: ``lambda - PTDF^T mu`` with
        ``lambda`` the system-balance dual and ``mu`` the congestion prices.
        """
        if self.form == "btheta":
            return np.asarray(self.balance.dual_value, dtype=float).reshape(self.grid.n_buses, -1)
        lam = np.asarray(self.balance.dual_value, dtype=float).reshape(1, -1)
        return lam - self.ptdf.T @ self.congestion_prices()


def _limits(grid: TransmissionGrid, flow: cp.Expression, ratings: np.ndarray | None, s: int
            ) -> tuple[np.ndarray, cp.Parameter | None, cp.Constraint | None, cp.Constraint | None]:
    r = grid.ratings() if ratings is None else np.asarray(ratings, dtype=float)
    if r.shape != (grid.n_lines,):
        raise ValueError(f"ratings must have shape ({grid.n_lines},), got {r.shape}")
    limited = np.flatnonzero(np.isfinite(r))
    if limited.size == 0:
        return limited, None, None, None
    rating = cp.Parameter(limited.size, nonneg=True, value=r[limited], name="rating")
    rmat = cp.reshape(rating, (limited.size, 1), order="F") @ np.ones((1, s))
    sel = sp.csr_matrix((np.ones(limited.size), (np.arange(limited.size), limited)),
                        shape=(limited.size, grid.n_lines))
    f_lim = sel @ flow
    return limited, rating, f_lim <= rmat, -f_lim <= rmat


def dc_btheta(grid: TransmissionGrid, p_inj: cp.Expression | np.ndarray, *, power_unit: str = "MW",
              ratings: np.ndarray | None = None, enforce_limits: bool = True) -> DCFlow:
    """DC power flow in B-theta form.

    Parameters
    ----------
    p_inj:
        ``(n_bus, S)`` (or ``(n_bus,)``, treated as S = 1) net injection,
        generation minus demand, in ``power_unit``.
    ratings:
        Line ratings to use instead of ``grid.ratings()`` (``inf`` = unlimited).
    enforce_limits:
        If False, no flow limits are added.

    Returns a :class:`DCFlow` with variables ``theta`` (radians) and ``flow``; the
    constraints are ``flow == k B_f theta``, ``theta[ref] == 0``, the nodal
    balances ``A^T flow - p_inj == 0`` (duals = LMPs) and the flow limits.
    """
    p = _as_2d(p_inj, grid.n_buses, "p_inj")
    s = p.shape[1]
    a, bf = _branch_matrices(grid, power_unit)
    theta = cp.Variable((grid.n_buses, s), name="theta")
    flow = cp.Variable((grid.n_lines, s), name="flow")
    ref = grid.bus_index[grid.ref_bus]
    cons = [flow - bf @ theta == 0, theta[ref, :] == 0]
    balance = a.T @ flow - p == 0
    cons.append(balance)
    limited, rating, fmax, fmin = (_limits(grid, flow, ratings, s) if enforce_limits
                                   else (np.array([], dtype=int), None, None, None))
    if fmax is not None:
        cons += [fmax, fmin]
    return DCFlow("btheta", grid, flow, theta, balance, fmax, fmin, rating, limited, cons)


def dc_ptdf(grid: TransmissionGrid, p_inj: cp.Expression | np.ndarray, *, power_unit: str = "MW",
            ratings: np.ndarray | None = None, enforce_limits: bool = True,
            ptdf_matrix: np.ndarray | None = None) -> DCFlow:
    """DC power flow in PTDF form: ``flow = PTDF @ p_inj`` plus the system balance.

    Same arguments and units as :func:`dc_btheta` (the PTDF is dimensionless, so
    ``power_unit`` is accepted only for symmetry). The system balance is
    ``sum_n(-p_inj[n]) == 0`` (demand - supply), whose dual ``lambda`` is the price
    at the reference bus; :meth:`DCFlow.nodal_prices` gives the LMPs
    ``lambda - PTDF^T mu``. Pass ``ptdf_matrix`` to reuse a computed PTDF.
    """
    power_scale(grid, power_unit)  # validates the unit
    p = _as_2d(p_inj, grid.n_buses, "p_inj")
    s = p.shape[1]
    h = ptdf(grid) if ptdf_matrix is None else np.asarray(ptdf_matrix, dtype=float)
    flow = h @ p
    balance = -cp.sum(p, axis=0, keepdims=True) == 0
    cons: list[cp.Constraint] = [balance]
    limited, rating, fmax, fmin = (_limits(grid, flow, ratings, s) if enforce_limits
                                   else (np.array([], dtype=int), None, None, None))
    if fmax is not None:
        cons += [fmax, fmin]
    return DCFlow("ptdf", grid, flow, None, balance, fmax, fmin, rating, limited, cons, ptdf=h)
