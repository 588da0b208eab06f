"""Parameter-free pools from the literature: soft, stochastic, blur and pyramid pooling.

* **SoftPool**: the softmax-weighted sum ``sum(exp(x) x) / sum(exp(x))`` of each
  window - every element contributes, the large ones most, and every element gets
  a gradient (max pooling passes it to one).  Stergiou, Poppe and Kalliatakis,
  "Refining activation downsampling with SoftPool", ICCV 2021.
* **Stochastic pooling**: in training, one element per window drawn with
  probability proportional to its value (a regulariser, like dropout); in
  evaluation the probability-weighted sum ``sum(x**2) / sum(x)``.  Zeiler and
  Fergus, "Stochastic pooling for regularization of deep convolutional neural
  networks", ICLR 2013.
* **BlurPool**: a binomial low-pass filter applied depthwise, then subsampling by
  the stride - anti-aliased downsampling, which keeps a network's output stable
  under small shifts of the input.  Zhang, "Making convolutional networks
  shift-invariant again", ICML 2019.
* **Spatial pyramid pooling**: adaptive max (or average) pooling to ``l x l`` bins
  for each level ``l``, flattened and concatenated: a fixed-length vector from an
  input of any size.  He, Zhang, Ren and Sun, "Spatial pyramid pooling in deep
  convolutional networks for visual recognition", ECCV 2014.

SoftPool and stochastic sampling are :class:`~.reductions.Reduction` objects run by
the generic window reduction (the softmax subtracts the window's max first);
stochastic evaluation is two compiled sum pools, BlurPool a depthwise conv and
pyramid pooling the adaptive pools.  Each op has ``*_forward`` returning
``(y, ctx)`` and ``*_backward(dy, ctx)`` returning the input gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import geometry
from .._random import generator
from ._common import batched, check_grad
from .adaptive import (
    adaptive_avg_pool_backward,
    adaptive_avg_pool_forward,
    adaptive_max_pool_backward,
    adaptive_max_pool_forward,
)
from .conv import conv_backward, conv_forward
from .learned_pools import check_flag, kernel_first
from .pool import reduce_window_backward, reduce_window_forward
from .reductions import Reduction

# --- SoftPool ------------------------------------------------------------------------


class SoftmaxWeighted(Reduction):
    """``sum(exp(x) x) / sum(exp(x))`` over each window, with the window's max
    subtracted before ``exp``.  Gradient of element ``j``: ``s_j (1 + x_j - y)``
    with ``s`` the softmax weights."""

    name = "softpool"
    pad_value = -np.inf

    def forward(self, w: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, object]:
        wk = kernel_first(w)
        e = np.exp(wk - wk.max(axis=0))
        e /= e.sum(axis=0)  # the softmax weights
        wv = np.where(e > 0, wk, 0.0)  # padding (and -inf) has weight 0 and must not make 0 * inf
        y = (e * wv).sum(axis=0)
        return y, (e, wv, y)

    def backward(self, dy: np.ndarray, aux: object, k: int) -> np.ndarray:
        assert isinstance(aux, tuple)
        s, wv, y = aux
        return np.moveaxis(dy * s * (1.0 + wv - y), 0, -1)


def soft_pool_forward(x: Any, nd: int, kernel_size: Any, stride: Any = None) -> tuple[np.ndarray, Any]:
    """SoftPool: ``sum(exp(x) * x) / sum(exp(x))`` over each window (no padding): large
    values dominate as in max pooling, yet every element contributes and gets a
    gradient (Stergiou, Poppe and Kalliatakis, ICCV 2021)."""
    return reduce_window_forward(x, SoftmaxWeighted(), nd, kernel_size, stride)


def soft_pool_backward(dy: Any, ctx: Any) -> np.ndarray:
    return reduce_window_backward(dy, ctx)


# --- stochastic pooling ---------------------------------------------------------------


class Sample(Reduction):
    """One element per window, drawn with probability ``x_j / sum(x)`` from ``rng``; a
    window of zeros draws uniformly.  The gradient goes to the drawn element."""

    name = "stochastic"
    pad_value = 0.0

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def forward(self, w: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, object]:
        wk = kernel_first(w)
        k = wk.shape[0]
        cdf = np.cumsum(wk, axis=0)
        total = cdf[-1]
        u = self.rng.random(w.shape[:-1])
        # the first j with cdf_j > u * total: x_j > 0 there, so a zero is never drawn
        idx = np.minimum((cdf <= u * total).sum(axis=0), k - 1)
        idx = np.where(total > 0, idx, np.minimum((u * k).astype(np.int64), k - 1))[..., None]
        return np.take_along_axis(w, idx, axis=-1)[..., 0], idx

    def backward(self, dy: np.ndarray, aux: object, k: int) -> np.ndarray:
        assert isinstance(aux, np.ndarray)
        gw = np.zeros(dy.shape + (k,), dtype=dy.dtype)
        np.put_along_axis(gw, aux, dy[..., None], axis=-1)
        return gw


@dataclass
class StochasticCtx:
    training: bool
    ctx: Any  # the window reduction's (training) or the sum pools' (evaluation)
    x: np.ndarray | None = None
    s1: np.ndarray | None = None  # window sums of x
    y: np.ndarray | None = None


def _check_non_negative(x: np.ndarray) -> None:
    if x.size and x.min() < 0:
        raise ValueError(
            f"stochastic pooling expects non-negative input (probabilities proportional to the values; "
            f"e.g. pool after a ReLU), got a minimum of {x.min()!r}"
        )


def stochastic_pool_forward(
    x: Any, nd: int, kernel_size: Any, stride: Any = None, training: bool = True
) -> tuple[np.ndarray, StochasticCtx]:
    """Stochastic pooling of a non-negative input (ValueError otherwise), a
    regulariser (Zeiler and Fergus, ICLR 2013).

    Training: per window, the element ``x_j`` drawn with probability ``x_j / sum(x)``
    (uniformly in a window of zeros, whose output is 0 anyway), from convpool's
    generator (:func:`convpool.manual_seed` makes it reproducible).  Evaluation: the
    expectation ``sum(x_j**2) / sum(x)`` (0 for a window of zeros).
    """
    xa = geometry.check_array(x)
    training = check_flag(training, "training")
    _check_non_negative(xa)
    if training:
        y, ctx = reduce_window_forward(xa, Sample(generator()), nd, kernel_size, stride)
        return y, StochasticCtx(True, ctx)
    s1, ctx = reduce_window_forward(xa, "sum", nd, kernel_size, stride)
    s2, _ = reduce_window_forward(xa * xa, "sum", nd, kernel_size, stride)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(s1 > 0, s2 / s1, 0.0).astype(xa.dtype, copy=False)
    return y, StochasticCtx(False, ctx, xa, s1, y)


def stochastic_pool_backward(dy: Any, ctx: StochasticCtx) -> np.ndarray:
    """Training: the drawn element gets the gradient.  Evaluation:
    ``d/dx_j (sum x**2 / sum x) = (2 x_j - y) / sum x`` (0 for a window of zeros)."""
    if ctx.training:
        return reduce_window_backward(dy, ctx.ctx)
    assert ctx.x is not None and ctx.s1 is not None and ctx.y is not None
    dy = check_grad(dy, ctx.y.shape, ctx.x.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(ctx.s1 > 0, dy / ctx.s1, 0.0).astype(dy.dtype, copy=False)
    return 2.0 * ctx.x * reduce_window_backward(g, ctx.ctx) - reduce_window_backward(g * ctx.y, ctx.ctx)


# --- BlurPool ----------------------------------------------------------------------------

BLUR_PAD_MODES = ("reflect", "replicate", "zeros", "circular")


def binomial_filter(filt_size: int, nd: int, dtype: Any = np.float64) -> np.ndarray:
    """The normalised binomial low-pass filter: row ``filt_size - 1`` of Pascal's
    triangle (``1``, ``1 1``, ``1 2 1``, ``1 3 3 1``...), outer product over ``nd``
    dims, summing to 1.  Shape ``(filt_size,) * nd``."""
    if not geometry._is_int(filt_size) or filt_size < 1:
        raise ValueError(f"filt_size must be a positive int, got {filt_size!r}")
    row = np.array([math.comb(filt_size - 1, i) for i in range(filt_size)], dtype=np.float64)
    row /= row.sum()
    filt = np.ones((), dtype=np.float64)
    for _ in range(nd):
        filt = np.multiply.outer(filt, row)
    return filt.astype(dtype)


def check_blur_args(filt_size: Any, stride: Any, pad_mode: Any) -> str:
    """Validate BlurPool's arguments; returns the padding mode as the conv takes it."""
    if not geometry._is_int(filt_size) or filt_size < 1:
        raise ValueError(f"filt_size must be a positive int, got {filt_size!r}")
    if not geometry._is_int(stride) or stride < 1:
        raise ValueError(f"stride must be a positive int, got {stride!r}")
    if pad_mode not in BLUR_PAD_MODES:
        raise ValueError(f"pad_mode must be one of {BLUR_PAD_MODES}, got {pad_mode!r}")
    return str(pad_mode)


def blur_pool_forward(
    x: Any, nd: int, filt_size: int = 3, stride: int = 2, pad_mode: str = "reflect"
) -> tuple[np.ndarray, Any]:
    """Blur, then subsample: a depthwise conv with :func:`binomial_filter` at ``stride``,
    the input padded by ``(filt_size - 1) // 2`` before and ``filt_size // 2`` after in
    every spatial dim with ``pad_mode`` (Zhang's code).  ``filt_size=1`` is plain
    subsampling ``x[..., ::stride]``.  Anti-aliased downsampling: nearly invariant to
    small shifts, where strided pooling is not (Zhang, ICML 2019)."""
    mode = check_blur_args(filt_size, stride, pad_mode)
    xb, _ = batched(x, nd)
    c = xb.shape[1]
    if c == 0:
        raise ValueError(f"blur pooling needs at least one channel, got input of shape {np.shape(x)}")
    filt = binomial_filter(filt_size, nd, xb.dtype)
    weight = np.ascontiguousarray(np.broadcast_to(filt, (c, 1) + filt.shape))
    pads = (((filt_size - 1) // 2, filt_size // 2),) * nd
    return conv_forward(x, weight, None, stride, pads, 1, c, mode, nd=nd)


def blur_pool_backward(dy: Any, ctx: Any) -> np.ndarray:
    return conv_backward(dy, ctx)[0]


@dataclass
class MaxBlurCtx:
    max_ctx: Any
    blur_ctx: Any


def max_blur_pool_forward(
    x: Any, nd: int, kernel_size: Any = 2, stride: int = 2, filt_size: int = 3, pad_mode: str = "reflect"
) -> tuple[np.ndarray, MaxBlurCtx]:
    """Zhang's anti-aliased max pooling: max pooling at stride 1 (no padding), then
    :func:`blur_pool_forward` at ``stride``."""
    check_blur_args(filt_size, stride, pad_mode)
    m, mctx = reduce_window_forward(x, "max", nd, kernel_size, 1)
    y, bctx = blur_pool_forward(m, nd, filt_size, stride, pad_mode)
    return y, MaxBlurCtx(mctx, bctx)


def max_blur_pool_backward(dy: Any, ctx: MaxBlurCtx) -> np.ndarray:
    return reduce_window_backward(blur_pool_backward(dy, ctx.blur_ctx), ctx.max_ctx)


# --- spatial pyramid pooling --------------------------------------------------------------


def check_levels(levels: Any) -> tuple[int, ...]:
    if not isinstance(levels, (tuple, list)) or not levels:
        raise TypeError(f"levels must be a non-empty tuple of positive ints, got {levels!r}")
    if not all(geometry._is_int(v) and v >= 1 for v in levels):
        raise ValueError(f"levels must be positive ints, got {levels!r}")
    return tuple(int(v) for v in levels)


def check_spp_mode(mode: Any) -> str:
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    return str(mode)


@dataclass
class SPPCtx:
    ctxs: list[Any]
    sizes: list[int]  # flattened length of each level
    shapes: list[tuple[int, ...]]  # each level's pooled shape
    mode: str
    unbatched: bool
    dtype: np.dtype


def spatial_pyramid_pool_forward(
    x: Any, nd: int, levels: Sequence[int] = (1, 2, 4), mode: str = "max"
) -> tuple[np.ndarray, SPPCtx]:
    """Adaptive ``mode`` pooling to ``l`` bins per spatial dim for each level ``l``, each
    flattened (channel-major, as ``(N, C, l, l)`` reshaped) and concatenated: output
    ``(N, C * sum(l**nd))`` whatever the input size.  Every level must be at most every
    spatial size (He, Zhang, Ren and Sun, ECCV 2014)."""
    lv, mode = check_levels(levels), check_spp_mode(mode)
    xb, unbatched = batched(x, nd)
    for i, n in enumerate(xb.shape[2:]):
        if max(lv) > n:
            raise ValueError(
                f"spatial pyramid level {max(lv)} does not fit spatial dim {i} of size {n} "
                f"(input shape {np.shape(x)}): every level must be <= every spatial size"
            )
    parts, ctxs, sizes, shapes = [], [], [], []
    for lvl in lv:
        if mode == "max":
            y, _, c = adaptive_max_pool_forward(xb, nd, lvl)
        else:
            y, c = adaptive_avg_pool_forward(xb, nd, lvl)
        parts.append(y.reshape(y.shape[0], -1))
        ctxs.append(c)
        sizes.append(parts[-1].shape[1])
        shapes.append(y.shape)
    out = np.concatenate(parts, axis=1)
    ctx = SPPCtx(ctxs, sizes, shapes, mode, unbatched, xb.dtype)
    return (out[0] if unbatched else out), ctx


def spatial_pyramid_pool_backward(dy: Any, ctx: SPPCtx) -> np.ndarray:
    total = (ctx.shapes[0][0], sum(ctx.sizes))
    dy = check_grad(dy, total[1:] if ctx.unbatched else total, ctx.dtype)
    g = dy[None] if ctx.unbatched else dy
    back = adaptive_max_pool_backward if ctx.mode == "max" else adaptive_avg_pool_backward
    gx = None
    start = 0
    for c, size, shape in zip(ctx.ctxs, ctx.sizes, ctx.shapes, strict=True):
        part = back(np.ascontiguousarray(g[:, start : start + size]).reshape(shape), c)
        gx = part if gx is None else gx + part
        start += size
    assert gx is not None
    return gx[0] if ctx.unbatched else gx


# --- public 1-d/2-d/3-d functions ----------------------------------------------------------


def _soft(nd: int) -> Callable[..., np.ndarray]:
    def pool(input: Any, kernel_size: Any, stride: Any = None) -> np.ndarray:
        return soft_pool_forward(input, nd, kernel_size, stride)[0]

    pool.__name__ = pool.__qualname__ = f"soft_pool{nd}d"
    pool.__doc__ = f"{nd}-d SoftPool.\n\n" + (soft_pool_forward.__doc__ or "")
    return pool


def _stochastic(nd: int) -> Callable[..., np.ndarray]:
    def pool(input: Any, kernel_size: Any, stride: Any = None, training: bool = True) -> np.ndarray:
        return stochastic_pool_forward(input, nd, kernel_size, stride, training)[0]

    pool.__name__ = pool.__qualname__ = f"stochastic_pool{nd}d"
    pool.__doc__ = f"{nd}-d stochastic pooling.\n\n" + (stochastic_pool_forward.__doc__ or "")
    return pool


def _blur(nd: int) -> Callable[..., np.ndarray]:
    def pool(input: Any, filt_size: int = 3, stride: int = 2, pad_mode: str = "reflect") -> np.ndarray:
        return blur_pool_forward(input, nd, filt_size, stride, pad_mode)[0]

    pool.__name__ = pool.__qualname__ = f"blur_pool{nd}d"
    pool.__doc__ = f"{nd}-d anti-aliased downsampling (BlurPool).\n\n" + (blur_pool_forward.__doc__ or "")
    return pool


def _max_blur(nd: int) -> Callable[..., np.ndarray]:
    def pool(
        input: Any, kernel_size: Any = 2, stride: int = 2, filt_size: int = 3, pad_mode: str = "reflect"
    ) -> np.ndarray:
        return max_blur_pool_forward(input, nd, kernel_size, stride, filt_size, pad_mode)[0]

    pool.__name__ = pool.__qualname__ = f"max_blur_pool{nd}d"
    pool.__doc__ = f"{nd}-d anti-aliased max pooling.\n\n" + (max_blur_pool_forward.__doc__ or "")
    return pool


def _spp(nd: int) -> Callable[..., np.ndarray]:
    def pool(input: Any, levels: Sequence[int] = (1, 2, 4), mode: str = "max") -> np.ndarray:
        return spatial_pyramid_pool_forward(input, nd, levels, mode)[0]

    pool.__name__ = pool.__qualname__ = f"spatial_pyramid_pool{nd}d"
    pool.__doc__ = f"{nd}-d spatial pyramid pooling.\n\n" + (spatial_pyramid_pool_forward.__doc__ or "")
    return pool


soft_pool1d, soft_pool2d, soft_pool3d = _soft(1), _soft(2), _soft(3)
stochastic_pool1d, stochastic_pool2d, stochastic_pool3d = _stochastic(1), _stochastic(2), _stochastic(3)
blur_pool1d, blur_pool2d, blur_pool3d = _blur(1), _blur(2), _blur(3)
max_blur_pool1d, max_blur_pool2d, max_blur_pool3d = _max_blur(1), _max_blur(2), _max_blur(3)
spatial_pyramid_pool1d, spatial_pyramid_pool2d, spatial_pyramid_pool3d = _spp(1), _spp(2), _spp(3)
