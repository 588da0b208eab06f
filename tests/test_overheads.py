"""The per-call savings of the batch-1 path change no result and no error: the plain-key
check remembers nested tuples by identity (and still refuses look-alike keys), a
geometry's padded size is worked out once and survives copies and pickling, the
one-BLAS-thread block sets NumPy's library (others are left alone) and restores it."""

from __future__ import annotations

import copy
import pickle

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
