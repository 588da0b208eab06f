"""``MaxUnpool1d/2d/3d``: the partial inverse of max pooling, as ``torch.nn``.

``unpool(y, indices, output_size=None)`` takes the values and indices of a
``MaxPool*d(..., return_indices=True)`` and puts each value back where it was taken
from, zeros elsewhere.  See :mod:`convpool.functional.unpool` for the output size and
what happens with repeated indices.  No parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import geometry
from ..functional.unpool import max_unpool_backward, max_unpool_forward
from .module import Module


class _MaxUnpoolNd(Module):
    """Max unpooling, N-d; subclasses fix ``nd`` (see :class:`MaxUnpool2d`)."""

    nd = 0

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0):
        super().__init__()
        self.kernel_size, self.stride, _ = geometry.window_args(self.nd, kernel_size, stride, 1, pool=True)
        self.padding = geometry.ntuple(padding, self.nd, "padding", minimum=0)
        self._ctx: Any = None

    def __call__(self, input: Any, indices: Any, output_size: Any = None) -> np.ndarray:  # type: ignore[override]
        return self.forward(input, indices, output_size)

    def forward(self, input: Any, indices: Any, output_size: Any = None) -> np.ndarray:  # type: ignore[override]
        y, self._ctx = max_unpool_forward(
            input, indices, self.kernel_size, self.stride, self.padding, output_size, nd=self.nd
        )
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return max_unpool_backward(grad_output, self._need_ctx(self._ctx))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpoolNd):
    """1-d max unpooling: each value back where :class:`MaxPool1d` took it from, zeros elsewhere.

    Call ``unpool(input, indices, output_size=None)`` with the pool's ``return_indices=True`` indices;
    ``output_size`` (e.g. the pooled input's shape, ``(N, C)`` first or not) must lie strictly within
    ``stride`` of the default.  ``backward(grad_output)`` returns the gradient with respect to ``input``.

    Args:
        kernel_size: the pool's window size, an int or a 1-tuple.
        stride: the pool's stride, an int or a 1-tuple (default None: ``kernel_size``).
        padding: the pool's padding, an int or a 1-tuple, symmetric (default 0).

    Shape:
        ``(N, C, L) -> (N, C, L_out)``, or unbatched ``(C, L)``, with per dim
        ``out = (in - 1)*stride - (pad_lo + pad_hi) + kernel_size`` (``pad_lo = pad_hi = padding``) or ``output_size``.

    Example:
        >>> pool, unpool = nn.MaxPool1d(2, return_indices=True), nn.MaxUnpool1d(2)
        >>> x = np.random.rand(1, 3, 5)
        >>> y, idx = pool(x)
        >>> unpool(y, idx, output_size=x.shape).shape  # x's window maxima, zeros elsewhere
        (1, 3, 5)
    """

    nd = 1


class MaxUnpool2d(_MaxUnpoolNd):
    """2-d max unpooling: each value back where :class:`MaxPool2d` took it from, zeros elsewhere.

    Call ``unpool(input, indices, output_size=None)`` with the pool's ``return_indices=True`` indices;
    ``output_size`` (e.g. the pooled input's shape, ``(N, C)`` first or not) must lie strictly within
    ``stride`` of the default.  ``backward(grad_output)`` returns the gradient with respect to ``input``.

    Args:
        kernel_size: the pool's window size, an int or a pair ``(kH, kW)``.
        stride: the pool's stride, an int or a pair (default None: ``kernel_size``).
        padding: the pool's padding, an int or a pair, symmetric (default 0).

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``, with per dim
        ``out = (in - 1)*stride - (pad_lo + pad_hi) + kernel_size`` (``pad_lo = pad_hi = padding``) or ``output_size``.

    Example:
        >>> pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
        >>> x = np.random.rand(1, 3, 5, 5)
        >>> y, idx = pool(x)
        >>> unpool(y, idx, output_size=x.shape).shape  # x's window maxima, zeros elsewhere
        (1, 3, 5, 5)
    """

    nd = 2


class MaxUnpool3d(_MaxUnpoolNd):
    """3-d max unpooling: each value back where :class:`MaxPool3d` took it from, zeros elsewhere.

    Call ``unpool(input, indices, output_size=None)`` with the pool's ``return_indices=True`` indices;
    ``output_size`` (e.g. the pooled input's shape, ``(N, C)`` first or not) must lie strictly within
    ``stride`` of the default.  ``backward(grad_output)`` returns the gradient with respect to ``input``.

    Args:
        kernel_size: the pool's window size, an int or a triple ``(kD, kH, kW)``.
        stride: the pool's stride, an int or a triple (default None: ``kernel_size``).
        padding: the pool's padding, an int or a triple, symmetric (default 0).

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``, with per dim
        ``out = (in - 1)*stride - (pad_lo + pad_hi) + kernel_size`` (``pad_lo = pad_hi = padding``) or ``output_size``.

    Example:
        >>> pool, unpool = nn.MaxPool3d(2, return_indices=True), nn.MaxUnpool3d(2)
        >>> x = np.random.rand(1, 2, 3, 5, 5)
        >>> y, idx = pool(x)
        >>> unpool(y, idx, output_size=x.shape).shape  # x's window maxima, zeros elsewhere
        (1, 2, 3, 5, 5)
    """

    nd = 3
