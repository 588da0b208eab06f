"""Adaptive pooling: fix the output size, let the windows follow.

Output cell ``i`` of a dimension with input size ``n`` and output size ``o``
reduces input indices ``floor(i*n/o) .. ceil((i+1)*n/o) - 1`` (PyTorch's rule),
so windows may differ in size by one and may overlap.  Global pooling is the
case ``output_size = 1``.

* Average: separable and linear, so it is one small ``(n, o)`` averaging matrix
  per dimension; the backward pass multiplies by its transpose.  Global average
  pooling (output size 1) is one mean per plane, compiled: a pass over memory.
* Max: each window is gathered with index arrays (short windows repeat their
  last index, which changes neither the max nor which element is first), and
  the gradient is scattered back with a bincount.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _args, _kernels
from ._common import batched, check_grad


def _output_size(output_size: Any, in_size: tuple[int, ...]) -> tuple[int, ...]:
    nd = len(in_size)
    if output_size is None or _args._is_int(output_size):
        sizes: tuple[Any, ...] = (output_size,) * nd
    elif isinstance(output_size, (tuple, list)) and len(output_size) == nd:
        sizes = tuple(output_size)
    else:
        raise ValueError(f"output_size must be an int or a tuple of {nd} ints/None, got {output_size!r}")
    out = []
    for s, n in zip(sizes, in_size, strict=True):
        if s is None:
            out.append(n)
        elif not _args._is_int(s) or s < 1:
            raise ValueError(f"output_size must be positive ints (or None to keep a size), got {output_size!r}")
        else:
            out.append(int(s))
    return tuple(out)


def bounds(n: int, o: int) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and end (exclusive) input index of each output cell."""
    i = np.arange(o)
    return (i * n) // o, -((-(i + 1) * n) // o)


def _avg_matrix(n: int, o: int, dtype: np.dtype) -> np.ndarray:
    start, end = bounds(n, o)
    j = np.arange(n)[:, None]
    inside = (j >= start) & (j < end)
    return (inside / (end - start)).astype(dtype)


def _along(x: np.ndarray, axis: int, m: np.ndarray) -> np.ndarray:
    """Contract axis ``axis`` of ``x`` with the first axis of ``m``."""
    return np.moveaxis(np.moveaxis(x, axis, -1) @ m, -1, axis)


@dataclass
class AdaptiveCtx:
    in_shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    unbatched: bool
    dtype: np.dtype
    mats: list[np.ndarray] | None = None  # averaging matrices; None: global pooling
    flat: np.ndarray | None = None


def adaptive_avg_pool_forward(x: Any, nd: int, output_size: Any) -> tuple[np.ndarray, AdaptiveCtx]:
    xb, unbatched = batched(x, nd)
    out = _output_size(output_size, xb.shape[2:])
    if all(o == 1 for o in out):  # global average pooling: one mean over the flattened plane
        plane = _args.prod(xb.shape[2:])
        flat = np.ascontiguousarray(xb).reshape(-1, plane)
        if _kernels.worth_parallel(xb):  # one parallel pass
            y = np.empty(xb.shape[:2] + (1,) * nd, dtype=xb.dtype)
            _kernels.plane_sum(flat, y.ravel())
            y /= plane
        else:
            y = (flat @ np.full(plane, 1.0 / plane, dtype=xb.dtype)).reshape(xb.shape[:2] + (1,) * nd)  # BLAS gemv
        ctx = AdaptiveCtx(xb.shape, y.shape, unbatched, xb.dtype)
        return (y[0] if unbatched else y), ctx
    mats = [_avg_matrix(n, o, xb.dtype) for n, o in zip(xb.shape[2:], out, strict=True)]
    y = xb
    for i, m in enumerate(mats):
        # an output size of 1 is the plain mean (global pooling): no matrix product
        y = y.mean(axis=2 + i, keepdims=True, dtype=y.dtype) if m.shape[1] == 1 else _along(y, 2 + i, m)
    ctx = AdaptiveCtx(xb.shape, y.shape, unbatched, xb.dtype, mats=mats)
    return (y[0] if unbatched else y), ctx


def adaptive_avg_pool_backward(dy: Any, ctx: AdaptiveCtx) -> np.ndarray:
    dy = check_grad(dy, ctx.y_shape[1:] if ctx.unbatched else ctx.y_shape, ctx.dtype)
    g = dy[None] if ctx.unbatched else dy
    if ctx.mats is None:  # global: every input element gets dy / plane
        gx = np.empty(ctx.in_shape, dtype=ctx.dtype)
        if _kernels.worth_parallel(gx):  # one parallel fill
            _kernels.plane_fill(np.ascontiguousarray(g).ravel(), gx.reshape(g.size, -1))
        else:
            gx[...] = g / _args.prod(ctx.in_shape[2:])
        return gx[0] if ctx.unbatched else gx
    for i, m in enumerate(ctx.mats):
        if m.shape[1] == 1:
            shape = list(g.shape)
            shape[2 + i] = m.shape[0]
            g = np.broadcast_to(g * m[0, 0], shape)
        else:
            g = _along(g, 2 + i, m.T)
    g = np.ascontiguousarray(g)
    return g[0] if ctx.unbatched else g


def adaptive_max_pool_forward(x: Any, nd: int, output_size: Any) -> tuple[np.ndarray, np.ndarray, AdaptiveCtx]:
    """Returns ``(y, indices, ctx)``; indices are flat per-channel input indices."""
    xb, unbatched = batched(x, nd)
    in_size = xb.shape[2:]
    out = _output_size(output_size, in_size)
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
    w = w.reshape(w.shape[: 2 + nd] + (_args.prod(kernel),))
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
    size = _args.prod(ctx.in_shape[2:])
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
