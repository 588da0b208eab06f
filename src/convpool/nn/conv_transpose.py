"""Transposed convolution layers: ``ConvTranspose1d``, ``ConvTranspose2d``, ``ConvTranspose3d``
(one implementation, :mod:`convpool.functional.conv_transpose`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import geometry
from .._random import generator
from ..functional import conv_transpose as CT
from .conv import _ConvLayer, _float_dtype
from .module import Parameter


class _ConvTransposeNd(_ConvLayer):
    """N-d transposed convolution; subclasses fix ``nd`` (see :class:`ConvTranspose2d`)."""

    _backward_op = staticmethod(CT.conv_transpose_backward)
    _param_backward_op = staticmethod(CT.conv_transpose_param_backward)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Any = 1,
        padding_mode: str = "zeros",
        dtype: Any = np.float32,
    ):
        super().__init__()
        if padding_mode != "zeros":
            raise ValueError(
                f"padding_mode of ConvTranspose{self.nd}d must be 'zeros' (the only one PyTorch has for it), "
                f"got {padding_mode!r}"
            )
        pads = CT.check_padding(padding, self.nd)
        self._init_geometry(in_channels, out_channels, kernel_size, stride, pads, dilation, groups)
        self.padding = pads  # ints per dim, as PyTorch's attribute
        self.output_padding = CT.check_output_padding(output_padding, self.stride, self.dilation)
        self.padding_mode = padding_mode
        dtype = _float_dtype(dtype)
        fan_in = out_channels // groups * geometry.prod(self.kernel_size)  # weight.shape[1] * prod(kernel)
        bound = 1.0 / math.sqrt(fan_in)
        rng = generator()
        shape = (in_channels, out_channels // groups, *self.kernel_size)
        self.weight = Parameter(rng.uniform(-bound, bound, shape).astype(dtype))
        self.bias = Parameter(rng.uniform(-bound, bound, out_channels).astype(dtype)) if bias else None
        self._ctx: CT.ConvTransposeCtx | None = None

    def __call__(self, x: Any, output_size: Any = None) -> np.ndarray:
        return self.forward(x, output_size)

    def forward(self, x: Any, output_size: Any = None) -> np.ndarray:
        """``output_size`` (spatial sizes, or with N, C leading) picks ``output_padding``
        per dim, as PyTorch's ``forward(input, output_size)``."""
        bias = None if self.bias is None else self.bias.data
        y, self._ctx = CT.conv_transpose_forward(
            x,
            self.weight.data,
            bias,
            self.stride,
            self.padding,
            self.output_padding,
            self.groups,
            self.dilation,
            nd=self.nd,
            output_size=output_size,
        )
        return y

    def extra_repr(self) -> str:
        nd = self.nd
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * nd:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * nd:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * nd:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class ConvTranspose1d(_ConvTransposeNd):
    """1-d transposed convolution: the adjoint of ``Conv1d``, upsampling by ``stride`` (as PyTorch's).

    Initialisation is PyTorch's (Kaiming-uniform, ``a=sqrt(5)``): weight and bias uniform in
    ``+-1/sqrt(fan_in)`` with, as PyTorch computes it for this layout,
    ``fan_in = weight.shape[1] * prod(kernel_size) = C_out/groups * prod(kernel_size)``.

    Args:
        in_channels: channels of the input, ``C_in``.
        out_channels: channels of the output, ``C_out``.
        kernel_size: window size, an int or a 1-tuple.
        stride: upsampling factor, an int or a 1-tuple (default 1).
        padding: an int or a 1-tuple cropped from both ends of each dim of the output, symmetric
            (default 0; no 'same', no ``(lo, hi)`` pairs, as in PyTorch).
        output_padding: an int or a 1-tuple added to the high end of the output, smaller than
            stride or dilation per dim (default 0); ``forward(x, output_size)`` picks it instead.
        groups: independent channel groups; divides both channel counts (default 1).
        bias: learn a bias per output channel (default True).
        dilation: spacing between kernel elements, an int or a 1-tuple (default 1).
        padding_mode: only 'zeros' (as in PyTorch).
        dtype: floating-point type of the parameters (default float32).

    Shape:
        ``(N, C_in, L) -> (N, C_out, L_out)``, or unbatched ``(C_in, L)``, with per dim
        ``out = (in-1)*stride - (pad_lo + pad_hi) + dilation*(kernel_size-1) + output_padding + 1``,
        ``pad_lo = pad_hi = padding``.  Parameters: ``weight`` ``(C_in, C_out/groups, *kernel_size)``,
        ``bias`` ``(C_out,)``.

    Example:
        >>> up = nn.ConvTranspose1d(8, 4, 4, stride=2, padding=1)
        >>> x = np.random.rand(2, 8, 7).astype(np.float32)
        >>> up(x).shape
        (2, 4, 14)
        >>> y = up(x, output_size=[15])  # output_padding 1
        >>> y.shape
        (2, 4, 15)
        >>> gx = up.backward(np.ones_like(y))  # accumulates up.weight.grad and up.bias.grad
    """

    nd = 1


class ConvTranspose2d(_ConvTransposeNd):
    """2-d transposed convolution: the adjoint of ``Conv2d``, upsampling by ``stride`` (as PyTorch's).

    Initialisation is PyTorch's (Kaiming-uniform, ``a=sqrt(5)``): weight and bias uniform in
    ``+-1/sqrt(fan_in)`` with, as PyTorch computes it for this layout,
    ``fan_in = weight.shape[1] * prod(kernel_size) = C_out/groups * prod(kernel_size)``.

    Args:
        in_channels: channels of the input, ``C_in``.
        out_channels: channels of the output, ``C_out``.
        kernel_size: window size, an int or a pair ``(kH, kW)``.
        stride: upsampling factor, an int or a pair (default 1).
        padding: an int or a pair cropped from both ends of each dim of the output, symmetric
            (default 0; no 'same', no ``(lo, hi)`` pairs, as in PyTorch).
        output_padding: an int or a pair added to the high end of the output, smaller than
            stride or dilation per dim (default 0); ``forward(x, output_size)`` picks it instead.
        groups: independent channel groups; divides both channel counts (default 1).
        bias: learn a bias per output channel (default True).
        dilation: spacing between kernel elements, an int or a pair (default 1).
        padding_mode: only 'zeros' (as in PyTorch).
        dtype: floating-point type of the parameters (default float32).

    Shape:
        ``(N, C_in, H, W) -> (N, C_out, H_out, W_out)``, or unbatched ``(C_in, H, W)``, with per dim
        ``out = (in-1)*stride - (pad_lo + pad_hi) + dilation*(kernel_size-1) + output_padding + 1``,
        ``pad_lo = pad_hi = padding``.  Parameters: ``weight`` ``(C_in, C_out/groups, *kernel_size)``,
        ``bias`` ``(C_out,)``.

    Example:
        >>> up = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)
        >>> x = np.random.rand(2, 8, 7, 7).astype(np.float32)
        >>> up(x).shape
        (2, 4, 14, 14)
        >>> y = up(x, output_size=[15, 15])  # output_padding 1
        >>> y.shape
        (2, 4, 15, 15)
        >>> gx = up.backward(np.ones_like(y))  # accumulates up.weight.grad and up.bias.grad
    """

    nd = 2


class ConvTranspose3d(_ConvTransposeNd):
    """3-d transposed convolution: the adjoint of ``Conv3d``, upsampling by ``stride`` (as PyTorch's).

    Initialisation is PyTorch's (Kaiming-uniform, ``a=sqrt(5)``): weight and bias uniform in
    ``+-1/sqrt(fan_in)`` with, as PyTorch computes it for this layout,
    ``fan_in = weight.shape[1] * prod(kernel_size) = C_out/groups * prod(kernel_size)``.

    Args:
        in_channels: channels of the input, ``C_in``.
        out_channels: channels of the output, ``C_out``.
        kernel_size: window size, an int or a triple ``(kD, kH, kW)``.
        stride: upsampling factor, an int or a triple (default 1).
        padding: an int or a triple cropped from both ends of each dim of the output, symmetric
            (default 0; no 'same', no ``(lo, hi)`` pairs, as in PyTorch).
        output_padding: an int or a triple added to the high end of the output, smaller than
            stride or dilation per dim (default 0); ``forward(x, output_size)`` picks it instead.
        groups: independent channel groups; divides both channel counts (default 1).
        bias: learn a bias per output channel (default True).
        dilation: spacing between kernel elements, an int or a triple (default 1).
        padding_mode: only 'zeros' (as in PyTorch).
        dtype: floating-point type of the parameters (default float32).

    Shape:
        ``(N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out)``, or unbatched ``(C_in, D, H, W)``, with per dim
        ``out = (in-1)*stride - (pad_lo + pad_hi) + dilation*(kernel_size-1) + output_padding + 1``,
        ``pad_lo = pad_hi = padding``.  Parameters: ``weight`` ``(C_in, C_out/groups, *kernel_size)``,
        ``bias`` ``(C_out,)``.

    Example:
        >>> up = nn.ConvTranspose3d(8, 4, 4, stride=2, padding=1)
        >>> x = np.random.rand(2, 8, 3, 7, 7).astype(np.float32)
        >>> up(x).shape
        (2, 4, 6, 14, 14)
        >>> y = up(x, output_size=[7, 15, 15])  # output_padding 1
        >>> y.shape
        (2, 4, 7, 15, 15)
        >>> gx = up.backward(np.ones_like(y))  # accumulates up.weight.grad and up.bias.grad
    """

    nd = 3
