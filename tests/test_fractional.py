"""Fractional max pooling against PyTorch: with the same ``_random_samples``, the same
values, indices and input gradient (2-d and 3-d, batched and unbatched, output_size and
output_ratio, float64 and float32); ties, NaN, the default samples, the modules, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import convpool
from convpool.functional.fractional import (
    fractional_max_pool2d,
    fractional_max_pool3d,
    fractional_max_pool_backward,
    fractional_max_pool_forward,
    generate_intervals,
)
from convpool.nn.fractional import FractionalMaxPool2d, FractionalMaxPool3d
from oracle import check_against_torch

OURS = {2: fractional_max_pool2d, 3: fractional_max_pool3d}
THEIRS = {2: TF.fractional_max_pool2d, 3: TF.fractional_max_pool3d}


@st.composite
def frac_case(draw):  # type: ignore[no-untyped-def]
    nd = draw(st.sampled_from([2, 3]))
    size = tuple(draw(st.integers(2, 9 if nd == 2 else 6)) for _ in range(nd))
    kernel = tuple(draw(st.integers(1, n - 1)) for n in size)
    # PyTorch's 3-d check refuses out + k - 1 == in (its 2-d check allows it): stay below
    out = tuple(draw(st.integers(1, n - k)) for n, k in zip(size, kernel))
    use_ratio = draw(st.booleans())
    ratio = None
    if use_ratio:
        ratio = tuple(draw(st.floats(0.05, 0.95)) for _ in range(nd))
        out = tuple(int(n * r) for n, r in zip(size, ratio))
        assume(all(1 <= o <= n - k for o, n, k in zip(out, size, kernel)))
    batch = draw(st.sampled_from([None, 1, 2]))  # None: unbatched
    channels = draw(st.integers(1, 3))
    return nd, size, kernel, out, ratio, batch, channels


def _inputs(case, seed, dtype=np.float64):  # type: ignore[no-untyped-def]
    nd, size, _, _, _, batch, channels = case
    rng = np.random.default_rng(seed)
    shape = ((batch,) if batch else ()) + (channels, *size)
    x = rng.standard_normal(shape).astype(dtype)
    samples = rng.random((batch or 1, channels, nd)).astype(dtype)
    return x, samples


def _size_args(case):  # type: ignore[no-untyped-def]
    _, _, _, out, ratio, _, _ = case
    return {"output_ratio": ratio} if ratio is not None else {"output_size": out}


@given(frac_case(), st.integers(0, 2**16))
def test_matches_torch_values_indices_and_gradient(case, seed):  # type: ignore[no-untyped-def]
    nd, _, kernel, out, _, _, _ = case
    x, samples = _inputs(case, seed)
    kw = _size_args(case)
    y, idx = OURS[nd](x, kernel, return_indices=True, _random_samples=samples, **kw)
    yt, it = THEIRS[nd](torch.tensor(x), kernel, return_indices=True, _random_samples=torch.tensor(samples), **kw)
    np.testing.assert_array_equal(y, yt.numpy())  # a selection: exactly equal
    np.testing.assert_array_equal(idx, it.numpy())
    assert y.shape[-nd:] == out and idx.dtype == np.int64

    def ours(x):  # type: ignore[no-untyped-def]
        return fractional_max_pool_forward(x, nd, kernel, _random_samples=samples, **kw)

    def theirs(xt):  # type: ignore[no-untyped-def]
        return THEIRS[nd](xt, kernel, _random_samples=torch.tensor(samples), **kw)

    check_against_torch(ours, fractional_max_pool_backward, theirs, [x], seed)


@settings(max_examples=60)
@given(frac_case(), st.integers(0, 2**16))
def test_float32_matches_torch(case, seed):  # type: ignore[no-untyped-def]
    """The intervals are computed in float32 for float32 input, as PyTorch does."""
    nd, _, kernel, _, _, _, _ = case
    x, samples = _inputs(case, seed, np.float32)
    kw = _size_args(case)
    y, ctx = fractional_max_pool_forward(x, nd, kernel, _random_samples=samples, **kw)
    xt = torch.tensor(x, requires_grad=True)
    yt, it = THEIRS[nd](xt, kernel, return_indices=True, _random_samples=torch.tensor(samples), **kw)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(ctx.indices, it.numpy())
    dy = np.random.default_rng(seed).standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.tensor(dy))
    gx = fractional_max_pool_backward(dy, ctx)
    assert gx.dtype == np.float32
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_intervals_worked_example():
    """n=10, o=4, k=2, u=0.5: alpha = 8/3, starts int((i + u) * alpha) - int(u * alpha)."""
    np.testing.assert_array_equal(generate_intervals(np.array([0.5]), 10, 4, 2), [[0, 3, 5, 8]])
    np.testing.assert_array_equal(generate_intervals(np.array([0.0]), 7, 1, 3), [[4]])  # one window: the last


@pytest.mark.parametrize(("dtype", "starts"), [(np.float32, [0, 1, 3, 5]), (np.float64, [0, 2, 3, 5])])
def test_intervals_in_the_input_dtype(dtype, starts):  # type: ignore[no-untyped-def]
    """n=6, k=1, o=4, u=0.8: (1 + u) * 5/3 rounds below 3 in float32 and not in float64;
    PyTorch computes in the input's dtype, and so does convpool."""
    u = np.full((1, 1, 2), 0.8, dtype=dtype)
    np.testing.assert_array_equal(generate_intervals(u[0, :, 0], 6, 4, 1)[0], starts)
    x = np.arange(36, dtype=dtype).reshape(1, 1, 6, 6)
    _, i = fractional_max_pool2d(x, 1, output_size=4, return_indices=True, _random_samples=u)
    _, it = TF.fractional_max_pool2d(
        torch.tensor(x), 1, output_size=4, return_indices=True, _random_samples=torch.tensor(u)
    )
    np.testing.assert_array_equal(i, it.numpy())
    np.testing.assert_array_equal(i[0, 0, 0], starts)


@given(st.integers(2, 40), st.integers(1, 5), st.floats(0, 0.999999), st.integers(0, 2**16))
def test_intervals_increase_by_floor_or_ceil_alpha(n, k, u, seed):  # type: ignore[no-untyped-def]
    assume(k < n)
    o = np.random.default_rng(seed).integers(2, n - k + 2)
    starts = generate_intervals(np.array([u]), n, int(o), k)[0]
    alpha = (n - k) / (o - 1)
    steps = np.diff(starts)
    assert starts[0] == 0 and starts[-1] == n - k
    assert np.all((steps >= np.floor(alpha) - 1e-9) & (steps <= np.ceil(alpha) + 1e-9)), (starts, alpha)


def test_ties_nan_and_inf_follow_torch():
    """Ties: the first maximum; a NaN wins and the last NaN in scan order is the index;
    a window of -inf outputs -inf at its first element (PyTorch's loop)."""
    x = np.array(
        [
            [1.0, np.nan, 3.0, 2.0, 0.0],
            [0.0, 5.0, np.nan, 1.0, 1.0],
            [7.0, 7.0, 7.0, 7.0, 7.0],
            [2.0, 2.0, 2.0, -np.inf, -np.inf],
            [np.nan, 1.0, 1.0, -np.inf, -np.inf],
        ]
    )[None, None]
    for u in (0.0, 0.3, 0.7, 0.99):
        s = np.full((1, 1, 2), u)
        for out in (2, 3, 4):
            y, i = fractional_max_pool2d(x, 2, output_size=out, return_indices=True, _random_samples=s)
            yt, it = TF.fractional_max_pool2d(
                torch.tensor(x), 2, output_size=out, return_indices=True, _random_samples=torch.tensor(s)
            )
            np.testing.assert_array_equal(y, yt.numpy())  # NaN == NaN here
            np.testing.assert_array_equal(i, it.numpy())
    ones = np.ones((2, 3, 6, 6))
    y, i = fractional_max_pool2d(ones, 3, output_size=3, return_indices=True, _random_samples=np.zeros((2, 3, 2)))
    np.testing.assert_array_equal(i[0, 0], [[0, 1, 3], [6, 7, 9], [18, 19, 21]])  # each window's first element


def test_sample_order_is_torch_per_axis():
    """2-d: samples[..., 0] drives W and [..., 1] drives H; 3-d: (D, H, W)."""
    x = np.arange(12 * 12, dtype=np.float64).reshape(1, 1, 12, 12)
    s = np.array([[[0.9, 0.1]]])
    _, i = fractional_max_pool2d(x, 2, output_size=5, return_indices=True, _random_samples=s)
    rows, cols = np.unravel_index(i[0, 0], (12, 12))
    np.testing.assert_array_equal(rows[:, 0] - 1, generate_intervals(np.array([0.1]), 12, 5, 2)[0])
    np.testing.assert_array_equal(cols[0] - 1, generate_intervals(np.array([0.9]), 12, 5, 2)[0])
    x3 = np.arange(9**3, dtype=np.float64).reshape(1, 1, 9, 9, 9)
    s3 = np.array([[[0.1, 0.5, 0.9]]])
    _, i3 = fractional_max_pool3d(x3, 2, output_size=4, return_indices=True, _random_samples=s3)
    d, h, w = np.unravel_index(i3[0, 0], (9, 9, 9))
    for coord, u in ((d[:, 0, 0], 0.1), (h[0, :, 0], 0.5), (w[0, 0, :], 0.9)):
        np.testing.assert_array_equal(coord - 1, generate_intervals(np.array([u]), 9, 4, 2)[0])


def test_default_samples_reproducible_and_a_real_max():
    x = np.random.default_rng(0).standard_normal((2, 3, 11, 9)).astype(np.float32)
    convpool.manual_seed(5)
    y1, i1 = fractional_max_pool2d(x, 2, output_ratio=0.6, return_indices=True)
    convpool.manual_seed(5)
    y2 = fractional_max_pool2d(x, 2, output_ratio=(0.6, 0.6))
    np.testing.assert_array_equal(y1, y2)
    assert y1.shape == (2, 3, 6, 5) and y1.dtype == np.float32
    np.testing.assert_array_equal(
        y1, np.take_along_axis(x.reshape(2, 3, -1), i1.reshape(2, 3, -1), -1).reshape(y1.shape)
    )
    y3 = fractional_max_pool2d(x, 2, output_ratio=0.6)  # fresh draws: other windows
    assert not np.array_equal(y1, y3)


def test_empty_batch_and_larger_sample_batch():
    y = fractional_max_pool2d(np.zeros((0, 2, 5, 5)), 2, output_size=3, _random_samples=np.zeros((0, 2, 2)))
    assert y.shape == (0, 2, 3, 3)
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 7))
    s = np.random.default_rng(2).random((4, 3, 2))  # N larger than the batch: the first rows (PyTorch)
    np.testing.assert_array_equal(
        fractional_max_pool2d(x, 2, output_size=4, _random_samples=s),
        TF.fractional_max_pool2d(torch.tensor(x), 2, output_size=4, _random_samples=torch.tensor(s)).numpy(),
    )


@pytest.mark.parametrize(
    ("nd", "cls", "torch_cls"),
    [(2, FractionalMaxPool2d, torch.nn.FractionalMaxPool2d), (3, FractionalMaxPool3d, torch.nn.FractionalMaxPool3d)],
)
def test_module_matches_torch_module(nd, cls, torch_cls):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(nd)
    x = rng.standard_normal((2, 3) + (8,) * nd)
    s = rng.random((2, 3, nd))
    m = cls(3, output_size=5, return_indices=True, _random_samples=s)
    tm = torch_cls(3, output_size=5, return_indices=True, _random_samples=torch.tensor(s))
    y, idx = m(x)
    xt = torch.tensor(x, requires_grad=True)
    yt, it = tm(xt)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(idx, it.numpy())
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(m.backward(dy), xt.grad.numpy(), rtol=1e-12, atol=0)
    assert list(m.state_dict()) == list(tm.state_dict()) == ["_random_samples"]
    np.testing.assert_array_equal(m.state_dict()["_random_samples"], tm.state_dict()["_random_samples"].numpy())
    assert m.extra_repr() == f"kernel_size={(3,) * nd}, output_size={(5,) * nd}"


def test_module_without_samples_draws_and_has_no_state():
    m = FractionalMaxPool2d((2, 3), output_ratio=(0.5, 0.75))
    assert m.state_dict() == {} and m.parameters() == []
    assert repr(m) == "FractionalMaxPool2d(kernel_size=(2, 3), output_ratio=(0.5, 0.75))"
    x = np.random.default_rng(0).standard_normal((4, 12, 12))  # unbatched
    y = m(x)
    assert y.shape == (4, 6, 9)
    g = m.backward(np.ones_like(y))
    assert g.shape == x.shape and g.sum() == y.size
    with pytest.raises(ValueError, match="backward called before forward"):
        FractionalMaxPool3d(2, output_size=2).backward(np.ones((1, 1, 2, 2, 2)))


X = np.zeros((1, 2, 6, 6))
S = np.zeros((1, 2, 2))


@pytest.mark.parametrize(
    ("call", "exc", "message"),
    [
        (
            lambda: fractional_max_pool2d(X, 2, output_ratio=1.0),
            ValueError,
            r"output_ratio must be between 0 and 1.*1\.0",
        ),
        (lambda: fractional_max_pool2d(X, 2, output_ratio=(0.5, 0.0)), ValueError, r"between 0 and 1.*\(0\.5, 0\.0\)"),
        (lambda: fractional_max_pool2d(X, 2, output_ratio=-0.5), ValueError, "between 0 and 1"),
        (lambda: fractional_max_pool2d(X, 2, output_ratio=float("nan")), ValueError, "between 0 and 1"),
        (lambda: fractional_max_pool2d(X, 2, output_ratio="half"), TypeError, "output_ratio must be a number.*'half'"),
        (lambda: fractional_max_pool2d(X, 2, output_ratio=(0.5, 0.5, 0.5)), TypeError, "tuple of 2 numbers"),
        (lambda: fractional_max_pool2d(X, 2, output_ratio=0.1), ValueError, r"gives output size \(0, 0\)"),
        (lambda: fractional_max_pool2d(X, 2), ValueError, "exactly one of output_size and output_ratio"),
        (lambda: fractional_max_pool2d(X, 2, 3, 0.5), ValueError, "exactly one of.*output_size=3.*output_ratio=0.5"),
        (
            lambda: fractional_max_pool2d(X, 7, output_size=1),
            ValueError,
            r"kernel_size \(7, 7\) is larger than the input",
        ),
        (
            lambda: fractional_max_pool2d(X, 3, output_size=(4, 5)),
            ValueError,
            r"output_size \(4, 5\) is too large.*5 \+ 3 - 1 = 7 > 6",
        ),
        (lambda: fractional_max_pool2d(X, 2, output_size=0), ValueError, "output_size must be positive, got 0"),
        (lambda: fractional_max_pool2d(X, 0, output_size=2), ValueError, "kernel_size must be positive, got 0"),
        (
            lambda: fractional_max_pool2d(X, 2, output_size=2, _random_samples=np.zeros((1, 2, 3))),
            ValueError,
            r"_random_samples must have shape \(N, C, 2\) = \(1, 2, 2\).*got \(1, 2, 3\)",
        ),
        (
            lambda: fractional_max_pool2d(X, 2, output_size=2, _random_samples=np.zeros((1, 3, 2))),
            ValueError,
            r"_random_samples must have shape.*got \(1, 3, 2\)",
        ),
        (
            lambda: fractional_max_pool2d(np.zeros((2, 2, 6, 6)), 2, output_size=2, _random_samples=S),
            ValueError,
            r"\(2, 2, 2\).*got \(1, 2, 2\)",
        ),
        (
            lambda: fractional_max_pool2d(X, 2, output_size=2, _random_samples=np.zeros((2, 2))),
            ValueError,
            "got \\(2, 2\\)",
        ),
        (lambda: fractional_max_pool2d(X, 2, output_size=2, _random_samples=S + 1), ValueError, r"lie in \[0, 1\)"),
        (lambda: fractional_max_pool2d(X, 2, output_size=2, _random_samples=S - 0.1), ValueError, r"\[0, 1\)"),
        (lambda: fractional_max_pool2d(X, 2, output_size=2, _random_samples=S * np.nan), ValueError, r"\[0, 1\)"),
        (
            lambda: fractional_max_pool2d(X, 2, output_size=2, return_indices=1),
            TypeError,
            "return_indices must be a bool",
        ),
        (lambda: fractional_max_pool2d(np.zeros((6, 6)), 2, output_size=2), ValueError, r"must have 4 dims.*\(6, 6\)"),
        (lambda: fractional_max_pool3d(np.zeros((6, 6, 6)), 2, output_size=2), ValueError, "must have 5 dims"),
        (lambda: fractional_max_pool2d(np.zeros((1, 2, 0, 6)), 1, output_size=1), ValueError, "empty spatial dim"),
        (lambda: fractional_max_pool2d(X.astype(int), 2, output_size=2), TypeError, "floating-point"),
        (lambda: FractionalMaxPool2d(2), ValueError, "needs an output_size or an output_ratio"),
        (lambda: FractionalMaxPool2d(2, 3, 0.5), ValueError, "only one of output_size and output_ratio"),
        (lambda: FractionalMaxPool2d(2, output_ratio=2), ValueError, "between 0 and 1"),
        (lambda: FractionalMaxPool3d(2, output_size=(2, 2)), ValueError, "output_size must be an int or a tuple of 3"),
        (lambda: FractionalMaxPool2d(2, 2, _random_samples=np.zeros((1, 1, 3))), ValueError, r"\(N, C, 2\)"),
    ],
)
def test_errors(call, exc, message):  # type: ignore[no-untyped-def]
    with pytest.raises(exc, match=message):
        call()


def test_gradient_shape_checked():
    y, ctx = fractional_max_pool_forward(X, 2, 2, output_size=3, _random_samples=S)
    with pytest.raises(ValueError, match=r"grad_output must have the output's shape \(1, 2, 3, 3\)"):
        fractional_max_pool_backward(np.zeros((1, 2, 3, 4)), ctx)
