"""Implementation "tiles" of the pool table: max, min and sum (the average pool's
numerator) over windows that tile the input (stride == kernel, no padding, no
dilation, no ceil_mode room), in whole-row loops without index tables; each input
element lies in at most one window.  Sums: :mod:`.tiled_sum`; max and min over windows
two wide along the last dimension (``max_pool1d(2)``, ``max_pool3d(2)``): :mod:`.tiled_pairs`."""

from __future__ import annotations

import numpy as np

from ...geometry import Geometry
from ..numpy.pool import PoolState
from ..tables import PoolProblem
from . import kernels as _kernels
from .pool_layout import (
    Selected,
    as3,
    compiled_problem,
    finish,
    gradient,
    k3,
    new_output,
    positions,
    sign,
    state,
    tiled,
)
from .pool_layout import tables as index_tables


def why_not(p: PoolProblem) -> str | None:
    if (reason := compiled_problem(p)) is not None:
        return reason
    if p.builtin not in ("max", "min", "sum"):
        return f"max, min or sum only, not {p.builtin}"
    if not tiled(p.g):
        return "needs windows that tile the input (stride == kernel, no padding or dilation)"
    return None


def forward(p: PoolProblem) -> tuple[np.ndarray, PoolState]:
    x4, y = as3(p.x, p.g.nd, p.g.in_size), new_output(p)
    if p.builtin == "sum":
        from .tiled_sum import sum_tiled

        k0, k1, k2 = k3(p.g.kernel)
        sum_tiled(x4, k0, k1, k2, y)
        return state(p, y, None)
    pos = positions(p, y)
    k0, k1, k2 = k3(p.g.kernel)
    if pairs(p.g):
        from .tiled_pairs import select_pairs

        select_pairs(x4, sign(p), y, pos)
    elif k2 == 2:
        from .tiled_pairs import select_pair_windows

        select_pair_windows(x4, k0, k1, sign(p), y, pos)
    else:
        _kernels.select_tiled(x4, k0, k1, k2, sign(p), y, pos)
    return state(p, y, Selected(pos, index_tables(p.g, p.mode), x4.shape[1:]))


def backward(dy: np.ndarray, st: PoolState) -> np.ndarray:
    dy4, gx = gradient(dy, st)
    k0, k1, k2 = k3(st.g.kernel)
    if st.aux is None:  # sum
        from .tiled_sum import spread_tiled

        spread_tiled(dy4, k0, k1, k2, gx)
        return finish(gx, st)
    assert isinstance(st.aux, Selected)
    if pairs(st.g):
        from .tiled_pairs import route_pairs

        route_pairs(st.aux.pos, dy4, gx)
    else:
        _kernels.route_tiled(st.aux.pos, k0, k1, k2, dy4, gx)
    return finish(gx, st)


def pairs(g: Geometry) -> bool:
    """Windows of two along the last dimension only (``max_pool1d(2)``): each input row
    reduced on its own, by :mod:`.tiled_pairs`."""
    return k3(g.kernel) == (1, 1, 2)


def flat_indices(st: PoolState) -> np.ndarray:
    assert isinstance(st.aux, Selected)
    return st.aux.flat_indices().reshape(st.y_shape)
