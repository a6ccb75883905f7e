"""Helpers shared by every importer: source-located errors, load records, the imported case.

One job: what the pandapower and MATPOWER importers both need -- re-raising a
model :class:`CaseError` as one about the source table, row and column
(:func:`_located`), a demand :class:`Load` from p and q (:func:`_load`), the
parameters of an imported case (:func:`_parameters`) and a transmission case
with the default owners ``TSO``, ``GENCO`` and ``RETAIL``
(:func:`_transmission_case`).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping

from ..errors import CaseError
from ..model import Case, Load, Owner, TransmissionGrid, Unit

TRANSMISSION_OWNERS = (Owner("TSO", "tso", 0), Owner("GENCO", "der_manager", 0), Owner("RETAIL", "load_aggregator", 0))


@contextmanager
def _located(table: str, row: Any, columns: Mapping[str, str] | None = None) -> Iterator[None]:
    """Re-raise a model CaseError as one about the source ``table``/``row``/column."""
    try:
        yield
    except CaseError as exc:
        col = (columns or {}).get(exc.column or "", exc.column)
        raise CaseError(exc.message, file=table, row=None if row is None else int(row), column=col,
                        key=exc.key) from None


def _load(lid: str, owner: str, grid: str, node: str, phases: str, p: float, q: float) -> Load:
    if p > 0:
        return Load(lid, "demand", owner, grid, node, phases, p_max=p, tan_phi=q / p)
    return Load(lid, "demand", owner, grid, node, phases, p_max=p, q_min=q, q_max=q)


def _parameters(source: str, power_unit: str, c2: Mapping[str, float]) -> dict[str, Any]:
    """Case parameters of an import: one period, the ``source``, the energy price unit
    ($/MWh or $/kWh, matching ``power_unit``) and ``cost_c2`` if any unit has a quadratic cost."""
    params: dict[str, Any] = {"horizon": 1, "source": source,
                              "energy_price_unit": f"$/{'MWh' if power_unit == 'MW' else 'kWh'}"}
    if c2:
        params["cost_c2"] = c2
    return params


def _transmission_case(name: str, grid: TransmissionGrid, units: list[Unit], loads: list[Load],
                       c2: Mapping[str, float], *, source: str, description: str) -> Case:
    """A transmission case in MW: units of ``GENCO``, loads of ``RETAIL``, the grid operated by ``TSO``."""
    return Case(name, transmission=grid, owners=TRANSMISSION_OWNERS, units=units, loads=loads,
                parameters=_parameters(source, "MW", c2), power_unit="MW", description=description)
