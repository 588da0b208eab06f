"""Log-mean-exp pooling: ``(1/beta) log(mean over the window of exp(beta x))``, the
window reduction that :func:`~.learned_pools.lse_pool_forward` runs and GeM's stable
form uses (GeM is ``exp`` of it applied to ``log x`` with ``beta = p``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import geometry
from ._common import check_grad
from ._scalars import check_positive, param_grad
from .pool import reduce_window_backward, reduce_window_forward
from .reductions import Reduction


def normal_exponent(v: float, name: str) -> float:
    """A positive exponent that is a normal float: a subnormal one (below 2.2e-308) has
    lost the digits that scale the window's spread."""
    if v < np.finfo(np.float64).tiny:
        raise ValueError(f"{name} must be at least {float(np.finfo(np.float64).tiny)!r} (a normal float), got {v!r}")
    return v


def kernel_first(w: np.ndarray) -> np.ndarray:
    """Windows ``(..., K)`` as ``(K, ...)``, contiguous: reductions over a short last axis
    are slow in NumPy, over the first axis they are elementwise passes."""
    return np.ascontiguousarray(np.moveaxis(w, -1, 0))


class LogMeanExp(Reduction):
    """``(1/beta) log(mean exp(beta x))`` over the real elements of each window, as
    ``max + log(mean(exp(beta (x - max)))) / beta``: never overflows.  Where ``beta``
    times the spread of the window maxima is below 1/4 (``beta -> 0``, where every
    ``exp`` is close to 1 and its rounding, divided by ``beta``, would dominate),
    ``log1p(mean(expm1(...)))`` keeps the digits that tell the result from the mean.  The gradient of each element is its softmax weight
    ``exp(beta x) / sum exp(beta x)``."""

    name = "logmeanexp"
    pad_value = -np.inf  # exp(-inf) = 0: padding adds nothing; the count excludes it

    def __init__(self, beta: float):
        self.beta = beta

    def forward(self, w: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, object]:
        wk = kernel_first(w)
        if wk.dtype != np.float64 and self.beta < 1e-2:  # beta * (x - max) would underflow
            wk = wk.astype(np.float64)
        k = wk.shape[0]
        top = wk.max(axis=0)
        with np.errstate(invalid="ignore"):  # inf - inf where the max is infinite: taken as 0
            d = np.where(wk == top, 0.0, wk - top).astype(wk.dtype, copy=False)
        d *= self.beta
        count = np.asarray(valid).astype(w.dtype)
        if top.size and self.beta * float(top.max() - top.min()) >= 0.25:  # exp's rounding: a few ulps
            e = np.exp(d)  # padding: 0
            y = top + np.log(e.sum(axis=0) / count) / self.beta
        else:  # small beta: sum (exp - 1) over the real elements, without the rounding of exp
            em1 = np.expm1(d)
            e = em1 + 1.0
            none = np.isneginf(d)  # padding, or an input -inf (which counts, with exp = 0)
            if none.any():
                em1[none] = 0.0
                em1[0] -= none.sum(axis=0) - (k - count)
            y = top + np.log1p(em1.sum(axis=0) / count) / self.beta
        e /= e.sum(axis=0)
        return y.astype(w.dtype, copy=False), e.astype(w.dtype, copy=False)

    def backward(self, dy: np.ndarray, aux: object, k: int) -> np.ndarray:
        assert isinstance(aux, np.ndarray)
        return np.moveaxis(dy * aux, 0, -1)

    def __repr__(self) -> str:
        return f"LogMeanExp(beta={self.beta})"


@dataclass
class LSECtx:
    pool_ctx: Any
    x: np.ndarray
    y: np.ndarray
    beta: float
    beta_value: Any


def lse_pool_forward(
    x: Any, beta: Any, nd: int, kernel_size: Any, stride: Any = None, padding: Any = 0
) -> tuple[np.ndarray, LSECtx]:
    """Log-mean-exp pooling ``(1/beta) log(mean over the window of exp(beta x))``: a
    smooth maximum, the mean as ``beta -> 0`` and the max as ``beta -> inf``, with a
    softmax share of the gradient for every element (Pinheiro and Collobert, CVPR
    2015).  Stable at any ``beta`` (the window's max is subtracted); padding is left
    out of the mean."""
    xa = geometry.check_array(x)
    b = normal_exponent(check_positive(beta, "beta"), "beta")
    y, pctx = reduce_window_forward(xa, LogMeanExp(b), nd, kernel_size, stride, padding)
    return y, LSECtx(pctx, xa, y, b, beta)


def lse_pool_backward(dy: Any, ctx: LSECtx) -> tuple[np.ndarray, np.ndarray]:
    """``(grad_input, grad_beta)``.  With softmax weights ``s``, ``dy/dx = s`` and
    ``dy/dbeta = (sum(s x) - y) / beta``, so ``grad_beta = (sum(gx x) - sum(dy y)) / beta``."""
    dy = check_grad(dy, ctx.y.shape, ctx.x.dtype)
    gx = reduce_window_backward(dy, ctx.pool_ctx)
    with np.errstate(invalid="ignore"):  # 0 * inf where an infinite input gets no gradient
        gsx = float(np.where(gx == 0, 0.0, gx * ctx.x).sum())
    db = (gsx - float((dy * ctx.y).sum())) / ctx.beta
    return gx, param_grad(ctx.beta_value, db)
