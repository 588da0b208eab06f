"""Transposed convolution ("deconvolution"): the adjoint of convolution.

A transposed convolution spreads every input element over a window of the output,
weighted by the kernel, and sums where windows overlap: per dim,
``y[n, o, i*stride + t*dilation - padding] += x[n, c, i] * w[c, o, t]`` (groups split
the channels as in convolution).  It maps a convolution's output shape back to its
input shape, which is why decoders and segmentation heads use it to upsample.

Shape: input ``(N, C_in, *in)`` or ``(C_in, *in)``, weight ``(C_in, C_out/groups, *kernel)``
(PyTorch's layout: the convolution's weight with its channel axes read the other way),
output ``(N, C_out, *out)`` with per dim
``out = (in - 1)*stride - 2*padding + dilation*(kernel - 1) + output_padding + 1``.
``padding`` crops the output (it is the padding of the convolution it is the adjoint
of); ``output_padding`` (smaller than stride or dilation) adds rows at the high end,
picking one of the ``stride`` input sizes a strided convolution maps to the same size.

Built on convolution, so it is fast wherever convolution is; the conv_transpose table
(:data:`convpool.backends.tables.CONV_TRANSPOSE`, thresholds ``settings.TUNING.transpose_*``)
picks the forward's implementation:

* forward, "phases" (:mod:`._conv_transpose_phases`): output phase ``r`` (the outputs
  ``stride*q + r``) receives only the taps congruent to it, so it is a stride-1
  convolution of ``x`` with that sub-kernel, flipped - ``prod(stride)`` convolutions on
  convolution's fast forward pass, interleaved into ``y``; at stride 1 one convolution
  with the flipped kernel, straight into ``y``;
* forward, "subpixel" (:mod:`._conv_transpose_subpixel`): the same phases as ONE
  convolution with ``prod(stride)`` times the output channels, then depth-to-space (the
  compiled col2im without overlap) - where the phases' kernels need (almost) no zero
  taps to be one kernel: the kernel a multiple of the stride;
* forward, "col2im": convolution's input gradient
  (:func:`._conv_transpose_adjoint.conv_input_grad`), ``W^T @ x`` per group and col2im,
  the window view's adjoint - where windows overlap little (under ``transpose_min_overlap``
  taps per output: kernel <= stride, or 3x3 at stride 2), and for small problems;
* grad_input = the convolution of ``grad_output`` with the same weight, stride, padding
  and dilation (any of convolution's fast paths), and that convolution's context gives
  grad_weight: its weight gradient with the transposed input as the output gradient;
* grad_bias = ``grad_output`` summed over all but the channel axis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import geometry
from ..backends.tables import CONV_TRANSPOSE, ConvTransposeProblem
from ._common import batched, check_grad, check_spatial
from .conv import _bias_grad, conv_forward, conv_param_backward


@dataclass
class ConvTransposeCtx:
    """What the backward pass needs: the (batched) input, the weight and the geometry."""

    x: np.ndarray  # (N, C_in, *in)
    weight: np.ndarray  # (C_in, C_out/groups, *kernel), as given
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    has_bias: bool
    unbatched: bool
    y_shape: tuple[int, ...]  # batched


def _check_weight(x: np.ndarray, weight: Any, bias: Any, nd: int, groups: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``weight`` (C_in, C_out/groups, *kernel) and ``bias`` (C_out,) against the batched input."""
    weight = geometry.check_array(weight, "weight")
    if weight.ndim != nd + 2:
        raise ValueError(
            f"weight of a {nd}-d transposed conv must have {nd + 2} dims (C_in, C_out/groups, *kernel), "
            f"got shape {weight.shape}"
        )
    if not geometry._is_int(groups) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    c_in = x.shape[1]
    if weight.shape[0] != c_in:
        raise ValueError(
            f"input has {c_in} channels but weight of shape {weight.shape} expects {weight.shape[0]} "
            f"(weight.shape[0] = in_channels for a transposed conv)"
        )
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide in_channels={c_in}")
    if bias is not None:
        bias = geometry.check_array(bias, "bias")
        c_out = weight.shape[1] * groups
        if bias.shape != (c_out,):
            raise ValueError(
                f"bias must have shape ({c_out},) (out_channels = weight.shape[1] * groups), got {bias.shape}"
            )
    return weight, bias


def check_padding(padding: Any, nd: int) -> tuple[int, ...]:
    """An int or a tuple of ``nd`` non-negative ints; no 'same'/'valid' (PyTorch has none
    for transposed convolution)."""
    if isinstance(padding, str):
        raise ValueError(
            f"padding of a transposed conv must be an int or a tuple of {nd} ints, got {padding!r} "
            "('same' and 'valid' are not defined for transposed convolution, as in PyTorch)"
        )
    return geometry.ntuple(padding, nd, "padding", minimum=0)


def check_output_padding(output_padding: Any, stride: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[int, ...]:
    """PyTorch's rule: ``output_padding`` smaller than either stride or dilation, per dim."""
    op = geometry.ntuple(output_padding, len(stride), "output_padding", minimum=0)
    if any(o >= max(s, d) for o, s, d in zip(op, stride, dilation, strict=True)):
        raise ValueError(
            f"output_padding must be smaller than either stride or dilation in every dim, got "
            f"output_padding={op} with stride={stride} and dilation={dilation}"
        )
    return op


def min_output_size(
    in_size: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[int, ...]:
    """Per dim, the output size with ``output_padding`` 0."""
    return tuple(
        (n - 1) * s - 2 * p + d * (k - 1) + 1
        for n, k, s, p, d in zip(in_size, kernel, stride, padding, dilation, strict=True)
    )


def padding_for_size(
    output_size: Any, in_size: tuple[int, ...], min_size: tuple[int, ...], stride: tuple[int, ...], unbatched: bool
) -> tuple[int, ...]:
    """The ``output_padding`` that gives ``output_size`` (spatial sizes, or with N, C (C
    unbatched) leading, as PyTorch accepts): ``output_size - min_size`` per dim, each in
    ``[0, stride)`` (PyTorch's ``_output_padding``)."""
    nd = len(in_size)
    lead = 1 if unbatched else 2
    if not (isinstance(output_size, (tuple, list)) and all(geometry._is_int(v) for v in output_size)):
        raise TypeError(f"output_size must be a tuple or list of ints, got {output_size!r}")
    sizes = tuple(int(v) for v in output_size)
    if len(sizes) == nd + lead:
        sizes = sizes[lead:]
    if len(sizes) != nd:
        raise ValueError(
            f"output_size must have {nd} (spatial) or {nd + lead} elements for a "
            f"{'un' if unbatched else ''}batched {nd}-d input, got {output_size!r}"
        )
    max_size = tuple(m + s - 1 for m, s in zip(min_size, stride, strict=True))
    if any(not lo <= v <= hi for v, lo, hi in zip(sizes, min_size, max_size, strict=True)):
        raise ValueError(
            f"output_size {sizes} cannot be reached: for an input of spatial size {in_size} the sizes range "
            f"from {min_size} to {max_size} per dim (output_padding from 0 to stride-1)"
        )
    return tuple(v - m for v, m in zip(sizes, min_size, strict=True))


def conv_transpose_forward(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
    *,
    nd: int | None = None,
    output_size: Any = None,
) -> tuple[np.ndarray, ConvTransposeCtx]:
    """N-d transposed convolution forward; returns ``(y, ctx)`` for :func:`conv_transpose_backward`.

    ``output_size`` (as the PyTorch modules' ``forward`` takes it), when given, picks
    ``output_padding`` (the argument is then ignored, as in PyTorch)."""
    if nd is None:
        nd = np.ndim(weight) - 2
    xb, unbatched = batched(input, nd)
    check_spatial(xb, nd, unbatched)
    weight, bias = _check_weight(xb, weight, bias, nd, groups)
    kernel = geometry.ntuple(tuple(weight.shape[2:]), nd, "kernel_size (weight.shape[2:])")
    strides = geometry.ntuple(stride, nd, "stride")
    dil = geometry.ntuple(dilation, nd, "dilation")
    pads = check_padding(padding, nd)
    in_size = tuple(int(v) for v in xb.shape[2:])
    min_size = min_output_size(in_size, kernel, strides, pads, dil)
    if output_size is not None:
        op = padding_for_size(output_size, in_size, min_size, strides, unbatched)
    else:
        op = check_output_padding(output_padding, strides, dil)
    out = tuple(m + o for m, o in zip(min_size, op, strict=True))
    for i, (n, k, s, p, d, o) in enumerate(zip(in_size, kernel, strides, pads, dil, op, strict=True)):
        if out[i] < 1:
            raise ValueError(
                f"the output of the transposed conv is empty in spatial dim {i}: "
                f"out = (in-1)*stride - 2*padding + dilation*(kernel-1) + output_padding + 1 "
                f"= ({n}-1)*{s} - 2*{p} + {d}*({k}-1) + {o} + 1 = {out[i]} < 1; use less padding"
            )
    y = _forward(xb, weight, bias, (xb.shape[0], weight.shape[1] * groups) + out, strides, pads, dil, groups)
    ctx = ConvTransposeCtx(xb, weight, strides, pads, op, dil, groups, bias is not None, unbatched, y.shape)
    return (y[0] if unbatched else y), ctx


def forward_path(
    x_shape: tuple[int, ...], weight_shape: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...]
) -> str:
    """Which implementation of the conv_transpose table computes the forward pass for
    the batched input's and the weight's shapes ("empty": nothing to compute); the
    thresholds are ``settings.TUNING.transpose_*``, measured."""
    if geometry.prod(x_shape) == 0 or geometry.prod(weight_shape) == 0:
        return "empty"
    nd = len(stride)
    x, w = np.empty(x_shape, np.float32), np.empty(weight_shape, np.float32)  # shapes only: never filled
    y_shape = (x_shape[0], weight_shape[1]) + (1,) * nd
    return CONV_TRANSPOSE.name_of(
        CONV_TRANSPOSE.choose(ConvTransposeProblem(x, w, None, y_shape, stride, (0,) * nd, dilation, 1))
    )


def _forward(
    xb: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    y_shape: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
) -> np.ndarray:
    """The output, bias included, by the conv_transpose table's choice."""
    y: np.ndarray | None = None
    if xb.size and weight.size:
        problem = ConvTransposeProblem(xb, weight, bias, y_shape, stride, padding, dilation, groups)
        y = CONV_TRANSPOSE.choose(problem).forward(problem)
        if y is not None:
            return y
    y = np.zeros(y_shape, dtype=xb.dtype)  # empty, or no window of the phase convolution reads the input
    if bias is not None:
        y += bias.astype(xb.dtype, copy=False).reshape((y_shape[1],) + (1,) * len(stride))
    return y


def conv_transpose_backward(dy: Any, ctx: ConvTransposeCtx) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients ``(grad_input, grad_weight, grad_bias)`` (``grad_bias`` None without bias)."""
    dyb, db = _grad_output(dy, ctx)
    dx, dw = _grads(dyb, ctx)
    return (dx[0] if ctx.unbatched else dx), dw, db


def conv_transpose_param_backward(dy: Any, ctx: ConvTransposeCtx) -> tuple[np.ndarray, np.ndarray | None]:
    """``(grad_weight, grad_bias)`` only, for a first layer.  This saves no work: the
    weight gradient comes from the context of the convolution that gives the input's."""
    dyb, db = _grad_output(dy, ctx)
    return _grads(dyb, ctx)[1], db


def _grad_output(dy: Any, ctx: ConvTransposeCtx) -> tuple[np.ndarray, np.ndarray | None]:
    """``dy`` checked and batched, and the bias gradient (in the weight's dtype, as conv's)."""
    dy = check_grad(dy, ctx.y_shape[1:] if ctx.unbatched else ctx.y_shape, ctx.x.dtype)
    if ctx.unbatched:
        dy = dy[None]
    db = _bias_grad(dy).astype(ctx.weight.dtype, copy=False) if ctx.has_bias else None
    return dy, db


def _grads(dy: np.ndarray, ctx: ConvTransposeCtx) -> tuple[np.ndarray, np.ndarray]:
    """Input and weight gradients from one convolution of ``dy`` with the weight.

    grad_input is that convolution; its weight gradient, with the transposed conv's input
    as the output gradient, is grad_weight (the roles of x and dy swap).  Its padded input
    must span exactly ``(in-1)*stride + dilation*(kernel-1) + 1`` per dim, so that it has
    ``in`` outputs, and ``dy`` spans that plus ``output_padding - 2*padding``: the low side
    is padded by ``padding``, the high side by ``padding - output_padding`` when that is
    >= 0; otherwise the last ``output_padding - padding`` positions of ``dy``, which no
    input element reaches, are cut off."""
    keep = tuple(n - max(o - p, 0) for n, p, o in zip(dy.shape[2:], ctx.padding, ctx.output_padding, strict=True))
    pairs = tuple((p, max(p - o, 0)) for p, o in zip(ctx.padding, ctx.output_padding, strict=True))
    if min(keep) <= 0:  # no input element reaches the output
        return np.zeros(ctx.x.shape, dtype=ctx.x.dtype), np.zeros(ctx.weight.shape, dtype=ctx.weight.dtype)
    if keep != dy.shape[2:]:
        index: tuple[Any, ...] = (Ellipsis, *(slice(0, k) for k in keep))
        dy = np.ascontiguousarray(dy[index])
    nd = len(ctx.stride)
    dx, conv_ctx = conv_forward(dy, ctx.weight, None, ctx.stride, pairs, ctx.dilation, ctx.groups, nd=nd)
    dw, _ = conv_param_backward(ctx.x, conv_ctx)
    return dx, dw


def _conv_transpose(nd: int) -> Callable[..., np.ndarray]:
    def conv_transpose(
        input: Any,
        weight: Any,
        bias: Any = None,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        dilation: Any = 1,
    ) -> np.ndarray:
        return conv_transpose_forward(input, weight, bias, stride, padding, output_padding, groups, dilation, nd=nd)[0]

    conv_transpose.__name__ = conv_transpose.__qualname__ = f"conv_transpose{nd}d"
    conv_transpose.__doc__ = f"""{nd}-d transposed convolution, PyTorch's ``conv_transpose{nd}d`` (same arguments).

    Args:
        input: ``(N, C_in, *in)`` or unbatched ``(C_in, *in)``, {nd} spatial dims.
        weight: ``(C_in, C_out/groups, *kernel)``.
        bias: ``(C_out,)`` or None.
        stride, padding, output_padding, dilation: an int or a tuple of {nd} ints;
            ``padding`` crops the output, ``output_padding`` (< stride or dilation) adds to
            its high end.
        groups: splits the channels as in convolution; divides ``C_in``.

    Shape:
        ``out = (in-1)*stride - 2*padding + dilation*(kernel-1) + output_padding + 1`` per dim.

    Example::

        >>> x = np.random.rand(2, 8, {", ".join(["5"] * nd)}).astype(np.float32)
        >>> w = np.random.rand(8, 4, {", ".join(["4"] * nd)}).astype(np.float32)
        >>> conv_transpose{nd}d(x, w, stride=2, padding=1).shape  # twice the size
        (2, 4, {", ".join(["10"] * nd)})
    """
    return conv_transpose


conv_transpose1d = _conv_transpose(1)
conv_transpose2d = _conv_transpose(2)
conv_transpose3d = _conv_transpose(3)
