"""Implementation "im2col" of the conv table: the compiled im2col into a reused
workspace, then BLAS, chunked over the batch so the columns stay within
``settings.TUNING.cols_budget`` bytes (float32 and float64).  Also the helpers the depthwise loop,
the pointwise path and the transposed convolution share: the 3-d kernel geometry,
the column layout and the split of the batch over the kernel threads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np

from ... import geometry
from ...geometry import Geometry
from ...settings import TUNING
from ...windows import pad, pad_backward
from ..numpy.conv import ConvCtx, new_state
from ..tables import ConvProblem
from . import kernels as _kernels
from . import threads as _threads


def _k3(v: tuple[int, ...], fill: int) -> np.ndarray:
    return np.array((fill,) * (3 - len(v)) + tuple(v), dtype=np.int64)


def kernel_geometry(
    g: Geometry, lo: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Kernel, stride, dilation, the zero padding ``lo`` the kernels apply, and the output
    size, as the compiled im2col / col2im kernels take them (3-d)."""
    return _k3(g.kernel, 1), _k3(g.stride, 1), _k3(g.dilation, 1), _k3(lo, 0), _k3(g.out, 1)


def _as5(a: np.ndarray, nd: int) -> np.ndarray:
    return a.reshape(a.shape[:2] + (1,) * (3 - nd) + a.shape[2:])


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
    step = max(1, TUNING.cols_budget // max(per_item, 1))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


# Columns of at least this many bytes: im2col chunks go to the kernel threads, and a
# product is large enough for BLAS's own threads.
LARGE_COLUMNS = 8 << 20


def _over_batch(
    fn: Callable[..., None], n: int, per_item: int, backward: bool = False, min_split: int = LARGE_COLUMNS
) -> None:
    """Run ``fn(batch_slice, *kernels)`` over chunks of the batch.

    With several cores and threadpoolctl available, the kernel threads
    (:func:`convpool.backends.compiled.threads.parallel_for`) take chunks of the batch, each
    im2col (serial, GIL released) then a single-threaded matrix product, so the
    compiled loops and the BLAS threads never fight over the cores.  Otherwise
    the chunks run in turn with the parallel kernels, and BLAS on one thread unless the
    whole is large: ``fn``'s products are per image, and a small product on several BLAS
    threads waits for OpenBLAS's workers to be scheduled, which on a busy machine takes
    up to a time slice per product (measured: a 1x1 conv's weight gradient, 64 products of
    32x196x128, took 2 s instead of 3-4 ms with PyTorch's threads spinning in the same
    process and another process busy).

    ``min_split``: the work (bytes of columns) from which the kernel threads take chunks:
    below ~8 MB handing im2col work to threads costs more than it saves; a caller whose
    ``fn`` is products alone passes less.
    """
    threads = _kernels.num_threads()
    limiter = _kernels.blas_limiter()
    chunks = _chunks(n, per_item)
    big = n * per_item >= min_split
    if threads > 1 and limiter is not None and n >= threads and big:
        step = chunks[0].stop - chunks[0].start  # bounded workspace per thread
        serial = (_kernels.im2col_serial, _kernels.col2im_serial)[: 2 if backward else 1]

        def run(j0: int, j1: int) -> None:
            for i in range(j0, j1, step):
                fn(slice(i, min(i + step, j1)), *serial)

        with _kernels.one_blas_thread():
            _threads.parallel_for(run, n)
        return
    parallel = (_kernels.im2col, _kernels.col2im)[: 2 if backward else 1]
    with contextlib.nullcontext() if n * per_item >= LARGE_COLUMNS else _kernels.one_blas_thread():
        for sl in chunks:
            fn(sl, *parallel)


def float_problem(p: ConvProblem) -> str | None:
    """The reason the compiled kernels cannot take ``p``, or None: they are built for
    float32 and float64 (empty problems never reach the tables)."""
    if p.x.dtype not in (np.float32, np.float64):
        return f"compiled kernels take float32/float64, not {p.x.dtype}"
    return None


def padded_input(p: ConvProblem) -> tuple[np.ndarray, tuple[int, ...]]:
    """The input as the compiled loops read it and the zero padding they still apply:
    zero padding stays implicit (``lo``), a border mode is padded here."""
    if p.mode == "constant":
        return np.ascontiguousarray(p.x), tuple(a for a, _ in p.g.pads)
    return np.ascontiguousarray(pad(p.x, p.g.pads, p.mode)), (0,) * p.g.nd


def why_not(p: ConvProblem) -> str | None:
    return float_problem(p)


def forward(p: ConvProblem) -> tuple[np.ndarray, ConvCtx]:
    """im2col in one compiled pass (zero padding applied on the fly), then one product
    per group (small outputs: the chunk's images side by side) or per image."""
    xb, weight, g, groups = p.x, p.weight, p.g, p.groups
    nd = g.nd
    n, c = xb.shape[:2]
    c_out, cg = weight.shape[0], c // groups
    xp, lo = padded_input(p)
    k, pos = geometry.prod(g.kernel), geometry.prod(g.out)
    w = weight.astype(xb.dtype, copy=False).reshape(groups, c_out // groups, cg * k)
    geo = kernel_geometry(g, lo)
    y = np.empty((n, c_out) + g.out, dtype=xb.dtype)
    x5, co = _as5(xp, nd), c_out // groups

    def forward_chunk(sl: slice, im2col: Any) -> None:
        m = sl.stop - sl.start
        cols = _kernels.workspace((m * groups * cg * k * pos,), xb.dtype)
        im2col(x5[sl], *geo, groups, cols, *_column_layout(m, groups, cg * k, pos))
        if _batch_in_columns(pos):  # one (C_out/g x Cg*K) @ (Cg*K x m*P) product per group
            out = np.matmul(w, cols.reshape(groups, cg * k, m * pos)).reshape(groups, co, m, pos)
            y[sl].reshape(m, groups, co, pos)[...] = out.transpose(2, 0, 1, 3)
        else:  # one product per image
            np.matmul(w, cols.reshape(m, groups, cg * k, pos), out=y[sl].reshape(m, groups, co, pos))

    _over_batch(forward_chunk, n, cg * k * pos * groups * xb.itemsize)
    return y, new_state(p, w, y.shape, xp=xp, lo=lo)


def backward(dy: np.ndarray, ctx: ConvCtx, input_grad: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """The same columns again: ``dW = dY @ cols^T``, ``dcols = W^T @ dY`` into the
    workspace, then the compiled col2im adds them back onto the input."""
    g, groups, xp = ctx.geom, ctx.groups, ctx.xp
    assert xp is not None
    nd = g.nd
    n, c = ctx.x_shape[:2]
    c_out = ctx.w_shape[0]
    cg, k, p = c // groups, geometry.prod(g.kernel), geometry.prod(g.out)
    geo = kernel_geometry(g, ctx.lo)[:4]
    dy = np.ascontiguousarray(dy)
    dyg = dy.reshape(n, groups, c_out // groups, p)
    wt = ctx.w.transpose(0, 2, 1)
    gxp = np.zeros(xp.shape, dtype=xp.dtype)
    out3, co = _k3(g.out, 1), c_out // groups
    x5, gx5 = _as5(xp, nd), _as5(gxp, nd)
    partial: dict[int, np.ndarray] = {}  # by chunk: summed in batch order, whichever thread ran it

    def backward_chunk(sl: slice, im2col: Any, col2im: Any) -> None:
        m = sl.stop - sl.start
        cols = _kernels.workspace((m * groups * cg * k * p,), xp.dtype)
        layout = _column_layout(m, groups, cg * k, p)
        im2col(x5[sl], *geo, out3, groups, cols, *layout)
        if _batch_in_columns(p):
            c3 = cols.reshape(groups, cg * k, m * p)
            dyt = np.ascontiguousarray(dyg[sl].transpose(1, 2, 0, 3)).reshape(groups, co, m * p)
            partial[sl.start] = np.matmul(dyt, c3.transpose(0, 2, 1))
            np.matmul(wt, dyt, out=c3)  # the columns' gradient, in the same workspace
        else:
            cols4 = cols.reshape(m, groups, cg * k, p)
            partial[sl.start] = np.matmul(dyg[sl], cols4.transpose(0, 1, 3, 2)).sum(axis=0)
            np.matmul(wt, dyg[sl], out=cols4)
        col2im(cols, *geo, out3, groups, *layout, gx5[sl])

    _over_batch(backward_chunk, n, cg * k * p * groups * xp.itemsize, backward=True)
    dw = np.sum([partial[k] for k in sorted(partial)], axis=0).reshape(ctx.w_shape).astype(ctx.w_dtype, copy=False)
    return unpad(gxp, ctx), dw


def unpad(gxp: np.ndarray, ctx: ConvCtx) -> np.ndarray:
    """The input's gradient from the gradient of the input as the loops read it."""
    return gxp if ctx.mode == "constant" else pad_backward(gxp, ctx.geom.pads, ctx.mode)
