"""Convolution layers: ``Conv1d``, ``Conv2d``, ``Conv3d`` (one implementation)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import geometry
from .._random import generator
from ..functional.conv import conv_backward, conv_forward, conv_param_backward
from .module import Module, Parameter


class _ConvLayer(Module):
    """What the convolution-like layers share: checked and stored geometry,
    ``_accumulate`` and the geometry part of ``extra_repr``.  Subclasses fix ``nd``
    and create ``weight`` and ``bias``."""

    nd = 0
    weight: Parameter
    bias: Parameter | None
    # the functional ops, as staticmethods: (x, weight, bias, stride, padding, dilation,
    # groups, padding_mode, *, nd) -> (y, ctx); (dy, ctx) -> (dx, dw, db); (dy, ctx) -> (dw, db)
    _forward_op: Callable[..., tuple[np.ndarray, Any]]
    _backward_op: Callable[[Any, Any], tuple[np.ndarray, np.ndarray, np.ndarray | None]]
    _param_backward_op: Callable[[Any, Any], tuple[np.ndarray, np.ndarray | None]]
    padding_mode: str | None

    def _init_geometry(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any,
        padding: Any,
        dilation: Any,
        groups: int,
    ) -> None:
        """Check and store channels, groups, kernel size, stride, dilation and padding, with
        the rules (and messages) the functional ops apply on each call."""
        nd = self.nd
        geometry.check_groups(in_channels, out_channels, groups)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = geometry.ntuple(kernel_size, nd, "kernel_size")
        self.stride = geometry.ntuple(stride, nd, "stride")
        self.dilation = geometry.ntuple(dilation, nd, "dilation")
        self.padding: Any = geometry.conv_padding(padding, nd)

    def forward(self, x: Any) -> np.ndarray:
        bias = None if self.bias is None else self.bias.data
        y, self._ctx = self._forward_op(
            x,
            self.weight.data,
            bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self.padding_mode,
            nd=self.nd,
        )
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        dx, dw, db = self._backward_op(grad_output, self._need_ctx(self._ctx))
        self._accumulate(dw, db)
        return dx

    def backward_params(self, grad_output: Any) -> None:
        self._accumulate(*self._param_backward_op(grad_output, self._need_ctx(self._ctx)))

    def _accumulate(self, dw: np.ndarray, db: np.ndarray | None) -> None:
        self.weight.accumulate(dw)
        if self.bias is not None and db is not None:
            self.bias.accumulate(db)

    def _geometry_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != ((0, 0),) * self.nd:
            pad = self.padding
            if not isinstance(pad, str) and all(lo == hi for lo, hi in pad):
                pad = tuple(lo for lo, _ in pad)
            s += f", padding={pad}"
        if self.dilation != (1,) * self.nd:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s


def _float_dtype(dtype: Any) -> np.dtype:
    """``dtype`` as an ``np.dtype``; TypeError unless it is floating-point."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"dtype must be a floating-point type, got {dtype}")
    return dtype


class _ConvNd(_ConvLayer):
    """N-d convolution with learned weights ``(C_out, C_in/groups, *kernel)`` and bias;
    subclasses fix ``nd`` (see :class:`Conv2d`)."""

    _forward_op = staticmethod(conv_forward)
    _backward_op = staticmethod(conv_backward)
    _param_backward_op = staticmethod(conv_param_backward)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        dtype: Any = np.float32,
    ):
        super().__init__()
        self._init_geometry(in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        geometry.check_padding_mode(padding_mode)
        self.padding_mode = padding_mode
        dtype = _float_dtype(dtype)
        fan_in = in_channels // groups * geometry.prod(self.kernel_size)
        bound = 1.0 / math.sqrt(fan_in)
        rng = generator()
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = Parameter(rng.uniform(-bound, bound, shape).astype(dtype))
        self.bias = Parameter(rng.uniform(-bound, bound, out_channels).astype(dtype)) if bias else None
        self._ctx: Any = None

    def extra_repr(self) -> str:
        s = self._geometry_repr()
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        return s


class Conv1d(_ConvNd):
    """1-d convolution: each output channel sums a learned kernel over every window of the input.

    Arguments and defaults are PyTorch's, as is the initialisation (Kaiming-uniform, ``a=sqrt(5)``):
    weight and bias uniform in ``+-1/sqrt(fan_in)``, ``fan_in = C_in/groups * prod(kernel_size)``.

    Args:
        in_channels: channels of the input, ``C_in``.
        out_channels: channels of the output, ``C_out``.
        kernel_size: window size, an int or a 1-tuple.
        stride: step between windows, an int or a 1-tuple (default 1).
        padding: an int or one ``(lo, hi)`` pair, 'valid' (none) or 'same' (output size
            ``ceil(in / stride)``, the odd element padded at the end) (default 0).
        dilation: spacing between kernel elements, an int or a 1-tuple (default 1).
        groups: independent channel groups; divides both channel counts (default 1).
        bias: learn a bias per output channel (default True).
        padding_mode: 'zeros' (default), 'reflect', 'replicate' or 'circular'.
        dtype: floating-point type of the parameters (default float32).

    Shape:
        ``(N, C_in, L) -> (N, C_out, L_out)``, or unbatched ``(C_in, L)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1``.
        ``pad_lo = pad_hi = padding`` for an int or a tuple, as given for ``(lo, hi)`` pairs, or for 'same' so
        that ``out = ceil(in / stride)`` ('valid': 0).
        Parameters: ``weight`` ``(C_out, C_in/groups, k)``, ``bias`` ``(C_out,)``.

    Example:
        >>> conv = nn.Conv1d(4, 8, 3, padding=1)
        >>> y = conv(np.random.rand(2, 4, 9).astype(np.float32))
        >>> y.shape
        (2, 8, 9)
        >>> gx = conv.backward(np.ones_like(y))  # accumulates conv.weight.grad and conv.bias.grad
        >>> conv.weight.grad.shape
        (8, 4, 3)
    """

    nd = 1


class Conv2d(_ConvNd):
    """2-d convolution: each output channel sums a learned kernel over every window of the input.

    Arguments and defaults are PyTorch's, as is the initialisation (Kaiming-uniform, ``a=sqrt(5)``):
    weight and bias uniform in ``+-1/sqrt(fan_in)``, ``fan_in = C_in/groups * prod(kernel_size)``.

    Args:
        in_channels: channels of the input, ``C_in``.
        out_channels: channels of the output, ``C_out``.
        kernel_size: window size, an int or a pair ``(kH, kW)``.
        stride: step between windows, an int or a pair (default 1).
        padding: an int, a pair or two ``(lo, hi)`` pairs, 'valid' (none) or 'same' (output size
            ``ceil(in / stride)``, the odd element padded at the end) (default 0).
        dilation: spacing between kernel elements, an int or a pair (default 1).
        groups: independent channel groups; divides both channel counts (default 1).
        bias: learn a bias per output channel (default True).
        padding_mode: 'zeros' (default), 'reflect', 'replicate' or 'circular'.
        dtype: floating-point type of the parameters (default float32).

    Shape:
        ``(N, C_in, H, W) -> (N, C_out, H_out, W_out)``, or unbatched ``(C_in, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1``.
        ``pad_lo = pad_hi = padding`` for an int or a tuple, as given for ``(lo, hi)`` pairs, or for 'same' so
        that ``out = ceil(in / stride)`` ('valid': 0).
        Parameters: ``weight`` ``(C_out, C_in/groups, kH, kW)``, ``bias`` ``(C_out,)``.

    Example:
        >>> conv = nn.Conv2d(4, 8, 3, padding=1)
        >>> y = conv(np.random.rand(2, 4, 9, 9).astype(np.float32))
        >>> y.shape
        (2, 8, 9, 9)
        >>> gx = conv.backward(np.ones_like(y))  # accumulates conv.weight.grad and conv.bias.grad
        >>> conv.weight.grad.shape
        (8, 4, 3, 3)
    """

    nd = 2


class Conv3d(_ConvNd):
    """3-d convolution: each output channel sums a learned kernel over every window of the input.

    Arguments and defaults are PyTorch's, as is the initialisation (Kaiming-uniform, ``a=sqrt(5)``):
    weight and bias uniform in ``+-1/sqrt(fan_in)``, ``fan_in = C_in/groups * prod(kernel_size)``.

    Args:
        in_channels: channels of the input, ``C_in``.
        out_channels: channels of the output, ``C_out``.
        kernel_size: window size, an int or a triple ``(kD, kH, kW)``.
        stride: step between windows, an int or a triple (default 1).
        padding: an int, a triple or three ``(lo, hi)`` pairs, 'valid' (none) or 'same' (output size
            ``ceil(in / stride)``, the odd element padded at the end) (default 0).
        dilation: spacing between kernel elements, an int or a triple (default 1).
        groups: independent channel groups; divides both channel counts (default 1).
        bias: learn a bias per output channel (default True).
        padding_mode: 'zeros' (default), 'reflect', 'replicate' or 'circular'.
        dtype: floating-point type of the parameters (default float32).

    Shape:
        ``(N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out)``, or unbatched ``(C_in, D, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1``.
        ``pad_lo = pad_hi = padding`` for an int or a tuple, as given for ``(lo, hi)`` pairs, or for 'same' so
        that ``out = ceil(in / stride)`` ('valid': 0).
        Parameters: ``weight`` ``(C_out, C_in/groups, kD, kH, kW)``, ``bias`` ``(C_out,)``.

    Example:
        >>> conv = nn.Conv3d(4, 8, 3, padding=1)
        >>> y = conv(np.random.rand(1, 4, 5, 9, 9).astype(np.float32))
        >>> y.shape
        (1, 8, 5, 9, 9)
        >>> gx = conv.backward(np.ones_like(y))  # accumulates conv.weight.grad and conv.bias.grad
        >>> conv.weight.grad.shape
        (8, 4, 3, 3, 3)
    """

    nd = 3
