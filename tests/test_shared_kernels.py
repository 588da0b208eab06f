"""Kernels that do two jobs (fewer kernels to compile on a first call): the gradient of
a stride-1 window sum is the forward window-sum kernel run on the output gradient,
with the padding mirrored; max/min over index tables find the first NaN with the
winner's place.  Checked against the NumPy backend and the adjoint identity
<sum_windows(x), dy> = <x, gradient(dy)>."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convpool
import convpool.functional as F
from convpool.backends.compiled import kernels as _kernels
from convpool.backends.compiled.pool_layout import adjoint_sum

pytestmark = pytest.mark.skipif(not _kernels.enabled(), reason="numba not installed or disabled")


@st.composite
def stride1_sum(draw):  # type: ignore[no-untyped-def]
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    size = tuple(draw(st.integers(d * (k - 1) + 1, d * (k - 1) + 6)) for k, d in zip(kernel, dil, strict=True))
    # 'same' pads an even kernel unevenly: (0, 1) - the case where mirroring lo and hi matters
    padding = draw(st.sampled_from(["same", 0, "half"]))
    if padding == "half":
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dil, strict=True))
    return nd, size, kernel, dil, padding


@settings(max_examples=60)
@given(stride1_sum(), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_stride1_window_sum_gradient_is_a_window_sum_of_dy(case, dtype, seed) -> None:  # type: ignore[no-untyped-def]
    nd, size, kernel, dil, padding = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, *size)).astype(dtype)
    y, ctx = F.reduce_window_forward(x, "sum", nd, kernel, 1, padding, dil)
    assert adjoint_sum(ctx.work, ctx.mode) is not None  # the shared path runs
    dy = rng.standard_normal(y.shape).astype(dtype)
    gx = F.reduce_window_backward(dy, ctx)
    with convpool.backend("numpy"):
        _, ref_ctx = F.reduce_window_forward(x, "sum", nd, kernel, 1, padding, dil)
        ref = F.reduce_window_backward(dy, ref_ctx)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(gx, ref, rtol=tol, atol=tol)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    y64, ctx64 = F.reduce_window_forward(x64, "sum", nd, kernel, 1, padding, dil)
    lhs = float((y64 * dy64).sum())
    rhs = float((x64 * F.reduce_window_backward(dy64, ctx64)).sum())
    assert abs(lhs - rhs) <= 1e-9 * (1 + abs(lhs))


def test_uneven_padding_is_mirrored_not_swapped() -> None:
    """2x2 'same' windows pad (0, 1): the gradient's windows over dy pad (1, 0)."""
    x = np.arange(12.0).reshape(1, 1, 3, 4)
    y, ctx = F.reduce_window_forward(x, "sum", 2, 2, 1, "same")
    assert ctx.geom.pads == ((0, 1), (0, 1))
    gx = F.reduce_window_backward(np.ones_like(y), ctx)
    # element (i, j) lies in the windows starting at (i-1..i, j-1..j) that exist: 4 inside, fewer at the top-left
    np.testing.assert_array_equal(gx[0, 0], [[1, 2, 2, 2], [2, 4, 4, 4], [2, 4, 4, 4]])


def test_border_modes_and_strides_keep_their_own_gradient_kernel() -> None:
    x = np.random.default_rng(0).standard_normal((1, 2, 7, 7))
    for kwargs in ({"stride": 2, "padding": 1}, {"stride": 1, "padding": 1, "padding_mode": "reflect"}):
        y, ctx = F.reduce_window_forward(x, "sum", 2, 3, **kwargs)
        assert adjoint_sum(ctx.work, ctx.mode) is None
        gx = F.reduce_window_backward(np.ones_like(y), ctx)
        with convpool.backend("numpy"):
            _, rc = F.reduce_window_forward(x, "sum", 2, 3, **kwargs)
            np.testing.assert_allclose(gx, F.reduce_window_backward(np.ones_like(y), rc), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("red", ["max", "min"])
def test_the_first_nan_of_a_window_wins_value_and_place(red: str) -> None:
    """Index-table windows (3x3, stride 2, padding 1): a NaN anywhere in a window is its
    result and takes its gradient, the first NaN in scan order when there are two."""
    x = np.random.default_rng(1).standard_normal((1, 1, 7, 7))
    x[0, 0, 2, 3] = np.nan
    x[0, 0, 3, 2] = np.nan  # later in scan order, in the same window (rows 1-3, cols 1-3)
    y, ctx = F.reduce_window_forward(x, red, 2, 3, 2, 1)
    gx = F.reduce_window_backward(np.ones_like(y), ctx)
    with convpool.backend("numpy"):
        yr, rc = F.reduce_window_forward(x, red, 2, 3, 2, 1)
        gr = F.reduce_window_backward(np.ones_like(y), rc)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(yr))
    np.testing.assert_array_equal(y[~np.isnan(y)], yr[~np.isnan(yr)])
    np.testing.assert_array_equal(gx, gr)
    assert np.isnan(y[0, 0, 1, 1]) and gx[0, 0, 2, 3] == 2  # the first NaN of windows (1, 1) and (1, 2)
