"""The float32 convolution on explicit SIMD vectors (:mod:`convpool.backends.compiled.direct`): when it
applies, and its forward and backward drivers.

* "wide": any dense or grouped window, any stride - every image padded and laid out
  channel by channel, each (channel, tap) pair a shifted run of the layout;
* "stencil": depthwise with stride 1 - one (image, channel) plane per job.

The kernels reduce over every position of the padded planes, outputs or not; see
:func:`finite_or_exact` for what that means for inf and NaN inputs.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ... import geometry
from ...geometry import Geometry
from ...settings import TUNING
from ...windows import pad_backward
from ..numpy.conv import ConvCtx, reference_backward, reference_forward
from . import direct as _direct
from . import kernels as _kernels
from . import threads as _threads
from .direct import BLOCK_Q, phase_plane

# The register tiles (direct.tile.TILE.isa) on which the wide kernels beat im2col + BLAS
# (benchmarks/direct_vs_im2col.py, Intel Xeon "rocketlake", 2 threads, direct / im2col):
# avx512 0.48-0.99 forward and backward on every windowed case; avx2 (numba for Haswell,
# OpenBLAS Haswell) 0.55-0.98; generic (numba for the baseline x86-64, SSE2: masked loads
# and stores become scalar code) 0.8-1.4, slower on the dense, strided and 1-D cases - there
# im2col + BLAS takes them.  The depthwise stencil wins on every tile (0.12-0.36).
WIDE_ISAS = frozenset({"avx512", "avx2"})

# A whole convolution, forward or backward, of under SERIAL_MACS * thread_min_work
# multiply-adds (over the padded planes the kernels compute; settings.TUNING) runs on the
# calling thread: handing a chunk to a worker costs 25-35 us, and on a busy machine the
# worker wakes later still.  Measured (Intel Xeon under KVM, 2 shared vCPUs, AVX-512
# tile, the forward kernel of 32->64 3x3 on 14x14, one thread / two, median us): batch 1
# (4.7M) 100 / 113-118, batch 2 (9.4M) 200 / 156-174, batch 4 (18.9M) 404 / 247-279
# (machine half idle); 1->32 on 28x28, batch 1 (0.28M) 13 / 68 (busy).  Break-even near
# 6M = 192 * 32768.  ``tuning(thread_min_work=0)`` still splits every call.
SERIAL_MACS = 192


_ONE_THREAD, _ANY_THREADS = _threads.on_calling_thread(), contextlib.nullcontext()  # stateless, reentrant


def on_one_thread(macs: int) -> _threads.on_calling_thread | contextlib.nullcontext[None]:
    """The context a convolution of ``macs`` multiply-adds runs in (:data:`SERIAL_MACS`)."""
    return _ONE_THREAD if macs < SERIAL_MACS * TUNING.thread_min_work else _ANY_THREADS


_TAP_POSITIONS: dict[int, tuple[Geometry, int]] = {}  # id(g) -> (g, taps x plane positions)


def _macs(n: int, c_out: int, cg: int, g: Geometry) -> int:
    """Multiply-adds of the SIMD kernels: every position of the (phase) planes, every tap.
    The per-geometry factor is remembered by the Geometry object (a layer's calls get the
    same cached one; the entry holds it, so its id stays its own; 256 entries)."""
    hit = _TAP_POSITIONS.get(id(g))
    if hit is None or hit[0] is not g:
        hit = (g, geometry.prod(g.kernel) * geometry.prod(_direct.phase_plane(g.padded, g.stride)))
        if len(_TAP_POSITIONS) >= 256:
            _TAP_POSITIONS.clear()
        _TAP_POSITIONS[id(g)] = hit
    return n * c_out * cg * hit[1]


def kind(xb: np.ndarray, g: Geometry, cg: int, groups: int) -> str | None:
    """Which SIMD kernels of :mod:`convpool.backends.compiled.direct` take a float32 conv with a real
    window (a 1x1 conv reads its input in place instead): "wide" - the wide layout, any
    stride, the input split into its stride phases when strided, on the tiles of
    :data:`WIDE_ISAS`; "stencil" - depthwise (one input channel per group) with stride 1,
    one (image, channel) plane per job; None - strided depthwise, float64, the wide
    layout on a tile where it does not pay, or no SIMD kernels: the compiled loops."""
    if not (_kernels.DIRECT and xb.dtype == np.float32 and geometry.prod(g.kernel) > 1):
        return None
    if not wide_fits(xb.shape[0], g):
        return None
    if cg > 1 or groups == 1:
        return "wide" if _direct.TILE.isa in WIDE_ISAS else None
    return "stencil" if all(s == 1 for s in g.stride) else None


def wide_fits(n: int, g: Geometry) -> bool:
    """Whether the wide layout (each padded plane split into prod(stride) phase rows of
    the batch, each row with room for a block's over-read) stays within about twice
    the padded input: strides that are large against the input would make it mostly
    row overhead (stride 1000 on a 2000x2000 image: a million rows per channel)."""
    phases = geometry.prod(g.stride)
    wide = phases * (n * geometry.prod(phase_plane(g.padded, g.stride)) + 2 * BLOCK_Q)
    return wide <= 2 * n * geometry.prod(g.padded) + 4096


# Whether a stride-1 forward lays its input in :func:`.direct.layout.shared_plane` (rows
# and images sharing their zero padding) rather than in the padded plane, and so does a
# strided conv's input gradient with dy: fewer positions computed and never stored.  A
# switch for measuring one against the other.
SHARE_PADDING = True


def shares_padding(g: Geometry, mode: str) -> bool:
    """Whether the forward's layout shares zero padding between rows and images
    (:data:`SHARE_PADDING`; stride 1, zero padding)."""
    return SHARE_PADDING and mode == "constant" and all(s == 1 for s in g.stride)


def input_grad_padding(g: Geometry, mode: str) -> tuple[bool, geometry.Pairs]:
    """How to pad the output gradient so that a stride-1 convolution with the flipped
    weights gives the input gradient: by (reach - lo, reach - hi), the result then being
    the input's gradient itself (``exact``: zero padding no wider than the reach); else by
    (reach, reach), the result being the padded input's, to fold back with the padding's
    adjoint."""
    reach = tuple(d * (k - 1) for k, d in zip(g.kernel, g.dilation, strict=True))
    exact = mode == "constant" and all(r >= lo and r >= hi for r, (lo, hi) in zip(reach, g.pads, strict=True))
    dpads = tuple((r - lo, r - hi) if exact else (r, r) for r, (lo, hi) in zip(reach, g.pads, strict=True))
    return exact, dpads


def stencil_forward(
    xb: np.ndarray, weight: np.ndarray, g: Geometry, groups: int, mode: str, unbatched: bool
) -> tuple[np.ndarray, ConvCtx]:
    c_out = weight.shape[0]
    w = weight.astype(np.float32, copy=False).reshape(groups, c_out // groups, -1)
    with on_one_thread(_macs(xb.shape[0], c_out, 1, g)):
        y = _direct.depthwise(xb, weight, g.pads, mode, g.kernel, g.dilation, ratio=c_out // groups)
    ctx = ConvCtx(
        g, groups, mode, None, w, xb.shape, weight.shape, weight.dtype, False, unbatched, y.shape, xp=xb, stencil=True
    )
    return y, ctx


def stencil_backward(dy: np.ndarray, ctx: ConvCtx, input_grad: bool) -> tuple[np.ndarray | None, np.ndarray]:
    """Weight gradient: each channel's plane products, three taps per pass.  Input
    gradient: the same stencil on the output gradient padded by (reach - lo, reach - hi),
    taps flipped, summed over each input channel's outputs."""
    with on_one_thread(_macs(ctx.x_shape[0], ctx.w_shape[0], 1, ctx.geom)):
        return _stencil_backward(dy, ctx, input_grad)


def _stencil_backward(dy: np.ndarray, ctx: ConvCtx, input_grad: bool) -> tuple[np.ndarray | None, np.ndarray]:
    g, xb = ctx.geom, ctx.xp
    assert xb is not None
    if input_grad and not np.isfinite(ctx.w).all():
        return exact_grads(dy, ctx)
    c, co = ctx.x_shape[1], ctx.w_shape[0] // ctx.groups
    dw = _direct.depthwise_weight_grad(xb, dy, g.pads, ctx.mode, g.kernel, g.dilation, co)
    dw = finite_or_exact(dw, dy, ctx).astype(ctx.w_dtype, copy=False)
    if not input_grad:
        return None, dw
    exact, dpads = input_grad_padding(g, ctx.mode)
    wf = np.flip(ctx.w.reshape(c, co, -1), axis=-1)  # (C_in, multiplier, taps), taps reversed
    wf = np.ascontiguousarray(wf).reshape((c, co) + g.kernel)
    dx = _direct.depthwise(dy, wf, dpads, "constant", g.kernel, g.dilation, ratio=1)
    return (dx if exact else pad_backward(dx, g.pads, ctx.mode)), dw


def exact_grads(dy: np.ndarray, ctx: ConvCtx) -> tuple[np.ndarray, np.ndarray]:
    """Both gradients on the NumPy path, for weights holding inf or NaN: the input
    gradient is a convolution of ``dy`` padded with zeros, and 0 * inf = NaN where an inf
    weight meets that padding (PyTorch's and the NumPy path's sums have no such term)."""
    assert ctx.xp is not None
    _, ref = reference_forward(ctx.xp, ctx.w.reshape(ctx.w_shape), ctx.geom, ctx.groups, ctx.mode, False)
    dx, dw = reference_backward(dy, ref)[:2]
    return dx, dw.astype(ctx.w_dtype, copy=False)


def finite_or_exact(dw: np.ndarray, dy: np.ndarray, ctx: ConvCtx) -> np.ndarray:
    """``dw`` from a SIMD kernel, or the weight gradient recomputed on the NumPy path
    when it is not finite.  The wide kernel reduces over every position of the padded
    planes, outputs or not, with zeros in ``dy`` where there is no output; an inf or
    NaN in the input at such a position would make 0 * inf = NaN of a weight that never
    met it (PyTorch's gradient stays finite there).  (The outer-product kernel sums over
    outputs only; its non-finite dw are real, and the recomputation agrees.)  Checking the small ``dw`` costs
    nothing; the recomputation runs only when the input holds inf or NaN."""
    if np.isfinite(dw).all():
        return dw
    return exact_grads(dy, ctx)[1]


def wide_forward(
    xb: np.ndarray,
    weight: np.ndarray,
    g: Geometry,
    groups: int,
    mode: str,
    unbatched: bool,
    bias: np.ndarray | None = None,
) -> tuple[np.ndarray, ConvCtx]:
    """The forward on the wide layout; ``bias`` (C_out,) or None, added by the kernel."""
    n, c = xb.shape[:2]
    c_out = weight.shape[0]
    w = weight.astype(np.float32, copy=False).reshape(groups, c_out // groups, -1)
    shared = shares_padding(g, mode)
    plane = _direct.shared_plane(xb.shape[2:], g.pads, g.kernel, g.dilation) if shared else None
    reach = _direct.reach(plane or _direct.phase_plane(g.padded, g.stride), g.kernel, g.dilation, g.stride)
    with on_one_thread(_macs(n, c_out, c // groups, g)):
        src = _direct.Wide(xb, g.pads, mode, reach, stride=g.stride, plane=plane)
        w4 = w.reshape(groups, c_out // groups, c // groups, -1)
        y = _direct.convolve(src, w4, g.kernel, g.dilation, n, bias)
    assert y.shape[2:] == g.out
    ctx = ConvCtx(
        g, groups, mode, None, w, xb.shape, weight.shape, weight.dtype, False, unbatched, y.shape, xp=xb, wide=src
    )
    return y, ctx


def wide_backward(dy: np.ndarray, ctx: ConvCtx, input_grad: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """Weight gradient: the shifted-run product reduced over positions.  Input gradient
    (unless ``input_grad`` is False): the stride-1 convolution of the output gradient
    with the flipped, transposed weights, the output gradient padded so the result is
    exactly the (padded) input; for a strided conv, phase by phase."""
    with on_one_thread(_macs(ctx.x_shape[0], ctx.w_shape[0], ctx.w_shape[1], ctx.geom)):
        return _wide_backward(dy, ctx, input_grad)


def _wide_backward(dy: np.ndarray, ctx: ConvCtx, input_grad: bool) -> tuple[np.ndarray | None, np.ndarray]:
    if input_grad and not np.isfinite(ctx.w).all():  # a check of the small weights
        return exact_grads(dy, ctx)
    g, groups, src = ctx.geom, ctx.groups, ctx.wide
    n, c = ctx.x_shape[:2]
    co = ctx.w_shape[0] // groups
    w4 = ctx.w.reshape(groups, co, c // groups, -1)
    exact, dpads = input_grad_padding(g, ctx.mode)
    dpadded = tuple(o + lo + hi for o, (lo, hi) in zip(g.out, dpads, strict=True))
    # stride 1, exact: dy laid out for the weight gradient (at offset 0 of the source's
    # planes) is dy padded by dpads for the input gradient, entered earlier - the zeros
    # after each of its rows, plane - out = reach - min(lo, hi) on a shared plane, reach on
    # the padded one, cover both pads (reach - lo, reach - hi) - so one copy serves both
    shared = input_grad and exact and all(s == 1 for s in g.stride)
    shift = _direct.flat_offset(src.padded, tuple(lo for lo, _ in dpads)) if shared else 0
    parts = _kernels.num_threads()
    # unless its layout is shared with the input gradient, the outer-product kernel
    # reads dy where it lies (no copy); the wide kernel needs dy laid out
    dw = None if shared else _direct.weight_grad_in_place(src, dy, groups, g.kernel, g.dilation, parts)
    if dw is None:
        dyw = _direct.grad_layout(dy, src, groups, margin=shift)
        dw = _direct.weight_grad(src, dyw, groups, co, g.kernel, g.dilation, parts)
    dw = finite_or_exact(dw, dy, ctx).astype(ctx.w_dtype, copy=False)
    if not input_grad:
        return None, dw
    if shared:
        return _direct.input_grad_shared(dyw, w4, g.kernel, g.dilation, shift, n, ctx.x_shape[2:]), dw
    if any(s > 1 for s in g.stride):  # phase by phase, straight into the input's shape
        if ctx.mode == "constant":
            lo, shape = tuple(p for p, _ in g.pads), ctx.x_shape
        else:
            lo, shape = (0,) * g.nd, (n, c) + g.padded
        dx = _direct.input_grad_strided(
            dy, w4, g.kernel, g.dilation, g.stride, g.padded, lo, shape, share=SHARE_PADDING
        )
        folded = ctx.mode != "constant"
    else:
        # not exact (padding past the reach, or a border mode): dy padded by dpads, rows
        # and images sharing those zeros
        plane = _direct.shared_plane(g.out, dpads, g.kernel, g.dilation) if SHARE_PADDING else None
        reach_dx = _direct.reach(plane or dpadded, g.kernel, g.dilation)
        dsrc = _direct.Wide(dy, dpads, "constant", reach_dx, scratch=True, plane=plane)
        wf = np.flip(w4, axis=-1).transpose(0, 2, 1, 3)  # (groups, cg, co, taps), taps reversed
        dx = _direct.convolve(dsrc, np.ascontiguousarray(wf), g.kernel, g.dilation, n)
        folded = not exact
    if folded:  # dx is the padded input's gradient
        dx = pad_backward(dx, g.pads, ctx.mode)
    return dx, dw
