"""Compiled max/min over tiled windows two elements wide along the last dimension
(numba): pairs alone (``max_pool1d(2)``, or kernel ``(1, 2)`` / ``(1, 1, 2)``), each
input row reduced on its own - so the rows are the kernels' jobs and the rows of any
dimensionality one loop - and windows ``(k0, k1, 2)`` (``max_pool3d(2)``), the pairs of
each of a window's rows merged into a running winner.  The pairs' backward also serves
the 2x2 pool's (:func:`route_2x2`: two input rows per output row).  Import only when
numba is available.

Why kernels of their own: the general tiled kernel (:mod:`.tiled_kernels`) keeps a
running winner per output and updates it window element by window element; the
update of its int8 positions did not vectorise on AVX2 (Haswell), so
``max_pool1d(2)`` ran 3-4x slower there than with AVX-512.  Here every output is
two loads, a compare and two selects - the loop vectorises on both (measured, Xeon,
2 threads, 16384 rows of 256 float32: AVX-512 3.1 -> 1.4 ms, AVX2 11.5 -> 1.8 ms; a
copy of the output's size takes 1.7 / 2.2 ms) - and it compiles in a tenth of the
general kernel's time.  The windows ``(k0, k1, 2)`` keep the running winner's position
as a float of the input's type during the merge (a select on floats vectorises on
AVX2, one on the int8 positions did not) and convert it once per output row: 2x2x2
windows on 256x16x32x32 float32, 2 threads: AVX-512 3.2 -> 2.2 ms, AVX2 7.8 -> 2.3 ms
against the row kernel it replaced, which compiled in about twice the time.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .threads import KERNEL_O2, parallel_for


def _select_pairs_for(sign: float):
    """The kernel for max (sign 1) or min (sign -1), compiled on its first use (the
    sign a constant of the code)."""

    @njit(**KERNEL_O2)
    def _select_pairs(j0, j1, x, y, pos):
        w0, w1 = pos.dtype.type(0), pos.dtype.type(1)
        for r in range(j0, j1):
            xr, yr, pr = x[r], y[r], pos[r]
            for c in range(yr.shape[0]):
                v0, v1 = xr[2 * c], xr[2 * c + 1]
                # the second wins if strictly better, or a NaN against a number (the first NaN wins)
                t = ((v1 > v0) if sign > 0 else (v1 < v0)) | ((v1 != v1) & (v0 == v0))
                yr[c] = v1 if t else v0
                pr[c] = w1 if t else w0

    return _select_pairs


_select_pairs_max, _select_pairs_min = _select_pairs_for(1.0), _select_pairs_for(-1.0)


def rows(a: np.ndarray) -> np.ndarray:
    """A contiguous (P, ...) array as its rows along the last dimension."""
    return a.reshape(-1, a.shape[-1])


def select_pairs(x: np.ndarray, sign: float, y: np.ndarray, pos: np.ndarray) -> None:
    """Max (sign 1) or min (sign -1) of each pair ``x[..., 2c : 2c+2]`` into ``y[..., c]``
    and the winner's place in it (0 or 1) into ``pos``; ties go to the first, NaN wins
    (the first).  x: (..., n) with n >= 2 * y.shape[-1] (an odd last element is not
    read); y, pos: contiguous, the same leading dimensions as x."""
    x2, y2 = rows(x), rows(y)
    parallel_for(_select_pairs_max if sign > 0 else _select_pairs_min, x2.shape[0], x2, y2, rows(pos), work=x.size)


def _select_pair_windows_for(sign: float):
    """The kernel for max (sign 1) or min (sign -1), compiled on its first use."""

    @njit(**KERNEL_O2)
    def _select_pair_windows(j0, j1, x, k0, k1, y, pos, wf):
        o0, o1, o2 = y.shape[1], y.shape[2], y.shape[3]
        start = y.dtype.type(-np.inf * sign)
        for p in range(j0, j1):
            for a in range(o0):
                for b in range(o1):
                    yr, pr = y[p, a, b], pos[p, a, b]
                    for c in range(o2):  # -inf (+inf for min) at 0: an all -inf window picks its first
                        yr[c] = start
                        wf[c] = 0.0
                    for i in range(k0):
                        for j in range(k1):
                            row = x[p, a * k0 + i, b * k1 + j]
                            e0 = wf.dtype.type(2 * (i * k1 + j))
                            e1 = e0 + 1
                            for c in range(o2):
                                v0, v1 = row[2 * c], row[2 * c + 1]
                                t = ((v1 > v0) if sign > 0 else (v1 < v0)) | ((v1 != v1) & (v0 == v0))
                                v = v1 if t else v0
                                bc = yr[c]  # the winner so far: kept on a tie, and once a NaN
                                u = ((v > bc) if sign > 0 else (v < bc)) | ((v != v) & (bc == bc))
                                yr[c] = v if u else bc
                                wf[c] = (e1 if t else e0) if u else wf[c]
                    for c in range(o2):
                        pr[c] = np.int32(wf[c])

    return _select_pair_windows


_select_pair_windows_max, _select_pair_windows_min = _select_pair_windows_for(1.0), _select_pair_windows_for(-1.0)


def select_pair_windows(x: np.ndarray, k0: int, k1: int, sign: float, y: np.ndarray, pos: np.ndarray) -> None:
    """Max (sign 1) or min (sign -1) of tiled windows ``(k0, k1, 2)`` and the winner's
    position in its window (scan order; ties: the first; NaN wins, the first).  x: (P,
    D, H, W); y, pos: (P, o0, o1, o2).  The backward is the general
    :func:`.tiled_kernels.route_tiled`."""
    kernel = _select_pair_windows_max if sign > 0 else _select_pair_windows_min

    def run(j0: int, j1: int) -> None:  # each thread its own row of positions
        kernel(j0, j1, x, k0, k1, y, pos, np.empty(y.shape[3], dtype=x.dtype))

    parallel_for(run, x.shape[0], work=x.size)


@njit(**KERNEL_O2)
def _route_pairs(j0, j1, pos, dy, g, k1):
    """Groups ``j0 .. j1``: output row b of a group takes input rows ``b*k1 .. b*k1 +
    k1 - 1``, window position ``2h`` / ``2h + 1`` in row h.  pos, dy: (R, o1, o2);
    g: (R, n1, n2), rows past ``o1*k1`` and columns past ``2*o2`` zeroed."""
    zero = g.dtype.type(0.0)
    o1, o2 = dy.shape[1], dy.shape[2]
    n1, n2 = g.shape[1], g.shape[2]
    for r in range(j0, j1):
        for b in range(o1):
            pr, dr = pos[r, b], dy[r, b]
            for h in range(k1):
                gr = g[r, b * k1 + h]
                # compared in pos's type: vectorised on AVX2 too
                e0, e1 = pr.dtype.type(2 * h), pr.dtype.type(2 * h + 1)
                for c in range(o2):
                    w, v = pr[c], dr[c]
                    gr[2 * c] = v if w == e0 else zero
                    gr[2 * c + 1] = v if w == e1 else zero
                for m in range(2 * o2, n2):  # an odd last column: no window reads it
                    gr[m] = zero
        for h in range(o1 * k1, n1):  # an odd last row
            for m in range(n2):
                g[r, h, m] = zero


def route_pairs(pos: np.ndarray, dy: np.ndarray, g: np.ndarray) -> None:
    """Backward of :func:`select_pairs`: every element of g (any contents) written once,
    the pair's gradient at its winner and zero elsewhere."""
    g2 = rows(g)
    parallel_for(_route_pairs, g2.shape[0], rows(pos)[:, None], rows(dy)[:, None], g2[:, None], 1, work=g.size)


def route_2x2(pos: np.ndarray, dy: np.ndarray, g: np.ndarray) -> None:
    """Backward of :func:`.tiled_kernels.select_2x2` (positions 0-3 in a 2x2 window) on the
    same kernel as :func:`route_pairs`, each input row its own loop - interleaved stores
    that vectorise on AVX2 too.  pos, dy: (P, D, o1, o2); g: (P, D, H, W), any contents,
    every element written.  One kernel for both saves a compile of ~0.7 s CPU in a first
    2x2 max pool call (it had one of its own)."""
    p, d = g.shape[:2]
    g3 = g.reshape(p * d, g.shape[2], g.shape[3])
    pos3, dy3 = pos.reshape(p * d, *pos.shape[2:]), dy.reshape(p * d, *dy.shape[2:])
    parallel_for(_route_pairs, p * d, pos3, dy3, g3, 2, work=g.size)
