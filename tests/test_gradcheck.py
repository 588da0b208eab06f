"""Numerical gradients (central differences, float64, tie-free inputs) and the
loop-based reference, for what PyTorch lacks: median/min pools and border
padding modes for pools."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import convpool.functional as F
from convpool import reference
from oracle import assert_close, numerical_grad, tie_free

MODES = [None, "zeros", "reflect", "replicate", "circular"]


@st.composite
def pool_case(draw):  # type: ignore[no-untyped-def]
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pads = tuple(draw(st.integers(0, (d * (k - 1) + 1) // 2)) for k, d in zip(kernel, dilation))
    # border modes need pad < size (reflect); keep inputs at least pad + 1 and the window inside
    size = tuple(
        draw(st.integers(max(d * (k - 1) + 1, p + 1), d * (k - 1) + 4 if nd < 3 else d * (k - 1) + 2))
        for k, d, p in zip(kernel, dilation, pads)
    )
    mode = draw(st.sampled_from(MODES))
    return nd, (1, draw(st.integers(1, 2)), *size), kernel, stride, pads, dilation, draw(st.booleans()), mode


@given(pool_case(), st.sampled_from(["max", "min", "median"]), st.integers(0, 2**16))
def test_select_pools_match_reference_and_numerical_gradient(case, reduction, seed):  # type: ignore[no-untyped-def]
    nd, shape, kernel, stride, pads, dilation, ceil, mode = case
    rng = np.random.default_rng(seed)
    x = tie_free(rng, shape)
    y, ctx = F.reduce_window_forward(x, reduction, nd, kernel, stride, pads, dilation, ceil, mode)
    pairs = tuple((p, p) for p in pads)
    expected = reference.pool(x, reduction, kernel, stride, pairs, dilation, ceil, mode)
    assert_close(y, expected, f"{reduction} vs reference")
    dy = rng.standard_normal(y.shape)
    g = F.reduce_window_backward(dy, ctx)

    def f(v):  # type: ignore[no-untyped-def]
        return F.reduce_window_forward(v, reduction, nd, kernel, stride, pads, dilation, ceil, mode)[0]

    assert_close(g, numerical_grad(f, x.copy(), dy), "numerical gradient", rtol=1e-6, atol=1e-6)


@given(pool_case(), st.booleans(), st.integers(0, 2**16))
def test_avg_pool_border_modes_numerical_gradient(case, include_pad, seed):  # type: ignore[no-untyped-def]
    nd, shape, kernel, stride, pads, _, ceil, mode = case
    pads = tuple(min(p, k // 2) for p, k in zip(pads, kernel))  # no dilation for average pooling
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)

    def f(v):  # type: ignore[no-untyped-def]
        return F.avg_pool_forward(v, nd, kernel, stride, pads, ceil, include_pad, None, mode)[0]

    y, ctx = F.avg_pool_forward(x, nd, kernel, stride, pads, ceil, include_pad, None, mode)
    dy = rng.standard_normal(y.shape)
    assert_close(F.reduce_window_backward(dy, ctx), numerical_grad(f, x.copy(), dy), "avg gradient", 1e-6, 1e-7)
    if mode == "zeros":  # explicit zeros count as values: PyTorch's count_include_pad=True
        assert_close(y, F.avg_pool_forward(x, nd, kernel, stride, pads, ceil, True)[0], "zeros mode")
    elif mode is not None:  # border values are real: the reference's window sum / count
        pairs = tuple((p, p) for p in pads)
        total = reference.pool(x, "sum", kernel, stride, pairs, (1,) * nd, ceil, mode)
        ones = reference.pool(np.ones_like(x), "sum", kernel, stride, pairs, (1,) * nd, ceil, mode)
        assert_close(y, total / ones, "avg vs reference")


def test_median_even_window_takes_lower_median_and_excludes_padding():
    x = np.array([[[4.0, 1.0, 3.0, 2.0]]])
    assert F.median_pool1d(x, 4).tolist() == [[[2.0]]]  # sorted 1,2,3,4 -> lower median 2
    # first window with padding 1: real elements (4, 1) -> lower median 1, padding never counts
    assert F.median_pool1d(x, 3, 1, 1).tolist() == [[[1.0, 3.0, 2.0, 2.0]]]


def test_median_pool_removes_salt_noise():
    img = np.zeros((1, 1, 7, 7))
    img[0, 0, 3, 3] = 100.0
    assert not F.median_pool2d(img, 3, 1, 1).any()
    assert F.avg_pool2d(img, 3, 1, 1).max() > 10


def test_median_nan_propagates():
    x = np.arange(9.0).reshape(1, 1, 9)
    x[0, 0, 4] = np.nan
    y = F.median_pool1d(x, 3)
    assert np.isnan(y[0, 0, 1]) and not np.isnan(y[0, 0, [0, 2]]).any()


@given(st.integers(1, 3), st.sampled_from(["reflect", "replicate", "circular"]), st.integers(0, 2**16))
def test_pad_backward_is_adjoint_of_pad(nd, mode, seed):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    shape = (2, 1, *(int(s) for s in rng.integers(2, 6, nd)))
    pads = tuple((int(rng.integers(0, s)), int(rng.integers(0, s))) for s in shape[2:])
    flat = [v for pair in reversed(pads) for v in pair]
    x = rng.standard_normal(shape)
    xp = F.pad(x, flat, mode)
    g = rng.standard_normal(xp.shape)
    # <pad(x), g> == <x, pad^T(g)>
    np.testing.assert_allclose((xp * g).sum(), (x * F.pad_grad(g, flat, mode)).sum(), rtol=1e-10)
