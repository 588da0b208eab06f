"""Pooling: reduce every window with a fixed function.  No learned parameters.

Every pool here is one call of the generic window reduction
:func:`reduce_window_forward` (pad, take the window view, reduce each window)
and its backward (route the gradient to window elements, then scatter-add
them back, then undo the padding).  1-D, 2-D and 3-D share the code: the
``*1d/*2d/*3d`` functions only fix the number of spatial dimensions.

Shape: input ``(N, C, *in)`` or ``(C, *in)``; output ``(N, C, *out)`` with, per
dimension, ``out = floor((in + 2*pad - dilation*(kernel-1) - 1) / stride) + 1``
(``ceil`` with ``ceil_mode=True``, dropping a last window that would start in
the right padding).  ``stride`` defaults to ``kernel_size``.

Padding is filled with the reduction's identity by default (-inf for max,
+inf for min, excluded for the median, zeros for the average), so padding
never wins a max.  Beyond PyTorch, ``padding_mode`` may be 'zeros',
'reflect', 'replicate' or 'circular': the border is then filled with real
values that take part in the reduction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _args, _kernels
from ..windows import check_border_padding, pad, pad_backward, scatter_add, window_view
from ._common import Geometry, batched, check_grad, make_geometry
from .reductions import Max, Median, Min, Reduction, Sum, get_reduction


@dataclass
class PoolCtx:
    """What the backward pass of a window reduction needs."""

    geom: Geometry
    reduction: Reduction
    aux: object
    mode: str | None
    unbatched: bool
    in_shape: tuple[int, ...]
    dtype: np.dtype
    y_shape: tuple[int, ...]
    scale: np.ndarray | None = None  # avg: the divisor; dy is divided by it
    fast: bool = False  # computed by the compiled kernels (aux: chosen input indices)


def _fill_windows(x: np.ndarray, g: Geometry, reduction: Reduction, mode: str | None) -> np.ndarray:
    """Pad ``x`` for ``g`` (border mode or identity) plus the ceil_mode room."""
    nd = g.nd
    if mode is None:
        pads = tuple((lo, hi + e) for (lo, hi), e in zip(g.pads, g.extra, strict=True))
        return pad(x, pads, "constant", reduction.pad_value)
    xp = pad(x, g.pads, mode, 0.0)
    if any(g.extra):
        xp = pad(xp, tuple((0, e) for e in g.extra), "constant", reduction.pad_value)
    assert xp.shape[-nd:] == g.padded
    return xp


def reduce_window_forward(
    x: Any,
    reduction: str | Reduction,
    nd: int,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    padding_mode: str | None = None,
) -> tuple[np.ndarray, PoolCtx]:
    """Generic ``nd``-dimensional window reduction; returns ``(y, ctx)``."""
    red = get_reduction(reduction)
    xb, unbatched = batched(x, nd)
    mode = None if padding_mode is None else _args.check_padding_mode(padding_mode)
    g = make_geometry(xb.shape[2:], nd, kernel_size, stride, padding, dilation, ceil_mode, pool=True)
    if mode is None and red.pad_value != 0:
        _check_windows_touch_input(g.counts(include_pad=False), g)
    elif mode is not None:
        check_border_padding(g.in_size, g.pads, mode)
    if _fast_ok(red, xb):
        return _fast_forward(xb, red, g, mode, unbatched)
    xp = _fill_windows(xb, g, red, mode)
    view = window_view(xp, g.kernel, g.stride, g.dilation, g.out)
    k = _args.prod(g.kernel)
    w = view.reshape(view.shape[: 2 + nd] + (k,))  # one copy: (N, C, *out, K)
    y, aux = red.forward(w, g.counts(include_pad=mode is not None))
    ctx = PoolCtx(g, red, aux, mode, unbatched, xb.shape, xb.dtype, y.shape)
    return (y[0] if unbatched else y), ctx


def _fast_ok(red: Reduction, x: np.ndarray) -> bool:
    """The compiled kernels cover the built-in reductions on float32/float64."""
    return (
        _kernels.enabled()
        and type(red) in (Max, Min, Median, Sum)
        and x.dtype in (np.float32, np.float64)
        and x.size > 0
    )


def _tables(g: Geometry, mode: str | None) -> list[np.ndarray]:
    """Index tables for the 3 spatial dims the kernels see (1-D/2-D get size-1 dims)."""
    lead = [np.zeros((1, 1), dtype=np.int64)] * (3 - g.nd)
    return lead + [
        _kernels.index_table(n, k, s, d, lo, hi, o, mode)
        for n, k, s, d, (lo, hi), o in zip(g.in_size, g.kernel, g.stride, g.dilation, g.pads, g.out, strict=True)
    ]


def _fast_forward(
    xb: np.ndarray, red: Reduction, g: Geometry, mode: str | None, unbatched: bool
) -> tuple[np.ndarray, PoolCtx]:
    """The same reduction in one compiled pass (no padded copy, no window copy)."""
    n, c = xb.shape[:2]
    x4 = np.ascontiguousarray(xb).reshape((n * c,) + (1,) * (3 - g.nd) + g.in_size)
    tables = _tables(g, mode)
    y = np.empty((n * c,) + (1,) * (3 - g.nd) + g.out, dtype=xb.dtype)
    aux: np.ndarray | _Selected | None = None
    if red.name == "sum" and _is_2x2(g):
        _kernels.sum_2x2(x4, y)
    elif red.name == "sum":
        _kernels.sum_separable(x4, tables[0], tables[1], *_last_dim(g, tables[2]), y)
    elif red.name == "median":
        aux = np.empty(y.shape, dtype=np.int64)
        _kernels.median_forward(x4, *tables, y, aux)
    else:  # max / min: the values and each winner's position in its window
        k = _args.prod(g.kernel)
        pos = np.empty(y.shape, dtype=np.int8 if k <= 127 else np.int32)
        sign = 1.0 if red.name == "max" else -1.0
        if _is_2x2(g):  # the usual 2x2 pool
            _kernels.select_2x2(x4, sign, y, pos)
        elif _tiled(g):  # whole-row loops, no index tables
            _kernels.select_tiled(x4, *_k3(g.kernel), sign, y, pos)
        else:
            (_kernels.select_max if sign > 0 else _kernels.select_min)(x4, *tables, y)
            _kernels.find_selected(x4, *tables, y, pos)
        aux = _Selected(pos, tables, x4.shape[1:])
    y = y.reshape((n, c) + g.out)
    ctx = PoolCtx(g, red, aux, mode, unbatched, xb.shape, xb.dtype, y.shape, fast=True)
    return (y[0] if unbatched else y), ctx


def _last_dim(g: Geometry, t2: np.ndarray) -> tuple[np.ndarray, int, int, int]:
    """For the separable sum: the last dimension's padded coordinates mapped to input
    columns (-1: padding or nothing), and its kernel, stride and dilation."""
    o2, k2 = t2.shape
    s2, d2 = _k3(g.stride)[2], _k3(g.dilation)[2]
    wmap = np.full((o2 - 1) * s2 + (k2 - 1) * d2 + 1, -1, dtype=np.int64)
    coord = np.arange(o2)[:, None] * s2 + np.arange(k2)[None, :] * d2
    wmap[coord] = np.maximum(t2, -1)  # a coordinate always maps to one column (or none)
    return wmap, k2, s2, d2


def _tiled(g: Geometry) -> bool:
    """Windows that tile the input: stride == kernel, no padding, no dilation, no
    ceil_mode room - each input element lies in at most one window."""
    return (
        g.stride == g.kernel
        and all(d == 1 for d in g.dilation)
        and not any(lo or hi for lo, hi in g.pads)
        and not any(g.extra)
    )


def _is_2x2(g: Geometry) -> bool:
    """Tiled 2x2 windows (2-d, or 3-d with a depth-1 kernel): kernels of their own."""
    return _tiled(g) and _k3(g.kernel) == (1, 2, 2)


def _k3(v: tuple[int, ...]) -> tuple[int, ...]:
    return (1,) * (3 - len(v)) + tuple(v)


@dataclass
class _Selected:
    """What the compiled max/min pool keeps: each winner's position in its window
    (scan order over the kernel) and the index tables that map it to the input."""

    pos: np.ndarray  # (P, o0, o1, o2) int8 (int32 for windows over 127 elements)
    tables: list[np.ndarray]
    in3: tuple[int, ...]  # the input's 3 spatial dims as the kernels see them

    def flat_indices(self) -> np.ndarray:
        """Flat input index of each winner (-1: a zero from padding), like ``pos``."""
        t0, t1, t2 = self.tables
        k1, k2 = t1.shape[1], t2.shape[1]
        e = self.pos.astype(np.int64)
        o0, o1, o2 = self.pos.shape[1:]
        si = t0[np.arange(o0)[:, None, None], e // (k1 * k2)]
        sj = t1[np.arange(o1)[None, :, None], e // k2 % k1]
        sm = t2[np.arange(o2)[None, None, :], e % k2]
        flat = (si * self.in3[1] + sj) * self.in3[2] + sm
        return np.where((si < 0) | (sj < 0) | (sm < 0), -1, flat)


def _chosen(ctx: PoolCtx) -> np.ndarray:
    """Flat input index of each output's chosen element, shaped like the output."""
    aux = ctx.aux.flat_indices() if isinstance(ctx.aux, _Selected) else ctx.aux
    assert isinstance(aux, np.ndarray)
    return aux.reshape(ctx.y_shape)


def _fast_backward(dy: np.ndarray, ctx: PoolCtx) -> np.ndarray:
    g = ctx.geom
    n, c = ctx.in_shape[:2]
    dy4 = np.ascontiguousarray(dy).reshape((n * c,) + (1,) * (3 - g.nd) + g.out)
    gx = np.empty((n * c,) + (1,) * (3 - g.nd) + g.in_size, dtype=dy.dtype)  # the kernels zero it
    sel = ctx.aux
    if ctx.reduction.name == "sum" and _is_2x2(g):
        _kernels.spread_2x2(dy4, gx)
    elif ctx.reduction.name == "sum":
        t0, t1, t2 = _tables(g, ctx.mode)
        _kernels.sum_separable_backward(dy4, t0, t1, *_last_dim(g, t2), gx)
    elif isinstance(sel, _Selected) and _is_2x2(g):  # one dense pass: every element written once
        _kernels.route_2x2(sel.pos, dy4, gx)
    elif isinstance(sel, _Selected) and _tiled(g):
        _kernels.route_tiled(sel.pos, *_k3(g.kernel), dy4, gx)
    elif isinstance(sel, _Selected):
        k3 = tuple(t.shape[1] for t in sel.tables)
        ei, ej, em = (np.ascontiguousarray(c.ravel()) for c in np.indices(k3))
        _kernels.route(sel.pos, *sel.tables, ei, ej, em, dy4, gx)
    else:  # median: flat indices from the forward pass
        _kernels.select_backward(dy4, _chosen(ctx).reshape(dy4.shape), gx.reshape(n * c, -1))
    return gx.reshape(ctx.in_shape)


def _check_windows_touch_input(valid: np.ndarray, g: Geometry) -> None:
    """A window lying entirely in the padding has nothing to reduce.

    PyTorch returns -inf (max) there; convpool refuses, naming the window.
    """
    if valid.size and not valid.all():
        where = tuple(int(i) for i in np.argwhere(valid == 0)[0])
        raise ValueError(
            f"the pooling window at output position {where} lies entirely in the padding "
            f"(input size {g.in_size}, kernel {g.kernel}, stride {g.stride}, padding {g.pads}, "
            f"dilation {g.dilation}): use less padding or a larger input"
        )


def reduce_window_backward(dy: Any, ctx: PoolCtx) -> np.ndarray:
    """Gradient with respect to the input of :func:`reduce_window_forward`."""
    g = ctx.geom
    expected = ctx.y_shape[1:] if ctx.unbatched else ctx.y_shape
    dy = check_grad(dy, expected, ctx.dtype)
    if ctx.unbatched:
        dy = dy[None]
    if ctx.scale is not None:
        dy = dy / ctx.scale
    if ctx.fast:
        gx = _fast_backward(dy, ctx)
        return gx[0] if ctx.unbatched else gx
    k = _args.prod(g.kernel)
    gw = ctx.reduction.backward(dy, ctx.aux, k)
    gw = gw.reshape(dy.shape + g.kernel)
    gp = scatter_add(gw, ctx.in_shape[:2] + g.padded, g.stride, g.dilation)
    if any(g.extra):
        gp = pad_backward(gp, tuple((0, e) for e in g.extra), "constant")
    gx = pad_backward(gp, g.pads, ctx.mode or "constant")
    return gx[0] if ctx.unbatched else gx


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


def _flat_indices(ctx: PoolCtx) -> np.ndarray:
    """Flat index into the (unpadded) input spatial dims of each selected element."""
    g = ctx.geom
    if ctx.fast:  # the kernels record the chosen input element directly
        chosen = _chosen(ctx)
        return chosen[0] if ctx.unbatched else chosen
    assert isinstance(ctx.aux, np.ndarray)
    koff = np.unravel_index(ctx.aux[..., 0], g.kernel)
    coords = []
    for i in range(g.nd):
        o = np.arange(g.out[i]).reshape((-1,) + (1,) * (g.nd - 1 - i))
        coords.append(o * g.stride[i] + koff[i] * g.dilation[i] - g.pads[i][0])
    if ctx.mode is not None:  # a border element stands for the input element it copies
        coords = [np.clip(c, 0, n - 1) for c, n in zip(coords, g.in_size, strict=True)]
    flat = np.ravel_multi_index(tuple(coords), g.in_size, mode="clip").astype(np.int64)
    return flat[0] if ctx.unbatched else flat


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
        y, ctx = reduce_window_forward(
            input, reduction, nd, kernel_size, stride, padding, dilation, ceil_mode, padding_mode
        )
        return (y, _flat_indices(ctx)) if return_indices else y

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
    if divisor_override is not None and (not _args._is_int(divisor_override) or divisor_override <= 0):
        raise ValueError(f"divisor_override must be a positive int or None, got {divisor_override!r}")
    y, ctx = reduce_window_forward(x, "sum", nd, kernel_size, stride, padding, 1, ceil_mode, padding_mode)
    if divisor_override is not None:
        div = np.asarray(float(divisor_override))
    else:
        div = ctx.geom.counts(include_pad=bool(count_include_pad) or padding_mode is not None)
        _check_windows_touch_input(div, ctx.geom)
    ctx.scale = div.astype(ctx.dtype)
    return y / ctx.scale, ctx


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
    sum_ctx: PoolCtx
    x: np.ndarray
    s: np.ndarray
    p: float


def lp_pool_forward(
    x: Any, norm_type: float, nd: int, kernel_size: Any, stride: Any = None, ceil_mode: bool = False
) -> tuple[np.ndarray, LpCtx]:
    """``(sum over the window of x**p) ** (1/p)`` (PyTorch's formula, without abs:
    use non-negative inputs or an even ``p``).  ``p=1`` is sum pooling, large
    ``p`` tends to max pooling.  Unlike PyTorch, a partial ``ceil_mode``
    window sums its real elements and is not rescaled to the full window.
    """
    if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float, np.number)) or not norm_type > 0:
        raise ValueError(f"norm_type must be a positive number, got {norm_type!r}")
    xa = _args.check_array(x)
    p = float(norm_type)
    s, ctx = reduce_window_forward(xa**p, "sum", nd, kernel_size, stride, 0, 1, ceil_mode)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = s ** (1.0 / p)
    return y, LpCtx(ctx, xa, s, p)


def lp_pool_backward(dy: Any, ctx: LpCtx) -> np.ndarray:
    dy = check_grad(dy, ctx.s.shape, ctx.x.dtype)
    p = ctx.p
    with np.errstate(invalid="ignore", divide="ignore"):
        ds = dy * ctx.s ** (1.0 / p - 1.0) / p
        return reduce_window_backward(ds, ctx.sum_ctx) * p * ctx.x ** (p - 1.0)


def _lp_pool(nd: int) -> Callable[..., Any]:
    def pool(input: Any, norm_type: float, kernel_size: Any, stride: Any = None, ceil_mode: bool = False) -> np.ndarray:
        return lp_pool_forward(input, norm_type, nd, kernel_size, stride, ceil_mode)[0]

    pool.__name__ = pool.__qualname__ = f"lp_pool{nd}d"
    pool.__doc__ = f"{nd}-d power-average pooling.\n\n" + (lp_pool_forward.__doc__ or "")
    return pool


lp_pool1d = _lp_pool(1)
lp_pool2d = _lp_pool(2)
lp_pool3d = _lp_pool(3)
