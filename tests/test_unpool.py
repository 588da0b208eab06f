"""max_unpool1d/2d/3d and nn.MaxUnpool*d against PyTorch (pool, then unpool)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

from convpool.functional.pool import max_pool1d, max_pool2d, max_pool3d
from convpool.functional.unpool import (
    max_unpool1d,
    max_unpool2d,
    max_unpool3d,
    max_unpool_backward,
    max_unpool_forward,
)
from convpool.nn.unpool import MaxUnpool1d, MaxUnpool2d, MaxUnpool3d
from oracle import assert_close, check_against_torch, tie_free

TORCH_POOL = {1: TF.max_pool1d, 2: TF.max_pool2d, 3: TF.max_pool3d}
TORCH_UNPOOL = {1: TF.max_unpool1d, 2: TF.max_unpool2d, 3: TF.max_unpool3d}
OUR_POOL = {1: max_pool1d, 2: max_pool2d, 3: max_pool3d}
OUR_UNPOOL = {1: max_unpool1d, 2: max_unpool2d, 3: max_unpool3d}
MODULES = {1: MaxUnpool1d, 2: MaxUnpool2d, 3: MaxUnpool3d}


@st.composite
def unpool_case(draw):  # type: ignore[no-untyped-def]
    """A max pool's geometry on a tie-free input, and an output_size for the unpool."""
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = tuple(draw(st.integers(k, k + 3)) for k in kernel)
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    unbatched = draw(st.booleans())
    stride_arg = None if stride == kernel and draw(st.booleans()) else stride
    out = [(s + 2 * p - k) // st_ + 1 for s, k, p, st_ in zip(size, kernel, padding, stride)]
    default = [(o - 1) * st_ - 2 * p + k for o, k, p, st_ in zip(out, kernel, padding, stride)]
    how = draw(st.sampled_from(["none", "spatial", "full", "drawn"]))
    output_size: tuple[int, ...] | None = None
    if how in ("spatial", "full") and all(d - st_ < s < d + st_ for s, d, st_ in zip(size, default, stride)):
        output_size = size if how == "spatial" else (n, c) + size  # nd or nd + 2 values: (N, C) ignored
    elif how == "drawn":
        output_size = tuple(draw(st.integers(max(d - st_ + 1, 1), d + st_ - 1)) for d, st_ in zip(default, stride))
    shape = ((c,) if unbatched else (n, c)) + size
    return nd, shape, kernel, stride_arg, padding, output_size


@given(unpool_case(), st.integers(0, 2**16))
def test_unpool_after_torch_pool_matches_torch(case, seed):  # type: ignore[no-untyped-def]
    """torch's max_pool(return_indices) then max_unpool, against convpool's unpool of the
    same values and indices: forward and the gradient of the values."""
    nd, shape, kernel, stride, padding, output_size = case
    x = tie_free(np.random.default_rng(seed), shape)
    y_t, idx_t = TORCH_POOL[nd](torch.tensor(x), kernel, stride, padding, return_indices=True)
    y, idx = y_t.numpy(), idx_t.numpy()
    try:
        u_t = TORCH_UNPOOL[nd](y_t, idx_t, kernel, stride, padding, output_size)
    except RuntimeError:  # the indices do not fit the output plane asked for
        u_t = None
    if u_t is None or u_t.numel() == 0:  # convpool refuses an empty plane too (PyTorch drops the values)
        with pytest.raises(ValueError, match="out of range"):
            OUR_UNPOOL[nd](y, idx, kernel, stride, padding, output_size)
        return
    check_against_torch(
        lambda v: max_unpool_forward(v, idx, kernel, stride, padding, output_size, nd=nd),
        max_unpool_backward,
        lambda vt: TORCH_UNPOOL[nd](vt, idx_t, kernel, stride, padding, output_size),
        [y],
        seed,
    )


@given(unpool_case(), st.integers(1, 2), st.booleans(), st.integers(0, 2**16))
def test_convpool_pool_then_unpool_matches_torch(case, dilation, ceil_mode, seed):  # type: ignore[no-untyped-def]
    """convpool's max_pool indices are PyTorch's (dilation and ceil_mode too), and
    convpool's pool + unpool to the input's size equals torch's."""
    nd, shape, kernel, stride, padding, _ = case
    dil = tuple(dilation if k * dilation <= s else 1 for k, s in zip(kernel, shape[-nd:]))
    x = tie_free(np.random.default_rng(seed), shape)
    y, idx = OUR_POOL[nd](x, kernel, stride, padding, dil, ceil_mode, return_indices=True)
    y_t, idx_t = TORCH_POOL[nd](torch.tensor(x), kernel, stride, padding, dil, ceil_mode, return_indices=True)
    np.testing.assert_array_equal(idx, idx_t.numpy())
    assert_close(y, y_t.numpy(), "max_pool")
    stride_ = kernel if stride is None else stride
    default = [(o - 1) * s - 2 * p + k for o, s, p, k in zip(y.shape[-nd:], stride_, padding, kernel)]
    size = shape[-nd:]
    if all(d - s < n < d + s for n, d, s in zip(size, default, stride_)):  # else torch refuses x's size too
        ours = OUR_UNPOOL[nd](y, idx, kernel, stride, padding, size)
        theirs = TORCH_UNPOOL[nd](y_t, idx_t, kernel, stride, padding, size)
        assert_close(ours, theirs.numpy(), "pool + unpool")
        # every window's max is back in place, everything else is zero
        lead = shape[:-nd]
        flat, where = ours.reshape(*lead, -1), idx.reshape(*lead, -1)
        np.testing.assert_array_equal(np.take_along_axis(flat, where, axis=-1), y.reshape(*lead, -1))
        np.put_along_axis(flat, where, 0.0, axis=-1)
        assert not flat.any()


@settings(max_examples=60)
@given(unpool_case(), st.integers(0, 2**16))
def test_float32_and_module_match_torch(case, seed):  # type: ignore[no-untyped-def]
    nd, shape, kernel, stride, padding, output_size = case
    x = tie_free(np.random.default_rng(seed), shape).astype(np.float32)
    y_t, idx_t = TORCH_POOL[nd](torch.tensor(x), kernel, stride, padding, return_indices=True)
    ours, theirs = MODULES[nd](kernel, stride, padding), getattr(torch.nn, f"MaxUnpool{nd}d")(kernel, stride, padding)
    assert repr(ours) == repr(theirs)
    v_t = y_t.clone().requires_grad_(True)
    try:
        u_t = theirs(v_t, idx_t, output_size)
    except RuntimeError:
        return
    if u_t.numel() == 0:
        return
    u = ours(y_t.numpy(), idx_t.numpy(), output_size)
    assert u.dtype == np.float32
    assert_close(u, u_t.detach().numpy(), "float32 unpool", rtol=1e-6, atol=1e-6)
    dy = np.random.default_rng(seed).standard_normal(u.shape).astype(np.float32)
    u_t.backward(torch.tensor(dy))
    g = ours.backward(dy)
    assert g.dtype == np.float32 and v_t.grad is not None
    assert_close(g, v_t.grad.numpy(), "float32 unpool gradient", rtol=1e-6, atol=1e-6)


def test_repeated_indices_last_wins_and_gradient_is_gathered() -> None:
    """Overlapping pools repeat an index (with the same value): torch agrees.  With
    different values, convpool writes the last in C order; the gradient is a gather."""
    x = np.array([[[1.0, 5.0, 2.0, 0.5]]])
    y, idx = max_pool1d(x, 2, 1, return_indices=True)  # windows (1, 5), (5, 2), (2, 0.5)
    np.testing.assert_array_equal(idx, [[[1, 1, 2]]])
    vt = torch.tensor(y, requires_grad=True)
    ut = TF.max_unpool1d(vt, torch.tensor(idx), 2, 1)
    u, ctx = max_unpool_forward(y, idx, 2, 1)
    assert_close(u, ut.detach().numpy(), "repeated indices")
    dy = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    ut.backward(torch.tensor(dy))
    assert vt.grad is not None
    assert_close(max_unpool_backward(dy, ctx), vt.grad.numpy(), "gather")
    np.testing.assert_array_equal(max_unpool_backward(dy, ctx), [[[2.0, 2.0, 3.0]]])
    u = max_unpool1d(np.array([[1.0, 2.0, 3.0]]), np.array([[0, 0, 1]]), 2, 1)
    np.testing.assert_array_equal(u, [[2.0, 3.0, 0.0, 0.0]])


def test_hand_computed_example() -> None:
    """PyTorch's doc example: output_size resolves the ambiguous 4x5 inverse."""
    x = np.arange(1.0, 21.0).reshape(1, 1, 4, 5)
    y, idx = max_pool2d(x, 2, return_indices=True)
    u = MaxUnpool2d(2)(y, idx, output_size=x.shape)
    expected = np.zeros((4, 5))
    expected[1, [1, 3]] = [7, 9]
    expected[3, [1, 3]] = [17, 19]
    np.testing.assert_array_equal(u[0, 0], expected)
    with pytest.raises(ValueError, match=r"indices\[0, 0, 1, 0\] = 16 is out of range"):
        max_unpool2d(y, idx, 2)  # the default 4x4 plane: x's 4x5 indices do not fit (as PyTorch)
    y, idx = max_pool2d(x[..., :4], 2, return_indices=True)
    np.testing.assert_array_equal(
        max_unpool2d(y, idx, 2)[0, 0], [[0, 0, 0, 0], [0, 7, 0, 9], [0, 0, 0, 0], [0, 17, 0, 19]]
    )


def test_int32_indices_and_empty_batch() -> None:
    y = np.array([[[3.0, 4.0]]])
    np.testing.assert_array_equal(max_unpool1d(y, np.array([[[1, 2]]], dtype=np.int32), 2), [[[0.0, 3.0, 4.0, 0.0]]])
    assert max_unpool3d(np.zeros((0, 2, 1, 1, 1)), np.zeros((0, 2, 1, 1, 1), dtype=np.int64), 2).shape == (
        0,
        2,
        2,
        2,
        2,
    )


# --- errors ------------------------------------------------------------------------------

Y = np.ones((1, 1, 2, 2))
IDX = np.array([[[[0, 1], [4, 5]]]])


@pytest.mark.parametrize(
    ("call", "exc", "message"),
    [
        (lambda: max_unpool2d(Y, IDX[..., :1], 2), ValueError, r"indices must have the input's shape \(1, 1, 2, 2\)"),
        (lambda: max_unpool2d(Y, IDX.astype(float), 2), TypeError, "indices must be an integer array.*float64"),
        (
            lambda: max_unpool2d(Y, np.array([[[[0, 1], [4, 99]]]]), 2),
            ValueError,
            r"indices\[0, 0, 1, 1\] = 99 is out of range: an output plane of size 4x4 has 16 elements",
        ),
        (
            lambda: max_unpool2d(Y, np.array([[[[0, -1], [4, -1]]]]), 2),
            ValueError,
            r"indices\[0, 0, 0, 1\] = -1 is out of range.*padding_mode='zeros'",
        ),
        (
            lambda: max_unpool2d(Y, IDX, 2, output_size=(6, 6)),
            ValueError,
            r"invalid output_size \(6, 6\): spatial dim 0 must be strictly between 2 and 6.*got 6",
        ),
        (lambda: max_unpool2d(Y, IDX, 2, output_size=(2, 4)), ValueError, "strictly between 2 and 6"),
        (lambda: max_unpool2d(Y, IDX, 2, output_size=(3,)), ValueError, r"output_size must have 2 or 4 elements"),
        (lambda: max_unpool2d(Y, IDX, 2, output_size=5), TypeError, "output_size must be a tuple of 2 or 4 ints"),
        (
            lambda: max_unpool2d(np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), dtype=np.int64), 1, padding=1),
            ValueError,
            "negative size -1 in spatial dim 0",
        ),
        (
            lambda: max_unpool1d(np.ones((1, 1, 1)), np.zeros((1, 1, 1), dtype=np.int64), 2, padding=1),
            ValueError,
            r"the unpooled output plane \(0,\) is empty, so indices\[0, 0, 0\] = 0 is out of range",
        ),
        (lambda: max_unpool2d(Y, IDX, 0), ValueError, "kernel_size must be positive, got 0"),
        (lambda: max_unpool2d(Y, IDX, 2, stride=0), ValueError, "stride must be positive, got 0"),
        (lambda: max_unpool2d(Y, IDX, 2, padding=-1), ValueError, "padding must be >= 0, got -1"),
        (lambda: max_unpool2d(np.ones((2, 2)), np.zeros((2, 2), dtype=np.int64), 2), ValueError, "must have 4 dims"),
        (lambda: max_unpool2d(Y.astype(np.int64), IDX, 2), TypeError, "floating-point array"),
        (
            lambda: max_unpool_backward(np.ones((1, 1, 3, 3)), max_unpool_forward(Y, IDX, 2, nd=2)[1]),
            ValueError,
            r"grad_output must have the output's shape \(1, 1, 4, 4\), got \(1, 1, 3, 3\)",
        ),
        (lambda: MaxUnpool2d(2).backward(np.ones((1, 1, 4, 4))), ValueError, "backward called before forward"),
        (lambda: MaxUnpool3d((2, 2)), ValueError, "kernel_size must be an int or a tuple of 3 ints"),
        (lambda: MaxUnpool1d(2, padding=-1), ValueError, "padding must be >= 0"),
    ],
)
def test_bad_input(call, exc, message):  # type: ignore[no-untyped-def]
    with pytest.raises(exc, match=message):
        call()
