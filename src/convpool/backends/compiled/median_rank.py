"""The median pool's forward by stable ranks, a block of outputs at a time.

The lower median of a window is the element that a stable sort puts at position
``(count - 1) // 2``: the element whose *stable rank* - how many window elements are
smaller, plus how many equal ones come before it in scan order - is that number.  For a
block of up to :data:`BLOCK` consecutive outputs of a row, the window's elements are
gathered into a (K, BLOCK) scratch (one row per window element), and each element's rank
is counted against every other with comparisons over the block: K^2 compare-and-add
passes that the compiler runs on vectors (for a 3x3 window 81 passes of 64 lanes), where
the insertion sort per window (:func:`.pool_kernels.median_forward`) runs K^2/4
data-dependent scalar moves.

Everything that does not depend on the input's values is worked out before the kernel,
in NumPy, once per call (the kernel's compile time goes with its operation count, about
5 ms of numba's front end per operation):

* padding: where a table has zero padding (-1) or skipped entries (-2), the input is
  copied with a slot of zeros and a slot of NaN at the end of that dimension and the
  table points there (:func:`_with_slots`).  A NaN compares false, so a skipped entry adds
  nothing to any rank and is never the chosen one;
* the gather's offsets: the first two dimensions' tables folded into one table of row
  offsets per output row, the last dimension's table as it is;
* each output's rank to choose, ``(count - 1) // 2``, from the per-dimension counts of
  window elements;
* the chosen element's flat input index: a row part and a column part that add up to it,
  or to a negative number for a padding element (index -1).

An input holding NaN goes to the insertion sort instead: there the result is a window's
first NaN in scan order, which the ranks (a NaN adds to no rank) cannot see.  So the
rank kernel compiles without any NaN bookkeeping (0.2 s less of its first call), and an
input with NaN pays the sort's compilation on its first call and runs at the sort's speed.

Results are those of the insertion sort exactly: the same value and flat index, ties in
scan order, a zero-padding element a 0 with index -1, skipped entries not counted."""

from __future__ import annotations

import numpy as np
from numba import njit

from .pool_kernels import median_forward as sort_forward
from .threads import KERNEL_O2, parallel_for

BLOCK = 64  # outputs per block: the (K, BLOCK) scratch of a 5x5 window is 6.4 KiB of float32


@njit(**KERNEL_O2)
def _median_rank(j0, j1, x, rows, cols, half, irow, icol, k01, k2, o01, o2, plane, y, idx, vals, rank, chosen):
    block = rank.shape[0]  # BLOCK, read at run time: a constant trip count unrolled every loop (compile 2x)
    kk = k01 * k2
    for job in range(j0, j1):  # one output row: plane job // o01, row r of the plane's outputs
        r = job % o01
        pbase = job // o01 * plane
        for c0 in range(0, o2, block):
            w = o2 - c0 if o2 - c0 < block else block  # not min(): no helper to compile
            # gather the windows, element e of output c0 + c at vals[e * block + c] (the
            # spare columns of a partial block keep what they held: ranked, never chosen)
            e = 0
            for ij in range(k01):
                base = pbase + rows[r * k01 + ij]
                for m in range(k2):
                    for c in range(w):
                        vals[e * block + c] = x[base + cols[(c0 + c) * k2 + m]]
                    e += 1
            hrow = r * o2 + c0
            for i in range(kk):
                oi = i * block
                for c in range(block):
                    rank[c] = 0
                for j in range(kk):  # smaller, or equal and before i in scan order
                    oj = j * block
                    before = j < i
                    for c in range(block):  # the hot loop: compare, add over the block
                        rank[c] += (vals[oj + c] < vals[oi + c]) | (before & (vals[oj + c] == vals[oi + c]))
                for c in range(w):  # a NaN (skipped entry) is never the median
                    chosen[c] = i if (rank[c] == half[hrow + c]) & (vals[oi + c] == vals[oi + c]) else chosen[c]
            out = job * o2 + c0
            for c in range(w):  # the value, and its flat input index (negative: padding)
                e = chosen[c]
                f = irow[r * k01 + e // k2] + icol[(c0 + c) * k2 + e % k2]
                y[out + c] = vals[e * block + c]
                idx[out + c] = f if f >= 0 else -1


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


PADDING = -(1 << 40)  # a row or column part of a padding element: any sum with it is negative


def median_forward(
    x: np.ndarray, t0: np.ndarray, t1: np.ndarray, t2: np.ndarray, y: np.ndarray, idx: np.ndarray
) -> None:
    """Lower median of every window of ``x`` (P, D, H, W) through the index tables and its
    flat input index, into ``y`` and ``idx`` (P, o0, o1, o2), both C-contiguous: the
    insertion sort's results (:func:`.pool_kernels.median_forward`), by stable ranks
    (module docstring); an input with NaN goes to the sort."""
    if not (y.flags.c_contiguous and idx.flags.c_contiguous):
        raise ValueError("median_forward: y and idx must be C-contiguous (the kernel writes them flat)")
    if x.size and np.isnan(x.min()):  # min() propagates NaN, and builds no mask the size of x
        sort_forward(x, t0, t1, t2, y, idx)
        return
    # int64 whatever the caller's tables: PADDING must not wrap around in an int32 sum
    t0, t1, t2 = tables = tuple(np.asarray(t, dtype=np.int64) for t in (t0, t1, t2))
    (o0, k0), (o1, k1), (o2, k2) = t0.shape, t1.shape, t2.shape
    n0, n1, n2 = x.shape[1:]
    # each output's rank to choose: (elements in its window - 1) // 2, the same for every plane
    n_a, n_b, n_c = ((t != -2).sum(axis=1) for t in tables)
    half = ((n_a[:, None, None] * n_b[None, :, None] * n_c[None, None, :] - 1) // 2).astype(np.int32).ravel()
    src, (s0, s1, s2) = _with_slots(x, tables)
    m0, m1, m2 = src.shape[1:]
    # the gather: per output row (a, b), the offset in the (padded) plane of each (i, j) row
    rows = ((s0[:, None, :, None] * m1 + s1[None, :, None, :]) * m2).ravel()
    cols = np.ascontiguousarray(s2).ravel()
    # the flat input index of element (i, j, m) of output (a, b, c): irow[a, b, i, j] + icol[c, m]
    real = (t0 >= 0)[:, None, :, None] & (t1 >= 0)[None, :, None, :]
    irow = np.where(real, (t0[:, None, :, None] * n1 + t1[None, :, None, :]) * n2, PADDING).ravel()
    icol = np.where(t2 >= 0, t2, PADDING).ravel()
    flat = np.ascontiguousarray(src).ravel()
    y_flat, idx_flat = y.reshape(-1), idx.reshape(-1)
    kk = k0 * k1 * k2

    def run(j0: int, j1: int) -> None:  # each thread its own scratch
        vals = np.empty(kk * BLOCK, dtype=x.dtype)
        rank, chosen = np.zeros((2, BLOCK), dtype=np.int32)  # chosen: an element number before any is set
        _median_rank(
            j0, j1, flat, rows, cols, half, irow, icol, k0 * k1, k2, o0 * o1, o2, m0 * m1 * m2,
            y_flat, idx_flat, vals, rank, chosen,
        )  # fmt: skip

    parallel_for(run, x.shape[0] * o0 * o1, work=y.size * kk * kk)
