"""Adaptive pooling: fix the output size, let the windows follow.

Output cell ``i`` of a dimension with input size ``n`` and output size ``o``
reduces input indices ``floor(i*n/o) .. ceil((i+1)*n/o) - 1`` (PyTorch's rule),
so windows may differ in size by one and may overlap.  Global pooling is the
case ``output_size = 1``.

* Average: separable, so window sums are taken one dimension at a time, then
  divided by the window sizes; the backward pass sums, for every input element,
  the gradients of the windows that contain it, the same way.  A NaN or inf
  stays in the windows that contain it (an averaging matrix would spread it:
  ``0 * nan = nan``).  Global average pooling (output size 1) is one mean per
  plane, compiled: a pass over memory.
* Max: each window is gathered with index arrays (short windows repeat their
  last index, which changes neither the max nor which element is first), and
  the gradient is scattered back with a bincount.

An empty batch or channel axis gives an empty output; an empty spatial
dimension is refused (a window of nothing has no value).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import geometry
from ..backends.compiled import kernels as _kernels
from ._common import batched, check_bool, check_grad, check_spatial


def adaptive_output_size(output_size: Any, in_size: tuple[int, ...]) -> tuple[int, ...]:
    """The output size of adaptive pooling for an input of spatial size ``in_size``:
    ``output_size`` (an int or one per dim, None keeping that dim's size) as a tuple,
    or a ValueError naming it.  A layer checks its argument with ``in_size`` all ones.

    >>> adaptive_output_size((None, 4), (7, 9))
    (7, 4)
    """
    nd = len(in_size)
    if output_size is None or geometry._is_int(output_size):
        sizes: tuple[Any, ...] = (output_size,) * nd
    elif isinstance(output_size, (tuple, list)) and len(output_size) == nd:
        sizes = tuple(output_size)
    else:
        raise ValueError(f"output_size must be an int or a tuple of {nd} ints/None, got {output_size!r}")
    out = []
    for s, n in zip(sizes, in_size, strict=True):
        if s is None:
            out.append(n)
        elif not geometry._is_int(s) or s < 1:
            raise ValueError(f"output_size must be positive ints (or None to keep a size), got {output_size!r}")
        else:
            out.append(int(s))
    return tuple(out)


def bounds(n: int, o: int) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and end (exclusive) input index of each output cell."""
    i = np.arange(o)
    return (i * n) // o, -((-(i + 1) * n) // o)


def _window_sums(a: np.ndarray, axis: int, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """``a[start[i]:end[i]].sum()`` along ``axis`` for every ``i`` (``start < end``;
    windows may overlap).  A loop over the windows or over the offsets inside them,
    whichever is shorter (a few of either: there are about ``n / o`` offsets); each
    step a slice sum or a gather, never a product with zeros, so that a NaN or inf
    reaches only the windows that contain it."""
    length = end - start
    at = (slice(None),) * axis
    with np.errstate(invalid="ignore"):  # inf - inf is NaN, as in the direct sum
        if len(start) <= length.max():  # few, long windows: a slice sum each
            return np.concatenate(
                [a[at + (slice(s, e),)].sum(axis=axis, keepdims=True) for s, e in zip(start, end)], axis
            )
        n = a.shape[axis]
        zero = np.zeros(a.shape[:axis] + (1,) + a.shape[axis + 1 :], dtype=a.dtype)
        padded = np.concatenate([a, zero], axis=axis)  # offsets past a short window's end read the zero
        total = np.take(a, start, axis=axis)
        for t in range(1, int(length.max())):
            total += np.take(padded, np.where(t < length, start + t, n), axis=axis)
        return total


@dataclass
class AdaptiveCtx:
    in_shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    unbatched: bool
    dtype: np.dtype
    windows: list[tuple[np.ndarray, np.ndarray]] | None = None  # per dim (start, end); None: global pooling
    flat: np.ndarray | None = None


def _window_sizes(windows: list[tuple[np.ndarray, np.ndarray]], dtype: np.dtype) -> np.ndarray:
    """The number of elements of every window, shaped like the output's spatial dims."""
    sizes = np.ones((), dtype=np.int64)
    for start, end in windows:
        sizes = np.multiply.outer(sizes, end - start)
    return sizes.astype(dtype)


def adaptive_avg_pool_forward(x: Any, nd: int, output_size: Any) -> tuple[np.ndarray, AdaptiveCtx]:
    xb, unbatched = batched(x, nd)
    check_spatial(xb, nd, unbatched)
    out = adaptive_output_size(output_size, xb.shape[2:])
    if all(o == 1 for o in out):  # global average pooling: one mean over the flattened plane
        plane = geometry.prod(xb.shape[2:])
        flat = np.ascontiguousarray(xb).reshape(-1, plane)
        if _kernels.worth_parallel(xb):  # one parallel pass
            y = np.empty(xb.shape[:2] + (1,) * nd, dtype=xb.dtype)
            if _kernels.DIRECT and flat.dtype == np.float32:  # explicit vectors (needs llvmlite's intrinsics)
                _kernels.row_means(flat, y.ravel(), plane)
            else:
                _kernels.plane_sum(flat, y.ravel(), plane)
        else:
            with np.errstate(invalid="ignore"):  # inf - inf is NaN
                y = (flat @ np.full(plane, 1.0 / plane, dtype=xb.dtype)).reshape(xb.shape[:2] + (1,) * nd)  # gemv
        ctx = AdaptiveCtx(xb.shape, y.shape, unbatched, xb.dtype)
        return (y[0] if unbatched else y), ctx
    windows = [bounds(n, o) for n, o in zip(xb.shape[2:], out, strict=True)]
    y = xb
    for i, (start, end) in enumerate(windows):
        y = _window_sums(y, 2 + i, start, end)
    y = y / _window_sizes(windows, xb.dtype)
    ctx = AdaptiveCtx(xb.shape, y.shape, unbatched, xb.dtype, windows=windows)
    return (y[0] if unbatched else y), ctx


def adaptive_avg_pool_backward(dy: Any, ctx: AdaptiveCtx) -> np.ndarray:
    dy = check_grad(dy, ctx.y_shape[1:] if ctx.unbatched else ctx.y_shape, ctx.dtype)
    g = dy[None] if ctx.unbatched else dy
    if ctx.windows is None:  # global: every input element gets dy / plane
        gx = np.empty(ctx.in_shape, dtype=ctx.dtype)
        if _kernels.worth_parallel(gx):  # one parallel fill
            _kernels.plane_fill(np.ascontiguousarray(g).ravel(), gx.reshape(g.size, -1))
        else:
            gx[...] = g / geometry.prod(ctx.in_shape[2:])
        return gx[0] if ctx.unbatched else gx
    g = g / _window_sizes(ctx.windows, ctx.dtype)
    for i, (start, end) in enumerate(ctx.windows):
        # input element j lies in the windows first..last-1: the first ending after j,
        # up to the last starting at or before it
        j = np.arange(ctx.in_shape[2 + i])
        first, last = np.searchsorted(end, j, side="right"), np.searchsorted(start, j, side="right")
        g = _window_sums(g, 2 + i, first, last)
    return g[0] if ctx.unbatched else g


def adaptive_max_pool_forward(x: Any, nd: int, output_size: Any) -> tuple[np.ndarray, np.ndarray, AdaptiveCtx]:
    """Returns ``(y, indices, ctx)``; indices are flat per-channel input indices."""
    xb, unbatched = batched(x, nd)
    check_spatial(xb, nd, unbatched)
    in_size = xb.shape[2:]
    out = adaptive_output_size(output_size, in_size)
    index = []  # per dim: (o, kmax) input indices of each window
    for n, o in zip(in_size, out, strict=True):
        start, end = bounds(n, o)
        kmax = int((end - start).max())
        index.append(np.minimum(start[:, None] + np.arange(kmax), end[:, None] - 1))
    kernel = tuple(ix.shape[1] for ix in index)
    mesh = []
    for d, ix in enumerate(index):
        shape = [1] * (2 * nd)
        shape[d], shape[nd + d] = ix.shape
        mesh.append(ix.reshape(shape))
    w = xb[(slice(None), slice(None), *mesh)]  # (N, C, *out, *kmax)
    w = w.reshape(w.shape[: 2 + nd] + (geometry.prod(kernel),))
    k = np.argmax(w, axis=-1)
    y = np.take_along_axis(w, k[..., None], axis=-1)[..., 0]
    koff = np.unravel_index(k, kernel)
    coords = []
    for d, ix in enumerate(index):
        cell = np.arange(out[d]).reshape((-1,) + (1,) * (nd - 1 - d))
        coords.append(ix[cell, koff[d]])
    flat = np.ravel_multi_index(tuple(coords), in_size).astype(np.int64)
    ctx = AdaptiveCtx(xb.shape, y.shape, unbatched, xb.dtype, flat=flat)
    if unbatched:
        return y[0], flat[0], ctx
    return y, flat, ctx


def adaptive_max_pool_backward(dy: Any, ctx: AdaptiveCtx) -> np.ndarray:
    dy = check_grad(dy, ctx.y_shape[1:] if ctx.unbatched else ctx.y_shape, ctx.dtype)
    g = dy[None] if ctx.unbatched else dy
    assert ctx.flat is not None
    n, c = ctx.in_shape[:2]
    size = geometry.prod(ctx.in_shape[2:])
    rows = np.arange(n * c).reshape(n, c, *([1] * (g.ndim - 2))) * size
    gx = np.bincount((rows + ctx.flat).ravel(), weights=g.ravel(), minlength=n * c * size)
    gx = gx.astype(ctx.dtype).reshape(ctx.in_shape)
    return gx[0] if ctx.unbatched else gx


def _adaptive_avg(nd: int) -> Callable[..., Any]:
    def pool(input: Any, output_size: Any) -> np.ndarray:
        return adaptive_avg_pool_forward(input, nd, output_size)[0]

    pool.__name__ = pool.__qualname__ = f"adaptive_avg_pool{nd}d"
    pool.__doc__ = f"{nd}-d adaptive average pooling to ``output_size`` (None keeps a size)."
    return pool


def _adaptive_max(nd: int) -> Callable[..., Any]:
    def pool(input: Any, output_size: Any, return_indices: bool = False) -> Any:
        check_bool(return_indices, "return_indices")
        y, idx, _ = adaptive_max_pool_forward(input, nd, output_size)
        return (y, idx) if return_indices else y

    pool.__name__ = pool.__qualname__ = f"adaptive_max_pool{nd}d"
    pool.__doc__ = f"{nd}-d adaptive max pooling to ``output_size`` (None keeps a size)."
    return pool


adaptive_avg_pool1d = _adaptive_avg(1)
adaptive_avg_pool2d = _adaptive_avg(2)
adaptive_avg_pool3d = _adaptive_avg(3)
adaptive_max_pool1d = _adaptive_max(1)
adaptive_max_pool2d = _adaptive_max(2)
adaptive_max_pool3d = _adaptive_max(3)
