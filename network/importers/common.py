"""Helpers shared by every importer: source-located errors and load records.

One job: what the pandapower and MATPOWER importers both need -- re-raising a
model :class:`CaseError` as one about the source table, row and column
(:func:`_located`), and a demand :class:`Load` from p and q (:func:`_load`).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping

from ..errors import CaseError
from ..model import Load


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
