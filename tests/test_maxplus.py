"""Max-plus and min-plus convolution on every backend: the loop oracle (values and
tie-aware gradients), numerical gradients, max pooling (convpool's and PyTorch's),
the min/max duality, the modules, and refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import convpool
import convpool.functional as F
from convpool import nn, reference
from convpool.geometry import resolve_padding
from oracle import numerical_grad, tie_free

BACKENDS = convpool.available_backends()
FORWARD = {"max": F.maxplus_conv_forward, "min": F.minplus_conv_forward}
TOL = {np.float32: (2e-5, 2e-5), np.float64: (1e-12, 1e-12)}


@st.composite
def plus_case(draw):  # type: ignore[no-untyped-def]
    nd = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3 if nd < 3 else 2)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    mode = draw(st.sampled_from([None, None, "zeros", "reflect", "replicate", "circular"]))
    kind = draw(st.sampled_from(["int", "tuple", "pairs", "same", "valid"]))
    pairs = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
    padding = {"int": pairs[0][0], "tuple": tuple(p for p, _ in pairs), "pairs": pairs}.get(kind, kind)
    size = []
    for i in range(nd):
        span = dilation[i] * (kernel[i] - 1) + 1
        low = max(span, max(pairs[i]) + 1)  # fits unpadded; reflect needs pad < size
        size.append(draw(st.integers(low, low + (3 if nd < 3 else 1))))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return nd, draw(st.integers(1, 2)), cin, cout, tuple(size), kernel, stride, padding, dilation, groups, mode, dtype


def _pairs(padding, size, kernel, stride, dilation):  # type: ignore[no-untyped-def]
    return resolve_padding(padding, len(size), size, kernel, stride, dilation)


@given(plus_case(), st.sampled_from(["max", "min"]), st.booleans(), st.booleans(), st.integers(0, 2**16))
def test_matches_loop_oracle(case, red, bias, ties, seed):  # type: ignore[no-untyped-def]
    """Values and gradients; with ``ties`` small integers, so that sums tie across taps
    and channels and the first (c, k) in scan order must win."""
    nd, n, cin, cout, size, kernel, stride, padding, dilation, groups, mode, dtype = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin, *size))
    w = rng.standard_normal((cout, cin // groups, *kernel))
    x, w = (np.round(x * 1.5).astype(dtype), np.round(w).astype(dtype)) if ties else (x.astype(dtype), w.astype(dtype))
    b = rng.standard_normal(cout).astype(dtype) if bias else None
    pads = _pairs(padding, size, kernel, stride, dilation)
    args = (stride, pads, dilation, groups, mode)
    try:
        y_ref = reference.maxplus_conv(x, w, b, *args, red)
    except AssertionError:  # a window wholly in the identity padding: every backend refuses it
        for name in BACKENDS:
            with convpool.backend(name), pytest.raises(ValueError, match="entirely in the padding"):
                FORWARD[red](x, w, b, stride, padding, dilation, groups, mode)
        return
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    dx_ref, dw_ref, db_ref = reference.maxplus_conv_grad(x, w, dy, *args, red)
    rtol, atol = TOL[dtype]
    for name in BACKENDS:
        with convpool.backend(name):
            y, ctx = FORWARD[red](x, w, b, stride, padding, dilation, groups, mode)
            dx, dw, db = F.maxplus_conv_backward(dy, ctx)
        assert y.dtype == dtype and dx.dtype == dtype and dw.dtype == dtype
        np.testing.assert_allclose(y, y_ref, rtol=rtol, atol=atol, err_msg=f"{name} forward")
        np.testing.assert_allclose(dx, dx_ref, rtol=rtol, atol=atol, err_msg=f"{name} grad input")
        np.testing.assert_allclose(dw, dw_ref, rtol=rtol, atol=atol, err_msg=f"{name} grad weight")
        if bias:
            np.testing.assert_allclose(db, db_ref, rtol=rtol, atol=atol, err_msg=f"{name} grad bias")
        else:
            assert db is None


GEOMETRIES = [  # (x shape, weight shape, stride, padding, dilation, groups, padding_mode)
    ((2, 3, 6, 5), (4, 3, 3, 2), 1, 1, 1, 1, None),
    ((1, 4, 7, 6), (4, 2, 2, 3), (2, 1), ((1, 0), (2, 1)), (1, 2), 2, None),
    ((2, 2, 9), (3, 2, 3), 2, 2, 1, 1, "zeros"),
    ((1, 2, 4, 5, 4), (2, 1, 2, 2, 2), 1, 1, 1, 2, "reflect"),
    ((2, 3, 5, 5), (3, 1, 3, 3), 1, "same", 1, 3, "circular"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("red", ["max", "min"])
@pytest.mark.parametrize("geom", GEOMETRIES)
def test_numerical_gradients(backend, red, geom):  # type: ignore[no-untyped-def]
    """float64 on tie-free sums: input values 0.1 apart, weights distinct and within
    0.01, so no nudge of 1e-6 changes a winner (nor ties a sum with a padding zero)."""
    xs, ws, stride, padding, dilation, groups, mode = geom
    rng = np.random.default_rng(3)
    x = tie_free(rng, xs)
    w = rng.permutation(int(np.prod(ws))).reshape(ws) * (0.01 / np.prod(ws)) + 0.001
    b = rng.standard_normal(ws[0])
    with convpool.backend(backend):

        def f(x_, w_=w, b_=b):  # type: ignore[no-untyped-def]
            return FORWARD[red](x_, w_, b_, stride, padding, dilation, groups, mode)[0]

        y, ctx = FORWARD[red](x, w, b, stride, padding, dilation, groups, mode)
        dy = rng.standard_normal(y.shape)
        dx, dw, db = F.maxplus_conv_backward(dy, ctx)
        np.testing.assert_allclose(dx, numerical_grad(f, x, dy), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(dw, numerical_grad(lambda w_: f(x, w_), w, dy), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(db, numerical_grad(lambda b_: f(x, w, b_), b, dy), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
@given(
    nd=st.integers(1, 3),
    k=st.integers(1, 3),
    s=st.integers(1, 3),
    d=st.integers(1, 2),
    p=st.integers(0, 1),
    ties=st.booleans(),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
def test_zero_weights_depthwise_is_max_pool(backend, nd, k, s, d, p, ties, dtype, seed):  # type: ignore[no-untyped-def]
    """Depthwise max-plus with zero weights is max pooling (convpool's and PyTorch's),
    values and input gradient, ties included; min-plus is min pooling."""
    p = min(p, (d * (k - 1) + 1) // 2)
    rng = np.random.default_rng(seed)
    size = (d * (k - 1) + 1 + rng.integers(0, 4, nd)).tolist()
    x = rng.standard_normal((2, 3, *size))
    x = (np.round(x * 2) if ties else x).astype(dtype)  # integers: many ties, first in scan order wins
    w = np.zeros((3, 1) + (k,) * nd, dtype=dtype)
    dy = rng.standard_normal((2, 3) + tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n in size)).astype(dtype)
    pool = {1: TF.max_pool1d, 2: TF.max_pool2d, 3: TF.max_pool3d}[nd]
    xt = torch.tensor(x, requires_grad=True)
    yt = pool(xt, k, s, p, d)
    yt.backward(torch.tensor(dy))
    rtol = TOL[dtype][0]
    with convpool.backend(backend):
        for red, sign in (("max", 1), ("min", -1)):
            y, ctx = FORWARD[red](x, w, None, s, p, d, 3)
            dx = F.maxplus_conv_backward(dy, ctx)[0]
            y_pool, pctx = F.reduce_window_forward(x, red, nd, k, s, p, d)
            np.testing.assert_array_equal(y, y_pool)
            np.testing.assert_allclose(dx, F.reduce_window_backward(dy, pctx), rtol=rtol, atol=rtol)
            if red == "max" or not ties:  # PyTorch has no min pool: -max_pool(-x), ties aside
                yt = pool(torch.tensor(sign * x, requires_grad=True), k, s, p, d) * sign
                np.testing.assert_array_equal(y, yt.detach().numpy())
        dx = F.maxplus_conv_backward(dy, FORWARD["max"](x, w, None, s, p, d, 3)[1])[0]
        np.testing.assert_allclose(dx, xt.grad, rtol=rtol, atol=rtol)  # overlapping windows: sums in another order


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", [None, "zeros", "replicate"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_min_plus_is_negated_max_plus(backend, mode, dtype):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    x = np.round(rng.standard_normal((2, 4, 7, 6)) * 3).astype(dtype)  # ties too
    w = np.round(rng.standard_normal((6, 2, 3, 2)) * 2).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    dy = rng.standard_normal((2, 6, 7, 7)).astype(dtype)
    with convpool.backend(backend):
        y, ctx = F.minplus_conv_forward(x, w, b, 1, 1, 1, 2, mode)
        dx, dw, db = F.minplus_conv_backward(dy, ctx)
        y2, ctx2 = F.maxplus_conv_forward(-x, -w, -b, 1, 1, 1, 2, mode)
        dx2, dw2, db2 = F.maxplus_conv_backward(-dy, ctx2)
    np.testing.assert_array_equal(y, -y2)
    np.testing.assert_array_equal(dx, -dx2)
    np.testing.assert_array_equal(dw, -dw2)
    np.testing.assert_array_equal(db, -db2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("cls", "pool", "red"), [(nn.MaxPlusConv2d, nn.MaxPool2d, "max"), (nn.MinPlusConv2d, nn.MinPool2d, "min")]
)
def test_module_at_init_is_pool(backend, cls, pool, red):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(2)
    x = np.round(rng.standard_normal((3, 5, 11, 9)) * 2).astype(np.float32)
    with convpool.backend(backend):
        for kwargs in ({}, {"padding": 1}):
            m, p = cls(5, 5, 3, groups=5, **kwargs), pool(3, stride=1, **kwargs)
            y, y_pool = m(x), p(x)
            np.testing.assert_array_equal(y, y_pool)
            dy = rng.standard_normal(y.shape).astype(np.float32)
            np.testing.assert_array_equal(m.backward(dy), p.backward(dy))
            assert m.weight.grad is not None and m.weight.grad.shape == (5, 1, 3, 3)
            np.testing.assert_allclose(m.weight.grad.sum(), dy.sum(), rtol=1e-5)  # every output has one winner


def _model() -> nn.Sequential:
    return nn.Sequential(
        nn.MaxPlusConv2d(3, 4, 3, padding=1, bias=True), nn.ReLU(), nn.MinPlusConv2d(4, 2, 2, stride=2)
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_modules_in_sequential_and_state_dict(backend):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(4)
    model = _model()
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight"]
    assert not any(v.any() for v in model.state_dict().values())  # flat structuring elements, zero bias
    for p in model.parameters():
        p.data = p.data + rng.standard_normal(p.shape).astype(np.float32)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    with convpool.backend(backend):
        y = model(x)
        assert y.shape == (2, 2, 4, 4) and y.dtype == np.float32
        dy = rng.standard_normal(y.shape).astype(np.float32)
        model.zero_grad()
        assert model.backward(dy).shape == x.shape
        grads = {name: p.grad.copy() for name, p in model.named_parameters() if p.grad is not None}
        assert set(grads) == {"0.weight", "0.bias", "2.weight"}
        model.backward(dy)  # gradients accumulate
        for name, p in model.named_parameters():
            np.testing.assert_allclose(p.grad, 2 * grads[name], rtol=1e-6, err_msg=name)
        model.zero_grad()
        model(x)
        model.backward_params(dy)  # the same parameter gradients, no input gradient
        for name, p in model.named_parameters():
            np.testing.assert_allclose(p.grad, grads[name], rtol=1e-6, err_msg=name)
        fresh = _model()
        fresh.load_state_dict(model.state_dict())
        np.testing.assert_array_equal(fresh(x), y)
    assert "MaxPlusConv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=True)" in repr(model)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_and_inf_follow_max_pooling(backend):  # type: ignore[no-untyped-def]
    """A NaN sum wins (the first in scan order) and propagates; infinities are values."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    x[0, 0, 2, 3], x[0, 1, 2, 2], x[0, 1, 4, 4], x[0, 0, 0, 0] = np.nan, np.nan, np.inf, -np.inf
    w = rng.standard_normal((3, 2, 2, 2)).astype(np.float32)
    w[2, 1, 0, 0] = -np.inf  # inf + -inf: a NaN sum
    dy = rng.standard_normal((1, 3, 7, 7)).astype(np.float32)
    args = ((1, 1), ((1, 1), (1, 1)), (1, 1), 1, None)
    with convpool.backend(backend):
        for red in ("max", "min"):
            y, ctx = FORWARD[red](x, w, None, 1, 1)
            dx, dw, _ = F.maxplus_conv_backward(dy, ctx)
            np.testing.assert_array_equal(y, reference.maxplus_conv(x, w, None, *args, red))
            dx_ref, dw_ref, _ = reference.maxplus_conv_grad(x, w, dy, *args, red)
            np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(dw, dw_ref, rtol=1e-5, atol=1e-6)
            assert np.isnan(y[0, :, 2:4, 3:5]).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_blocks_and_layouts(backend):  # type: ignore[no-untyped-def]
    """Shapes that cross the compiled kernels' blocks (16 positions, 4 output channels),
    several images, groups, a 1-d and a 3-d case, unbatched and empty inputs."""
    rng = np.random.default_rng(6)
    cases = [
        ((3, 10, 13, 11), (14, 5, 3, 2), 1, ((1, 2), (1, 0)), 2),
        ((2, 3, 40), (5, 3, 4), 1, 2, 1),
        ((2, 4, 5, 6, 7), (4, 2, 2, 3, 2), 1, 1, 2),
    ]
    for xs, ws, stride, padding, groups in cases:
        x, w = rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ws).astype(np.float32)
        pads = _pairs(padding, xs[2:], ws[2:], (1,) * len(ws[2:]), (1,) * len(ws[2:]))
        with convpool.backend(backend):
            y, ctx = F.maxplus_conv_forward(x, w, None, stride, padding, 1, groups)
            dy = rng.standard_normal(y.shape).astype(np.float32)
            dx, dw, _ = F.maxplus_conv_backward(dy, ctx)
        ones = (1,) * len(pads)
        np.testing.assert_array_equal(y, reference.maxplus_conv(x, w, None, ones, pads, ones, groups))
        dx_ref, dw_ref, _ = reference.maxplus_conv_grad(x, w, dy, ones, pads, ones, groups)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dw, dw_ref, rtol=1e-5, atol=1e-5)
    with convpool.backend(backend):
        x, w = rng.standard_normal((3, 5, 6)), rng.standard_normal((2, 3, 2, 2))
        y = F.maxplus_conv2d(x, w, padding=1)
        np.testing.assert_array_equal(y, F.maxplus_conv2d(x[None], w, padding=1)[0])
        y, ctx = F.maxplus_conv_forward(np.zeros((0, 3, 5, 6)), w)
        assert y.shape == (0, 2, 4, 5) and F.maxplus_conv_backward(y, ctx)[0].shape == (0, 3, 5, 6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride", [1, 2])
def test_ties_go_to_the_first_entry_in_scan_order(backend, dtype, stride):  # type: ignore[no-untyped-def]
    """Every sum equal: each output's winner is channel 0, tap 0 of its group; with
    integer data, the loop oracle's first (c, k) in scan order."""
    rng = np.random.default_rng(7)
    x, w = np.ones((2, 6, 9, 20), dtype), np.full((8, 3, 2, 3), 2.0, dtype)
    dy = rng.standard_normal((2, 8, (9 - 2) // stride + 1, (20 - 3) // stride + 1)).astype(dtype)
    with convpool.backend(backend):
        for red in ("max", "min"):
            y, ctx = FORWARD[red](x, w, None, stride, 0, 1, 2)
            dx, dw, _ = F.maxplus_conv_backward(dy, ctx)
            assert (y == 3).all()
            expected = np.zeros_like(dw)
            expected[:, 0, 0, 0] = dy.sum(axis=(0, 2, 3))
            np.testing.assert_allclose(dw, expected, rtol=1e-5)
            np.testing.assert_allclose(dx[:, [1, 2, 4, 5]], 0)
            np.testing.assert_allclose(dx[:, [0, 3], ::stride, ::stride][..., : dy.shape[2], : dy.shape[3]],
                                       dy.reshape(2, 2, 4, *dy.shape[2:]).sum(axis=2), rtol=1e-5, atol=1e-6)  # fmt: skip
        x = np.round(rng.standard_normal((2, 6, 9, 20)) * 1.5).astype(dtype)
        w = np.round(rng.standard_normal((8, 3, 2, 3))).astype(dtype)
        args = ((stride,) * 2, ((1, 1), (1, 1)), (1, 1), 2, None)
        for red in ("max", "min"):
            y, ctx = FORWARD[red](x, w, None, stride, 1, 1, 2)
            dy = rng.standard_normal(y.shape).astype(dtype)
            dx, dw, _ = F.maxplus_conv_backward(dy, ctx)
            np.testing.assert_array_equal(y, reference.maxplus_conv(x, w, None, *args, red))
            dx_ref, dw_ref, _ = reference.maxplus_conv_grad(x, w, dy, *args, red)
            np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(dw, dw_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: F.maxplus_conv2d(np.ones((1, 4, 5, 5)), np.ones((2, 4, 3))), "weight"),
        (lambda: F.maxplus_conv2d(np.ones((1, 4, 5, 5)), np.ones((2, 3, 3, 3))), "weight"),
        (lambda: F.minplus_conv2d(np.ones((1, 4, 5, 5)), np.ones((3, 2, 3, 3)), groups=2), "groups"),
        (lambda: F.maxplus_conv2d(np.ones((1, 4, 5, 5)), np.ones((2, 4, 6, 3))), "does not fit"),
        (lambda: F.maxplus_conv1d(np.ones((1, 1, 5)), np.ones((1, 1, 2)), padding=2), "padding"),
        (
            lambda: F.maxplus_conv1d(np.ones((1, 1, 5)), np.ones((1, 1, 2)), padding=5, padding_mode="reflect"),
            "reflect",
        ),
        (lambda: F.maxplus_conv1d(np.ones((1, 1, 5)), np.ones((1, 1, 2)), padding_mode="edge"), "padding_mode"),
        (lambda: F.maxplus_conv1d(np.ones((1, 1, 5)), np.ones((1, 1, 2)), np.ones(2)), "bias"),
        (lambda: nn.MaxPlusConv2d(4, 6, 3, groups=4), "groups"),
        (lambda: nn.MinPlusConv1d(4, 6, 3, padding_mode="edge"), "padding_mode"),
        (lambda: nn.MaxPlusConv3d(4, 6, (3, 3)), "kernel_size"),
    ],
)
def test_bad_input(call, match):  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        call()


def test_backward_checks_the_gradient_shape():  # type: ignore[no-untyped-def]
    y, ctx = F.maxplus_conv_forward(np.ones((1, 2, 5, 5)), np.zeros((2, 2, 3, 3)))
    with pytest.raises(ValueError, match="grad_output"):
        F.maxplus_conv_backward(np.ones((1, 2, 5, 5)), ctx)
    m = nn.MaxPlusConv2d(2, 2, 3)
    with pytest.raises(ValueError, match="before forward"):
        m.backward(np.ones((1, 2, 3, 3)))
