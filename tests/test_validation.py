"""Malformed case folders: each test copies a built-in case, breaks one thing and checks
that read_case raises a CaseError naming the right file, row and column.

Rows are 1-based data rows (row 0 is the header). Row map of the built-in cases:
- tes_feeder: feeder_nodes.csv node k is row k-1 (nodes 2..13); feeder_lines.csv Lk is row k;
  units.csv G1, G2, WT, PV, MG are rows 1-5; loads.csv RL1..RL6 rows 1-6, IL1 7, CL1 8, AL1 9;
  owners.csv DERM, LA, TESO, MG rows 1-4; profiles.csv hour h is row h+1.
- tso24_dso5: buses.csv bus k is row k; feeder_lines.csv F1 rows 1-5, F2 rows 6-10, ...
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from network.errors import CaseError
from network.io import read_case
from scenarios.registry import DATA

# --------------------------------------------------------------------- helpers


def copy_case(tmp_path: Path, name: str) -> Path:
    dst = tmp_path / name
    shutil.copytree(DATA / name, dst, ignore=shutil.ignore_patterns("source", "README.md"))
    return dst


def rows_of(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def write_rows(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def set_cell(folder: Path, file: str, row: int, column: str, value: str) -> None:
    """Set ``column`` of 1-based data row ``row``."""
    rows = rows_of(folder / file)
    rows[row][rows[0].index(column)] = value
    write_rows(folder / file, rows)


def add_row(folder: Path, file: str, **values: str) -> None:
    rows = rows_of(folder / file)
    rows.append([values.get(h, "") for h in rows[0]])
    write_rows(folder / file, rows)


def delete_rows(folder: Path, file: str, keep: Callable[[dict[str, str]], bool]) -> None:
    rows = rows_of(folder / file)
    write_rows(folder / file, [rows[0]] + [r for r in rows[1:] if keep(dict(zip(rows[0], r)))])


def rename_column(folder: Path, file: str, old: str, new: str) -> None:
    rows = rows_of(folder / file)
    rows[0][rows[0].index(old)] = new
    write_rows(folder / file, rows)


def drop_column(folder: Path, file: str, column: str) -> None:
    rows = rows_of(folder / file)
    i = rows[0].index(column)
    write_rows(folder / file, [r[:i] + r[i + 1:] for r in rows])


def edit_json(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = folder / "case.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    change(meta)
    path.write_text(json.dumps(meta, indent=2), encoding="utf-8")


def expect(folder: Path, file: str | None, row: int | None, column: str | None, *fragments: str) -> CaseError:
    with pytest.raises(CaseError) as info:
        read_case(folder)
    exc = info.value
    assert (exc.file, exc.row, exc.column) == (file, row, column), str(exc)
    text = str(exc)
    if file is not None:
        assert text.startswith(file), text
    if row is not None:
        assert f"row {row}" in text, text
    if column is not None:
        assert f"column '{column}'" in text, text
    for frag in fragments:
        assert frag in text, text
    return exc


@pytest.fixture
def tes(tmp_path: Path) -> Path:
    return copy_case(tmp_path, "tes_feeder")


@pytest.fixture
def tso(tmp_path: Path) -> Path:
    return copy_case(tmp_path, "tso24_dso5")


def test_builtin_copies_are_valid(tes: Path, tso: Path) -> None:
    assert read_case(tes).name == "tes_feeder"
    assert read_case(tso).name == "tso24_dso5"


# ------------------------------------------------------- unknown references


def test_unknown_to_node_of_feeder_line(tes: Path) -> None:
    set_cell(tes, "feeder_lines.csv", 5, "to_node", "99")
    expect(tes, "feeder_lines.csv", 5, "to_node", "unknown node '99'", "line_id=L5")


def test_unknown_node_of_asset(tes: Path) -> None:
    set_cell(tes, "units.csv", 1, "node", "99")
    expect(tes, "units.csv", 1, "node", "unknown node '99' in feeder LV1", "unit_id=G1")


def test_unknown_bus_of_transmission_asset(tso: Path) -> None:
    set_cell(tso, "loads.csv", 4, "node", "99")
    expect(tso, "loads.csv", 4, "node", "unknown transmission bus '99'")


def test_unknown_bus_in_branch(tso: Path) -> None:
    set_cell(tso, "branches.csv", 3, "to_bus", "99")
    expect(tso, "branches.csv", 3, "to_bus", "unknown bus '99'")


def test_unknown_parent(tes: Path) -> None:
    set_cell(tes, "feeder_nodes.csv", 6, "parent", "77")
    expect(tes, "feeder_nodes.csv", 6, "parent", "unknown parent node '77'", "node=7")


def test_parent_in_another_feeder(tso: Path) -> None:
    # F2's node 31 (row 9) names F1's node 25 as its parent: parents are looked up within the feeder
    set_cell(tso, "feeder_nodes.csv", 9, "parent", "25")
    expect(tso, "feeder_nodes.csv", 9, "parent", "unknown parent node '25' in feeder F2")


def test_unknown_owner(tes: Path) -> None:
    set_cell(tes, "units.csv", 2, "owner", "NOBODY")
    expect(tes, "units.csv", 2, "owner", "unknown owner 'NOBODY'")


def test_unknown_role(tes: Path) -> None:
    set_cell(tes, "owners.csv", 1, "role", "der_manger")
    expect(tes, "owners.csv", 1, "role", "unknown role 'der_manger'", "der_manager")


def test_unknown_grid_of_asset(tes: Path) -> None:
    set_cell(tes, "loads.csv", 3, "grid", "LV9")
    expect(tes, "loads.csv", 3, "grid", "unknown grid 'LV9'")


def test_unknown_feeder_in_node_table(tes: Path) -> None:
    set_cell(tes, "feeder_nodes.csv", 4, "feeder", "LV2")
    expect(tes, "feeder_nodes.csv", 4, "feeder", "unknown feeder 'LV2'")


def test_unknown_pcc_bus(tso: Path) -> None:
    edit_json(tso, lambda m: m["feeders"][0].update(pcc_bus="99"))
    expect(tso, "case.json", None, "feeders.F1.pcc_bus", "unknown transmission bus '99'")


def test_unknown_reference_bus(tso: Path) -> None:
    edit_json(tso, lambda m: m["transmission"].update(ref_bus="0"))
    expect(tso, "case.json", None, "transmission.ref_bus", "reference bus '0'")


def test_missing_profile_column(tes: Path) -> None:
    set_cell(tes, "units.csv", 3, "avail_profile", "wt_avail_typo")
    expect(tes, "units.csv", 3, "avail_profile", "profile column 'wt_avail_typo' is missing")


# ------------------------------------------------------------- duplicate ids


def test_duplicate_unit_id(tes: Path) -> None:
    set_cell(tes, "units.csv", 2, "unit_id", "G1")
    expect(tes, "units.csv", 2, "unit_id", "duplicate id 'G1'", "first seen in row 1")


def test_duplicate_feeder_line_id(tes: Path) -> None:
    set_cell(tes, "feeder_lines.csv", 4, "line_id", "L3")
    expect(tes, "feeder_lines.csv", 4, "line_id", "duplicate id 'L3' in feeder LV1", "first seen in row 3")


def test_duplicate_feeder_line_id_in_second_feeder(tso: Path) -> None:
    # F2's lines are rows 6-10: the row is the file's, not the position within the feeder
    set_cell(tso, "feeder_lines.csv", 8, "line_id", "L6-30")
    expect(tso, "feeder_lines.csv", 8, "line_id", "duplicate id 'L6-30' in feeder F2", "first seen in row 6")


def test_duplicate_bus(tso: Path) -> None:
    set_cell(tso, "buses.csv", 5, "bus", "4")
    expect(tso, "buses.csv", 5, "bus", "duplicate id '4'")


def test_unit_and_load_share_an_id(tes: Path) -> None:
    set_cell(tes, "loads.csv", 2, "load_id", "G2")
    expect(tes, "loads.csv", 2, "load_id", "'G2' is used both as a unit and as a load")


# ---------------------------------------------------------------- topology


def test_node_fed_by_two_lines(tes: Path) -> None:
    row = rows_of(tes / "feeder_lines.csv")[3]  # L3, a 3-phase trunk line
    rows = rows_of(tes / "feeder_lines.csv")
    new = dict(zip(rows[0], row)) | {"line_id": "L12", "from_node": "4", "to_node": "9"}
    add_row(tes, "feeder_lines.csv", **new)
    expect(tes, "feeder_lines.csv", 12, "to_node", "node '9' is fed by two lines (L7 and L12)", "not radial")


def test_loop_in_feeder(tes: Path) -> None:
    # node 3 hangs below node 7 and L1 feeds it from there: 3 -> 4 -> 5 -> 6 -> 7 -> 3
    set_cell(tes, "feeder_nodes.csv", 2, "parent", "7")
    set_cell(tes, "feeder_lines.csv", 1, "from_node", "7")
    expect(tes, "feeder_nodes.csv", 2, "parent", "form a loop", "not radial")


def test_line_against_parent(tes: Path) -> None:
    # L9 goes 5 -> 11 but node 11 now names node 4 as its parent
    set_cell(tes, "feeder_nodes.csv", 10, "parent", "4")
    expect(tes, "feeder_lines.csv", 9, "from_node", "node 11 has parent '4'")


def test_node_is_its_own_parent(tes: Path) -> None:
    set_cell(tes, "feeder_nodes.csv", 4, "parent", "5")
    expect(tes, "feeder_nodes.csv", 4, "parent", "its own parent")


def test_disconnected_feeder_second_head(tes: Path) -> None:
    set_cell(tes, "feeder_nodes.csv", 7, "parent", "")
    expect(tes, "feeder_nodes.csv", 7, "parent", "exactly one head", "'8'")


def test_node_without_line(tes: Path) -> None:
    delete_rows(tes, "feeder_lines.csv", lambda r: r["line_id"] != "L11")
    expect(tes, "feeder_nodes.csv", 12, "parent", "node '13' has parent '12' but no line feeds it")


def test_disconnected_transmission_grid(tso: Path) -> None:
    # bus 7 is joined to the grid by line T7-8 only
    delete_rows(tso, "branches.csv", lambda r: "7" not in (r["from_bus"], r["to_bus"]))
    expect(tso, "branches.csv", None, None, "not connected", "['7']")


# ------------------------------------------------------------------ numbers


def test_zero_feeder_resistance(tes: Path) -> None:
    set_cell(tes, "feeder_lines.csv", 3, "r_aa_pu", "0")
    expect(tes, "feeder_lines.csv", 3, "r_aa_pu", "self impedance of phase a must be positive")


def test_zero_branch_reactance(tso: Path) -> None:
    set_cell(tso, "branches.csv", 2, "x_pu", "0")
    expect(tso, "branches.csv", 2, "x_pu", "reactance must be non-zero")


def test_negative_branch_reactance_is_a_series_capacitor(tso: Path) -> None:
    """A negative reactance (series compensation) is accepted while the DC flow stays solvable."""
    set_cell(tso, "branches.csv", 2, "x_pu", "-0.01")
    assert read_case(tso).transmission.lines[1].x == -0.01


def test_nan_impedance(tes: Path) -> None:
    set_cell(tes, "feeder_lines.csv", 6, "x_bb_pu", "nan")
    expect(tes, "feeder_lines.csv", 6, "x_bb_pu", "finite")


def test_infinite_reactance(tso: Path) -> None:
    set_cell(tso, "branches.csv", 7, "x_pu", "inf")
    expect(tso, "branches.csv", 7, "x_pu", "finite")


def test_impedance_of_absent_phase(tes: Path) -> None:
    # L8 is phase b only: its phase-a entries must be 0 or empty
    set_cell(tes, "feeder_lines.csv", 8, "r_aa_pu", "0.1")
    expect(tes, "feeder_lines.csv", 8, "r_aa_pu", "absent phase")


def test_asymmetric_impedance_matrix(tes: Path) -> None:
    set_cell(tes, "feeder_lines.csv", 2, "x_cb_pu", "0.2")
    expect(tes, "feeder_lines.csv", 2, "x_bc_pu", "not symmetric", "x_cb_pu = 0.2")


def test_nan_in_profile(tes: Path) -> None:
    set_cell(tes, "profiles.csv", 5, "pv_avail_kw", "nan")
    expect(tes, "profiles.csv", 5, "pv_avail_kw", "finite")


def test_inf_in_profile(tes: Path) -> None:
    set_cell(tes, "profiles.csv", 20, "lmp_usd_per_kwh", "inf")
    expect(tes, "profiles.csv", 20, "lmp_usd_per_kwh", "finite")


def test_empty_profile_value(tes: Path) -> None:
    set_cell(tes, "profiles.csv", 2, "p0_RL3_kw", "")
    expect(tes, "profiles.csv", 2, "p0_RL3_kw", "missing")


def test_negative_availability(tes: Path) -> None:
    set_cell(tes, "profiles.csv", 4, "wt_avail_kw", "-1")
    expect(tes, "profiles.csv", 4, "wt_avail_kw", "negative value -1.0 in profile 'wt_avail_kw'")


def test_v_min_above_v_max(tes: Path) -> None:
    set_cell(tes, "feeder_nodes.csv", 3, "v_min_pu", "1.1")
    expect(tes, "feeder_nodes.csv", 3, "v_min_pu", "lower limit 1.1 is above upper limit 1.05")


def test_bus_v_min_above_v_max(tso: Path) -> None:
    set_cell(tso, "buses.csv", 8, "v_max_pu", "0.7")
    expect(tso, "buses.csv", 8, "v_min_pu", "above upper limit 0.7", "column 'v_max_pu'")


def test_p_min_above_p_max(tes: Path) -> None:
    set_cell(tes, "units.csv", 1, "p_min", "200")
    expect(tes, "units.csv", 1, "p_min", "lower limit 200.0 is above upper limit 125.0")


def test_q_min_above_q_max(tso: Path) -> None:
    set_cell(tso, "loads.csv", 1, "q_min", "5")
    expect(tso, "loads.csv", 1, "q_min", "above upper limit 3.0")


def test_band_min_above_band_max(tes: Path) -> None:
    set_cell(tes, "loads.csv", 1, "band_min", "1.2")
    expect(tes, "loads.csv", 1, "band_min", "lower limit 1.2 is above upper limit 1.1")


def test_band_half_given(tes: Path) -> None:
    set_cell(tes, "loads.csv", 7, "band_max", "")
    expect(tes, "loads.csv", 7, "band_max", "must be given together")


def test_import_min_above_import_max(tes: Path) -> None:
    edit_json(tes, lambda m: m["feeders"][0].update(import_min=300.0))
    expect(tes, "case.json", None, "feeders.LV1.import_min", "above upper limit 200.0")


def test_negative_unit_capacity(tes: Path) -> None:
    set_cell(tes, "units.csv", 2, "p_max", "-100")
    expect(tes, "units.csv", 2, "p_max", "capacity must be non-negative")


def test_negative_load_peak(tso: Path) -> None:
    set_cell(tso, "loads.csv", 6, "p_max", "-1")
    expect(tso, "loads.csv", 6, "p_max", "capacity must be non-negative")


def test_non_positive_line_limit(tes: Path) -> None:
    set_cell(tes, "feeder_lines.csv", 10, "p_max_pu", "0")
    expect(tes, "feeder_lines.csv", 10, "p_max_pu", "limit must be positive")


def test_non_numeric_value(tes: Path) -> None:
    set_cell(tes, "units.csv", 1, "p_max", "125kW")
    expect(tes, "units.csv", 1, "p_max", "expected a number, got '125kW'")


def test_non_integer_area(tso: Path) -> None:
    set_cell(tso, "owners.csv", 3, "area", "two")
    expect(tso, "owners.csv", 3, "area", "expected an integer")


def test_missing_required_value(tes: Path) -> None:
    set_cell(tes, "loads.csv", 5, "owner", "")
    expect(tes, "loads.csv", 5, "owner", "value is missing")


# ------------------------------------------------------------------- phases


def test_abc_load_at_single_phase_node(tes: Path) -> None:
    # RL6 sits at node 10, which has phase b only
    set_cell(tes, "loads.csv", 6, "phases", "abc")
    expect(tes, "loads.csv", 6, "phases", "phase(s) ac not present at node 10 (phases b)")


def test_line_phase_missing_at_from_node(tes: Path) -> None:
    # a phase-c lateral from node 10 (phase b only)
    add_row(tes, "feeder_nodes.csv", feeder="LV1", node="14", phases="c", parent="10", v_min_pu="0.95",
            v_max_pu="1.05")
    add_row(tes, "feeder_lines.csv", feeder="LV1", line_id="L12", from_node="10", to_node="14", phases="c",
            r_cc_pu="0.5", x_cc_pu="0.2")
    expect(tes, "feeder_lines.csv", 12, "phases", "phase(s) c of the line are not present at its from-node '10'")


def test_node_phases_differ_from_incoming_line(tes: Path) -> None:
    set_cell(tes, "feeder_nodes.csv", 9, "phases", "bc")  # node 10; its line L8 has phase b
    expect(tes, "feeder_lines.csv", 8, "phases", "node '10' has phases 'bc' but its incoming line has 'b'")


def test_invalid_phase_letter(tes: Path) -> None:
    set_cell(tes, "units.csv", 4, "phases", "abd")
    expect(tes, "units.csv", 4, "phases", "distinct letters")


def test_three_phase_line_in_single_phase_feeder(tso: Path) -> None:
    set_cell(tso, "feeder_lines.csv", 2, "phases", "abc")
    expect(tso, "feeder_lines.csv", 2, "phases", "not in a 1-phase feeder")


# ------------------------------------------------------------- horizon, hours


def test_horizon_longer_than_profiles(tes: Path) -> None:
    edit_json(tes, lambda m: m["parameters"].update(horizon=48))
    expect(tes, "profiles.csv", None, "hour", "horizon is 48 in case.json but profiles.csv has 24 rows")


def test_profiles_row_missing(tes: Path) -> None:
    delete_rows(tes, "profiles.csv", lambda r: r["hour"] != "23")
    expect(tes, "profiles.csv", None, "hour", "has 23 rows")


def test_horizon_not_a_number(tso: Path) -> None:
    edit_json(tso, lambda m: m["parameters"].update(horizon="one"))
    expect(tso, "case.json", None, "parameters.horizon", "positive whole number")


def test_hours_out_of_order(tes: Path) -> None:
    set_cell(tes, "profiles.csv", 4, "hour", "4")
    set_cell(tes, "profiles.csv", 5, "hour", "3")
    expect(tes, "profiles.csv", 4, "hour", "expected 3, got 4")


# ------------------------------------------------------ columns, files, JSON


def test_missing_required_column(tes: Path) -> None:
    drop_column(tes, "loads.csv", "phases")
    expect(tes, "loads.csv", 0, "phases", "missing column(s): phases")


def test_unknown_column(tes: Path) -> None:
    rename_column(tes, "units.csv", "q_min", "qmin")
    expect(tes, "units.csv", 0, "qmin", "unknown column 'qmin'")


def test_duplicate_column(tso: Path) -> None:
    rename_column(tso, "buses.csv", "v_max_pu", "v_min_pu")
    expect(tso, "buses.csv", 0, None, "duplicate column(s) ['v_min_pu']")


def test_wrong_field_count(tes: Path) -> None:
    with open(tes / "owners.csv", "a", encoding="utf-8") as fh:
        fh.write("EXTRA,dso,1,2\n")
    expect(tes, "owners.csv", 5, None, "has 4 fields, the header has 3")


def test_missing_file(tes: Path) -> None:
    (tes / "owners.csv").unlink()
    expect(tes, "owners.csv", None, None, "file is missing")


def test_missing_case_json(tes: Path) -> None:
    (tes / "case.json").unlink()
    exc = expect(tes, str(tes / "case.json"), None, None, "is this a case folder")
    assert exc.row is None


def test_missing_folder(tmp_path: Path) -> None:
    expect(tmp_path / "nowhere", None, None, None, "does not exist")


def test_bad_json(tes: Path) -> None:
    text = (tes / "case.json").read_text(encoding="utf-8")
    (tes / "case.json").write_text(text.replace('"power_unit": "kW",', '"power_unit": "kW"'), encoding="utf-8")
    expect(tes, "case.json", None, None, "invalid JSON at line")


def test_wrong_schema(tes: Path) -> None:
    edit_json(tes, lambda m: m.update(schema="tdmarket-case/0"))
    expect(tes, "case.json", None, "schema", "schema must be 'tdmarket-case/1'")


def test_wrong_power_unit(tes: Path) -> None:
    edit_json(tes, lambda m: m.update(power_unit="GW"))
    expect(tes, "case.json", None, "power_unit", "'kW' or 'MW'")


def test_feeder_entry_not_an_object(tes: Path) -> None:
    edit_json(tes, lambda m: m.update(feeders=["LV1"]))
    expect(tes, "case.json", None, "feeders", "feeder entry 1 must be an object")


def test_two_phase_feeder(tes: Path) -> None:
    edit_json(tes, lambda m: m["feeders"][0].update(n_phases=2))
    expect(tes, "case.json", None, "feeders.LV1.n_phases", "1 or 3")


def test_non_utf8_file(tes: Path) -> None:
    (tes / "owners.csv").write_bytes("owner_id,role,area\nD\xe9RM,der_manager,\n".encode("latin-1"))
    expect(tes, "owners.csv", None, None, "UTF-8")


def test_fractional_phase_count(tes: Path) -> None:
    edit_json(tes, lambda m: m["feeders"][0].update(n_phases=2.5))
    expect(tes, "case.json", None, "feeders.LV1.n_phases", "1 or 3, got 2.5")
