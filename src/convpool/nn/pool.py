"""Pooling layers: no parameters, just a fixed reduction of every window.

``MaxPool*``, ``AvgPool*``, ``LPPool*``, ``AdaptiveAvgPool*``, ``AdaptiveMaxPool*``
as in PyTorch, and beyond it ``MinPool*``, ``MedianPool*`` and a border
``padding_mode`` for max/min/median/avg pooling.  Each family is one class;
the 1-d/2-d/3-d names only fix the number of spatial dimensions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from .. import geometry
from ..functional._common import check_bool, window_args
from ..functional._reduce import flat_indices
from ..functional.adaptive import (
    adaptive_avg_pool_backward,
    adaptive_avg_pool_forward,
    adaptive_max_pool_backward,
    adaptive_max_pool_forward,
)
from ..functional.pool import check_divisor_override, check_norm_type, reduce_window_backward, reduce_window_forward
from .module import Module


def _validate_window(
    nd: int, kernel_size: Any, stride: Any, padding: Any, dilation: Any, padding_error: type[Exception] = ValueError
) -> tuple:
    """Kernel, stride (default: the kernel), padding pairs and dilation of a pooling
    layer, checked now: positive sizes, int padding (``padding_error`` otherwise) at
    most half the (dilated) kernel."""
    kernel, strides, dil = window_args(nd, kernel_size, stride, dilation, pool=True)
    if isinstance(padding, str):
        raise padding_error(f"padding of a pooling layer must be ints, got {padding!r}")
    pads = geometry.padding_pairs(padding, nd)
    geometry.check_pool_padding(pads, kernel, dil)
    return kernel, strides, pads, dil


class _SelectPoolNd(Module):
    """Pooling that selects one element per window (max, min, median).

    Shape: ``(N, C, *in) -> (N, C, *out)``, ``out = floor((in + 2*padding -
    dilation*(kernel-1) - 1) / stride) + 1`` (ceil with ``ceil_mode``).
    The gradient goes to the selected element (the first in scan order on ties).
    """

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
        self.return_indices = check_bool(return_indices, "return_indices")
        self.ceil_mode = check_bool(ceil_mode, "ceil_mode")
        if padding_mode is not None:
            geometry.check_padding_mode(padding_mode)
        self.padding_mode = padding_mode
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
    reduction = "max"


class _MinPoolNd(_SelectPoolNd):
    reduction = "min"


class _MedianPoolNd(_SelectPoolNd):
    reduction = "median"


class _AvgPoolNd(Module):
    """Average pooling; PyTorch's ``count_include_pad`` and ``divisor_override``."""

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
        self.ceil_mode = check_bool(ceil_mode, "ceil_mode")
        self.count_include_pad = check_bool(count_include_pad, "count_include_pad")
        check_divisor_override(divisor_override)
        self.divisor_override = divisor_override
        if padding_mode is not None:
            geometry.check_padding_mode(padding_mode)
        self.padding_mode = padding_mode
        self._ctx: Any = None

    def forward(self, x: Any) -> np.ndarray:
        y, self._ctx = F.avg_pool_forward(
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
    """Power-average pooling ``(sum x**p)**(1/p)`` over each window."""

    nd = 0

    def __init__(self, norm_type: float, kernel_size: Any, stride: Any = None, ceil_mode: bool = False):
        super().__init__()
        check_norm_type(norm_type)
        self.norm_type = norm_type
        self.kernel_size, self.stride, _, _ = _validate_window(self.nd, kernel_size, stride, 0, 1)
        self.ceil_mode = check_bool(ceil_mode, "ceil_mode")
        self._ctx: Any = None

    def forward(self, x: Any) -> np.ndarray:
        y, self._ctx = F.lp_pool_forward(x, self.norm_type, self.nd, self.kernel_size, self.stride, self.ceil_mode)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return F.lp_pool_backward(grad_output, self._need_ctx(self._ctx))

    def extra_repr(self) -> str:
        return f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}"


class _AdaptiveAvgPoolNd(Module):
    """Average pooling to a fixed ``output_size`` (1 = global average pooling)."""

    nd = 0

    def __init__(self, output_size: Any):
        super().__init__()
        self.output_size = output_size
        F.adaptive._output_size(output_size, (1,) * self.nd)  # validate now
        self._ctx: Any = None

    def forward(self, x: Any) -> np.ndarray:
        y, self._ctx = adaptive_avg_pool_forward(x, self.nd, self.output_size)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return adaptive_avg_pool_backward(grad_output, self._need_ctx(self._ctx))

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class _AdaptiveMaxPoolNd(Module):
    """Max pooling to a fixed ``output_size`` (1 = global max pooling)."""

    nd = 0

    def __init__(self, output_size: Any, return_indices: bool = False):
        super().__init__()
        self.output_size, self.return_indices = output_size, check_bool(return_indices, "return_indices")
        F.adaptive._output_size(output_size, (1,) * self.nd)
        self._ctx: Any = None

    def forward(self, x: Any) -> Any:
        y, idx, self._ctx = adaptive_max_pool_forward(x, self.nd, self.output_size)
        return (y, idx) if self.return_indices else y

    def backward(self, grad_output: Any) -> np.ndarray:
        return adaptive_max_pool_backward(grad_output, self._need_ctx(self._ctx))

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


def _dims(base: type, stem: str) -> tuple[type, type, type]:
    """The 1-d, 2-d and 3-d classes of one pooling family."""
    made = []
    for nd in (1, 2, 3):
        doc = f"{nd}-d {base.__doc__}"
        made.append(type(f"{stem}{nd}d", (base,), {"nd": nd, "__doc__": doc, "__module__": __name__}))
    return made[0], made[1], made[2]


MaxPool1d, MaxPool2d, MaxPool3d = _dims(_MaxPoolNd, "MaxPool")
MinPool1d, MinPool2d, MinPool3d = _dims(_MinPoolNd, "MinPool")
MedianPool1d, MedianPool2d, MedianPool3d = _dims(_MedianPoolNd, "MedianPool")
AvgPool1d, AvgPool2d, AvgPool3d = _dims(_AvgPoolNd, "AvgPool")
LPPool1d, LPPool2d, LPPool3d = _dims(_LPPoolNd, "LPPool")
AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d = _dims(_AdaptiveAvgPoolNd, "AdaptiveAvgPool")
AdaptiveMaxPool1d, AdaptiveMaxPool2d, AdaptiveMaxPool3d = _dims(_AdaptiveMaxPoolNd, "AdaptiveMaxPool")
