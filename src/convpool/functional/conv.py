"""Convolution: multiply every window by learned weights and sum.

One N-d implementation on the window engine ("im2col"):

1. pad the input (zeros or a border mode),
2. take the read-only window view ``(N, C, *out, *kernel)``,
3. lay each group's windows out as columns ``(N, groups, C_in/groups * K, P)``
   (``K`` kernel elements, ``P`` output positions) - the one copy,
4. one batched matrix product with the weights ``(groups, C_out/groups, C_in/groups * K)``
   gives the output directly in ``(N, C_out, *out)`` layout.

The backward pass is the same in reverse: ``grad_weight = grad_out @ cols^T``,
``grad_cols = W^T @ grad_out``, then the window view's adjoint
(:func:`convpool.windows.scatter_add`) and the padding's adjoint.

As in deep-learning libraries this is cross-correlation (the kernel is not
flipped).  Shape: input ``(N, C_in, *in)`` or ``(C_in, *in)``, weight
``(C_out, C_in/groups, *kernel)``, output ``(N, C_out, *out)`` with per dim
``out = floor((in + pad_lo + pad_hi - dilation*(kernel-1) - 1) / stride) + 1``.

``padding`` may be an int, a tuple, explicit ``(lo, hi)`` pairs, 'valid' or
'same'.  'same' with stride 1 is PyTorch's; with stride > 1 (which PyTorch
refuses) convpool uses TensorFlow's rule: ``out = ceil(in / stride)`` and the
odd padding pixel goes to the end.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _args, _kernels
from ..windows import pad, pad_backward, scatter_add, window_view
from . import _trim
from ._common import Geometry, batched, check_grad, make_geometry
from ._trim import Trim


@dataclass
class ConvCtx:
    geom: Geometry
    groups: int
    mode: str
    cols: np.ndarray | None  # (N, g, Cg*K, P); None on the compiled path (recomputed from xp)
    w: np.ndarray  # (g, Cout/g, Cg*K), in the input's dtype
    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    w_dtype: np.dtype
    has_bias: bool
    unbatched: bool
    y_shape: tuple[int, ...]
    xp: np.ndarray | None = None  # im2col: the (border-)padded input, zero padding implicit; direct: the input
    lo: tuple[int, ...] = ()  # compiled path: zero padding the kernels still apply
    wide: Any = None  # direct path: the padded input as a convpool._direct.Wide
    stencil: bool = False  # direct depthwise path: xp is the input, padded in the kernels


def _check_weight(x: np.ndarray, weight: Any, bias: Any, nd: int, groups: Any) -> tuple[np.ndarray, np.ndarray | None]:
    weight = _args.check_array(weight, "weight")
    if weight.ndim != nd + 2:
        raise ValueError(
            f"weight of a {nd}-d conv must have {nd + 2} dims (C_out, C_in/groups, *kernel), got shape {weight.shape}"
        )
    if not _args._is_int(groups) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    c_in, c_out = x.shape[1], weight.shape[0]
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide both in_channels={c_in} and out_channels={c_out}")
    if weight.shape[1] * groups != c_in:
        raise ValueError(
            f"input has {c_in} channels but weight of shape {weight.shape} with groups={groups} "
            f"expects {weight.shape[1] * groups} (weight.shape[1] * groups)"
        )
    if bias is not None:
        bias = _args.check_array(bias, "bias")
        if bias.shape != (c_out,):
            raise ValueError(f"bias must have shape ({c_out},) (out_channels), got {bias.shape}")
    return weight, bias


def conv_forward(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    *,
    nd: int | None = None,
) -> tuple[np.ndarray, ConvCtx | TrimmedCtx]:
    """N-d convolution forward; returns ``(y, ctx)`` for :func:`conv_backward`."""
    if nd is None:
        nd = np.ndim(weight) - 2
    xb, unbatched = batched(x, nd)
    if 0 in xb.shape[2:]:  # PyTorch refuses it too: only the batch or channels may be empty
        raise ValueError(f"input has an empty spatial dimension: shape {np.shape(x)}; only N or C may be 0")
    weight, bias = _check_weight(xb, weight, bias, nd, groups)
    mode = _args.check_padding_mode(padding_mode)
    g = make_geometry(xb.shape[2:], nd, weight.shape[2:], stride, padding, dilation)
    trim = _trim.plan(g) if mode == "constant" else None
    y: np.ndarray
    ctx: ConvCtx | TrimmedCtx
    if trim is not None:
        y, ctx = _trimmed_forward(xb, weight, g, trim, groups, unbatched)
    elif xb.size == 0 or weight.size == 0:  # nothing to compute: an empty batch or no channels
        y = np.zeros((xb.shape[0], weight.shape[0]) + g.out, dtype=xb.dtype)
        ctx = TrimmedCtx(None, Trim(empty=True), xb.shape, xb.dtype, weight.shape, weight.dtype, unbatched, y.shape)
    elif _kernels.enabled() and xb.dtype in (np.float32, np.float64):
        y, ctx = _fast_forward(xb, weight, g, groups, mode, unbatched)
    else:
        y, ctx = _reference_forward(xb, weight, g, groups, mode, unbatched)
    if bias is not None:
        y += bias.astype(xb.dtype, copy=False).reshape((weight.shape[0],) + (1,) * nd)
    ctx.has_bias = bias is not None
    return (y[0] if unbatched else y), ctx


def _reference_forward(
    xb: np.ndarray, weight: np.ndarray, g: Geometry, groups: int, mode: str, unbatched: bool
) -> tuple[np.ndarray, ConvCtx]:
    """The readable NumPy path: window view, one copy into columns, one batched product."""
    nd = g.nd
    xp = pad(xb, g.pads, mode)
    n, c = xb.shape[:2]
    c_out = weight.shape[0]
    cg, k, p = c // groups, _args.prod(g.kernel), _args.prod(g.out)
    view = window_view(xp, g.kernel, g.stride, g.dilation, g.out)  # (N, C, *out, *k)
    view = view.reshape((n, groups, cg) + g.out + g.kernel)
    axes = (0, 1, 2, *range(3 + nd, 3 + 2 * nd), *range(3, 3 + nd))
    cols = np.ascontiguousarray(view.transpose(axes)).reshape(n, groups, cg * k, p)
    w = weight.astype(xb.dtype, copy=False).reshape(groups, c_out // groups, cg * k)
    y = np.matmul(w, cols).reshape((n, c_out) + g.out)
    return y, ConvCtx(g, groups, mode, cols, w, xb.shape, weight.shape, weight.dtype, False, unbatched, y.shape)


@dataclass
class TrimmedCtx:
    """A convolution computed as a trimmed sub-problem (:mod:`._trim`), or one with
    nothing to compute (``sub`` None: an empty input, no channels, or no window that
    reads the input)."""

    sub: ConvCtx | TrimmedCtx | None
    trim: Trim
    x_shape: tuple[int, ...]
    dtype: np.dtype  # the input's, in which it computes
    w_shape: tuple[int, ...]
    w_dtype: np.dtype
    unbatched: bool
    y_shape: tuple[int, ...]
    has_bias: bool = False


def _trimmed_forward(
    xb: np.ndarray, weight: np.ndarray, g: Geometry, trim: Trim, groups: int, unbatched: bool
) -> tuple[np.ndarray, TrimmedCtx]:
    """Run the sub-problem that reads the input and place it in a zero output."""
    shape = (xb.shape[0], weight.shape[0]) + g.out
    sub = None
    if trim.empty:
        y = np.zeros(shape, dtype=xb.dtype)
    else:
        x_sub = xb[trim.at(trim.in_slices)]
        w_sub = weight[trim.at(trim.tap_slices)]
        y_sub, sub = conv_forward(x_sub, w_sub, None, trim.stride, trim.pads, trim.dilation, groups, nd=g.nd)
        if trim.full(g):
            y = y_sub
        else:
            y = np.zeros(shape, dtype=xb.dtype)
            y[trim.at(trim.out_slices)] = y_sub
    return y, TrimmedCtx(sub, trim, xb.shape, xb.dtype, weight.shape, weight.dtype, unbatched, shape)


def _trimmed_backward(dy: np.ndarray, ctx: TrimmedCtx, input_grad: bool) -> tuple[np.ndarray | None, np.ndarray]:
    trim = ctx.trim
    if ctx.sub is None:
        dx = np.zeros(ctx.x_shape, dtype=ctx.dtype) if input_grad else None
        return dx, np.zeros(ctx.w_shape, dtype=ctx.w_dtype)
    dy_sub = np.ascontiguousarray(dy[trim.at(trim.out_slices)])
    dx_sub, dw_sub, _ = _backward(dy_sub, ctx.sub, input_grad)
    dw = np.zeros(ctx.w_shape, dtype=ctx.w_dtype)
    dw[trim.at(trim.tap_slices)] = dw_sub
    if dx_sub is None:
        return None, dw
    if trim.full_input(ctx.x_shape):
        return dx_sub, dw
    dx = np.zeros(ctx.x_shape, dtype=ctx.dtype)
    dx[trim.at(trim.in_slices)] = dx_sub
    return dx, dw


def conv_backward(dy: Any, ctx: ConvCtx | TrimmedCtx) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients ``(grad_input, grad_weight, grad_bias)`` (``grad_bias`` None without bias)."""
    dx, dw, db = _backward(dy, ctx, input_grad=True)
    assert dx is not None
    return dx, dw, db


def conv_param_backward(dy: Any, ctx: ConvCtx | TrimmedCtx) -> tuple[np.ndarray, np.ndarray | None]:
    """``(grad_weight, grad_bias)`` only: for a first layer, whose input needs no gradient
    (PyTorch skips it too when the input does not require grad)."""
    _, dw, db = _backward(dy, ctx, input_grad=False)
    return dw, db


def _backward(
    dy: Any, ctx: ConvCtx | TrimmedCtx, input_grad: bool
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    dtype = ctx.dtype if isinstance(ctx, TrimmedCtx) else ctx.w.dtype
    dy = check_grad(dy, ctx.y_shape[1:] if ctx.unbatched else ctx.y_shape, dtype)
    if ctx.unbatched:
        dy = dy[None]
    db = _bias_grad(dy).astype(ctx.w_dtype, copy=False) if ctx.has_bias else None
    if isinstance(ctx, TrimmedCtx):
        dx, dw = _trimmed_backward(dy, ctx, input_grad)
    elif ctx.stencil:
        dx, dw = _stencil_backward(dy, ctx, input_grad)
    elif ctx.wide is not None:
        dx, dw = _direct_backward(dy, ctx, input_grad)
    elif ctx.cols is None:
        dx, dw = _fast_backward(dy, ctx)
    else:
        dx, dw = _reference_backward(dy, ctx)
    if dx is not None and ctx.unbatched:
        dx = dx[0]
    return dx, dw, db


def _bias_grad(dy: np.ndarray) -> np.ndarray:
    """Sum of dy (N, C, *spatial) over all but the channel axis."""
    n, c = dy.shape[:2]
    if _kernels.worth_parallel(dy):
        sums = np.empty(n * c, dtype=dy.dtype)
        _kernels.plane_sum(np.ascontiguousarray(dy).reshape(n * c, -1), sums)  # one parallel pass
        return sums.reshape(n, c).sum(axis=0)
    return dy.sum(axis=(0, *range(2, dy.ndim)))


def _reference_backward(dy: np.ndarray, ctx: ConvCtx) -> tuple[np.ndarray, np.ndarray]:
    g, groups, cols = ctx.geom, ctx.groups, ctx.cols
    assert cols is not None
    nd = g.nd
    n, c = ctx.x_shape[:2]
    dyg = dy.reshape(n, groups, ctx.w_shape[0] // groups, cols.shape[-1])  # (N, g, Cout/g, P)
    dw = np.matmul(dyg, cols.transpose(0, 1, 3, 2)).sum(axis=0)
    dw = dw.reshape(ctx.w_shape).astype(ctx.w_dtype, copy=False)
    dcols = np.matmul(ctx.w.transpose(0, 2, 1), dyg)  # (N, g, Cg*K, P)
    dcols = dcols.reshape((n, c) + g.kernel + g.out)
    axes = (0, 1, *range(2 + nd, 2 + 2 * nd), *range(2, 2 + nd))
    gp = scatter_add(dcols.transpose(axes), (n, c) + g.padded, g.stride, g.dilation)
    return pad_backward(gp, g.pads, ctx.mode), dw


# --- compiled path -------------------------------------------------------------------
#
# Which kernel runs (float32 / float64 as the input):
#   float32, window > 1x1, not depthwise  -> convpool._direct wide layout (SIMD, any stride)
#   float32 depthwise, stride 1           -> convpool._direct.depthwise (SIMD plane stencil)
#   float32 1x1, stride 1, no padding     -> convpool._direct.pointwise (SIMD, in place)
#   other depthwise (float64, strided)    -> _kernels.depthwise_*
#   otherwise (float64)                   -> im2col + BLAS, chunked; 1x1: one matmul

COLS_BUDGET = 32 * 2**20  # bytes of im2col columns per chunk: memory stays bounded


def _k3(v: tuple[int, ...], fill: int) -> np.ndarray:
    return np.array((fill,) * (3 - len(v)) + tuple(v), dtype=np.int64)


def _as5(a: np.ndarray, nd: int) -> np.ndarray:
    return a.reshape(a.shape[:2] + (1,) * (3 - nd) + a.shape[2:])


def _is_pointwise(g: Geometry, lo: tuple[int, ...]) -> bool:
    return all(k == 1 for k in g.kernel) and all(s == 1 for s in g.stride) and not any(lo)


def _batch_in_columns(p: int) -> bool:
    """Small outputs: lay the chunk's images side by side in the columns, so one large
    matrix product replaces many small ones (BLAS is far from peak on small products)."""
    return p < 1024


def _column_layout(m: int, groups: int, rows: int, p: int) -> tuple[int, int, int]:
    """Strides (image, group, row) of the flat columns of ``m`` images:
    (groups, rows, m*P) when :func:`_batch_in_columns`, else (m, groups, rows, P)."""
    if _batch_in_columns(p):
        return p, rows * m * p, m * p
    return groups * rows * p, rows * p, p


def _chunks(n: int, per_item: int) -> list[slice]:
    step = max(1, COLS_BUDGET // max(per_item, 1))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


_pool: ThreadPoolExecutor | None = None


def _over_batch(fn: Callable[..., None], n: int, per_item: int, backward: bool = False) -> None:
    """Run ``fn(batch_slice, *kernels)`` over chunks of the batch.

    With several cores and threadpoolctl available, each core takes its own
    chunks - im2col (serial, GIL released) then a single-threaded matrix
    product - so the compiled loops and the BLAS threads never fight over the
    cores.  Otherwise the chunks run in turn with the parallel kernels and the
    multi-threaded BLAS.
    """
    global _pool
    threads = _kernels.num_threads()
    limiter = _kernels.blas_limiter()
    chunks = _chunks(n, per_item)
    big = n * per_item >= 8 * 2**20  # below ~8 MB of columns, handing work to threads costs more than it saves
    if threads > 1 and limiter is not None and n >= threads and big:
        if _pool is None:
            _pool = ThreadPoolExecutor(threads, thread_name_prefix="convpool")
        size = min(-(-n // threads), chunks[0].stop - chunks[0].start)  # bounded workspace per thread
        parts = [slice(i, min(i + size, n)) for i in range(0, n, size)]
        serial = (_kernels.im2col_serial, _kernels.col2im_serial)[: 2 if backward else 1]
        with _kernels.one_blas_thread():
            for f in [_pool.submit(fn, sl, *serial) for sl in parts]:
                f.result()
        return
    parallel = (_kernels.im2col, _kernels.col2im)[: 2 if backward else 1]
    for sl in chunks:
        fn(sl, *parallel)


def _fast_forward(
    xb: np.ndarray, weight: np.ndarray, g: Geometry, groups: int, mode: str, unbatched: bool
) -> tuple[np.ndarray, ConvCtx]:
    """The direct SIMD kernels where they apply (see the table above); else im2col in one
    compiled pass (zero padding applied on the fly), chunked over the batch so the
    columns never take more than ``COLS_BUDGET`` bytes; or, when every output channel
    reads one input channel (depthwise), a direct compiled loop."""
    nd = g.nd
    n, c = xb.shape[:2]
    c_out, cg = weight.shape[0], c // groups
    kind = _direct_kind(xb, g, cg, groups)  # decided before any padding: these kernels pad
    if kind == "wide":
        return _direct_forward(xb, weight, g, groups, mode, unbatched)
    if kind == "stencil":
        return _stencil_forward(xb, weight, g, groups, mode, unbatched)
    if mode == "constant":
        xp, lo = xb, tuple(a for a, _ in g.pads)
    else:
        xp, lo = pad(xb, g.pads, mode), (0,) * nd
    xp = np.ascontiguousarray(xp)
    k, p = _args.prod(g.kernel), _args.prod(g.out)
    w = weight.astype(xb.dtype, copy=False).reshape(groups, c_out // groups, cg * k)
    geo = (_k3(g.kernel, 1), _k3(g.stride, 1), _k3(g.dilation, 1), _k3(lo, 0), _k3(g.out, 1))
    if cg == 1:
        y = np.zeros((n, c_out) + g.out, dtype=xb.dtype)
        _kernels.depthwise_forward(
            _as5(xp, nd), np.ascontiguousarray(w.reshape(c_out, k)), *geo, c_out // groups, _as5(y, nd)
        )
    elif _is_pointwise(g, lo) and _direct_pointwise(xp):  # read in place by the SIMD kernel
        from .. import _direct

        y = _direct.pointwise(xp.reshape(n, c, p), w).reshape((n, c_out) + g.out)
    elif _is_pointwise(g, lo):
        y = np.matmul(w, xp.reshape(n, groups, cg, p)).reshape((n, c_out) + g.out)
    else:
        y = np.empty((n, c_out) + g.out, dtype=xb.dtype)
        x5, co = _as5(xp, nd), c_out // groups

        def forward_chunk(sl: slice, im2col: Any) -> None:
            m = sl.stop - sl.start
            cols = _kernels.workspace((m * groups * cg * k * p,), xb.dtype)
            im2col(x5[sl], *geo, groups, cols, *_column_layout(m, groups, cg * k, p))
            if _batch_in_columns(p):  # one (C_out/g x Cg*K) @ (Cg*K x m*P) product per group
                out = np.matmul(w, cols.reshape(groups, cg * k, m * p)).reshape(groups, co, m, p)
                y[sl].reshape(m, groups, co, p)[...] = out.transpose(2, 0, 1, 3)
            else:  # one product per image
                np.matmul(w, cols.reshape(m, groups, cg * k, p), out=y[sl].reshape(m, groups, co, p))

        _over_batch(forward_chunk, n, cg * k * p * groups * xb.itemsize)
    ctx = ConvCtx(
        g, groups, mode, None, w, xb.shape, weight.shape, weight.dtype, False, unbatched, y.shape, xp=xp, lo=lo
    )
    return y, ctx


def _direct_pointwise(x: np.ndarray) -> bool:
    """A 1x1 conv on the SIMD kernel (float32): it reads the input where it lies, where
    a matrix product per image runs OpenBLAS's AVX2 code on this machine."""
    return _kernels.DIRECT and x.dtype == np.float32


def _direct_kind(xb: np.ndarray, g: Geometry, cg: int, groups: int) -> str | None:
    """Which SIMD kernels of :mod:`convpool._direct` take a float32 conv with a real
    window (a 1x1 conv reads its input in place instead): "wide" - the wide layout, any
    stride, the input split into its stride phases when strided; "stencil" - depthwise
    (one input channel per group) with stride 1, one (image, channel) plane per job;
    None - strided depthwise, float64, or no SIMD kernels: the compiled loops."""
    if not (_kernels.DIRECT and xb.dtype == np.float32 and _args.prod(g.kernel) > 1):
        return None
    if not _wide_fits(xb.shape[0], g):
        return None
    if cg > 1 or groups == 1:
        return "wide"
    return "stencil" if all(s == 1 for s in g.stride) else None


def _wide_fits(n: int, g: Geometry) -> bool:
    """Whether the wide layout (each padded plane split into prod(stride) phase rows of
    the batch, each row with room for a block's over-read) stays within about twice
    the padded input: strides that are large against the input would make it mostly
    row overhead (stride 1000 on a 2000x2000 image: a million rows per channel)."""
    from .._direct import BLOCK_Q, phase_plane

    phases = _args.prod(g.stride)
    wide = phases * (n * _args.prod(phase_plane(g.padded, g.stride)) + 2 * BLOCK_Q)
    return wide <= 2 * n * _args.prod(g.padded) + 4096


def _input_grad_padding(g: Geometry, mode: str) -> tuple[bool, _args.Pairs]:
    """How to pad the output gradient so that a stride-1 convolution with the flipped
    weights gives the input gradient: by (reach - lo, reach - hi), the result then being
    the input's gradient itself (``exact``: zero padding no wider than the reach); else by
    (reach, reach), the result being the padded input's, to fold back with the padding's
    adjoint."""
    reach = tuple(d * (k - 1) for k, d in zip(g.kernel, g.dilation, strict=True))
    exact = mode == "constant" and all(r >= lo and r >= hi for r, (lo, hi) in zip(reach, g.pads, strict=True))
    dpads = tuple((r - lo, r - hi) if exact else (r, r) for r, (lo, hi) in zip(reach, g.pads, strict=True))
    return exact, dpads


def _stencil_forward(
    xb: np.ndarray, weight: np.ndarray, g: Geometry, groups: int, mode: str, unbatched: bool
) -> tuple[np.ndarray, ConvCtx]:
    from .. import _direct

    c_out = weight.shape[0]
    w = weight.astype(np.float32, copy=False).reshape(groups, c_out // groups, -1)
    y = _direct.depthwise(xb, weight, g.pads, mode, g.kernel, g.dilation, ratio=c_out // groups)
    ctx = ConvCtx(
        g, groups, mode, None, w, xb.shape, weight.shape, weight.dtype, False, unbatched, y.shape, xp=xb, stencil=True
    )
    return y, ctx


def _stencil_backward(dy: np.ndarray, ctx: ConvCtx, input_grad: bool) -> tuple[np.ndarray | None, np.ndarray]:
    """Weight gradient: each channel's plane products, three taps per pass.  Input
    gradient: the same stencil on the output gradient padded by (reach - lo, reach - hi),
    taps flipped, summed over each input channel's outputs."""
    from .. import _direct

    g, xb = ctx.geom, ctx.xp
    assert xb is not None
    c, co = ctx.x_shape[1], ctx.w_shape[0] // ctx.groups
    dw = _direct.depthwise_weight_grad(xb, dy, g.pads, ctx.mode, g.kernel, g.dilation, co)
    dw = _finite_or_exact(dw, dy, ctx).astype(ctx.w_dtype, copy=False)
    if not input_grad:
        return None, dw
    exact, dpads = _input_grad_padding(g, ctx.mode)
    wf = np.flip(ctx.w.reshape(c, co, -1), axis=-1)  # (C_in, multiplier, taps), taps reversed
    wf = np.ascontiguousarray(wf).reshape((c, co) + g.kernel)
    dx = _direct.depthwise(dy, wf, dpads, "constant", g.kernel, g.dilation, ratio=1)
    return (dx if exact else pad_backward(dx, g.pads, ctx.mode)), dw


def _finite_or_exact(dw: np.ndarray, dy: np.ndarray, ctx: ConvCtx) -> np.ndarray:
    """``dw`` from a SIMD kernel, or the weight gradient recomputed on the NumPy path
    when it is not finite.  The SIMD kernels reduce over every position of the padded
    planes, outputs or not, with zeros in ``dy`` where there is no output; an inf or
    NaN in the input at such a position would make 0 * inf = NaN of a weight that never
    met it (PyTorch's gradient stays finite there).  Checking the small ``dw`` costs
    nothing; the recomputation runs only when the input holds inf or NaN."""
    if np.isfinite(dw).all():
        return dw
    assert ctx.xp is not None
    weight = ctx.w.reshape(ctx.w_shape)
    _, ref = _reference_forward(ctx.xp, weight, ctx.geom, ctx.groups, ctx.mode, False)
    return _reference_backward(dy, ref)[1]


def _direct_forward(
    xb: np.ndarray, weight: np.ndarray, g: Geometry, groups: int, mode: str, unbatched: bool
) -> tuple[np.ndarray, ConvCtx]:
    from .. import _direct

    n, c = xb.shape[:2]
    c_out = weight.shape[0]
    w = weight.astype(np.float32, copy=False).reshape(groups, c_out // groups, -1)
    plane = _direct.phase_plane(g.padded, g.stride)
    reach = _direct.reach(plane, g.kernel, g.dilation, g.stride)
    src = _direct.Wide(xb, g.pads, mode, reach, stride=g.stride)
    y = _direct.convolve(src, w.reshape(groups, c_out // groups, c // groups, -1), g.kernel, g.dilation, n)
    assert y.shape[2:] == g.out
    ctx = ConvCtx(
        g, groups, mode, None, w, xb.shape, weight.shape, weight.dtype, False, unbatched, y.shape, xp=xb, wide=src
    )
    return y, ctx


def _direct_backward(dy: np.ndarray, ctx: ConvCtx, input_grad: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """Weight gradient: the shifted-run product reduced over positions.  Input gradient
    (unless ``input_grad`` is False): the stride-1 convolution of the output gradient
    with the flipped, transposed weights, the output gradient padded so the result is
    exactly the (padded) input; for a strided conv, phase by phase."""
    from .. import _direct

    g, groups, src = ctx.geom, ctx.groups, ctx.wide
    n, c = ctx.x_shape[:2]
    co = ctx.w_shape[0] // groups
    w4 = ctx.w.reshape(groups, co, c // groups, -1)
    exact, dpads = _input_grad_padding(g, ctx.mode)
    dpadded = tuple(o + lo + hi for o, (lo, hi) in zip(g.out, dpads, strict=True))
    # a 'same'-size conv (lo + hi == reach): dy padded for the input gradient has the
    # plane of the weight gradient's layout, so one copy of dy serves both
    shared = input_grad and exact and all(s == 1 for s in g.stride) and dpadded == src.padded
    shift = _direct.flat_offset(src.padded, tuple(lo for lo, _ in dpads)) if shared else 0
    dyw = _direct.grad_layout(dy, src, groups, margin=shift)
    dw = _direct.weight_grad(src, dyw, groups, co, g.kernel, g.dilation, _kernels.num_threads())
    dw = _finite_or_exact(dw, dy, ctx).astype(ctx.w_dtype, copy=False)
    if not input_grad:
        return None, dw
    if shared:
        return _direct.input_grad_shared(dyw, w4, g.kernel, g.dilation, shift, n), dw
    if any(s > 1 for s in g.stride):  # phase by phase, straight into the input's shape
        if ctx.mode == "constant":
            lo, shape = tuple(p for p, _ in g.pads), ctx.x_shape
        else:
            lo, shape = (0,) * g.nd, (n, c) + g.padded
        dx = _direct.input_grad_strided(dy, w4, g.kernel, g.dilation, g.stride, g.padded, lo, shape)
        folded = ctx.mode != "constant"
    else:
        reach_dx = _direct.reach(dpadded, g.kernel, g.dilation)
        dsrc = _direct.Wide(dy, dpads, "constant", reach_dx, scratch=True)
        wf = np.flip(w4, axis=-1).transpose(0, 2, 1, 3)  # (groups, cg, co, taps), taps reversed
        dx = _direct.convolve(dsrc, np.ascontiguousarray(wf), g.kernel, g.dilation, n)
        folded = not exact
    if folded:  # dx is the padded input's gradient
        dx = pad_backward(dx, g.pads, ctx.mode)
    return dx, dw


def _fast_backward(dy: np.ndarray, ctx: ConvCtx) -> tuple[np.ndarray, np.ndarray]:
    g, groups, xp = ctx.geom, ctx.groups, ctx.xp
    assert xp is not None
    nd = g.nd
    n, c = ctx.x_shape[:2]
    c_out = ctx.w_shape[0]
    cg, k, p = c // groups, _args.prod(g.kernel), _args.prod(g.out)
    geo = (_k3(g.kernel, 1), _k3(g.stride, 1), _k3(g.dilation, 1), _k3(ctx.lo, 0))
    dy = np.ascontiguousarray(dy)
    if cg == 1:
        gxp = np.zeros(xp.shape, dtype=xp.dtype)
        dw = np.zeros((c_out, k), dtype=np.float64)
        _kernels.depthwise_backward(
            _as5(dy, nd),
            _as5(xp, nd),
            np.ascontiguousarray(ctx.w.reshape(c_out, k)),
            *geo,
            c_out // groups,
            _as5(gxp, nd),
            dw,
        )
    else:
        dyg = dy.reshape(n, groups, c_out // groups, p)
        wt = ctx.w.transpose(0, 2, 1)
        dw = np.zeros(ctx.w.shape, dtype=ctx.w.dtype)
        if _is_pointwise(g, ctx.lo):
            xt, parts = xp.reshape(n, groups, cg, p).transpose(0, 1, 3, 2), []
            # per core, one BLAS thread each: idle OpenBLAS workers would slow the kernel after
            _over_batch(lambda sl, *_: parts.append(np.matmul(dyg[sl], xt[sl]).sum(axis=0)), n, cg * p * xp.itemsize)
            dw += np.sum(parts, axis=0)
            if _direct_pointwise(dy):
                from .. import _direct

                gxp = _direct.pointwise(dy.reshape(n, c_out, p), np.ascontiguousarray(wt)).reshape(xp.shape)
            else:
                gxp = np.matmul(wt, dyg).reshape(xp.shape)
        else:
            gxp = np.zeros(xp.shape, dtype=xp.dtype)
            out3, co = _k3(g.out, 1), c_out // groups
            x5, gx5, partial = _as5(xp, nd), _as5(gxp, nd), []

            def backward_chunk(sl: slice, im2col: Any, col2im: Any) -> None:
                m = sl.stop - sl.start
                cols = _kernels.workspace((m * groups * cg * k * p,), xp.dtype)
                layout = _column_layout(m, groups, cg * k, p)
                im2col(x5[sl], *geo, out3, groups, cols, *layout)
                if _batch_in_columns(p):
                    c3 = cols.reshape(groups, cg * k, m * p)
                    dyt = np.ascontiguousarray(dyg[sl].transpose(1, 2, 0, 3)).reshape(groups, co, m * p)
                    partial.append(np.matmul(dyt, c3.transpose(0, 2, 1)))
                    np.matmul(wt, dyt, out=c3)  # the columns' gradient, in the same workspace
                else:
                    cols4 = cols.reshape(m, groups, cg * k, p)
                    partial.append(np.matmul(dyg[sl], cols4.transpose(0, 1, 3, 2)).sum(axis=0))
                    np.matmul(wt, dyg[sl], out=cols4)
                col2im(cols, *geo, out3, groups, *layout, gx5[sl])

            _over_batch(backward_chunk, n, cg * k * p * groups * xp.itemsize, backward=True)
            dw += np.sum(partial, axis=0)
    dw = dw.reshape(ctx.w_shape).astype(ctx.w_dtype, copy=False)
    dx = gxp if ctx.mode == "constant" else pad_backward(gxp, g.pads, ctx.mode)
    return dx, dw


def _conv(nd: int) -> Callable[..., Any]:
    def conv(
        input: Any,
        weight: Any,
        bias: Any = None,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        *,
        padding_mode: str = "zeros",
    ) -> np.ndarray:
        return conv_forward(input, weight, bias, stride, padding, dilation, groups, padding_mode, nd=nd)[0]

    conv.__name__ = conv.__qualname__ = f"conv{nd}d"
    conv.__doc__ = (
        f"{nd}-d convolution (cross-correlation), PyTorch's ``conv{nd}d``; beyond it, "
        "``padding_mode`` ('zeros', 'reflect', 'replicate', 'circular'), explicit (lo, hi) "
        "padding pairs and 'same' with stride > 1.  See the module doc."
    )
    return conv


conv1d = _conv(1)
conv2d = _conv(2)
conv3d = _conv(3)
