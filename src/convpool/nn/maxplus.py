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


class _MaxPlusConvNd(_ConvLayer):
    """N-d max-plus (min-plus) convolution layer; subclasses fix ``nd`` and ``reduction``
    (see :class:`MaxPlusConv2d`)."""

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
    """1-d max-plus convolution: grey-scale morphological dilation, a learned structuring element.

    ``y[n, o, p] = max over (c in o's group, k) of x[n, c, p*stride + k*dilation - pad_lo] + weight[o, c, k]``
    (+ ``bias[o]``): a convolution with ``+`` for the product and ``max`` for the sum.
    The weights start at zero (a flat structuring element), so
    ``MaxPlusConv1d(C, C, k, groups=C)`` is exactly ``MaxPool1d(k, stride=1)`` at
    initialisation; unlike the pool it then *learns* the shape of its window - a
    per-offset additive weight - and can mix channels.  The gradient reaches the
    input and the weight at each window's winner (ties: the first (c, k) in scan
    order, as in max pooling; a NaN wins and propagates).

    Source: mathematical morphology (J. Serra, *Image Analysis and Mathematical
    Morphology*, 1982); as trainable layers, "deep morphological networks" (e.g.
    Mondal et al. 2019, *Dense Morphological Network*; Franchi et al. 2020, *Deep
    Morphological Networks*).

    Args:
        in_channels: channels of the input, ``C_in``.
        out_channels: channels of the output, ``C_out``.
        kernel_size: window size, an int or a 1-tuple.
        stride: step between windows, an int or a 1-tuple (default 1).
        padding: an int or one ``(lo, hi)`` pair, 'valid' or 'same' (default 0).
        dilation: spacing between kernel elements, an int or a 1-tuple (default 1).
        groups: C_in and C_out split into ``groups`` independent groups (default 1).
        bias: add a learned per-channel bias, initialised to zero (default False).
        padding_mode: None (default) pads with the reduction's identity, -inf, which
            takes no part; 'zeros', 'reflect', 'replicate' or 'circular' fill the
            border with real values.
        dtype: floating-point type of the parameters (default float32).

    Shape:
        Input ``(N, C_in, L)`` or ``(C_in, L)``; output ``(N, C_out, L_out)``
        with, per dimension,
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1``.
        ``pad_lo = pad_hi = padding`` for an int or a tuple, as given for ``(lo, hi)`` pairs, or for 'same' so
        that ``out = ceil(in / stride)`` ('valid': 0).
        Parameters: weight ``(C_out, C_in/groups, *kernel_size)``, bias ``(C_out,)``.

    Example:
        >>> m = nn.MaxPlusConv1d(4, 4, 3, padding=1, groups=4)
        >>> x = np.random.rand(2, 4, 16).astype(np.float32)
        >>> y = m(x)
        >>> np.array_equal(y, F.max_pool1d(x, 3, stride=1, padding=1))  # at initialisation
        True
        >>> gx = m.backward(np.ones_like(y))  # accumulates m.weight.grad
        >>> m.weight.grad.shape
        (4, 1, 3)
    """

    nd = 1


class MaxPlusConv2d(_MaxPlusConvNd):
    """2-d max-plus convolution: grey-scale morphological dilation, a learned structuring element.

    ``y[n, o, p] = max over (c in o's group, k) of x[n, c, p*stride + k*dilation - pad_lo] + weight[o, c, k]``
    (+ ``bias[o]``): a convolution with ``+`` for the product and ``max`` for the sum.
    The weights start at zero (a flat structuring element), so
    ``MaxPlusConv2d(C, C, k, groups=C)`` is exactly ``MaxPool2d(k, stride=1)`` at
    initialisation; unlike the pool it then *learns* the shape of its window - a
    per-offset additive weight - and can mix channels.  The gradient reaches the
    input and the weight at each window's winner (ties: the first (c, k) in scan
    order, as in max pooling; a NaN wins and propagates).

    Source: mathematical morphology (J. Serra, *Image Analysis and Mathematical
    Morphology*, 1982); as trainable layers, "deep morphological networks" (e.g.
    Mondal et al. 2019, *Dense Morphological Network*; Franchi et al. 2020, *Deep
    Morphological Networks*).

    Args:
        in_channels: channels of the input, ``C_in``.
        out_channels: channels of the output, ``C_out``.
        kernel_size: window size, an int or a pair ``(kH, kW)``.
        stride: step between windows, an int or a pair (default 1).
        padding: an int, a pair or two ``(lo, hi)`` pairs, 'valid' or 'same' (default 0).
        dilation: spacing between kernel elements, an int or a pair (default 1).
        groups: C_in and C_out split into ``groups`` independent groups (default 1).
        bias: add a learned per-channel bias, initialised to zero (default False).
        padding_mode: None (default) pads with the reduction's identity, -inf, which
            takes no part; 'zeros', 'reflect', 'replicate' or 'circular' fill the
            border with real values.
        dtype: floating-point type of the parameters (default float32).

    Shape:
        Input ``(N, C_in, H, W)`` or ``(C_in, H, W)``; output ``(N, C_out, H_out, W_out)``
        with, per dimension,
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1``.
        ``pad_lo = pad_hi = padding`` for an int or a tuple, as given for ``(lo, hi)`` pairs, or for 'same' so
        that ``out = ceil(in / stride)`` ('valid': 0).
        Parameters: weight ``(C_out, C_in/groups, *kernel_size)``, bias ``(C_out,)``.

    Example:
        >>> m = nn.MaxPlusConv2d(4, 4, 3, padding=1, groups=4)
        >>> x = np.random.rand(2, 4, 9, 9).astype(np.float32)
        >>> y = m(x)
        >>> np.array_equal(y, F.max_pool2d(x, 3, stride=1, padding=1))  # at initialisation
        True
        >>> gx = m.backward(np.ones_like(y))  # accumulates m.weight.grad
        >>> m.weight.grad.shape
        (4, 1, 3, 3)
    """

    nd = 2


class MaxPlusConv3d(_MaxPlusConvNd):
    """3-d max-plus convolution: grey-scale morphological dilation, a learned structuring element.

    ``y[n, o, p] = max over (c in o's group, k) of x[n, c, p*stride + k*dilation - pad_lo] + weight[o, c, k]``
    (+ ``bias[o]``): a convolution with ``+`` for the product and ``max`` for the sum.
    The weights start at zero (a flat structuring element), so
    ``MaxPlusConv3d(C, C, k, groups=C)`` is exactly ``MaxPool3d(k, stride=1)`` at
    initialisation; unlike the pool it then *learns* the shape of its window - a
    per-offset additive weight - and can mix channels.  The gradient reaches the
    input and the weight at each window's winner (ties: the first (c, k) in scan
    order, as in max pooling; a NaN wins and propagates).

    Source: mathematical morphology (J. Serra, *Image Analysis and Mathematical
    Morphology*, 1982); as trainable layers, "deep morphological networks" (e.g.
    Mondal et al. 2019, *Dense Morphological Network*; Franchi et al. 2020, *Deep
    Morphological Networks*).

    Args:
        in_channels: channels of the input, ``C_in``.
        out_channels: channels of the output, ``C_out``.
        kernel_size: window size, an int or a triple ``(kD, kH, kW)``.
        stride: step between windows, an int or a triple (default 1).
        padding: an int, a triple or three ``(lo, hi)`` pairs, 'valid' or 'same' (default 0).
        dilation: spacing between kernel elements, an int or a triple (default 1).
        groups: C_in and C_out split into ``groups`` independent groups (default 1).
        bias: add a learned per-channel bias, initialised to zero (default False).
        padding_mode: None (default) pads with the reduction's identity, -inf, which
            takes no part; 'zeros', 'reflect', 'replicate' or 'circular' fill the
            border with real values.
        dtype: floating-point type of the parameters (default float32).

    Shape:
        Input ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)``; output ``(N, C_out, D_out, H_out, W_out)``
        with, per dimension,
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1``.
        ``pad_lo = pad_hi = padding`` for an int or a tuple, as given for ``(lo, hi)`` pairs, or for 'same' so
        that ``out = ceil(in / stride)`` ('valid': 0).
        Parameters: weight ``(C_out, C_in/groups, *kernel_size)``, bias ``(C_out,)``.

    Example:
        >>> m = nn.MaxPlusConv3d(4, 4, (3, 3, 3), padding=1, groups=4)
        >>> x = np.random.rand(1, 4, 5, 9, 9).astype(np.float32)
        >>> y = m(x)
        >>> np.array_equal(y, F.max_pool3d(x, (3, 3, 3), stride=1, padding=1))  # at initialisation
        True
        >>> gx = m.backward(np.ones_like(y))  # accumulates m.weight.grad
        >>> m.weight.grad.shape
        (4, 1, 3, 3, 3)
    """

    nd = 3


class MinPlusConv1d(_MinPlusConvNd):
    """1-d min-plus convolution: grey-scale morphological erosion, a learned structuring element.

    ``y[n, o, p] = min over (c in o's group, k) of x[n, c, p*stride + k*dilation - pad_lo] + weight[o, c, k]``
    (+ ``bias[o]``): a convolution with ``+`` for the product and ``min`` for the sum.
    The weights start at zero (a flat structuring element), so
    ``MinPlusConv1d(C, C, k, groups=C)`` is exactly ``MinPool1d(k, stride=1)`` at
    initialisation; unlike the pool it then *learns* the shape of its window - a
    per-offset additive weight - and can mix channels.  The gradient reaches the
    input and the weight at each window's winner (ties: the first (c, k) in scan
    order, as in min pooling; a NaN wins and propagates).

    Source: mathematical morphology (J. Serra, *Image Analysis and Mathematical
    Morphology*, 1982); as trainable layers, "deep morphological networks" (e.g.
    Mondal et al. 2019, *Dense Morphological Network*; Franchi et al. 2020, *Deep
    Morphological Networks*).

    Args:
        in_channels: channels of the input, ``C_in``.
        out_channels: channels of the output, ``C_out``.
        kernel_size: window size, an int or a 1-tuple.
        stride: step between windows, an int or a 1-tuple (default 1).
        padding: an int or one ``(lo, hi)`` pair, 'valid' or 'same' (default 0).
        dilation: spacing between kernel elements, an int or a 1-tuple (default 1).
        groups: C_in and C_out split into ``groups`` independent groups (default 1).
        bias: add a learned per-channel bias, initialised to zero (default False).
        padding_mode: None (default) pads with the reduction's identity, +inf, which
            takes no part; 'zeros', 'reflect', 'replicate' or 'circular' fill the
            border with real values.
        dtype: floating-point type of the parameters (default float32).

    Shape:
        Input ``(N, C_in, L)`` or ``(C_in, L)``; output ``(N, C_out, L_out)``
        with, per dimension,
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1``.
        ``pad_lo = pad_hi = padding`` for an int or a tuple, as given for ``(lo, hi)`` pairs, or for 'same' so
        that ``out = ceil(in / stride)`` ('valid': 0).
        Parameters: weight ``(C_out, C_in/groups, *kernel_size)``, bias ``(C_out,)``.

    Example:
        >>> m = nn.MinPlusConv1d(4, 4, 3, padding=1, groups=4)
        >>> x = np.random.rand(2, 4, 16).astype(np.float32)
        >>> y = m(x)
        >>> np.array_equal(y, F.min_pool1d(x, 3, stride=1, padding=1))  # at initialisation
        True
        >>> gx = m.backward(np.ones_like(y))  # accumulates m.weight.grad
        >>> m.weight.grad.shape
        (4, 1, 3)
    """

    nd = 1


class MinPlusConv2d(_MinPlusConvNd):
    """2-d min-plus convolution: grey-scale morphological erosion, a learned structuring element.

    ``y[n, o, p] = min over (c in o's group, k) of x[n, c, p*stride + k*dilation - pad_lo] + weight[o, c, k]``
    (+ ``bias[o]``): a convolution with ``+`` for the product and ``min`` for the sum.
    The weights start at zero (a flat structuring element), so
    ``MinPlusConv2d(C, C, k, groups=C)`` is exactly ``MinPool2d(k, stride=1)`` at
    initialisation; unlike the pool it then *learns* the shape of its window - a
    per-offset additive weight - and can mix channels.  The gradient reaches the
    input and the weight at each window's winner (ties: the first (c, k) in scan
    order, as in min pooling; a NaN wins and propagates).

    Source: mathematical morphology (J. Serra, *Image Analysis and Mathematical
    Morphology*, 1982); as trainable layers, "deep morphological networks" (e.g.
    Mondal et al. 2019, *Dense Morphological Network*; Franchi et al. 2020, *Deep
    Morphological Networks*).

    Args:
        in_channels: channels of the input, ``C_in``.
        out_channels: channels of the output, ``C_out``.
        kernel_size: window size, an int or a pair ``(kH, kW)``.
        stride: step between windows, an int or a pair (default 1).
        padding: an int, a pair or two ``(lo, hi)`` pairs, 'valid' or 'same' (default 0).
        dilation: spacing between kernel elements, an int or a pair (default 1).
        groups: C_in and C_out split into ``groups`` independent groups (default 1).
        bias: add a learned per-channel bias, initialised to zero (default False).
        padding_mode: None (default) pads with the reduction's identity, +inf, which
            takes no part; 'zeros', 'reflect', 'replicate' or 'circular' fill the
            border with real values.
        dtype: floating-point type of the parameters (default float32).

    Shape:
        Input ``(N, C_in, H, W)`` or ``(C_in, H, W)``; output ``(N, C_out, H_out, W_out)``
        with, per dimension,
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1``.
        ``pad_lo = pad_hi = padding`` for an int or a tuple, as given for ``(lo, hi)`` pairs, or for 'same' so
        that ``out = ceil(in / stride)`` ('valid': 0).
        Parameters: weight ``(C_out, C_in/groups, *kernel_size)``, bias ``(C_out,)``.

    Example:
        >>> m = nn.MinPlusConv2d(4, 4, 3, padding=1, groups=4)
        >>> x = np.random.rand(2, 4, 9, 9).astype(np.float32)
        >>> y = m(x)
        >>> np.array_equal(y, F.min_pool2d(x, 3, stride=1, padding=1))  # at initialisation
        True
        >>> gx = m.backward(np.ones_like(y))  # accumulates m.weight.grad
        >>> m.weight.grad.shape
        (4, 1, 3, 3)
    """

    nd = 2


class MinPlusConv3d(_MinPlusConvNd):
    """3-d min-plus convolution: grey-scale morphological erosion, a learned structuring element.

    ``y[n, o, p] = min over (c in o's group, k) of x[n, c, p*stride + k*dilation - pad_lo] + weight[o, c, k]``
    (+ ``bias[o]``): a convolution with ``+`` for the product and ``min`` for the sum.
    The weights start at zero (a flat structuring element), so
    ``MinPlusConv3d(C, C, k, groups=C)`` is exactly ``MinPool3d(k, stride=1)`` at
    initialisation; unlike the pool it then *learns* the shape of its window - a
    per-offset additive weight - and can mix channels.  The gradient reaches the
    input and the weight at each window's winner (ties: the first (c, k) in scan
    order, as in min pooling; a NaN wins and propagates).

    Source: mathematical morphology (J. Serra, *Image Analysis and Mathematical
    Morphology*, 1982); as trainable layers, "deep morphological networks" (e.g.
    Mondal et al. 2019, *Dense Morphological Network*; Franchi et al. 2020, *Deep
    Morphological Networks*).

    Args:
        in_channels: channels of the input, ``C_in``.
        out_channels: channels of the output, ``C_out``.
        kernel_size: window size, an int or a triple ``(kD, kH, kW)``.
        stride: step between windows, an int or a triple (default 1).
        padding: an int, a triple or three ``(lo, hi)`` pairs, 'valid' or 'same' (default 0).
        dilation: spacing between kernel elements, an int or a triple (default 1).
        groups: C_in and C_out split into ``groups`` independent groups (default 1).
        bias: add a learned per-channel bias, initialised to zero (default False).
        padding_mode: None (default) pads with the reduction's identity, +inf, which
            takes no part; 'zeros', 'reflect', 'replicate' or 'circular' fill the
            border with real values.
        dtype: floating-point type of the parameters (default float32).

    Shape:
        Input ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)``; output ``(N, C_out, D_out, H_out, W_out)``
        with, per dimension,
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1``.
        ``pad_lo = pad_hi = padding`` for an int or a tuple, as given for ``(lo, hi)`` pairs, or for 'same' so
        that ``out = ceil(in / stride)`` ('valid': 0).
        Parameters: weight ``(C_out, C_in/groups, *kernel_size)``, bias ``(C_out,)``.

    Example:
        >>> m = nn.MinPlusConv3d(4, 4, (3, 3, 3), padding=1, groups=4)
        >>> x = np.random.rand(1, 4, 5, 9, 9).astype(np.float32)
        >>> y = m(x)
        >>> np.array_equal(y, F.min_pool3d(x, (3, 3, 3), stride=1, padding=1))  # at initialisation
        True
        >>> gx = m.backward(np.ones_like(y))  # accumulates m.weight.grad
        >>> m.weight.grad.shape
        (4, 1, 3, 3, 3)
    """

    nd = 3
