"""Properties that tie the pieces together."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import convpool.functional as F
from convpool import windows
from oracle import assert_close


@st.composite
def geometry(draw, max_nd=3):  # type: ignore[no-untyped-def]
    nd = draw(st.integers(1, max_nd))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    size = tuple(draw(st.integers(d * (k - 1) + 1, d * (k - 1) + 5)) for k, d in zip(kernel, dilation))
    return nd, size, kernel, stride, dilation


@given(geometry(), st.integers(0, 2**16))
def test_scatter_add_is_adjoint_of_window_view(g, seed):  # type: ignore[no-untyped-def]
    nd, size, kernel, stride, dilation = g
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, *size))
    out = tuple((n - d * (k - 1) - 1) // s + 1 for n, k, s, d in zip(size, kernel, stride, dilation))
    view = windows.window_view(x, kernel, stride, dilation, out)
    assert not view.flags.writeable
    gw = rng.standard_normal(view.shape)
    back = windows.scatter_add(gw, x.shape, stride, dilation)
    np.testing.assert_allclose((view * gw).sum(), (x * back).sum(), rtol=1e-10)


@given(geometry(), st.sampled_from([False, True]), st.integers(0, 2**16))
def test_output_shape_is_the_formula(g, ceil, seed):  # type: ignore[no-untyped-def]
    nd, size, kernel, stride, dilation = g
    pads = tuple(min(1, (d * (k - 1) + 1) // 2) for k, d in zip(kernel, dilation))
    x = np.random.default_rng(seed).standard_normal((1, 2, *size))
    y = F.reduce_window(x, "max", kernel, stride, pads, dilation, ceil)
    for i in range(nd):
        span = dilation[i] * (kernel[i] - 1) + 1
        num = size[i] + 2 * pads[i] - span
        o = (num + stride[i] - 1) // stride[i] + 1 if ceil else num // stride[i] + 1
        if ceil and (o - 1) * stride[i] >= size[i] + pads[i]:
            o -= 1
        assert y.shape[2 + i] == o


@given(geometry(), st.integers(0, 2**16))
def test_avg_pool_is_depthwise_conv_with_constant_weights(g, seed):  # type: ignore[no-untyped-def]
    nd, size, kernel, stride, _ = g
    size = tuple(max(s, k) for s, k in zip(size, kernel))
    c = 3
    x = np.random.default_rng(seed).standard_normal((2, c, *size))
    pads = tuple(k // 2 for k in kernel)
    w = np.full((c, 1, *kernel), 1.0 / np.prod(kernel))
    as_conv = F.conv_forward(x, w, None, stride, pads, 1, c, nd=nd)[0]
    as_pool = F.avg_pool_forward(x, nd, kernel, stride, pads, False, True)[0]
    assert_close(as_pool, as_conv, "avg pool vs depthwise conv", rtol=1e-12, atol=1e-12)


@given(geometry(), st.integers(0, 2**16))
def test_conv_is_linear_in_input_and_weight(g, seed):  # type: ignore[no-untyped-def]
    nd, size, kernel, stride, dilation = g
    rng = np.random.default_rng(seed)
    x1, x2 = rng.standard_normal((2, 2, 2, *size))
    w1, w2 = rng.standard_normal((2, 3, 2, *kernel))
    a, b = rng.standard_normal(2)

    def conv(x, w):  # type: ignore[no-untyped-def]
        return F.conv_forward(x, w, None, stride, 1, dilation, nd=nd)[0]

    assert_close(conv(a * x1 + b * x2, w1), a * conv(x1, w1) + b * conv(x2, w1), "linear in x")
    assert_close(conv(x1, a * w1 + b * w2), a * conv(x1, w1) + b * conv(x1, w2), "linear in w")


def test_max_pool_is_not_linear():
    x1 = np.array([[[1.0, -2.0]]])
    x2 = np.array([[[-3.0, 1.0]]])
    lhs = F.max_pool1d(x1 + x2, 2)  # max(-2, -1) = -1
    rhs = F.max_pool1d(x1, 2) + F.max_pool1d(x2, 2)  # 1 + 1 = 2
    assert lhs.item() == -1.0 and rhs.item() == 2.0


@given(st.integers(1, 4), st.integers(1, 3), st.integers(0, 2), st.integers(1, 2), st.integers(0, 2**16))
def test_1d_equals_2d_with_height_one(k, s, p, d, seed):  # type: ignore[no-untyped-def]
    p = min(p, (d * (k - 1) + 1) // 2)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, d * (k - 1) + 1 + int(rng.integers(0, 6))))
    w = rng.standard_normal((4, 3, k))
    x2, w2 = x[:, :, None, :], w[:, :, None, :]
    assert_close(F.conv1d(x, w, None, s, p, d), F.conv2d(x2, w2, None, (1, s), (0, p), (1, d))[:, :, 0], "conv")
    for red in ("max", "min", "median"):
        one = F.reduce_window(x, red, (k,), (s,), (p,), (d,))
        two = F.reduce_window(x2, red, (1, k), (1, s), (0, p), (1, d))[:, :, 0]
        assert_close(one, two, red)
    assert_close(
        F.avg_pool1d(x, k, s, min(p, k // 2)),
        F.avg_pool2d(x2, (1, k), (1, s), (0, min(p, k // 2)))[:, :, 0],
        "avg",
    )


def test_generic_reduce_window_accepts_a_custom_reduction():
    class Range(F.Reduction):
        name = "range"
        pad_value = np.nan

        def forward(self, w, valid):  # type: ignore[no-untyped-def]
            return w.max(-1) - w.min(-1), None

    x = np.arange(16.0).reshape(1, 1, 4, 4)
    y = F.reduce_window(x, Range(), (2, 2), (2, 2))
    assert (y == 5.0).all()  # each 2x2 block spans one row (4) and one column (1)
