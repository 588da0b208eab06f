"""Implementation "tiles-2x2" of the pool table: the usual 2x2 pool with stride 2 (2-d,
or 3-d with a depth-1 window) - max, min and sum (average) on kernels of their own that
read each input element once; the backward writes every input element once (max/min on
:func:`.tiled_pairs.route_2x2`, the kernel ``max_pool1d(2)``'s backward runs too)."""

from __future__ import annotations

import numpy as np

from ..numpy.pool import PoolState
from ..tables import PoolProblem
from . import kernels as _kernels
from .pool_layout import LazyTables, Selected, compiled_problem, finish, gradient, is_2x2

if _kernels.DIRECT:  # explicit vectors (numba's llvmlite): the float32 forward's rows
    from . import pool_simd as _pool_simd


def why_not(p: PoolProblem) -> str | None:
    if (reason := compiled_problem(p)) is not None:
        return reason
    if p.builtin not in ("max", "min", "sum"):
        return f"max, min or sum only, not {p.builtin}"
    if not is_2x2(p.g):
        return "needs 2x2 windows with stride 2, no padding, no dilation"
    return None


def forward(p: PoolProblem) -> tuple[np.ndarray, PoolState]:
    # as3, new_output, positions and state of .pool_layout written out: a batch-1 pool's
    # call is mostly such steps (14x14 planes)
    g, x = p.g, p.x
    n, c = x.shape[:2]
    lead = (n * c,) + (1,) * (3 - g.nd)
    x4 = np.ascontiguousarray(x).reshape(lead + g.in_size)
    y = np.empty(lead + g.out, dtype=x.dtype)
    aux = None
    if p.builtin == "sum":
        _kernels.sum_2x2(x4, y)
    else:
        pos = np.empty(y.shape, dtype=np.int8)  # 4 elements a window
        select = _vector_rows if x4.dtype == np.float32 and vector_rows() else _kernels.select_2x2
        select(x4, 1.0 if p.builtin == "max" else -1.0, y, pos)
        aux = Selected(pos, LazyTables(g, p.mode), x4.shape[1:])
    y_shape = (n, c) + g.out
    return y.reshape(y_shape), PoolState(g, p.mode, p.reduction, x.shape, y_shape, aux)


def vector_rows() -> bool:
    """Whether the float32 forward runs on :mod:`.pool_simd` (explicit vectors, one output
    row a step): on the AVX-512 and AVX2 tiles; not on the generic one
    (no masked loads: slower).  Measured, one thread, Intel Xeon under KVM, scalar /
    vector us (/tmp/m/simd_check.py): 1x32x28x28 39 / 5.4, 1x64x14x14 21 / 5.2,
    64x64x56x56 109 / 35, 28x1792 6.4 / 5.5; numba for Haswell 56 / 18, 28 / 18,
    165 / 127, 15 / 15; for the baseline x86-64 50 / 57, 27 / 32, 136 / 281."""
    if not _kernels.DIRECT:  # explicit vectors off (CONVPOOL_NO_DIRECT, or no llvmlite)
        return False
    return _kernels._direct.TILE.isa in ("avx512", "avx2")


def _vector_rows(x4: np.ndarray, sign: float, y: np.ndarray, pos: np.ndarray) -> None:
    _pool_simd.select_2x2(x4, sign, y, pos)


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
