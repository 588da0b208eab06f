"""fold / unfold (and nn.Fold / nn.Unfold) against PyTorch, a loop reference and their
adjoint identities."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import convpool
from convpool.backends.compiled import kernels as _kernels
from convpool.functional.conv import conv2d
from convpool.functional.folding import fold, fold_backward, fold_forward, unfold, unfold_backward, unfold_forward
from convpool.nn.fold import Fold, Unfold
from oracle import assert_close, check_against_torch


@st.composite
def window_case(draw, nd=2):  # type: ignore[no-untyped-def]
    """Sizes, kernel, dilation, padding, stride with at least one window."""
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    size = []
    for k, d, p in zip(kernel, dilation, padding, strict=True):
        low = max(d * (k - 1) + 1 - 2 * p, 1)
        size.append(draw(st.integers(low, low + 4)))
    return tuple(size), kernel, dilation, padding, stride


def _arg(draw, t):  # type: ignore[no-untyped-def]
    """A tuple, or an int when all its values are equal (half the time)."""
    return t[0] if len(set(t)) == 1 and draw(st.booleans()) else t


def reference_unfold(x, kernel, dilation, padding, stride):  # type: ignore[no-untyped-def]
    """Loops: out[n, c*K + k, l] = x_padded[n, c, pos(l) * stride + off(k) * dilation]."""
    n, c = x.shape[:2]
    nd = len(kernel)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in padding])
    out = [(xp.shape[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(nd)]
    offsets = list(itertools.product(*(range(k) for k in kernel)))
    positions = list(itertools.product(*(range(o) for o in out)))
    y = np.zeros((n, c * len(offsets), len(positions)), dtype=x.dtype)
    for ci in range(c):
        for ki, off in enumerate(offsets):
            for li, pos in enumerate(positions):
                at = tuple(pos[i] * stride[i] + off[i] * dilation[i] for i in range(nd))
                y[:, ci * len(offsets) + ki, li] = xp[(slice(None), ci, *at)]
    return y


# --- against torch (2-d) -----------------------------------------------------------------


@given(window_case(), st.integers(0, 2), st.integers(1, 3), st.booleans(), st.data())
def test_unfold_matches_torch(case, n, c, unbatched, data):  # type: ignore[no-untyped-def]
    size, kernel, dilation, padding, stride = case
    args = [_arg(data.draw, t) for t in (kernel, dilation, padding, stride)]
    shape = (c, *size) if unbatched else (n, c, *size)
    x = np.random.default_rng(n * 7 + c).standard_normal(shape)
    check_against_torch(
        lambda x: unfold_forward(x, *args),
        unfold_backward,
        lambda xt: TF.unfold(xt, *args),
        [x],
    )


@given(window_case(), st.integers(0, 2), st.integers(1, 3), st.booleans(), st.data())
def test_fold_matches_torch(case, n, c, unbatched, data):  # type: ignore[no-untyped-def]
    size, kernel, dilation, padding, stride = case
    args = [_arg(data.draw, t) for t in (size, kernel, dilation, padding, stride)]
    blocks = [
        (s + 2 * p - d * (k - 1) - 1) // st_ + 1 for s, k, d, p, st_ in zip(size, kernel, dilation, padding, stride)
    ]
    rows, cols = c * int(np.prod(kernel)), int(np.prod(blocks))
    shape = (rows, cols) if unbatched else (n, rows, cols)
    x = np.random.default_rng(n * 5 + c).standard_normal(shape)
    check_against_torch(
        lambda x: fold_forward(x, *args),
        fold_backward,
        lambda xt: TF.fold(xt, *args),
        [x],
    )


@given(window_case(), st.integers(1, 2), st.integers(1, 2))
def test_fold_of_unfold_matches_torch_and_counts_windows(case, n, c):  # type: ignore[no-untyped-def]
    """fold(unfold(x)) == x * (windows covering each element); with ones, the count."""
    size, kernel, dilation, padding, stride = case
    x = np.random.default_rng(n + c).standard_normal((n, c, *size))
    ours = fold(unfold(x, kernel, dilation, padding, stride), size, kernel, dilation, padding, stride)
    t = torch.tensor(x)
    theirs = TF.fold(TF.unfold(t, kernel, dilation, padding, stride), size, kernel, dilation, padding, stride)
    assert_close(ours, theirs.numpy(), "fold(unfold(x))")
    counts = fold(unfold(np.ones_like(x), kernel, dilation, padding, stride), size, kernel, dilation, padding, stride)
    # the count by loops: windows (at any output position) whose some tap lands on each element
    expected = np.zeros(size)
    out = [(s + 2 * p - d * (k - 1) - 1) // st_ + 1 for s, k, d, p, st_ in zip(size, kernel, dilation, padding, stride)]
    for pos in itertools.product(*(range(o) for o in out)):
        for off in itertools.product(*(range(k) for k in kernel)):
            at = tuple(pos[i] * stride[i] + off[i] * dilation[i] - padding[i] for i in range(2))
            if all(0 <= a < s for a, s in zip(at, size)):
                expected[at] += 1
    np.testing.assert_array_equal(counts, np.broadcast_to(expected, counts.shape))
    np.testing.assert_allclose(ours, x * expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=50)
@given(window_case(), st.integers(1, 2), st.integers(1, 3))
def test_float32_matches_torch(case, n, c):  # type: ignore[no-untyped-def]
    size, kernel, dilation, padding, stride = case
    x = np.random.default_rng(c).standard_normal((n, c, *size)).astype(np.float32)
    y, ctx = unfold_forward(x, kernel, dilation, padding, stride)
    assert y.dtype == np.float32
    xt = torch.tensor(x, requires_grad=True)
    yt = TF.unfold(xt, kernel, dilation, padding, stride)
    assert_close(y, yt.detach().numpy(), "float32 unfold", rtol=1e-6, atol=1e-6)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.tensor(dy))
    gx = unfold_backward(dy, ctx)
    assert gx.dtype == np.float32
    assert xt.grad is not None
    assert_close(gx, xt.grad.numpy(), "float32 fold", rtol=1e-5, atol=1e-5)


# --- N-d: loop reference and the adjoint identity -----------------------------------------


@st.composite
def nd_case(draw):  # type: ignore[no-untyped-def]
    """1 to 4 spatial dims (4-d: small sizes, no padding or dilation, to stay cheap)."""
    nd = draw(st.integers(1, 4))
    if nd < 4:
        return nd, draw(window_case(nd))
    kernel = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    size = tuple(draw(st.integers(k, 3)) for k in kernel)
    stride = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    return nd, (size, kernel, (1,) * nd, (0,) * nd, stride)


@given(nd_case(), st.integers(1, 2), st.integers(1, 2))
def test_unfold_nd_matches_loop_reference(ndc, n, c):  # type: ignore[no-untyped-def]
    nd, (size, kernel, dilation, padding, stride) = ndc
    x = np.random.default_rng(nd + n + c).standard_normal((n, c, *size))
    y = unfold(x, kernel, dilation, padding, stride)
    np.testing.assert_array_equal(y, reference_unfold(x, kernel, dilation, padding, stride))
    np.testing.assert_array_equal(unfold(x[0], kernel, dilation, padding, stride), y[0])  # unbatched


@given(nd_case(), st.integers(1, 2), st.integers(1, 2))
def test_fold_is_the_adjoint_of_unfold(ndc, n, c):  # type: ignore[no-untyped-def]
    """<unfold(x), y> == <x, fold(y)>, and each op's backward is the other op."""
    nd, (size, kernel, dilation, padding, stride) = ndc
    rng = np.random.default_rng(nd * 3 + n + c)
    x = rng.standard_normal((n, c, *size))
    ux, uctx = unfold_forward(x, kernel, dilation, padding, stride)
    y = rng.standard_normal(ux.shape)
    fy, fctx = fold_forward(y, size, kernel, dilation, padding, stride)
    assert fy.shape == x.shape
    assert np.isclose(np.vdot(ux, y), np.vdot(x, fy), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(unfold_backward(y, uctx), fy, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fold_backward(x, fctx), ux, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not _kernels.AVAILABLE, reason="compiled backend not available")
@settings(max_examples=60)
@given(nd_case(), st.integers(1, 2), st.integers(1, 2), st.sampled_from([np.float32, np.float64]))
def test_compiled_equals_numpy(ndc, n, c, dtype):  # type: ignore[no-untyped-def]
    nd, (size, kernel, dilation, padding, stride) = ndc
    x = np.random.default_rng(n + c).standard_normal((n, c, *size)).astype(dtype)
    results = []
    for backend in ("compiled", "numpy"):
        with convpool.backend(backend):
            u = unfold(x, kernel, dilation, padding, stride)
            results.append((u, fold(u, size, kernel, dilation, padding, stride)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-6, atol=1e-6)


def test_convolution_is_a_matrix_product_with_unfold() -> None:
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 2))
    cols = unfold(x, (3, 2), dilation=(1, 2), padding=1, stride=(2, 1))
    y = (w.reshape(4, -1) @ cols).reshape(2, 4, 4, 6)
    np.testing.assert_allclose(y, conv2d(x, w, None, (2, 1), 1, (1, 2)), rtol=1e-12, atol=1e-12)


def test_hand_computed_example() -> None:
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    expected = [[0, 2, 8, 10], [1, 3, 9, 11], [4, 6, 12, 14], [5, 7, 13, 15]]
    np.testing.assert_array_equal(unfold(x, 2, stride=2)[0], expected)
    np.testing.assert_array_equal(fold(unfold(x, 2, stride=2), 4, 2, stride=2), x)  # no overlap: inverse


def test_empty_batch_and_channels() -> None:
    assert unfold(np.zeros((0, 2, 4, 4)), 2).shape == (0, 8, 9)
    assert unfold(np.zeros((1, 0, 4, 4)), 2).shape == (1, 0, 9)
    assert fold(np.zeros((0, 8, 9)), 4, 2).shape == (0, 2, 4, 4)
    assert fold(np.zeros((1, 0, 9)), 4, 2).shape == (1, 0, 4, 4)


# --- modules -----------------------------------------------------------------------------


@given(window_case(), st.integers(1, 2), st.integers(1, 2), st.data())
def test_modules_match_torch(case, n, c, data):  # type: ignore[no-untyped-def]
    size, kernel, dilation, padding, stride = case
    kernel, dilation, padding, stride = (_arg(data.draw, t) for t in (kernel, dilation, padding, stride))
    x = np.random.default_rng(n * c).standard_normal((n, c, *size))
    ours_u, theirs_u = Unfold(kernel, dilation, padding, stride), torch.nn.Unfold(kernel, dilation, padding, stride)
    assert repr(ours_u) == repr(theirs_u)
    check_against_torch(
        lambda x: (ours_u(x), None), lambda dy, _: ours_u.backward(dy), lambda xt: theirs_u(xt), [x], seed=n
    )
    ours_f = Fold(size, kernel, dilation, padding, stride)
    theirs_f = torch.nn.Fold(size, kernel, dilation, padding, stride)
    assert repr(ours_f) == repr(theirs_f)
    cols = ours_u(x)
    check_against_torch(
        lambda x: (ours_f(x), None), lambda dy, _: ours_f.backward(dy), lambda xt: theirs_f(xt), [cols], seed=c
    )
    assert ours_u.state_dict() == {} and ours_f.parameters() == []


def test_module_backward_before_forward() -> None:
    with pytest.raises(ValueError, match="backward called before forward on Unfold"):
        Unfold(2).backward(np.zeros((1, 4, 4)))


# --- errors ------------------------------------------------------------------------------

X = np.zeros((1, 2, 4, 4))


@pytest.mark.parametrize(
    ("call", "exc", "message"),
    [
        (lambda: unfold(X, 5), ValueError, r"does not fit.*floor\(\(4 \+ 0 \+ 0 - 1\*\(5-1\) - 1\) / 1\) \+ 1"),
        (lambda: unfold(X, 0), ValueError, "kernel_size must be positive, got 0"),
        (lambda: unfold(X, 2, stride=0), ValueError, "stride must be positive, got 0"),
        (lambda: unfold(X, 2, dilation=-1), ValueError, "dilation must be positive, got -1"),
        (lambda: unfold(X, 2, padding=-1), ValueError, "padding must be >= 0, got -1"),
        (lambda: unfold(X, 2, padding="same"), TypeError, "padding must be an int or a tuple of 2 ints"),
        (
            lambda: unfold(np.zeros((2, 4)), (2, 2, 2)),
            ValueError,
            r"must have 5 dims .* or 4 dims unbatched, got shape \(2, 4\)",
        ),
        (lambda: unfold(np.zeros((4, 4)), 2), ValueError, r"must have 4 dims.*got shape \(4, 4\)"),
        (lambda: unfold(X, (2, 2), stride=(1, 1, 1)), ValueError, r"stride must be an int or a tuple of 2 ints"),
        (lambda: unfold(X.astype(np.int64), 2), TypeError, "floating-point array.*int64"),
        (lambda: unfold(np.zeros((1, 2, 0, 4)), 1, padding=1), ValueError, "empty spatial dim 0"),
        (
            lambda: fold(np.zeros((1, 10, 9)), 4, 2),
            ValueError,
            r"dimension 1 to be divisible by the product of kernel_size \(2, 2\) = 4.*\(1, 10, 9\)",
        ),
        (
            lambda: fold(np.zeros((10, 9)), 4, 2),
            ValueError,
            r"dimension 0 to be divisible by the product of kernel_size",
        ),
        (
            lambda: fold(np.zeros((1, 8, 8)), 4, 2),
            ValueError,
            r"output_size=\(4, 4\), kernel_size=\(2, 2\).*sliding blocks 3 \* 3 = 9, but got input of shape \(1, 8, 8\)",
        ),
        (lambda: fold(np.zeros((1, 8, 9)), 1, 2), ValueError, r"do not fit.*is \(0, 0\)"),
        (lambda: fold(np.zeros((1, 8, 9)), (0, 4), 2), ValueError, r"output_size must be positive, got \(0, 4\)"),
        (
            lambda: fold(np.zeros((1, 8, 9)), (4, 4, 4), (2, 2)),
            ValueError,
            r"output_size must be an int or a tuple of 2",
        ),
        (lambda: fold(np.zeros((1, 1, 8, 9)), 4, 2), ValueError, r"input of fold must have 3 dims.*\(1, 1, 8, 9\)"),
        (lambda: fold(np.zeros((1, 8, 9)), 4, 2, stride=0), ValueError, "stride must be positive, got 0"),
        (
            lambda: unfold_backward(np.zeros((1, 8, 8)), unfold_forward(X, 2)[1]),
            ValueError,
            r"grad_output must have the output's shape \(1, 8, 9\), got \(1, 8, 8\)",
        ),
        (lambda: Unfold(0), ValueError, "kernel_size must be positive, got 0"),
        (lambda: Unfold(2, padding=-1), ValueError, "padding must be >= 0"),
        (lambda: Fold((4, 4, 4), (2, 2)), ValueError, r"output_size must be an int or a tuple of 2"),
        (lambda: Fold(0, 2), ValueError, "output_size must be positive, got 0"),
    ],
)
def test_bad_input(call, exc, message):  # type: ignore[no-untyped-def]
    with pytest.raises(exc, match=message):
        call()
