"""MATPOWER ``.m`` case files as transmission :class:`~network.model.Case` s (DC lines, MW).

One job: ``parse_matpower`` reads the numeric parts of a MATPOWER case
(``baseMVA``, ``bus``, ``gen``, ``branch``, ``gencost``) without MATLAB or Octave;
``read_matpower`` turns them into a :class:`TransmissionGrid` case, DC as in
MATPOWER's own DC model. Errors name ``<file>:mpc.<matrix>``, the 1-based row and
the MATPOWER column name (``BR_X``, ``PMAX``, ...).
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CaseError
from ..model import TRANSMISSION, Bus, Case, DCLine, TransmissionGrid, Unit
from .common import _load, _located, _transmission_case


BUS_COLS = ("BUS_I", "BUS_TYPE", "PD", "QD", "GS", "BS", "BUS_AREA", "VM", "VA", "BASE_KV", "ZONE", "VMAX", "VMIN")
GEN_COLS = ("GEN_BUS", "PG", "QG", "QMAX", "QMIN", "VG", "MBASE", "GEN_STATUS", "PMAX", "PMIN")
BRANCH_COLS = ("F_BUS", "T_BUS", "BR_R", "BR_X", "BR_B", "RATE_A", "RATE_B", "RATE_C", "TAP", "SHIFT", "BR_STATUS")
GENCOST_COLS = ("MODEL", "STARTUP", "SHUTDOWN", "NCOST")

_NUM = re.compile(r"^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf|inf|NaN|nan)$")


def _strip_comments(text: str) -> str:
    out = []
    for line in text.splitlines():
        in_str = False
        cut = len(line)
        for k, ch in enumerate(line):
            if ch == "'":
                in_str = not in_str
            elif ch == "%" and not in_str:
                cut = k
                break
        out.append(line[:cut])
    return "\n".join(out)


def parse_matpower(text: str, *, file: str = "case.m") -> dict[str, Any]:
    """Parse the numeric parts of a MATPOWER case: ``{"baseMVA": float, "bus": array, ...}``.

    Reads ``mpc.<field> = <number>;`` and ``mpc.<field> = [ ... ];`` (rows separated
    by ``;`` or new lines, entries by spaces, tabs or commas); cell arrays and
    anything else are skipped.
    """
    body = _strip_comments(text)
    out: dict[str, Any] = {}
    for m in re.finditer(r"mpc\.(\w+)\s*=\s*([^;\[{]+);", body):
        try:
            out[m.group(1)] = float(m.group(2).strip().strip("'"))
        except ValueError:
            out[m.group(1)] = m.group(2).strip().strip("'")
    for m in re.finditer(r"mpc\.(\w+)\s*=\s*\[(.*?)\]\s*;", body, flags=re.S):
        key = m.group(1)
        rows = []
        for k, raw in enumerate(re.split(r"[;\n]", m.group(2))):
            toks = [t for t in re.split(r"[\s,]+", raw.strip()) if t]
            if not toks:
                continue
            bad = [t for t in toks if not _NUM.match(t)]
            if bad:
                raise CaseError(f"not a number: {bad[0]!r}", file=f"{file}:mpc.{key}", row=len(rows) + 1)
            rows.append([float(t) for t in toks])
        if rows:
            width = max(len(r) for r in rows)
            for k, r in enumerate(rows, start=1):
                if len(r) != width and key != "gencost":
                    raise CaseError(f"has {len(r)} columns, the first row has {len(rows[0])}",
                                    file=f"{file}:mpc.{key}", row=k)
            arr = np.full((len(rows), width), np.nan)
            for k, r in enumerate(rows):
                arr[k, :len(r)] = r
            out[key] = arr
        else:
            out[key] = np.zeros((0, 0))
    return out


def _mp_bus_id(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def read_matpower(path: str | os.PathLike[str], name: str | None = None) -> Case:
    """Read a MATPOWER ``.m`` case into a transmission :class:`Case` (DC lines, MW).

    - Buses: id = ``BUS_I``; ``VMIN``/``VMAX``; area 0 (transmission; the MATPOWER
      area is not kept); isolated buses (type 4) are dropped. The reference bus is
      the first of type 3.
    - Branches in service: ``DCLine`` ``L<row>`` with ``x = BR_X * TAP`` (TAP 0 means
      1), as MATPOWER's DC model ``b = 1/(x tap)``; rating ``RATE_A`` (0 = no
      limit); ``BR_R`` kept; ``SHIFT`` is ignored (noted in the description).
    - Generators in service: Units ``G<row>`` (kind ``thermal``, owner ``GENCO``)
      with ``PMIN..PMAX``, ``QMIN..QMAX``; ``cost`` = the linear coefficient of a
      polynomial ``gencost`` (model 2), or the first segment's slope of a
      piecewise-linear one (model 1); non-zero quadratic coefficients go to the
      parameter ``cost_c2`` as ``{unit_id: c2}``.
    - Loads: ``D<bus>`` for each bus with ``PD`` or ``QD`` non-zero (owner
      ``RETAIL``, ``tan_phi`` = QD/PD). Bus shunts ``GS``/``BS`` are ignored.
    """
    path = Path(path)
    if not path.exists():
        raise CaseError("file is missing", file=str(path))
    fname = path.name
    mpc = parse_matpower(path.read_text(encoding="utf-8"), file=fname)
    name = name or path.stem
    for key, cols in (("bus", BUS_COLS), ("gen", GEN_COLS), ("branch", BRANCH_COLS)):
        if key not in mpc:
            raise CaseError(f"matrix mpc.{key} is missing", file=fname)
        if mpc[key].ndim != 2 or mpc[key].shape[1] < len(cols):
            raise CaseError(f"mpc.{key} needs at least {len(cols)} columns ({', '.join(cols)})",
                            file=f"{fname}:mpc.{key}", column=cols[min(mpc[key].shape[1], len(cols) - 1)])
    base = mpc.get("baseMVA")
    if not isinstance(base, float) or not (base > 0):
        raise CaseError(f"baseMVA must be a positive number, got {base!r}", file=fname, column="baseMVA")
    bus, gen, branch = mpc["bus"], mpc["gen"], mpc["branch"]
    tb, tg, tl, tc = (f"{fname}:mpc.{k}" for k in ("bus", "gen", "branch", "gencost"))
    B = {c: k for k, c in enumerate(BUS_COLS)}
    G = {c: k for k, c in enumerate(GEN_COLS)}
    L = {c: k for k, c in enumerate(BRANCH_COLS)}
    buses, loads, live = [], [], set()
    ref = None
    for k, r in enumerate(bus, start=1):
        for c in ("BUS_I", "BUS_TYPE", "PD", "QD"):
            if not math.isfinite(r[B[c]]):
                raise CaseError("value must be a finite number", file=tb, row=k, column=c)
        bid = _mp_bus_id(r[B["BUS_I"]])
        btype = int(r[B["BUS_TYPE"]])
        if btype not in (1, 2, 3, 4):
            raise CaseError(f"bus type must be 1, 2, 3 or 4, got {btype}", file=tb, row=k, column="BUS_TYPE")
        if btype == 4:
            continue
        if btype == 3 and ref is None:
            ref = bid
        live.add(bid)
        with _located(tb, k, {"v_min_pu": "VMIN", "v_max_pu": "VMAX", "bus": "BUS_I"}):
            buses.append(Bus(bid, 0, float(r[B["VMIN"]]), float(r[B["VMAX"]]), row=k))
        pd_, qd = float(r[B["PD"]]), float(r[B["QD"]])
        if pd_ < 0:
            raise CaseError(f"negative demand {pd_} is not supported", file=tb, row=k, column="PD")
        if pd_ or qd:
            with _located(tb, k, {"p_max": "PD", "q_min": "QD", "q_max": "QD"}):
                loads.append(_load(f"D{bid}", "RETAIL", TRANSMISSION, bid, "abc", pd_, qd))
    if ref is None:
        raise CaseError("no reference bus (BUS_TYPE 3)", file=tb, column="BUS_TYPE")
    with _located(tb, None, {"bus": "BUS_I"}):
        _check_unique([b.id for b in buses], tb, "BUS_I")
    lines, shifted = [], 0
    for k, r in enumerate(branch, start=1):
        if r[L["BR_STATUS"]] == 0:
            continue
        f, t = _mp_bus_id(r[L["F_BUS"]]), _mp_bus_id(r[L["T_BUS"]])
        for c, b in (("F_BUS", f), ("T_BUS", t)):
            if b not in live:
                raise CaseError(f"unknown or isolated bus {b}", file=tl, row=k, column=c)
        tap = float(r[L["TAP"]]) or 1.0
        rate = float(r[L["RATE_A"]])
        shifted += int(float(r[L["SHIFT"]]) != 0.0)
        with _located(tl, k, {"x_pu": "BR_X", "r_pu": "BR_R", "s_max": "RATE_A", "to_bus": "T_BUS"}):
            lines.append(DCLine(f"L{k}", f, t, float(r[L["BR_X"]]) * tap, math.inf if rate == 0 else rate,
                                r=float(r[L["BR_R"]]), row=k))
    with _located(tl, None):
        grid = TransmissionGrid(buses, lines, base_mva=base, ref_bus=ref, name=name)
    gencost = mpc.get("gencost")
    units, c2 = [], {}
    for k, r in enumerate(gen, start=1):
        if r[G["GEN_STATUS"]] <= 0:
            continue
        b = _mp_bus_id(r[G["GEN_BUS"]])
        if b not in live:
            raise CaseError(f"unknown or isolated bus {b}", file=tg, row=k, column="GEN_BUS")
        c1, c2k = _mp_cost(gencost, k, tc)
        uid = f"G{k}"
        with _located(tg, k, {"p_min": "PMIN", "p_max": "PMAX", "q_min": "QMIN", "q_max": "QMAX"}):
            units.append(Unit(uid, "thermal", "GENCO", TRANSMISSION, b, "abc", p_min=float(r[G["PMIN"]]),
                              p_max=float(r[G["PMAX"]]), q_min=float(r[G["QMIN"]]), q_max=float(r[G["QMAX"]]),
                              cost=c1, row=k))
        if c2k:
            c2[uid] = c2k
    desc = f"{name}: transmission grid read from the MATPOWER file {fname} (DC lines)"
    if shifted:
        desc += f"; {shifted} phase shift(s) ignored"
    return _transmission_case(name, grid, units, loads, c2, source="matpower", description=desc)


def _check_unique(ids: list[str], file: str, column: str) -> None:
    seen: dict[str, int] = {}
    for k, x in enumerate(ids, start=1):
        if x in seen:
            raise CaseError(f"duplicate bus number {x} (first in row {seen[x]})", file=file, row=k, column=column)
        seen[x] = k


def _mp_cost(gencost: np.ndarray | None, k: int, file: str) -> tuple[float, float]:
    """(linear, quadratic) cost of generator row ``k`` (1-based); NaN if there is no gencost."""
    if gencost is None or gencost.size == 0:
        return math.nan, 0.0
    if k > gencost.shape[0]:
        raise CaseError(f"mpc.gencost has {gencost.shape[0]} rows, fewer than the generators", file=file, row=k)
    r = gencost[k - 1]
    model, n = int(r[0]), int(r[3]) if gencost.shape[1] > 3 else 0
    coeffs = r[4:4 + (2 * n if model == 1 else n)]
    if len(coeffs) < (2 * n if model == 1 else n) or not np.all(np.isfinite(coeffs)):
        raise CaseError(f"expected {2 * n if model == 1 else n} cost values after NCOST", file=file, row=k,
                        column="COST")
    if model == 2:
        c1 = float(coeffs[-2]) if n >= 2 else 0.0
        c2 = float(coeffs[-3]) if n >= 3 else 0.0
        return c1, c2
    if model == 1:
        if n < 2:
            raise CaseError("a piecewise-linear cost needs at least two points", file=file, row=k, column="NCOST")
        p0, f0, p1, f1 = coeffs[:4]
        if p1 == p0:
            raise CaseError("the first two cost points have the same power", file=file, row=k, column="COST")
        return float((f1 - f0) / (p1 - p0)), 0.0
    raise CaseError(f"cost model must be 1 or 2, got {model}", file=file, row=k, column="MODEL")
