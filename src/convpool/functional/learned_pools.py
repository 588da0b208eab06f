"""Pooling with learned parameters: GeM, log-mean-exp, mixed and gated pooling.

Max pooling keeps the strongest response of a window, average pooling all of
them equally; these pools sit between the two, and a network can *learn* where:

* **GeM** (generalised mean): ``(mean over the window of clamp(x, eps)**p) ** (1/p)``;
  ``p = 1`` is average pooling, ``p -> inf`` max pooling.  Radenovic, Tolias and
  Chum, "Fine-tuning CNN image retrieval with no human annotation", TPAMI 2018.
* **LSE** (log-mean-exp): ``(1/beta) log(mean exp(beta x))``; the mean as
  ``beta -> 0``, the max as ``beta -> inf``.  A smooth maximum (Pinheiro and
  Collobert, CVPR 2015; Boureau, Ponce and LeCun, ICML 2010).
* **Mixed**: ``alpha * max + (1 - alpha) * avg`` with one ``alpha`` (Yu et al.,
  RSKT 2014; learned as in Lee, Gallagher and Tu, AISTATS 2016).
* **Gated**: the same blend with ``alpha = sigmoid(w . window + b)`` per window and
  channel: a depthwise convolution of the window decides how max-like each output
  is (Lee, Gallagher and Tu, "Generalizing pooling functions in convolutional
  neural networks: mixed, gated, and tree", AISTATS 2016).

Every op is built on convpool's own pools (compiled where they are): GeM is
an average pool of ``x**p``, mixed/gated pooling a max pool and an average pool
(plus a depthwise conv for the gate); LSE is a :class:`~.reductions.Reduction`
(the window's max is subtracted before ``exp``, so ``beta = 1e4`` stays finite)
run by the generic window reduction.  Parameter gradients come from the input
gradient where possible (``d/dbeta`` of LSE is ``(sum(gx * x) - sum(dy * y)) / beta``).

Padding never takes part: the max ignores it, means are over the real elements
(``count_include_pad=False``).  The gated pool's gate is a convolution and sees
zeros in the padding, as any conv layer does.

Each op has ``*_forward`` returning ``(y, ctx)`` and ``*_backward(dy, ctx)``
returning the input gradient and the parameter gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import geometry
from ..geometry import check_bool as check_flag  # noqa: F401  (the pools' flags: geometry's rule)
from ._common import batched, check_grad
from ._log_mean_exp import LogMeanExp, LSECtx, kernel_first, lse_pool_backward, lse_pool_forward, normal_exponent  # noqa: F401
from ._scalars import check_number, check_positive, check_unit, param_grad  # noqa: F401  (re-exported)
from .adaptive import adaptive_avg_pool_backward, adaptive_avg_pool_forward
from .conv import conv_backward, conv_forward
from .pool import avg_pool_forward, reduce_window_backward, reduce_window_forward


def _pool_pair(
    x: np.ndarray, nd: int, kernel_size: Any, stride: Any, padding: Any
) -> tuple[np.ndarray, np.ndarray, Any, Any]:
    """Max and average (padding excluded) pooling of ``x`` on the same windows."""
    mx, mctx = reduce_window_forward(x, "max", nd, kernel_size, stride, padding)
    av, actx = avg_pool_forward(x, nd, kernel_size, stride, padding, False, False)
    return mx, av, mctx, actx


# --- GeM -------------------------------------------------------------------------------


@dataclass
class GeMCtx:
    back: Callable[[np.ndarray], np.ndarray] | None  # the adjoint of the window mean (direct form)
    x: np.ndarray
    z: np.ndarray  # clamp(x, eps)
    u: np.ndarray | None  # z ** p (direct form)
    m: np.ndarray | None  # window means of u (direct form)
    y: np.ndarray
    p: float
    eps: float
    p_value: Any  # as given: the gradient takes its shape
    lse: Any = None  # the log-mean-exp context (log form)


# The direct form (mean of z**p)**(1/p) holds digits while every window mean of z**p is a
# normal number, no z**p overflows (an element no window reads would still get 0 * inf =
# NaN as its gradient), and p is not so small that 1/p magnifies the mean's rounding (a
# relative error of about eps / p: below these p GeM takes the log form).
_P_MIN = {np.dtype(np.float16): 4.0, np.dtype(np.float32): 0.5, np.dtype(np.float64): 1e-6}


def _power(z: np.ndarray, p: float) -> np.ndarray:
    """``z ** p``; products for a small whole ``p`` (GeM's usual fixed p = 3), a few
    times faster than ``np.power``.  Overflow gives inf quietly: the caller checks."""
    with np.errstate(over="ignore", under="ignore"):
        if p.is_integer() and 1 <= p <= 4:
            u = z.copy()
            for _ in range(int(p) - 1):
                u *= z
            return u
        return z**p


def _normal_means(m: np.ndarray) -> bool:
    return m.size == 0 or (bool(np.isfinite(m).all()) and float(m.min()) >= np.finfo(m.dtype).tiny)


def _direct_ok(z: np.ndarray, u: np.ndarray, m: np.ndarray, p: float, mean: Callable[[np.ndarray], Any]) -> bool:
    """Whether the direct form keeps its digits (see above).  Inputs that are inf or NaN
    are their windows' own business (inf stays inf, NaN NaN, as in the direct form): the
    rest is judged with them replaced by 1."""
    if p < _P_MIN.get(z.dtype, 1e-6):
        return False
    finite = np.isfinite(z)
    if not np.isfinite(u[finite]).all():
        return False
    if _normal_means(m):
        return True
    return not finite.all() and _normal_means(mean(np.where(finite, u, 1.0).astype(u.dtype))[0])


def gem_pool_forward(
    x: Any,
    p: Any,
    nd: int,
    kernel_size: Any = None,
    stride: Any = None,
    padding: Any = 0,
    eps: float = 1e-6,
) -> tuple[np.ndarray, GeMCtx]:
    """Generalised mean ``(mean over the window of clamp(x, eps)**p) ** (1/p)``: average
    pooling at ``p = 1``, max pooling as ``p -> inf``, differentiable in ``p`` so that a
    network can learn it (Radenovic, Tolias and Chum, TPAMI 2018).

    ``kernel_size=None`` pools globally (output size 1 per spatial dim; ``stride``
    and ``padding`` must then keep their defaults).  Padding is left out of the mean.

    Computed directly (an average pool of ``z**p``) where that keeps its digits; where
    ``z**p`` would leave the dtype's range (large ``p``, values far from 1) or ``p`` is
    small (below 0.5 in float32, 1e-6 in float64), as ``exp`` of the log-mean-exp pool of
    ``log z`` with ``beta = p``, in float64 - the same function, stable at any ``p`` (the
    geometric mean as ``p -> 0``, the max as ``p -> inf``).
    """
    xa = geometry.check_array(x)
    pv = normal_exponent(check_positive(p, "p"), "p")
    ev = check_positive(eps, "eps")
    z = np.maximum(xa, ev)
    u = _power(z, pv)
    if kernel_size is None:
        if stride is not None or not (geometry._is_int(padding) and padding == 0):
            raise ValueError(
                f"gem_pool with kernel_size=None pools globally: leave stride (got {stride!r}) "
                f"and padding (got {padding!r}) at their defaults"
            )

        def mean(v: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
            m, actx = adaptive_avg_pool_forward(v, nd, 1)
            return m, lambda g: adaptive_avg_pool_backward(g, actx)

    else:

        def mean(v: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
            m, pctx = avg_pool_forward(v, nd, kernel_size, stride, padding, False, False)
            return m, lambda g: reduce_window_backward(g, pctx)

    m, back = mean(u)
    if _direct_ok(z, u, m, pv, mean):
        y = m ** (1.0 / pv)
        return y, GeMCtx(back, xa, z, u, m, y, pv, ev, p)
    kernel = tuple(xa.shape[xa.ndim - nd :]) if kernel_size is None else kernel_size
    with np.errstate(divide="ignore"):  # log of a clamped z is finite; of an empty window's none
        lz = np.log(z.astype(np.float64))
    ly, lctx = lse_pool_forward(lz, pv, nd, kernel, stride, padding)
    y = np.exp(ly).astype(xa.dtype)
    return y, GeMCtx(None, xa, z, None, None, y, pv, ev, p, lctx)


def gem_pool_backward(dy: Any, ctx: GeMCtx) -> tuple[np.ndarray, np.ndarray]:
    """``(grad_input, grad_p)``; ``grad_p`` has the shape of the ``p`` given."""
    dy = check_grad(dy, ctx.y.shape, ctx.x.dtype)
    p = ctx.p
    if ctx.lse is not None:  # y = exp(l): dl = dy * y, then through log z
        glz, gp = lse_pool_backward(dy.astype(np.float64) * ctx.y, ctx.lse)
        gx = glz / ctx.z * (ctx.x >= ctx.eps)
        return gx.astype(ctx.x.dtype, copy=False), param_grad(ctx.p_value, float(gp))
    m, u = ctx.m, ctx.u
    assert ctx.back is not None and m is not None and u is not None
    with np.errstate(divide="ignore", invalid="ignore"):
        gm = np.where(m > 0, dy * ctx.y / (p * m), 0.0).astype(dy.dtype, copy=False)  # d y / d m
        log_m = np.where(m > 0, np.log(m), 0.0)
    gu = ctx.back(gm)  # d/du of the mean, through the window adjoint
    gx = gu * p * (u / ctx.z) * (ctx.x >= ctx.eps)  # u / z = z ** (p - 1); clamp passes x >= eps
    # dy/dp = y * (mean(u log z) / (p m) - log(m) / p**2); the mean's adjoint turns the
    # first term into a sum over the input
    dp = float((gu * u * np.log(ctx.z)).sum()) - float((dy * ctx.y * log_m).sum()) / p**2
    return gx.astype(ctx.x.dtype, copy=False), param_grad(ctx.p_value, dp)


# --- mixed -----------------------------------------------------------------------------


@dataclass
class MixedCtx:
    max_ctx: Any
    avg_ctx: Any
    mx: np.ndarray
    av: np.ndarray
    alpha: float
    alpha_value: Any
    dtype: np.dtype


def mixed_pool_forward(
    x: Any, alpha: Any, nd: int, kernel_size: Any, stride: Any = None, padding: Any = 0
) -> tuple[np.ndarray, MixedCtx]:
    """``alpha * max_pool + (1 - alpha) * avg_pool`` with ``alpha`` in ``[0, 1]`` (padding
    excluded from the average): a learnable blend of the two (Yu et al., RSKT 2014;
    Lee, Gallagher and Tu, AISTATS 2016)."""
    xa = geometry.check_array(x)
    a = check_unit(alpha, "alpha")
    mx, av, mctx, actx = _pool_pair(xa, nd, kernel_size, stride, padding)
    y = a * mx + (1.0 - a) * av
    return y, MixedCtx(mctx, actx, mx, av, a, alpha, xa.dtype)


def mixed_pool_backward(dy: Any, ctx: MixedCtx) -> tuple[np.ndarray, np.ndarray]:
    """``(grad_input, grad_alpha)``."""
    dy = check_grad(dy, ctx.mx.shape, ctx.dtype)
    a = ctx.alpha
    gx = reduce_window_backward(dy * a, ctx.max_ctx) + reduce_window_backward(dy * (1.0 - a), ctx.avg_ctx)
    return gx, param_grad(ctx.alpha_value, float((dy * (ctx.mx - ctx.av)).sum()))


# --- gated ----------------------------------------------------------------------------


@dataclass
class GatedCtx:
    max_ctx: Any
    avg_ctx: Any
    conv_ctx: Any
    mx: np.ndarray
    av: np.ndarray
    gate: np.ndarray  # sigmoid of the conv
    w_shape: tuple[int, ...]
    has_bias: bool
    dtype: np.dtype


def sigmoid(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))`` without overflow, in ``z``'s dtype."""
    return 0.5 * (np.tanh(0.5 * z) + 1.0)


def gated_pool_forward(
    x: Any, weight: Any, bias: Any, nd: int, stride: Any = None, padding: Any = 0
) -> tuple[np.ndarray, GatedCtx]:
    """``g * max_pool + (1 - g) * avg_pool`` with the gate ``g = sigmoid(conv(x))``, a
    depthwise conv with ``weight`` ``(C, *kernel)`` and ``bias`` ``(C,)`` (or None) on
    the pool's windows (kernel, stride and padding; the conv pads with zeros): each
    window's content decides how max-like its output is (Lee, Gallagher and Tu,
    AISTATS 2016)."""
    xb, _ = batched(x, nd)
    w = geometry.check_array(weight, "weight")
    if w.ndim != nd + 1 or w.shape[0] != xb.shape[1]:
        raise ValueError(
            f"weight of a {nd}-d gated pool must have shape (C, *kernel) = ({xb.shape[1]}, {nd} sizes) for "
            f"an input with {xb.shape[1]} channels, got shape {w.shape}"
        )
    kernel = w.shape[1:]
    if 0 in kernel:
        raise ValueError(f"weight must have a non-empty kernel, got shape {w.shape}")
    mx, av, mctx, actx = _pool_pair(geometry.check_array(x), nd, kernel, stride, padding)
    stride_c = kernel if stride is None else stride
    c = w.shape[0]
    z, cctx = conv_forward(x, w.reshape((c, 1) + kernel), bias, stride_c, padding, 1, c, nd=nd)
    gate = sigmoid(z)
    y = gate * mx + (1.0 - gate) * av
    return y, GatedCtx(mctx, actx, cctx, mx, av, gate, w.shape, bias is not None, mx.dtype)


def gated_pool_backward(dy: Any, ctx: GatedCtx) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(grad_input, grad_weight, grad_bias)`` (``grad_bias`` None without bias)."""
    dy = check_grad(dy, ctx.mx.shape, ctx.dtype)
    g = ctx.gate
    dz = dy * (ctx.mx - ctx.av) * g * (1.0 - g)
    gxc, dw, db = conv_backward(dz, ctx.conv_ctx)
    gx = reduce_window_backward(dy * g, ctx.max_ctx) + reduce_window_backward(dy * (1.0 - g), ctx.avg_ctx) + gxc
    return gx, dw.reshape(ctx.w_shape), (db if ctx.has_bias else None)


# --- public 1-d/2-d/3-d functions --------------------------------------------------------


def _gem(nd: int) -> Callable[..., np.ndarray]:
    def pool(
        input: Any, kernel_size: Any = None, stride: Any = None, padding: Any = 0, p: Any = 3.0, eps: float = 1e-6
    ) -> np.ndarray:
        return gem_pool_forward(input, p, nd, kernel_size, stride, padding, eps)[0]

    pool.__name__ = pool.__qualname__ = f"gem_pool{nd}d"
    pool.__doc__ = f"{nd}-d generalised-mean (GeM) pooling.\n\n" + (gem_pool_forward.__doc__ or "")
    return pool


def _lse(nd: int) -> Callable[..., np.ndarray]:
    def pool(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, beta: Any = 1.0) -> np.ndarray:
        return lse_pool_forward(input, beta, nd, kernel_size, stride, padding)[0]

    pool.__name__ = pool.__qualname__ = f"lse_pool{nd}d"
    pool.__doc__ = f"{nd}-d log-mean-exp pooling.\n\n" + (lse_pool_forward.__doc__ or "")
    return pool


def _mixed(nd: int) -> Callable[..., np.ndarray]:
    def pool(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, alpha: Any = 0.5) -> np.ndarray:
        return mixed_pool_forward(input, alpha, nd, kernel_size, stride, padding)[0]

    pool.__name__ = pool.__qualname__ = f"mixed_pool{nd}d"
    pool.__doc__ = f"{nd}-d mixed max-average pooling.\n\n" + (mixed_pool_forward.__doc__ or "")
    return pool


def _gated(nd: int) -> Callable[..., np.ndarray]:
    def pool(input: Any, weight: Any, bias: Any = None, stride: Any = None, padding: Any = 0) -> np.ndarray:
        return gated_pool_forward(input, weight, bias, nd, stride, padding)[0]

    pool.__name__ = pool.__qualname__ = f"gated_pool{nd}d"
    pool.__doc__ = f"{nd}-d gated max-average pooling.\n\n" + (gated_pool_forward.__doc__ or "")
    return pool


gem_pool1d, gem_pool2d, gem_pool3d = _gem(1), _gem(2), _gem(3)
lse_pool1d, lse_pool2d, lse_pool3d = _lse(1), _lse(2), _lse(3)
mixed_pool1d, mixed_pool2d, mixed_pool3d = _mixed(1), _mixed(2), _mixed(3)
gated_pool1d, gated_pool2d, gated_pool3d = _gated(1), _gated(2), _gated(3)
