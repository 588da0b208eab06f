"""Compiled kernels for pools whose windows tile the input (stride == kernel, no
padding, no dilation: the usual 2x2 pool) and for window sums computed separably.
Import only when numba is available (:mod:`convpool.backends.compiled.kernels` re-exports these names).

Arrays are (P, D, H, W) planes.  Each kernel is a serial loop over a range of planes,
``_kernel(j0, j1, *args)``, released from the GIL; the function of the same name
without the underscore runs it over all planes on the kernel threads
(:func:`convpool.backends.compiled.threads.parallel_for`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .threads import KERNEL_O2, parallel_for

# Tiled windows (stride == kernel, no padding, dilation 1: every input element is in at
# most one window - the usual 2x2 pool): no index tables; the forward pass records the
# winner's position in its window (int8), so that the backward pass needs nothing else.
# The 2x2 kernels are loops over whole rows without branches on the data (they
# vectorise); the general kernels take one window at a time (a small scalar loop: quick
# to compile, for the rarer windows).


def window_offsets(k0: int, k1: int, k2: int, n1: int, n2: int) -> np.ndarray:
    """Flat offset in a (D, n1, n2) plane of each window element (scan order) from the
    window's first element."""
    i, j, m = np.unravel_index(np.arange(k0 * k1 * k2), (k0, k1, k2))
    return ((i * n1 + j) * n2 + m).astype(np.int64)


def _select_tiled_for(sign: float):
    """The kernel for max (sign 1) or min (sign -1): each compiled on its first use, the
    sign a constant of the code (a kernel taking it as an argument keeps both loops)."""

    @njit(**KERNEL_O2)
    def _select_tiled(j0, j1, x, off, k0, k1, k2, n1, n2, y, pos):
        o0, o1, o2 = y.shape[1], y.shape[2], y.shape[3]
        for p in range(j0, j1):
            xp = x[p]
            for a in range(o0):
                for b in range(o1):
                    yr, pr = y[p, a, b], pos[p, a, b]
                    base = (a * k0 * n1 + b * k1) * n2
                    for c in range(o2):
                        o = base + c * k2
                        best, w = xp[o], 0
                        for e in range(1, off.shape[0]):  # ties: the first; NaN wins, the first
                            v = xp[o + off[e]]
                            if ((v > best) if sign > 0 else (v < best)) or (v != v and best == best):
                                best, w = v, e
                        yr[c] = best
                        pr[c] = w

    return _select_tiled


_select_tiled_max, _select_tiled_min = _select_tiled_for(1.0), _select_tiled_for(-1.0)


def select_tiled(x: np.ndarray, k0: int, k1: int, k2: int, sign: float, y: np.ndarray, pos: np.ndarray) -> None:
    """Max (sign 1) or min (sign -1) of tiled windows and the position in the window
    (scan order) of its first element equal to it; NaN wins (the first).  x: (P, D, H, W)
    contiguous; y, pos: (P, o0, o1, o2).

    One window at a time, its elements through a table of offsets: a scalar loop, which
    compiles in a third of the time of the row-vectorised kernel it replaced (0.4-0.6 vs
    1.5-1.8 s CPU, Xeon) and runs at about its speed on AVX2 and 3-4x slower with
    AVX-512 (2x2x2 windows on 256x16x32x32 float32, 2 threads: 13-15 ms; the row kernel
    7.8-10 and 3.2-3.7) - so the common windows have kernels of their own: 2x2
    (:func:`select_2x2`), two wide along the last dimension (:mod:`.tiled_pairs`: 2.2 ms)."""
    n1, n2 = x.shape[2], x.shape[3]
    off = window_offsets(k0, k1, k2, n1, n2)
    kernel = _select_tiled_max if sign > 0 else _select_tiled_min
    parallel_for(kernel, x.shape[0], x.reshape(x.shape[0], -1), off, k0, k1, k2, n1, n2, y, pos, work=x.size)


def _select_2x2_for(sign: float):
    """The kernel for max (sign 1) or min (sign -1), compiled on its first use."""

    @njit(**KERNEL_O2)
    def _select_2x2(j0, j1, x, y, pos):
        o0, o1, o2 = y.shape[1], y.shape[2], y.shape[3]
        for p in range(j0, j1):
            for d in range(o0):
                for b in range(o1):
                    for c in range(o2):
                        v0 = x[p, d, 2 * b, 2 * c]
                        v1 = x[p, d, 2 * b, 2 * c + 1]
                        v2 = x[p, d, 2 * b + 1, 2 * c]
                        v3 = x[p, d, 2 * b + 1, 2 * c + 1]
                        if sign > 0:
                            best = max(max(v0, v1), max(v2, v3))
                        else:
                            best = min(min(v0, v1), min(v2, v3))
                        w = 3
                        w = 2 if v2 == best else w
                        w = 1 if v1 == best else w
                        w = 0 if v0 == best else w
                        # the first NaN wins: applied in reverse scan order
                        n3, n2, n1, n0 = v3 != v3, v2 != v2, v1 != v1, v0 != v0
                        best = v3 if n3 else best
                        w = 3 if n3 else w
                        best = v2 if n2 else best
                        w = 2 if n2 else w
                        best = v1 if n1 else best
                        w = 1 if n1 else w
                        best = v0 if n0 else best
                        w = 0 if n0 else w
                        y[p, d, b, c] = best
                        pos[p, d, b, c] = w

    return _select_2x2


_select_2x2_max, _select_2x2_min = _select_2x2_for(1.0), _select_2x2_for(-1.0)


def select_2x2(x: np.ndarray, sign: float, y: np.ndarray, pos: np.ndarray) -> None:
    """:func:`select_tiled` for 2x2 windows (the 2-d pool everyone uses): four scalars
    per window and selects only - NaN included - so the loop over a row vectorises;
    small planes (14x14) cost no per-row set-up."""
    parallel_for(_select_2x2_max if sign > 0 else _select_2x2_min, x.shape[0], x, y, pos, work=x.size)


@njit(**KERNEL_O2, fastmath=True)
def _sum_2x2(j0, j1, x, y):
    for p in range(j0, j1):
        for d in range(y.shape[1]):
            for b in range(y.shape[2]):
                for c in range(y.shape[3]):
                    y[p, d, b, c] = (x[p, d, 2 * b, 2 * c] + x[p, d, 2 * b, 2 * c + 1]) + (
                        x[p, d, 2 * b + 1, 2 * c] + x[p, d, 2 * b + 1, 2 * c + 1]
                    )


def sum_2x2(x: np.ndarray, y: np.ndarray) -> None:
    """Sum of each tiled 2x2 window (the 2x2 average pool's numerator)."""
    parallel_for(_sum_2x2, x.shape[0], x, y, work=x.size)


@njit(**KERNEL_O2)
def _spread_2x2(j0, j1, dy, g):
    o0, o1, o2 = dy.shape[1], dy.shape[2], dy.shape[3]
    n1, n2 = g.shape[2], g.shape[3]
    for p in range(j0, j1):
        for d in range(o0):
            for b in range(o1):
                for c in range(o2):
                    v = dy[p, d, b, c]
                    g[p, d, 2 * b, 2 * c] = v
                    g[p, d, 2 * b, 2 * c + 1] = v
                    g[p, d, 2 * b + 1, 2 * c] = v
                    g[p, d, 2 * b + 1, 2 * c + 1] = v
                if n2 > 2 * o2:  # an odd last column: no window reads it
                    g[p, d, 2 * b, n2 - 1] = 0.0
                    g[p, d, 2 * b + 1, n2 - 1] = 0.0
            if n1 > 2 * o1:  # an odd last row
                for m in range(n2):
                    g[p, d, n1 - 1, m] = 0.0
        for d in range(o0, g.shape[1]):  # depth no window reads
            for h in range(n1):
                for m in range(n2):
                    g[p, d, h, m] = 0.0


def spread_2x2(dy: np.ndarray, g: np.ndarray) -> None:
    """Adjoint of :func:`sum_2x2`: every element of g (any contents) written once."""
    parallel_for(_spread_2x2, g.shape[0], dy, g, work=g.size)


@njit(**KERNEL_O2)
def _route_tiled(j0, j1, pos, off, k0, k1, k2, n1, n2, dy, g):
    o0, o1, o2 = dy.shape[1], dy.shape[2], dy.shape[3]
    zero = g.dtype.type(0.0)
    for p in range(j0, j1):
        gp = g[p]
        for t in range(gp.shape[0]):
            gp[t] = zero
        for a in range(o0):
            for b in range(o1):
                pr, dr = pos[p, a, b], dy[p, a, b]
                base = (a * k0 * n1 + b * k1) * n2
                for c in range(o2):
                    gp[base + c * k2 + off[pr[c]]] = dr[c]


def route_tiled(pos: np.ndarray, k0: int, k1: int, k2: int, dy: np.ndarray, g: np.ndarray) -> None:
    """Backward of :func:`select_tiled`: every element of g (contiguous, like the input,
    any contents) written - the window's gradient at its winner, zero elsewhere (and
    zero where no window reaches, in floor mode).  Each plane zeroed, then one store
    per window (compiles in 0.3 s, the per-element kernel it replaced 0.8-0.9 s; as
    fast with AVX-512 and 3x faster on AVX2: 2x2x2 windows on 256x16x32x32 float32,
    2 threads, 2.4 ms both, was 2.4 / 7.8 ms)."""
    n1, n2 = g.shape[2], g.shape[3]
    off = window_offsets(k0, k1, k2, n1, n2)
    g2 = g.reshape(g.shape[0], -1)
    parallel_for(_route_tiled, g.shape[0], pos, off, k0, k1, k2, n1, n2, dy, g2, work=g.size)


# Window sums are separable: sum along the last dimension into a small per-plane
# buffer, then along the middle, then the first.  Each pass is a loop over whole rows
# (vectorised), where the one-pass kernel gathered every window element through the
# tables.  ``wmap`` maps the last dimension's padded coordinates to input columns
# (-1: nothing there), so that a padded row can be built once and read at a
# constant stride.


@njit(**KERNEL_O2, fastmath=True)
def _sum_separable(j0, j1, x, t0, t1, wmap, k2, s2, d2, y, row, sw):
    n0, n1 = x.shape[1], x.shape[2]
    o0, o1, o2 = y.shape[1], y.shape[2], y.shape[3]
    k0, k1 = t0.shape[1], t1.shape[1]
    for p in range(j0, j1):
        for u in range(n0):
            for v in range(n1):
                for w in range(wmap.shape[0]):
                    i = wmap[w]
                    row[w] = x[p, u, v, i] if i >= 0 else 0.0
                for c in range(o2):
                    sw[u, v, c] = 0.0
                for m in range(k2):
                    if s2 == 1:  # a constant stride: this loop vectorises
                        for c in range(o2):
                            sw[u, v, c] += row[c + m * d2]
                    else:
                        for c in range(o2):
                            sw[u, v, c] += row[c * s2 + m * d2]
        for a in range(o0):
            for b in range(o1):
                for c in range(o2):
                    y[p, a, b, c] = 0.0
                for i in range(k0):
                    u = t0[a, i]
                    if u < 0:
                        continue
                    for j in range(k1):
                        v = t1[b, j]
                        if v < 0:
                            continue
                        for c in range(o2):
                            y[p, a, b, c] += sw[u, v, c]


def sum_separable(
    x: np.ndarray, t0: np.ndarray, t1: np.ndarray, wmap: np.ndarray, k2: int, s2: int, d2: int, y: np.ndarray
) -> None:
    """y[p, a, b, c] = sum over the window of x (padding contributes nothing).
    x: (P, n0, n1, n2); y: (P, o0, o1, o2); t0, t1: index tables of the first two
    dimensions; the last dimension's windows start at c*s2, elements m*d2 apart,
    in padded coordinates resolved by wmap."""
    n0, n1, o2 = x.shape[1], x.shape[2], y.shape[3]

    def run(j0: int, j1: int) -> None:  # each thread its own padded row and row sums
        row = np.empty(wmap.shape[0], dtype=x.dtype)
        sw = np.empty((n0, n1, o2), dtype=x.dtype)  # sums along the last dimension
        _sum_separable(j0, j1, x, t0, t1, wmap, k2, s2, d2, y, row, sw)

    parallel_for(run, x.shape[0], work=x.size * k2 + y.size * t0.shape[1] * t1.shape[1])


@njit(**KERNEL_O2, fastmath=True)
def _sum_separable_backward(j0, j1, dy, t0, t1, wmap, k2, s2, d2, g, row, sw):
    n0, n1, n2 = g.shape[1], g.shape[2], g.shape[3]
    o0, o1, o2 = dy.shape[1], dy.shape[2], dy.shape[3]
    k0, k1 = t0.shape[1], t1.shape[1]
    for p in range(j0, j1):
        sw[:] = 0.0
        for a in range(o0):
            for b in range(o1):
                for i in range(k0):
                    u = t0[a, i]
                    if u < 0:
                        continue
                    for j in range(k1):
                        v = t1[b, j]
                        if v < 0:
                            continue
                        for c in range(o2):
                            sw[u, v, c] += dy[p, a, b, c]
        for u in range(n0):
            for v in range(n1):
                for w in range(wmap.shape[0]):
                    row[w] = 0.0
                for m in range(k2):
                    if s2 == 1:
                        for c in range(o2):
                            row[c + m * d2] += sw[u, v, c]
                    else:
                        for c in range(o2):
                            row[c * s2 + m * d2] += sw[u, v, c]
                for w in range(n2):
                    g[p, u, v, w] = 0.0
                for w in range(wmap.shape[0]):
                    i = wmap[w]
                    if i >= 0:
                        g[p, u, v, i] += row[w]


def sum_separable_backward(
    dy: np.ndarray, t0: np.ndarray, t1: np.ndarray, wmap: np.ndarray, k2: int, s2: int, d2: int, g: np.ndarray
) -> None:
    """Adjoint of :func:`sum_separable`; g: (P, n0, n1, n2), any contents (each plane
    is written here)."""
    n0, n1, o2 = g.shape[1], g.shape[2], dy.shape[3]

    def run(j0: int, j1: int) -> None:  # each thread its own padded row and row sums
        row = np.empty(wmap.shape[0], dtype=g.dtype)
        sw = np.empty((n0, n1, o2), dtype=g.dtype)
        _sum_separable_backward(j0, j1, dy, t0, t1, wmap, k2, s2, d2, g, row, sw)

    parallel_for(run, g.shape[0], work=g.size * k2 + dy.size * t0.shape[1] * t1.shape[1])
