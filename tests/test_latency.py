"""What makes a small call fast (issue 11's batch-1 forward) without changing any result:
the caches (window geometry, index tables, the tables' choices) give what a fresh
computation gives, never a stale or mistyped entry, and stay bounded; the choice is
decided afresh after a backend switch, ``config.use`` or new thresholds; small
convolutions run on the calling thread; the one-BLAS-thread block restores the setting;
a module's backward after an eval-mode forward still works."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from convpool import _random, config, models
from convpool.backends import switch, tables
from convpool.backends.compiled import runtime
from convpool.backends.compiled import threads as _threads
from convpool.functional import _common
from convpool.functional.conv import ConvCtx, conv_forward
from convpool.functional.pool import reduce_window_forward
from convpool.geometry import make_geometry
from convpool.settings import TUNING

compiled = pytest.mark.skipif(not runtime.AVAILABLE, reason="needs the compiled backend")


# --- window geometry ------------------------------------------------------------------


def test_a_geometry_is_computed_once_per_plain_argument_tuple() -> None:
    args = ((14, 14), 2, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1))
    g = _common.make_geometry(*args)
    assert _common.make_geometry(*args) is g
    assert g == make_geometry(*args)
    assert _common.make_geometry(*args, pool=True) == make_geometry(*args, pool=True)


def test_equal_keys_of_other_types_are_checked_afresh() -> None:
    """True == 1 and hash(True) == hash(1): a cached stride=1 must not let stride=True
    through; NumPy ints and float ceil_mode are checked as the uncached function does."""
    _common.make_geometry((8,), 1, (3,), 1, 0, 1)
    with pytest.raises(TypeError, match="stride must be an int"):
        _common.make_geometry((8,), 1, (3,), True, 0, 1)
    with pytest.raises(TypeError, match="ceil_mode must be a bool"):
        _common.make_geometry((8,), 1, (3,), 1, 0, 1, 1, pool=True)  # type: ignore[arg-type]
    assert _common.make_geometry((8,), 1, (3,), np.int64(2), 0, 1) == make_geometry((8,), 1, (3,), 2, 0, 1)


def test_a_list_argument_changed_between_calls_gives_the_new_geometry() -> None:
    padding = [1]
    assert _common.make_geometry((8,), 1, (3,), 1, padding, 1).out == (8,)
    padding[0] = 0
    assert _common.make_geometry((8,), 1, (3,), 1, padding, 1).out == (6,)


def test_errors_are_not_cached_and_the_geometry_cache_is_bounded() -> None:
    for _ in range(2):
        with pytest.raises(ValueError, match="does not fit"):
            _common.make_geometry((2,), 1, (5,), 1, 0, 1)
    for n in range(_common._GEOMETRIES_MAX + 10):
        _common.make_geometry((n + 5,), 1, (3,), 1, 0, 1)
    assert len(_common._GEOMETRIES) <= _common._GEOMETRIES_MAX


# --- index tables -----------------------------------------------------------------------


def test_index_tables_are_fresh_writable_copies_of_one_table() -> None:
    a = runtime.index_table(9, 3, 2, 1, 1, 1, 5, "reflect")
    b = runtime.index_table(9, 3, 2, 1, 1, 1, 5, "reflect")
    assert a is not b and a.flags.writeable and np.array_equal(a, b)
    np.testing.assert_array_equal(a, runtime._build_index_table(9, 3, 2, 1, 1, 1, 5, "reflect"))
    a[:] = 99  # a caller's change never reaches the next caller
    np.testing.assert_array_equal(runtime.index_table(9, 3, 2, 1, 1, 1, 5, "reflect"), b)


def test_the_index_table_cache_is_bounded() -> None:
    for out in range(runtime._TABLES_MAX + 10):
        runtime.index_table(10**4, 1, 1, 1, 0, 0, out + 1, None)
    assert len(runtime._TABLES) <= runtime._TABLES_MAX
    big = runtime._TABLE_CACHED + 1
    runtime.index_table(big, 1, 1, 1, 0, 0, big, None)
    assert (big, 1, 1, 1, 0, 0, big, None) not in runtime._TABLES


# --- the tables' choices -----------------------------------------------------------------


def _conv_name() -> str:
    x = np.ones((1, 4, 9, 9), dtype=np.float32)
    w = np.ones((8, 4, 3, 3), dtype=np.float32)
    ctx = conv_forward(x, w, None, 1, 1)[1]
    assert isinstance(ctx, ConvCtx)
    return ctx.name


def _pool_name() -> str:
    x = np.ones((1, 4, 8, 8), dtype=np.float32)
    return reduce_window_forward(x, "max", 2, 2)[1].name


@compiled
def test_the_choice_follows_a_backend_switch() -> None:
    conv, pool = _conv_name(), _pool_name()
    assert conv != "reference" and pool != "reference"
    with switch.backend("numpy"):
        assert (_conv_name(), _pool_name()) == ("reference", "reference")
    assert (_conv_name(), _pool_name()) == (conv, pool)
    switch.set_backend("numpy")
    try:
        assert _conv_name() == "reference"
    finally:
        switch.set_backend("compiled")
    assert _conv_name() == conv


@compiled
def test_the_choice_follows_config_use() -> None:
    usual = _conv_name()
    with config.use("conv", "im2col"):
        assert _conv_name() == "im2col"
    assert _conv_name() == usual


def test_the_choice_is_keyed_on_the_thresholds_and_is_bounded() -> None:
    x = np.ones((1, 2, 6), dtype=np.float32)
    g = _common.make_geometry((6,), 1, (3,), 1, 0, 1)
    p = tables.ConvProblem(x, np.ones((2, 2, 3), dtype=np.float32), g, 1, "constant")
    key = tables.CONV._key(p)
    with config.tuning(conv_trim_slack=1):
        assert tables.CONV._key(p) != key
    assert tables.CONV._key(p) == key
    for n in range(tables.CHOICES_MAX + 10):
        xn = np.ones((1, 2, n + 3), dtype=np.float32)
        gn = _common.make_geometry((n + 3,), 1, (3,), 1, 0, 1)
        tables.CONV.choose(tables.ConvProblem(xn, np.ones((2, 2, 3), dtype=np.float32), gn, 1, "constant"))
    assert len(tables.CONV._chosen) <= tables.CHOICES_MAX


def test_no_cached_choice_while_autotuning() -> None:
    x = np.ones((1, 2, 6), dtype=np.float32)
    p = tables.ConvProblem(
        x, np.ones((2, 2, 3), dtype=np.float32), _common.make_geometry((6,), 1, (3,), 1, 0, 1), 1, "constant"
    )
    config.set_autotune(True)
    try:
        assert tables.CONV._key(p) is None
    finally:
        config.set_autotune(None)


# --- threads and BLAS ---------------------------------------------------------------------


def _record(j0: int, j1: int, calls: list[tuple[int, int, bool]]) -> None:
    calls.append((j0, j1, threading.current_thread() is threading.main_thread()))


def test_on_calling_thread_runs_each_call_whole_on_this_thread() -> None:
    with config.tuning(threads=3, thread_min_work=0):
        calls: list[tuple[int, int, bool]] = []
        with _threads.on_calling_thread(), _threads.on_calling_thread():  # nests
            _threads.parallel_for(_record, 12, calls, work=10**9)
        assert calls == [(0, 12, True)]
        calls.clear()
        _threads.parallel_for(_record, 12, calls, work=10**9)  # the block is over: split again
        assert len(calls) > 1 and sorted(calls)[0][:2] == (0, 1)


@compiled
def test_small_convolutions_choose_the_calling_thread() -> None:
    from convpool.backends.compiled import conv_direct

    small = conv_direct.SERIAL_MACS * TUNING.thread_min_work - 1
    assert isinstance(conv_direct.on_one_thread(small), _threads.on_calling_thread)
    assert not isinstance(conv_direct.on_one_thread(small + 1), _threads.on_calling_thread)
    with config.tuning(thread_min_work=0):  # the tests' way to split every call still splits
        assert not isinstance(conv_direct.on_one_thread(1), _threads.on_calling_thread)


def test_one_blas_thread_sets_one_and_restores_the_setting() -> None:
    libs = runtime._blas_controllers()
    if not libs:
        pytest.skip("needs threadpoolctl and a BLAS it controls")
    before = [lib.get_num_threads() for lib in libs]
    libs[0].set_num_threads(2)
    try:
        with runtime.one_blas_thread():
            assert [lib.get_num_threads() for lib in libs] == [1] * len(libs)
        assert libs[0].get_num_threads() == 2
    finally:
        for lib, n in zip(libs, before, strict=True):
            lib.set_num_threads(n)


# --- a model in eval mode -----------------------------------------------------------------


def test_backward_after_an_eval_forward_matches_training_mode() -> None:
    _random.manual_seed(0)
    model = models.lenet(1, 10, 28)
    x = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32)
    dy = np.ones((1, 10), dtype=np.float32)
    y_train = model(x)
    gx_train = model.backward(dy)
    model.zero_grad()
    model.eval()
    for _ in range(3):  # repeated calls: the cached geometry, tables and choices
        y_eval = model(x)
    np.testing.assert_array_equal(y_eval, y_train)
    np.testing.assert_array_equal(model.backward(dy), gx_train)
