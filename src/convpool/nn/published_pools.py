"""Parameter-free pools from the literature: ``SoftPool*d``, ``StochasticPool*d``,
``BlurPool*d``, ``MaxBlurPool*d``, ``SpatialPyramidPool*d``.

Nothing to learn, but each does something max and average pooling cannot: keep
every element's gradient (SoftPool), regularise (stochastic), downsample without
aliasing (BlurPool) or turn any input size into a fixed-length vector (pyramid
pooling).  See :mod:`convpool.functional.published_pools` for the formulas.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import geometry
from ..functional import published_pools as PP
from ..functional._common import batched, window_args
from ._common import positive_int, set_dim_docs
from .module import Module


def _check_channels(x: Any, nd: int, channels: int, owner: str) -> None:
    xb, _ = batched(x, nd)
    if xb.shape[1] != channels:
        raise ValueError(f"{owner} was built for channels={channels}, got an input with {xb.shape[1]} channels")


class _WindowPoolNd(Module):
    """A pool of ``kernel_size`` windows at ``stride`` (default: the kernel), no padding."""

    nd = 0

    def __init__(self, kernel_size: Any, stride: Any = None):
        super().__init__()
        self.kernel_size, self.stride, _ = window_args(self.nd, kernel_size, stride, 1, pool=True)
        self._ctx: Any = None

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class _SoftPoolNd(_WindowPoolNd):
    """SoftPool: the softmax-weighted sum ``sum(exp(x) * x) / sum(exp(x))`` of each window.

    Between average and max pooling: large activations dominate, yet every element
    contributes and receives a gradient (max pooling passes it to one element).
    Computed with the window's max subtracted (no overflow).  No padding.
    Stergiou, Poppe and Kalliatakis, "Refining activation downsampling with
    SoftPool", ICCV 2021.

    Args:
        kernel_size: window size (int or tuple).
        stride: default ``kernel_size``.

    Shape:
        ``(N, C, *in) -> (N, C, *out)``, ``out = floor((in - kernel) / stride) + 1``.

    Example::

        >>> nn.SoftPool2d(2)(np.random.rand(1, 3, 8, 8)).shape
        (1, 3, 4, 4)
    """

    def forward(self, x: Any) -> np.ndarray:
        y, self._ctx = PP.soft_pool_forward(x, self.nd, self.kernel_size, self.stride)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return PP.soft_pool_backward(grad_output, self._need_ctx(self._ctx))


class _StochasticPoolNd(_WindowPoolNd):
    """Stochastic pooling for a **non-negative** input (e.g. after a ReLU; a negative
    input is a ValueError).

    In training, each window outputs one of its elements, drawn with probability
    proportional to its value (a window of zeros draws uniformly; its output is 0) -
    a regulariser with no hyper-parameter, where max pooling always picks the same
    element.  The gradient goes to the drawn element.  In evaluation (``.eval()``)
    the output is the expectation, ``sum(x**2) / sum(x)``.  Draws come from
    convpool's generator: :func:`convpool.manual_seed` makes them reproducible.
    No padding.  Zeiler and Fergus, "Stochastic pooling for regularization of deep
    convolutional neural networks", ICLR 2013.

    Args:
        kernel_size: window size (int or tuple).
        stride: default ``kernel_size``.

    Shape:
        ``(N, C, *in) -> (N, C, *out)``, ``out = floor((in - kernel) / stride) + 1``.

    Example::

        >>> pool = nn.StochasticPool2d(2)
        >>> y = pool(np.random.rand(1, 3, 8, 8))    # training: sampled
        >>> y = pool.eval()(np.random.rand(1, 3, 8, 8))  # evaluation: expectation
    """

    def forward(self, x: Any) -> np.ndarray:
        y, self._ctx = PP.stochastic_pool_forward(x, self.nd, self.kernel_size, self.stride, self.training)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return PP.stochastic_pool_backward(grad_output, self._need_ctx(self._ctx))


class _BlurPoolNd(Module):
    """BlurPool: anti-aliased downsampling - a binomial low-pass filter applied
    depthwise, then subsampling by ``stride``.

    The filter is row ``filt_size - 1`` of Pascal's triangle, normalised, as an outer
    product over the spatial dims (``filt_size=3``: ``[1, 2, 1] / 4``); the input is
    padded by ``(filt_size - 1) // 2`` before and ``filt_size // 2`` after in
    ``pad_mode``.  ``filt_size=1`` is plain subsampling ``x[..., ::stride]``.  Plain
    strided pooling aliases: a one-pixel shift of the input can change the output
    completely; blurring first keeps it nearly shift-invariant.  Zhang, "Making
    convolutional networks shift-invariant again", ICML 2019.  The filter is fixed
    (not in the state dict).

    Args:
        channels: C, the number of channels of the input.
        filt_size: filter size per dim, >= 1.
        stride: subsampling factor.
        pad_mode: 'reflect' (default, as Zhang), 'replicate', 'zeros' or 'circular'.

    Shape:
        ``(N, C, *in) -> (N, C, *out)``, ``out = floor((in - 1) / stride) + 1``.

    Example::

        >>> nn.BlurPool2d(3)(np.random.rand(1, 3, 8, 8)).shape
        (1, 3, 4, 4)
    """

    nd = 0

    def __init__(self, channels: int, filt_size: int = 3, stride: int = 2, pad_mode: str = "reflect"):
        super().__init__()
        self.channels = positive_int(channels, "channels")
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
    """Anti-aliased max pooling: max pooling at stride 1 (no padding), then
    :class:`BlurPool2d`-style blur and subsampling by ``stride`` (Zhang, ICML 2019:
    ``MaxPool(k, stride=1)`` followed by ``BlurPool(stride=2)``).

    Args:
        channels: C, the number of channels of the input.
        kernel_size: the max pool's window (int or tuple).
        stride: subsampling factor of the blur.
        filt_size: blur filter size, >= 1.
        pad_mode: the blur's padding: 'reflect', 'replicate', 'zeros' or 'circular'.

    Shape:
        ``(N, C, *in) -> (N, C, *out)``, ``out = floor((in - kernel) / stride) + 1``.

    Example::

        >>> nn.MaxBlurPool2d(3)(np.random.rand(1, 3, 8, 8)).shape
        (1, 3, 4, 4)
    """

    nd = 0

    def __init__(
        self, channels: int, kernel_size: Any = 2, stride: int = 2, filt_size: int = 3, pad_mode: str = "reflect"
    ):
        super().__init__()
        self.channels = positive_int(channels, "channels")
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
    """Spatial pyramid pooling: for each level ``l``, adaptive max (or average)
    pooling to ``l`` bins per spatial dim, flattened; the levels concatenated.

    A fixed-length vector from an input of any size (so a CNN can take images of
    any size before its linear layers), pooled at several scales at once.  He,
    Zhang, Ren and Sun, "Spatial pyramid pooling in deep convolutional networks for
    visual recognition", ECCV 2014.  Level 1 is global pooling.  Each level must
    be at most every spatial size of the input (a ValueError otherwise).

    Args:
        levels: bins per spatial dim of each level, positive ints.
        mode: 'max' (as He et al.) or 'avg'.

    Shape:
        ``(N, C, *in) -> (N, C * sum(l**nd for l in levels))``; each level's block is
        its ``(N, C, l, .., l)`` output reshaped (channel-major).

    Example::

        >>> spp = nn.SpatialPyramidPool2d((1, 2, 4))
        >>> spp(np.random.rand(2, 8, 13, 9)).shape     # 8 * (1 + 4 + 16)
        (2, 168)
    """

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


class SoftPool1d(_SoftPoolNd):
    nd = 1


class SoftPool2d(_SoftPoolNd):
    nd = 2


class SoftPool3d(_SoftPoolNd):
    nd = 3


class StochasticPool1d(_StochasticPoolNd):
    nd = 1


class StochasticPool2d(_StochasticPoolNd):
    nd = 2


class StochasticPool3d(_StochasticPoolNd):
    nd = 3


class BlurPool1d(_BlurPoolNd):
    nd = 1


class BlurPool2d(_BlurPoolNd):
    nd = 2


class BlurPool3d(_BlurPoolNd):
    nd = 3


class MaxBlurPool1d(_MaxBlurPoolNd):
    nd = 1


class MaxBlurPool2d(_MaxBlurPoolNd):
    nd = 2


class MaxBlurPool3d(_MaxBlurPoolNd):
    nd = 3


class SpatialPyramidPool1d(_SpatialPyramidPoolNd):
    nd = 1


class SpatialPyramidPool2d(_SpatialPyramidPoolNd):
    nd = 2


class SpatialPyramidPool3d(_SpatialPyramidPoolNd):
    nd = 3


set_dim_docs(
    (
        SoftPool1d,
        SoftPool2d,
        SoftPool3d,
        StochasticPool1d,
        StochasticPool2d,
        StochasticPool3d,
        BlurPool1d,
        BlurPool2d,
        BlurPool3d,
        MaxBlurPool1d,
        MaxBlurPool2d,
        MaxBlurPool3d,
        SpatialPyramidPool1d,
        SpatialPyramidPool2d,
        SpatialPyramidPool3d,
    )
)
