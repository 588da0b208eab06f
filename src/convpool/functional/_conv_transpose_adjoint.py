"""Convolution's input gradient as an op of its own: the adjoint of convolution, which
is the transposed convolution's forward pass (its "col2im" path).

* stride 1: the adjoint is a convolution of ``dy`` with the flipped kernel (channel axes
  swapped), so it runs on whichever of convolution's implementations applies (the SIMD
  kernels in float32) - where that padding is not negative;
* otherwise, per group, ``cols = W^T @ dy`` (one matrix product) and then col2im, the
  window view's adjoint, adds every column back where its window read the input:
  the compiled ``col2im`` (compiled backend) into a zeroed output, the batch in chunks of
  at most ``settings.TUNING.cols_budget`` bytes of columns in a reused workspace, the chunk's images
  side by side in the columns (one product per group); on the NumPy backend
  :func:`convpool.windows.scatter_add` and the padding's adjoint.

Shapes are the convolution's: ``dy`` is its output gradient ``(N, C_out, *g.out)``,
``weight`` ``(C_out, C_in/groups, *kernel)``, the result ``x_shape`` = ``(N, C_in, *g.in_size)``.
``g.out`` need not be the size the convolution of ``x_shape`` would give: a transposed
convolution's ``output_padding`` leaves room at the high end of the input that no
window reads (zeros in the result).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .. import geometry
from ..backends.compiled import kernels as _kernels
from ..backends.tables import ConvTransposeProblem
from ..geometry import Pairs
from ..settings import TUNING
from ..windows import pad_backward, scatter_add
from ._common import Geometry
from .conv import conv_forward


def why_not(p: ConvTransposeProblem) -> str | None:
    return None  # implementation "col2im" of the conv_transpose table: every geometry


def forward(p: ConvTransposeProblem) -> np.ndarray:
    """The transposed convolution as the input gradient of the convolution it is the
    adjoint of (input ``y``, output ``x``; ``output_padding`` is room at the high end of
    its input that no window reads), bias added."""
    nd = len(p.stride)
    kernel, in_size = tuple(p.weight.shape[2:]), tuple(p.x.shape[2:])
    pads = tuple((q, q) for q in p.padding)
    g = Geometry(p.y_shape[2:], kernel, p.stride, p.dilation, pads, in_size, (0,) * nd)
    y = conv_input_grad(p.x, p.weight, p.y_shape, g, p.groups)
    if p.bias is not None:
        y += p.bias.astype(p.x.dtype, copy=False).reshape((p.y_shape[1],) + (1,) * nd)
    return y


def conv_input_grad(
    dy: np.ndarray, weight: np.ndarray, x_shape: tuple[int, ...], g: Geometry, groups: int
) -> np.ndarray:
    """The gradient with respect to a zero-padded convolution's input, in ``dy``'s dtype."""
    n, c = x_shape[:2]
    c_out = weight.shape[0]
    if n == 0 or c == 0 or c_out == 0:
        return np.zeros(x_shape, dtype=dy.dtype)
    flipped = _flipped_padding(g)
    if flipped is not None:
        return conv_forward(dy, flip_weight(weight, groups), None, 1, flipped, g.dilation, groups, nd=g.nd)[0]
    cg, co = c // groups, c_out // groups
    k, p = geometry.prod(g.kernel), geometry.prod(g.out)
    w = weight.astype(dy.dtype, copy=False).reshape(groups, co, cg * k)
    wt = w.transpose(0, 2, 1)  # (groups, Cg*K, Co)
    dyg = np.ascontiguousarray(dy).reshape(n, groups, co, p)
    if not (_kernels.enabled() and dy.dtype in (np.float32, np.float64)):
        return _numpy_col2im(np.matmul(wt, dyg), x_shape, g)
    return _compiled_col2im(dyg, wt, x_shape, g, groups)


def _flipped_padding(g: Geometry) -> Pairs | None:
    """With stride 1 the adjoint is itself a convolution, of ``dy`` with the flipped kernel:
    ``gx[q] = sum_t dy[q + lo - t*d] w[t]``, padded by ``d*(k-1) - lo`` below and
    ``in - out + lo`` above (the padding that gives ``in`` outputs).  Those pads, or None
    where the stride is not 1 or a pad would be negative (col2im then)."""
    if any(s != 1 for s in g.stride):
        return None
    pairs = tuple(
        (d * (k - 1) - lo, n - o + lo)
        for n, k, d, (lo, _), o in zip(g.in_size, g.kernel, g.dilation, g.pads, g.out, strict=True)
    )
    return pairs if all(a >= 0 and b >= 0 for a, b in pairs) else None


def flip_weight(weight: np.ndarray, groups: int) -> np.ndarray:
    """``(C_out, C_in/groups, *k)`` -> ``(C_in, C_out/groups, *k)`` with every kernel flipped:
    the weight of the adjoint convolution (and, the other way, of a stride-1 transposed
    convolution as a convolution)."""
    c_out, cg = weight.shape[:2]
    kernel = weight.shape[2:]
    w = weight.reshape((groups, c_out // groups, cg) + kernel).swapaxes(1, 2)
    w = w.reshape((groups * cg, c_out // groups) + kernel)
    flip: tuple[Any, ...] = (Ellipsis, *(slice(None, None, -1) for _ in kernel))
    return np.ascontiguousarray(w[flip])


PARALLEL_COLS = 8 * 2**20  # bytes of columns from which the threads take shares of the batch
ONE_BLAS_THREAD_WORK = 1 << 20  # multiply-adds from which the products run on one BLAS thread


def _numpy_col2im(cols: np.ndarray, x_shape: tuple[int, ...], g: Geometry) -> np.ndarray:
    """Columns ``(N, groups, Cg*K, P)`` added back onto the zero-padded input
    (the window view's adjoint), then cropped (the padding's adjoint)."""
    nd = g.nd
    n, c = x_shape[:2]
    windows = cols.reshape((n, c) + g.kernel + g.out)
    axes = (0, 1, *range(2 + nd, 2 + 2 * nd), *range(2, 2 + nd))  # (N, C, *out, *kernel)
    return pad_backward(scatter_add(windows.transpose(axes), (n, c) + g.padded, g.stride, g.dilation), g.pads)


def _compiled_col2im(dyg: np.ndarray, wt: np.ndarray, x_shape: tuple[int, ...], g: Geometry, groups: int) -> np.ndarray:
    """Per chunk of the batch: the columns ``W^T @ dy`` (one product per group, the chunk's
    images side by side) into a reused workspace, then the compiled col2im.  Large batches
    on several cores: each thread its share of the batch, chunk by chunk, with the serial
    col2im and one BLAS thread (the kernels and BLAS's threads never fight over the cores);
    else the chunks in turn with the parallel col2im and the products on one BLAS thread
    (measured, 2 threads: a 16x64x100 -> 32 k4 s2 case took 17 ms with BLAS's threads
    polling between the col2im calls, 2 ms without)."""
    n, co = x_shape[0], dyg.shape[2]
    rows, p = wt.shape[1], dyg.shape[3]  # rows = Cg*K
    gx = np.zeros(x_shape, dtype=dyg.dtype)
    gx5 = gx.reshape(x_shape[:2] + (1,) * (3 - g.nd) + x_shape[2:])
    lo = tuple(a for a, _ in g.pads)
    geo = (as3(g.kernel), as3(g.stride), as3(g.dilation), as3(lo, 0), as3(g.out))
    per_image = groups * rows * p * dyg.itemsize
    step = max(1, TUNING.cols_budget // per_image)

    def run(start: int, stop: int, col2im: Any) -> None:
        for i in range(start, stop, step):
            m = min(step, stop - i)
            cols = _kernels.workspace((groups * rows * m * p,), dyg.dtype)  # per thread
            dyt = np.ascontiguousarray(dyg[i : i + m].transpose(1, 2, 0, 3)).reshape(groups, co, m * p)
            np.matmul(wt, dyt, out=cols.reshape(groups, rows, m * p))
            col2im(cols, *geo, groups, p, rows * m * p, m * p, gx5[i : i + m])

    threads = min(_kernels.num_threads(), n)
    if threads > 1 and n * per_image >= PARALLEL_COLS:
        bounds = [n * t // threads for t in range(threads + 1)]
        with _kernels.one_blas_thread(), ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda t: run(bounds[t], bounds[t + 1], _kernels.col2im_serial), range(threads)))
    elif n * p * rows * co * groups >= ONE_BLAS_THREAD_WORK:
        with _kernels.one_blas_thread():  # BLAS's idle threads would slow the col2im threads
            run(0, n, _kernels.col2im)
    else:  # too small for BLAS to start its threads (and the limit costs ~0.1 ms)
        run(0, n, _kernels.col2im)
    return gx


def as3(v: tuple[int, ...], fill: int = 1) -> np.ndarray:
    """A per-dim tuple as the compiled kernels' 3-entry int64 array (leading ``fill``)."""
    return np.array((fill,) * (3 - len(v)) + tuple(v), dtype=np.int64)
