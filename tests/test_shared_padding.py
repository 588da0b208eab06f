"""The wide layout with zero padding shared between neighbouring rows and images
(:func:`convpool.backends.compiled.direct.layout.shared_plane`): its planes, and the
stride-1 convolution on it - forward and both gradients - against PyTorch and against
the padded plane's layout, for any (lo, hi) padding, symmetric or not, over-padded too."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

from convpool.backends.compiled import conv_direct
from convpool.backends.compiled import direct as _direct
from convpool.backends.compiled import kernels as _kernels
from convpool.geometry import Geometry

pytestmark = pytest.mark.skipif(not _kernels.DIRECT, reason="direct kernels need numba")


@pytest.fixture(autouse=True, scope="module")
def _wide_on_every_tile():  # type: ignore[no-untyped-def]
    """The wide kernels under test whatever tile this CPU got (see test_direct.py)."""
    saved = conv_direct.WIDE_ISAS
    conv_direct.WIDE_ISAS = frozenset(_direct.tile.TILES)
    yield
    conv_direct.WIDE_ISAS = saved


def test_shared_plane_keeps_the_larger_pad_and_room_for_the_output() -> None:
    assert _direct.shared_plane((28, 28), ((1, 1), (1, 1)), (3, 3), (1, 1)) == (29, 29)
    assert _direct.shared_plane((40,), ((2, 2),), (5,), (1,)) == (42,)
    assert _direct.shared_plane((9,), ((0, 3),), (2,), (2,)) == (12,)  # asymmetric: the larger side
    assert _direct.shared_plane((9,), ((0, 0),), (3,), (1,)) == (9,)  # 'valid': no padding to share
    # over-padded (lo + hi > reach): the plane holds the 9 + 3 + 3 - 2 = 13 outputs of a row
    assert _direct.shared_plane((9,), ((3, 3),), (3,), (1,)) == (13,)


def test_shared_layout_puts_one_set_of_zeros_between_rows_and_images() -> None:
    a = np.arange(2 * 3 * 2 * 3, dtype=np.float32).reshape(2, 3, 2, 3) + 1
    pads = ((1, 0), (1, 2))
    plane = _direct.shared_plane((2, 3), pads, (2, 4), (1, 1))
    assert plane == (3, 5)  # 2 + max(1, 0), 3 + max(1, 2); the padded plane is 3 x 6
    wide = _direct.Wide(a, pads, "constant", reach=8, plane=plane)
    assert wide.padded == plane and wide.full == (3, 6) and wide.plane == 15 and wide.q_len == 30
    body = wide.buf[:, :30].reshape(3, 2, 3, 5)
    np.testing.assert_array_equal(body[:, :, 1:, 1:4], a.transpose(1, 0, 2, 3))  # at offset lo
    body[:, :, 1:, 1:4] = 0
    assert not body.any() and not wide.buf[:, 30:].any()


@st.composite
def shared_case(draw):  # type: ignore[no-untyped-def]
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4 if nd < 3 else 3)) for _ in range(nd))
    if all(k == 1 for k in kernel):
        kernel = (2,) + kernel[1:]
    dil = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    reach = tuple(d * (k - 1) for k, d in zip(kernel, dil))
    # any pair: below, at and above the reach on either side
    pads = tuple((draw(st.integers(0, r + 1)), draw(st.integers(0, r + 1))) for r in reach)
    size = tuple(
        draw(st.integers(max(1, r + 1 - lo - hi), r + (30 if nd == 1 else 9))) for r, (lo, hi) in zip(reach, pads)
    )
    groups = draw(st.sampled_from([1, 1, 2]))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 6))
    n = draw(st.integers(1, 3))
    return n, kernel, dil, pads, size, groups, cin, cout


def _geometry(size, kernel, dil, pads, stride=None):  # type: ignore[no-untyped-def]
    stride = stride or (1,) * len(size)
    out = tuple(
        (s + lo + hi - d * (k - 1) - 1) // t + 1 for s, k, d, (lo, hi), t in zip(size, kernel, dil, pads, stride)
    )
    return Geometry(size, kernel, stride, dil, pads, out, (0,) * len(size))


def _run(x, w, g, groups, dy, share, mode="constant"):  # type: ignore[no-untyped-def]
    saved = conv_direct.SHARE_PADDING
    conv_direct.SHARE_PADDING = share
    try:
        y, ctx = conv_direct.wide_forward(x, w, g, groups, mode, False)
        if all(s == 1 for s in g.stride) and mode == "constant":
            plane = _direct.shared_plane(g.in_size, g.pads, g.kernel, g.dilation) if share else g.padded
            assert ctx.wide.padded == plane
        dx, dw = conv_direct.wide_backward(dy, ctx)
    finally:
        conv_direct.SHARE_PADDING = saved
    return y, dx, dw


@settings(max_examples=150, deadline=None)
@given(shared_case(), st.integers(0, 2**16))
def test_conv_on_the_shared_layout_matches_torch_and_the_padded_layout(case, seed):  # type: ignore[no-untyped-def]
    n, kernel, dil, pads, size, groups, cin, cout = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin, *size)).astype(np.float32)
    w = rng.standard_normal((cout, cin // groups, *kernel)).astype(np.float32)
    g = _geometry(size, kernel, dil, pads)
    dy = rng.standard_normal((n, cout, *g.out)).astype(np.float32)
    y, dx, dw = _run(x, w, g, groups, dy, True)
    y0, dx0, dw0 = _run(x, w, g, groups, dy, False)
    # the same sums in the same order at every output (the weight gradient may split its
    # sums over positions differently)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(dx, dx0)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    flat = [v for pair in reversed(pads) for v in pair]
    conv = (TF.conv1d, TF.conv2d, TF.conv3d)[len(size) - 1]
    yt = conv(TF.pad(xt, flat), wt, None, 1, 0, dil, groups)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    tol = 2e-6 * (cin // groups) * int(np.prod(kernel))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol)
    tol_x = 2e-6 * cout * int(np.prod(kernel))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol_x, atol=tol_x)
    tol_w = 2e-6 * n * int(np.prod(g.out))
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=tol_w, atol=tol_w)
    np.testing.assert_allclose(dw, dw0, rtol=tol_w, atol=tol_w)


@pytest.mark.parametrize(("pad", "kernel"), [(1, 3), (0, 3), (0, 5), ("same", 4)])
def test_the_weight_gradients_layout_of_dy_serves_the_input_gradient(monkeypatch, pad, kernel):  # type: ignore[no-untyped-def]
    """Stride 1 with zero padding no wider than the reach ('same', 'valid' and between):
    one copy of dy serves both gradients on the shared planes."""
    import convpool.functional as F

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 16, 11, 10)).astype(np.float32)
    w = rng.standard_normal((32, 16, kernel, kernel)).astype(np.float32)
    y, ctx = F.conv_forward(x, w, None, 1, pad, 1, 1, nd=2)
    used = []
    real = _direct.input_grad_shared
    monkeypatch.setattr(_direct, "input_grad_shared", lambda *a: used.append(1) or real(*a))
    F.conv_backward(np.ones_like(y), ctx)
    assert used == [1]


@pytest.mark.parametrize(
    ("shape", "pads"),
    [
        ((19, 3, 40), ((2, 2),)),
        ((1, 2, 7), ((0, 3),)),
        ((33, 5, 4, 6), ((1, 1), (2, 0))),
        ((9, 2, 2, 2, 3), ((1,) * 2,) * 3),
    ],
)
def test_short_planes_copied_in_blocks_of_images_equal_the_channel_by_channel_copy(shape, pads) -> None:  # type: ignore[no-untyped-def]
    """Planes of up to IMAGE_MAJOR_PLANE floats are copied a block of images at a time;
    the layout is the same, rows no channel maps to included."""
    from convpool.backends.compiled.direct import relayout

    rng = np.random.default_rng(4)
    a = rng.standard_normal(shape).astype(np.float32)
    rows = 2 * shape[1] + 1
    row_of = np.arange(shape[1], dtype=np.int64) * 2 + 1
    layouts = []
    for limit in (relayout.IMAGE_MAJOR_PLANE, 0):
        saved = relayout.IMAGE_MAJOR_PLANE
        relayout.IMAGE_MAJOR_PLANE = limit
        try:
            plain = _direct.Wide(a, pads, "constant", reach=5)
            mapped = _direct.Wide(a, pads, "constant", reach=5, row_of=row_of, rows=rows)
            layouts.append((plain.buf.copy(), mapped.buf.copy()))
        finally:
            relayout.IMAGE_MAJOR_PLANE = saved
    assert int(np.prod(shape[2:])) <= relayout.IMAGE_MAJOR_PLANE
    for blocked, by_channel in zip(*layouts):
        np.testing.assert_array_equal(blocked, by_channel)


@settings(max_examples=100, deadline=None)
@given(shared_case(), st.data(), st.integers(0, 2**16))
def test_strided_input_gradient_on_the_shared_layout_of_dy(case, data, seed):  # type: ignore[no-untyped-def]
    """A strided conv's input gradient reads dy laid out with shared zeros
    (:func:`.direct.input_grad_strided`): bit-equal to the padded layout's, and PyTorch's."""
    n, kernel, dil, pads, size, groups, cin, cout = case
    stride = tuple(data.draw(st.sampled_from([1, 2, 3])) for _ in kernel)
    if all(t == 1 for t in stride):
        stride = (2,) + stride[1:]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin, *size)).astype(np.float32)
    w = rng.standard_normal((cout, cin // groups, *kernel)).astype(np.float32)
    g = _geometry(size, kernel, dil, pads, stride)
    if not conv_direct.wide_fits(n, g):
        return
    dy = rng.standard_normal((n, cout, *g.out)).astype(np.float32)
    _, dx, _ = _run(x, w, g, groups, dy, True)
    _, dx0, _ = _run(x, w, g, groups, dy, False)
    np.testing.assert_array_equal(dx, dx0)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    flat = [v for pair in reversed(pads) for v in pair]
    conv = (TF.conv1d, TF.conv2d, TF.conv3d)[len(size) - 1]
    yt = conv(TF.pad(xt, flat), torch.tensor(w, dtype=torch.float64), None, stride, 0, dil, groups)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    tol_x = 2e-6 * cout * int(np.prod(kernel))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol_x, atol=tol_x)


@settings(max_examples=60, deadline=None)
@given(shared_case(), st.sampled_from(["reflect", "circular"]), st.integers(0, 2**16))
def test_border_modes_input_gradient_on_the_shared_layout_of_dy(case, mode, seed):  # type: ignore[no-untyped-def]
    """A border mode's input gradient (dy padded by the reach on both sides, then folded
    back) reads dy laid out with shared zeros: bit-equal to the padded layout's, and
    PyTorch's."""
    n, kernel, dil, pads, size, groups, cin, cout = case
    pads = tuple((min(lo, s - 1), min(hi, s - 1)) for (lo, hi), s in zip(pads, size))
    if any(s + lo + hi < d * (k - 1) + 1 for s, (lo, hi), k, d in zip(size, pads, kernel, dil)):
        return  # no output once the pads are clamped to the input
    g = _geometry(size, kernel, dil, pads)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin, *size)).astype(np.float32)
    w = rng.standard_normal((cout, cin // groups, *kernel)).astype(np.float32)
    dy = rng.standard_normal((n, cout, *g.out)).astype(np.float32)
    y, dx, _ = _run(x, w, g, groups, dy, True, mode)
    _, dx0, _ = _run(x, w, g, groups, dy, False, mode)
    np.testing.assert_array_equal(dx, dx0)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    flat = [v for pair in reversed(pads) for v in pair]
    conv = (TF.conv1d, TF.conv2d, TF.conv3d)[len(size) - 1]
    yt = conv(TF.pad(xt, flat, mode=mode), torch.tensor(w, dtype=torch.float64), None, 1, 0, dil, groups)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    tol = 2e-6 * max(cin, cout) * int(np.prod(kernel))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)
