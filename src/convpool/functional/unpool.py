"""Max unpooling: the partial inverse of max pooling, PyTorch's ``max_unpool1d/2d/3d``.

Each input value is written to the output position its index names, everything else
is zero: ``y.reshape(N, C, -1)[n, c, indices[n, c, i]] = input[n, c, i]``.  The indices
are those of ``max_pool*d(..., return_indices=True)``: per (N, C) plane, the flat (C
order) index of the chosen element in the pooled input, which is the unpooled output.

Output size, per spatial dim: ``(in - 1) * stride - 2 * padding + kernel_size`` by
default (``stride`` defaults to ``kernel_size``).  Pooling maps several input sizes to
one output size, so ``output_size`` may name the size wanted - the pooled input's
shape, with or without its leading ``(N, C)``, which are then ignored as in PyTorch -
strictly between ``default - stride`` and ``default + stride`` in every dim.

Backward: the gradient of each input value is the output gradient at its index,
``grad_input = grad_output.reshape(N, C, -1)[n, c, indices]`` (a gather; the indices
get no gradient).

**Repeated indices** (overlapping pooling windows sharing a maximum): PyTorch's result
is nondeterministic there.  convpool's is not: the output holds the value of the *last*
input position in C order naming it, and the backward pass is PyTorch's gather, every
repeat receiving the output gradient at its index.  For indices that come from max
pooling the repeats carry the same value (the same element), so which one is written
does not matter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import geometry
from ._common import check_grad, window_args


@dataclass
class UnpoolCtx:
    flat: np.ndarray  # (N*C, P_in) int64: each input value's index in its output plane
    in_shape: tuple[int, ...]  # the input's shape, as given
    y_shape: tuple[int, ...]  # the output's shape, as returned
    dtype: np.dtype


def default_output_size(
    in_size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...]
) -> tuple[int, ...]:
    """``(in - 1) * stride - 2 * padding + kernel_size`` per spatial dim."""
    return tuple((n - 1) * s - 2 * p + k for n, k, s, p in zip(in_size, kernel, stride, padding, strict=True))


def unpool_output_size(
    in_size: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    output_size: Any,
) -> tuple[int, ...]:
    """The output's spatial size: the default, or ``output_size`` checked against it
    (PyTorch's ``_unpool_output_size``)."""
    nd = len(kernel)
    default = default_output_size(in_size, kernel, stride, padding)
    if output_size is None:
        size = default
    else:
        if not isinstance(output_size, (tuple, list)) or not all(geometry._is_int(v) for v in output_size):
            raise TypeError(f"output_size must be a tuple of {nd} or {nd + 2} ints, got {output_size!r}")
        size = tuple(int(v) for v in output_size)
        if len(size) == nd + 2:
            size = size[2:]
        if len(size) != nd:
            raise ValueError(
                f"output_size must have {nd} or {nd + 2} elements ((N, C) first) for a {nd}-d unpool, "
                f"got {output_size!r} ({len(output_size)} elements)"
            )
        for d, (o, base, s) in enumerate(zip(size, default, stride, strict=True)):
            if not base - s < o < base + s:
                raise ValueError(
                    f"invalid output_size {tuple(output_size)}: spatial dim {d} must be strictly between "
                    f"{base - s} and {base + s} (default (in-1)*stride - 2*padding + kernel_size = {base}, "
                    f"stride {s}), got {o}"
                )
    for d, o in enumerate(size):
        if o < 0:
            raise ValueError(
                f"the unpooled output would have a negative size {o} in spatial dim {d} "
                f"((in-1)*stride - 2*padding + kernel_size with input size {in_size}, kernel {kernel}, "
                f"stride {stride}, padding {padding}): use less padding"
            )
    return size


def _check_indices(indices: Any, x: np.ndarray) -> np.ndarray:
    if not isinstance(indices, np.ndarray):
        indices = np.asarray(indices)
    if not np.issubdtype(indices.dtype, np.integer):
        raise TypeError(
            f"indices must be an integer array (the indices of max_pool*d(..., return_indices=True)), "
            f"got dtype {indices.dtype}"
        )
    if indices.shape != x.shape:
        raise ValueError(f"indices must have the input's shape {x.shape}, got shape {indices.shape}")
    return indices


def _check_range(flat: np.ndarray, size: tuple[int, ...], in_shape: tuple[int, ...]) -> None:
    """Every index names an element of its output plane: ValueError naming the first that does not."""
    plane = geometry.prod(size)
    bad = (flat < 0) | (flat >= plane)
    if not bad.any():
        return
    first = int(np.argmax(bad))
    where = [int(i) for i in np.unravel_index(first, in_shape)]
    value = int(flat.reshape(-1)[first])
    dims = "x".join(map(str, size))
    if plane == 0:  # PyTorch returns the empty output, dropping the values
        raise ValueError(
            f"the unpooled output plane {size} is empty, so indices{where} = {value} is out of range: "
            f"there is nowhere to put the input's values; give an output_size or less padding"
        )
    raise ValueError(
        f"indices{where} = {value} is out of range: an output plane of size {dims} has "
        f"{plane} elements, indices must be in [0, {plane}) (-1 marks a zero-padding winner of a "
        f"pool with padding_mode='zeros', which cannot be unpooled)"
    )


def max_unpool_forward(
    input: Any,
    indices: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    output_size: Any = None,
    *,
    nd: int | None = None,
) -> tuple[np.ndarray, UnpoolCtx]:
    """N-d max unpooling; returns ``(y, ctx)`` for :func:`max_unpool_backward`.

    ``nd`` (the number of spatial dims) defaults to ``len(kernel_size)`` for a tuple,
    else ``input.ndim - 2`` (a batched input); the ``max_unpool*d`` functions fix it.
    """
    if nd is None:
        nd = len(kernel_size) if isinstance(kernel_size, (tuple, list)) else np.ndim(input) - 2
    x = geometry.check_array(input)
    unbatched = geometry.check_rank(x, nd)
    idx = _check_indices(indices, x)
    kernel, strides, _ = window_args(nd, kernel_size, stride, 1, pool=True)
    pads = geometry.ntuple(padding, nd, "padding", minimum=0)
    xb, ib = (x[None], idx[None]) if unbatched else (x, idx)
    size = unpool_output_size(xb.shape[2:], kernel, strides, pads, output_size)
    n, c = xb.shape[:2]
    flat = ib.reshape(n * c, geometry.prod(xb.shape[2:])).astype(np.int64, copy=False)
    _check_range(flat, size, x.shape)
    plane = geometry.prod(size)
    y = np.zeros((n * c, plane), dtype=x.dtype)
    if flat.size:
        # the last position in C order wins a repeated index: the largest winner per target
        rows = np.arange(n * c, dtype=np.int64)[:, None] * plane
        target = (rows + flat).reshape(-1)
        winner = np.full(n * c * plane, -1, dtype=np.int64)
        np.maximum.at(winner, target, np.arange(target.size, dtype=np.int64))
        hit = winner >= 0
        y.reshape(-1)[hit] = xb.reshape(-1)[winner[hit]]
    y = y.reshape((n, c) + size)
    out = y[0] if unbatched else y
    return out, UnpoolCtx(flat, x.shape, out.shape, x.dtype)


def max_unpool_backward(grad_output: Any, ctx: UnpoolCtx) -> np.ndarray:
    """Gradient with respect to the unpooled values: ``grad_output`` gathered at the indices."""
    dy = check_grad(grad_output, ctx.y_shape, ctx.dtype)
    rows = ctx.flat.shape[0]
    gx = np.take_along_axis(dy.reshape(rows, geometry.prod(dy.shape) // max(rows, 1)), ctx.flat, axis=1)
    return gx.reshape(ctx.in_shape)


def _max_unpool(nd: int) -> Callable[..., np.ndarray]:
    def max_unpool(
        input: Any, indices: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, output_size: Any = None
    ) -> np.ndarray:
        return max_unpool_forward(input, indices, kernel_size, stride, padding, output_size, nd=nd)[0]

    max_unpool.__name__ = max_unpool.__qualname__ = f"max_unpool{nd}d"
    max_unpool.__doc__ = f"""{nd}-d max unpooling, PyTorch's ``max_unpool{nd}d``: a partial inverse of ``max_pool{nd}d``.

    Args:
        input: ``(N, C, *in)`` or ``(C, *in)``, the pooled values.
        indices: integer array of the input's shape, from ``max_pool{nd}d(..., return_indices=True)``.
        kernel_size, stride, padding: the pool's (``stride`` defaults to ``kernel_size``).
        output_size: the spatial size wanted (optionally with ``(N, C)`` first), strictly
            within ``stride`` of the default.

    Shape:
        ``(N, C, *in) -> (N, C, *out)``, ``out = (in - 1) * stride - 2 * padding + kernel_size``
        or ``output_size``.

    Example::

        >>> y, idx = max_pool{nd}d(x, 2, return_indices=True)
        >>> max_unpool{nd}d(y, idx, 2, output_size=x.shape)   # x's maxima in place, zeros elsewhere

    See :mod:`convpool.functional.unpool` for repeated indices.
    """
    return max_unpool


max_unpool1d = _max_unpool(1)
max_unpool2d = _max_unpool(2)
max_unpool3d = _max_unpool(3)
