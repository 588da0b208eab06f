"""The direct SIMD convolution (float32, any stride) against PyTorch.

The oracle runs in float64 on the same float32 numbers; the direct kernels sum in
a different order than any other path, so the tolerance is float32's, scaled by
the number of terms in a sum."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import convpool.functional as F
from convpool.backends.compiled import conv_direct
from convpool.backends.compiled import direct as _direct
from convpool.backends.compiled import kernels as _kernels
from convpool.functional.conv import ConvCtx, TrimmedCtx

pytestmark = pytest.mark.skipif(not _kernels.DIRECT, reason="direct kernels need numba")


@pytest.fixture(autouse=True, scope="module")
def _wide_on_every_tile():  # type: ignore[no-untyped-def]
    """The wide kernels under test whatever tile this CPU got (kind() leaves them to
    im2col + BLAS on tiles where they do not pay, see conv_direct.WIDE_ISAS)."""
    saved = conv_direct.WIDE_ISAS
    conv_direct.WIDE_ISAS = frozenset(_direct.tile.TILES)
    yield
    conv_direct.WIDE_ISAS = saved


def torch_conv(x, w, b, stride, padding, dilation, groups, mode):  # type: ignore[no-untyped-def]
    nd = w.ndim - 2
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    if mode == "zeros":
        y = getattr(TF, f"conv{nd}d")(xt, wt, bt, stride, padding, dilation, groups)
    else:
        pads = [p for p in padding[::-1] for _ in range(2)]
        y = getattr(TF, f"conv{nd}d")(TF.pad(xt, pads, mode=mode), wt, bt, stride, 0, dilation, groups)
    return xt, wt, bt, y


def windowed(ctx: ConvCtx | TrimmedCtx) -> ConvCtx | None:
    """The context of the convolution that ran with a real window, or None.  Padding that
    some outputs or taps only ever see makes a trimmed sub-problem (one output along a
    dimension: stride 1), whose taps may shrink to 1x1 or to none when no window reads
    the input."""
    inner = ctx.sub if isinstance(ctx, TrimmedCtx) else ctx
    if not isinstance(inner, ConvCtx) or np.prod(inner.state.geom.kernel) == 1:
        return None
    return inner


@st.composite
def direct_case(draw):  # type: ignore[no-untyped-def]
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 5 if nd < 3 else 3)) for _ in range(nd))
    if all(k == 1 for k in kernel):
        kernel = (2,) + kernel[1:]
    dil = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pads = tuple(draw(st.integers(0, (d * (k - 1)) // 2 + 1)) for k, d in zip(kernel, dil))
    # sizes from tiny (rows shorter than a vector) to several 64-position blocks per image
    size = tuple(draw(st.integers(d * (k - 1) + 1, d * (k - 1) + (30 if nd == 1 else 12))) for k, d in zip(kernel, dil))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 4))  # groups > 1 with one channel each: depthwise
    cout = groups * draw(st.integers(1, 7))
    n = draw(st.integers(1, 3))
    mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "circular"]))
    if mode != "zeros":
        pads = tuple(min(p, s - 1) for p, s in zip(pads, size))
    # strides below, at and above the kernel's extent (phases no tap reads)
    stride = tuple(draw(st.sampled_from([1, 1, 2, 3])) for _ in range(nd))
    return n, nd, kernel, dil, pads, size, groups, cin, cout, mode, stride


@settings(max_examples=200)
@given(direct_case(), st.integers(0, 2**16))
def test_direct_conv_matches_torch(case, seed):  # type: ignore[no-untyped-def]
    n, nd, kernel, dil, pads, size, groups, cin, cout, mode, stride = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin, *size)).astype(np.float32)
    w = rng.standard_normal((cout, cin // groups, *kernel)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    y, ctx = F.conv_forward(x, w, b, stride, pads, dil, groups, mode, nd=nd)
    depthwise = cin == groups > 1
    inner = windowed(ctx)
    if inner is None:
        pass
    elif depthwise and any(s > 1 for s in inner.state.geom.stride):  # the compiled loop's
        assert inner.name == "depthwise-loop"
    else:  # the SIMD kernels: depthwise (or one image of one channel, stride 1) on the plane stencil, the rest wide
        one = n == groups == cin == 1 and all(s == 1 for s in inner.state.geom.stride)
        assert inner.name == ("direct-stencil" if depthwise or one else "direct-wide"), "the direct path was not taken"
    xt, wt, bt, yt = torch_conv(x, w, b, stride, pads, dil, groups, mode)
    terms = (cin // groups) * int(np.prod(kernel))
    tol = 2e-6 * terms
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    dx, dw, db = F.conv_backward(dy, ctx)
    assert dx.dtype == dw.dtype == np.float32 and dx.shape == x.shape and dw.shape == w.shape
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)
    tol_w = 2e-6 * n * int(np.prod(y.shape[2:]))
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=tol_w, atol=tol_w)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=tol_w, atol=tol_w)


def test_direct_path_is_taken_only_where_it_applies():  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    x32 = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    assert F.conv_forward(x32, w, None, 1, 1)[1].name == "direct-wide"
    assert F.conv_forward(x32.astype(np.float64), w, None, 1, 1)[1].name == "im2col"  # float64: im2col
    assert F.conv_forward(x32, w, None, 2, 1)[1].name == "direct-wide"  # stride 2: the phase layout
    assert F.conv_forward(x32, w[:, :, :1, :1], None, 1, 0)[1].name == "pointwise"  # 1x1: read in place, no layout
    wd = rng.standard_normal((8, 1, 3, 3)).astype(np.float32)
    assert F.conv_forward(x32, wd, None, 1, 1, groups=4)[1].name == "direct-stencil"  # depthwise: the plane stencil
    assert F.conv_forward(x32, wd, None, 2, 1, groups=4)[1].name == "depthwise-loop"  # strided depthwise: its loop


def test_store_plan_covers_every_output_once():  # type: ignore[no-untyped-def]
    # padded 5x7 planes of 3 images, outputs 3x4: every output index appears exactly once
    plan, ptr = _direct._store_plan((5, 7), (3, 4), 3, 2 * 12)
    written = [r[2] + lane for r in plan for lane in range(r[0], r[1])]
    expected = [img * 24 + i for img in range(3) for i in range(12)]
    assert sorted(written) == expected
    assert ptr[0] == 0 and ptr[-1] == len(plan) and np.all(np.diff(ptr) >= 0)


@pytest.mark.parametrize("q_len", [1, 23, 24, 25, 63, 64, 65, 96, 127, 193, 1000])
def test_store_plan_has_a_row_range_for_every_vector_of_either_kernel(q_len):  # type: ignore[no-untyped-def]
    """The convolution stores blocks of BLOCK_Q positions, the depthwise stencil blocks of
    STENCIL_Q; one plan serves both, so it indexes every LANES vector of either's blocks
    (with the AVX2 tile the two differ: 24 and 64)."""
    from convpool.backends.compiled.direct.tile import LANES, STENCIL_Q

    plan, ptr = _direct._store_plan((q_len,), (q_len,), 1, 0)
    for block in (_direct.BLOCK_Q, STENCIL_Q):
        assert len(ptr) - 1 >= -(-q_len // block) * block // LANES
    assert sum(int(r[1] - r[0]) for r in plan) == q_len  # every output once


def test_tile_info_names_the_selected_tile():  # type: ignore[no-untyped-def]
    info = _direct.tile_info()
    assert info["isa"] == _direct.TILE.isa and info["lanes"] == _direct.LANES
    assert _direct.BLOCK_Q == _direct.TILE.block_q and _direct.BLOCK_OC == _direct.TILE.block_oc


def test_wide_phase_layout_splits_a_strided_plane():  # type: ignore[no-untyped-def]
    a = np.arange(1 * 2 * 5 * 5, dtype=np.float32).reshape(1, 2, 5, 5) + 1
    wide = _direct.Wide(a, ((1, 0), (1, 1)), "constant", reach=4, stride=(2, 2))
    assert wide.full == (6, 7) and wide.padded == (3, 4) and wide.phases == 4 and wide.buf.shape[0] == 8
    full = np.zeros((2, 6, 8), dtype=np.float32)  # the padded planes, one spare zero column
    full[:, 1:, 1:6] = a[0]
    for c in range(2):
        for r0 in range(2):
            for r1 in range(2):
                phase = wide.buf[c * 4 + r0 * 2 + r1, :12].reshape(3, 4)
                np.testing.assert_array_equal(phase, full[c, r0::2, r1::2])


def test_from_phases_interleaves_the_phases_and_refuses_a_strided_target():  # type: ignore[no-untyped-def]
    from convpool.backends.compiled.direct.relayout import from_phases

    rng = np.random.default_rng(0)
    # stride 2 on an even row: the pair path, phase 0 first (offset 0) or phase 1 (offset 1);
    # an odd row or stride 3: the general one
    for s2, n2, lo2 in ((2, 8, 0), (2, 8, 1), (2, 7, 1), (3, 7, 1)):
        st3, lo3 = np.array([1, 2, s2], np.int64), np.array([0, 1, lo2], np.int64)
        dx = np.empty((3, 1, 6, n2), np.float32)
        q = (1, (6 + 1 - 1) // 2 + 1, (n2 + lo2 - 1) // s2 + 1)
        ys = rng.standard_normal(2 * s2 * 3 * q[1] * q[2]).astype(np.float32)
        from_phases(ys, q, st3, lo3, dx)
        phases = ys.reshape(2, s2, 3, q[1], q[2])
        for u in range(6):
            for w in range(n2):
                uu, ww = u + 1, w + lo2
                np.testing.assert_array_equal(dx[:, 0, u, w], phases[uu % 2, ww % s2, :, uu // 2, ww // s2])
    with pytest.raises(ValueError, match="C-contiguous"):
        from_phases(ys, q, st3, lo3, np.empty((3, 1, 6, 14), np.float32)[..., ::2])


def test_wide_layout_pads_and_separates_images():  # type: ignore[no-untyped-def]
    a = np.arange(2 * 3 * 2 * 3, dtype=np.float32).reshape(2, 3, 2, 3) + 1
    wide = _direct.Wide(a, ((1, 0), (0, 2)), "constant", reach=7)
    assert wide.padded == (3, 5) and wide.plane == 15 and wide.q_len == 30
    assert wide.buf.ctypes.data % 64 == 0 and wide.length % 16 == 0
    body = wide.buf[:, :30].reshape(3, 2, 3, 5)
    np.testing.assert_array_equal(body[:, :, 1:, :3], a.transpose(1, 0, 2, 3))
    assert not body[:, :, 0].any() and not body[:, :, :, 3:].any() and not wide.buf[:, 30:].any()


@settings(max_examples=60)
@given(
    st.integers(1, 3),  # images: 1 means only the copied last image
    st.integers(1, 3),  # dims
    st.integers(1, 70),  # positions per channel, below and above one 64-block
    st.sampled_from([1, 2, 3]),
    st.integers(1, 5),
    st.integers(1, 6),
    st.integers(0, 2**16),
)
def test_pointwise_conv_reads_in_place_and_matches_torch(n, nd, size, groups, cg, co, seed):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    spatial = (size,) + (2,) * (nd - 1)
    x = rng.standard_normal((n, groups * cg, *spatial)).astype(np.float32)
    w = rng.standard_normal((groups * co, cg) + (1,) * nd).astype(np.float32)
    b = rng.standard_normal(groups * co).astype(np.float32)
    y, ctx = F.conv_forward(x, w, b, 1, 0, 1, groups, nd=nd)
    xt, wt, bt, yt = torch_conv(x, w, b, 1, 0, 1, groups, "zeros")
    tol = 2e-6 * cg
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    dx, dw, _ = F.conv_backward(dy, ctx)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=2e-6 * co, atol=2e-6 * co)
    tol_w = 2e-6 * n * int(np.prod(spatial))
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=tol_w, atol=tol_w)


def test_pointwise_path_is_the_simd_kernel(monkeypatch):  # type: ignore[no-untyped-def]
    calls = []
    monkeypatch.setattr(_direct, "pointwise", lambda *a: calls.append(1) or _real_pointwise(*a))
    x = np.ones((2, 4, 5, 5), dtype=np.float32)
    y, ctx = F.conv_forward(x, np.ones((3, 4, 1, 1), dtype=np.float32))
    F.conv_backward(np.ones_like(y), ctx)
    assert len(calls) == 2  # forward and the input gradient


_real_pointwise = _direct.pointwise


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_gradient_of_a_large_output_matches_torch(dtype):  # type: ignore[no-untyped-def]
    """Outputs of 2**14 elements and more sum their planes in a compiled pass."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 40, 40)).astype(dtype)
    w = rng.standard_normal((8, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    y, ctx = F.conv_forward(x, w, b, 1, 1)
    assert y.size >= 1 << 14
    dy = rng.standard_normal(y.shape).astype(dtype)
    _, _, db = F.conv_backward(dy, ctx)
    assert db is not None and db.dtype == dtype
    expected = dy.astype(np.float64).sum(axis=(0, 2, 3))
    np.testing.assert_allclose(db, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


@settings(max_examples=100)
@given(direct_case(), st.integers(2, 5), st.integers(1, 3), st.integers(0, 2**16))
def test_depthwise_stencil_matches_torch(case, channels, mult, seed):  # type: ignore[no-untyped-def]
    """Depthwise (one input channel per group, channel multiplier 1-3), stride 1: the
    plane stencil kernels, forward and all gradients."""
    n, nd, kernel, dil, pads, size, _, _, _, mode, _ = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, channels, *size)).astype(np.float32)
    w = rng.standard_normal((channels * mult, 1, *kernel)).astype(np.float32)
    b = rng.standard_normal(channels * mult).astype(np.float32)
    y, ctx = F.conv_forward(x, w, b, 1, pads, dil, channels, mode, nd=nd)
    inner = windowed(ctx)
    assert inner is None or inner.name == "direct-stencil", "the stencil path was not taken"
    xt, wt, bt, yt = torch_conv(x, w, b, 1, pads, dil, channels, mode)
    tol = 2e-6 * int(np.prod(kernel)) * mult
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    dx, dw, db = F.conv_backward(dy, ctx)
    assert dx.dtype == dw.dtype == np.float32 and dx.shape == x.shape and dw.shape == w.shape
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)
    tol_w = 2e-6 * n * int(np.prod(y.shape[2:]))
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=tol_w, atol=tol_w)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=tol_w, atol=tol_w)


def test_wide_kernel_refuses_a_bias_of_the_wrong_length() -> None:
    """The kernel reads the bias without bounds checks: its length is checked first."""
    from convpool.backends.compiled.direct import wide

    assert wide._bias_rows(None, 3).tolist() == [0.0] * (3 + _direct.BLOCK_OC)
    rows = wide._bias_rows(np.arange(3, dtype=np.float32), 3)
    assert rows[:3].tolist() == [0.0, 1.0, 2.0] and not rows[3:].any()
    with pytest.raises(ValueError, match=r"bias: expected shape \(3,\), got \(4,\)"):
        wide._bias_rows(np.zeros(4, np.float32), 3)
