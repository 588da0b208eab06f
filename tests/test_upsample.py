"""interpolate / Upsample and pixel (un)shuffle against PyTorch (forward and input
gradient, every mode, align_corners both ways, size and scale_factor, 1-d to 3-d), the
two window-terms facts of the module doc, the modules and the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from convpool import config
from convpool.functional.pool import avg_pool1d, avg_pool2d, avg_pool3d
from convpool.functional.shuffle import (
    pixel_shuffle,
    pixel_shuffle_backward,
    pixel_shuffle_forward,
    pixel_unshuffle,
    pixel_unshuffle_backward,
    pixel_unshuffle_forward,
)
from convpool.functional.upsample import interpolate, interpolate_backward, interpolate_forward, nearest_index
from convpool.nn.upsample import PixelShuffle, PixelUnshuffle, Upsample, UpsamplingBilinear2d, UpsamplingNearest2d
from oracle import assert_close

LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}
AVG_POOL = {1: avg_pool1d, 2: avg_pool2d, 3: avg_pool3d}
# awkward factors included: 1.1 and 2.1 give o == n and o == 2n on some sizes
FACTORS = [0.5, 0.75, 1.0, 1.1, 4 / 3, 1.5, 2.0, 2.1, 2.5, 3.0, 1 / 3]


@st.composite
def interp_case(draw):  # type: ignore[no-untyped-def]
    nd = draw(st.integers(1, 3))
    mode = draw(st.sampled_from(["nearest", "nearest-exact", LINEAR[nd], "area"]))
    size = tuple(draw(st.integers(1, 7 if nd < 3 else 4)) for _ in range(nd))
    kw: dict = {}
    if mode == LINEAR[nd]:
        kw["align_corners"] = draw(st.sampled_from([None, False, True]))
    how = draw(st.sampled_from(["size", "size_int", "scale", "scale_tuple"]))
    if how == "size":
        kw["size"] = tuple(draw(st.integers(1, 11 if nd < 3 else 6)) for _ in range(nd))
    elif how == "size_int":
        kw["size"] = draw(st.integers(1, 11 if nd < 3 else 6))
    else:
        factor = st.sampled_from(FACTORS) | st.floats(0.3, 3.0)
        kw["scale_factor"] = tuple(draw(factor) for _ in range(nd)) if how == "scale_tuple" else draw(factor)
        kw["recompute_scale_factor"] = draw(st.sampled_from([None, False, True]))
        factors = kw["scale_factor"] if how == "scale_tuple" else (kw["scale_factor"],) * nd
        assume(all(int(n * f) >= 1 for n, f in zip(size, factors)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *size)
    return nd, mode, shape, kw


def _torch_grad_is_the_adjoint(nd, mode, in_size, out, kw):  # type: ignore[no-untyped-def]
    """PyTorch's nearest backward uses the legacy index rule; where its forward took the
    generic one (1-d, 3-d) and the two disagree, its gradient is not its forward's."""
    if not mode.startswith("nearest") or nd == 2:
        return True
    factors = kw.get("scale_factor")
    if factors is None or kw.get("recompute_scale_factor"):
        scales = (None,) * nd
    else:
        scales = tuple(factors) if isinstance(factors, tuple) else (factors,) * nd
    exact = mode == "nearest-exact"
    return all(
        np.array_equal(
            nearest_index(n, o, s, exact, True, np.dtype(np.float64)),
            nearest_index(n, o, s, exact, False, np.dtype(np.float64)),
        )
        for n, o, s in zip(in_size, out, scales)
    )


@given(interp_case(), st.integers(0, 2**16))
def test_interpolate_matches_torch(case, seed):  # type: ignore[no-untyped-def]
    nd, mode, shape, kw = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    y, ctx = interpolate_forward(x, mode=mode, **kw)
    xt = torch.tensor(x, requires_grad=True)
    yt = TF.interpolate(xt, mode=mode, **kw)
    if mode.startswith("nearest"):
        np.testing.assert_array_equal(y, yt.detach().numpy())  # the same indices: exactly equal
    else:
        assert_close(y, yt.detach().numpy(), "forward")
    dy = rng.standard_normal(y.shape)
    gx = interpolate_backward(dy, ctx)
    assert gx.shape == x.shape and gx.dtype == np.float64
    # the backward pass is the forward pass's transpose: <y, dy> == <x, gx>
    np.testing.assert_allclose(np.vdot(y, dy), np.vdot(x, gx), rtol=1e-10, atol=1e-10)
    if _torch_grad_is_the_adjoint(nd, mode, shape[2:], y.shape[2:], kw):
        yt.backward(torch.tensor(dy))
        assert_close(gx, xt.grad.numpy(), "gradient")


@settings(max_examples=80)
@given(interp_case(), st.integers(0, 2**16))
def test_interpolate_float32(case, seed):  # type: ignore[no-untyped-def]
    """float32: the weights are computed in float32, as PyTorch; the values agree to rounding."""
    nd, mode, shape, kw = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    y, ctx = interpolate_forward(x, mode=mode, **kw)
    xt = torch.tensor(x, requires_grad=True)
    yt = TF.interpolate(xt, mode=mode, **kw)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    gx = interpolate_backward(dy, ctx)
    assert gx.dtype == np.float32
    if _torch_grad_is_the_adjoint(nd, mode, shape[2:], y.shape[2:], kw):
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("shape", "kw"),
    [
        ((1, 2, 70, 70), {"scale_factor": 1.1}),  # oH + oW > 128: PyTorch's generic kernel
        ((1, 2, 70, 60), {"scale_factor": (1.01, 2.0)}),
        ((1, 2, 40, 40), {"scale_factor": 1.1}),  # <= 128: the legacy rule, o == n copies
        ((2, 3, 30), {"size": 86}),  # rounding: 43 * 30/86 is 15 exactly
        ((1, 1, 3, 4, 5), {"scale_factor": (1.1, 2.1, 0.7)}),
        ((1, 5, 1, 1), {"size": (200, 3)}),
    ],
)
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nearest_indices_on_both_torch_paths(shape, kw, mode, dtype):  # type: ignore[no-untyped-def]
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    np.testing.assert_array_equal(
        interpolate(x, mode=mode, **kw), TF.interpolate(torch.tensor(x), mode=mode, **kw).numpy()
    )


def test_nearest_scale_1_1_documented_example():
    """scale_factor=1.1 on 5 pixels: a copy on PyTorch's 2-d path, [0, 0, 1, 2, 3] in 1-d."""
    x = np.arange(5.0)
    np.testing.assert_array_equal(interpolate(x[None, None], scale_factor=1.1)[0, 0], [0, 0, 1, 2, 3])
    np.testing.assert_array_equal(interpolate(x[None, None, None], scale_factor=1.1)[0, 0, 0], x)
    np.testing.assert_array_equal(interpolate(x[None, None], size=5)[0, 0], x)
    # the gradient is the transpose of the forward pass (PyTorch's 1-d gradient here is the identity)
    y, ctx = interpolate_forward(x[None, None], scale_factor=1.1)
    np.testing.assert_array_equal(interpolate_backward(np.ones_like(y), ctx)[0, 0], [2, 1, 1, 1, 0])


def test_linear_worked_example_and_nan():
    """2 -> 4 samples, align_corners=False: src = (dst + 0.5) / 2 - 0.5 = -0.25 (clamped), 0.25, 0.75, 1.25."""
    y = interpolate(np.array([[[0.0, 4.0]]]), size=4, mode="linear")
    np.testing.assert_allclose(y[0, 0], [0.0, 1.0, 3.0, 4.0])
    y = interpolate(np.array([[[0.0, 4.0]]]), size=4, mode="linear", align_corners=True)
    np.testing.assert_allclose(y[0, 0], [0.0, 4 / 3, 8 / 3, 4.0])
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 6))
    x[0, 1, 2, 3] = np.nan
    x[0, 0, 4, 5] = np.inf
    for kw in ({"scale_factor": 2}, {"size": (3, 4)}, {"size": (7, 9), "align_corners": True}):
        y = interpolate(x, mode="bilinear", **kw)
        assert_close(y, TF.interpolate(torch.tensor(x), mode="bilinear", **kw).numpy(), "nan/inf")


@pytest.mark.parametrize(
    ("shape", "mode", "kw"),
    [
        ((2, 4, 48, 48), "bilinear", {"scale_factor": 2}),
        ((2, 4, 48, 48), "bilinear", {"size": (31, 70), "align_corners": True}),
        ((2, 3, 3000), "linear", {"scale_factor": 0.7}),
        ((1, 3, 12, 24, 24), "trilinear", {"size": (20, 13, 48)}),
        ((2, 4, 48, 48), "nearest", {"scale_factor": (2, 0.5)}),
        ((1, 3, 12, 24, 24), "nearest-exact", {"scale_factor": 1.5}),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_arrays_both_backends(shape, mode, kw, dtype):  # type: ignore[no-untyped-def]
    """Arrays large enough for the compiled kernels (when that backend is on): against
    PyTorch, and the same as the NumPy path."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    y, ctx = interpolate_forward(x, mode=mode, **kw)
    xt = torch.tensor(x, requires_grad=True)
    yt = TF.interpolate(xt, mode=mode, **kw)
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    gx = interpolate_backward(dy, ctx)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-10}
    np.testing.assert_allclose(y, yt.detach().numpy(), **tol)
    np.testing.assert_allclose(gx, xt.grad.numpy(), **tol)
    with config.backend("numpy"):
        y_np, ctx_np = interpolate_forward(x, mode=mode, **kw)
        gx_np = interpolate_backward(dy, ctx_np)
    np.testing.assert_array_equal(y, y_np)  # the same products in the same order
    np.testing.assert_allclose(gx, gx_np, **tol)  # the scatter may add in another order


def test_empty_batch_and_channels():
    assert interpolate(np.zeros((0, 2, 5)), size=3, mode="linear").shape == (0, 2, 3)
    y, ctx = interpolate_forward(np.zeros((1, 0, 4, 4)), scale_factor=2, mode="bilinear")
    assert y.shape == (1, 0, 8, 8) and interpolate_backward(y, ctx).shape == (1, 0, 4, 4)


# --- upsampling in window terms --------------------------------------------------------


@given(st.integers(1, 3), st.integers(1, 3), st.booleans(), st.integers(0, 2**16))
def test_nearest_upsampling_is_the_adjoint_of_sum_pooling(nd, k, by_size, seed):  # type: ignore[no-untyped-def]
    """<upsample_nearest(x, k), y> == <x, sum_pool(y, k)>, sum_pool = avg_pool * k**d."""
    rng = np.random.default_rng(seed)
    size = tuple(int(v) for v in rng.integers(1, 5, nd))
    x = rng.standard_normal((2, 3, *size))
    y = rng.standard_normal((2, 3, *(k * n for n in size)))
    up = interpolate(x, size=tuple(k * n for n in size)) if by_size else interpolate(x, scale_factor=k)
    sum_pool = AVG_POOL[nd](y, k) * k**nd
    np.testing.assert_allclose(np.vdot(up, y), np.vdot(x, sum_pool), rtol=1e-12)
    # and the backward pass of nearest upsampling is that sum pooling
    _, ctx = interpolate_forward(x, scale_factor=k)
    np.testing.assert_allclose(interpolate_backward(y, ctx), sum_pool, rtol=1e-12, atol=1e-12)


def _conv_transpose2d_loop(x: np.ndarray, kernel: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Depthwise transposed convolution, one kernel for every channel, by its definition:
    each input pixel adds ``value * kernel`` at ``stride * position``; crop ``padding``."""
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    full = np.zeros((n, c, (h - 1) * stride + kh, (w - 1) * stride + kw))
    for i in range(h):
        for j in range(w):
            full[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw] += x[:, :, i, j, None, None] * kernel
    return full[:, :, padding : full.shape[2] - padding, padding : full.shape[3] - padding]


@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**16))
def test_nearest_upsampling_is_a_transposed_conv_with_ones(k, h, w, seed):  # type: ignore[no-untyped-def]
    x = np.random.default_rng(seed).standard_normal((2, 3, h, w))
    expected = _conv_transpose2d_loop(x, np.ones((k, k)), stride=k, padding=0)
    np.testing.assert_allclose(interpolate(x, scale_factor=k), expected, rtol=1e-12, atol=1e-12)


BILINEAR_X2 = np.outer([1.0, 3.0, 3.0, 1.0], [1.0, 3.0, 3.0, 1.0]) / 16


@given(st.integers(1, 7), st.integers(1, 7), st.integers(0, 2**16))
def test_bilinear_x2_is_a_fixed_transposed_conv(h, w, seed):  # type: ignore[no-untyped-def]
    """Bilinear x2 (align_corners=False) = transposed conv with outer([1,3,3,1]/4)^2, stride 2,
    padding 3, of the input replicate-padded by 1."""
    x = np.random.default_rng(seed).standard_normal((2, 3, h, w))
    up = interpolate(x, scale_factor=2, mode="bilinear")
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    np.testing.assert_allclose(up, _conv_transpose2d_loop(padded, BILINEAR_X2, 2, 3), rtol=1e-12, atol=1e-12)
    # PyTorch's transposed conv says the same
    weight = torch.tensor(np.broadcast_to(BILINEAR_X2, (3, 1, 4, 4)).copy())
    theirs = TF.conv_transpose2d(torch.tensor(padded), weight, stride=2, padding=3, groups=3).numpy()
    np.testing.assert_allclose(up, theirs, rtol=1e-12, atol=1e-12)
    # padding 1 on the unpadded input: the same interior, a different border
    interior = _conv_transpose2d_loop(x, BILINEAR_X2, 2, 1)[:, :, 1:-1, 1:-1]
    np.testing.assert_allclose(up[:, :, 1:-1, 1:-1], interior, rtol=1e-12, atol=1e-12)


def test_bilinear_x2_with_convpool_conv_transpose():
    conv_transpose = pytest.importorskip("convpool.functional.conv_transpose")
    x = np.random.default_rng(3).standard_normal((2, 3, 5, 4))
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    weight = np.broadcast_to(BILINEAR_X2, (3, 1, 4, 4)).copy()
    y = conv_transpose.conv_transpose2d(padded, weight, stride=2, padding=3, groups=3)
    np.testing.assert_allclose(interpolate(x, scale_factor=2, mode="bilinear"), y, rtol=1e-12, atol=1e-12)


# --- pixel shuffle ---------------------------------------------------------------------


@given(
    st.lists(st.integers(1, 2), max_size=2),
    st.integers(1, 3),
    st.integers(1, 2),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(0, 2**16),
)
def test_pixel_shuffle_and_unshuffle_match_torch(lead, r, c, h, w, seed):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    for ours, backward, theirs, shape in (
        (pixel_shuffle_forward, pixel_shuffle_backward, TF.pixel_shuffle, (*lead, c * r * r, h, w)),
        (pixel_unshuffle_forward, pixel_unshuffle_backward, TF.pixel_unshuffle, (*lead, c, h * r, w * r)),
    ):
        x = rng.standard_normal(shape)
        y, ctx = ours(x, r)
        xt = torch.tensor(x, requires_grad=True)
        yt = theirs(xt, r)
        np.testing.assert_array_equal(y, yt.detach().numpy())
        dy = rng.standard_normal(y.shape)
        yt.backward(torch.tensor(dy))
        np.testing.assert_array_equal(backward(dy, ctx), xt.grad.numpy())
        assert y.flags.c_contiguous
    x = rng.standard_normal((*lead, c * r * r, h, w))
    np.testing.assert_array_equal(pixel_unshuffle(pixel_shuffle(x, r), r), x)


def test_pixel_shuffle_empty_leading_dim():
    """An empty batch (PyTorch's backward fails on it; its forward agrees)."""
    x = np.zeros((0, 8, 2, 3))
    y, ctx = pixel_shuffle_forward(x, 2)
    assert y.shape == TF.pixel_shuffle(torch.tensor(x), 2).shape == (0, 2, 4, 6)
    assert pixel_shuffle_backward(y, ctx).shape == x.shape


def test_pixel_shuffle_worked_example():
    """Channel c*r*r + i*r + j fills pixel (i, j) of each r x r block."""
    x = np.arange(4.0).reshape(1, 4, 1, 1)
    np.testing.assert_array_equal(pixel_shuffle(x, 2)[0, 0], [[0, 1], [2, 3]])


# --- modules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"scale_factor": 2},
        {"scale_factor": (2, 1.5), "mode": "bilinear", "align_corners": True},
        {"size": (3, 7), "mode": "bilinear"},
        {"size": 5, "mode": "nearest-exact"},
        {"scale_factor": 0.5, "mode": "area"},
        {"scale_factor": 1.7, "mode": "bilinear", "recompute_scale_factor": True},
    ],
)
def test_upsample_module_matches_torch(kw):  # type: ignore[no-untyped-def]
    m, tm = Upsample(**kw), torch.nn.Upsample(**kw)
    assert repr(m) == repr(tm)
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 5))
    xt = torch.tensor(x, requires_grad=True)
    y, yt = m(x), tm(xt)
    assert_close(y, yt.detach().numpy(), "forward")
    dy = np.random.default_rng(1).standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    assert_close(m.backward(dy), xt.grad.numpy(), "gradient")
    assert m.state_dict() == {} and m.parameters() == []


@pytest.mark.parametrize(
    ("cls", "torch_cls"),
    [(UpsamplingNearest2d, torch.nn.UpsamplingNearest2d), (UpsamplingBilinear2d, torch.nn.UpsamplingBilinear2d)],
)
def test_upsampling_2d_aliases(cls, torch_cls):  # type: ignore[no-untyped-def]
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 3))
    for kw in ({"scale_factor": 2}, {"size": (5, 7)}):
        m, tm = cls(**kw), torch_cls(**kw)
        assert repr(m) == repr(tm)
        assert_close(m(x), tm(torch.tensor(x)).numpy(), "forward")


def test_pixel_shuffle_modules():
    m, u = PixelShuffle(2), PixelUnshuffle(2)
    assert repr(m) == repr(torch.nn.PixelShuffle(2)) and repr(u) == repr(torch.nn.PixelUnshuffle(2))
    x = np.random.default_rng(0).standard_normal((2, 8, 3, 3))
    y = m(x)
    np.testing.assert_array_equal(y, TF.pixel_shuffle(torch.tensor(x), 2).numpy())
    np.testing.assert_array_equal(m.backward(y), x)
    np.testing.assert_array_equal(u(y), x)
    np.testing.assert_array_equal(u.backward(x), y)
    with pytest.raises(ValueError, match="backward called before forward"):
        PixelShuffle(3).backward(x)


# --- errors ----------------------------------------------------------------------------

X3, X4 = np.zeros((1, 2, 5)), np.zeros((1, 2, 4, 4))


@pytest.mark.parametrize(
    ("call", "exc", "message"),
    [
        (lambda: interpolate(X3), ValueError, "exactly one of size and scale_factor, got size=None"),
        (lambda: interpolate(X3, 3, 2.0), ValueError, "exactly one of size and scale_factor"),
        (lambda: interpolate(X3, 3, align_corners=False), ValueError, "align_corners can only be set.*'nearest'"),
        (lambda: interpolate(X3, 3, mode="area", align_corners=True), ValueError, "align_corners can only be set"),
        (lambda: interpolate(X3, 3, mode="linear", align_corners=1), TypeError, "align_corners must be a bool"),
        (lambda: interpolate(X3, 3, mode="bilinear"), ValueError, r"mode='bilinear' needs 4-d input.*\(1, 2, 5\)"),
        (lambda: interpolate(X4, 3, mode="linear"), ValueError, r"mode='linear' needs 3-d input"),
        (lambda: interpolate(X4, 3, mode="trilinear"), ValueError, r"mode='trilinear' needs 5-d input"),
        (lambda: interpolate(X3, 3, mode="bicubic"), ValueError, r"mode must be one of .*'bicubic'"),
        (lambda: interpolate(X3, 0), ValueError, "size must be positive, got 0"),
        (lambda: interpolate(X4, (3, -1)), ValueError, r"size must be positive, got \(3, -1\)"),
        (lambda: interpolate(X4, (3, 3, 3)), ValueError, r"size must be an int or 2 ints.*\(3, 3, 3\)"),
        (lambda: interpolate(X3, 3.0), TypeError, "size must be an int or a tuple"),
        (lambda: interpolate(X3, scale_factor=0.0), ValueError, "scale_factor must be positive and finite, got 0.0"),
        (lambda: interpolate(X3, scale_factor=-2), ValueError, "scale_factor must be positive and finite, got -2"),
        (lambda: interpolate(X3, scale_factor=float("inf")), ValueError, "positive and finite"),
        (lambda: interpolate(X3, scale_factor=float("nan")), ValueError, "positive and finite"),
        (
            lambda: interpolate(X3, scale_factor=0.1),
            ValueError,
            r"gives output size \(0,\) for input spatial size \(5,\)",
        ),
        (lambda: interpolate(X4, scale_factor=(2, 2, 2)), TypeError, "scale_factor must be a number or 2 numbers"),
        (lambda: interpolate(X3, scale_factor="2"), TypeError, "scale_factor must be a number"),
        (
            lambda: interpolate(X3, 3, recompute_scale_factor=True),
            ValueError,
            "recompute_scale_factor=True is not meaningful",
        ),
        (
            lambda: interpolate(X3, scale_factor=2, recompute_scale_factor=1),
            TypeError,
            "recompute_scale_factor must be a bool",
        ),
        (lambda: interpolate(X4, 3, mode="bilinear", antialias=True), ValueError, "antialias=True is not implemented"),
        (lambda: interpolate(np.zeros((2, 5)), 3), ValueError, r"must be \(N, C, W\).*got shape \(2, 5\)"),
        (lambda: interpolate(np.zeros((1, 1, 1, 1, 1, 2)), 3), ValueError, "got shape"),
        (lambda: interpolate(np.zeros((1, 2, 0)), 3), ValueError, "empty spatial dim"),
        (lambda: interpolate(X3.astype(np.int32), 3), TypeError, "floating-point"),
        (lambda: Upsample(), ValueError, "exactly one of size and scale_factor"),
        (lambda: Upsample(3, mode="linear-ish"), ValueError, "mode must be one of"),
        (lambda: Upsample(3, align_corners=True), ValueError, "align_corners can only be set"),
        (lambda: Upsample(3, recompute_scale_factor=True), ValueError, "not meaningful with an explicit size"),
        (lambda: Upsample(scale_factor="x"), TypeError, "scale_factor must be a number"),
        (lambda: Upsample(scale_factor=2, mode="bilinear")(X3), ValueError, "needs 4-d input"),
        (lambda: pixel_shuffle(np.zeros((1, 3, 2, 2)), 2), ValueError, r"divisible by upscale_factor\*\*2 = 4, got 3"),
        (lambda: pixel_shuffle(np.zeros((4, 2)), 2), ValueError, r"at least 3 dims.*\(4, 2\)"),
        (lambda: pixel_shuffle(np.zeros((1, 4, 2, 2)), 0), ValueError, "upscale_factor must be a positive int, got 0"),
        (lambda: pixel_shuffle(np.zeros((1, 4, 2, 2)), 2.0), TypeError, "upscale_factor must be a positive int"),
        (
            lambda: pixel_unshuffle(np.zeros((1, 1, 3, 4)), 2),
            ValueError,
            r"divisible by downscale_factor = 2.*\(3, 4\)",
        ),
        (lambda: pixel_unshuffle(np.zeros((1, 1, 4, 4)), -1), ValueError, "downscale_factor must be a positive int"),
        (lambda: PixelShuffle(0), ValueError, "upscale_factor must be a positive int, got 0"),
        (lambda: PixelUnshuffle(1.5), ValueError, "downscale_factor must be a positive int, got 1.5"),
    ],
)
def test_errors(call, exc, message):  # type: ignore[no-untyped-def]
    with pytest.raises(exc, match=message):
        call()


def test_gradient_shape_checked():
    _, ctx = interpolate_forward(X4, scale_factor=2, mode="bilinear")
    with pytest.raises(ValueError, match=r"grad_output must have the output's shape \(1, 2, 8, 8\)"):
        interpolate_backward(np.zeros((1, 2, 8, 7)), ctx)
    _, sctx = pixel_shuffle_forward(np.zeros((1, 4, 2, 2)), 2)
    with pytest.raises(ValueError, match=r"output's shape \(1, 1, 4, 4\)"):
        pixel_shuffle_backward(np.zeros((1, 4, 2, 2)), sctx)
