"""Implementation "reference" of the conv table: the readable convolution, im2col on the
window engine, and the state every conv implementation keeps (:class:`ConvCtx`).

One N-d implementation:

1. pad the input (zeros or a border mode),
2. take the read-only window view ``(N, C, *out, *kernel)``,
3. lay each group's windows out as columns ``(N, groups, C_in/groups * K, P)``
   (``K`` kernel elements, ``P`` output positions) - the one copy,
4. one batched matrix product with the weights ``(groups, C_out/groups, C_in/groups * K)``
   gives the output directly in ``(N, C_out, *out)`` layout.

The backward pass is the same in reverse: ``grad_weight = grad_out @ cols^T``,
``grad_cols = W^T @ grad_out``, then the window view's adjoint
(:func:`convpool.windows.scatter_add`) and the padding's adjoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import geometry
from ...geometry import Geometry
from ...windows import pad, pad_backward, scatter_add, window_view
from ..tables import ConvProblem


@dataclass
class ConvCtx:
    geom: Geometry
    groups: int
    mode: str
    cols: np.ndarray | None  # (N, g, Cg*K, P); None on the compiled path (recomputed from xp)
    w: np.ndarray  # (g, Cout/g, Cg*K), in the input's dtype
    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    w_dtype: np.dtype
    has_bias: bool
    unbatched: bool
    y_shape: tuple[int, ...]
    xp: np.ndarray | None = None  # im2col: the (border-)padded input, zero padding implicit; direct: the input
    lo: tuple[int, ...] = ()  # compiled path: zero padding the kernels still apply
    wide: Any = None  # direct path: the padded input as a convpool.backends.compiled.direct.Wide
    stencil: bool = False  # direct depthwise path: xp is the input, padded in the kernels


def new_state(p: ConvProblem, w: np.ndarray, y_shape: tuple[int, ...], **saved: Any) -> ConvCtx:
    """The state an implementation keeps: the problem's geometry and shapes, the
    weights as it multiplied them, and what it saved (``xp``, ``lo``, ``wide``...)."""
    x, weight = p.x, p.weight
    return ConvCtx(p.g, p.groups, p.mode, None, w, x.shape, weight.shape, weight.dtype, False, False, y_shape, **saved)


def why_not(p: ConvProblem) -> str | None:
    return None  # the reference takes every problem


def forward(p: ConvProblem) -> tuple[np.ndarray, ConvCtx]:
    return reference_forward(p.x, p.weight, p.g, p.groups, p.mode, False)


def backward(dy: np.ndarray, ctx: ConvCtx, input_grad: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    dx, dw = reference_backward(dy, ctx)
    return (dx if input_grad else None), dw


def reference_forward(
    xb: np.ndarray, weight: np.ndarray, g: Geometry, groups: int, mode: str, unbatched: bool
) -> tuple[np.ndarray, ConvCtx]:
    """The readable NumPy path: window view, one copy into columns, one batched product."""
    nd = g.nd
    xp = pad(xb, g.pads, mode)
    n, c = xb.shape[:2]
    c_out = weight.shape[0]
    cg, k, p = c // groups, geometry.prod(g.kernel), geometry.prod(g.out)
    view = window_view(xp, g.kernel, g.stride, g.dilation, g.out)  # (N, C, *out, *k)
    view = view.reshape((n, groups, cg) + g.out + g.kernel)
    axes = (0, 1, 2, *range(3 + nd, 3 + 2 * nd), *range(3, 3 + nd))
    cols = np.ascontiguousarray(view.transpose(axes)).reshape(n, groups, cg * k, p)
    w = weight.astype(xb.dtype, copy=False).reshape(groups, c_out // groups, cg * k)
    y = np.matmul(w, cols).reshape((n, c_out) + g.out)
    return y, ConvCtx(g, groups, mode, cols, w, xb.shape, weight.shape, weight.dtype, False, unbatched, y.shape)


def reference_backward(dy: np.ndarray, ctx: ConvCtx) -> tuple[np.ndarray, np.ndarray]:
    g, groups, cols = ctx.geom, ctx.groups, ctx.cols
    assert cols is not None
    n = ctx.x_shape[0]
    dyg = dy.reshape(n, groups, ctx.w_shape[0] // groups, cols.shape[-1])  # (N, g, Cout/g, P)
    dw = np.matmul(dyg, cols.transpose(0, 1, 3, 2)).sum(axis=0)
    dw = dw.reshape(ctx.w_shape).astype(ctx.w_dtype, copy=False)
    dcols = np.matmul(ctx.w.transpose(0, 2, 1), dyg)  # (N, g, Cg*K, P)
    return col2im(dcols, ctx.x_shape, g, ctx.mode), dw


def col2im(dcols: np.ndarray, x_shape: tuple[int, ...], g: Geometry, mode: str) -> np.ndarray:
    """Adjoint of the columns: column gradients ``(N, g, Cg*K, P)`` added back onto the
    input ``x_shape`` (N, C, *in) - the window view's adjoint, then the padding's."""
    nd = g.nd
    n, c = x_shape[:2]
    dcols = dcols.reshape((n, c) + g.kernel + g.out)
    axes = (0, 1, *range(2 + nd, 2 + 2 * nd), *range(2, 2 + nd))
    gp = scatter_add(dcols.transpose(axes), (n, c) + g.padded, g.stride, g.dilation)
    return pad_backward(gp, g.pads, mode)
