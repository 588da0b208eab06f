"""Morphological layers: max-plus (dilation) and min-plus (erosion) convolution.

``MaxPlusConv1d/2d/3d`` and ``MinPlusConv1d/2d/3d``: a convolution whose product is a
sum and whose sum is a maximum (minimum), with a learned structuring element.  See
:mod:`convpool.functional.maxplus`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import geometry
from ..functional import maxplus as MP
from .conv import _ConvLayer, _float_dtype
from .module import Parameter


def _doc(reduction: str, nd: int) -> str:
    name = f"{'Max' if reduction == 'max' else 'Min'}PlusConv{nd}d"
    op, morph = ("max", "dilation") if reduction == "max" else ("min", "erosion")
    pool, inf = ("MaxPool", "-inf") if reduction == "max" else ("MinPool", "+inf")
    dims = ("L",) if nd == 1 else ("H", "W") if nd == 2 else ("D", "H", "W")
    size = ("32",) if nd == 1 else ("28", "28") if nd == 2 else ("8", "16", "16")
    k = "3" if nd < 3 else "(3, 3, 3)"
    return f"""{nd}-d {op}-plus convolution: grey-scale morphological {morph} with a learned
    structuring element.

    ``y[n, o, p] = {op} over (c in o's group, k) of x[n, c, p*stride + k*dilation - pad_lo] + weight[o, c, k]``
    (+ ``bias[o]``): a convolution with ``+`` for the product and ``{op}`` for the sum.
    The weights start at zero (a flat structuring element), so
    ``{name}(C, C, k, groups=C)`` is exactly ``{pool}{nd}d(k, stride=1)`` at
    initialisation; unlike the pool it then *learns* the shape of its window - a
    per-offset additive weight - and can mix channels.  The gradient reaches the
    input and the weight at each window's winner (ties: the first (c, k) in scan
    order, as in {op} pooling; a NaN wins and propagates).

    Source: mathematical morphology (J. Serra, *Image Analysis and Mathematical
    Morphology*, 1982); as trainable layers, "deep morphological networks" (e.g.
    Mondal et al. 2019, *Dense Morphological Network*; Franchi et al. 2020, *Deep
    Morphological Networks*).

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: int or tuple of {nd}.
        stride, dilation: int or tuple of {nd} (default 1).
        padding: int, tuple of {nd}, {nd} ``(lo, hi)`` pairs, 'valid' or 'same' (default 0).
        groups: C_in and C_out split into ``groups`` independent groups (default 1).
        bias: add a learned per-channel bias, initialised to zero (default False).
        padding_mode: None (default) pads with the reduction's identity, {inf}, which
            takes no part; 'zeros', 'reflect', 'replicate' or 'circular' fill the
            border with real values.
        dtype: of the parameters (default float32).

    Shape:
        Input ``(N, C_in, {", ".join(dims)})`` or ``(C_in, {", ".join(dims)})``; output ``(N, C_out, {", ".join(d + "_out" for d in dims)})``
        with, per dimension,
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1``.
        Parameters: weight ``(C_out, C_in/groups, *kernel_size)``, bias ``(C_out,)``.

    Example::

        >>> m = nn.{name}(4, 4, {k}, padding=1, groups=4)
        >>> x = np.random.rand(2, 4, {", ".join(size)}).astype(np.float32)
        >>> y = m(x)                       # == {op}_pool{nd}d(x, {k}, stride=1, padding=1) at init
        >>> gx = m.backward(np.ones_like(y))   # accumulates m.weight.grad
    """


class _MaxPlusConvNd(_ConvLayer):
    """N-d max-plus (min-plus) convolution layer; subclasses fix ``nd`` and ``reduction``."""

    nd = 0
    reduction = "max"
    _forward_op = staticmethod(MP.maxplus_conv_forward)
    _backward_op = staticmethod(MP.maxplus_conv_backward)
    _param_backward_op = staticmethod(MP.maxplus_conv_param_backward)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = False,
        padding_mode: str | None = None,
        dtype: Any = np.float32,
    ):
        super().__init__()
        self._init_geometry(in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        if padding_mode is not None:
            geometry.check_padding_mode(padding_mode)
        self.padding_mode = padding_mode
        dtype = _float_dtype(dtype)
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = Parameter(np.zeros(shape, dtype=dtype))  # flat structuring element
        self.bias = Parameter(np.zeros(out_channels, dtype=dtype)) if bias else None
        self._ctx: MP.MaxPlusCtx | None = None

    def extra_repr(self) -> str:
        s = self._geometry_repr()
        if self.bias is not None:
            s += ", bias=True"
        if self.padding_mode is not None:
            s += f", padding_mode={self.padding_mode!r}"
        return s


class _MinPlusConvNd(_MaxPlusConvNd):
    """N-d min-plus convolution layer (erosion); subclasses fix ``nd``."""

    reduction = "min"
    _forward_op = staticmethod(MP.minplus_conv_forward)


class MaxPlusConv1d(_MaxPlusConvNd):
    __doc__ = _doc("max", 1)
    nd = 1


class MaxPlusConv2d(_MaxPlusConvNd):
    __doc__ = _doc("max", 2)
    nd = 2


class MaxPlusConv3d(_MaxPlusConvNd):
    __doc__ = _doc("max", 3)
    nd = 3


class MinPlusConv1d(_MinPlusConvNd):
    __doc__ = _doc("min", 1)
    nd = 1


class MinPlusConv2d(_MinPlusConvNd):
    __doc__ = _doc("min", 2)
    nd = 2


class MinPlusConv3d(_MinPlusConvNd):
    __doc__ = _doc("min", 3)
    nd = 3
