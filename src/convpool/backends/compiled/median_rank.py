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

Padding is resolved before the kernel, so that its gather is a plain read through the
tables: where a table has zero padding (-1) or skipped entries (-2), the input is copied
with a slot of zeros and a slot of NaN at the end of that dimension and the table points
there (:func:`_with_slots`).  A NaN compares false, so a skipped entry adds nothing to any
rank and is never the chosen one; each window's count of elements comes from the tables
(the product of one count per dimension).  Tables without either (no padding, or
replicate / reflect / circular padding) read the input in place.

Results are those of the insertion sort exactly: the same value and flat index, ties in
scan order, a zero-padding element a 0 with index -1, skipped entries not counted, and a
window holding NaN gives its first NaN in scan order."""

from __future__ import annotations

import numpy as np
from numba import njit

from .threads import KERNEL_O2, parallel_for

BLOCK = 64  # outputs per block: the (K, BLOCK) scratch of a 5x5 window is 6.4 KiB of float32


@njit(**KERNEL_O2)
def _median_rank(j0, j1, x, t0, t1, t2, counts, n0, n1, n2, y, idx, vals, rank, half, chosen, first_nan):
    block = vals.shape[1]  # BLOCK, read at run time: a constant trip count unrolled every loop (compile 2x)
    o0, k0 = t0.shape
    o1, k1 = t1.shape
    o2, k2 = t2.shape
    kk = k0 * k1 * k2
    for job in range(j0, j1):  # one output row (plane p, a, b)
        b = job % o1
        a = job // o1 % o0
        p = job // (o1 * o0)
        yr, ir = y[p, a, b], idx[p, a, b]
        count_ab = counts[a] * counts[o0 + b]
        for c0 in range(0, o2, block):
            w = o2 - c0 if o2 - c0 < block else block  # not min(): no helper to compile
            for c in range(w):
                half[c] = (count_ab * counts[o0 + o1 + c0 + c] - 1) // 2
                first_nan[c] = kk
            # gather the windows, element e of output c0 + c at [e, c] (the spare columns
            # of a partial block keep what they held: ranked, never written out), and find
            # each window's first NaN of the input on the way
            e = 0
            for i in range(k0):
                si = t0[a, i]
                for j in range(k1):
                    sj = t1[b, j]
                    xr = x[p, si, sj]
                    row_in = (si < n0) & (sj < n1)  # not a padding slot
                    for m in range(k2):
                        ve = vals[e]
                        for c in range(w):
                            sm = t2[c0 + c, m]
                            v = xr[sm]
                            ve[c] = v
                            first_nan[c] = e if (v != v) & row_in & (sm < n2) & (first_nan[c] == kk) else first_nan[c]
                        e += 1
            for i in range(kk):
                vi = vals[i]
                for c in range(block):
                    rank[c] = 0
                for j in range(kk):  # smaller, or equal and before i in scan order
                    vj = vals[j]
                    before = j < i
                    for c in range(block):  # the hot loop: compare, add over the block
                        rank[c] += np.int32((vj[c] < vi[c]) | (before & (vj[c] == vi[c])))
                for c in range(block):  # a NaN (skipped entry) is never the median
                    chosen[c] = i if (rank[c] == half[c]) & (vi[c] == vi[c]) else chosen[c]
            for c in range(w):  # the value, and its flat index from the tables
                e = first_nan[c] if first_nan[c] < kk else chosen[c]
                yr[c0 + c] = vals[e, c]
                si, sj, sm = t0[a, e // (k1 * k2)], t1[b, e // k2 % k1], t2[c0 + c, e % k2]
                ir[c0 + c] = (si * n1 + sj) * n2 + sm if si < n0 and sj < n1 and sm < n2 else -1


def _with_slots(x: np.ndarray, tables: tuple[np.ndarray, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
    """``x`` (P, D, H, W) and the tables with padding resolved: along each dimension whose
    table has zero padding (-1) or skipped entries (-2), a copy of ``x`` with a slot of
    zeros and a slot of NaN after the input's end, and the table pointing there.  A NaN
    slot wins over a zero one where they cross (a skipped entry is not an element).
    Tables with neither: ``x`` itself and the same tables."""
    zero = [bool((t == -1).any()) for t in tables]
    skip = [bool((t == -2).any()) for t in tables]
    if not any(zero) and not any(skip):
        return x, list(tables)
    sizes = x.shape[1:]
    padded = np.zeros((x.shape[0],) + tuple(n + z + s for n, z, s in zip(sizes, zero, skip)), dtype=x.dtype)
    padded[:, : sizes[0], : sizes[1], : sizes[2]] = x
    out = []
    for axis, (t, n, z, s) in enumerate(zip(tables, sizes, zero, skip)):
        if s:
            slot = [slice(None)] * 4
            slot[axis + 1] = slice(n + z, n + z + 1)
            padded[tuple(slot)] = np.nan
        out.append(np.where(t == -1, n, np.where(t == -2, n + z, t)) if z or s else t)
    return padded, out


def median_forward(
    x: np.ndarray, t0: np.ndarray, t1: np.ndarray, t2: np.ndarray, y: np.ndarray, idx: np.ndarray
) -> None:
    """Lower median of every window of ``x`` (P, D, H, W) through the index tables and its
    flat input index, into ``y`` and ``idx`` (P, o0, o1, o2): the insertion sort's results
    (:func:`.pool_kernels.median_forward`), by stable ranks (module docstring)."""
    tables = (t0, t1, t2)
    kk = t0.shape[1] * t1.shape[1] * t2.shape[1]
    rows = x.shape[0] * t0.shape[0] * t1.shape[0]
    # each window's elements along each dimension: o0 + o1 + o2 counts, multiplied in the kernel
    counts = np.concatenate([(t != -2).sum(axis=1) for t in tables]).astype(np.int32)
    src, (s0, s1, s2) = _with_slots(x, tables)
    n0, n1, n2 = x.shape[1:]

    def run(j0: int, j1: int) -> None:  # each thread its own scratch, four arrays: as rows of one
        # array passed whole, the kernel ran 1.3x slower (106 against 80 ms, 16x32x56x56 3x3)
        vals = np.empty((kk, BLOCK), dtype=x.dtype)
        rank, half, chosen, first_nan = np.empty((4, BLOCK), dtype=np.int32)
        _median_rank(j0, j1, src, s0, s1, s2, counts, n0, n1, n2, y, idx, vals, rank, half, chosen, first_nan)

    parallel_for(run, rows, work=y.size * kk * kk)
