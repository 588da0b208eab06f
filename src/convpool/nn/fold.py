"""``Unfold`` and ``Fold``: sliding windows to columns and back, as ``torch.nn``.

Thin layers over :mod:`convpool.functional.folding` (the engine's window view and its
adjoint).  Like PyTorch they keep their arguments as given (an int stays an int); the
number of spatial dims is ``len(kernel_size)`` for a tuple (for ``Fold``: ``kernel_size``
or ``output_size``, whichever is a tuple), else 2.  No parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import geometry
from ..functional.folding import fold_backward, fold_forward, spatial_rank, unfold_backward, unfold_forward
from .module import Module


def _check_window(nd: int, kernel_size: Any, dilation: Any, padding: Any, stride: Any) -> None:
    geometry.ntuple(kernel_size, nd, "kernel_size")
    geometry.ntuple(dilation, nd, "dilation")
    geometry.ntuple(padding, nd, "padding", minimum=0)
    geometry.ntuple(stride, nd, "stride")


class Unfold(Module):
    """Every sliding window of the input as a column (PyTorch's ``nn.Unfold``, im2col).

    Args:
        kernel_size: window size, int or tuple (a tuple's length is the number of
            spatial dims; an int means 2, as PyTorch).
        dilation: spacing between window elements, int or tuple (default 1: none).
        padding: zeros on both sides of each spatial dim, int or tuple, symmetric (default 0).
        stride: step between windows, int or tuple (default 1).

    Shape:
        ``(N, C, *in) -> (N, C * prod(kernel_size), L)`` (or unbatched ``(C, *in) ->
        (C * prod(kernel_size), L)``), ``L = prod(out)``, per dim
        ``out = floor((in + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1``
        with ``pad_lo = pad_hi = padding``.  The backward pass is :class:`Fold`'s forward (its adjoint).

    Example:
        >>> nn.Unfold(3, padding=1)(np.random.rand(2, 4, 8, 8)).shape
        (2, 36, 64)
    """

    def __init__(self, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1):
        super().__init__()
        _check_window(spatial_rank(kernel_size), kernel_size, dilation, padding, stride)
        self.kernel_size, self.dilation, self.padding, self.stride = kernel_size, dilation, padding, stride
        self._ctx: Any = None

    def forward(self, x: Any) -> np.ndarray:
        y, self._ctx = unfold_forward(x, self.kernel_size, self.dilation, self.padding, self.stride)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return unfold_backward(grad_output, self._need_ctx(self._ctx))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}, stride={self.stride}"


class Fold(Module):
    """Sum columns of sliding windows back into an array (PyTorch's ``nn.Fold``, col2im).

    The adjoint of :class:`Unfold`; overlapping windows add up.

    Args:
        output_size: spatial size of the output, int or tuple.
        kernel_size: window size, int or tuple, as for :class:`Unfold`.
        dilation: spacing between window elements, int or tuple (default 1).
        padding: zeros on both sides of each spatial dim, int or tuple, symmetric (default 0).
        stride: step between windows, int or tuple (default 1).

    Shape:
        ``(N, C * prod(kernel_size), L) -> (N, C, *output_size)`` (or unbatched without
        ``N``), where ``L`` must be the number of windows on ``output_size``:
        ``prod(floor((output_size + pad_lo + pad_hi - dilation*(kernel_size-1) - 1) / stride) + 1)``
        with ``pad_lo = pad_hi = padding``.

    Example:
        >>> fold = nn.Fold((4, 4), 2)
        >>> fold(np.ones((1, 4, 9)))[0, 0]      # windows covering each element
        array([[1., 2., 2., 1.],
               [2., 4., 4., 2.],
               [2., 4., 4., 2.],
               [1., 2., 2., 1.]])
    """

    def __init__(self, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1):
        super().__init__()
        nd = spatial_rank(kernel_size, output_size)
        geometry.ntuple(output_size, nd, "output_size")
        _check_window(nd, kernel_size, dilation, padding, stride)
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride
        self._ctx: Any = None

    def forward(self, x: Any) -> np.ndarray:
        y, self._ctx = fold_forward(x, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return fold_backward(grad_output, self._need_ctx(self._ctx))

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, kernel_size={self.kernel_size}, dilation={self.dilation}, "
            f"padding={self.padding}, stride={self.stride}"
        )
