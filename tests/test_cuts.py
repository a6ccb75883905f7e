"""The one cut pool (agents/cuts.py): de-duplication, keyed and vector pools, dense arrays, pruning."""
from __future__ import annotations

import numpy as np
import pytest

from agents.cuts import Cut, CutPool, capacity_for


def test_keyed_pool_drops_repeats_and_builds_matrices():
    pool = CutPool()  # keyed by the receiver's decision ids; columns grow as cuts name new ones
    assert pool.keyed
    assert pool.add(3, 1.0, {"G1": -0.5, "RL1": 0.25})
    assert not pool.add(3, 1.0, {"RL1": 0.25, "G1": -0.5})  # the same cut again
    assert pool.add(4, 1.0, {"G1": -0.5, "RL1": 0.25})  # same coefficients, other period
    assert len(pool) == 2 and pool.keys == ["G1", "RL1"] and pool.indices() == [3, 4]
    g, h, idx = pool.matrix()
    np.testing.assert_array_equal(g, [[-0.5, 0.25], [-0.5, 0.25]])
    np.testing.assert_array_equal(h, [1.0, 1.0])
    np.testing.assert_array_equal(idx, [3, 4])
    # a new key widens the pool; a missing key counts as a zero coefficient
    assert pool.add(3, 1.0, {"G1": -0.5, "RL1": 0.25, "MG": 0.1})
    assert not pool.add(3, 1.0, {"G1": -0.5, "RL1": 0.25, "MG": 0.1, "PV": 0.0})
    assert pool.keys == ["G1", "RL1", "MG", "PV"]
    c, G = pool.rows(3)
    np.testing.assert_array_equal(c, [1.0, 1.0])
    np.testing.assert_array_equal(G, [[-0.5, 0.25, 0.0, 0.0], [-0.5, 0.25, 0.1, 0.0]])
    # the cuts keep their own coefficients (keyed by id), in arrival order
    assert [c.index for c in pool] == [3, 4, 3] and pool.by_index(3)[1].coefficients["MG"] == 0.1
    assert Cut(0, -1.0, {"a": 2.0}).value({"a": 1.0}) == 1.0 and Cut(0, -1.0, {"a": 2.0}).period == 0


def test_repeats_within_tolerance():
    pool = CutPool(rtol=1e-9, atol=1e-9)
    assert pool.add(0, 100.0, {"x": 1.0})
    assert not pool.add(0, 100.0 + 1e-8, {"x": 1.0 + 1e-12})  # |dc| <= 1e-9 (1 + |c|)
    assert pool.add(0, 100.0 + 1e-6, {"x": 1.0})
    assert pool.add(0, 100.0, {"x": 1.0 + 1e-6})
    assert len(pool) == 3 and pool.added == 3
    assert pool.extend([Cut(1, 0.0, {"x": 1.0}), Cut(1, 0.0, {"x": 1.0})]) == 1


def test_vector_pool_shapes_and_checks():
    pool = CutPool(n_index=2, n_vars=3)
    assert not pool.keyed and pool.n_vars == 3
    assert pool.add(1, -2.0, np.array([1.0, 0.0, -1.0]))
    assert not pool.add(1, -2.0, [1.0, 0.0, -1.0])
    with pytest.raises(ValueError, match="3 decisions"):
        pool.add(0, 0.0, [1.0, 2.0])
    with pytest.raises(ValueError, match="outside 0..1"):
        pool.add(2, 0.0, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="not both"):
        CutPool(n_vars=2, keys=["a", "b"])
    assert Cut(0, 1.0, np.array([2.0, 3.0])).value(np.array([1.0, 1.0])) == 6.0
    assert pool.count() == 1 and pool.count(0) == 0


def _three_cuts() -> CutPool:
    pool = CutPool(n_index=2, n_vars=2)
    pool.add(0, 1.0, [1.0, 0.0])
    pool.add(1, 2.0, [0.0, 1.0])
    pool.add(0, 3.0, [1.0, 1.0])
    return pool


def test_padded_repeats_the_first_cut():
    C, G = _three_cuts().padded(3)
    assert C.shape == (3, 2) and G.shape == (3, 2, 2)
    np.testing.assert_array_equal(C[:, 0], [1.0, 3.0, 1.0])  # slot 2 of index 0 repeats its first cut
    np.testing.assert_array_equal(C[:, 1], [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(G[1, 0], [1.0, 1.0])
    with pytest.raises(ValueError, match="more than the 1 slots"):
        _three_cuts().padded(1)
    with pytest.raises(RuntimeError, match="no cut yet"):
        CutPool(n_index=2, n_vars=1).padded(2)


def test_slots_leave_unused_rows_zero():
    pool = _three_cuts()
    C, G, slot = pool.slots(4)  # 4 rows per index: index s owns rows 4s..4s+3
    assert C.shape == (8,) and G.shape == (8, 2)
    np.testing.assert_array_equal(slot, [0, 4, 1])  # arrival order, as in matrix()
    Gm, hm, idx = pool.matrix()
    np.testing.assert_array_equal(G[slot], Gm)
    np.testing.assert_array_equal(C[slot], hm)
    np.testing.assert_array_equal(slot // 4, idx)
    unused = np.setdiff1d(np.arange(8), slot)
    assert not C[unused].any() and not G[unused].any()  # 0 + 0 . y <= 0: always met
    C0, G0, s0 = CutPool(n_index=3, n_vars=2).slots(2)  # no cut yet: all rows unused
    assert C0.shape == (6,) and not G0.any() and s0.size == 0
    with pytest.raises(ValueError, match="more than the 1 slots"):
        pool.slots(1)


def test_capacity_for_doubles():
    assert capacity_for(0) == 8 and capacity_for(8) == 8 and capacity_for(9) == 16
    assert capacity_for(5, start=4) == 8 and capacity_for(1, start=1) == 1 and capacity_for(3, start=0) == 4


def test_pruning_keeps_active_cuts():
    pool = CutPool(n_index=1, n_vars=1, keep=1, max_age=1)
    for c in (1.0, 2.0, 3.0):
        pool.add(0, c, [1.0])
    assert pool.prune() == 0 and len(pool) == 3  # nothing is stale before any solve
    for _ in range(2):  # only the third cut binds, twice
        pool.mark(np.array([[0.0], [0.0], [1.0]]))
    assert pool.prune() == 2 and pool.pruned == 2
    assert [c.constant for c in pool] == [3.0]
    np.testing.assert_array_equal(pool.matrix()[1], [3.0])
    assert CutPool(n_index=1, n_vars=1).prune() == 0  # no keep: never prunes


def test_a_vector_pool_pickles_as_arrays_and_comes_back_equal():
    import pickle

    pool = CutPool(3, 2, keep=2, max_age=1)
    for i, (s, c, g) in enumerate([(0, 1.0, [1.0, 2.0]), (0, 2.0, [0.5, 0.0]), (2, -1.0, [0.0, 1.0]),
                                   (0, 3.0, [2.0, 2.0])]):
        pool.add(s, c, np.array(g), iteration=i)
    pool.mark(np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    back = pickle.loads(pickle.dumps(pool))
    assert [(c.index, c.constant, list(c.coefficients), c.iteration) for c in back] == \
        [(c.index, c.constant, list(c.coefficients), c.iteration) for c in pool]
    for a, b in zip(pool.matrix(), back.matrix()):
        np.testing.assert_array_equal(a, b)
    assert back._active == pool._active and back.clock == pool.clock
    assert back.add(0, 1.0, np.array([1.0, 2.0])) is False  # de-duplication still works
    assert back.prune() == pool.prune()
    for a, b in zip(pool.matrix(), back.matrix()):
        np.testing.assert_array_equal(a, b)
