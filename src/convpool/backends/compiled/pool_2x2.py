"""Implementation "tiles-2x2" of the pool table: the usual 2x2 pool with stride 2 (2-d,
or 3-d with a depth-1 window) - max, min and sum (average) on kernels of their own that
read each input element once; the backward writes every input element once (max/min on
:func:`.tiled_pairs.route_2x2`, the kernel ``max_pool1d(2)``'s backward runs too)."""

from __future__ import annotations

import numpy as np

from ..numpy.pool import PoolState
from ..tables import PoolProblem
from . import kernels as _kernels
from .pool_layout import (
    LazyTables,
    Selected,
    as3,
    compiled_problem,
    finish,
    gradient,
    is_2x2,
    new_output,
    positions,
    sign,
    state,
)


def why_not(p: PoolProblem) -> str | None:
    if (reason := compiled_problem(p)) is not None:
        return reason
    if p.builtin not in ("max", "min", "sum"):
        return f"max, min or sum only, not {p.builtin}"
    if not is_2x2(p.g):
        return "needs 2x2 windows with stride 2, no padding, no dilation"
    return None


def forward(p: PoolProblem) -> tuple[np.ndarray, PoolState]:
    x4, y = as3(p.x, p.g.nd, p.g.in_size), new_output(p)
    if p.builtin == "sum":
        _kernels.sum_2x2(x4, y)
        return state(p, y, None)
    pos = positions(p, y)
    _kernels.select_2x2(x4, sign(p), y, pos)
    return state(p, y, Selected(pos, LazyTables(p.g, p.mode), x4.shape[1:]))


def backward(dy: np.ndarray, st: PoolState) -> np.ndarray:
    dy4, gx = gradient(dy, st)
    if isinstance(st.aux, Selected):
        _kernels.route_2x2(st.aux.pos, dy4, gx)  # one dense pass: every element written once
    else:
        _kernels.spread_2x2(dy4, gx)
    return finish(gx, st)


def flat_indices(st: PoolState) -> np.ndarray:
    assert isinstance(st.aux, Selected)
    return st.aux.flat_indices().reshape(st.y_shape)
