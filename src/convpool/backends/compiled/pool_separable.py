"""Implementation "separable" of the pool table: max and min pools over any windows
(stride, padding in any mode, dilation, ceil_mode), computed separably - the maximum of
a window is the maximum over its rows of each row's maximum, and so is its first
maximum in scan order (the winner): one pass along the last dimension, then one along
each dimension before it (:mod:`.separable_kernels`).  A k x k window costs about 2k
reads per output instead of the k*k of "index-tables".

The state is the winner's position in its window and the index tables
(:class:`.pool_layout.Selected`), as every compiled max/min pool keeps; the backward
(routing each gradient to its winner) and the indices are those of "index-tables"."""

from __future__ import annotations

import numpy as np

from ..numpy.pool import PoolState
from ..tables import PoolProblem
from .pool_layout import Selected, as3, compiled_problem, k3, new_output, positions, sign, state, tables
from .pool_tables import backward, flat_indices  # noqa: F401  (the routing backward and indices)


def why_not(p: PoolProblem) -> str | None:
    if (reason := compiled_problem(p)) is not None:
        return reason
    if p.builtin not in ("max", "min"):
        return f"max or min only, not {p.builtin}"
    k2, s2, o2 = p.g.kernel[-1], p.g.stride[-1], p.g.out[-1]
    if s2 >= 3 and k2 > 1:  # measured 0.9-2.6x the index tables' time
        return f"stride {s2} along the last dimension: read in scalar strided loops, no faster than index-tables"
    if o2 < (5 if s2 == 1 else 8):  # measured 1.1-3.9x the index tables' time
        return f"output rows of {o2} < {5 if s2 == 1 else 8}: the row passes' overhead outweighs the saved reads"
    return None


def forward(p: PoolProblem) -> tuple[np.ndarray, PoolState]:
    from . import separable_kernels

    g = p.g
    x4, y = as3(p.x, g.nd, g.in_size), new_output(p)
    pos = positions(p, y)
    t = tables(g, p.mode)
    t0, t1, t2 = t
    last = (k3(g.stride)[2], k3(g.dilation)[2], g.pads[-1][0])
    separable_kernels.select_separable(x4, t0, t1, t2, last, sign(p), y, pos)
    return state(p, y, Selected(pos, t, x4.shape[1:]))
