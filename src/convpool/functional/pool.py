"""Pooling: reduce every window with a fixed function.  No learned parameters.

Every pool here is one call of the generic window reduction
:func:`reduce_window_forward` (pad, take the window view, reduce each window)
and its backward (route the gradient to window elements, then scatter-add
them back, then undo the padding); see :mod:`._reduce`.  1-D, 2-D and 3-D share
the code: the ``*1d/*2d/*3d`` functions only fix the number of spatial
dimensions.

Shape: input ``(N, C, *in)`` or ``(C, *in)``; output ``(N, C, *out)`` with, per
dimension, ``out = floor((in + 2*pad - dilation*(kernel-1) - 1) / stride) + 1``
(``ceil`` with ``ceil_mode=True``, dropping a last window that would start in
the right padding).  ``stride`` defaults to ``kernel_size``.  An empty batch or
channel axis gives an empty output; an empty spatial dimension is refused.

Padding is filled with the reduction's identity by default (-inf for max,
+inf for min, excluded for the median, zeros for the average), so padding
never wins a max.  Beyond PyTorch, ``padding_mode`` may be 'zeros',
'reflect', 'replicate' or 'circular': the border is then filled with real
values that take part in the reduction; such padding is at most the input
size (reflect: smaller).  Memory and time follow the input and the output,
never the kernel size, padding or stride: windows that reach far beyond the
input are cut to what they read (:mod:`._pool_trim`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import geometry
from ._common import check_bool, check_grad
from ._reduce import (
    PoolCtx,
    check_windows_touch_input,
    flat_indices,
    reduce_window_backward,
    reduce_window_forward,
)
from .reductions import Reduction


def reduce_window(
    x: Any,
    reduction: str | Reduction,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    padding_mode: str | None = None,
) -> np.ndarray:
    """Reduce every window of ``x`` with ``reduction`` ('max', 'min', 'median',
    'sum' or a :class:`~convpool.functional.reductions.Reduction`).

    The number of spatial dimensions is taken from ``kernel_size`` (a tuple)
    or, for an int, from ``x`` as batched input ``(N, C, *spatial)``.
    """
    nd = len(kernel_size) if isinstance(kernel_size, (tuple, list)) else np.ndim(x) - 2
    if nd < 1:
        raise ValueError(f"input must be (N, C, *spatial) with >= 1 spatial dim, got shape {np.shape(x)}")
    return reduce_window_forward(x, reduction, nd, kernel_size, stride, padding, dilation, ceil_mode, padding_mode)[0]


# --- max / min / median -------------------------------------------------------------


def _select_pool(reduction: str, nd: int) -> Callable[..., Any]:
    def pool(
        input: Any,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        ceil_mode: bool = False,
        return_indices: bool = False,
        *,
        padding_mode: str | None = None,
    ) -> Any:
        check_bool(return_indices, "return_indices")
        y, ctx = reduce_window_forward(
            input, reduction, nd, kernel_size, stride, padding, dilation, ceil_mode, padding_mode
        )
        return (y, flat_indices(ctx)) if return_indices else y

    pool.__name__ = pool.__qualname__ = f"{reduction}_pool{nd}d"
    pool.__doc__ = (
        f"{nd}-d {reduction} pooling over windows of ``kernel_size``; see the module doc for "
        f"shapes and padding.  ``return_indices`` also returns the flat index (into each "
        f"channel's input) of the selected element, as PyTorch."
    )
    return pool


max_pool1d = _select_pool("max", 1)
max_pool2d = _select_pool("max", 2)
max_pool3d = _select_pool("max", 3)
min_pool1d = _select_pool("min", 1)
min_pool2d = _select_pool("min", 2)
min_pool3d = _select_pool("min", 3)
median_pool1d = _select_pool("median", 1)
median_pool2d = _select_pool("median", 2)
median_pool3d = _select_pool("median", 3)


# --- average -------------------------------------------------------------------------


def avg_pool_forward(
    x: Any,
    nd: int,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    padding_mode: str | None = None,
) -> tuple[np.ndarray, PoolCtx]:
    """Window mean.  The divisor follows PyTorch: the window's elements on the
    padded input (``count_include_pad=True``) or on the input only; elements a
    ``ceil_mode`` window hangs past the padding are never counted;
    ``divisor_override`` replaces the count.  With a border ``padding_mode``
    the border holds real values and always counts.
    """
    include_pad = check_bool(count_include_pad, "count_include_pad")
    check_divisor_override(divisor_override)
    y, ctx = reduce_window_forward(x, "sum", nd, kernel_size, stride, padding, 1, ceil_mode, padding_mode)
    if divisor_override is not None:
        div = np.asarray(float(divisor_override))
    else:  # per window, in closed form from the windows as asked for
        div = ctx.geom.counts(include_pad=include_pad or padding_mode is not None)
        check_windows_touch_input(div, ctx.geom)
    ctx.scale = div.astype(ctx.dtype)
    if y.flags.writeable and not np.may_share_memory(y, x):  # the sums' own array: divide in place
        return np.divide(y, ctx.scale, out=y), ctx
    return y / ctx.scale, ctx


def check_divisor_override(divisor_override: Any) -> None:
    """None or a positive int (PyTorch's types: no bool, no float)."""
    if divisor_override is None:
        return
    if not geometry._is_int(divisor_override):
        raise TypeError(
            f"divisor_override must be a positive int or None, got {divisor_override!r} "
            f"({type(divisor_override).__name__})"
        )
    if divisor_override <= 0:
        raise ValueError(f"divisor_override must be a positive int or None, got {divisor_override!r}")


def _avg_pool(nd: int) -> Callable[..., Any]:
    def pool(
        input: Any,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
        *,
        padding_mode: str | None = None,
    ) -> np.ndarray:
        return avg_pool_forward(
            input,
            nd,
            kernel_size,
            stride,
            padding,
            ceil_mode,
            count_include_pad,
            divisor_override,
            padding_mode,
        )[0]

    pool.__name__ = pool.__qualname__ = f"avg_pool{nd}d"
    pool.__doc__ = f"{nd}-d average pooling.\n\n" + (avg_pool_forward.__doc__ or "")
    return pool


avg_pool1d = _avg_pool(1)
avg_pool2d = _avg_pool(2)
avg_pool3d = _avg_pool(3)


# --- Lp ------------------------------------------------------------------------------


@dataclass
class LpCtx:
    pool_ctx: PoolCtx  # the window sum of x**p, or for p = inf the max pool of |x|
    x: np.ndarray
    s: np.ndarray  # the window sums (p finite)
    p: float


def check_norm_type(norm_type: Any) -> float:
    """Lp pooling's ``p``: a positive number, ``inf`` included."""
    if isinstance(norm_type, (bool, np.bool_)) or not isinstance(norm_type, (int, float, np.integer, np.floating)):
        raise TypeError(f"norm_type must be a positive number (or inf), got {norm_type!r} ({type(norm_type).__name__})")
    if not norm_type > 0:  # NaN too
        raise ValueError(f"norm_type must be a positive number (or inf), got {norm_type!r}")
    return float(norm_type)


def lp_pool_forward(
    x: Any, norm_type: float, nd: int, kernel_size: Any, stride: Any = None, ceil_mode: bool = False
) -> tuple[np.ndarray, LpCtx]:
    """``(sum over the window of x**p) ** (1/p)`` (PyTorch's formula, without abs:
    use non-negative inputs or an even ``p``).  ``p=1`` is sum pooling, large
    ``p`` tends to max pooling, and ``p=inf`` is its limit, the window's largest
    ``|x|`` (as PyTorch; the gradient goes to that element, as in max pooling).
    Unlike PyTorch, a partial ``ceil_mode`` window sums its real elements and is
    not rescaled to the full window.  Where a window's sum is zero the gradient is
    zero (as PyTorch).
    """
    p = check_norm_type(norm_type)
    xa = geometry.check_array(x)
    if p == np.inf:
        y, ctx = reduce_window_forward(np.abs(xa), "max", nd, kernel_size, stride, 0, 1, ceil_mode)
        return y, LpCtx(ctx, xa, y, p)
    s, ctx = reduce_window_forward(xa**p, "sum", nd, kernel_size, stride, 0, 1, ceil_mode)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = s ** (1.0 / p)
    return y, LpCtx(ctx, xa, s, p)


def lp_pool_backward(dy: Any, ctx: LpCtx) -> np.ndarray:
    dy = check_grad(dy, ctx.s.shape, ctx.x.dtype)
    p = ctx.p
    if p == np.inf:
        return reduce_window_backward(dy, ctx.pool_ctx) * np.sign(ctx.x)
    with np.errstate(invalid="ignore", divide="ignore"):
        ds = np.where(ctx.s == 0, 0.0, dy * ctx.s ** (1.0 / p - 1.0) / p).astype(dy.dtype, copy=False)
        return reduce_window_backward(ds, ctx.pool_ctx) * p * ctx.x ** (p - 1.0)


def _lp_pool(nd: int) -> Callable[..., Any]:
    def pool(input: Any, norm_type: float, kernel_size: Any, stride: Any = None, ceil_mode: bool = False) -> np.ndarray:
        return lp_pool_forward(input, norm_type, nd, kernel_size, stride, ceil_mode)[0]

    pool.__name__ = pool.__qualname__ = f"lp_pool{nd}d"
    pool.__doc__ = f"{nd}-d power-average pooling.\n\n" + (lp_pool_forward.__doc__ or "")
    return pool


lp_pool1d = _lp_pool(1)
lp_pool2d = _lp_pool(2)
lp_pool3d = _lp_pool(3)
