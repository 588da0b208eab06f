"""Pooling against PyTorch (float64): values, indices and input gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import assume, given
from hypothesis import strategies as st

import convpool.functional as F
from convpool.functional._common import make_geometry
from oracle import assert_close, check_against_torch

TORCH_MAX = {1: TF.max_pool1d, 2: TF.max_pool2d, 3: TF.max_pool3d}
TORCH_AVG = {1: TF.avg_pool1d, 2: TF.avg_pool2d, 3: TF.avg_pool3d}
TORCH_LP = {1: TF.lp_pool1d, 2: TF.lp_pool2d, 3: TF.lp_pool3d}
TORCH_AAVG = {1: TF.adaptive_avg_pool1d, 2: TF.adaptive_avg_pool2d, 3: TF.adaptive_avg_pool3d}
TORCH_AMAX = {1: TF.adaptive_max_pool1d, 2: TF.adaptive_max_pool2d, 3: TF.adaptive_max_pool3d}


@st.composite
def window_case(draw, dilate=True):  # type: ignore[no-untyped-def]
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4 if nd < 3 else 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd)) if dilate else (1,) * nd
    stride = draw(st.one_of(st.none(), st.tuples(*(st.integers(1, 3) for _ in range(nd)))))
    pads = tuple(draw(st.integers(0, k // 2)) for k in kernel)  # PyTorch's rule: pad <= kernel/2
    size = tuple(
        draw(st.integers(max(d * (k - 1) + 1 - 2 * p, 1), d * (k - 1) + 6)) for k, d, p in zip(kernel, dilation, pads)
    )
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    ceil = draw(st.booleans())
    return nd, (n, c, *size), kernel, stride, pads, dilation, ceil


def all_padding_window(shape, kernel, stride, pads, dilation, ceil):  # type: ignore[no-untyped-def]
    """Whether some window reads only padding (convpool refuses; PyTorch gives -inf)."""
    g = make_geometry(shape[2:], len(kernel), kernel, stride, pads, dilation, ceil, pool=True)
    return not g.counts(include_pad=False).all()


@given(window_case(), st.integers(0, 2**16))
def test_max_pool_matches_torch(case, seed):  # type: ignore[no-untyped-def]
    nd, shape, kernel, stride, pads, dilation, ceil = case
    x = np.random.default_rng(seed).standard_normal(shape)
    if all_padding_window(shape, kernel, stride, pads, dilation, ceil):
        with pytest.raises(ValueError, match="lies entirely in the padding"):
            F.reduce_window(x, "max", kernel, stride, pads, dilation, ceil)
        return
    check_against_torch(
        lambda x: F.reduce_window_forward(x, "max", nd, kernel, stride, pads, dilation, ceil),
        F.reduce_window_backward,
        lambda xt: TORCH_MAX[nd](xt, kernel, stride, pads, dilation, ceil),
        [x],
        seed,
    )
    fn = getattr(F, f"max_pool{nd}d")
    _, idx = fn(x, kernel, stride, pads, dilation, ceil, return_indices=True)
    _, idx_t = TORCH_MAX[nd](torch.tensor(x), kernel, stride, pads, dilation, ceil, return_indices=True)
    np.testing.assert_array_equal(idx, idx_t.numpy())


@given(window_case(), st.integers(0, 2**16))
def test_min_pool_is_negated_max_of_negation(case, seed):  # type: ignore[no-untyped-def]
    nd, shape, kernel, stride, pads, dilation, ceil = case
    x = np.random.default_rng(seed).standard_normal(shape)
    if all_padding_window(shape, kernel, stride, pads, dilation, ceil):
        return
    check_against_torch(
        lambda x: F.reduce_window_forward(x, "min", nd, kernel, stride, pads, dilation, ceil),
        F.reduce_window_backward,
        lambda xt: -TORCH_MAX[nd](-xt, kernel, stride, pads, dilation, ceil),
        [x],
        seed,
    )


@given(window_case(dilate=False), st.booleans(), st.sampled_from([None, 1, 3, 7]), st.integers(0, 2**16))
def test_avg_pool_matches_torch(case, count_include_pad, divisor, seed):  # type: ignore[no-untyped-def]
    nd, shape, kernel, stride, pads, _, ceil = case
    if nd == 1:
        divisor = None  # PyTorch's avg_pool1d has no divisor_override
    # PyTorch's avg_pool3d refuses an unpadded input smaller than the kernel
    assume(nd != 3 or all(s >= k for s, k in zip(shape[2:], kernel)))
    x = np.random.default_rng(seed).standard_normal(shape)
    if not count_include_pad and divisor is None and all_padding_window(shape, kernel, stride, pads, (1,) * nd, ceil):
        with pytest.raises(ValueError, match="lies entirely in the padding"):
            F.avg_pool_forward(x, nd, kernel, stride, pads, ceil, count_include_pad)
        return
    extra = () if nd == 1 else (divisor,)
    check_against_torch(
        lambda x: F.avg_pool_forward(x, nd, kernel, stride, pads, ceil, count_include_pad, divisor),
        F.reduce_window_backward,
        lambda xt: TORCH_AVG[nd](xt, kernel, stride, pads, ceil, count_include_pad, *extra),
        [x],
        seed,
    )


@given(window_case(dilate=False), st.sampled_from([1, 2, 3, 1.5]), st.integers(0, 2**16))
def test_lp_pool_matches_torch(case, p, seed):  # type: ignore[no-untyped-def]
    nd, shape, kernel, stride, _, _, _ = case
    assume(all(s >= k for s, k in zip(shape[2:], kernel)))  # Lp pooling has no padding
    x = np.random.default_rng(seed).uniform(0.1, 2.0, shape)  # positive: x**p is real
    check_against_torch(
        lambda x: F.lp_pool_forward(x, p, nd, kernel, stride),
        F.lp_pool_backward,
        lambda xt: TORCH_LP[nd](xt, p, kernel[0] if nd == 1 else kernel, stride),  # lp_pool1d: int only
        [x],
        seed,
    )


@st.composite
def adaptive_case(draw):  # type: ignore[no-untyped-def]
    nd = draw(st.integers(1, 3))
    size = tuple(draw(st.integers(1, 9)) for _ in range(nd))
    out = tuple(draw(st.one_of(st.none(), st.integers(1, 10))) for _ in range(nd))
    if draw(st.booleans()):
        out = draw(st.integers(1, 6))
    return nd, (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *size), out


@given(adaptive_case(), st.integers(0, 2**16))
def test_adaptive_pools_match_torch(case, seed):  # type: ignore[no-untyped-def]
    nd, shape, out = case
    x = np.random.default_rng(seed).standard_normal(shape)
    if nd == 1 and out == (None,):  # PyTorch's 1-d adaptive pools take no None
        out = shape[2]
    check_against_torch(
        lambda x: F.adaptive_avg_pool_forward(x, nd, out),
        F.adaptive_avg_pool_backward,
        lambda xt: TORCH_AAVG[nd](xt, out),
        [x],
        seed,
    )

    def ours_max(x):  # type: ignore[no-untyped-def]
        y, _, ctx = F.adaptive_max_pool_forward(x, nd, out)
        return y, ctx

    check_against_torch(ours_max, F.adaptive_max_pool_backward, lambda xt: TORCH_AMAX[nd](xt, out), [x], seed)
    _, idx = getattr(F, f"adaptive_max_pool{nd}d")(x, out, return_indices=True)
    _, idx_t = TORCH_AMAX[nd](torch.tensor(x), out, return_indices=True)
    np.testing.assert_array_equal(idx, idx_t.numpy())


def test_max_pool_ties_send_gradient_to_first_in_scan_order():
    x = np.ones((1, 1, 4, 4))
    y, ctx = F.reduce_window_forward(x, "max", 2, 2)
    g = F.reduce_window_backward(np.ones_like(y), ctx)
    xt = torch.tensor(x, requires_grad=True)
    TF.max_pool2d(xt, 2).sum().backward()
    assert_close(g, xt.grad.numpy(), "tie gradient")
    assert g[0, 0, ::2, ::2].sum() == 4 and g.sum() == 4


def test_max_pool_nan_propagates_and_padding_is_minus_infinity():
    x = -np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # all negative: zero padding would win
    y = F.max_pool2d(x, 3, 1, 1)
    assert_close(y, TF.max_pool2d(torch.tensor(x), 3, 1, 1).numpy(), "negative input")
    assert (y < 0).all()
    x[0, 0, 1, 1] = np.nan
    y = F.max_pool2d(x, 2, 1)
    assert np.isnan(y).all()


def test_float32_and_unbatched_pools():
    x = np.random.default_rng(0).standard_normal((3, 8, 8)).astype(np.float32)
    for ours, theirs in [
        (F.max_pool2d(x, 3, 2, 1), TF.max_pool2d(torch.tensor(x), 3, 2, 1)),
        (F.avg_pool2d(x, 3, 2, 1), TF.avg_pool2d(torch.tensor(x), 3, 2, 1)),
        (F.adaptive_avg_pool2d(x, 3), TF.adaptive_avg_pool2d(torch.tensor(x), 3)),
        (F.adaptive_max_pool2d(x, 3), TF.adaptive_max_pool2d(torch.tensor(x), 3)),
    ]:
        assert ours.dtype == np.float32
        assert_close(ours, theirs.numpy(), "float32", rtol=1e-6, atol=1e-6)


def test_empty_batch_pools():
    x = np.zeros((0, 2, 6, 6))
    y, ctx = F.reduce_window_forward(x, "max", 2, 2)
    assert y.shape == (0, 2, 3, 3)
    assert F.reduce_window_backward(np.zeros(y.shape), ctx).shape == x.shape
    assert F.avg_pool2d(x, 2).shape == (0, 2, 3, 3)
    assert F.median_pool2d(x, 3, 1, 1).shape == (0, 2, 6, 6)
    assert F.adaptive_max_pool2d(x, 2).shape == (0, 2, 2, 2)
