"""What the sliding-window pooling layers of :mod:`convpool.nn.pool` share: one class
per family (select, average, power-average), N-d; the public 1-d/2-d/3-d classes only
fix ``nd`` and carry the documentation.  No parameters: each is a fixed reduction of
every window, through the functional ops of :mod:`convpool.functional.pool`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import geometry
from ..functional.pool import (
    avg_pool_forward,
    check_divisor_override,
    check_norm_type,
    flat_indices,
    lp_pool_backward,
    lp_pool_forward,
    reduce_window_backward,
    reduce_window_forward,
)
from .module import Module


def _validate_window(
    nd: int, kernel_size: Any, stride: Any, padding: Any, dilation: Any, padding_error: type[Exception] = ValueError
) -> tuple:
    """Kernel, stride (default: the kernel), padding pairs and dilation of a pooling
    layer, checked now with the rules the functional op applies on each call (positive
    sizes, padding at most half the dilated kernel); a layer's padding is ints or
    ``(lo, hi)`` pairs, not 'same' or 'valid' (``padding_error`` otherwise)."""
    kernel, strides, dil = geometry.window_args(nd, kernel_size, stride, dilation, pool=True)
    if isinstance(padding, str):
        raise padding_error(f"padding of a pooling layer must be ints, got {padding!r}")
    pads = geometry.padding_pairs(padding, nd)
    geometry.check_pool_padding(pads, kernel, dil)
    return kernel, strides, pads, dil


def _check_padding_mode(padding_mode: str | None) -> str | None:
    """None (the reduction's identity pads) or one of the border modes."""
    if padding_mode is not None:
        geometry.check_padding_mode(padding_mode)
    return padding_mode


class _SelectPoolNd(Module):
    """Pooling that selects one element per window (max, min, median); the gradient goes
    to the selected element (the first in scan order on ties).  Subclasses fix ``nd``
    and ``reduction``."""

    nd = 0
    reduction = ""

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
        *,
        padding_mode: str | None = None,
    ):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = _validate_window(
            self.nd, kernel_size, stride, padding, dilation
        )
        self.return_indices = geometry.check_bool(return_indices, "return_indices")
        self.ceil_mode = geometry.check_bool(ceil_mode, "ceil_mode")
        self.padding_mode = _check_padding_mode(padding_mode)
        self._ctx: Any = None

    def forward(self, x: Any) -> Any:
        y, self._ctx = reduce_window_forward(
            x,
            self.reduction,
            self.nd,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.padding_mode,
        )
        if self.return_indices:
            return y, flat_indices(self._ctx)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return reduce_window_backward(grad_output, self._need_ctx(self._ctx))

    def extra_repr(self) -> str:
        s = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        s += f", dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        return s + (f", padding_mode={self.padding_mode!r}" if self.padding_mode else "")


class _MaxPoolNd(_SelectPoolNd):
    """Max pooling (PyTorch's ``MaxPool*d``); subclasses fix ``nd``."""

    reduction = "max"


class _MinPoolNd(_SelectPoolNd):
    """Min pooling; subclasses fix ``nd``."""

    reduction = "min"


class _MedianPoolNd(_SelectPoolNd):
    """Median pooling (the lower median of an even window); subclasses fix ``nd``."""

    reduction = "median"


class _AvgPoolNd(Module):
    """Average pooling, PyTorch's ``count_include_pad`` and ``divisor_override``;
    subclasses fix ``nd``."""

    nd = 0

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
        *,
        padding_mode: str | None = None,
    ):
        super().__init__()
        self.kernel_size, self.stride, self.padding, _ = _validate_window(self.nd, kernel_size, stride, padding, 1)
        self.ceil_mode = geometry.check_bool(ceil_mode, "ceil_mode")
        self.count_include_pad = geometry.check_bool(count_include_pad, "count_include_pad")
        check_divisor_override(divisor_override)
        self.divisor_override = divisor_override
        self.padding_mode = _check_padding_mode(padding_mode)
        self._ctx: Any = None

    def forward(self, x: Any) -> np.ndarray:
        y, self._ctx = avg_pool_forward(
            x,
            self.nd,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
            self.padding_mode,
        )
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return reduce_window_backward(grad_output, self._need_ctx(self._ctx))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _LPPoolNd(Module):
    """Power-average pooling ``(sum x**p)**(1/p)`` over each window; subclasses fix ``nd``."""

    nd = 0

    def __init__(self, norm_type: float, kernel_size: Any, stride: Any = None, ceil_mode: bool = False):
        super().__init__()
        check_norm_type(norm_type)
        self.norm_type = norm_type
        self.kernel_size, self.stride, _, _ = _validate_window(self.nd, kernel_size, stride, 0, 1)
        self.ceil_mode = geometry.check_bool(ceil_mode, "ceil_mode")
        self._ctx: Any = None

    def forward(self, x: Any) -> np.ndarray:
        y, self._ctx = lp_pool_forward(x, self.norm_type, self.nd, self.kernel_size, self.stride, self.ceil_mode)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return lp_pool_backward(grad_output, self._need_ctx(self._ctx))

    def extra_repr(self) -> str:
        return f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}"
