"""Pixel shuffle and unshuffle, as ``torch.nn.functional.pixel_shuffle`` /
``pixel_unshuffle``: move channels to space and back, with no arithmetic.

``pixel_shuffle`` rearranges ``(*, C*r*r, H, W)`` into ``(*, C, H*r, W*r)``, channel
``c*r*r + i*r + j`` going to pixel ``(i, j)`` of each ``r x r`` output block.  After a
convolution with ``C*r*r`` output channels this is the sub-pixel convolution of Shi et
al. (CVPR 2016): upsampling learned at low resolution, an alternative to a transposed
convolution with stride ``r``.
``pixel_unshuffle`` is the inverse (space to depth).  Both are a reshape, a transpose and
a reshape; each one's backward pass is the other.  Any number of leading dims ``*``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import geometry
from ._common import check_grad


@dataclass
class ShuffleCtx:
    factor: int
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    dtype: np.dtype


def _check_factor(value: Any, name: str) -> int:
    if not geometry._is_int(value):
        raise TypeError(f"{name} must be a positive int, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_shuffle_input(input: Any, what: str) -> np.ndarray:
    x = geometry.check_array(input)
    if x.ndim < 3:
        raise ValueError(f"input of {what} must have at least 3 dims (*, C, H, W), got shape {x.shape}")
    return x


def _shuffle(x: np.ndarray, r: int) -> np.ndarray:
    *lead, c, h, w = x.shape
    y = x.reshape(*lead, c // (r * r), r, r, h, w)
    k = len(lead)
    y = y.transpose(*range(k), k, k + 3, k + 1, k + 4, k + 2)  # (*, C, H, r, W, r)
    return y.reshape(*lead, c // (r * r), h * r, w * r)


def _unshuffle(x: np.ndarray, r: int) -> np.ndarray:
    *lead, c, h, w = x.shape
    y = x.reshape(*lead, c, h // r, r, w // r, r)
    k = len(lead)
    y = y.transpose(*range(k), k, k + 2, k + 4, k + 1, k + 3)  # (*, C, r, r, H, W)
    return y.reshape(*lead, c * r * r, h // r, w // r)


def pixel_shuffle_forward(input: Any, upscale_factor: int) -> tuple[np.ndarray, ShuffleCtx]:
    r = _check_factor(upscale_factor, "upscale_factor")
    x = _check_shuffle_input(input, "pixel_shuffle")
    if x.shape[-3] % (r * r):
        raise ValueError(
            f"pixel_shuffle needs the channel dim divisible by upscale_factor**2 = {r * r}, "
            f"got {x.shape[-3]} channels (input shape {x.shape})"
        )
    y = np.ascontiguousarray(_shuffle(x, r))
    return y, ShuffleCtx(r, x.shape, y.shape, x.dtype)


def pixel_shuffle_backward(dy: Any, ctx: ShuffleCtx) -> np.ndarray:
    return np.ascontiguousarray(_unshuffle(check_grad(dy, ctx.out_shape, ctx.dtype), ctx.factor))


def pixel_unshuffle_forward(input: Any, downscale_factor: int) -> tuple[np.ndarray, ShuffleCtx]:
    r = _check_factor(downscale_factor, "downscale_factor")
    x = _check_shuffle_input(input, "pixel_unshuffle")
    if x.shape[-2] % r or x.shape[-1] % r:
        raise ValueError(
            f"pixel_unshuffle needs height and width divisible by downscale_factor = {r}, "
            f"got spatial size {x.shape[-2:]} (input shape {x.shape})"
        )
    y = np.ascontiguousarray(_unshuffle(x, r))
    return y, ShuffleCtx(r, x.shape, y.shape, x.dtype)


def pixel_unshuffle_backward(dy: Any, ctx: ShuffleCtx) -> np.ndarray:
    return np.ascontiguousarray(_shuffle(check_grad(dy, ctx.out_shape, ctx.dtype), ctx.factor))


def pixel_shuffle(input: Any, upscale_factor: int) -> np.ndarray:
    """Rearrange ``(*, C*r*r, H, W)`` into ``(*, C, H*r, W*r)`` (``r = upscale_factor``).

    Args:
        input: at least 3-d, channels divisible by ``r*r``.
        upscale_factor: ``r``, a positive int.

    Shape:
        ``(*, C*r*r, H, W) -> (*, C, H*r, W*r)``.

    Example::

        >>> pixel_shuffle(np.zeros((1, 8, 3, 3)), 2).shape
        (1, 2, 6, 6)
    """
    return pixel_shuffle_forward(input, upscale_factor)[0]


def pixel_unshuffle(input: Any, downscale_factor: int) -> np.ndarray:
    """Rearrange ``(*, C, H*r, W*r)`` into ``(*, C*r*r, H, W)``: the inverse of
    :func:`pixel_shuffle`.

    Args:
        input: at least 3-d, height and width divisible by ``r``.
        downscale_factor: ``r``, a positive int.

    Shape:
        ``(*, C, H*r, W*r) -> (*, C*r*r, H, W)``.

    Example::

        >>> pixel_unshuffle(np.zeros((1, 2, 6, 6)), 2).shape
        (1, 8, 3, 3)
    """
    return pixel_unshuffle_forward(input, downscale_factor)[0]
