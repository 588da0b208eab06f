"""The per-call savings of the batch-1 path change no result and no error: the plain-key
check remembers nested tuples by identity (and still refuses look-alike keys), a
geometry's padded size is worked out once and survives copies and pickling, the
one-BLAS-thread block sets NumPy's library (others are left alone) and restores it."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pytest

from convpool import geometry
from convpool.backends.compiled import runtime
from convpool.functional import _common


def test_a_nested_tuple_is_remembered_and_look_alikes_are_not() -> None:
    pads = ((1, 1), (2, 0))
    assert _common._plain(pads) and _common._PLAIN.get(id(pads)) is pads
    assert _common._plain(pads)  # from the memo
    assert not _common._plain(((1, True), (2, 0)))
    assert not _common._plain(((1, np.int64(1)), (2, 0)))
    assert not _common._plain(((1, 1.0),))
    assert not _common._plain(([1, 1],))
    assert _common._plain((1, "same", None)) and id((1, "same", None)) not in _common._PLAIN  # flat: not kept


def test_the_plain_memo_is_bounded() -> None:
    for i in range(_common._PLAIN_MAX + 10):
        _common._plain(((i, i),))
    assert len(_common._PLAIN) <= _common._PLAIN_MAX


def test_a_look_alike_padding_is_checked_after_the_plain_one_is_cached() -> None:
    g = _common.make_geometry((8, 8), 2, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1))
    assert g.out == (8, 8)
    with pytest.raises(TypeError, match="padding"):
        _common.make_geometry((8, 8), 2, (3, 3), (1, 1), ((1, 1.5), (1, 1)), (1, 1))
    with pytest.raises(TypeError, match="padding"):
        _common.make_geometry((8, 8), 2, (3, 3), (1, 1), ((1, True), (1, 1)), (1, 1))


def test_padded_is_computed_once_and_survives_copies() -> None:
    g = geometry.make_geometry((7, 5), 2, (3, 2), (2, 1), ((1, 1), (0, 1)), (1, 1), ceil_mode=True, pool=True)
    expected = tuple(n + lo + hi + e for n, (lo, hi), e in zip(g.in_size, g.pads, g.extra, strict=True))
    assert g.padded == expected and g.padded is g.padded
    for other in (copy.copy(g), copy.deepcopy(g), pickle.loads(pickle.dumps(g))):
        assert other == g and hash(other) == hash(g) and other.padded == expected
    fresh = geometry.make_geometry((7, 5), 2, (3, 2), (2, 1), ((1, 1), (0, 1)), (1, 1), ceil_mode=True, pool=True)
    assert fresh == g and hash(fresh) == hash(g)  # the cached value is no field


@pytest.mark.skipif(not runtime.AVAILABLE, reason="needs the compiled backend")
def test_one_blas_thread_sets_numpys_blas_and_restores_it() -> None:
    libs = runtime._blas_controllers()
    if not libs:
        pytest.skip("no BLAS controllable through threadpoolctl")
    before = [lib.get_num_threads() for lib in libs]
    with runtime.one_blas_thread():
        assert all(lib.get_num_threads() == 1 for lib in libs)
        a = np.ones((64, 64), dtype=np.float32)
        assert (a @ a)[0, 0] == 64
    assert [lib.get_num_threads() for lib in libs] == before
    every = runtime.blas_limiter().select(user_api="blas").lib_controllers
    numpys = [lib for lib in every if "numpy" in str(lib.filepath)]
    assert libs == (numpys or list(every))


def test_a_geometry_hash_is_the_fields_hash_worked_out_once() -> None:
    g = geometry.make_geometry((9, 7), 2, (3, 3), (2, 1), ((1, 1), (0, 0)), (1, 2))
    fields = (g.in_size, g.kernel, g.stride, g.dilation, g.pads, g.out, g.extra)
    assert hash(g) == hash(fields) and g.__dict__["_hash"] == hash(fields)
    other = geometry.make_geometry((9, 7), 2, (3, 3), (2, 1), ((1, 1), (0, 0)), (1, 1))
    assert other != g and {g: 1}.get(other) is None
    assert "_hash" not in pickle.loads(pickle.dumps(g)).__dict__


def test_the_trim_plan_is_remembered_per_geometry_and_thresholds() -> None:
    from convpool import config
    from convpool.functional import _trim
    from convpool.functional import conv as conv_mod

    g = _common.make_geometry((2,), 1, (3,), (1,), ((5000, 5000),), (1,))
    assert conv_mod._trim_plan(g) == _trim.plan(g) and conv_mod._trim_plan(g) is conv_mod._trim_plan(g)
    assert conv_mod._trim_plan(g) is not None
    with config.tuning(conv_trim_slack=10**9, conv_trim_ratio=10**6):  # trimming never pays: the plan follows
        assert conv_mod._trim_plan(g) is None and _trim.plan(g) is None
    assert conv_mod._trim_plan(g) == _trim.plan(g) is not None
    x = np.arange(2, dtype=np.float32)[None, None]
    w = np.ones((1, 1, 3), dtype=np.float32)
    y = conv_mod.conv1d(x, w, padding=5000)
    with config.tuning(conv_trim_slack=10**9, conv_trim_ratio=10**6):
        np.testing.assert_array_equal(conv_mod.conv1d(x, w, padding=5000), y)
    for i in range(conv_mod._TRIMS_MAX + 5):
        conv_mod._trim_plan(_common.make_geometry((i + 1,), 1, (1,), (1,), ((0, 0),), (1,)))
    assert len(conv_mod._TRIMS) <= conv_mod._TRIMS_MAX


def test_saved_state_goes_to_the_thread_slot_unless_a_subclass_shadows_it() -> None:
    import threading

    from convpool import nn

    relu = nn.ReLU()
    marker = np.zeros(1)
    relu._saved = marker
    seen: list[object] = []
    t = threading.Thread(target=lambda: seen.append(relu._saved))
    t.start()
    t.join()
    assert relu._saved is marker and seen == [None] and "_saved" not in relu.__dict__

    class Plain(nn.Module):
        _saved: Any = None  # a plain class attribute: an instance attribute then, not per thread

    p = Plain()
    p._saved = 5
    assert p.__dict__["_saved"] == 5 and p._saved == 5
