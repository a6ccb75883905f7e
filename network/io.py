"""Case folders in and out (CSV tables + ``case.json``).

A case folder holds:

``case.json``
    ``{"schema": "tdmarket-case/1", "name", "description", "power_unit": "kW"|"MW",
    "parameters": {...}, "transmission": {"base_mva", "ref_bus"} | null,
    "feeders": [{"id", "n_phases", "v_head_pu", "s_base_kva", "v_base_kv",
    "import_min", "import_max", "pcc_bus"}]}``
``buses.csv``, ``branches.csv``
    transmission buses and DC lines (only if ``transmission`` is not null).
``feeder_nodes.csv``, ``feeder_lines.csv``
    feeder nodes and lines of every feeder (column ``feeder``); per-unit 3x3
    ``r_<p><q>_pu``/``x_<p><q>_pu`` (single-phase feeders fill ``r_aa_pu``/``x_aa_pu``).
``owners.csv``, ``units.csv``, ``loads.csv``, ``profiles.csv``
    participants, assets and the hourly profiles.

Empty CSV fields mean "none" (NaN, no limit, or no profile). Numbers are written
with ``repr`` so that read -> write -> read is exact. Every problem raises
:class:`~network.errors.CaseError` naming the file, the 1-based data row and the
column.

Importers from pandapower / MATPOWER and the OpenDSS exporter live in
:mod:`network.importers` and :mod:`network.opendss`.
"""
from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from .errors import CaseError
from .model import (TRANSMISSION, F_BRANCHES, F_BUSES, F_LINES, F_LOADS, F_META, F_NODES, F_OWNERS, F_PROFILES, F_UNITS,
                    PHASES, Bus, Case, DCLine, Feeder, FeederLine, FeederNode, Load, Owner, TransmissionGrid, Unit)

SCHEMA = "tdmarket-case/1"
_PAIRS = [p + q for p in PHASES for q in PHASES]
R_COLS = [f"r_{pq}_pu" for pq in _PAIRS]
X_COLS = [f"x_{pq}_pu" for pq in _PAIRS]

COLUMNS: dict[str, tuple[list[str], list[str]]] = {
    # file: (required columns, optional columns)
    F_BUSES: (["bus"], ["area", "v_min_pu", "v_max_pu"]),
    F_BRANCHES: (["line_id", "from_bus", "to_bus", "x_pu", "s_max"], ["r_pu"]),
    F_NODES: (["feeder", "node", "phases", "parent"], ["v_min_pu", "v_max_pu"]),
    F_LINES: (["feeder", "line_id", "from_node", "to_node", "phases", "r_aa_pu", "x_aa_pu"],
              ["length_km", "linecode", "p_max_pu", "q_max_pu", "s_max_pu"] + R_COLS[1:] + X_COLS[1:]),
    F_OWNERS: (["owner_id", "role"], ["area"]),
    F_UNITS: (["unit_id", "kind", "owner", "grid", "node", "phases", "p_min", "p_max"],
              ["q_min", "q_max", "cost", "offer_da", "offer_up", "offer_down", "avail_profile", "price_profile",
               "x", "y", "mean_share", "power_factor"]),
    F_LOADS: (["load_id", "kind", "owner", "grid", "node", "phases", "p_max"],
              ["q_min", "q_max", "tan_phi", "band_min", "band_max", "beta", "bid_da", "bid_up", "bid_down",
               "baseline_profile", "alpha_profile", "power_factor"]),
}


# ----------------------------------------------------------------------- reading


_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device"}


def case_file(path: Path, name: str, *, optional: bool = False) -> Path | None:
    """Check that ``path`` is a readable regular file before anything opens it.

    Returns ``path``, or None if ``optional`` and there is no entry of that name at all.
    A dangling symbolic link, a link loop, a directory, a FIFO (which would block a reader
    forever), a socket or a device is a :class:`CaseError` naming the file, never "absent".
    """
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        if optional:
            return None
        raise CaseError("file is missing", file=name) from None
    except OSError as exc:
        raise CaseError(f"cannot be read: {exc.strerror}", file=name) from None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CaseError(f"is a dangling symbolic link (to '{os.readlink(path)}')", file=name) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CaseError("is a symbolic link loop", file=name) from None
        raise CaseError(f"cannot be read: {exc.strerror}", file=name) from None
    del lst
    if stat.S_ISDIR(st.st_mode):
        raise CaseError("is a directory, expected a file", file=name)
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise CaseError(f"is {kind}, expected a regular file", file=name)
    return path


def read_text(path: Path, name: str) -> str:
    """The text of a case file (UTF-8; a leading byte-order mark is dropped)."""
    case_file(path, name)
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return fh.read()
    except UnicodeDecodeError as exc:
        raise CaseError(f"cannot read the file as UTF-8 ({exc.reason} at byte {exc.start})", file=name) from None
    except OSError as exc:
        raise CaseError(f"cannot be read: {exc.strerror}", file=name) from None


class _Table:
    """A CSV table as rows of strings, with located parsing helpers."""

    def __init__(self, path: Path, name: str) -> None:
        self.name = name
        try:
            rows = list(csv.reader(io.StringIO(read_text(path, name), newline="")))
        except csv.Error as exc:
            raise CaseError(f"cannot read the file as CSV ({exc})", file=name) from None
        if not rows:
            raise CaseError("file is empty (no header line)", file=name)
        self.header = [h.strip() for h in rows[0]]
        dup = {h for h in self.header if self.header.count(h) > 1}
        if dup:
            raise CaseError(f"duplicate column(s) {sorted(dup)} in the header", file=name, row=0)
        self.rows: list[dict[str, str]] = []
        for i, r in enumerate(rows[1:], start=1):
            if not any(c.strip() for c in r):
                continue
            if len(r) != len(self.header):
                raise CaseError(f"has {len(r)} fields, the header has {len(self.header)}", file=name, row=i)
            self.rows.append({h: c.strip() for h, c in zip(self.header, r)} | {"__row__": str(i)})

    def require(self, required: Iterable[str], optional: Iterable[str] = (), *, strict: bool = True) -> None:
        missing = [c for c in required if c not in self.header]
        if missing:
            raise CaseError(f"missing column(s): {', '.join(missing)}", file=self.name, row=0, column=missing[0])
        if strict:
            known = set(required) | set(optional)
            unknown = [c for c in self.header if c not in known]
            if unknown:
                raise CaseError(f"unknown column '{unknown[0]}'; expected some of: {', '.join(sorted(known))}",
                                file=self.name, row=0, column=unknown[0])

    @staticmethod
    def row_of(r: Mapping[str, str]) -> int:
        return int(r["__row__"])

    def text(self, r: Mapping[str, str], col: str, *, required: bool = True) -> str | None:
        v = r.get(col, "")
        if v == "":
            if required:
                raise CaseError("value is missing", file=self.name, row=self.row_of(r), column=col)
            return None
        return v

    def num(self, r: Mapping[str, str], col: str, default: float = math.nan, *, required: bool = False,
            allow_inf: bool = False) -> float:
        v = r.get(col, "")
        if v == "":
            if required:
                raise CaseError("value is missing", file=self.name, row=self.row_of(r), column=col)
            return default
        try:
            x = float(v)
        except ValueError:
            raise CaseError(f"expected a number, got {v!r}", file=self.name, row=self.row_of(r), column=col) from None
        if math.isnan(x) or (math.isinf(x) and not allow_inf):
            raise CaseError(f"value must be a finite number, got {v!r}", file=self.name, row=self.row_of(r),
                            column=col)
        return x

    def integer(self, r: Mapping[str, str], col: str, default: int | None = None) -> int | None:
        v = r.get(col, "")
        if v == "":
            return default
        try:
            return int(float(v)) if float(v).is_integer() else int(v)
        except ValueError:
            raise CaseError(f"expected an integer, got {v!r}", file=self.name, row=self.row_of(r), column=col) from None


def _meta(folder: Path) -> dict[str, Any]:
    path = folder / F_META
    if not os.path.lexists(path):
        raise CaseError("file is missing (is this a case folder?)", file=str(folder / F_META))
    try:
        meta = json.loads(read_text(path, F_META), parse_constant=lambda c: float(c))
    except json.JSONDecodeError as exc:
        raise CaseError(f"invalid JSON at line {exc.lineno}: {exc.msg}", file=F_META) from None
    if not isinstance(meta, dict):
        raise CaseError("must hold a JSON object", file=F_META)
    if meta.get("schema") != SCHEMA:
        raise CaseError(f"schema must be '{SCHEMA}', got {meta.get('schema')!r}", file=F_META, column="schema")
    for key in ("name", "power_unit"):
        if key not in meta:
            raise CaseError(f"key '{key}' is missing", file=F_META, column=key)
    return meta


def _meta_num(meta: Mapping[str, Any], key: str, where: str, default: float) -> float:
    v = meta.get(key, default)
    if v is None:
        return default
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise CaseError(f"expected a number, got {v!r}", file=F_META, column=f"{where}.{key}")
    return float(v)


def read_case(folder: str | os.PathLike[str]) -> Case:
    """Read and validate a case folder. Raises :class:`CaseError` on any problem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CaseError(f"case folder '{folder}' does not exist")
    try:
        return _read_case(folder)
    except CaseError as exc:
        raise exc.located(str(folder)) from None


def _read_case(folder: Path) -> Case:
    meta = _meta(folder)
    transmission = None
    tmeta = meta.get("transmission")
    if tmeta is not None and not isinstance(tmeta, dict):
        raise CaseError("'transmission' must be an object or null", file=F_META, column="transmission")
    if tmeta is not None:
        bt = _Table(folder / F_BUSES, F_BUSES)
        bt.require(*COLUMNS[F_BUSES])
        buses = [Bus(id=bt.text(r, "bus"), area=bt.integer(r, "area", 0),  # type: ignore[arg-type]
                     v_min=bt.num(r, "v_min_pu", 0.9), v_max=bt.num(r, "v_max_pu", 1.1), row=bt.row_of(r))
                 for r in bt.rows]
        lt = _Table(folder / F_BRANCHES, F_BRANCHES)
        lt.require(*COLUMNS[F_BRANCHES])
        lines = [DCLine(id=lt.text(r, "line_id"), from_bus=lt.text(r, "from_bus"),  # type: ignore[arg-type]
                        to_bus=lt.text(r, "to_bus"), x=lt.num(r, "x_pu", required=True),  # type: ignore[arg-type]
                        rating=lt.num(r, "s_max", math.inf, allow_inf=True), r=lt.num(r, "r_pu", 0.0),
                        row=lt.row_of(r)) for r in lt.rows]
        transmission = TransmissionGrid(buses, lines, base_mva=_meta_num(tmeta, "base_mva", "transmission", 100.0),
                                        ref_bus=None if tmeta.get("ref_bus") is None else str(tmeta["ref_bus"]))
    feeders = []
    fmeta = meta.get("feeders", [])
    if not isinstance(fmeta, list):
        raise CaseError("'feeders' must be a list", file=F_META, column="feeders")
    for i, fm in enumerate(fmeta):
        if not isinstance(fm, dict) or fm.get("id") in (None, ""):
            raise CaseError(f"feeder entry {i + 1} must be an object with an 'id', got {fm!r}", file=F_META,
                            column="feeders")
    for fm in fmeta:
        if str(fm.get("id")) == TRANSMISSION:
            raise CaseError(f"feeder id '{TRANSMISSION}' is reserved for the transmission grid; rename the feeder",
                            file=F_META, column="feeders.id")
    if fmeta:
        nt = _Table(folder / F_NODES, F_NODES)
        nt.require(*COLUMNS[F_NODES])
        et = _Table(folder / F_LINES, F_LINES)
        et.require(*COLUMNS[F_LINES])
        known = [str(fm.get("id")) for fm in fmeta]
        for t, col in ((nt, "feeder"), (et, "feeder")):
            for r in t.rows:
                if r["feeder"] not in known:
                    raise CaseError(f"unknown feeder '{r['feeder']}' (case.json lists {', '.join(known)})",
                                    file=t.name, row=t.row_of(r), column=col)
        for fm in fmeta:
            fid = str(fm.get("id"))
            where = f"feeders.{fid}"
            n_ph_f = _meta_num(fm, "n_phases", where, 3)
            if not n_ph_f.is_integer():
                raise CaseError(f"n_phases must be 1 or 3, got {n_ph_f}", file=F_META, column=f"{where}.n_phases")
            n_ph = int(n_ph_f)
            nodes = [FeederNode(id=nt.text(r, "node"), phases=nt.text(r, "phases"),  # type: ignore[arg-type]
                                parent=nt.text(r, "parent", required=False), v_min=nt.num(r, "v_min_pu", 0.95),
                                v_max=nt.num(r, "v_max_pu", 1.05), row=nt.row_of(r))
                     for r in nt.rows if r["feeder"] == fid]
            lines_ = [_feeder_line(et, r, n_ph) for r in et.rows if r["feeder"] == fid]
            feeders.append(Feeder(fid, nodes, lines_, n_phases=n_ph, v_head=_meta_num(fm, "v_head_pu", where, 1.0),
                                  s_base_kva=_meta_num(fm, "s_base_kva", where, 1000.0),
                                  v_base_kv=_meta_num(fm, "v_base_kv", where, 0.22),
                                  import_min=_meta_num(fm, "import_min", where, -math.inf),
                                  import_max=_meta_num(fm, "import_max", where, math.inf),
                                  pcc_bus=None if fm.get("pcc_bus") is None else str(fm["pcc_bus"])))
    ot = _Table(folder / F_OWNERS, F_OWNERS)
    ot.require(*COLUMNS[F_OWNERS])
    owners = [Owner(id=ot.text(r, "owner_id"), role=ot.text(r, "role"), area=ot.integer(r, "area"),  # type: ignore[arg-type]
                    row=ot.row_of(r)) for r in ot.rows]
    units = _assets(folder / F_UNITS, F_UNITS, Unit, "unit_id", ("avail_profile", "price_profile"))
    loads = _assets(folder / F_LOADS, F_LOADS, Load, "load_id", ("baseline_profile", "alpha_profile"))
    profiles = _profiles(folder / F_PROFILES)
    params = meta.get("parameters", {}) or {}
    if not isinstance(params, dict):
        raise CaseError("'parameters' must be an object", file=F_META, column="parameters")
    return Case(str(meta["name"]), transmission=transmission, feeders=feeders, owners=owners, units=units,
                loads=loads, profiles=profiles, parameters=params, power_unit=str(meta["power_unit"]),
                description=str(meta.get("description", "")))


def _feeder_line(t: _Table, r: Mapping[str, str], n_ph: int) -> FeederLine:
    frame = PHASES if n_ph == 3 else "a"
    n = len(frame)
    rm = np.zeros((n, n))
    xm = np.zeros((n, n))
    for i, p in enumerate(frame):
        for j, q in enumerate(frame):
            rm[i, j] = t.num(r, f"r_{p}{q}_pu", 0.0)
            xm[i, j] = t.num(r, f"x_{p}{q}_pu", 0.0)
    if n_ph == 1:
        for col in R_COLS[1:] + X_COLS[1:]:
            if r.get(col, "") not in ("", "0", "0.0"):
                raise CaseError("a single-phase feeder line only has r_aa_pu and x_aa_pu", file=t.name,
                                row=t.row_of(r), column=col)
    return FeederLine(id=t.text(r, "line_id"), from_node=t.text(r, "from_node"),  # type: ignore[arg-type]
                      to_node=t.text(r, "to_node"), phases=t.text(r, "phases"), r=rm, x=xm,  # type: ignore[arg-type]
                      p_max=t.num(r, "p_max_pu", math.inf, allow_inf=True),
                      q_max=t.num(r, "q_max_pu", math.inf, allow_inf=True),
                      s_max=t.num(r, "s_max_pu", math.inf, allow_inf=True),
                      length_km=t.num(r, "length_km"), linecode=t.text(r, "linecode", required=False),
                      row=t.row_of(r))


def _assets(path: Path, name: str, cls: Callable[..., Any], id_col: str, text_cols: tuple[str, ...]) -> list[Any]:
    if case_file(path, name, optional=True) is None:
        return []
    t = _Table(path, name)
    t.require(*COLUMNS[name])
    out = []
    defaults = {f: cls.__dataclass_fields__[f].default for f in cls.NUMERIC}
    for r in t.rows:
        kw: dict[str, Any] = dict(id=t.text(r, id_col), kind=t.text(r, "kind"), owner=t.text(r, "owner"),
                                  grid=t.text(r, "grid"), node=t.text(r, "node"), phases=t.text(r, "phases"),
                                  row=t.row_of(r))
        for f in cls.NUMERIC:
            kw[f] = t.num(r, f, defaults[f], required=f in COLUMNS[name][0])
        for f in text_cols:
            kw[f] = t.text(r, f, required=False)
        out.append(cls(**kw))
    return out


def _profiles(path: Path) -> pd.DataFrame | None:
    if case_file(path, F_PROFILES, optional=True) is None:
        return None
    t = _Table(path, F_PROFILES)
    t.require(["hour"], strict=False)
    hours = [t.integer(r, "hour") for r in t.rows]
    if hours != list(range(len(hours))):
        bad = next(i for i, h in enumerate(hours) if h != i)
        raise CaseError(f"hours must run 0, 1, 2, ... in order; expected {bad}, got {hours[bad]}", file=F_PROFILES,
                        row=bad + 1, column="hour")
    cols = [c for c in t.header if c != "hour"]
    data = {c: [t.num(r, c, required=True) for r in t.rows] for c in cols}
    return pd.DataFrame(data, index=pd.RangeIndex(len(hours), name="hour"))


# ----------------------------------------------------------------------- writing


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v) or math.isinf(v):
            return ""  # NaN = none, inf = no limit (the reader's defaults)
        return repr(v)
    return str(v)


def _write_csv(path: Path, header: list[str], rows: Iterable[Iterable[Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        for r in rows:
            w.writerow([_fmt(v) for v in r])


def write_case(case: Case, folder: str | os.PathLike[str]) -> Path:
    """Write ``case`` as a case folder (atomically: a temporary folder renamed into place)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        _write_case(case, tmp)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            if old.exists():
                _rmtree(old)
            folder.rename(old)
            tmp.rename(folder)
            _rmtree(old)
        else:
            tmp.rename(folder)
    finally:
        if tmp.exists():
            _rmtree(tmp)
    return folder


def _rmtree(p: Path) -> None:
    import shutil

    shutil.rmtree(p, ignore_errors=True)


def _infnone(v: float) -> float | None:
    return None if math.isinf(v) else v


def _write_case(case: Case, folder: Path) -> None:
    meta: dict[str, Any] = {
        "schema": SCHEMA, "name": case.name, "description": case.description, "power_unit": case.power_unit,
        "parameters": dict(case.parameters),
        "transmission": None if case.transmission is None else
        {"base_mva": case.transmission.base_mva, "ref_bus": case.transmission.ref_bus},
        "feeders": [{"id": f.id, "n_phases": f.n_phases, "v_head_pu": f.v_head, "s_base_kva": f.s_base_kva,
                     "v_base_kv": f.v_base_kv, "import_min": _infnone(f.import_min),
                     "import_max": _infnone(f.import_max), "pcc_bus": f.pcc_bus} for f in case.feeders.values()],
    }
    (folder / F_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if case.transmission is not None:
        t = case.transmission
        _write_csv(folder / F_BUSES, ["bus", "area", "v_min_pu", "v_max_pu"],
                   ([b.id, b.area, b.v_min, b.v_max] for b in t.buses))
        _write_csv(folder / F_BRANCHES, ["line_id", "from_bus", "to_bus", "r_pu", "x_pu", "s_max"],
                   ([ln.id, ln.from_bus, ln.to_bus, ln.r, ln.x, ln.rating] for ln in t.lines))
    if case.feeders:
        _write_csv(folder / F_NODES, ["feeder", "node", "phases", "parent", "v_min_pu", "v_max_pu"],
                   ([f.id, n.id, n.phases, n.parent, n.v_min, n.v_max] for f in case.feeders.values() for n in f.nodes))
        head = ["feeder", "line_id", "from_node", "to_node", "phases", "length_km", "linecode"] + R_COLS + X_COLS + \
               ["p_max_pu", "q_max_pu", "s_max_pu"]
        rows = []
        for f in case.feeders.values():
            for ln in f.lines:
                if f.n_phases == 3:
                    rv, xv = list(ln.r.ravel()), list(ln.x.ravel())
                else:
                    rv, xv = [ln.r1] + [None] * 8, [ln.x1] + [None] * 8
                rows.append([f.id, ln.id, ln.from_node, ln.to_node, ln.phases, ln.length_km, ln.linecode] + rv + xv
                            + [ln.p_max, ln.q_max, ln.s_max])
        _write_csv(folder / F_LINES, head, rows)
    _write_csv(folder / F_OWNERS, ["owner_id", "role", "area"], ([o.id, o.role, o.area] for o in case.owners))
    for file, items, id_col, cls in ((F_UNITS, case.units, "unit_id", Unit), (F_LOADS, case.loads, "load_id", Load)):
        req, opt = COLUMNS[file]
        cols = req + opt
        attr = {id_col: "id"}
        _write_csv(folder / file, cols, ([getattr(a, attr.get(c, c)) for c in cols] for a in items))
    if len(case.profiles.columns):
        p = case.profiles
        _write_csv(folder / F_PROFILES, ["hour"] + list(p.columns),
                   ([h] + [float(v) for v in p.iloc[h].to_numpy()] for h in range(len(p))))
