"""Compiled kernels of the separable max/min pool (numba): the window's maximum as the
maximum over its rows of each row's maximum, with the winner's position in the window.
Import only when numba is available.

Why it is exact.  The winner is the FIRST maximum in scan order (row-major over the
kernel), NaN winning (the first NaN).  Element ``(j, m)`` comes before ``(j', m')`` when
``j < j'``, or ``j == j'`` and ``m < m'``; so the first maximum lies in the first row
whose own maximum is the window's, at that row's first maximum.  A row's "value" is its
first NaN if it holds one, so the first row holding a NaN wins and, in it, its first
NaN: the window's first NaN.  Each pass keeps a value and a position per output and
takes a new element when::

    take = (v > best) | (isnan(v) & ~isnan(best))      # max; min: v < best

strictly greater (ties keep the earlier element), a NaN once (then nothing replaces
it).  A pass starts from the identity (-inf for max, +inf for min) at the position of
the first element that is not identity padding, so a window whose real elements are
all -inf picks its first real element, as the index-tables kernels do.

Passes, over the index tables of :func:`convpool.backends.compiled.runtime.index_table`
(``>= 0`` an input index, -1 a zero of 'zeros' padding, -2 identity padding, never
selected):

1. along the last dimension: for an input row and every output column, the row maximum
   over the column's taps and its tap (``_row``).  Interior columns (every tap inside
   the input) read the row directly, with the stride a constant of the loop so it
   vectorises; border columns go through the table.
2. along the next dimension, for an output row: over the taps' rows of pass 1
   (``_plane``), each pass-1 row computed when first needed (a stamp per row), so it is
   still in cache; a zero row (-1) is 0 at its first real column.
3. along depth (3-d windows only): the same over pass 2's planes.

The inner loops run over the output columns with the tap fixed, so the selects
vectorise.  Every kernel is a serial loop over planes, ``_select(j0, j1, ...)``,
released from the GIL; :func:`select_separable` runs it on the kernel threads
(:func:`convpool.backends.compiled.threads.parallel_for`), each thread with its own
scratch rows.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .threads import KERNEL, parallel_for


@njit(**KERNEL)
def _row(xrow, t2, geo, zf2, best, where, ph, up):
    """Pass 1 on one input row: ``best[c]``, ``where[c]`` = max over column c's taps."""
    c0, c1, s2, d2, lo2 = geo
    o2, k2 = t2.shape
    start = xrow.dtype.type(-np.inf if up else np.inf)
    zero = xrow.dtype.type(0.0)
    for c in range(o2):
        best[c] = start
        where[c] = zf2[c]
    bs, ws, n = best[c0:c1], where[c0:c1], c1 - c0  # interior columns: slices from 0
    if s2 == 2 and n > 0:  # the row's two phases, ph[r, i] = xrow[2*i + r]: every tap reads contiguously
        w = xrow.shape[0]
        for i in range(w // 2):
            ph[0, i] = xrow[2 * i]
            ph[1, i] = xrow[2 * i + 1]
        if w % 2:
            ph[0, w // 2] = xrow[w - 1]
    for m in range(k2):
        q = c0 * s2 + m * d2 - lo2  # the first interior column's tap m: >= 0
        if s2 <= 2:
            xs = xrow[q:] if s2 == 1 else ph[q % 2, q // 2 :]
            for c in range(n):  # no negative-index checks, the stride 1: this loop vectorises
                v, b = xs[c], bs[c]
                take = ((v > b) if up else (v < b)) | ((v != v) & (b == b))
                bs[c] = v if take else b
                ws[c] = m if take else ws[c]
        else:  # larger strides: few outputs per row, read in place
            xs = xrow[q:]
            for c in range(n):
                v, b = xs[s2 * c], bs[c]
                take = ((v > b) if up else (v < b)) | ((v != v) & (b == b))
                bs[c] = v if take else b
                ws[c] = m if take else ws[c]
    for q in range(o2 - (c1 - c0)):  # border columns: through the table
        c = q if q < c0 else q + c1 - c0
        for m in range(k2):
            sm = t2[c, m]
            if sm == -2:
                continue
            v, b = (zero if sm < 0 else xrow[sm]), best[c]
            take = ((v > b) if up else (v < b)) | ((v != v) & (b == b))
            best[c] = v if take else b
            where[c] = m if take else where[c]


@njit(**KERNEL)
def _plane(xp, t1, t2, geo, zf2, jf1, r1, w1, ph, stamp, key, out, outw, up):
    """Pass 2 on one (H, W) slice: ``out[b, c]``, ``outw[b, c]`` (position in the
    2-d window) = max over output row b's rows of pass 1."""
    o1, k1 = t1.shape
    o2, k2 = t2.shape
    start = xp.dtype.type(-np.inf if up else np.inf)
    zero = xp.dtype.type(0.0)
    for b in range(o1):
        for j in range(k1):
            r = t1[b, j]
            if r >= 0 and stamp[r] != key:
                _row(xp[r], t2, geo, zf2, r1[r], w1[r], ph, up)
                stamp[r] = key
        ob, ow = out[b], outw[b]
        first = jf1[b] * k2
        for c in range(o2):
            ob[c] = start
            ow[c] = first + zf2[c]
        for j in range(k1):
            r = t1[b, j]
            base = j * k2
            if r == -2:
                continue
            if r == -1:  # a zero row: 0 at its first real column (never NaN)
                for c in range(o2):
                    b_ = ob[c]
                    take = (zero > b_) if up else (zero < b_)
                    ob[c] = zero if take else b_
                    ow[c] = base + zf2[c] if take else ow[c]
                continue
            rv, rw = r1[r], w1[r]
            for c in range(o2):
                v, b_ = rv[c], ob[c]
                take = ((v > b_) if up else (v < b_)) | ((v != v) & (b_ == b_))
                ob[c] = v if take else b_
                ow[c] = base + rw[c] if take else ow[c]


@njit(**KERNEL)
def _select(j0, j1, x, t0, t1, t2, geo, zf2, jf1, if0, y, pos, r1, w1, ph, stamp1, r2, w2, stamp2, wp, up):
    """Planes ``j0 .. j1``: values into y, positions into pos (via ``wp``)."""
    depth = x.shape[1]
    o0, k0 = t0.shape
    o1, k1 = t1.shape
    o2, k2 = t2.shape
    kk = k1 * k2
    start = x.dtype.type(-np.inf if up else np.inf)
    zero = x.dtype.type(0.0)
    for p in range(j0, j1):
        for a in range(o0):
            if k0 == 1:  # 1-d and 2-d windows: pass 2 writes the output
                d = t0[a, 0]
                if d >= 0:
                    _plane(x[p, d], t1, t2, geo, zf2, jf1, r1, w1, ph, stamp1, p * depth + d, y[p, a], wp, up)
                else:  # a zero plane ('zeros' padding in depth)
                    for b in range(o1):
                        for c in range(o2):
                            y[p, a, b, c] = zero
                            wp[b, c] = jf1[b] * k2 + zf2[c]
            else:  # pass 3 over pass 2's planes, each computed once per input plane
                for i in range(k0):
                    d = t0[a, i]
                    if d >= 0 and stamp2[d] != p:
                        _plane(x[p, d], t1, t2, geo, zf2, jf1, r1, w1, ph, stamp1, p * depth + d, r2[d], w2[d], up)
                        stamp2[d] = p
                ya = y[p, a]
                for b in range(o1):
                    first = if0[a] * kk + jf1[b] * k2
                    for c in range(o2):
                        ya[b, c] = start
                        wp[b, c] = first + zf2[c]
                for i in range(k0):
                    d = t0[a, i]
                    base = i * kk
                    if d == -2:
                        continue
                    for b in range(o1):
                        yb, wb = ya[b], wp[b]
                        if d == -1:
                            for c in range(o2):
                                b_ = yb[c]
                                take = (zero > b_) if up else (zero < b_)
                                yb[c] = zero if take else b_
                                wb[c] = base + jf1[b] * k2 + zf2[c] if take else wb[c]
                            continue
                        rv, rw = r2[d, b], w2[d, b]
                        for c in range(o2):
                            v, b_ = rv[c], yb[c]
                            take = ((v > b_) if up else (v < b_)) | ((v != v) & (b_ == b_))
                            yb[c] = v if take else b_
                            wb[c] = base + rw[c] if take else wb[c]
            for b in range(o1):
                for c in range(o2):
                    pos[p, a, b, c] = wp[b, c]


def _first_real(t: np.ndarray) -> np.ndarray:
    """Per output, the first tap that is not identity padding (-2)."""
    return np.ascontiguousarray(np.argmax(t != -2, axis=1).astype(np.int32))


def interior(t2: np.ndarray, s2: int, d2: int, lo2: int) -> tuple[int, int]:
    """The output columns ``[c0, c1)`` whose taps all read the input at
    ``c*s2 + m*d2 - lo2`` (a contiguous range; ``(0, 0)`` if none)."""
    o2, k2 = t2.shape
    direct = np.arange(o2)[:, None] * s2 + np.arange(k2)[None, :] * d2 - lo2
    inside = np.flatnonzero(np.all((t2 == direct) & (t2 >= 0), axis=1))
    if inside.size == 0:
        return 0, 0
    c0, c1 = int(inside[0]), int(inside[-1]) + 1
    assert c1 - c0 == inside.size, "interior columns are contiguous"
    return c0, c1


def select_separable(
    x: np.ndarray,
    t0: np.ndarray,
    t1: np.ndarray,
    t2: np.ndarray,
    last: tuple[int, int, int],
    sign: float,
    y: np.ndarray,
    pos: np.ndarray,
) -> None:
    """Max (sign 1) or min (sign -1) of every window and the winner's position in its
    window (scan order, ``(i*k1 + j)*k2 + m``), exactly as :func:`.pool_kernels.select_max`
    with :func:`.pool_kernels.find_selected`.  x: (P, D, H, W); t0, t1, t2: index tables;
    last: the last dimension's stride, dilation and low padding; y, pos: (P, o0, o1, o2)."""
    s2, d2, lo2 = last
    geo = (*interior(t2, s2, d2, lo2), s2, d2, lo2)
    tabs = (x, t0, t1, t2, geo, _first_real(t2), _first_real(t1), _first_real(t0))
    _, depth, height, width = x.shape
    k0, (o1, _), (o2, _) = t0.shape[1], t1.shape, t2.shape
    planes = depth if k0 > 1 else 1  # pass 2's planes kept for pass 3 (3-d windows)

    def run(j0: int, j1: int) -> None:  # each thread its own scratch
        rows = np.empty((height, o2), dtype=x.dtype), np.empty((height, o2), dtype=np.int32)
        ph = np.empty((2, -(-width // 2)) if s2 == 2 else (1, 1), dtype=x.dtype)  # stride 2: the row's phases
        stamp1, stamp2 = np.full(height, -1, dtype=np.int64), np.full(planes, -1, dtype=np.int64)
        r2, w2 = np.empty((planes, o1, o2), dtype=x.dtype), np.empty((planes, o1, o2), dtype=np.int32)
        wp = np.empty((o1, o2), dtype=np.int32)
        _select(j0, j1, *tabs, y, pos, *rows, ph, stamp1, r2, w2, stamp2, wp, sign > 0)

    work = x.size * t2.shape[1] + y.size * t1.shape[1] * t0.shape[1]
    parallel_for(run, x.shape[0], work=work)
