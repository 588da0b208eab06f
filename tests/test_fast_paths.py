"""The compiled kernels and the NumPy reference path compute the same thing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convpool
import convpool.functional as F
from convpool.backends.compiled import kernels as _kernels

pytestmark = pytest.mark.skipif(not _kernels.enabled(), reason="numba not installed or disabled")


def both(fn, monkeypatch):  # type: ignore[no-untyped-def]
    fast = fn()
    with convpool.backend("numpy"):
        slow = fn()
    return fast, slow


@st.composite
def case(draw):  # type: ignore[no-untyped-def]
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pads = tuple(draw(st.integers(0, (d * (k - 1) + 1) // 2)) for k, d in zip(kernel, dil))
    size = tuple(draw(st.integers(max(d * (k - 1) + 1, p + 1), d * (k - 1) + 4)) for k, d, p in zip(kernel, dil, pads))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return nd, size, kernel, stride, pads, dil, dtype, draw(st.booleans())


@given(
    case(),
    st.sampled_from(["max", "min", "median", "sum"]),
    st.sampled_from([None, "zeros", "reflect", "replicate", "circular"]),
    st.integers(0, 2**16),
)
def test_pool_fast_equals_reference(c, red, mode, seed):  # type: ignore[no-untyped-def]
    nd, size, kernel, stride, pads, dil, dtype, ceil = c
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, *size)).astype(dtype)
    mp = pytest.MonkeyPatch()

    def run():  # type: ignore[no-untyped-def]
        y, ctx = F.reduce_window_forward(x, red, nd, kernel, stride, pads, dil, ceil, mode)
        dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
        gx = F.reduce_window_backward(dy, ctx)
        if red in ("max", "min"):  # routed in one pass, or through indices found first: the same
            _, ctx2 = F.reduce_window_forward(x, red, nd, kernel, stride, pads, dil, ceil, mode)
            F.pool.flat_indices(ctx2)
            np.testing.assert_array_equal(F.reduce_window_backward(dy, ctx2), gx)
        return y, gx

    (yf, gf), (ys, gs) = both(run, mp)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(yf, ys, rtol=tol, atol=tol)
    np.testing.assert_allclose(gf, gs, rtol=tol, atol=tol)
    assert yf.dtype == ys.dtype == gf.dtype == dtype


@given(case(), st.sampled_from([1, 2, 3]), st.sampled_from(["zeros", "reflect", "circular"]), st.integers(0, 2**16))
def test_conv_fast_equals_reference(c, groups, mode, seed):  # type: ignore[no-untyped-def]
    nd, size, kernel, stride, pads, dil, dtype, _ = c
    rng = np.random.default_rng(seed)
    cin, cout = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    x = rng.standard_normal((2, cin, *size)).astype(dtype)
    w = rng.standard_normal((cout, cin // groups, *kernel)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    mp = pytest.MonkeyPatch()

    def run():  # type: ignore[no-untyped-def]
        y, ctx = F.conv_forward(x, w, b, stride, pads, dil, groups, mode, nd=nd)
        dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
        return (y, *F.conv_backward(dy, ctx))

    fast, slow = both(run, mp)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    for a, b_ in zip(fast, slow):
        np.testing.assert_allclose(a, b_, rtol=tol, atol=tol)
        assert a.dtype == b_.dtype


def test_large_conv_is_chunked_and_equal():  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    with convpool.config.use("conv", "im2col"), convpool.config.tuning(cols_budget=4096):  # many chunks
        (yf, ctxf) = F.conv_forward(x, w, None, 1, 1)
    assert ctxf.name == "im2col"
    with convpool.backend("numpy"):
        (ys, ctxs) = F.conv_forward(x, w, None, 1, 1)
    np.testing.assert_allclose(yf, ys, rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(yf.shape).astype(np.float32)
    for a, b in zip(F.conv_backward(dy, ctxf)[:2], F.conv_backward(dy, ctxs)[:2]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@given(
    st.one_of(
        st.integers(1, 3).flatmap(
            lambda nd: st.tuples(*[st.tuples(st.integers(1, 3), st.integers(0, 2)) for _ in range(nd)])
        ),
        st.tuples(st.tuples(st.just(2), st.integers(0, 1)), st.tuples(st.just(2), st.integers(0, 1))),  # 2x2
    ),
    st.sampled_from(["max", "min", "sum"]),
    st.sampled_from([np.float32, np.float64]),
    st.integers(0, 2**16),
)
def test_tiled_pool_kernels_equal_reference(dims, red, dtype, seed):  # type: ignore[no-untyped-def]
    """stride == kernel, no padding: the row kernels that record each winner's position,
    and the 2x2 ones.  Small integers make ties common; NaN and inf appear; sizes need
    not divide."""
    nd = len(dims)
    kernel = tuple(k for k, _ in dims)
    size = tuple(k * (1 + r) + r for k, r in dims)  # r leftover elements no window covers
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (2, 3, *size)).astype(dtype)
    x.ravel()[rng.random(x.size) < 0.05] = np.nan
    x.ravel()[rng.random(x.size) < 0.05] = np.inf
    mp = pytest.MonkeyPatch()

    def run():  # type: ignore[no-untyped-def]
        y, ctx = F.reduce_window_forward(x, red, nd, kernel)
        dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
        return y, F.reduce_window_backward(dy, ctx), ctx

    (yf, gf, ctx), (ys, gs, _) = both(run, mp)
    if red == "sum":  # summed in another order: equal up to rounding
        np.testing.assert_allclose(yf, ys, rtol=1e-6)
        np.testing.assert_allclose(gf, gs, rtol=1e-6)
        return
    assert ctx.name in ("tiles", "tiles-2x2")  # the tiled kernels ran
    np.testing.assert_array_equal(yf, ys)
    np.testing.assert_array_equal(gf, gs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(8, 300, 7, 7), (300, 7, 9), (3, 40, 5, 6, 7)])
def test_global_average_pool_kernels_match_torch(shape, dtype):  # type: ignore[no-untyped-def]
    import torch

    nd = len(shape) - 2 if len(shape) != 3 else 2  # (C, H, W): unbatched 2-d
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    assert x.size >= 1 << 14  # large enough for the compiled pass
    y, ctx = F.adaptive_avg_pool_forward(x, nd, 1)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    gx = F.adaptive_avg_pool_backward(dy, ctx)
    xt = torch.tensor(x, requires_grad=True)
    yt = {2: torch.nn.functional.adaptive_avg_pool2d, 3: torch.nn.functional.adaptive_avg_pool3d}[nd](xt, 1)
    yt.backward(torch.tensor(dy))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert y.dtype == gx.dtype == dtype
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=tol, atol=tol)
