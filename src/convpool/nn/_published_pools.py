"""What the published parameter-free pools of :mod:`convpool.nn.published_pools` share:
one class per family (SoftPool, stochastic, BlurPool, max-blur, spatial pyramid), N-d;
the public 1-d/2-d/3-d classes fix ``nd`` and carry the documentation.  See
:mod:`convpool.functional.published_pools` for the formulas.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import geometry
from ..functional import published_pools as PP
from .module import Module


def _check_channels(x: Any, nd: int, channels: int, owner: str) -> None:
    x = geometry.check_array(x)
    c = x.shape[0 if geometry.check_rank(x, nd) else 1]
    if c != channels:
        raise ValueError(f"{owner} was built for channels={channels}, got an input with {c} channels")


class _WindowPoolNd(Module):
    """A pool of ``kernel_size`` windows at ``stride`` (default: the kernel), no padding."""

    nd = 0

    def __init__(self, kernel_size: Any, stride: Any = None):
        super().__init__()
        self.kernel_size, self.stride, _ = geometry.window_args(self.nd, kernel_size, stride, 1, pool=True)
        self._ctx: Any = None

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class _SoftPoolNd(_WindowPoolNd):
    """SoftPool, N-d; subclasses fix ``nd`` (see :class:`SoftPool2d`)."""

    def forward(self, x: Any) -> np.ndarray:
        y, self._ctx = PP.soft_pool_forward(x, self.nd, self.kernel_size, self.stride)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return PP.soft_pool_backward(grad_output, self._need_ctx(self._ctx))


class _StochasticPoolNd(_WindowPoolNd):
    """Stochastic pooling, N-d; subclasses fix ``nd`` (see :class:`StochasticPool2d`)."""

    def forward(self, x: Any) -> np.ndarray:
        y, self._ctx = PP.stochastic_pool_forward(x, self.nd, self.kernel_size, self.stride, self.training)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return PP.stochastic_pool_backward(grad_output, self._need_ctx(self._ctx))


class _BlurPoolNd(Module):
    """BlurPool, N-d; subclasses fix ``nd`` (see :class:`BlurPool2d`)."""

    nd = 0

    def __init__(self, channels: int, filt_size: int = 3, stride: int = 2, pad_mode: str = "reflect"):
        super().__init__()
        self.channels = geometry.positive_int(channels, "channels")
        PP.check_blur_args(filt_size, stride, pad_mode)
        self.filt_size, self.stride, self.pad_mode = filt_size, stride, pad_mode
        self._ctx: Any = None

    def forward(self, x: Any) -> np.ndarray:
        _check_channels(x, self.nd, self.channels, type(self).__name__)
        y, self._ctx = PP.blur_pool_forward(x, self.nd, self.filt_size, self.stride, self.pad_mode)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return PP.blur_pool_backward(grad_output, self._need_ctx(self._ctx))

    def extra_repr(self) -> str:
        return f"{self.channels}, filt_size={self.filt_size}, stride={self.stride}, pad_mode={self.pad_mode!r}"


class _MaxBlurPoolNd(Module):
    """Anti-aliased max pooling, N-d; subclasses fix ``nd`` (see :class:`MaxBlurPool2d`)."""

    nd = 0

    def __init__(
        self, channels: int, kernel_size: Any = 2, stride: int = 2, filt_size: int = 3, pad_mode: str = "reflect"
    ):
        super().__init__()
        self.channels = geometry.positive_int(channels, "channels")
        self.kernel_size = geometry.ntuple(kernel_size, self.nd, "kernel_size")
        PP.check_blur_args(filt_size, stride, pad_mode)
        self.stride, self.filt_size, self.pad_mode = stride, filt_size, pad_mode
        self._ctx: Any = None

    def forward(self, x: Any) -> np.ndarray:
        _check_channels(x, self.nd, self.channels, type(self).__name__)
        y, self._ctx = PP.max_blur_pool_forward(
            x, self.nd, self.kernel_size, self.stride, self.filt_size, self.pad_mode
        )
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return PP.max_blur_pool_backward(grad_output, self._need_ctx(self._ctx))

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, filt_size={self.filt_size}"


class _SpatialPyramidPoolNd(Module):
    """Spatial pyramid pooling, N-d; subclasses fix ``nd`` (see :class:`SpatialPyramidPool2d`)."""

    nd = 0

    def __init__(self, levels: Any = (1, 2, 4), mode: str = "max"):
        super().__init__()
        self.levels = PP.check_levels(levels)
        self.mode = PP.check_spp_mode(mode)
        self._ctx: Any = None

    def forward(self, x: Any) -> np.ndarray:
        y, self._ctx = PP.spatial_pyramid_pool_forward(x, self.nd, self.levels, self.mode)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return PP.spatial_pyramid_pool_backward(grad_output, self._need_ctx(self._ctx))

    def extra_repr(self) -> str:
        return f"levels={self.levels}, mode={self.mode!r}"
