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
    return None


def declines(p: PoolProblem) -> str | None:
    """Where it applies but index-tables measured faster: short output rows (skipped
    when the family is held to "separable" with ``config.use``)."""
    need = shortest_row(p.g.nd, p.g.stride[-1])
    if p.g.out[-1] < need:
        return f"output rows of {p.g.out[-1]} < {need}: the row passes' set-up outweighs the saved reads"
    return None


def shortest_row(nd: int, stride: int) -> int:
    """The shortest output row (last dimension) worth the passes: each row pass costs a
    set-up and a scalar remainder, so on short rows the index tables' direct reads win.
    Measured (Intel Xeon, AVX-512, numba's 8-lane code), time against index-tables:
    1-d k3 s1 rows of 8: 1.25, 16: 1.0, 32: 0.42; 2-d k3 s1 rows of 4: 1.2, 5-6: 1.0-1.2,
    7: 0.75; k3 s2 rows of 7-8: 1.1-1.25, 12: 0.5; k3 s3 rows of 12: 1.04, 37: 0.41;
    3-d k3 s1 rows of 4: 0.55, k3 s2 rows of 2-4: 1.6-3."""
    if nd == 1 or stride >= 3:
        return 16
    if stride == 1:
        return 4 if nd == 3 else 7
    return 12


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
