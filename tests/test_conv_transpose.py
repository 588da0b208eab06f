"""Transposed convolution against PyTorch: forward, grad input, grad weight, grad bias;
the adjoint property; the modules; every error."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import convpool
from convpool.backends.compiled import kernels as _kernels
from convpool.functional._common import make_geometry
from convpool.functional._conv_transpose_adjoint import conv_input_grad
from convpool.functional.conv import conv_backward, conv_forward
from convpool.functional.conv_transpose import (
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
    conv_transpose_backward,
    conv_transpose_forward,
    conv_transpose_param_backward,
)
from convpool.nn.conv_transpose import ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from oracle import assert_close, check_against_torch

TORCH_CT = {1: TF.conv_transpose1d, 2: TF.conv_transpose2d, 3: TF.conv_transpose3d}
OURS_CT = {1: conv_transpose1d, 2: conv_transpose2d, 3: conv_transpose3d}
MODULES = {1: ConvTranspose1d, 2: ConvTranspose2d, 3: ConvTranspose3d}


def _out_size(n: int, k: int, s: int, p: int, d: int, op: int) -> int:
    return (n - 1) * s - 2 * p + d * (k - 1) + op + 1


@st.composite
def ct_case(draw):  # type: ignore[no-untyped-def]
    nd = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    op = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    size = []
    for k, s, p, d, o in zip(kernel, stride, pads, dilation, op):
        low = max(1, 1 + -(-(2 * p - d * (k - 1) - o) // s))  # the smallest input with out >= 1
        size.append(draw(st.integers(low, low + 3)))
    pad_arg = pads[0] if draw(st.booleans()) and len(set(pads)) == 1 else pads
    n = draw(st.sampled_from([0, 1, 2]))  # 0: unbatched
    bias = draw(st.booleans())
    # give output_size instead of output_padding (reachable when output_padding < stride)
    by_size = draw(st.sampled_from([None, "spatial", "full"])) if all(o < s for o, s in zip(op, stride)) else None
    return nd, n, cin, cout, tuple(size), kernel, stride, pad_arg, pads, op, dilation, groups, bias, by_size


@given(ct_case(), st.integers(0, 2**16))
def test_conv_transpose_matches_torch(case, seed):  # type: ignore[no-untyped-def]
    nd, n, cin, cout, size, kernel, stride, pad_arg, pads, op, dilation, groups, bias, by_size = case
    rng = np.random.default_rng(seed)
    lead = (n, cin) if n else (cin,)
    x = rng.standard_normal((*lead, *size))
    w = rng.standard_normal((cin, cout // groups, *kernel))
    b = rng.standard_normal(cout) if bias else None
    out = tuple(_out_size(*a) for a in zip(size, kernel, stride, pads, dilation, op))
    kw: dict = {"output_padding": op}
    if by_size == "spatial":
        kw = {"output_padding": 0, "output_size": list(out)}
    elif by_size == "full":  # with N, C (C unbatched) leading, as PyTorch's modules accept
        kw = {"output_padding": 0, "output_size": ((n, cout) if n else (cout,)) + out}

    def ours(x, w, b):  # type: ignore[no-untyped-def]
        y, ctx = conv_transpose_forward(x, w, b, stride, pad_arg, groups=groups, dilation=dilation, nd=nd, **kw)
        assert y.shape == (*((n, cout) if n else (cout,)), *out)
        return y, ctx

    def theirs(xt, wt, bt):  # type: ignore[no-untyped-def]
        return TORCH_CT[nd](xt, wt, bt, stride, pad_arg, op, groups, dilation)

    check_against_torch(ours, conv_transpose_backward, theirs, [x, w, b], seed)


@settings(max_examples=60)
@given(ct_case(), st.integers(0, 2**16))
def test_param_backward_is_backward_without_input_grad(case, seed):  # type: ignore[no-untyped-def]
    nd, n, cin, cout, size, kernel, stride, pad_arg, pads, op, dilation, groups, bias, _ = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(((n,) if n else ()) + (cin, *size))
    w = rng.standard_normal((cin, cout // groups, *kernel))
    b = rng.standard_normal(cout) if bias else None
    y, ctx = conv_transpose_forward(x, w, b, stride, pad_arg, op, groups, dilation, nd=nd)
    dy = rng.standard_normal(y.shape)
    _, dw, db = conv_transpose_backward(dy, ctx)
    dw2, db2 = conv_transpose_param_backward(dy, ctx)
    np.testing.assert_array_equal(dw, dw2)
    assert (db is None and db2 is None) or np.array_equal(db, db2)


@given(ct_case(), st.integers(0, 2**16))
def test_adjoint_of_convolution(case, seed):  # type: ignore[no-untyped-def]
    """<conv(x), v> == <x, conv_transpose(v)> with the same weight, stride, padding and
    dilation, output_padding picking x's size back."""
    nd, _, cin, cout, _, kernel, stride, pad_arg, pads, _, dilation, groups, _, _ = case
    rng = np.random.default_rng(seed)
    size = tuple(
        int(rng.integers(max(d * (k - 1) + 1 - 2 * p, 1), d * (k - 1) + 6)) for k, d, p in zip(kernel, dilation, pads)
    )
    x = rng.standard_normal((2, cin, *size))
    w = rng.standard_normal((cout, cin // groups, *kernel))  # the conv's layout: C_out of conv = C_in here
    y = conv_forward(x, w, None, stride, pad_arg, dilation, groups, nd=nd)[0]
    v = rng.standard_normal(y.shape)
    op = tuple((n + 2 * p - d * (k - 1) - 1) % s for n, k, s, p, d in zip(size, kernel, stride, pads, dilation))
    xt = OURS_CT[nd](v, w, None, stride, pad_arg, op, groups, dilation)
    assert xt.shape == x.shape
    assert math.isclose(float(np.sum(y * v)), float(np.sum(x * xt)), rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=150)
@given(ct_case(), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_conv_input_grad_is_conv_backward(case, dtype, seed):  # type: ignore[no-untyped-def]
    """The adjoint on its own (flipped-kernel conv at stride 1, col2im otherwise) gives
    convolution's input gradient."""
    nd, _, cin, cout, _, kernel, stride, _, pads, _, dilation, groups, _, _ = case
    rng = np.random.default_rng(seed)
    size = tuple(
        int(rng.integers(max(d * (k - 1) + 1 - 2 * p, 1), d * (k - 1) + 6)) for k, d, p in zip(kernel, dilation, pads)
    )
    x = rng.standard_normal((2, cin, *size)).astype(dtype)
    w = rng.standard_normal((cout, cin // groups, *kernel)).astype(dtype)
    y, ctx = conv_forward(x, w, None, stride, pads, dilation, groups, nd=nd)
    dy = rng.standard_normal(y.shape).astype(dtype)
    g = make_geometry(size, nd, kernel, stride, pads, dilation)
    gx = conv_input_grad(dy, w, x.shape, g, groups)
    assert gx.dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(gx, conv_backward(dy, ctx)[0], rtol=tol, atol=tol)


def _torch_all(nd, x, w, b, dy, **kw):  # type: ignore[no-untyped-def]
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = TORCH_CT[nd](*ts, **kw)
    y.backward(torch.tensor(dy))
    return [y.detach().numpy()] + [t.grad.numpy() for t in ts]


@pytest.mark.parametrize(
    ("nd", "x_shape", "cout", "kernel", "kw"),
    [
        (2, (3, 8, 7, 6), 4, 4, {"stride": 2, "padding": 1}),  # decoder-style: col2im, images in the columns
        (2, (2, 4, 33, 32), 6, 3, {"stride": 2, "padding": 1}),  # >= 1024 positions: one product per image
        (2, (2, 4, 33, 32), 6, 3, {"stride": 1, "padding": 1}),  # stride 1: a conv with the flipped kernel
        (2, (2, 6, 5, 5), 6, 3, {"stride": 2, "padding": 1, "output_padding": 1, "groups": 6}),  # depthwise
        (2, (2, 8, 5, 6), 4, 1, {}),  # 1x1: one product (the SIMD kernel in float32)
        (1, (2, 4, 9), 4, 1, {"groups": 2, "dilation": 3, "output_padding": 2}),  # 1x1 with room after it
        (3, (2, 4, 3, 4, 3), 2, 3, {"stride": (1, 2, 3), "padding": (0, 1, 2), "dilation": (2, 1, 1)}),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fixed_shapes_against_torch(nd, x_shape, cout, kernel, kw, dtype):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    groups = kw.get("groups", 1)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((x_shape[1], cout // groups) + (kernel,) * nd).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    y, ctx = conv_transpose_forward(x, w, b, nd=nd, **kw)
    dy = rng.standard_normal(y.shape).astype(dtype)
    grads = conv_transpose_backward(dy, ctx)
    assert y.dtype == dtype and all(g.dtype == dtype for g in grads)
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == np.float32 else {}
    for ours, theirs, what in zip((y, *grads), _torch_all(nd, x, w, b, dy, **kw), ("y", "dx", "dw", "db")):
        assert_close(ours, theirs, what, **tol)


@pytest.mark.skipif(not _kernels.enabled(), reason="numba not installed or disabled")
@settings(max_examples=80)
@given(ct_case(), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_compiled_equals_numpy_path(case, dtype, seed):  # type: ignore[no-untyped-def]
    nd, n, cin, cout, size, kernel, stride, pad_arg, pads, op, dilation, groups, bias, _ = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n + 1, cin, *size)).astype(dtype)
    w = rng.standard_normal((cin, cout // groups, *kernel)).astype(dtype)

    def run():  # type: ignore[no-untyped-def]
        y, ctx = conv_transpose_forward(x, w, None, stride, pad_arg, op, groups, dilation, nd=nd)
        return (y, *conv_transpose_backward(np.ones_like(y), ctx)[:2])

    fast = run()
    with convpool.backend("numpy"):
        slow = run()
    tol = 1e-4 if dtype == np.float32 else 1e-11
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "op", "dilation"),
    [
        (2, 1, 1, 1, 1, 2),  # output_padding > padding: dy's last position is cut off for the gradient
        (3, 2, 1, 0, 2, 3),  # output_padding >= stride (allowed by dilation)
        (1, 1, 1, 3, 6, 7),  # no input element reaches the single output: bias only, zero gradients
        (4, 3, 2, 4, 1, 1),  # padding crops most of the output
    ],
)
def test_edge_geometries_against_torch(size, kernel, stride, padding, op, dilation):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, size))
    w = rng.standard_normal((2, 3, kernel))
    b = rng.standard_normal(3)

    def ours(x, w, b):  # type: ignore[no-untyped-def]
        return conv_transpose_forward(x, w, b, stride, padding, op, 1, dilation)

    def theirs(xt, wt, bt):  # type: ignore[no-untyped-def]
        return TF.conv_transpose1d(xt, wt, bt, stride, padding, op, 1, dilation)

    check_against_torch(ours, conv_transpose_backward, theirs, [x, w, b])


def test_empty_batch_and_mixed_dtypes():
    w = np.ones((3, 2, 3, 3), np.float32)
    y, ctx = conv_transpose_forward(np.zeros((0, 3, 4, 4), np.float32), w, np.zeros(2, np.float32), 2, 1)
    assert y.shape == (0, 2, 7, 7)
    dx, dw, db = conv_transpose_backward(np.zeros_like(y), ctx)
    assert dx.shape == (0, 3, 4, 4) and dw.shape == w.shape and not dw.any() and db is not None and not db.any()
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4))  # float64 input, float32 weight
    y, ctx = conv_transpose_forward(x, w, None, 2)
    assert y.dtype == np.float64
    dx, dw, _ = conv_transpose_backward(np.ones_like(y), ctx)
    assert dx.dtype == np.float64 and dw.dtype == np.float32


# -- modules --------------------------------------------------------------------------------------------


def _copy_to_torch(ours, theirs):  # type: ignore[no-untyped-def]
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(torch.tensor(ours.state_dict()[name]))


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("output_size", [None, "spatial", "full"])
def test_module_matches_torch_module(nd, output_size):  # type: ignore[no-untyped-def]
    args = (4, 6, 3)
    kw = {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2, "dilation": 1}
    ours = MODULES[nd](*args, **kw, dtype=np.float64)
    theirs = getattr(torch.nn, f"ConvTranspose{nd}d")(*args, **kw, dtype=torch.float64)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight", "bias"]
    assert ours.weight.shape == tuple(theirs.weight.shape) == (4, 3, *(3,) * nd)
    assert repr(ours) == repr(theirs)
    _copy_to_torch(ours, theirs)
    x = np.random.default_rng(nd).standard_normal((2, 4, *(5,) * nd))
    size = {None: None, "spatial": [10] * nd, "full": [2, 6] + [10] * nd}[output_size]  # 9 by default
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt, output_size=size)
    y = ours(x, output_size=size)
    assert_close(y, yt.detach().numpy(), "forward")
    dy = np.random.default_rng(9).standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    assert_close(ours.backward(dy), xt.grad.numpy(), "grad input")
    assert_close(ours.weight.grad, theirs.weight.grad.numpy(), "grad weight")
    assert_close(ours.bias.grad, theirs.bias.grad.numpy(), "grad bias")


@pytest.mark.parametrize(("cin", "cout", "kernel", "groups"), [(8, 16, 3, 1), (16, 8, (4, 2), 4), (3, 1, 5, 1)])
def test_init_bound_is_pytorch(cin, cout, kernel, groups):  # type: ignore[no-untyped-def]
    convpool.manual_seed(0)
    ours = ConvTranspose2d(cin, cout, kernel, groups=groups)
    theirs = torch.nn.ConvTranspose2d(cin, cout, kernel, groups=groups)
    fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(theirs.weight)
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) and the bias: both 1/sqrt(fan_in)
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    assert fan_in == cout // groups * k[0] * k[1]  # weight.shape[1] * prod(kernel), not C_in
    assert ours.weight.dtype == np.float32 and ours.weight.shape == tuple(theirs.weight.shape)
    for p, t in ((ours.weight.data, theirs.weight), (ours.bias.data, theirs.bias)):
        assert np.abs(p).max() <= bound and np.abs(t.detach().numpy()).max() <= bound
    assert np.abs(ours.weight.data).max() > 0.9 * bound  # uses the whole range
    assert ConvTranspose2d(cin, cout, kernel, groups=groups, bias=False).bias is None


def test_module_accumulates_unbatched_and_param_backward():
    m = ConvTranspose1d(2, 3, 2, stride=2, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((2, 4))  # unbatched (C, L)
    y = m(x)
    assert y.shape == (3, 8)
    gx = m.backward(np.ones_like(y))
    assert gx.shape == x.shape
    w1, b1 = m.weight.grad.copy(), m.bias.grad.copy()
    np.testing.assert_allclose(b1, [8.0, 8.0, 8.0])
    m.backward(np.ones_like(y))
    np.testing.assert_allclose(m.weight.grad, 2 * w1)
    np.testing.assert_allclose(m.bias.grad, 2 * b1)
    m.zero_grad()
    m.backward_params(np.ones_like(y))
    np.testing.assert_allclose(m.weight.grad, w1)
    np.testing.assert_allclose(m.bias.grad, b1)
    assert m(x, output_size=[9]).shape == (3, 9) and m(x, output_size=(3, 9)).shape == (3, 9)


def test_module_float32_matches_torch_and_repr():
    convpool.manual_seed(3)
    ours = ConvTranspose2d(6, 4, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), bias=False)
    theirs = torch.nn.ConvTranspose2d(6, 4, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), bias=False)
    assert (
        repr(ours)
        == repr(theirs)
        == ("ConvTranspose2d(6, 4, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), bias=False)")
    )
    _copy_to_torch(ours, theirs)
    x = np.random.default_rng(0).standard_normal((3, 6, 5, 4)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    y = ours(x)
    assert y.dtype == np.float32
    assert_close(y, yt.detach().numpy(), "forward", rtol=1e-5, atol=1e-5)
    yt.backward(torch.ones_like(yt))
    assert_close(ours.backward(np.ones_like(y)), xt.grad.numpy(), "grad input", rtol=1e-5, atol=1e-5)
    assert_close(ours.weight.grad, theirs.weight.grad.numpy(), "grad weight", rtol=1e-4, atol=1e-4)


# -- errors ---------------------------------------------------------------------------------------------

X = np.zeros((1, 2, 4, 4))
W = np.zeros((2, 3, 3, 3))


@pytest.mark.parametrize(
    ("call", "exc", "message"),
    [
        (
            lambda: conv_transpose2d(X, W, stride=2, output_padding=2),
            ValueError,
            r"output_padding must be smaller than either stride or dilation.*output_padding=\(2, 2\) "
            r"with stride=\(2, 2\) and dilation=\(1, 1\)",
        ),
        (lambda: conv_transpose2d(X, W, output_padding=-1), ValueError, "output_padding must be >= 0, got -1"),
        (
            lambda: conv_transpose2d(X, W, padding=5),
            ValueError,
            r"empty in spatial dim 0: .* = \(4-1\)\*1 - 2\*5 \+ 1\*\(3-1\) \+ 0 \+ 1 = -4 < 1",
        ),
        (
            lambda: conv_transpose_forward(X, W, None, 2, output_size=(12, 10)),
            ValueError,
            r"output_size \(12, 10\) cannot be reached.*spatial size \(4, 4\).*from \(9, 9\) to \(10, 10\)",
        ),
        (
            lambda: conv_transpose_forward(X, W, None, 2, output_size=(1, 10, 10)),
            ValueError,
            r"output_size must have 2 \(spatial\) or 4 elements for a batched 2-d input, got \(1, 10, 10\)",
        ),
        (lambda: conv_transpose_forward(X, W, output_size=9), TypeError, "output_size must be a tuple or list"),
        (lambda: conv_transpose2d(X, np.zeros((2, 3, 3))), ValueError, r"must have 4 dims \(C_in, C_out/groups"),
        (
            lambda: conv_transpose2d(X, np.zeros((3, 3, 3, 3))),
            ValueError,
            r"input has 2 channels but weight of shape \(3, 3, 3, 3\) expects 3 \(weight.shape\[0\]",
        ),
        (lambda: conv_transpose2d(np.zeros((1, 3, 4, 4)), np.zeros((3, 1, 3, 3)), groups=2), ValueError, "groups=2"),
        (lambda: conv_transpose2d(X, W, groups=0), ValueError, "groups must be a positive int, got 0"),
        (
            lambda: conv_transpose2d(X, np.zeros((2, 3, 0, 3))),
            ValueError,
            r"kernel_size .* must be positive, got \(0, 3\)",
        ),
        (lambda: conv_transpose2d(X, W, bias=np.zeros(2)), ValueError, r"bias must have shape \(3,\)"),
        (lambda: conv_transpose2d(X, W, padding="same"), ValueError, r"got 'same' \('same' and 'valid' are not"),
        (lambda: conv_transpose2d(X, W, padding="valid"), ValueError, "got 'valid'"),
        (lambda: conv_transpose2d(X, W, stride=0), ValueError, "stride must be positive, got 0"),
        (lambda: conv_transpose2d(X.astype(np.int64), W), TypeError, "floating-point array.*int64"),
        (lambda: conv_transpose2d(np.zeros((4, 4)), W), ValueError, r"must have 4 dims.*got shape \(4, 4\)"),
        (lambda: conv_transpose2d(np.zeros((1, 2, 0, 4)), W), ValueError, "empty spatial dim 0"),
        (lambda: ConvTranspose2d(2, 3, 3, padding_mode="reflect"), ValueError, "must be 'zeros'.*got 'reflect'"),
        (lambda: ConvTranspose2d(2, 3, 3, padding="same"), ValueError, "got 'same'"),
        (lambda: ConvTranspose2d(2, 3, 3, stride=2, output_padding=2), ValueError, "output_padding must be smaller"),
        (lambda: ConvTranspose2d(3, 4, 3, groups=2), ValueError, "groups=2 must divide"),
        (lambda: ConvTranspose2d(0, 4, 3), ValueError, "in_channels must be a positive int, got 0"),
        (lambda: ConvTranspose2d(2, 4, 3, dtype=np.int32), TypeError, "dtype must be a floating-point type"),
        (lambda: ConvTranspose2d(2, 4, 3)(np.zeros((1, 3, 5, 5), np.float32)), ValueError, "input has 3 channels"),
        (
            lambda: ConvTranspose2d(2, 4, 3, stride=2)(np.zeros((1, 2, 4, 4), np.float32), output_size=[8, 8]),
            ValueError,
            r"output_size \(8, 8\) cannot be reached.*from \(9, 9\) to \(10, 10\)",
        ),
    ],
)
def test_bad_input_message(call, exc, message):  # type: ignore[no-untyped-def]
    with pytest.raises(exc, match=message):
        call()


def test_backward_errors():
    m = ConvTranspose2d(2, 3, 3)
    with pytest.raises(ValueError, match="backward called before forward"):
        m.backward(np.zeros((1, 3, 6, 6)))
    m(np.zeros((1, 2, 4, 4), np.float32))
    with pytest.raises(
        ValueError, match=r"grad_output must have the output's shape \(1, 3, 6, 6\), got \(1, 3, 4, 4\)"
    ):
        m.backward(np.zeros((1, 3, 4, 4)))
