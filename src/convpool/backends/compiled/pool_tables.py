"""Implementation "index-tables" of the pool table: any windows (stride, padding in any
mode, dilation, ceil_mode) of the built-in reductions, read through one small index
table per dimension (:func:`.runtime.index_table`), which resolves the padding once
per call: no padded copy, no window copy.  Sum is separable (a running sum along the
last dimension); its backward at stride 1 is the forward kernel on the adjoint
windows (:func:`.pool_layout.adjoint_sum`)."""

from __future__ import annotations

import numpy as np

from ..numpy.pool import PoolState
from ..tables import PoolProblem
from . import kernels as _kernels
from .pool_layout import (
    Selected,
    adjoint_sum,
    as3,
    compiled_problem,
    finish,
    gradient,
    interior,
    k3,
    last_dim,
    new_output,
    positions,
    selected_indices,
    sign,
    state,
    tables,
)


def why_not(p: PoolProblem) -> str | None:
    return compiled_problem(p)


def forward(p: PoolProblem) -> tuple[np.ndarray, PoolState]:
    g = p.g
    x4, y = as3(p.x, g.nd, g.in_size), new_output(p)
    t = tables(g, p.mode)
    t0, t1, t2 = t
    if p.builtin == "sum":
        _kernels.sum_separable(x4, t0, t1, *last_dim(g, t2), y)
        return state(p, y, None)
    if p.builtin == "median":
        chosen = np.empty(y.shape, dtype=np.int64)
        _kernels.median_forward(x4, t0, t1, t2, y, chosen)
        return state(p, y, chosen)
    pos = positions(p, y)  # max / min: the values and each winner's position in its window, one pass
    _kernels.select_where(x4, t0, t1, t2, sign(p), y, pos)
    return state(p, y, Selected(pos, t, x4.shape[1:]))


def backward(dy: np.ndarray, st: PoolState) -> np.ndarray:
    g = st.g
    dy4, gx = gradient(dy, st)
    sel = st.aux
    if isinstance(sel, Selected):
        t0, t1, t2 = sel.tables
        s2, d2, lo2 = k3(g.stride)[2], k3(g.dilation)[2], g.pads[-1][0]
        _kernels.route(sel.pos, t0, t1, t2, (*interior(t2, s2, d2, lo2), s2, d2, lo2), dy4, gx)
    elif sel is not None:  # median: flat indices from the forward pass
        _kernels.select_backward(dy4, selected_indices(st).reshape(dy4.shape), gx.reshape(dy4.shape[0], -1))
    elif (adj := adjoint_sum(g, st.mode)) is not None:
        t0, t1, t2 = tables(adj, None)  # the forward kernel: no kernel of its own to compile
        _kernels.sum_separable(dy4, t0, t1, *last_dim(adj, t2), gx)
    else:
        t0, t1, t2 = tables(g, st.mode)
        _kernels.sum_separable_backward(dy4, t0, t1, *last_dim(g, t2), gx)
    return finish(gx, st)


def flat_indices(st: PoolState) -> np.ndarray:
    return selected_indices(st)
