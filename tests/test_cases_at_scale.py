"""Cases at scale: ``run.py import`` and ``run.py make-case`` round trips, a generated 20-feeder T&D case
under tso-dso, and tes on several feeders (one operator, LA and DER managers per feeder, scoped by area)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import run as cli
from coordinator.boundary import Boundary, BoundaryViolation
from coordinator.messages import Offer, Product
from coordinator.runtime import LocalRuntime
from coordinator.tes.policy import TES_POLICY
from coordinator.tes.schema import dims
from coordinator.tes.setup import TESConfig, feeder_roles, make_hosts
from network.importers import import_pandapower_case, read_matpower
from network.io import read_case
from scenarios.make_case import make_tes
from scenarios.registry import load_case
from tests.short_runs import short_tso_dso

CASE9 = Path(__file__).parent / "data" / "case9.m"


def test_import_matpower_round_trip(tmp_path):
    assert cli.main(["import", str(CASE9), "--out", str(tmp_path / "c9")]) == 0
    back = read_case(tmp_path / "c9")
    src = read_matpower(CASE9)
    assert back == src
    assert back.transmission.n_buses == 9 and back.transmission.n_lines == 9
    # the source's numbers: MATPOWER case9 branch 1-4 has x = 0.0576, bus 5 a load of 90 MW
    line = next(ln for ln in back.transmission.lines if {ln.from_bus, ln.to_bus} == {"1", "4"})
    assert line.x == pytest.approx(0.0576)
    assert next(d.p_max for d in back.loads if d.node == "5") == pytest.approx(90.0)
    assert (tmp_path / "c9" / "README.md").read_text().startswith("# case9")


def test_import_pandapower_round_trip(tmp_path):
    import pandapower.networks as pn

    assert cli.main(["import", "case118", "--out", str(tmp_path / "c118")]) == 0
    back = read_case(tmp_path / "c118")
    net = pn.case118()
    assert back.transmission.n_buses == len(net.bus)
    assert back.transmission.n_lines == len(net.line) + len(net.trafo)
    assert sum(d.p_max for d in back.loads) == pytest.approx(float(net.load.p_mw.sum()))
    # line 0 (bus 1 - bus 2): x in pu of the 100 MVA base = x_ohm / z_base
    z = float(net.bus.vn_kv.iloc[0]) ** 2 / float(net.sn_mva)
    x_pu = float(net.line.x_ohm_per_km.iloc[0] * net.line.length_km.iloc[0]) / z
    line = next(ln for ln in back.transmission.lines if ln.id == "L0")
    assert line.x == pytest.approx(x_pu, rel=1e-9)
    assert cli.main(["import", "case33bw", "--out", str(tmp_path / "c33")]) == 0
    assert read_case(tmp_path / "c33") == import_pandapower_case("case33bw")


def test_import_bad_input_is_one_line(tmp_path, capsys):
    assert cli.main(["import", "no_such_network", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_such_network" in err[0]
    assert cli.main(["import", str(tmp_path / "f.dss"), "--out", str(tmp_path / "y")]) == 2


def test_make_case_tso_dso_20_feeders_runs(tmp_path):
    out = tmp_path / "m20"
    assert cli.main(["make-case", "--out", str(out), "--feeders", "20", "--seed", "3"]) == 0
    case = load_case(str(out))
    assert len(case.feeders) == 20 and case.transmission.n_buses == 118
    assert len({f.pcc_bus for f in case.feeders.values()}) == 20
    assert sum(u.mean_share for u in case.units if u.kind == "wind") == pytest.approx(1.0)
    # the feeders carry about --feeder-share (0.3) of the transmission load, within the spread
    t_load = sum(d.p_max for d in case.loads if d.grid == "T")
    f_load = sum(d.p_max for d in case.loads if d.grid != "T")
    assert 0.3 * 0.8 <= f_load / t_load <= 0.3 * 1.2
    assert "F20" in (out / "README.md").read_text()
    # same seed, same case
    assert cli.main(["make-case", "--out", str(tmp_path / "again"), "--feeders", "20", "--seed", "3"]) == 0
    assert read_case(tmp_path / "again").units == case.units
    run_dir = tmp_path / "run"
    assert cli.main(["tso-dso", "--case", str(out), "--scenarios", "3", "--oos", "0", "--schemes", "cm",
                     "--out", str(run_dir)]) == 0
    w = pd.read_parquet(run_dir / "welfare.parquet")
    assert w.loc[0, "scheme"] == "cm" and math.isfinite(float(w.loc[0, "upper"]))
    assert pd.read_parquet(run_dir / "rt_pcc.parquet")["area"].nunique() == 20


def test_make_case_case300_runs(tmp_path):
    """case300 (a series capacitor: negative reactance) with two feeders: a validated case, and a
    short tso-dso run on it (~9 s on a shared 2-core machine)."""
    out = tmp_path / "m300"
    assert cli.main(["make-case", "--transmission", "case300", "--feeders", "2", "--wind-farms", "2",
                     "--out", str(out)]) == 0
    case = load_case(str(out))
    assert case.transmission.n_buses == 300 and len(case.feeders) == 2
    assert min(ln.x for ln in case.transmission.lines) < 0
    short_tso_dso(out, tmp_path / "run")


def test_make_case_tes_round_trip(tmp_path):
    out = tmp_path / "t4"
    assert cli.main(["make-case", "--protocol", "tes", "--feeder", "tes_competition", "--feeders", "4",
                     "--out", str(out)]) == 0
    case = load_case(str(out))
    base = load_case("tes_feeder")
    assert len(case.feeders) == 4
    for f in case.feeders.values():  # every copy has the source feeder's lines
        assert [ln.id for ln in f.lines] == [ln.id for ln in base.feeders["LV1"].lines]
        assert np.allclose(f.lines[0].r, base.feeders["LV1"].lines[0].r)
    roles = feeder_roles(case)
    assert [len(r.der_managers) for r in roles] == [3] * 4 and len({r.load_aggregator for r in roles}) == 4
    assert [r.area for r in roles] == [1, 2, 3, 4]


@pytest.fixture(scope="module")
def two_feeders():
    case, _ = make_tes(load_case("tes_feeder"), 2, seed=1, name="two")
    return case


def test_cross_feeder_message_is_refused(two_feeders):
    """A DER manager of feeder LV1 may offer to LV1's load aggregator, never to LV2's."""
    boundary = Boundary(None)
    rt = LocalRuntime(boundary)
    boundary.use(TES_POLICY, dims(two_feeders))
    for h in make_hosts(two_feeders, TESConfig()):
        rt.add(h)
    r1, r2 = feeder_roles(two_feeders)
    unit = next(u.id for u in two_feeders.units_of(r1.der_managers[0]))
    prices = {unit: np.full(24, 0.1)}
    qty = {unit: np.full(24, 10.0)}
    ok = Offer(r1.der_managers[0], r1.load_aggregator, 0, product=Product.DAY_AHEAD, prices=prices, quantities=qty)
    boundary.route(ok, produced_by=r1.der_managers[0])  # within its feeder: allowed
    bad = Offer(r1.der_managers[0], r2.load_aggregator, 0, product=Product.DAY_AHEAD, prices=prices, quantities=qty)
    with pytest.raises(BoundaryViolation, match="area"):
        boundary.route(bad, produced_by=r1.der_managers[0])


def test_two_feeders_are_independent(two_feeders, tmp_path):
    """Each feeder's day on the two-feeder case equals the day of that feeder alone (the main grid is a
    price-taker outside option; feeders do not couple)."""
    from coordinator.tes.protocol import TESProtocol
    from coordinator.tes.setup import feeder_case

    rt = LocalRuntime(Boundary(None))
    both = TESProtocol(rt, two_feeders, TESConfig()).run_day_feeders(0, benchmarks=False)
    assert set(both) == {"LV1", "LV2"} and all(r.converged for r in both.values())
    alone = TESProtocol(LocalRuntime(Boundary(None)), feeder_case(two_feeders, "LV2"), TESConfig()).run_day(
        0, benchmarks=False)
    assert both["LV2"].solution.objective == pytest.approx(alone.solution.objective, rel=1e-9)
    assert len(both["LV2"].iterations) == len(alone.iterations)
    mg = both["LV1"].settlement.query("role == 'main_grid' and item == 'energy_kwh'")["value"].iloc[0]
    assert mg == pytest.approx(float(np.sum(both["LV1"].solution.purchases["MG_LV1"])))


def _tes_day_on_made_case(tmp_path: Path, feeders: int) -> tuple[Path, pd.DataFrame]:
    """``make-case --protocol tes`` with ``feeders`` feeders, then ``tes-day`` on it (no benchmarks): the run
    folder and its ``feeders.parquet``."""
    case_dir = tmp_path / f"t{feeders}"
    assert cli.main(["make-case", "--protocol", "tes", "--feeders", str(feeders), "--out", str(case_dir)]) == 0
    run_dir = tmp_path / "run"
    assert cli.main(["tes-day", "--case", str(case_dir), "--no-benchmarks", "--out", str(run_dir)]) == 0
    return run_dir, pd.read_parquet(run_dir / "feeders.parquet")


def test_tes_day_cli_on_two_feeders(tmp_path):
    """The CLI on a two-feeder case: per-feeder tables, the overview plot, and an audit log that verifies."""
    from coordinator.audit import main as audit

    run_dir, f = _tes_day_on_made_case(tmp_path, 2)
    assert sorted(f["feeder"]) == ["LV1", "LV2"] and f["converged"].all()
    png = run_dir / "feeders.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert audit(run_dir, quiet=True) == 0


@pytest.mark.slow
def test_tes_day_on_20_feeders(tmp_path):
    _, f = _tes_day_on_made_case(tmp_path, 20)
    assert len(f) == 20 and f["converged"].all()
