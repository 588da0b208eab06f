"""Convolution layers: ``Conv1d``, ``Conv2d``, ``Conv3d`` (one implementation)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import functional as F
from .. import geometry
from .._random import generator
from ._common import positive_int
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
        """Check and store channels, groups, kernel size, stride, dilation and padding."""
        nd = self.nd
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            positive_int(v, name)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups={groups} must divide both in_channels={in_channels} and out_channels={out_channels}"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = geometry.ntuple(kernel_size, nd, "kernel_size")
        self.stride = geometry.ntuple(stride, nd, "stride")
        self.dilation = geometry.ntuple(dilation, nd, "dilation")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"padding must be 'valid', 'same' or ints, got {padding!r}")
            self.padding: Any = padding
        else:
            self.padding = geometry.padding_pairs(padding, nd)

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
    """N-d convolution with learned weights ``(C_out, C_in/groups, *kernel)`` and bias.

    Arguments and defaults are PyTorch's.  Initialisation is PyTorch's default
    (Kaiming-uniform with a=sqrt(5)): weight and bias uniform in
    ``+-1/sqrt(fan_in)``, ``fan_in = C_in/groups * prod(kernel)``.

    Shape: ``(N, C_in, *in) -> (N, C_out, *out)`` with
    ``out = floor((in + 2*padding - dilation*(kernel-1) - 1) / stride) + 1``.
    Parameters: ``C_out * C_in/groups * prod(kernel) (+ C_out bias)``.
    """

    _forward_op = staticmethod(F.conv_forward)
    _backward_op = staticmethod(F.conv_backward)
    _param_backward_op = staticmethod(F.conv.conv_param_backward)

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
        self._ctx: F.conv.ConvCtx | F.conv.TrimmedCtx | None = None

    def extra_repr(self) -> str:
        s = self._geometry_repr()
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        return s


class Conv1d(_ConvNd):
    nd = 1


class Conv2d(_ConvNd):
    nd = 2


class Conv3d(_ConvNd):
    nd = 3


for _cls in (Conv1d, Conv2d, Conv3d):
    _cls.__doc__ = f"{_cls.nd}-d convolution layer.\n\n" + (_ConvNd.__doc__ or "")
