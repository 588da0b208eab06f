"""Convolution's input gradient as an op of its own: the adjoint of convolution, which
is the transposed convolution's forward pass.

* stride 1: the adjoint is a convolution of ``dy`` with the flipped kernel (channel axes
  swapped), so it runs on whichever of convolution's implementations applies (the SIMD
  kernels in float32) - where that padding is not negative;
* otherwise, per group, ``cols = W^T @ dy`` (one matrix product) and then col2im, the
  window view's adjoint, adds every column back where its window read the input:
  ``_kernels.col2im`` / ``col2im_serial`` (compiled backend) into a zeroed output, the
  batch in chunks (``_conv_im2col.COLS_BUDGET``), each core its own chunks with one BLAS
  thread, as the convolution's backward pass; on the NumPy backend
  :func:`convpool.backends.numpy.conv.col2im` (``windows.scatter_add`` and the padding's adjoint).

Shapes are the convolution's: ``dy`` is its output gradient ``(N, C_out, *g.out)``,
``weight`` ``(C_out, C_in/groups, *kernel)``, the result ``x_shape`` = ``(N, C_in, *g.in_size)``.
``g.out`` need not be the size the convolution of ``x_shape`` would give: a transposed
convolution's ``output_padding`` leaves room at the high end of the input that no
window reads (zeros in the result).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import geometry
from ..backends.compiled import kernels as _kernels
from ..backends.compiled.conv_im2col import _as5, _batch_in_columns, _column_layout, _over_batch, kernel_geometry
from ..backends.numpy.conv import col2im
from ..geometry import Pairs
from ._common import Geometry
from .conv import conv_forward


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
        return col2im(np.matmul(wt, dyg), x_shape, g, "constant")
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


def _compiled_col2im(dyg: np.ndarray, wt: np.ndarray, x_shape: tuple[int, ...], g: Geometry, groups: int) -> np.ndarray:
    """Columns per chunk of the batch into a reused workspace, then the compiled col2im."""
    nd = g.nd
    n = x_shape[0]
    co = dyg.shape[2]
    rows, p = wt.shape[1], dyg.shape[3]  # rows = Cg*K
    lo = tuple(a for a, _ in g.pads)
    geo = kernel_geometry(g, lo)
    gx = np.zeros(x_shape, dtype=dyg.dtype)
    gx5 = _as5(gx, nd)

    def chunk(sl: slice, _im2col: Any, col2im_kernel: Any) -> None:
        m = sl.stop - sl.start
        cols = _kernels.workspace((m * groups * rows * p,), dyg.dtype)
        if _batch_in_columns(p):  # one (Cg*K x Co) @ (Co x m*P) product per group
            dyt = np.ascontiguousarray(dyg[sl].transpose(1, 2, 0, 3)).reshape(groups, co, m * p)
            np.matmul(wt, dyt, out=cols.reshape(groups, rows, m * p))
        else:  # one product per image
            np.matmul(wt, dyg[sl], out=cols.reshape(m, groups, rows, p))
        col2im_kernel(cols, *geo, groups, *_column_layout(m, groups, rows, p), gx5[sl])

    _over_batch(chunk, n, groups * rows * p * dyg.itemsize, backward=True)
    return gx
