"""``unfold`` and ``fold``: the engine's window view and its adjoint, made public.

``unfold`` (PyTorch's ``im2col``) lays every sliding window of the input out as a
column: input ``(N, C, *in)`` -> ``(N, C * prod(kernel_size), L)``, ``L = prod(out)``
windows, rows channel-major then kernel offsets in C order (``c * K + k``), columns the
output positions in C order.  It *is* convpool's :func:`convpool.windows.window_view`
``(N, C, *out, *kernel)`` of the zero-padded input, transposed and copied into that
layout, and a convolution is ``weight.reshape(C_out, -1) @ unfold(x)``.

``fold`` (``col2im``) is its adjoint, :func:`convpool.windows.scatter_add` followed by
removing the padding: every column value is *added* back to the input element it was
read from, so overlapping windows sum (``fold(unfold(x)) == x * window_count``) and
``<unfold(x), y> == <x, fold(y)>`` for all ``x``, ``y``.  Hence each is the other's
backward pass.

Per spatial dim, ``out = floor((in + 2*padding - dilation*(kernel-1) - 1) / stride) + 1``
(``in`` is fold's ``output_size``).  Padding is zeros only, as in PyTorch.

**Number of spatial dims.**  PyTorch's ``fold`` / ``unfold`` are 2-d only; convpool's
work in any number of spatial dims ``nd``, decided by the arguments, not the input:
``nd = len(kernel_size)`` when ``kernel_size`` is a tuple (for ``fold``: ``kernel_size``
or ``output_size``, whichever is a tuple; both tuples must agree), and ``nd = 2`` (as
PyTorch) when they are ints.  So ``unfold(x, 3)`` on a 3-d ``x`` is PyTorch's unbatched
``(C, H, W)`` case, and a 1-d or 3-d unfold needs a tuple: ``unfold(x, (3,))``.
``unfold`` takes ``(N, C, *in)`` or unbatched ``(C, *in)`` (``nd + 2`` or ``nd + 1``
dims); ``fold`` takes ``(N, C * K, L)`` or unbatched ``(C * K, L)``.

With the compiled backend (float32/float64, up to 3 spatial dims) both run on the
convolution's im2col / col2im kernels, which apply the zero padding on the fly; the
NumPy path is the window view and scatter-add above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import geometry
from ..backends.compiled import kernels as _kernels
from ..backends.compiled.conv_im2col import _as5, kernel_geometry
from ..backends.numpy.conv import col2im
from ..windows import pad, window_view
from ._common import Geometry, check_grad, check_spatial


@dataclass
class FoldCtx:
    """What the backward pass of ``unfold`` or ``fold`` needs: the window geometry (on
    the unfolded side's input, i.e. fold's output), the channels and the batch form."""

    geom: Geometry
    channels: int
    dtype: np.dtype
    unbatched: bool
    y_shape: tuple[int, ...]  # the forward output's shape, as returned


def spatial_rank(*args: Any) -> int:
    """The number of spatial dims: the length of the first tuple/list among ``args``,
    else 2 (PyTorch's 2-d ``fold`` / ``unfold``)."""
    for a in args:
        if isinstance(a, (tuple, list)):
            return len(a)
    return 2


def _geometry(
    in_size: tuple[int, ...], kernel_size: Any, dilation: Any, padding: Any, stride: Any, what: str
) -> Geometry:
    nd = len(in_size)
    kernel = geometry.ntuple(kernel_size, nd, "kernel_size")
    dil = geometry.ntuple(dilation, nd, "dilation")
    pads = tuple((p, p) for p in geometry.ntuple(padding, nd, "padding", minimum=0))
    strides = geometry.ntuple(stride, nd, "stride")
    out = geometry.output_size(in_size, kernel, strides, pads, dil, what=what)
    return Geometry(in_size, kernel, strides, dil, pads, out, (0,) * nd)


def _compiled(x: np.ndarray, g: Geometry) -> bool:
    return _kernels.enabled() and x.dtype in (np.float32, np.float64) and g.nd <= 3 and x.size > 0


def _kernel_geometry(g: Geometry) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The compiled kernels' geometry; fold/unfold pad with zeros only, all applied there."""
    return kernel_geometry(g, tuple(a for a, _ in g.pads))


def _columns(xb: np.ndarray, g: Geometry) -> np.ndarray:
    """``(N, C, *in)`` -> ``(N, C * K, L)``: every window as a column."""
    n, c = xb.shape[:2]
    k, p = geometry.prod(g.kernel), geometry.prod(g.out)
    if _compiled(xb, g):
        cols = np.empty(n * c * k * p, dtype=xb.dtype)
        # layout (N, C*K, P): image stride C*K*P, one group, row stride P
        _kernels.im2col(_as5(np.ascontiguousarray(xb), g.nd), *_kernel_geometry(g), 1, cols, c * k * p, c * k * p, p)
        return cols.reshape(n, c * k, p)
    view = window_view(pad(xb, g.pads), g.kernel, g.stride, g.dilation, g.out)  # (N, C, *out, *kernel)
    nd = g.nd
    axes = (0, 1, *range(2 + nd, 2 + 2 * nd), *range(2, 2 + nd))  # -> (N, C, *kernel, *out)
    return np.ascontiguousarray(view.transpose(axes)).reshape(n, c * k, p)


def _uncolumns(cols: np.ndarray, g: Geometry, c: int) -> np.ndarray:
    """``(N, C * K, L)`` -> ``(N, C, *in)``: add every column value back where it was read
    (the adjoint of :func:`_columns`)."""
    n, nd = cols.shape[0], g.nd
    if _compiled(cols, g):
        gx = np.zeros((n, c) + g.in_size, dtype=cols.dtype)
        k, p = geometry.prod(g.kernel), geometry.prod(g.out)
        flat = np.ascontiguousarray(cols).reshape(-1)
        _kernels.col2im(flat, *_kernel_geometry(g), 1, c * k * p, c * k * p, p, _as5(gx, nd))
        return gx
    return col2im(cols, (n, c) + g.in_size, g, "constant")


# --- unfold ------------------------------------------------------------------------------


def unfold_forward(
    input: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1
) -> tuple[np.ndarray, FoldCtx]:
    """:func:`unfold`, returning ``(y, ctx)`` for :func:`unfold_backward`."""
    nd = spatial_rank(kernel_size)
    x = geometry.check_array(input)
    unbatched = geometry.check_rank(x, nd)
    xb = x[None] if unbatched else x
    check_spatial(xb, nd, unbatched)
    g = _geometry(xb.shape[2:], kernel_size, dilation, padding, stride, "input")
    y = _columns(xb, g)
    ctx = FoldCtx(g, xb.shape[1], xb.dtype, unbatched, y.shape[1:] if unbatched else y.shape)
    return (y[0] if unbatched else y), ctx


def unfold_backward(grad_output: Any, ctx: FoldCtx) -> np.ndarray:
    """Gradient of :func:`unfold` with respect to its input: :func:`fold` of ``grad_output``."""
    dy = check_grad(grad_output, ctx.y_shape, ctx.dtype)
    gx = _uncolumns(dy[None] if ctx.unbatched else dy, ctx.geom, ctx.channels)
    return gx[0] if ctx.unbatched else gx


def unfold(input: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1) -> np.ndarray:
    """Every sliding window of ``input`` as a column, PyTorch's ``unfold`` (``im2col``).

    The window view of the engine, ``convpool.windows.window_view``, copied into
    PyTorch's layout.  See the module doc for the rule that decides the number of
    spatial dims (``len(kernel_size)``, or 2 for an int).

    Args:
        input: ``(N, C, *in)`` or unbatched ``(C, *in)``, floating point.
        kernel_size: window size, int or tuple (its length is the number of spatial dims).
        dilation: gap between window elements (1: none).
        padding: zeros added on both sides of each spatial dim (int or tuple, >= 0).
        stride: step between windows.

    Shape:
        ``(N, C, *in) -> (N, C * prod(kernel_size), L)``, ``L = prod(out)``, per dim
        ``out = floor((in + 2*padding - dilation*(kernel_size-1) - 1) / stride) + 1``;
        row ``c * prod(kernel_size) + k`` holds channel ``c`` at kernel offset ``k`` (C order).

    Example::

        >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
        >>> unfold(x, 2, stride=2)[0]          # 4 non-overlapping 2x2 windows
        array([[ 0.,  2.,  8., 10.],
               [ 1.,  3.,  9., 11.],
               [ 4.,  6., 12., 14.],
               [ 5.,  7., 13., 15.]])
    """
    return unfold_forward(input, kernel_size, dilation, padding, stride)[0]


# --- fold --------------------------------------------------------------------------------


def fold_forward(
    input: Any, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1
) -> tuple[np.ndarray, FoldCtx]:
    """:func:`fold`, returning ``(y, ctx)`` for :func:`fold_backward`."""
    nd = spatial_rank(kernel_size, output_size)
    x = geometry.check_array(input)
    if x.ndim not in (2, 3):
        raise ValueError(
            f"input of fold must have 3 dims (N, C * prod(kernel_size), L) or 2 dims unbatched, got shape {x.shape}"
        )
    unbatched = x.ndim == 2
    xb = x[None] if unbatched else x
    size = geometry.ntuple(output_size, nd, "output_size")
    kernel = geometry.ntuple(kernel_size, nd, "kernel_size")
    k = geometry.prod(kernel)
    if xb.shape[1] % k:
        raise ValueError(
            f"fold: expected size of input's dimension {x.ndim - 2} to be divisible by the product of "
            f"kernel_size {kernel} = {k}, but got input of shape {x.shape}"
        )
    g = _fold_geometry(size, kernel, dilation, padding, stride, xb.shape[2], x.shape)
    y = _uncolumns(xb, g, xb.shape[1] // k)
    ctx = FoldCtx(g, y.shape[1], xb.dtype, unbatched, y.shape[1:] if unbatched else y.shape)
    return (y[0] if unbatched else y), ctx


def _fold_geometry(
    size: tuple[int, ...],
    kernel: tuple[int, ...],
    dilation: Any,
    padding: Any,
    stride: Any,
    blocks: int,
    shape: tuple[int, ...],
) -> Geometry:
    """The windows of ``fold``'s output; their number must be the input's last dim."""
    nd = len(size)
    dil = geometry.ntuple(dilation, nd, "dilation")
    pads = geometry.ntuple(padding, nd, "padding", minimum=0)
    strides = geometry.ntuple(stride, nd, "stride")
    counts = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, d, p, s in zip(size, kernel, dil, pads, strides)]
    given = f"output_size={size}, kernel_size={kernel}, dilation={dil}, padding={pads}, stride={strides}"
    if min(counts) < 1:
        raise ValueError(
            f"fold: given {given}, the windows do not fit: the number of sliding blocks per dim, "
            f"floor((output_size + 2*padding - dilation*(kernel_size-1) - 1) / stride) + 1, is {tuple(counts)}, "
            f"but each must be at least one"
        )
    if blocks != geometry.prod(counts):
        raise ValueError(
            f"fold: given {given}, expected size of input's last dimension to match the calculated number of "
            f"sliding blocks {' * '.join(map(str, counts))} = {geometry.prod(counts)}, but got input of shape {shape}"
        )
    return _geometry(size, kernel, dil, pads, strides, "output")


def fold_backward(grad_output: Any, ctx: FoldCtx) -> np.ndarray:
    """Gradient of :func:`fold` with respect to its input: :func:`unfold` of ``grad_output``."""
    dy = check_grad(grad_output, ctx.y_shape, ctx.dtype)
    gx = _columns(dy[None] if ctx.unbatched else dy, ctx.geom)
    return gx[0] if ctx.unbatched else gx


def fold(
    input: Any, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1
) -> np.ndarray:
    """Sum columns of sliding windows back into an array, PyTorch's ``fold`` (``col2im``).

    The adjoint of :func:`unfold` - the engine's ``convpool.windows.scatter_add`` then
    the padding removed: values of overlapping windows that read one element are
    summed, so ``fold(unfold(x))`` is ``x`` times the number of windows covering each
    element (``fold(unfold(ones))`` is that count).  The number of spatial dims is
    ``len(kernel_size)`` or ``len(output_size)``, whichever is a tuple, else 2.

    Args:
        input: ``(N, C * prod(kernel_size), L)`` or unbatched ``(C * prod(kernel_size), L)``.
        output_size: spatial size of the output (int or tuple).
        kernel_size, dilation, padding, stride: as for :func:`unfold`; ``L`` must be the
            number of windows they give on ``output_size``.

    Shape:
        ``(N, C * prod(kernel_size), L) -> (N, C, *output_size)`` with
        ``L = prod(floor((output_size + 2*padding - dilation*(kernel_size-1) - 1) / stride) + 1)``.

    Example::

        >>> fold(np.ones((1, 4, 9)), (4, 4), 2)[0, 0]    # how many 2x2 windows cover each element
        array([[1., 2., 2., 1.],
               [2., 4., 4., 2.],
               [2., 4., 4., 2.],
               [1., 2., 2., 1.]])
    """
    return fold_forward(input, output_size, kernel_size, dilation, padding, stride)[0]
