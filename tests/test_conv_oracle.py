"""Convolution against PyTorch: forward, grad input, grad weight, grad bias (float64)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import convpool.functional as F
from convpool.geometry import same_padding
from oracle import check_against_torch

TORCH_CONV = {1: TF.conv1d, 2: TF.conv2d, 3: TF.conv3d}
TORCH_MODE = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}


@st.composite
def conv_case(draw):  # type: ignore[no-untyped-def]
    nd = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
    padding = draw(st.sampled_from(["int", "tuple", "same", "valid"]))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    if padding == "same":
        stride = (1,) * nd
    pads = (draw(st.integers(0, 2)),) * nd if padding == "int" else tuple(draw(st.integers(0, 2)) for _ in range(nd))
    size = []
    for i in range(nd):
        span = dilation[i] * (kernel[i] - 1) + 1
        low = max(span - (0 if padding in ("same", "valid") else 2 * pads[i]), pads[i] + 1, 1)
        size.append(draw(st.integers(low, low + 4)))
    pad_arg = {"int": pads[0], "tuple": pads, "same": "same", "valid": "valid"}[padding]
    n = draw(st.integers(1, 2))
    bias = draw(st.booleans())
    return nd, n, cin, cout, tuple(size), kernel, stride, pad_arg, dilation, groups, mode, bias


@given(conv_case(), st.integers(0, 2**16))
def test_conv_matches_torch(case, seed):  # type: ignore[no-untyped-def]
    nd, n, cin, cout, size, kernel, stride, pad_arg, dilation, groups, mode, bias = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin, *size))
    w = rng.standard_normal((cout, cin // groups, *kernel))
    b = rng.standard_normal(cout) if bias else None

    def ours(x, w, b):  # type: ignore[no-untyped-def]
        return F.conv_forward(x, w, b, stride, pad_arg, dilation, groups, mode, nd=nd)

    def theirs(xt, wt, bt):  # type: ignore[no-untyped-def]
        if mode == "zeros":
            return TORCH_CONV[nd](xt, wt, bt, stride, pad_arg, dilation, groups)
        if pad_arg == "valid":
            pairs = ((0, 0),) * nd
        elif pad_arg == "same":
            pairs = same_padding(size, kernel, stride, dilation)
        else:
            p = (pad_arg,) * nd if isinstance(pad_arg, int) else pad_arg
            pairs = tuple((v, v) for v in p)
        flat = [v for pair in reversed(pairs) for v in pair]
        return TORCH_CONV[nd](TF.pad(xt, flat, mode=TORCH_MODE[mode]), wt, bt, stride, 0, dilation, groups)

    check_against_torch(ours, lambda dy, ctx: F.conv_backward(dy, ctx), theirs, [x, w, b], seed)


@given(st.integers(1, 3), st.integers(2, 3), st.integers(1, 4), st.integers(1, 2), st.integers(0, 2**16))
def test_same_padding_with_stride_is_tensorflow_rule(nd, stride, k, d, seed):  # type: ignore[no-untyped-def]
    """'same' with stride > 1 == explicit TF pads (extra at the end); out = ceil(in / stride)."""
    rng = np.random.default_rng(seed)
    size = tuple(int(s) for s in rng.integers(d * (k - 1) + 1, 9, size=nd))
    x = rng.standard_normal((2, 2, *size))
    w = rng.standard_normal((3, 2, *(k,) * nd))
    pairs = same_padding(size, (k,) * nd, (stride,) * nd, (d,) * nd)
    flat = [v for pair in reversed(pairs) for v in pair]
    y = F.conv_forward(x, w, None, stride, "same", d, nd=nd)[0]
    expected = TORCH_CONV[nd](TF.pad(torch.tensor(x), flat), torch.tensor(w), None, stride, 0, d).numpy()
    assert y.shape[2:] == tuple(-(-s // stride) for s in size)
    np.testing.assert_allclose(y, expected, rtol=1e-9, atol=1e-10)
    for lo, hi in pairs:
        assert hi - lo in (0, 1)


def test_conv_float32_and_unbatched_and_empty_batch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, 7)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y = F.conv2d(x, w, padding=1)
    assert y.dtype == np.float32 and y.shape == (4, 6, 7)
    expected = TF.conv2d(torch.tensor(x), torch.tensor(w), padding=1).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    y, ctx = F.conv_forward(np.zeros((0, 3, 6, 7), np.float32), w, None, 1, 1)
    assert y.shape == (0, 4, 6, 7)
    dx, dw, _ = F.conv_backward(np.zeros_like(y), ctx)
    assert dx.shape == (0, 3, 6, 7) and dw.shape == w.shape and not dw.any()


def test_float64_input_with_float32_weight_computes_in_input_dtype():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 5))
    w = rng.standard_normal((2, 2, 3)).astype(np.float32)
    y, ctx = F.conv_forward(x, w, None)
    assert y.dtype == np.float64
    _, dw, _ = F.conv_backward(np.ones_like(y), ctx)
    assert dw.dtype == np.float32
