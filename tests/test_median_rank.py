"""The median pool's rank kernel (backends/compiled/median_rank.py) against the insertion
sort it replaced (pool_kernels.median_forward): the same values and flat indices, on
ties, infinities, signed zeros, zero / identity padding (table entries -1 / -2), strides,
dilation, 1-3 dims; and an input with NaN, which median_forward hands to the sort."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convpool.backends.compiled import kernels

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="needs numba")

from convpool.backends.compiled.median_rank import median_forward as rank_median  # noqa: E402
from convpool.backends.compiled.pool_kernels import median_forward as sort_median  # noqa: E402


def _table(rng: np.random.Generator, mode: str | None, long: bool) -> tuple[int, np.ndarray] | None:
    """An input length and its index table: stride and dilation 1-3, padding up to half the
    kernel on each side (uneven), and at times one output more (as ``ceil_mode`` gives: its
    window starts in the input or the left padding and may run past the right one), so that
    zero padding (-1) and skipped entries (-2) meet in one table.  None: no valid table."""
    n = int(rng.integers(64, 140)) if long else int(rng.integers(1, 9))  # long: blocks of 64 and a partial one
    k, s, d = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
    lo, hi = int(rng.integers(0, k // 2 + 1)), int(rng.integers(0, k // 2 + 1))
    if mode == "reflect":
        lo, hi = min(lo, n - 1), min(hi, n - 1)
    span = d * (k - 1) + 1
    if n + lo + hi < span:
        return None
    out = (n + lo + hi - span) // s + 1
    if rng.random() < 0.5 and out * s < n + lo:
        out += 1
    t = kernels.index_table(n, k, s, d, lo, hi, out, mode)
    if (t == -2).all(axis=1).any():  # a window of no elements: the geometry never makes one
        return None
    return n, t


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    nd=st.integers(1, 3),
    mode=st.sampled_from([None, "zeros", "replicate", "reflect", "circular"]),
    values=st.sampled_from(["normal", "ties", "specials"]),
    nan=st.sampled_from([False, False, False, True]),  # with NaN: the sort runs (module docstring)
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_rank_kernel_equals_insertion_sort(
    seed: int, nd: int, mode: str | None, values: str, nan: bool, dtype: type
) -> None:
    rng = np.random.default_rng(seed)
    tables = [np.zeros((1, 1), dtype=np.int64)] * (3 - nd)
    shape = [1] * (3 - nd)
    while len(tables) < 3:
        drawn = _table(rng, mode, long=len(tables) == 2 and rng.random() < 0.4)
        if drawn is not None:
            shape.append(drawn[0])
            tables.append(drawn[1])
    p = int(rng.integers(1, 4))
    if values == "ties":
        x = rng.integers(-3, 4, (p, *shape)).astype(dtype)
    elif values == "specials":  # infinities (a skipped entry must not tie with +inf), signed zeros
        x = rng.choice(np.array([-np.inf, -1.0, -0.0, 0.0, 1.0, np.inf], dtype=dtype), (p, *shape))
    else:
        x = rng.standard_normal((p, *shape)).astype(dtype)
    if nan:
        x.reshape(-1)[rng.integers(0, x.size, 2)] = np.nan
    if rng.random() < 0.3:  # a strided view of the same values
        wide = np.zeros((p, *shape[:2], 2 * shape[2]), dtype)
        wide[..., ::2] = x
        x = wide[..., ::2]
    if rng.random() < 0.2:  # int32 tables: the index parts must still come out int64
        tables = [t.astype(np.int32) for t in tables]
    out_shape = (p,) + tuple(t.shape[0] for t in tables)
    y1, y2 = np.empty(out_shape, dtype), np.empty(out_shape, dtype)
    i1, i2 = np.empty(out_shape, np.int64), np.empty(out_shape, np.int64)
    sort_median(x, *tables, y1, i1)
    rank_median(x, *tables, y2, i2)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(np.signbit(y1), np.signbit(y2))
    np.testing.assert_array_equal(i1, i2)


def test_first_nan_and_lower_median() -> None:
    x = np.array([[[[5.0, 1.0, np.nan, 3.0, np.nan, 2.0]]]], dtype=np.float32)
    t = kernels.index_table(6, 3, 1, 1, 0, 0, 4, None)
    lead = np.zeros((1, 1), dtype=np.int64)
    y, i = np.empty((1, 1, 1, 4), np.float32), np.empty((1, 1, 1, 4), np.int64)
    rank_median(x, lead, lead, t, y, i)
    assert y[0, 0, 0, 0] != y[0, 0, 0, 0] and i[0, 0, 0, 0] == 2  # window 5 1 nan: the NaN
    assert i[0, 0, 0, 1] == 2 and i[0, 0, 0, 2] == 2  # first NaN in scan order
    assert i[0, 0, 0, 3] == 4
    x2 = np.array([[[[2.0, 2.0, 1.0, 2.0]]]], dtype=np.float32)
    t2 = kernels.index_table(4, 4, 1, 1, 0, 0, 1, None)
    y2, i2 = np.empty((1, 1, 1, 1), np.float32), np.empty((1, 1, 1, 1), np.int64)
    rank_median(x2, lead, lead, t2, y2, i2)
    assert y2[0, 0, 0, 0] == 2.0 and i2[0, 0, 0, 0] == 0  # lower median of 1 2 2 2: the first 2


def test_nan_free_input_runs_the_rank_kernel_and_nan_the_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    from convpool.backends.compiled import median_rank

    sorted_calls: list[int] = []

    def counting_sort(*args: np.ndarray) -> None:
        sorted_calls.append(1)
        sort_median(*args)

    monkeypatch.setattr(median_rank, "sort_forward", counting_sort)
    x = np.random.default_rng(3).standard_normal((2, 1, 5, 7)).astype(np.float32)
    x[0, 0, 1, 1] = np.inf
    x[1, 0, 2, 2] = -np.inf  # both infinities, no NaN: still the ranks
    lead = np.zeros((1, 1), dtype=np.int64)
    t1, t2 = kernels.index_table(5, 3, 1, 1, 1, 1, 5, "zeros"), kernels.index_table(7, 3, 1, 1, 1, 1, 7, "zeros")
    y, i = np.empty((2, 1, 5, 7), np.float32), np.empty((2, 1, 5, 7), np.int64)
    y_ref, i_ref = np.empty_like(y), np.empty_like(i)
    sort_median(x, lead, t1, t2, y_ref, i_ref)
    median_rank.median_forward(x, lead, t1, t2, y, i)
    assert sorted_calls == []
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(i, i_ref)
    x[1, 0, 4, 6] = np.nan
    median_rank.median_forward(x, lead, t1, t2, y, i)
    assert sorted_calls == [1]
    assert np.isnan(y[1, 0, 4, 6]) and i[1, 0, 4, 6] == 4 * 7 + 6


def test_median_forward_refuses_strided_outputs() -> None:
    x = np.zeros((1, 1, 1, 4), np.float32)
    lead = np.zeros((1, 1), dtype=np.int64)
    t = kernels.index_table(4, 2, 1, 1, 0, 0, 3, None)
    y = np.empty((1, 1, 1, 6), np.float32)[..., ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        rank_median(x, lead, lead, t, y, np.empty((1, 1, 1, 3), np.int64))
