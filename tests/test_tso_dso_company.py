"""tso-dso: a scheme's figures do not depend on which other schemes run in the same command; sharing cuts is an
explicit option (and then they may)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coordinator.boundary import Boundary
from coordinator.runtime import LocalRuntime
from coordinator.tso_dso.protocol import TSODSOProtocol
from coordinator.tso_dso.setup import TSODSOConfig
from scenarios.registry import load_case
from scenarios.tso_dso.tables import level_tables
from scenarios.tso_dso.wind import WindModel


@pytest.fixture(scope="module")
def case():
    return load_case("tso24_dso5")


@pytest.fixture(scope="module")
def ws(case):
    return WindModel.from_case(case).scenarios(0.6, 3, 5, seed=0)


def _level(case, ws, schemes, **cfg):
    rt = LocalRuntime(Boundary())
    try:
        lvl = TSODSOProtocol(rt, case, ws, TSODSOConfig(schemes=tuple(schemes), **cfg)).run_level()
    finally:
        rt.shutdown()
    return lvl, level_tables(lvl, ws)


@pytest.fixture(scope="module")
def together(case, ws):
    return _level(case, ws, ("pcc", "cm", "fc"))


@pytest.mark.parametrize("scheme", ["fc", "cm"])
def test_a_scheme_alone_gives_the_figures_it_gives_in_company(case, ws, together, scheme):
    alone, tabs = _level(case, ws, (scheme,))
    a, b = alone.schemes[scheme], together[0].schemes[scheme]
    assert a.n_iterations == b.n_iterations
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.iterations["upper"], b.iterations["upper"])
    for sa, sb in ((a.in_sample, b.in_sample), (a.out_of_sample, b.out_of_sample)):
        np.testing.assert_array_equal(sa.rt_cost, sb.rt_cost)
    for name in ("rt_resources", "rt_feeder_lines", "rt_transmission"):
        x = tabs[name].reset_index(drop=True)
        y = together[1][name].query("scheme == @scheme").reset_index(drop=True)
        pd.testing.assert_frame_equal(x, y)


def test_shared_cuts_are_an_option(case, ws, together):
    """--share-cuts: the schemes pool the DSOs' cuts (fewer iterations for the later schemes); the optimum found is
    the same within the tolerance."""
    shared, _ = _level(case, ws, ("pcc", "cm", "fc"), share_cuts=True, oos=False)
    for s in ("pcc", "cm", "fc"):
        a, b = shared.schemes[s], together[0].schemes[s]
        assert abs(a.upper - b.upper) <= 2 * 5e-5 * b.scale, s
    assert shared.schemes["pcc"].n_iterations == together[0].schemes["pcc"].n_iterations  # the first scheme: alone
    assert sum(shared.schemes[s].n_iterations for s in ("cm", "fc")) <= \
        sum(together[0].schemes[s].n_iterations for s in ("cm", "fc"))
