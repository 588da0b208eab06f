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
from ..functional._common import window_args
from ..functional.unpool import max_unpool_backward, max_unpool_forward
from ._common import set_dim_docs
from .module import Module


class _MaxUnpoolNd(Module):
    """Max unpooling: each value to the position its index names, zeros elsewhere.

    Args:
        kernel_size: the max pool's window size (int or tuple).
        stride: the pool's stride; default ``kernel_size``.
        padding: the pool's padding.

    Call ``unpool(input, indices, output_size=None)``: ``indices`` from the pool's
    ``return_indices=True``; ``output_size`` the size wanted (e.g. the pooled input's
    shape, ``(N, C)`` first or not), strictly within ``stride`` of the default.
    ``backward(grad_output)`` returns the gradient with respect to ``input``.

    Shape:
        ``(N, C, *in) -> (N, C, *out)`` or ``(C, *in) -> (C, *out)``,
        ``out = (in - 1) * stride - 2 * padding + kernel_size`` or ``output_size``.

    Example::

        >>> pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
        >>> x = np.random.rand(1, 3, 5, 5)
        >>> y, idx = pool(x)
        >>> unpool(y, idx, output_size=x.shape).shape   # x's window maxima, zeros elsewhere
        (1, 3, 5, 5)
    """

    nd = 0

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0):
        super().__init__()
        self.kernel_size, self.stride, _ = window_args(self.nd, kernel_size, stride, 1, pool=True)
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
    nd = 1


class MaxUnpool2d(_MaxUnpoolNd):
    nd = 2


class MaxUnpool3d(_MaxUnpoolNd):
    nd = 3


set_dim_docs((MaxUnpool1d, MaxUnpool2d, MaxUnpool3d))
