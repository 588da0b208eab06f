"""The convolution's outer-product kernel (convpool.backends.compiled.direct.outer_fwd).

It computes the float32 convolution (forward, and the input gradient, which is a
convolution too) of ungrouped convolutions on the AVX2 tile (8 lanes) where it saves
enough of the wide kernel's padding positions.  Checked against PyTorch (float64 oracle
on the same float32 numbers), against the wide kernel (bit for bit: the same sums in the
same order) and on raw arrays over every split into chunks and entry blocks.  On other
tiles it never runs: run this file with ``CONVPOOL_TILE=avx2`` as well."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import convpool.functional as F
from convpool.backends.compiled import kernels as _kernels

if _kernels.DIRECT:
    from convpool.backends.compiled import conv_direct
    from convpool.backends.compiled.direct import outer_fwd
    from convpool.backends.compiled.direct.tile import LANES, TILES
else:  # pragma: no cover - collected, then skipped
    LANES = 16

pytestmark = [
    pytest.mark.skipif(not _kernels.DIRECT, reason="the SIMD kernels need numba"),
    pytest.mark.skipif(LANES != 8, reason="the outer-product forward is for the 8-lane (AVX2) tile"),
]


@pytest.fixture(autouse=True)
def _wide_on_every_tile(monkeypatch):  # type: ignore[no-untyped-def]
    """The wide layout whatever tile this CPU got (see conv_direct.WIDE_ISAS); the rule
    of outer_fwd.choose unless a test forces a kernel."""
    monkeypatch.setattr(conv_direct, "WIDE_ISAS", frozenset(TILES))
    monkeypatch.setattr(outer_fwd, "FORCE", None)


def test_choose_takes_planes_with_much_padding_and_enough_entries(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    many = outer_fwd.MIN_ENTRIES
    assert outer_fwd.choose(64, 1, 288, (30, 30), (28, 28), 32) == (2, 6)  # 13% of the positions saved
    assert outer_fwd.choose(64, 1, 576, (58, 58), (56, 56), 32) is None  # 7%: the wide kernel
    assert outer_fwd.choose(64, 1, many - 1, (30, 30), (28, 28), 32) is None  # too few entries
    assert outer_fwd.choose(64, 2, 288, (30, 30), (28, 28), 32) is None  # grouped
    assert outer_fwd.choose(5, 1, 288, (30, 30), (28, 28), 32) is None  # most lanes empty
    assert outer_fwd.choose(8, 1, 288, (30, 30), (28, 28), 32) is None  # half the lanes empty
    assert outer_fwd.choose(24, 1, 288, (30, 30), (28, 28), 32) is None  # a quarter empty
    assert outer_fwd.choose(13, 1, 288, (30, 30), (28, 28), 32) == (2, 6)
    monkeypatch.setattr(outer_fwd, "FORCE", True)
    assert outer_fwd.choose(64, 1, 9, (58, 58), (56, 56), 32) == (2, 6)
    assert outer_fwd.choose(64, 2, 288, (30, 30), (28, 28), 32) is None  # forced only where it applies
    monkeypatch.setattr(outer_fwd, "FORCE", False)
    assert outer_fwd.choose(64, 1, 288, (30, 30), (28, 28), 32) is None


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 3),  # images
    st.tuples(st.integers(1, 9), st.integers(1, 9)),  # output plane
    st.integers(1, 40),  # entries
    st.sampled_from([(1, 12), (2, 6)]),
    st.integers(1, 20),  # output channels
    st.sampled_from([4, 8]),  # chunk (x 6 or 12 positions: a multiple of 8)
    st.sampled_from([0, 1, 5, 16]),  # entries per block
    st.integers(0, 2**16),
)
def test_kernel_on_raw_arrays(n, out, n_ent, tile, co, chunk, e_max, seed):  # type: ignore[no-untyped-def]
    """y[i, o, c] = sum_e w[o, e] * src[ents[e] + i * P + flat(c in padded)], every
    position stored once, whatever the split (scalar stores at images' ends, channels
    past co never written)."""
    vecs, npos = tile
    if co > vecs * 8 * 3:
        co = vecs * 8 * 3
    rng = np.random.default_rng(seed)
    padded = (out[0] + 2, out[1] + 1)
    plane = padded[0] * padded[1]
    src = rng.standard_normal(n * plane + 64).astype(np.float32)
    ents = rng.integers(0, 40, n_ent).astype(np.int64)
    w = rng.standard_normal((co, n_ent)).astype(np.float32)
    y = np.full((n, co) + out, np.nan, dtype=np.float32)
    outer_fwd.conv_outer(src, w, ents, padded, out, n, y.ravel(), tile, chunk, e_max)
    r, c = np.meshgrid(np.arange(out[0]), np.arange(out[1]), indexing="ij")
    pos = np.arange(n)[:, None, None] * plane + (r * padded[1] + c)[None]  # (n, *out)
    gathered = src[ents[:, None, None, None] + pos[None]].astype(np.float64)  # (E, n, *out)
    want = np.einsum("oe,enhw->nohw", w.astype(np.float64), gathered)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5 * max(1.0, n_ent**0.5))


@st.composite
def conv_case(draw):  # type: ignore[no-untyped-def]
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4 if nd < 3 else 3)) for _ in range(nd))
    if all(k == 1 for k in kernel):
        kernel = (2,) + kernel[1:]
    dil = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pads = tuple(draw(st.integers(0, (d * (k - 1)) // 2 + 1)) for k, d in zip(kernel, dil))
    size = tuple(draw(st.integers(d * (k - 1) + 1, d * (k - 1) + (20 if nd == 1 else 6))) for k, d in zip(kernel, dil))
    stride = tuple(draw(st.sampled_from([1, 1, 2, 3])) for _ in range(nd))
    cin = draw(st.sampled_from([1, 2, 5, 14, 16]))
    cout = draw(st.sampled_from([13, 16, 27, 32, 40, 48]))
    n = draw(st.integers(1, 3))
    return n, nd, kernel, dil, pads, size, cin, cout, stride


@settings(max_examples=60, deadline=None)
@given(conv_case(), st.integers(0, 2**16))
def test_forward_and_input_gradient_match_torch(monkeypatch, case, seed):  # type: ignore[no-untyped-def]
    """Forced wherever it applies (the input gradient's convolutions too, of cin output
    channels: with cin < 13 they keep the wide kernel)."""
    n, nd, kernel, dil, pads, size, cin, cout, stride = case
    monkeypatch.setattr(outer_fwd, "FORCE", True)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin, *size)).astype(np.float32)
    w = rng.standard_normal((cout, cin, *kernel)).astype(np.float32)
    y, ctx = F.conv_forward(x, w, None, stride, pads, dil, 1, nd=nd)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw, _ = F.conv_backward(dy, ctx)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    yt = getattr(TF, f"conv{nd}d")(xt, wt, None, stride, pads, dil)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    tol_y = 2e-6 * cin * int(np.prod(kernel))
    assert y.dtype == np.float32 and y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol_y, atol=tol_y)
    tol_x = 2e-6 * cout * int(np.prod(kernel))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol_x, atol=tol_x)
    tol_w = 2e-6 * n * int(np.prod(y.shape[2:]))
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=tol_w, atol=tol_w)


@pytest.mark.parametrize(
    ("xs", "ws", "stride", "pad"),
    [
        ((2, 16, 12, 11), (64, 16, 3, 3), 1, 1),  # 'same': the input gradient from dy's shared layout
        ((2, 8, 14, 13), (32, 8, 4, 4), 2, 1),  # strided: the input gradient phase by phase
        ((3, 26, 50), (16, 26, 5), 1, 2),  # 1-D
        ((1, 16, 9, 10), (14, 16, 3, 3), 1, 0),  # 'valid', a part-filled block of channels
    ],
)
def test_both_kernels_agree_bit_for_bit_and_the_outer_one_runs(monkeypatch, xs, ws, stride, pad):  # type: ignore[no-untyped-def]
    """The two kernels add the same products in the same order (entry by entry, fused)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    nd = len(xs) - 2
    calls = []
    real = outer_fwd.conv_outer

    def spy(*args, **kw):  # type: ignore[no-untyped-def]
        calls.append(args[7])  # the tile
        return real(*args, **kw)

    monkeypatch.setattr(outer_fwd, "conv_outer", spy)
    monkeypatch.setattr(outer_fwd, "FORCE", True)
    y_outer, ctx = F.conv_forward(x, w, None, stride, pad, 1, 1, nd=nd)
    assert ctx.name == "direct-wide"
    assert calls and calls[0] == outer_fwd.shape(ws[0], 1)
    dy = rng.standard_normal(y_outer.shape).astype(np.float32)
    dx_outer, _, _ = F.conv_backward(dy, ctx)
    used = len(calls)
    monkeypatch.setattr(outer_fwd, "FORCE", False)
    y_wide, ctx = F.conv_forward(x, w, None, stride, pad, 1, 1, nd=nd)
    dx_wide, _, _ = F.conv_backward(dy, ctx)
    assert len(calls) == used  # the wide kernel this time
    np.testing.assert_array_equal(y_outer, y_wide)
    np.testing.assert_array_equal(dx_outer, dx_wide)


def test_float32_module_call_by_the_rule_matches_torch() -> None:
    """The rule alone (no forcing) takes a 28 x 28 plane with 288 entries."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 32, 28, 28)).astype(np.float32)
    w = (rng.standard_normal((64, 32, 3, 3)) / 17).astype(np.float32)
    assert outer_fwd.choose(64, 1, 32 * 9, (30, 30), (28, 28), 2) is not None
    y = F.conv2d(x, w, padding=1)
    want = TF.conv2d(torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64), padding=1)
    np.testing.assert_allclose(y, want.numpy(), rtol=1e-4, atol=1e-4)


def test_kernels_close_over_numbers_only() -> None:
    """numba's disk cache keys a kernel on its closure's values (see test_wgrad_outer)."""
    for vecs, npos in ((1, 12), (2, 6)):
        kernel = outer_fwd._kernel(vecs, npos, 4)
        cells = kernel.py_func.__closure__ or ()
        assert cells and all(type(c.cell_contents) is int for c in cells)
