"""Adaptive pooling layers, as in PyTorch: ``AdaptiveAvgPool*d`` and ``AdaptiveMaxPool*d``.

The output size is fixed and the windows follow it (see
:mod:`convpool.functional.adaptive`); ``output_size=1`` is global pooling.  No parameters.
One implementation per family; the 1-d/2-d/3-d classes fix the number of spatial dims.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import geometry
from ..functional.adaptive import (
    adaptive_avg_pool_backward,
    adaptive_avg_pool_forward,
    adaptive_max_pool_backward,
    adaptive_max_pool_forward,
    adaptive_output_size,
)
from .module import Module


class _AdaptiveAvgPoolNd(Module):
    """Average pooling to a fixed ``output_size`` (1 = global average pooling); subclasses fix ``nd``."""

    nd = 0

    def __init__(self, output_size: Any):
        super().__init__()
        self.output_size = output_size
        adaptive_output_size(output_size, (1,) * self.nd)  # the functional op's check, now
        self._ctx: Any = None

    def forward(self, x: Any) -> np.ndarray:
        y, self._ctx = adaptive_avg_pool_forward(x, self.nd, self.output_size)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return adaptive_avg_pool_backward(grad_output, self._need_ctx(self._ctx))

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class _AdaptiveMaxPoolNd(Module):
    """Max pooling to a fixed ``output_size`` (1 = global max pooling); subclasses fix ``nd``."""

    nd = 0

    def __init__(self, output_size: Any, return_indices: bool = False):
        super().__init__()
        self.output_size = output_size
        self.return_indices = geometry.check_bool(return_indices, "return_indices")
        adaptive_output_size(output_size, (1,) * self.nd)
        self._ctx: Any = None

    def forward(self, x: Any) -> Any:
        y, idx, self._ctx = adaptive_max_pool_forward(x, self.nd, self.output_size)
        return (y, idx) if self.return_indices else y

    def backward(self, grad_output: Any) -> np.ndarray:
        return adaptive_max_pool_backward(grad_output, self._need_ctx(self._ctx))

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """1-d adaptive average pooling: windows that divide the input into ``output_size`` cells.

    Args:
        output_size: the output's spatial size, an int (1: global pooling).

    Shape:
        ``(N, C, L) -> (N, C, L_out)``, or unbatched ``(C, L)``: output cell ``i``
        of a dim of size ``n`` pools input ``floor(i*n/out) .. ceil((i+1)*n/out) - 1`` (no padding).

    Example:
        >>> nn.AdaptiveAvgPool1d(5)(np.random.rand(2, 4, 9)).shape
        (2, 4, 5)
    """

    nd = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """2-d adaptive average pooling: windows that divide the input into ``output_size`` cells.

    Args:
        output_size: the output's spatial size, an int or a pair; None keeps that dim's size (1: global pooling).

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``: output cell ``i``
        of a dim of size ``n`` pools input ``floor(i*n/out) .. ceil((i+1)*n/out) - 1`` (no padding).

    Example:
        >>> nn.AdaptiveAvgPool2d((5, None))(np.random.rand(2, 4, 9, 9)).shape
        (2, 4, 5, 9)
    """

    nd = 2


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """3-d adaptive average pooling: windows that divide the input into ``output_size`` cells.

    Args:
        output_size: the output's spatial size, an int or a triple; None keeps that dim's size (1: global pooling).

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``: output cell ``i``
        of a dim of size ``n`` pools input ``floor(i*n/out) .. ceil((i+1)*n/out) - 1`` (no padding).

    Example:
        >>> nn.AdaptiveAvgPool3d((2, None, 1))(np.random.rand(1, 2, 5, 9, 9)).shape
        (1, 2, 2, 9, 1)
    """

    nd = 3


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """1-d adaptive max pooling: windows that divide the input into ``output_size`` cells.

    Args:
        output_size: the output's spatial size, an int (1: global pooling).
        return_indices: also return the flat ``L`` index of each maximum (default False).

    Shape:
        ``(N, C, L) -> (N, C, L_out)``, or unbatched ``(C, L)``: output cell ``i``
        of a dim of size ``n`` pools input ``floor(i*n/out) .. ceil((i+1)*n/out) - 1`` (no padding).

    Example:
        >>> nn.AdaptiveMaxPool1d(5)(np.random.rand(2, 4, 9)).shape
        (2, 4, 5)
    """

    nd = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """2-d adaptive max pooling: windows that divide the input into ``output_size`` cells.

    Args:
        output_size: the output's spatial size, an int or a pair; None keeps that dim's size (1: global pooling).
        return_indices: also return the flat ``H*W`` index of each maximum (default False).

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``: output cell ``i``
        of a dim of size ``n`` pools input ``floor(i*n/out) .. ceil((i+1)*n/out) - 1`` (no padding).

    Example:
        >>> nn.AdaptiveMaxPool2d((5, None))(np.random.rand(2, 4, 9, 9)).shape
        (2, 4, 5, 9)
    """

    nd = 2


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """3-d adaptive max pooling: windows that divide the input into ``output_size`` cells.

    Args:
        output_size: the output's spatial size, an int or a triple; None keeps that dim's size (1: global pooling).
        return_indices: also return the flat ``D*H*W`` index of each maximum (default False).

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``: output cell ``i``
        of a dim of size ``n`` pools input ``floor(i*n/out) .. ceil((i+1)*n/out) - 1`` (no padding).

    Example:
        >>> nn.AdaptiveMaxPool3d((2, None, 1))(np.random.rand(1, 2, 5, 9, 9)).shape
        (1, 2, 2, 9, 1)
    """

    nd = 3
