"""Implementation "pointwise" of the conv table: a 1x1 convolution with stride 1 and no
padding is a matrix product per image, ``W (C_out, C_in) @ x (C_in, P)``, reading the
input where it lies.  float32 runs the SIMD kernel (:func:`.direct.pointwise`), which
beats a BLAS call per image on small planes; float64 runs one batched matmul.  The
backward: ``dW = sum_n dY x^T`` (a product per core) and ``dX = W^T dY`` (the same
kernel again)."""

from __future__ import annotations

import numpy as np

from ... import geometry
from ..numpy.conv import ConvCtx, new_state
from ..tables import ConvProblem
from . import kernels as _kernels
from .conv_im2col import _over_batch, float_problem, padded_input, unpad


def why_not(p: ConvProblem) -> str | None:
    if any(k != 1 for k in p.g.kernel) or any(s != 1 for s in p.g.stride):
        return "needs a 1x1 window with stride 1"
    if p.mode == "constant" and any(lo or hi for lo, hi in p.g.pads):
        return "zero padding around a 1x1 window (applied by the im2col loops)"
    return float_problem(p)


def _simd(x: np.ndarray) -> bool:
    return _kernels.DIRECT and x.dtype == np.float32


FUSES_BIAS = True  # forward returns W x + p.bias


def _product(x3: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """``w (groups, co, cg) @ x3 (N, C, P)`` per image, plus ``bias`` (groups * co,) if
    given -> (N, groups * co, P)."""
    n, c, p = x3.shape
    if _simd(x3):
        from . import direct as _direct  # numba's SIMD module: only loaded with the compiled backend

        return _direct.pointwise(x3, w, bias)  # the kernel's sums start from the bias
    groups = w.shape[0]
    y = np.matmul(w, x3.reshape(n, groups, c // groups, p)).reshape(n, -1, p)
    if bias is not None:
        _kernels.plane_add(y.reshape(-1, p), bias)  # y[:, o] += bias[o], one pass
    return y


def forward(p: ConvProblem) -> tuple[np.ndarray, ConvCtx]:
    xb, weight, g, groups = p.x, p.weight, p.g, p.groups
    n, c = xb.shape[:2]
    c_out = weight.shape[0]
    xp, _ = padded_input(p)  # a border mode with a 1x1 window: padded, then read in place
    w = weight.astype(xp.dtype, copy=False).reshape(groups, c_out // groups, c // groups)
    y = _product(xp.reshape(n, c, -1), w, p.bias).reshape((n, c_out) + g.out)
    return y, new_state(p, w, y.shape, xp=xp, lo=(0,) * g.nd)


def backward(dy: np.ndarray, ctx: ConvCtx, input_grad: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    xp = ctx.xp
    assert xp is not None
    n, c = ctx.x_shape[:2]
    groups, c_out = ctx.groups, ctx.w_shape[0]
    cg, p = c // groups, geometry.prod(ctx.geom.out)
    dyg = np.ascontiguousarray(dy).reshape(n, groups, c_out // groups, p)
    xt = xp.reshape(n, groups, cg, p).transpose(0, 1, 3, 2)
    parts: dict[int, np.ndarray] = {}  # by chunk: summed in batch order, whichever thread ran it

    def products(sl: slice, *_: object) -> None:
        parts[sl.start] = np.matmul(dyg[sl], xt[sl]).sum(axis=0)

    # per core, one BLAS thread each, from a small batch on (products only: no im2col)
    _over_batch(products, n, cg * p * xp.itemsize, min_split=1 << 18)
    dw = np.sum([parts[k] for k in sorted(parts)], axis=0).reshape(ctx.w_shape).astype(ctx.w_dtype, copy=False)
    if not input_grad:
        return None, dw
    wt = np.ascontiguousarray(ctx.w.transpose(0, 2, 1))  # (groups, cg, co)
    gxp = _product(dyg.reshape(n, c_out, p), wt).reshape(xp.shape)
    return unpad(gxp, ctx), dw
