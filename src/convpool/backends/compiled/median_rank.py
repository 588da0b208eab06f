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

from .threads import KERNEL_O2, parallel_for

BLOCK = 64  # outputs per block: the (K, BLOCK) scratch of a 5x5 window is 6.4 KiB of float32


@njit(**KERNEL_O2)
def _median_rank(j0, j1, x, t0, t1, t2, y, idx, vals, ok, rank, count, half, chosen, first_nan):
    n1, n2 = x.shape[2], x.shape[3]
    block = vals.shape[1]  # BLOCK, read at run time: a constant trip count unrolled every loop (compile 2x)
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
        for c0 in range(0, o2, block):
            w = o2 - c0 if o2 - c0 < block else block  # not min()/max(): no helpers to compile
            for c in range(block):
                count[c] = 0
                first_nan[c] = kk
            # gather the windows, element e of output c0 + c at [e, c], whole blocks (the
            # spare columns of a partial block not counted) and branch-free: selects, not
            # ifs; count each window's elements and find its first NaN on the way
            e = 0
            for i in range(k0):
                si = t0[a, i]
                for j in range(k1):
                    sj = t1[b, j]
                    row_skip = (si == -2) | (sj == -2)  # identity padding: not an element
                    row_in = (si >= 0) & (sj >= 0)  # else zero padding: a 0
                    xr = x[p, si if si > 0 else 0, sj if sj > 0 else 0]
                    for m in range(k2):
                        ve, oke = vals[e], ok[e]
                        for c in range(block):
                            sm = t2[c0 + c if c0 + c < o2 else o2 - 1, m]
                            v = xr[sm if sm > 0 else 0]
                            real = row_in & (sm >= 0)
                            okv = (c < w) & ~row_skip & (sm != -2)
                            ve[c] = v if real else zero
                            oke[c] = okv
                            count[c] += okv
                            first_nan[c] = e if okv & real & (v != v) & (first_nan[c] == kk) else first_nan[c]
                        e += 1
            for c in range(block):
                half[c] = (count[c] - 1) // 2
            for i in range(kk):
                vi, oki = vals[i], ok[i]
                for c in range(block):
                    rank[c] = 0
                for j in range(kk):  # smaller, or equal and before i in scan order
                    vj, okj = vals[j], ok[j]
                    before = j < i
                    for c in range(block):  # the hot loop: compare, mask, add over the block
                        rank[c] += okj[c] & np.int32((vj[c] < vi[c]) | (before & (vj[c] == vi[c])))
                for c in range(block):
                    chosen[c] = i if (oki[c] != 0) & (rank[c] == half[c]) else chosen[c]
            for c in range(w):  # the value, and its flat index from the tables
                e = first_nan[c] if first_nan[c] < kk else chosen[c]
                yr[c0 + c] = vals[e, c]
                si, sj, sm = t0[a, e // (k1 * k2)], t1[b, e // k2 % k1], t2[c0 + c, e % k2]
                ir[c0 + c] = (si * n1 + sj) * n2 + sm if si >= 0 and sj >= 0 and sm >= 0 else -1


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
        ok = np.empty((kk, BLOCK), dtype=np.int32)
        rank, count, half, chosen, first_nan = np.empty((5, BLOCK), dtype=np.int32)
        _median_rank(j0, j1, x, t0, t1, t2, y, idx, vals, ok, rank, count, half, chosen, first_nan)

    parallel_for(run, rows, work=y.size * kk * kk)
