"""Implementation "depthwise-loop" of the conv table: every output channel reads one
input channel (``C_in / groups == 1``), so a direct compiled loop over each plane
beats im2col's copy; float32 with stride 1 takes the SIMD stencil before this.  The
backward runs one loop for both gradients."""

from __future__ import annotations

import numpy as np

from ... import geometry
from ..numpy.conv import ConvCtx, new_state
from ..tables import ConvProblem
from . import kernels as _kernels
from .conv_im2col import _as5, float_problem, kernel_geometry, padded_input, unpad


def why_not(p: ConvProblem) -> str | None:
    if p.cg != 1:
        return f"needs one input channel per group, has {p.cg}"
    return float_problem(p)


def forward(p: ConvProblem) -> tuple[np.ndarray, ConvCtx]:
    xb, weight, g, groups = p.x, p.weight, p.g, p.groups
    n, nd, c_out = xb.shape[0], g.nd, weight.shape[0]
    xp, lo = padded_input(p)
    k = geometry.prod(g.kernel)
    w = weight.astype(xb.dtype, copy=False).reshape(groups, c_out // groups, k)
    y = np.zeros((n, c_out) + g.out, dtype=xb.dtype)
    geo = kernel_geometry(g, lo)
    _kernels.depthwise_forward(
        _as5(xp, nd), np.ascontiguousarray(w.reshape(c_out, k)), *geo, c_out // groups, _as5(y, nd)
    )
    return y, new_state(p, w, y.shape, xp=xp, lo=lo)


def backward(dy: np.ndarray, ctx: ConvCtx, input_grad: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    g, xp = ctx.geom, ctx.xp
    assert xp is not None
    nd, c_out = g.nd, ctx.w_shape[0]
    k = geometry.prod(g.kernel)
    gxp = np.zeros(xp.shape, dtype=xp.dtype)
    dw = np.zeros((c_out, k), dtype=np.float64)
    _kernels.depthwise_backward(
        _as5(np.ascontiguousarray(dy), nd),
        _as5(xp, nd),
        np.ascontiguousarray(ctx.w.reshape(c_out, k)),
        *kernel_geometry(g, ctx.lo)[:4],
        c_out // ctx.groups,
        _as5(gxp, nd),
        dw,
    )
    dw = dw.reshape(ctx.w_shape).astype(ctx.w_dtype, copy=False)
    return (unpad(gxp, ctx) if input_grad else None), dw
