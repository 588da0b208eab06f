"""The generic window reduction behind every pool, forward and backward.

:func:`reduce_window_forward` pads the input (a border mode or the reduction's
identity), takes the window view and reduces each window; its backward routes
the gradient to window elements, scatter-adds them back and undoes the padding.
With numba the same runs as compiled kernels over index tables, without padded
or window copies.  Both run on :mod:`._pool_trim`'s sub-problem when the
windows reach far beyond the input.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import geometry
from ..backends.compiled import kernels as _kernels
from ..windows import check_border_padding, pad, pad_backward, scatter_add, source_index, window_view
from . import _pool_trim
from ._common import Geometry, batched, check_grad, check_spatial, make_geometry
from .reductions import Max, Median, Min, Reduction, Sum, _SelectOne, get_reduction


@dataclass
class PoolCtx:
    """What the backward pass of a window reduction needs."""

    geom: Geometry  # the windows as asked for
    work: Geometry  # the windows as computed: ``geom``, or its sub-problem when ``trim`` is set
    trim: _pool_trim.PoolTrim | None
    reduction: Reduction
    aux: object
    mode: str | None  # the padding of ``work``'s windows: a border mode, or None for the identity
    unbatched: bool
    in_shape: tuple[int, ...]  # the batched input's
    dtype: np.dtype
    y_shape: tuple[int, ...]
    scale: np.ndarray | None = None  # avg: the divisor; dy is divided by it
    fast: bool = False  # computed by the compiled kernels (aux: chosen input indices)

    @property
    def work_shape(self) -> tuple[int, ...]:
        """The (batched) shape of the input the windows were computed on."""
        return self.in_shape[:2] + self.work.in_size


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
    check_spatial(xb, nd, unbatched)
    in_shape, dtype = xb.shape, xb.dtype
    mode = None if padding_mode is None else geometry.check_padding_mode(padding_mode)
    if mode == "constant" and type(red) is Sum:  # zeros add nothing to a sum: identity padding
        mode = None
    g = make_geometry(xb.shape[2:], nd, kernel_size, stride, padding, dilation, ceil_mode, pool=True)
    if mode is None and red.pad_value != 0 and g.padded != g.in_size:  # unpadded windows lie on the input
        check_windows_touch_input(g.counts(include_pad=False), g)
    elif mode is not None:
        _check_border_pool(g, mode)
    trim = _pool_trim.plan(g, mode)
    if trim is not None:  # the sub-problem: its input holds the border already, identity padding around
        xb, g_work, mode = trim.gather(xb), trim.geom, None
    else:
        g_work = g
    fast = _fast_ok(red, xb)
    y, aux = (_fast_forward if fast else _reference_forward)(xb, red, g_work, mode)
    ctx = PoolCtx(g, g_work, trim, red, aux, mode, unbatched, in_shape, dtype, y.shape, fast=fast)
    return (y[0] if unbatched else y), ctx


def reduce_window_backward(dy: Any, ctx: PoolCtx) -> np.ndarray:
    """Gradient with respect to the input of :func:`reduce_window_forward`."""
    expected = ctx.y_shape[1:] if ctx.unbatched else ctx.y_shape
    dy = check_grad(dy, expected, ctx.dtype)
    if ctx.unbatched:
        dy = dy[None]
    if ctx.scale is not None:
        dy = dy / ctx.scale
    gx = (_fast_backward if ctx.fast else _reference_backward)(dy, ctx)
    if ctx.trim is not None:
        gx = ctx.trim.scatter(gx)
    return gx[0] if ctx.unbatched else gx


def flat_indices(ctx: PoolCtx) -> np.ndarray:
    """Flat index into each channel's input of every output's selected element (max,
    min, median), as PyTorch's ``return_indices``; -1 for a zero of 'zeros' padding."""
    if ctx.fast:  # the kernels record the chosen element directly
        flat = _chosen(ctx)
    else:
        assert isinstance(ctx.aux, np.ndarray)
        flat = _reference_indices(ctx.work, ctx.mode, ctx.aux[..., 0])
    if ctx.trim is not None:
        flat = ctx.trim.input_index(flat)
    return flat[0] if ctx.unbatched else flat


def check_windows_touch_input(valid: np.ndarray, g: Geometry) -> None:
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


def _check_border_pool(g: Geometry, mode: str) -> None:
    """A border mode fills the padding with input values: PyTorch's limits for reflect
    (pad < size) and circular (pad <= size), and for pools pad <= size for zeros and
    replicate too, so that the border never outweighs the input (and the padded
    input stays within three times the input's size)."""
    check_border_padding(g.in_size, g.pads, mode)
    for i, (n, (lo, hi)) in enumerate(zip(g.in_size, g.pads, strict=True)):
        if max(lo, hi) > n:
            name = "zeros" if mode == "constant" else mode
            raise ValueError(
                f"padding_mode={name!r} in a pool needs padding at most the input size: spatial dim {i} "
                f"has size {n}, got padding ({lo}, {hi})"
            )


# --- the NumPy reference -------------------------------------------------------------


def _fill_windows(x: np.ndarray, g: Geometry, reduction: Reduction, mode: str | None) -> np.ndarray:
    """Pad ``x`` for ``g`` (border mode or identity) plus the ceil_mode room."""
    if mode is None:
        pads = tuple((lo, hi + e) for (lo, hi), e in zip(g.pads, g.extra, strict=True))
        return pad(x, pads, "constant", reduction.pad_value)
    xp = pad(x, g.pads, mode, 0.0)
    if any(g.extra):
        xp = pad(xp, tuple((0, e) for e in g.extra), "constant", reduction.pad_value)
    return xp


def _reference_forward(x: np.ndarray, red: Reduction, g: Geometry, mode: str | None) -> tuple[np.ndarray, object]:
    xp = _fill_windows(x, g, red, mode)
    view = window_view(xp, g.kernel, g.stride, g.dilation, g.out)
    w = view.reshape(view.shape[: 2 + g.nd] + (geometry.prod(g.kernel),))  # one copy: (N, C, *out, K)
    valid = g.counts(include_pad=mode is not None)
    y, aux = red.forward(w, valid)
    if isinstance(red, _SelectOne) and w.size:
        assert isinstance(aux, np.ndarray)
        _skip_identity_padding(red, w, y, aux, valid, g, mode)
    return y, aux


def _skip_identity_padding(
    red: _SelectOne, w: np.ndarray, y: np.ndarray, aux: np.ndarray, valid: np.ndarray, g: Geometry, mode: str | None
) -> None:
    """Identity padding (-inf for max, +inf for min and the median) ties with an
    infinite input value and, coming first in scan order, would be selected (or, in
    the median's sort, shift the rank).  A window whose result is such a value gets
    the input element the compiled kernels (and PyTorch) choose: the real elements
    alone decide.  Rewrites those windows' choice in ``aux`` in place."""
    tied = y == red.pad_value
    identity_padding = any(g.extra) or (mode is None and g.padded != g.in_size)
    if not identity_padding or not tied.any():
        return
    real = np.ones((), dtype=bool)  # per window element: not identity padding
    for dim_sources in _window_sources(g, mode):
        real = np.logical_and.outer(real, dim_sources != -2)
    nd = g.nd
    real = real.transpose(tuple(range(0, 2 * nd, 2)) + tuple(range(1, 2 * nd, 2))).reshape(g.out + (-1,))
    real = np.broadcast_to(real, w.shape)[tied]
    ws, ys = w[tied], y[tied]
    rank = red.rank_among_real(ws, ys, real, np.broadcast_to(valid, y.shape)[tied])
    candidates = real & (ws == ys[:, None])
    aux[tied] = np.argmax(np.cumsum(candidates, axis=-1) > rank[:, None], axis=-1)[:, None]


def _window_sources(g: Geometry, mode: str | None) -> list[np.ndarray]:
    """Per dimension ``(out, kernel)``: the input index each window element reads (-1 a
    zero of 'zeros' padding, -2 identity padding or the ceil_mode room)."""
    tables = []
    for n, k, s, d, (lo, hi), o, e in zip(
        g.in_size, g.kernel, g.stride, g.dilation, g.pads, g.out, g.extra, strict=True
    ):
        src = source_index(n, lo, hi, mode, e)
        tables.append(src[np.arange(o)[:, None] * s + np.arange(k)[None, :] * d])
    return tables


def _reference_indices(g: Geometry, mode: str | None, pos: np.ndarray) -> np.ndarray:
    """Flat input index of window element ``pos`` (scan order) of every window: -1 a zero
    of 'zeros' padding, -2 identity padding."""
    koff = np.unravel_index(pos, g.kernel)
    coords = []
    for i, table in enumerate(_window_sources(g, mode)):
        o = np.arange(g.out[i]).reshape((-1,) + (1,) * (g.nd - 1 - i))
        coords.append(table[o, koff[i]])
    flat = np.ravel_multi_index(tuple(np.maximum(c, 0) for c in coords), g.in_size).astype(np.int64)
    lowest = functools.reduce(np.minimum, coords)  # -2 if any dimension reads identity padding, else -1 if any a zero
    return np.where(lowest < 0, lowest, flat)


def _reference_backward(dy: np.ndarray, ctx: PoolCtx) -> np.ndarray:
    g = ctx.work
    gw = ctx.reduction.backward(dy, ctx.aux, geometry.prod(g.kernel))
    gw = gw.reshape(dy.shape + g.kernel)
    gp = scatter_add(gw, ctx.in_shape[:2] + g.padded, g.stride, g.dilation)
    if any(g.extra):
        gp = pad_backward(gp, tuple((0, e) for e in g.extra), "constant")
    return pad_backward(gp, g.pads, ctx.mode or "constant")


# --- the compiled kernels ------------------------------------------------------------


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


def _fast_forward(xb: np.ndarray, red: Reduction, g: Geometry, mode: str | None) -> tuple[np.ndarray, object]:
    """The same reduction in one compiled pass (no padded copy, no window copy)."""
    n, c = xb.shape[:2]
    x4 = np.ascontiguousarray(xb).reshape((n * c,) + (1,) * (3 - g.nd) + g.in_size)
    tables = _tables(g, mode)
    t0, t1, t2 = tables
    y = np.empty((n * c,) + (1,) * (3 - g.nd) + g.out, dtype=xb.dtype)
    aux: np.ndarray | _Selected | None = None
    if red.name == "sum" and _is_2x2(g):
        _kernels.sum_2x2(x4, y)
    elif red.name == "sum":
        _kernels.sum_separable(x4, t0, t1, *_last_dim(g, t2), y)
    elif red.name == "median":
        aux = np.empty(y.shape, dtype=np.int64)
        _kernels.median_forward(x4, t0, t1, t2, y, aux)
    else:  # max / min: the values and each winner's position in its window
        k = geometry.prod(g.kernel)
        pos = np.empty(y.shape, dtype=np.int8 if k <= 127 else np.int32)
        sign = 1.0 if red.name == "max" else -1.0
        if _is_2x2(g):  # the usual 2x2 pool
            _kernels.select_2x2(x4, sign, y, pos)
        elif _tiled(g):  # whole-row loops, no index tables
            k0, k1, k2 = _k3(g.kernel)
            _kernels.select_tiled(x4, k0, k1, k2, sign, y, pos)
        else:
            (_kernels.select_max if sign > 0 else _kernels.select_min)(x4, t0, t1, t2, y)
            _kernels.find_selected(x4, t0, t1, t2, y, pos)
        aux = _Selected(pos, tables, x4.shape[1:])
    return y.reshape((n, c) + g.out), aux


def _last_dim(g: Geometry, t2: np.ndarray) -> tuple[np.ndarray, int, int, int]:
    """For the separable sum: the last dimension's padded coordinates mapped to input
    columns (-1: padding or nothing), and its kernel, stride and dilation."""
    o2, k2 = t2.shape
    s2, d2 = _k3(g.stride)[2], _k3(g.dilation)[2]
    wmap = np.full((o2 - 1) * s2 + (k2 - 1) * d2 + 1, -1, dtype=np.int64)
    coord = np.arange(o2)[:, None] * s2 + np.arange(k2)[None, :] * d2
    wmap[coord] = np.maximum(t2, -1)  # a coordinate always maps to one column (or none)
    return wmap, k2, s2, d2


def _adjoint_sum(g: Geometry, mode: str | None) -> Geometry | None:
    """The windows whose sums over ``dy`` give the input gradient of a stride-1 window
    sum: input element ``i`` lies in the windows ``o = i + lo - t*d`` (t < k), so its
    gradient is the sum of ``dy`` over the window of the same kernel and dilation
    starting at ``i - ((k-1)*d - lo)`` - padding ``(k-1)*d - lo`` before, the windows
    over ``dy`` lying where the original windows' padding was (identity padding only:
    a border mode sends some windows' elements elsewhere).  None where that does not
    hold (stride > 1, a border mode, padding beyond the kernel's reach)."""
    reach = [d * (k - 1) for k, d in zip(g.kernel, g.dilation, strict=True)]
    if mode is not None or any(s != 1 for s in g.stride) or any(g.extra):
        return None
    if any(not (0 <= lo <= r and 0 <= hi <= r) for (lo, hi), r in zip(g.pads, reach, strict=True)):
        return None
    return Geometry(
        in_size=g.out,
        kernel=g.kernel,
        stride=g.stride,
        dilation=g.dilation,
        pads=tuple((r - lo, r - hi) for (lo, hi), r in zip(g.pads, reach, strict=True)),
        out=g.in_size,
        extra=g.extra,
    )


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
    g = ctx.work
    n, c = ctx.in_shape[:2]
    dy4 = np.ascontiguousarray(dy).reshape((n * c,) + (1,) * (3 - g.nd) + g.out)
    gx = np.empty((n * c,) + (1,) * (3 - g.nd) + g.in_size, dtype=dy.dtype)  # the kernels zero it
    sel = ctx.aux
    if ctx.reduction.name == "sum" and _is_2x2(g):
        _kernels.spread_2x2(dy4, gx)
    elif ctx.reduction.name == "sum" and (adj := _adjoint_sum(g, ctx.mode)) is not None:
        t0, t1, t2 = _tables(adj, None)  # the forward kernel: no kernel of its own to compile
        _kernels.sum_separable(dy4, t0, t1, *_last_dim(adj, t2), gx)
    elif ctx.reduction.name == "sum":
        t0, t1, t2 = _tables(g, ctx.mode)
        _kernels.sum_separable_backward(dy4, t0, t1, *_last_dim(g, t2), gx)
    elif isinstance(sel, _Selected) and _is_2x2(g):  # one dense pass: every element written once
        _kernels.route_2x2(sel.pos, dy4, gx)
    elif isinstance(sel, _Selected) and _tiled(g):
        k0, k1, k2 = _k3(g.kernel)
        _kernels.route_tiled(sel.pos, k0, k1, k2, dy4, gx)
    elif isinstance(sel, _Selected):
        k3 = tuple(t.shape[1] for t in sel.tables)
        ei, ej, em = (np.ascontiguousarray(c.ravel()) for c in np.indices(k3))
        t0, t1, t2 = sel.tables
        _kernels.route(sel.pos, t0, t1, t2, ei, ej, em, dy4, gx)
    else:  # median: flat indices from the forward pass
        _kernels.select_backward(dy4, _chosen(ctx).reshape(dy4.shape), gx.reshape(n * c, -1))
    return gx.reshape(ctx.work_shape)
