"""The generic window reduction behind every pool, forward and backward.

:func:`reduce_window_forward` pads the input (a border mode or the reduction's
identity), takes the window view and reduces each window; its backward routes
the gradient to window elements, scatter-adds them back and undoes the padding.
The pool table (:data:`convpool.backends.tables.POOL`) chooses who computes it:
the NumPy reference (:mod:`convpool.backends.numpy.pool`) or compiled kernels without
padded or window copies.  They run on :mod:`._pool_trim`'s sub-problem when the
windows reach far beyond the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .. import geometry
from ..backends.tables import POOL, PoolProblem
from ..settings import TUNING
from ..windows import check_border_padding
from . import _pool_trim
from ._common import Geometry, _plain, batched, check_grad, check_spatial, make_geometry
from .reductions import Max, Median, Min, Reduction, Sum, _SelectOne, get_reduction

_BUILTIN = {Max: "max", Min: "min", Median: "median", Sum: "sum"}


@dataclass
class PoolCtx:
    """What the backward pass of a window reduction needs."""

    geom: Geometry  # the windows as asked for
    work: Geometry  # the windows as computed: ``geom``, or its sub-problem when ``trim`` is set
    trim: _pool_trim.PoolTrim | None
    reduction: Reduction
    impl: ModuleType  # the pool table's implementation that ran
    state: Any  # its state (a convpool.backends.numpy.pool.PoolState)
    mode: str | None  # the padding of ``work``'s windows: a border mode, or None for the identity
    unbatched: bool
    in_shape: tuple[int, ...]  # the batched input's
    dtype: np.dtype
    y_shape: tuple[int, ...]
    scale: np.ndarray | None = None  # avg: the divisor; dy is divided by it

    @property
    def name(self) -> str:
        """The implementation's name in the pool table."""
        return POOL.name_of(self.impl)


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
    g, trim = _windows(xb.shape[2:], red, nd, kernel_size, stride, padding, dilation, ceil_mode, mode)
    if trim is not None:  # the sub-problem: its input holds the border already, identity padding around
        xb, g_work, mode = trim.gather(xb), trim.geom, None
    else:
        g_work = g
    problem = pool_problem(xb, red, g_work, mode)
    impl = POOL.choose(problem)
    y, state = impl.forward(problem)
    ctx = PoolCtx(g, g_work, trim, red, impl, state, mode, unbatched, in_shape, dtype, y.shape)
    return (y[0] if unbatched else y), ctx


# the windows of a call site: (input size, nd, ceil_mode, mode, trim thresholds, ids of the
# reduction and the window arguments) -> (those objects, the geometry, the trim plan)
_WINDOWS: dict[tuple[Any, ...], tuple[Any, ...]] = {}
_WINDOWS_MAX = 256


def _windows(
    in_size: tuple[int, ...],
    red: Reduction,
    nd: int,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: Any,
    mode: str | None,
) -> tuple[Geometry, _pool_trim.PoolTrim | None]:
    """The checked geometry of a pool and its trim plan (:mod:`._pool_trim`), remembered
    for the very argument objects of a call (a layer passes the same kernel, stride,
    padding and dilation tuples on every call; the entry holds them, so their ids stay
    their own, and a value merely equal - ``True`` for ``1`` - is another object and
    checked afresh; only plain arguments - ints, strs, None in tuples, which never change
    - and the built-in reductions are remembered).  The checks and the plan depend on
    these, the input size and the trim thresholds only; errors are never remembered.
    Saves 8-10 us of a small pool's call (make_geometry's argument checks, the window
    and border checks, the plan)."""
    key = (
        in_size,
        nd,
        ceil_mode is True,
        mode,
        TUNING.pool_trim_ratio,
        TUNING.pool_trim_slack,
        id(red),
        id(kernel_size),
        id(stride),
        id(padding),
        id(dilation),
    )
    hit = _WINDOWS.get(key)
    if hit is not None:
        held, g, trim = hit
        if held[0] is red and held[1] is kernel_size and held[2] is stride and held[3] is padding:
            if held[4] is dilation and held[5] is ceil_mode:
                return g, trim
    g = make_geometry(in_size, nd, kernel_size, stride, padding, dilation, ceil_mode, pool=True)
    if mode is None and red.pad_value != 0 and g.padded != g.in_size:  # unpadded windows lie on the input
        check_windows_touch_input(g.counts(include_pad=False), g)
    elif mode is not None:
        _check_border_pool(g, mode)
    trim = _pool_trim.plan(g, mode)
    if type(ceil_mode) is bool and type(red) in _BUILTIN and all(map(_plain, (kernel_size, stride, padding, dilation))):
        if len(_WINDOWS) >= _WINDOWS_MAX:
            _WINDOWS.clear()
        _WINDOWS[key] = ((red, kernel_size, stride, padding, dilation, ceil_mode), g, trim)
    return g, trim


def pool_problem(xb: np.ndarray, red: Reduction, g: Geometry, mode: str | None) -> PoolProblem:
    """The problem the pool table's implementations take."""
    return PoolProblem(xb, red, g, mode, _BUILTIN.get(type(red)), isinstance(red, _SelectOne))


def reduce_window_backward(dy: Any, ctx: PoolCtx) -> np.ndarray:
    """Gradient with respect to the input of :func:`reduce_window_forward`."""
    expected = ctx.y_shape[1:] if ctx.unbatched else ctx.y_shape
    dy = check_grad(dy, expected, ctx.dtype)
    if ctx.unbatched:
        dy = dy[None]
    if ctx.scale is not None:
        dy = dy / ctx.scale
    gx = ctx.impl.backward(dy, ctx.state)
    if ctx.trim is not None:
        gx = ctx.trim.scatter(gx)
    return gx[0] if ctx.unbatched else gx


def flat_indices(ctx: PoolCtx) -> np.ndarray:
    """Flat index into each channel's input of every output's selected element (max,
    min, median), as PyTorch's ``return_indices``; -1 for a zero of 'zeros' padding."""
    flat = ctx.impl.flat_indices(ctx.state)
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
