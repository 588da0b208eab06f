"""Upsampling layers: ``Upsample`` (with ``UpsamplingNearest2d`` and
``UpsamplingBilinear2d``), ``PixelShuffle`` and ``PixelUnshuffle``, as in PyTorch.
No parameters.  See :mod:`convpool.functional.upsample` for the coordinate rules and
for upsampling seen as a (transposed) window op."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import geometry
from ..functional import shuffle as PS
from ..functional import upsample as U
from .module import Module


class Upsample(Module):
    """Resampling of ``(N, C, *spatial)`` input (1 to 3 spatial dims) to ``size`` or by ``scale_factor``.

    The rules of PyTorch's ``interpolate`` (see :mod:`convpool.functional.upsample`).

    Args:
        size: output spatial size, an int or one per spatial dim (default None).
        scale_factor: instead of ``size``: a number or one per dim, ``out = floor(in * s)`` (default None).
        mode: 'nearest' (default), 'nearest-exact', 'linear' (3-d input), 'bilinear' (4-d),
            'trilinear' (5-d) or 'area'.
        align_corners: linear modes only: align the corner pixels' centres (default None: False).
        recompute_scale_factor: True: interpolate with ``in / out`` rather than
            ``1 / scale_factor`` (default None: False).

    Shape:
        ``(N, C, *in) -> (N, C, *out)``, ``out = size`` or ``floor(in * scale_factor)`` per dim.

    Example:
        >>> up = nn.Upsample(scale_factor=2, mode="bilinear")
        >>> up(np.random.rand(1, 3, 4, 4)).shape
        (1, 3, 8, 8)
    """

    def __init__(
        self,
        size: Any = None,
        scale_factor: Any = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
    ):
        super().__init__()
        U.check_mode(mode, align_corners)
        if (size is None) == (scale_factor is None):
            raise ValueError(
                f"Upsample needs exactly one of size and scale_factor, got size={size!r}, scale_factor={scale_factor!r}"
            )
        if recompute_scale_factor and size is not None:
            raise ValueError("recompute_scale_factor=True is not meaningful with an explicit size (give scale_factor)")
        if scale_factor is not None and not isinstance(scale_factor, (tuple, list)):
            if not geometry.is_number(scale_factor):
                raise TypeError(f"scale_factor must be a number or a tuple of numbers, got {scale_factor!r}")
            scale_factor = float(scale_factor)
        elif scale_factor is not None:
            if not all(geometry.is_number(f) for f in scale_factor):
                raise TypeError(f"scale_factor must be a number or a tuple of numbers, got {scale_factor!r}")
            scale_factor = tuple(float(f) for f in scale_factor)
        self.size = size
        self.scale_factor = scale_factor
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor
        self._ctx: Any = None

    def forward(self, x: Any) -> np.ndarray:
        y, self._ctx = U.interpolate_forward(
            x, self.size, self.scale_factor, self.mode, self.align_corners, self.recompute_scale_factor
        )
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return U.interpolate_backward(grad_output, self._need_ctx(self._ctx))

    def extra_repr(self) -> str:
        info = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """2-d nearest-neighbour upsampling: ``Upsample(size, scale_factor, mode='nearest')`` (PyTorch's older name).

    Args:
        size: output spatial size ``(H_out, W_out)`` or an int (default None).
        scale_factor: instead of ``size``: a number or a pair (default None).

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, ``out = size`` or ``floor(in * scale_factor)`` per dim.

    Example:
        >>> nn.UpsamplingNearest2d(scale_factor=2)(np.random.rand(1, 3, 4, 4)).shape
        (1, 3, 8, 8)
    """

    def __init__(self, size: Any = None, scale_factor: Any = None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """2-d bilinear upsampling: ``Upsample(size, scale_factor, mode='bilinear', align_corners=True)``.

    PyTorch's older name; note ``align_corners=True``.

    Args:
        size: output spatial size ``(H_out, W_out)`` or an int (default None).
        scale_factor: instead of ``size``: a number or a pair (default None).

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, ``out = size`` or ``floor(in * scale_factor)`` per dim.

    Example:
        >>> nn.UpsamplingBilinear2d(scale_factor=2)(np.random.rand(1, 3, 4, 4)).shape
        (1, 3, 8, 8)
    """

    def __init__(self, size: Any = None, scale_factor: Any = None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class PixelShuffle(Module):
    """Sub-pixel rearrangement of ``(*, C*r*r, H, W)`` into ``(*, C, H*r, W*r)``.

    Channel ``c*r*r + i*r + j`` fills pixel ``(i, j)`` of each ``r x r`` output block.  After a convolution with
    ``C*r*r`` outputs this is the sub-pixel convolution of Shi et al., "Real-time single
    image and video super-resolution using an efficient sub-pixel convolutional neural
    network", CVPR 2016: upsampling learned at low resolution.

    Args:
        upscale_factor: ``r``, a positive int.

    Shape:
        ``(*, C*r*r, H, W) -> (*, C, H*r, W*r)``.

    Example:
        >>> nn.PixelShuffle(3)(np.random.rand(1, 9, 4, 4)).shape
        (1, 1, 12, 12)
    """

    def __init__(self, upscale_factor: int):
        super().__init__()
        self.upscale_factor = geometry.positive_int(upscale_factor, "upscale_factor")
        self._ctx: Any = None

    def forward(self, x: Any) -> np.ndarray:
        y, self._ctx = PS.pixel_shuffle_forward(x, self.upscale_factor)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return PS.pixel_shuffle_backward(grad_output, self._need_ctx(self._ctx))

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """Space to depth, rearranging ``(*, C, H*r, W*r)`` into ``(*, C*r*r, H, W)``.

    The inverse of :class:`PixelShuffle`.

    Args:
        downscale_factor: ``r``, a positive int.

    Shape:
        ``(*, C, H*r, W*r) -> (*, C*r*r, H, W)``.

    Example:
        >>> nn.PixelUnshuffle(3)(np.random.rand(1, 1, 12, 12)).shape
        (1, 9, 4, 4)
    """

    def __init__(self, downscale_factor: int):
        super().__init__()
        self.downscale_factor = geometry.positive_int(downscale_factor, "downscale_factor")
        self._ctx: Any = None

    def forward(self, x: Any) -> np.ndarray:
        y, self._ctx = PS.pixel_unshuffle_forward(x, self.downscale_factor)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return PS.pixel_unshuffle_backward(grad_output, self._need_ctx(self._ctx))

    def extra_repr(self) -> str:
        return f"downscale_factor={self.downscale_factor}"
