"""Pooling layers: no parameters, a fixed reduction of every window.

``MaxPool*d``, ``AvgPool*d`` and ``LPPool*d`` as in PyTorch and, beyond it,
``MinPool*d``, ``MedianPool*d`` and a border ``padding_mode`` for max, min, median and
average pooling.  One implementation per family (:mod:`convpool.nn._pool`); the
1-d/2-d/3-d classes fix the number of spatial dims.  The adaptive pools are in
:mod:`convpool.nn.adaptive` and importable from here too.
"""

from __future__ import annotations

from ._pool import _AvgPoolNd, _LPPoolNd, _MaxPoolNd, _MedianPoolNd, _MinPoolNd
from ._pool import _SelectPoolNd as _SelectPoolNd
from .adaptive import AdaptiveAvgPool1d as AdaptiveAvgPool1d
from .adaptive import AdaptiveAvgPool2d as AdaptiveAvgPool2d
from .adaptive import AdaptiveAvgPool3d as AdaptiveAvgPool3d
from .adaptive import AdaptiveMaxPool1d as AdaptiveMaxPool1d
from .adaptive import AdaptiveMaxPool2d as AdaptiveMaxPool2d
from .adaptive import AdaptiveMaxPool3d as AdaptiveMaxPool3d
from .adaptive import _AdaptiveAvgPoolNd as _AdaptiveAvgPoolNd
from .adaptive import _AdaptiveMaxPoolNd as _AdaptiveMaxPoolNd


class MaxPool1d(_MaxPoolNd):
    """1-d max pooling: the largest element of each window.

    Args:
        kernel_size: window size, an int or a 1-tuple.
        stride: step between windows, an int or a 1-tuple (default None: ``kernel_size``).
        padding: ``-inf`` padding, an int or one ``(lo, hi)`` pair, at most half the window (default 0).
        dilation: spacing between window elements (default 1).
        return_indices: also return the flat ``L`` index of each maximum (default False).
        ceil_mode: round the output size up instead of down (default False).
        padding_mode: keyword only: pad with 'zeros', 'reflect', 'replicate' or 'circular' (default None).

    Shape:
        ``(N, C, L) -> (N, C, L_out)``, or unbatched ``(C, L)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1`` (ceil with ``ceil_mode``).
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> nn.MaxPool1d(3, stride=2, padding=1)(np.random.rand(2, 4, 9)).shape
        (2, 4, 5)
    """

    nd = 1


class MaxPool2d(_MaxPoolNd):
    """2-d max pooling: the largest element of each window.

    Args:
        kernel_size: window size, an int or a pair ``(kH, kW)``.
        stride: step between windows, an int or a pair (default None: ``kernel_size``).
        padding: ``-inf`` padding, an int, a pair or two ``(lo, hi)`` pairs, at most half the window (default 0).
        dilation: spacing between window elements (default 1).
        return_indices: also return the flat ``H*W`` index of each maximum (default False).
        ceil_mode: round the output size up instead of down (default False).
        padding_mode: keyword only: pad with 'zeros', 'reflect', 'replicate' or 'circular' (default None).

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1`` (ceil with ``ceil_mode``).
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> nn.MaxPool2d(3, stride=2, padding=1)(np.random.rand(2, 4, 9, 9)).shape
        (2, 4, 5, 5)
    """

    nd = 2


class MaxPool3d(_MaxPoolNd):
    """3-d max pooling: the largest element of each window.

    Args:
        kernel_size: window size, an int or a triple ``(kD, kH, kW)``.
        stride: step between windows, an int or a triple (default None: ``kernel_size``).
        padding: ``-inf`` padding, an int, a triple or three ``(lo, hi)`` pairs, at most half the window (default 0).
        dilation: spacing between window elements (default 1).
        return_indices: also return the flat ``D*H*W`` index of each maximum (default False).
        ceil_mode: round the output size up instead of down (default False).
        padding_mode: keyword only: pad with 'zeros', 'reflect', 'replicate' or 'circular' (default None).

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1`` (ceil with ``ceil_mode``).
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> nn.MaxPool3d(3, stride=2, padding=1)(np.random.rand(1, 2, 5, 9, 9)).shape
        (1, 2, 3, 5, 5)
    """

    nd = 3


class MinPool1d(_MinPoolNd):
    """1-d min pooling: the smallest element of each window.

    Args:
        kernel_size: window size, an int or a 1-tuple.
        stride: step between windows, an int or a 1-tuple (default None: ``kernel_size``).
        padding: ``+inf`` padding, an int or one ``(lo, hi)`` pair, at most half the window (default 0).
        dilation: spacing between window elements (default 1).
        return_indices: also return the flat ``L`` index of each minimum (default False).
        ceil_mode: round the output size up instead of down (default False).
        padding_mode: keyword only: pad with 'zeros', 'reflect', 'replicate' or 'circular' (default None).

    Shape:
        ``(N, C, L) -> (N, C, L_out)``, or unbatched ``(C, L)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1`` (ceil with ``ceil_mode``).
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> nn.MinPool1d(3, stride=2, padding=1)(np.random.rand(2, 4, 9)).shape
        (2, 4, 5)
    """

    nd = 1


class MinPool2d(_MinPoolNd):
    """2-d min pooling: the smallest element of each window.

    Args:
        kernel_size: window size, an int or a pair ``(kH, kW)``.
        stride: step between windows, an int or a pair (default None: ``kernel_size``).
        padding: ``+inf`` padding, an int, a pair or two ``(lo, hi)`` pairs, at most half the window (default 0).
        dilation: spacing between window elements (default 1).
        return_indices: also return the flat ``H*W`` index of each minimum (default False).
        ceil_mode: round the output size up instead of down (default False).
        padding_mode: keyword only: pad with 'zeros', 'reflect', 'replicate' or 'circular' (default None).

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1`` (ceil with ``ceil_mode``).
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> nn.MinPool2d(3, stride=2, padding=1)(np.random.rand(2, 4, 9, 9)).shape
        (2, 4, 5, 5)
    """

    nd = 2


class MinPool3d(_MinPoolNd):
    """3-d min pooling: the smallest element of each window.

    Args:
        kernel_size: window size, an int or a triple ``(kD, kH, kW)``.
        stride: step between windows, an int or a triple (default None: ``kernel_size``).
        padding: ``+inf`` padding, an int, a triple or three ``(lo, hi)`` pairs, at most half the window (default 0).
        dilation: spacing between window elements (default 1).
        return_indices: also return the flat ``D*H*W`` index of each minimum (default False).
        ceil_mode: round the output size up instead of down (default False).
        padding_mode: keyword only: pad with 'zeros', 'reflect', 'replicate' or 'circular' (default None).

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1`` (ceil with ``ceil_mode``).
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> nn.MinPool3d(3, stride=2, padding=1)(np.random.rand(1, 2, 5, 9, 9)).shape
        (1, 2, 3, 5, 5)
    """

    nd = 3


class MedianPool1d(_MedianPoolNd):
    """1-d median pooling: the lower median of each window's real elements.

    Args:
        kernel_size: window size, an int or a 1-tuple.
        stride: step between windows, an int or a 1-tuple (default None: ``kernel_size``).
        padding: ignored padding, an int or one ``(lo, hi)`` pair, at most half the window (default 0).
        dilation: spacing between window elements (default 1).
        return_indices: also return the flat ``L`` index of each median (default False).
        ceil_mode: round the output size up instead of down (default False).
        padding_mode: keyword only: pad with 'zeros', 'reflect', 'replicate' or 'circular' (default None).

    Shape:
        ``(N, C, L) -> (N, C, L_out)``, or unbatched ``(C, L)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1`` (ceil with ``ceil_mode``).
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> nn.MedianPool1d(3, stride=2, padding=1)(np.random.rand(2, 4, 9)).shape
        (2, 4, 5)
    """

    nd = 1


class MedianPool2d(_MedianPoolNd):
    """2-d median pooling: the lower median of each window's real elements.

    Args:
        kernel_size: window size, an int or a pair ``(kH, kW)``.
        stride: step between windows, an int or a pair (default None: ``kernel_size``).
        padding: ignored padding, an int, a pair or two ``(lo, hi)`` pairs, at most half the window (default 0).
        dilation: spacing between window elements (default 1).
        return_indices: also return the flat ``H*W`` index of each median (default False).
        ceil_mode: round the output size up instead of down (default False).
        padding_mode: keyword only: pad with 'zeros', 'reflect', 'replicate' or 'circular' (default None).

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1`` (ceil with ``ceil_mode``).
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> nn.MedianPool2d(3, stride=2, padding=1)(np.random.rand(2, 4, 9, 9)).shape
        (2, 4, 5, 5)
    """

    nd = 2


class MedianPool3d(_MedianPoolNd):
    """3-d median pooling: the lower median of each window's real elements.

    Args:
        kernel_size: window size, an int or a triple ``(kD, kH, kW)``.
        stride: step between windows, an int or a triple (default None: ``kernel_size``).
        padding: ignored padding, an int, a triple or three ``(lo, hi)`` pairs, at most half the window (default 0).
        dilation: spacing between window elements (default 1).
        return_indices: also return the flat ``D*H*W`` index of each median (default False).
        ceil_mode: round the output size up instead of down (default False).
        padding_mode: keyword only: pad with 'zeros', 'reflect', 'replicate' or 'circular' (default None).

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1`` (ceil with ``ceil_mode``).
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> nn.MedianPool3d(3, stride=2, padding=1)(np.random.rand(1, 2, 5, 9, 9)).shape
        (1, 2, 3, 5, 5)
    """

    nd = 3


class AvgPool1d(_AvgPoolNd):
    """1-d average pooling: the mean of each window.

    Args:
        kernel_size: window size, an int or a 1-tuple.
        stride: step between windows, an int or a 1-tuple (default None: ``kernel_size``).
        padding: zero padding, an int or one ``(lo, hi)`` pair, at most half the window (default 0).
        ceil_mode: round the output size up instead of down (default False).
        count_include_pad: count the zero padding in the divisor (default True).
        divisor_override: a positive int to divide by instead of the count (default None).
        padding_mode: keyword only: 'zeros', 'reflect', 'replicate' or 'circular' values, always counted (default None).

    Shape:
        ``(N, C, L) -> (N, C, L_out)``, or unbatched ``(C, L)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1`` (ceil with ``ceil_mode``).
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> nn.AvgPool1d(3, stride=2, padding=1)(np.random.rand(2, 4, 9)).shape
        (2, 4, 5)
    """

    nd = 1


class AvgPool2d(_AvgPoolNd):
    """2-d average pooling: the mean of each window.

    Args:
        kernel_size: window size, an int or a pair ``(kH, kW)``.
        stride: step between windows, an int or a pair (default None: ``kernel_size``).
        padding: zero padding, an int, a pair or two ``(lo, hi)`` pairs, at most half the window (default 0).
        ceil_mode: round the output size up instead of down (default False).
        count_include_pad: count the zero padding in the divisor (default True).
        divisor_override: a positive int to divide by instead of the count (default None).
        padding_mode: keyword only: 'zeros', 'reflect', 'replicate' or 'circular' values, always counted (default None).

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1`` (ceil with ``ceil_mode``).
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> nn.AvgPool2d(3, stride=2, padding=1)(np.random.rand(2, 4, 9, 9)).shape
        (2, 4, 5, 5)
    """

    nd = 2


class AvgPool3d(_AvgPoolNd):
    """3-d average pooling: the mean of each window.

    Args:
        kernel_size: window size, an int or a triple ``(kD, kH, kW)``.
        stride: step between windows, an int or a triple (default None: ``kernel_size``).
        padding: zero padding, an int, a triple or three ``(lo, hi)`` pairs, at most half the window (default 0).
        ceil_mode: round the output size up instead of down (default False).
        count_include_pad: count the zero padding in the divisor (default True).
        divisor_override: a positive int to divide by instead of the count (default None).
        padding_mode: keyword only: 'zeros', 'reflect', 'replicate' or 'circular' values, always counted (default None).

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1`` (ceil with ``ceil_mode``).
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> nn.AvgPool3d(3, stride=2, padding=1)(np.random.rand(1, 2, 5, 9, 9)).shape
        (1, 2, 3, 5, 5)
    """

    nd = 3


class LPPool1d(_LPPoolNd):
    """1-d power-average pooling: ``(sum over the window of x**p) ** (1/p)``.

    Args:
        norm_type: the power ``p``, a positive number (``inf``: max pooling of ``|x|``).
        kernel_size: window size, an int or a 1-tuple.
        stride: step between windows, an int or a 1-tuple (default None: ``kernel_size``).
        ceil_mode: round the output size up instead of down (default False).

    Shape:
        ``(N, C, L) -> (N, C, L_out)``, or unbatched ``(C, L)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1`` with no padding (``pad_lo = pad_hi = 0``).

    Example:
        >>> nn.LPPool1d(2, 3)(np.random.rand(2, 4, 9)).shape
        (2, 4, 3)
    """

    nd = 1


class LPPool2d(_LPPoolNd):
    """2-d power-average pooling: ``(sum over the window of x**p) ** (1/p)``.

    Args:
        norm_type: the power ``p``, a positive number (``inf``: max pooling of ``|x|``).
        kernel_size: window size, an int or a pair ``(kH, kW)``.
        stride: step between windows, an int or a pair (default None: ``kernel_size``).
        ceil_mode: round the output size up instead of down (default False).

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1`` with no padding (``pad_lo = pad_hi = 0``).

    Example:
        >>> nn.LPPool2d(2, 3)(np.random.rand(2, 4, 9, 9)).shape
        (2, 4, 3, 3)
    """

    nd = 2


class LPPool3d(_LPPoolNd):
    """3-d power-average pooling: ``(sum over the window of x**p) ** (1/p)``.

    Args:
        norm_type: the power ``p``, a positive number (``inf``: max pooling of ``|x|``).
        kernel_size: window size, an int or a triple ``(kD, kH, kW)``.
        stride: step between windows, an int or a triple (default None: ``kernel_size``).
        ceil_mode: round the output size up instead of down (default False).

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1`` with no padding (``pad_lo = pad_hi = 0``).

    Example:
        >>> nn.LPPool3d(2, 3)(np.random.rand(1, 2, 5, 9, 9)).shape
        (1, 2, 1, 3, 3)
    """

    nd = 3
