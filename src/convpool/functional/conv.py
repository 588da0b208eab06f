"""Convolution: multiply every window by learned weights and sum.

As in deep-learning libraries this is cross-correlation (the kernel is not
flipped).  Shape: input ``(N, C_in, *in)`` or ``(C_in, *in)``, weight
``(C_out, C_in/groups, *kernel)``, output ``(N, C_out, *out)`` with per dim
``out = floor((in + pad_lo + pad_hi - dilation*(kernel-1) - 1) / stride) + 1``.

``padding`` may be an int, a tuple, explicit ``(lo, hi)`` pairs, 'valid' or
'same'.  'same' with stride 1 is PyTorch's; with stride > 1 (which PyTorch
refuses) convpool uses TensorFlow's rule: ``out = ceil(in / stride)`` and the
odd padding pixel goes to the end.

This module validates the arguments, reduces the problem (:mod:`._trim`: a
zero-padded convolution reaching far past its input runs as the sub-problem that
reads the input) and hands it to the implementation that the conv table
(:data:`convpool.backends.tables.CONV`) chooses; the context keeps that
implementation and its state, so the backward pass is the same implementation's.
``convpool.config.describe("conv2d", ...)`` shows the choice for given shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .. import geometry
from ..backends.compiled import kernels as _kernels
from ..backends.tables import CONV, ConvProblem
from ..settings import TUNING
from ..windows import check_border_padding
from . import _trim
from ._common import Geometry, batched, check_grad, check_spatial, check_weight, make_geometry
from ._trim import Trim


def conv_forward(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    *,
    nd: int | None = None,
) -> tuple[np.ndarray, ConvCtx | TrimmedCtx]:
    """N-d convolution forward; returns ``(y, ctx)`` for :func:`conv_backward`."""
    if nd is None:
        nd = np.ndim(weight) - 2
    xb, unbatched = batched(x, nd)
    check_spatial(xb, nd, unbatched)  # PyTorch refuses it too: only the batch or channels may be empty
    weight, bias = check_weight(xb, weight, bias, nd, groups)
    mode = geometry.check_padding_mode(padding_mode)
    g = make_geometry(xb.shape[2:], nd, weight.shape[2:], stride, padding, dilation)
    if mode != "constant":  # checked here too, not only when padding: an empty batch is no exception
        check_border_padding(g.in_size, g.pads, mode)
    trim = _trim_plan(g) if mode == "constant" else None
    y: np.ndarray
    ctx: ConvCtx | TrimmedCtx
    b = None if bias is None else bias.astype(xb.dtype, copy=False)
    fused = False  # whether the implementation added the bias itself
    if trim is not None:
        y, ctx = _trimmed_forward(xb, weight, g, trim, groups, unbatched)
    elif xb.size == 0 or weight.size == 0:  # nothing to compute: an empty batch or no channels
        y = np.zeros((xb.shape[0], weight.shape[0]) + g.out, dtype=xb.dtype)
        ctx = TrimmedCtx(None, Trim(empty=True), xb.shape, xb.dtype, weight.shape, weight.dtype, unbatched, y.shape)
    else:
        problem = ConvProblem(xb, weight, g, groups, mode, b)
        impl = CONV.choose(problem)
        y, state = impl.forward(problem)
        ctx = ConvCtx(impl, state, xb.dtype, weight.dtype, unbatched, y.shape)
        fused = getattr(impl, "FUSES_BIAS", False)  # its kernel started its sums from the bias
    if b is not None and not fused:
        _add_bias(y, b)
    ctx.has_bias = bias is not None
    return (y[0] if unbatched else y), ctx


def _add_bias(y: np.ndarray, bias: np.ndarray) -> None:
    """y[:, c] += bias[c] in place: one compiled pass over the planes where it pays (NumPy's
    broadcast add runs an inner loop per plane: 3x slower on a CIFAR conv's output)."""
    if _kernels.enabled() and y.size >= 1 << 14 and y.flags.c_contiguous and y.dtype in (np.float32, np.float64):
        _kernels.plane_add(y.reshape(y.shape[0] * y.shape[1], -1), bias)
    else:
        y += bias.reshape((-1,) + (1,) * (y.ndim - 2))


_TRIMS: dict[int, tuple[Geometry, float, int, Trim | None]] = {}  # id(g) -> (g, thresholds, plan)
_TRIMS_MAX = 256


def _trim_plan(g: Geometry) -> Trim | None:
    """:func:`._trim.plan`, remembered per geometry object (a layer's calls on one shape get
    the same cached Geometry; the entry holds it, so its id stays its own) and the
    thresholds it reads: 3-4 us a call saved, bounded at :data:`_TRIMS_MAX` entries."""
    ratio, slack = TUNING.conv_trim_ratio, TUNING.conv_trim_slack
    hit = _TRIMS.get(id(g))
    if hit is not None and hit[0] is g and hit[1] == ratio and hit[2] == slack:
        return hit[3]
    trim = _trim.plan(g)
    if len(_TRIMS) >= _TRIMS_MAX:
        _TRIMS.clear()
    _TRIMS[id(g)] = (g, ratio, slack, trim)
    return trim


@dataclass
class ConvCtx:
    """A convolution that ran: the implementation (a module of the conv table) and the
    state it keeps for its backward pass."""

    impl: ModuleType
    state: Any
    dtype: np.dtype  # the input's, in which it computes
    w_dtype: np.dtype
    unbatched: bool
    y_shape: tuple[int, ...]
    has_bias: bool = False

    @property
    def name(self) -> str:
        """The implementation's name in the conv table."""
        return CONV.name_of(self.impl)


@dataclass
class TrimmedCtx:
    """A convolution computed as a trimmed sub-problem (:mod:`._trim`), or one with
    nothing to compute (``sub`` None: an empty input, no channels, or no window that
    reads the input)."""

    sub: ConvCtx | TrimmedCtx | None
    trim: Trim
    x_shape: tuple[int, ...]
    dtype: np.dtype  # the input's, in which it computes
    w_shape: tuple[int, ...]
    w_dtype: np.dtype
    unbatched: bool
    y_shape: tuple[int, ...]
    has_bias: bool = False


def _trimmed_forward(
    xb: np.ndarray, weight: np.ndarray, g: Geometry, trim: Trim, groups: int, unbatched: bool
) -> tuple[np.ndarray, TrimmedCtx]:
    """Run the sub-problem that reads the input and place it in a zero output."""
    shape = (xb.shape[0], weight.shape[0]) + g.out
    sub = None
    if trim.empty:
        y = np.zeros(shape, dtype=xb.dtype)
    else:
        x_sub = xb[trim.at(trim.in_slices)]
        w_sub = weight[trim.at(trim.tap_slices)]
        y_sub, sub = conv_forward(x_sub, w_sub, None, trim.stride, trim.pads, trim.dilation, groups, nd=g.nd)
        if trim.whole(trim.out_slices, shape):
            y = y_sub
        else:
            y = np.zeros(shape, dtype=xb.dtype)
            y[trim.at(trim.out_slices)] = y_sub
    return y, TrimmedCtx(sub, trim, xb.shape, xb.dtype, weight.shape, weight.dtype, unbatched, shape)


def _trimmed_backward(dy: np.ndarray, ctx: TrimmedCtx, input_grad: bool) -> tuple[np.ndarray | None, np.ndarray]:
    trim = ctx.trim
    if ctx.sub is None:
        dx = np.zeros(ctx.x_shape, dtype=ctx.dtype) if input_grad else None
        return dx, np.zeros(ctx.w_shape, dtype=ctx.w_dtype)
    dy_sub = np.ascontiguousarray(dy[trim.at(trim.out_slices)])
    dx_sub, dw_sub, _ = _backward(dy_sub, ctx.sub, input_grad)
    if trim.whole(trim.tap_slices, ctx.w_shape):
        dw = dw_sub
    else:
        dw = np.zeros(ctx.w_shape, dtype=ctx.w_dtype)
        dw[trim.at(trim.tap_slices)] = dw_sub
    if dx_sub is None:
        return None, dw
    if trim.whole(trim.in_slices, ctx.x_shape):
        return dx_sub, dw
    dx = np.zeros(ctx.x_shape, dtype=ctx.dtype)
    dx[trim.at(trim.in_slices)] = dx_sub
    return dx, dw


def conv_backward(dy: Any, ctx: ConvCtx | TrimmedCtx) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients ``(grad_input, grad_weight, grad_bias)`` (``grad_bias`` None without bias)."""
    dx, dw, db = _backward(dy, ctx, input_grad=True)
    assert dx is not None
    return dx, dw, db


def conv_param_backward(dy: Any, ctx: ConvCtx | TrimmedCtx) -> tuple[np.ndarray, np.ndarray | None]:
    """``(grad_weight, grad_bias)`` only: for a first layer, whose input needs no gradient
    (PyTorch skips it too when the input does not require grad)."""
    _, dw, db = _backward(dy, ctx, input_grad=False)
    return dw, db


def _backward(
    dy: Any, ctx: ConvCtx | TrimmedCtx, input_grad: bool
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    dy = check_grad(dy, ctx.y_shape[1:] if ctx.unbatched else ctx.y_shape, ctx.dtype)
    if ctx.unbatched:
        dy = dy[None]
    db = _bias_grad(dy).astype(ctx.w_dtype, copy=False) if ctx.has_bias else None
    if isinstance(ctx, TrimmedCtx):
        dx, dw = _trimmed_backward(dy, ctx, input_grad)
    else:
        dx, dw = ctx.impl.backward(dy, ctx.state, input_grad)
    if dx is not None and ctx.unbatched:
        dx = dx[0]
    return dx, dw, db


def _bias_grad(dy: np.ndarray) -> np.ndarray:
    """Sum of dy (N, C, *spatial) over all but the channel axis."""
    n, c = dy.shape[:2]
    if _kernels.worth_parallel(dy):
        sums = np.empty(n * c, dtype=dy.dtype)
        _kernels.plane_sum(np.ascontiguousarray(dy).reshape(n * c, -1), sums)  # one parallel pass
        return sums.reshape(n, c).sum(axis=0)
    return dy.sum(axis=(0, *range(2, dy.ndim)))


def _conv(nd: int) -> Callable[..., Any]:
    def conv(
        input: Any,
        weight: Any,
        bias: Any = None,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        *,
        padding_mode: str = "zeros",
    ) -> np.ndarray:
        return conv_forward(input, weight, bias, stride, padding, dilation, groups, padding_mode, nd=nd)[0]

    conv.__name__ = conv.__qualname__ = f"conv{nd}d"
    conv.__doc__ = (
        f"{nd}-d convolution (cross-correlation), PyTorch's ``conv{nd}d``; beyond it, "
        "``padding_mode`` ('zeros', 'reflect', 'replicate', 'circular'), explicit (lo, hi) "
        "padding pairs and 'same' with stride > 1.  See the module doc."
    )
    return conv


conv1d = _conv(1)
conv2d = _conv(2)
conv3d = _conv(3)
