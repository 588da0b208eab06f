"""The median pool's forward by stable ranks, a block of outputs at a time.

The lower median of a window is the element that a stable sort puts at position
``(count - 1) // 2``: the element whose *stable rank* - how many window elements are
smaller, plus how many equal ones come before it in scan order - is that number.  For a
block of up to :data:`BLOCK` consecutive outputs of a row, the window's elements are
gathered into a (K, BLOCK) scratch (one row per window element, through the index
tables), and each element's rank is counted against every other with comparisons over
the block: K^2 compare-and-add passes that the compiler runs on vectors (for a 3x3
window 81 passes of 64 lanes), where the insertion sort per window (the previous
kernel, :func:`.pool_kernels.median_forward`) ran K^2/4 data-dependent scalar moves.

Results are those of the insertion sort exactly: the same value and flat index, ties in
scan order, a zero-padding element (table entry -1) a 0 with index -1, skipped entries
(-2) not counted, and a window holding NaN gives its first NaN in scan order."""

from __future__ import annotations

import numpy as np
from numba import njit

from .threads import KERNEL, parallel_for

BLOCK = 64  # outputs per block: the (K, BLOCK) scratch of a 5x5 window is 6.4 KiB of float32


@njit(**KERNEL)
def _median_rank(j0, j1, x, t0, t1, t2, y, idx, vals, flat, ok, rank, count, half, chosen, first_nan):
    n1, n2 = x.shape[2], x.shape[3]
    o0, k0 = t0.shape
    o1, k1 = t1.shape
    o2, k2 = t2.shape
    kk = k0 * k1 * k2
    zero = x.dtype.type(0.0)
    for job in range(j0, j1):  # one output row (plane p, a, b)
        b = job % o1
        a = job // o1 % o0
        p = job // (o1 * o0)
        yr, ir = y[p, a, b], idx[p, a, b]
        for c0 in range(0, o2, BLOCK):
            w = min(BLOCK, o2 - c0)
            e = 0  # gather the windows: element e of output c0 + c at [e, c]
            for i in range(k0):
                si = t0[a, i]
                for j in range(k1):
                    sj = t1[b, j]
                    for m in range(k2):
                        ve, fe, oke, tm = vals[e], flat[e], ok[e], t2[c0 : c0 + w, m]
                        if si == -2 or sj == -2:
                            for c in range(w):
                                ve[c], fe[c], oke[c] = zero, -2, 0
                        elif si < 0 or sj < 0:
                            for c in range(w):
                                ve[c], fe[c], oke[c] = zero, -2 if tm[c] == -2 else -1, tm[c] != -2
                        else:  # branch-free: read a clamped index, then choose
                            xr, base = x[p, si, sj], (si * n1 + sj) * n2
                            for c in range(w):
                                sm = tm[c]
                                v = xr[max(sm, 0)]
                                ve[c] = v if sm >= 0 else zero
                                fe[c] = base + sm if sm >= 0 else sm
                                oke[c] = sm != -2
                        for c in range(w, BLOCK):  # a partial block's spare columns: inert
                            ve[c], fe[c], oke[c] = zero, -2, 0
                        e += 1
            # whole blocks from here on (a constant trip count: no remainder loops), and
            # branch-free: selects, not ifs (which element is the median is data)
            for c in range(BLOCK):
                count[c] = 0
                first_nan[c] = kk
            for e in range(kk - 1, -1, -1):  # backwards: the first NaN in scan order wins
                ve, oke = vals[e], ok[e]
                for c in range(BLOCK):
                    count[c] += oke[c]
                    first_nan[c] = e if ve[c] != ve[c] else first_nan[c]  # (a pad or skip is 0)
            for c in range(BLOCK):
                half[c] = (count[c] - 1) // 2
            for i in range(kk):
                vi, oki = vals[i], ok[i]
                for c in range(BLOCK):
                    rank[c] = 0
                for j in range(i):  # before i in scan order: smaller or equal
                    vj, okj = vals[j], ok[j]
                    for c in range(BLOCK):  # the hot loops: compare, mask, add over the block
                        rank[c] += okj[c] & np.int32(vj[c] <= vi[c])
                for j in range(i + 1, kk):  # after i: smaller
                    vj, okj = vals[j], ok[j]
                    for c in range(BLOCK):
                        rank[c] += okj[c] & np.int32(vj[c] < vi[c])
                for c in range(BLOCK):
                    chosen[c] = i if (oki[c] != 0) & (rank[c] == half[c]) else chosen[c]
            for c in range(w):
                e = first_nan[c] if first_nan[c] < kk else chosen[c]
                yr[c0 + c] = vals[e, c]
                ir[c0 + c] = flat[e, c]


def median_forward(
    x: np.ndarray, t0: np.ndarray, t1: np.ndarray, t2: np.ndarray, y: np.ndarray, idx: np.ndarray
) -> None:
    """Lower median of every window of ``x`` (P, D, H, W) through the index tables and its
    flat input index, into ``y`` and ``idx`` (P, o0, o1, o2): the insertion sort's results
    (:func:`.pool_kernels.median_forward`), by stable ranks (module docstring)."""
    kk = t0.shape[1] * t1.shape[1] * t2.shape[1]
    rows = x.shape[0] * t0.shape[0] * t1.shape[0]

    def run(j0: int, j1: int) -> None:  # each thread its own scratch
        vals = np.empty((kk, BLOCK), dtype=x.dtype)
        flat = np.empty((kk, BLOCK), dtype=np.int64)
        ok = np.empty((kk, BLOCK), dtype=np.int32)
        rank, count, half, chosen, first_nan = np.empty((5, BLOCK), dtype=np.int32)
        _median_rank(j0, j1, x, t0, t1, t2, y, idx, vals, flat, ok, rank, count, half, chosen, first_nan)

    parallel_for(run, rows, work=y.size * kk * kk)
