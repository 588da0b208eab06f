"""``batch_norm``, as ``torch.nn.functional.batch_norm``, with ``batch_norm_forward``
returning ``(y, ctx)`` and ``batch_norm_backward``: what :class:`convpool.nn.BatchNorm1d`
/ ``BatchNorm2d`` compute.

Batch normalisation is a per-channel affine map: with the statistics of channel ``c``
(the batch's in training, the running ones in evaluation)
``y = (x - mean) / sqrt(var + eps) * weight + bias``, i.e. ``y = x * a + b`` with
``a = weight / sigma`` and ``b = bias - mean * a``.  In training the statistics depend
on the batch, so the input gradient has two more terms:
``dx = a * (g - mean(g) - x_hat * mean(g * x_hat))`` (means over the channel).

Statistics are accumulated in float64 (two passes: the mean, then the centred squares;
the kernels first sum runs of 1,024 elements in the input's dtype) whatever the input's
dtype; the output and the input gradient are in the input's dtype, ``grad_weight`` /
``grad_bias`` in the weight's / bias's.

Differences from PyTorch's ``F.batch_norm``: ``eps`` must be positive (0 turns a constant
channel into NaN silently), ``momentum`` must lie in [0, 1], and the parameters and
running statistics are used in the input's dtype (PyTorch requires them to match).  With kernels enabled each pass is one
compiled parallel pass per step (:mod:`convpool.backends.compiled.norm_kernels`);
otherwise the NumPy expressions below.  The context keeps a reference to the input, as
PyTorch saves it: modify it in place before the backward pass and the gradient is wrong
(PyTorch raises there; this library does not track versions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import geometry
from ..backends.compiled import kernels as _kernels

_KERNEL_MIN_RUN = 16  # positions per (image, channel) below which NumPy's strided passes win


@dataclass
class BatchNormCtx:
    """What the backward pass needs.  ``batch_mean`` / ``batch_var`` (biased, float64)
    are the training batch's statistics, for the caller's running averages."""

    x: np.ndarray  # the input as (N, C, S)
    shape: tuple[int, ...]
    mean: np.ndarray  # float64 (C,): the statistics used
    inv: np.ndarray  # float64 (C,): 1 / sqrt(var + eps)
    weight: np.ndarray | None
    bias: np.ndarray | None  # kept for its dtype: a bias gets a gradient, with or without a weight
    training: bool
    batch_mean: np.ndarray | None
    batch_var: np.ndarray | None

    def blend(self, running_mean: Any, running_var: Any, momentum: float) -> tuple[Any, Any]:
        """The running statistics after this training batch, as PyTorch updates them:
        ``(1 - momentum) * running + momentum * batch``, the batch's variance unbiased
        (times count / (count - 1)); new arrays in the running statistics' dtype (None
        for a None)."""
        assert self.batch_mean is not None and self.batch_var is not None
        count = self.x.shape[0] * self.x.shape[2]

        def blend(running: Any, batch: np.ndarray) -> Any:
            if running is None:
                return None
            return ((1 - momentum) * running + momentum * batch).astype(np.asarray(running).dtype)

        return blend(running_mean, self.batch_mean), blend(running_var, self.batch_var * count / (count - 1))


def _channels(x: np.ndarray, v: Any, name: str, required: bool) -> np.ndarray | None:
    """A per-channel vector ``v`` checked against the input's channels."""
    if v is None:
        if required:
            raise ValueError(f"{name} is required when training=False (the statistics to normalise with), got None")
        return None
    v = geometry.check_array(v, name)
    if v.shape != (x.shape[1],):
        raise ValueError(f"{name} must have shape ({x.shape[1]},) (one value per input channel), got {v.shape}")
    return v


def _check_eps(eps: Any) -> float:
    if not geometry.is_number(eps) or not 0 < eps < math.inf:
        raise ValueError(f"eps must be a positive finite number (0 gives NaN for a constant channel), got {eps!r}")
    return float(eps)


def _use_kernels(x3: np.ndarray) -> bool:
    return _kernels.worth_parallel(x3) and x3.shape[2] >= _KERNEL_MIN_RUN


def _batch_stats(x3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and biased variance, float64."""
    n, c, s = x3.shape
    if _use_kernels(x3):
        mean, var = np.empty(c), np.empty(c)
        _kernels.batch_norm_stats(x3.ravel(), n, c, s, mean, var)
        return mean, var
    mean = x3.mean(axis=(0, 2), dtype=np.float64)
    centred = x3 - mean.astype(x3.dtype)[None, :, None]
    var = np.einsum("ncs,ncs->c", centred, centred, dtype=np.float64) / (n * s)
    return mean, var


def _scale_shift(x3: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``x * scale[c] + shift[c]`` in x's dtype (scale and shift: float64 per channel)."""
    n, c, s = x3.shape
    if _use_kernels(x3):
        y = np.empty(x3.shape, dtype=x3.dtype)
        _kernels.batch_norm_affine(x3.ravel(), n, c, s, scale, shift, y.ravel())
        return y
    dt = x3.dtype
    return x3 * scale.astype(dt)[None, :, None] + shift.astype(dt)[None, :, None]


def batch_norm_forward(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    eps: float = 1e-5,
) -> tuple[np.ndarray, BatchNormCtx]:
    """Normalise ``input`` (N, C, *) per channel; returns ``(y, ctx)``.  Training: with
    the batch's statistics (``ctx.batch_mean`` / ``ctx.batch_var``; the running
    statistics are neither read nor updated here, see :func:`batch_norm`); evaluation:
    with ``running_mean`` / ``running_var``."""
    x = geometry.check_array(input)
    if x.ndim < 2:
        raise ValueError(f"batch_norm expects input of shape (N, C, *) with at least 2 dims, got shape {x.shape}")
    training = geometry.check_bool(training, "training")
    eps = _check_eps(eps)
    rm = _channels(x, running_mean, "running_mean", not training)
    rv = _channels(x, running_var, "running_var", not training)
    w, b = _channels(x, weight, "weight", False), _channels(x, bias, "bias", False)
    x3 = np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:]))
    if training:
        if x3.shape[0] * x3.shape[2] < 2:
            raise ValueError(f"batch_norm in training needs more than 1 value per channel, got input shape {x.shape}")
        mean, var = _batch_stats(x3)
        batch: tuple[np.ndarray | None, np.ndarray | None] = (mean, var)
    else:
        assert rm is not None and rv is not None
        mean, var = rm.astype(np.float64), rv.astype(np.float64)
        batch = (None, None)
    inv = 1.0 / np.sqrt(var + eps)
    scale = inv * w if w is not None else inv
    shift = (b if b is not None else 0.0) - mean * scale
    y = _scale_shift(x3, scale, shift).reshape(x.shape)
    return y, BatchNormCtx(x3, x.shape, mean, inv, w, b, training, *batch)


def batch_norm_backward(grad_output: Any, ctx: BatchNormCtx) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(grad_input, grad_weight, grad_bias)``; a parameter's gradient is None when it
    was not given (``affine=False``: both), in its dtype otherwise."""
    x3 = ctx.x
    n, c, s = x3.shape
    g = np.ascontiguousarray(geometry.check_grad(grad_output, ctx.shape, x3.dtype)).reshape(x3.shape)
    k = ctx.inv * ctx.weight if ctx.weight is not None else ctx.inv
    fixed = not ctx.training  # evaluation: a fixed affine map, dx = g * k
    if ctx.weight is None and ctx.bias is None and fixed:  # no sums needed
        return _scale_shift(g, k, np.zeros(c)).reshape(ctx.shape), None, None
    if _use_kernels(x3):
        sum_g, sum_gx = np.empty(c), np.empty(c)
        _kernels.batch_norm_grad_sums(g.ravel(), x3.ravel(), n, c, s, ctx.mean, sum_g, sum_gx)
    else:
        sum_g = g.sum(axis=(0, 2), dtype=np.float64)
        centred = x3 - ctx.mean.astype(x3.dtype)[None, :, None]
        sum_gx = np.einsum("ncs,ncs->c", g, centred, dtype=np.float64)
    dw = None if ctx.weight is None else (sum_gx * ctx.inv).astype(ctx.weight.dtype)
    db = None if ctx.bias is None else sum_g.astype(ctx.bias.dtype)
    if fixed:
        return _scale_shift(g, k, np.zeros(c)).reshape(ctx.shape), dw, db
    count = n * s
    gm, xk = sum_g / count, sum_gx * ctx.inv * ctx.inv / count
    if _use_kernels(x3):
        dx = np.empty(x3.shape, dtype=x3.dtype)
        _kernels.batch_norm_input_grad(g.ravel(), x3.ravel(), n, c, s, ctx.mean, k, gm, xk, dx.ravel())
    else:
        dt = x3.dtype

        def per_channel(v: np.ndarray) -> np.ndarray:
            return v.astype(dt)[None, :, None]

        dx = per_channel(k) * (g - per_channel(gm) - (x3 - per_channel(ctx.mean)) * per_channel(xk))
    return dx.reshape(ctx.shape), dw, db


def batch_norm(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> np.ndarray:
    """Batch normalisation, as ``torch.nn.functional.batch_norm``: in training with the
    batch's statistics, and ``running_mean`` / ``running_var`` (when given) updated in
    place with ``momentum`` (the variance unbiased, as PyTorch); in evaluation with the
    running statistics."""
    if training and (not geometry.is_number(momentum) or not 0 <= momentum <= 1):
        raise ValueError(f"momentum must be a number in [0, 1], got {momentum!r}")
    for name, v in (("running_mean", running_mean), ("running_var", running_var)):
        if training and v is not None and not (isinstance(v, np.ndarray) and v.flags.writeable):
            raise TypeError(f"{name} is updated in place in training: it must be a writeable NumPy array, got {v!r}")
    y, ctx = batch_norm_forward(input, running_mean, running_var, weight, bias, training, eps)
    if training:
        update_running(ctx, running_mean, running_var, float(momentum))
    return y


def update_running(ctx: BatchNormCtx, running_mean: Any, running_var: Any, momentum: float) -> None:
    """Blend a training batch's statistics into the running ones, in place (see
    :meth:`BatchNormCtx.blend`); either may be None."""
    mean, var = ctx.blend(running_mean, running_var, momentum)
    if running_mean is not None:
        running_mean[...] = mean
    if running_var is not None:
        running_var[...] = var
