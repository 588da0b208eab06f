"""The compiled convolution loops (numba, :mod:`convpool.backends.compiled.kernels`) and BLAS: im2col
into a reused workspace then a matrix product, depthwise as a direct loop, 1x1 as one
product (or the SIMD kernel reading the input in place).

Which kernel runs (float32 / float64 as the input) - decided in :mod:`.conv`:

* float32, window > 1x1, not depthwise  -> :mod:`convpool.backends.compiled.conv_direct` "wide" (SIMD, any stride)
* float32 depthwise, stride 1           -> :mod:`convpool.backends.compiled.conv_direct` "stencil" (SIMD)
* float32 1x1, stride 1, no padding     -> ``convpool.backends.compiled.direct.pointwise`` (SIMD, in place)
* other depthwise (float64, strided)    -> ``_kernels.depthwise_*``
* otherwise (float64)                   -> im2col + BLAS, chunked; 1x1: one matmul
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ... import geometry
from ...functional._common import Geometry
from ...windows import pad, pad_backward
from ..numpy.conv import ConvCtx
from . import kernels as _kernels
from . import threads as _threads

COLS_BUDGET = 32 * 2**20  # bytes of im2col columns per chunk: memory stays bounded


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


def _over_batch(fn: Callable[..., None], n: int, per_item: int, backward: bool = False) -> None:
    """Run ``fn(batch_slice, *kernels)`` over chunks of the batch.

    With several cores and threadpoolctl available, the kernel threads
    (:func:`convpool.backends.compiled.threads.parallel_for`) take chunks of the batch, each
    im2col (serial, GIL released) then a single-threaded matrix product, so the
    compiled loops and the BLAS threads never fight over the cores.  Otherwise
    the chunks run in turn with the parallel kernels and the multi-threaded BLAS.
    """
    threads = _kernels.num_threads()
    limiter = _kernels.blas_limiter()
    chunks = _chunks(n, per_item)
    big = n * per_item >= 8 * 2**20  # below ~8 MB of columns, handing work to threads costs more than it saves
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
    for sl in chunks:
        fn(sl, *parallel)


def forward(
    xb: np.ndarray, weight: np.ndarray, g: Geometry, groups: int, mode: str, unbatched: bool
) -> tuple[np.ndarray, ConvCtx]:
    """im2col in one compiled pass (zero padding applied on the fly), chunked over the
    batch so the columns never take more than ``COLS_BUDGET`` bytes; or, when every
    output channel reads one input channel (depthwise), a direct compiled loop; a 1x1
    convolution reads its input in place."""
    nd = g.nd
    n, c = xb.shape[:2]
    c_out, cg = weight.shape[0], c // groups
    if mode == "constant":
        xp, lo = xb, tuple(a for a, _ in g.pads)
    else:
        xp, lo = pad(xb, g.pads, mode), (0,) * nd
    xp = np.ascontiguousarray(xp)
    k, p = geometry.prod(g.kernel), geometry.prod(g.out)
    w = weight.astype(xb.dtype, copy=False).reshape(groups, c_out // groups, cg * k)
    geo = kernel_geometry(g, lo)
    if cg == 1:
        y = np.zeros((n, c_out) + g.out, dtype=xb.dtype)
        _kernels.depthwise_forward(
            _as5(xp, nd), np.ascontiguousarray(w.reshape(c_out, k)), *geo, c_out // groups, _as5(y, nd)
        )
    elif _is_pointwise(g, lo) and _direct_pointwise(xp):  # read in place by the SIMD kernel
        from . import direct as _direct  # numba's SIMD module: only loaded with the compiled backend

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


def backward(dy: np.ndarray, ctx: ConvCtx) -> tuple[np.ndarray, np.ndarray]:
    g, groups, xp = ctx.geom, ctx.groups, ctx.xp
    assert xp is not None
    nd = g.nd
    n, c = ctx.x_shape[:2]
    c_out = ctx.w_shape[0]
    cg, k, p = c // groups, geometry.prod(g.kernel), geometry.prod(g.out)
    geo = kernel_geometry(g, ctx.lo)[:4]
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
                from . import direct as _direct

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
