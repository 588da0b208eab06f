"""The weight gradient's outer-product kernel (convpool.backends.compiled.direct.outer).

It takes the float32 weight gradient of ungrouped convolutions whose output channels
fill its vectors (16 lanes with AVX-512, 8 with AVX2); :mod:`.wide`'s kernel keeps the
rest.  Checked against PyTorch (float64 oracle on the same float32 numbers), against a
NumPy product on raw arrays (every split of the positions into parts and chunks), and
against the other kernel on the same problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import convpool.functional as F
from convpool.backends.compiled import kernels as _kernels

pytestmark = pytest.mark.skipif(not _kernels.DIRECT, reason="the SIMD kernels need numba")

if _kernels.DIRECT:
    from convpool.backends.compiled import conv_direct
    from convpool.backends.compiled.direct import outer
    from convpool.backends.compiled.direct.tile import LANES, TILE, TILES
else:  # pragma: no cover - collected, then skipped
    LANES = 16


@pytest.fixture(autouse=True, scope="module")
def _wide_on_every_tile():  # type: ignore[no-untyped-def]
    """The wide layout whatever tile this CPU got (see conv_direct.WIDE_ISAS)."""
    if not _kernels.DIRECT:
        yield
        return
    saved = conv_direct.WIDE_ISAS
    conv_direct.WIDE_ISAS = frozenset(TILES)
    yield
    conv_direct.WIDE_ISAS = saved


def test_shape_fills_the_vectors_or_leaves_the_gradient_to_the_wide_kernel() -> None:
    many = outer.MIN_ENTRIES
    assert outer.shape(4 * LANES, 2, many) is None  # grouped: the wide kernel
    assert outer.shape(LANES // 2 - 1, 1, many) is None  # most lanes empty
    assert outer.shape(4 * LANES, 1, many - 1) is None  # too few entries
    for co in (LANES, 2 * LANES, 4 * LANES, 5 * LANES, 2 * LANES - 1):
        tile = outer.shape(co, 1, many)
        assert tile is not None, co
        vecs, ents = tile
        assert 1 <= vecs <= TILE.wg_vecs and vecs * ents <= TILE.wg_sums
        width = vecs * LANES
        assert -(-co // width) * width * 4 <= co * 5  # at most a fifth of the lanes wasted
    assert outer.shape(TILE.wg_vecs * LANES, 1, many) == (TILE.wg_vecs, TILE.wg_sums // TILE.wg_vecs)


def test_outputs_are_the_wide_positions_of_the_outputs_in_order() -> None:
    got = outer.outputs((4, 5), (3, 4), 2)
    want = [i * 20 + r * 5 + c for i in range(2) for r in range(3) for c in range(4)]
    assert got.tolist() == want and not got.flags.writeable
    assert outer.outputs((7,), (5,), 3).tolist() == [i * 7 + c for i in range(3) for c in range(5)]
    assert outer.outputs((3, 3, 4), (2, 1, 3), 1).tolist() == [0, 1, 2, 12, 13, 14]


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 3 * outer.CHUNK + 5) if _kernels.DIRECT else st.just(1),
    st.integers(1, 40),
    st.integers(1, 3),
    st.sampled_from([0.9, 1.0, 2.0, 4.0, 5.0]),
    st.integers(0, 2**16),
)
def test_kernel_sums_every_position_once(q_len, n_ent, parts, fill, seed):  # type: ignore[no-untyped-def]
    """Raw arrays: dw[o, e] = sum over i in pos of dy[o, i] * src[ents[e] + i], whatever
    the positions, the parts, the chunks (around multiples of CHUNK) and the channels
    (not a whole block)."""
    rng = np.random.default_rng(seed)
    tile = outer.shape(max(1, int(fill * LANES)), 1, outer.MIN_ENTRIES)
    if tile is None:
        return
    co = max(1, int(fill * LANES))
    reach = 50
    src = rng.standard_normal(q_len + reach + 16).astype(np.float32)
    ld = q_len + 7
    dy = rng.standard_normal((co + 3) * ld).astype(np.float32)  # rows past co: never read
    ents = rng.integers(0, reach, n_ent).astype(np.int64)
    pos = np.sort(rng.choice(q_len, size=int(rng.integers(1, q_len + 1)), replace=False)).astype(np.int64)
    got = outer.weight_grad_outer(src, dy, ld, co, ents, pos, tile, parts)
    d = dy.reshape(co + 3, ld)[:co, pos].astype(np.float64)
    xs = np.stack([src[e + pos] for e in ents]).astype(np.float64)
    want = d @ xs.T
    assert got.shape == (co, n_ent) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5 * q_len)


@st.composite
def outer_case(draw):  # type: ignore[no-untyped-def]
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4 if nd < 3 else 3)) for _ in range(nd))
    if all(k == 1 for k in kernel):
        kernel = (2,) + kernel[1:]
    dil = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pads = tuple(draw(st.integers(0, (d * (k - 1)) // 2 + 1)) for k, d in zip(kernel, dil))
    size = tuple(draw(st.integers(d * (k - 1) + 1, d * (k - 1) + (20 if nd == 1 else 7))) for k, d in zip(kernel, dil))
    stride = tuple(draw(st.sampled_from([1, 1, 2, 3])) for _ in range(nd))
    taps = int(np.prod(kernel))
    cin = -(-outer.MIN_ENTRIES // taps) + draw(st.integers(0, 3))  # entries enough for the outer kernel
    cout = draw(st.sampled_from([2 * LANES - 1, LANES, 2 * LANES, 3 * LANES, 4 * LANES, 5 * LANES - 3]))
    n = draw(st.integers(1, 3))
    return n, nd, kernel, dil, pads, size, cin, cout, stride


@settings(max_examples=60, deadline=None)
@given(outer_case(), st.integers(0, 2**16))
def test_weight_gradient_matches_torch(case, seed):  # type: ignore[no-untyped-def]
    n, nd, kernel, dil, pads, size, cin, cout, stride = case
    assert outer.shape(cout, 1, cin * int(np.prod(kernel))) is not None
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
    tol_w = 2e-6 * n * int(np.prod(y.shape[2:]))
    assert dw.dtype == np.float32 and dw.shape == w.shape
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=tol_w, atol=tol_w)
    tol_x = 2e-6 * cout * int(np.prod(kernel))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol_x, atol=tol_x)


@pytest.mark.parametrize(
    ("xs", "ws", "stride", "pad"),
    [
        ((2, 16, 20, 21), (64, 16, 3, 3), 1, 1),  # 'same': the layout shared with the input gradient
        ((2, 8, 14, 13), (32, 8, 4, 4), 2, 1),  # strided: the source's phase rows
        ((3, 26, 300), (16, 26, 5), 1, 2),  # 1-D over several chunks
    ],
)
def test_both_kernels_agree_and_the_outer_one_runs(monkeypatch, xs, ws, stride, pad):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    nd = len(xs) - 2
    y, ctx = F.conv_forward(x, w, None, stride, pad, 1, 1, nd=nd)
    assert ctx.name == "direct-wide"
    dy = rng.standard_normal(y.shape).astype(np.float32)
    calls = []
    run = outer.weight_grad_outer

    def spy(*args, **kw):  # type: ignore[no-untyped-def]
        calls.append(args[6])  # the tile
        return run(*args, **kw)

    monkeypatch.setattr(outer, "weight_grad_outer", spy)
    dx_outer, dw_outer, _ = F.conv_backward(dy, ctx)
    assert calls == [outer.shape(ws[0], 1, int(np.prod(ws[1:])))]
    monkeypatch.setattr(outer, "shape", lambda co, groups, n_ent: None)
    dx_wide, dw_wide, _ = F.conv_backward(dy, ctx)
    assert len(calls) == 1  # the wide kernel this time
    np.testing.assert_array_equal(dx_outer, dx_wide)
    scale = float(np.abs(dw_wide).max())
    np.testing.assert_allclose(dw_outer, dw_wide, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize(
    ("xs", "ws", "stride", "pad"),
    [
        ((2, 8, 14, 13), (32, 8, 4, 4), 2, 1),  # strided: no shared layout, dy read in place
        ((3, 26, 300), (16, 26, 5), 1, 0),  # 'valid': dy's layout serves both gradients, copied
        ((2, 16, 9, 10), (64, 16, 3, 3), 1, 1),  # 'same': the shared layout, dy copied
    ],
)
def test_dy_read_in_place_equals_the_laid_out_copy(monkeypatch, xs, ws, stride, pad):  # type: ignore[no-untyped-def]
    """The outer-product kernel reading dy where it lies gives the same weight gradient
    as from the wide layout's copy of dy, bit for bit (the same sums in the same order)."""
    from convpool.backends.compiled import direct

    rng = np.random.default_rng(2)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    y, ctx = F.conv_forward(x, w, None, stride, pad, 1, 1, nd=len(xs) - 2)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    used = []
    real = direct.weight_grad_in_place
    monkeypatch.setattr(direct, "weight_grad_in_place", lambda *a: used.append(1) or real(*a))
    dx_in_place, dw_in_place, _ = F.conv_backward(dy, ctx)
    assert len(used) == (0 if stride == 1 else 1)
    monkeypatch.setattr(direct, "weight_grad_in_place", lambda *a: None)
    dx_copy, dw_copy, _ = F.conv_backward(dy, ctx)
    np.testing.assert_array_equal(dw_in_place, dw_copy)
    np.testing.assert_array_equal(dx_in_place, dx_copy)


def test_kernels_close_over_numbers_only() -> None:
    """numba's disk cache keys a kernel on its closure's values: an intrinsic built in a
    factory is a new object in each process, so a kernel closing over one would compile
    afresh in every process."""
    for vecs in range(1, TILE.wg_vecs + 1):
        kernel = outer._kernel(vecs, TILE.wg_sums // vecs, LANES)
        cells = kernel.py_func.__closure__ or ()
        assert cells and all(type(c.cell_contents) is int for c in cells)
