"""``relu`` and ``linear``, as ``torch.nn.functional``, each with ``*_forward`` returning
``(y, ctx)`` and ``*_backward``: what :class:`convpool.nn.ReLU` and
:class:`convpool.nn.Linear` compute.

ReLU keeps its output (not a mask) for the backward pass; NaN stays NaN and passes its
gradient, as in PyTorch.  On a large float array with kernels enabled each direction is one
compiled parallel pass; otherwise the NumPy expressions below.  The linear layer's
products run with BLAS on the calling thread only (see
:func:`convpool.backends.compiled.kernels.one_blas_thread`: it keeps the cores free for
the compiled kernels around it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import geometry
from ..backends.compiled import kernels as _kernels
from ..backends.compiled import threads as _threads
from ..settings import TUNING

if _kernels.AVAILABLE:
    from ..backends.compiled import linear_kernels as _linear


def relu_forward(input: Any) -> tuple[np.ndarray, np.ndarray]:
    """``max(x, 0)``; the ctx is the output.  Compiled where the pass is split over
    threads; on one thread NumPy's vectorised maximum is faster (measured, Intel Xeon,
    1x32x28x28 float32: 14 us against 47 us for the compiled pass and its set-up)."""
    x = geometry.check_array(input)
    if x.size >= TUNING.thread_min_work and _kernels.worth_parallel(x) and _kernels.num_threads() > 1:
        y = np.empty_like(x, order="C")
        _kernels.relu_forward(np.ascontiguousarray(x).ravel(), y.ravel())
    else:
        y = np.maximum(x, 0)
    return y, y


def relu_backward(grad_output: Any, ctx: np.ndarray) -> np.ndarray:
    """The gradient where the output is positive (or NaN), zero elsewhere."""
    y = ctx
    g = geometry.check_grad(grad_output, y.shape, y.dtype)
    if _kernels.worth_parallel(y):
        dx = np.empty_like(y, order="C")
        _kernels.relu_backward(np.ascontiguousarray(g).ravel(), y.ravel(), dx.ravel())
        return dx
    return np.where(y <= 0, 0, g).astype(y.dtype, copy=False)


def relu(input: Any) -> np.ndarray:
    """``max(input, 0)`` elementwise, NaN kept (PyTorch's ``relu``)."""
    return relu_forward(input)[0]


@dataclass
class LinearCtx:
    x: np.ndarray
    weight: np.ndarray
    has_bias: bool


def _check_weight(x: np.ndarray, weight: Any, bias: Any) -> tuple[np.ndarray, np.ndarray | None]:
    weight = geometry.check_array(weight, "weight")
    if weight.ndim != 2:
        raise ValueError(f"weight of linear must have 2 dims (out_features, in_features), got shape {weight.shape}")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"Linear expects input (..., {weight.shape[1]}), got shape {x.shape}")
    if bias is not None:
        bias = geometry.check_array(bias, "bias")
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"bias must have shape ({weight.shape[0]},) (out_features), got {bias.shape}")
    return weight, bias


def linear_forward(input: Any, weight: Any, bias: Any = None) -> tuple[np.ndarray, LinearCtx]:
    """``y = x @ weight.T + bias`` over the last axis of ``x`` (..., in_features); the
    parameters are used in the input's dtype."""
    x = geometry.check_array(input)
    weight, bias = _check_weight(x, weight, bias)
    y = _few_rows(x, weight, bias)
    if y is not None:
        return y, LinearCtx(x, weight, bias is not None)
    with _kernels.one_blas_thread():
        y = x @ weight.astype(x.dtype, copy=False).T
    if bias is not None:
        if y.dtype == x.dtype and y.flags.writeable:  # the product's fresh array: added in place
            y += bias.astype(x.dtype, copy=False)
        else:
            y = y + bias.astype(x.dtype, copy=False)
    return y, LinearCtx(x, weight, bias is not None)


def _few_rows(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray | None:
    """``x @ weight.T + bias`` on the compiled kernel for a few rows of float input (a
    batch-1 forward: :mod:`convpool.backends.compiled.linear_kernels`), else None."""
    if not (x.dtype in (np.float32, np.float64) and x.size and weight.shape[0] and _kernels.enabled()):
        return None  # (no output features: BLAS's empty product)
    k = x.shape[-1]
    rows = x.size // k
    if rows > _linear.GEMV_MAX_ROWS:
        return None
    w, b, x2 = _as_c(weight, x.dtype), None if bias is None else _as_c(bias, x.dtype), _as_c(x, x.dtype)
    y = _linear.gemv(x2 if x2.ndim == 2 else x2.reshape(rows, k), w, b)
    return y if x.ndim == 2 else y.reshape(x.shape[:-1] + (w.shape[0],))


def _as_c(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``a`` C-contiguous in ``dtype``: itself when it is (two attribute reads, where
    ``np.ascontiguousarray`` takes about 1 us a call)."""
    return a if a.dtype == dtype and a.flags.c_contiguous else np.ascontiguousarray(a, dtype=dtype)


def _grad_output(grad_output: Any, ctx: LinearCtx) -> np.ndarray:
    return geometry.check_grad(grad_output, ctx.x.shape[:-1] + (ctx.weight.shape[0],), ctx.x.dtype)


def _param_grads(g: np.ndarray, ctx: LinearCtx) -> tuple[np.ndarray, np.ndarray | None]:
    out_features, in_features = ctx.weight.shape
    g2, x2 = g.reshape(-1, out_features), ctx.x.reshape(-1, in_features)
    with _kernels.one_blas_thread():
        dw = g2.T @ x2
    return dw, (g2.sum(axis=0) if ctx.has_bias else None)


def linear_param_backward(grad_output: Any, ctx: LinearCtx) -> tuple[np.ndarray, np.ndarray | None]:
    """The gradients of the weight and the bias (None without one)."""
    return _param_grads(_grad_output(grad_output, ctx), ctx)


def linear_backward(grad_output: Any, ctx: LinearCtx) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(grad_input, grad_weight, grad_bias)``.  The two products are independent: with
    the kernels on and enough work, one runs on a kernel thread beside the other (each on
    one BLAS thread, the same products as one after the other)."""
    g = _grad_output(grad_output, ctx)
    out_features, in_features = ctx.weight.shape
    g2, x2 = g.reshape(-1, out_features), ctx.x.reshape(-1, in_features)
    w = ctx.weight.astype(g.dtype, copy=False)
    dw_dx: list[np.ndarray] = [g2, g2]

    def products(j0: int, j1: int) -> None:  # job 0: the weight gradient; job 1: the input gradient
        for j in range(j0, j1):
            dw_dx[j] = g2.T @ x2 if j == 0 else g @ w

    with _kernels.one_blas_thread():
        if _kernels.enabled():
            _threads.parallel_for(products, 2, work=g2.size * in_features)
        else:
            products(0, 2)
    return dw_dx[1], dw_dx[0], (g2.sum(axis=0) if ctx.has_bias else None)


def linear(input: Any, weight: Any, bias: Any = None) -> np.ndarray:
    """``input @ weight.T + bias`` (PyTorch's ``linear``)."""
    return linear_forward(input, weight, bias)[0]
