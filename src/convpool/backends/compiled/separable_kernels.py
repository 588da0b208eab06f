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

from .pool_layout import interior
from .threads import KERNEL_O2, parallel_for


@njit(**KERNEL_O2)
def _merge(vals, wins, base, best, where, sg):
    """One step of a pass: ``best[c]``, ``where[c]`` take ``vals[c]`` and position
    ``base + wins[c]`` where it beats them (max: sg 1, min: sg -1; ``sg*v > sg*b`` is
    exactly ``v > b`` or ``v < b``, with no branch for the compiler to unswitch)."""
    for c in range(best.shape[0]):
        v, b = vals[c], best[c]
        take = (sg * v > sg * b) | ((v != v) & (b == b))
        best[c] = v if take else b
        where[c] = base + wins[c] if take else where[c]


@njit(**KERNEL_O2)
def _row(xrow, t2, geo, zf2, zeros_i, best, where, ph, sg):
    """Pass 1 on one input row: ``best[c]``, ``where[c]`` = max over column c's taps."""
    c0, c1, s2, d2, lo2 = geo
    o2, k2 = t2.shape
    start, zero = -sg * xrow.dtype.type(np.inf), xrow.dtype.type(0.0)
    for c in range(o2):
        best[c] = start
        where[c] = zf2[c]
    n = c1 - c0
    if n > 0 and s2 == 2:  # the row's two phases, ph[r, i] = xrow[2*i + r]: every tap reads contiguously
        w = xrow.shape[0]
        for i in range(w // 2):
            ph[0, i] = xrow[2 * i]
            ph[1, i] = xrow[2 * i + 1]
        if w % 2:
            ph[0, w // 2] = xrow[w - 1]
    for m in range(k2 if n > 0 else 0):  # interior columns: one contiguous run per tap
        q = c0 * s2 + m * d2 - lo2  # the first interior column's tap m: >= 0
        if s2 == 1:
            xs = xrow[q : q + n]
        elif s2 == 2:
            xs = ph[q % 2, q // 2 : q // 2 + n]
        else:  # larger strides (few outputs per row): gathered first
            for c in range(n):
                ph[0, c] = xrow[q + s2 * c]
            xs = ph[0, :n]
        _merge(xs, zeros_i, m, best[c0:c1], where[c0:c1], sg)
    for e in range(o2 - n):  # border columns: through the table
        c = e if e < c0 else e + n
        for m in range(k2):
            sm = t2[c, m]
            if sm == -2:
                continue
            v, b = (zero if sm < 0 else xrow[sm]), best[c]
            take = (sg * v > sg * b) | ((v != v) & (b == b))
            best[c] = v if take else b
            where[c] = m if take else where[c]


@njit(**KERNEL_O2)
def _plane(xp, t1, t2, geo, zf2, zf3, zeros_v, zeros_i, r1, w1, ph, stamp, key, out, outw, sg):
    """Pass 2 on one (H, W) slice: ``out[b, c]``, ``outw[b, c]`` (position in the
    2-d window) = max over output row b's rows of pass 1; a zero row (-1) is 0 at its
    first real column."""
    o1, k1 = t1.shape
    o2, k2 = t2.shape
    start = -sg * xp.dtype.type(np.inf)
    for b in range(o1):
        for j in range(k1):
            r = t1[b, j]
            if r >= 0 and stamp[r] != key:
                _row(xp[r], t2, geo, zf2, zeros_i, r1[r], w1[r], ph, sg)
                stamp[r] = key
        for c in range(o2):
            out[b, c] = start
            outw[b, c] = zf3[b, c]
        for j in range(k1):
            r = t1[b, j]
            if r != -2:
                vals, wins = (zeros_v, zf2) if r == -1 else (r1[r], w1[r])
                _merge(vals, wins, j * k2, out[b], outw[b], sg)


@njit(**KERNEL_O2)
def _select(
    j0, j1, x, t0, t1, t2, geo, zf2, zf3, if0, y, pos, zeros_v, zeros_i, r1, w1, ph, stamp1, r2, w2, stamp2, wp, up
):
    """Planes ``j0 .. j1``: values into y, positions into pos (via ``wp``)."""
    depth = x.shape[1]
    o0, k0 = t0.shape
    o1, k1 = t1.shape
    o2, k2 = t2.shape
    sg = x.dtype.type(1.0 if up else -1.0)
    start = -sg * x.dtype.type(np.inf)
    for p in range(j0, j1):
        for a in range(o0):
            for i in range(k0):  # pass 2 on the input planes this output plane reads, each once
                d = t0[a, i]
                if d >= 0 and (k0 == 1 or stamp2[d] != p):
                    out, outw = (y[p, a], wp) if k0 == 1 else (r2[d], w2[d])  # 1-d, 2-d: the output
                    _plane(
                        x[p, d],
                        t1,
                        t2,
                        geo,
                        zf2,
                        zf3,
                        zeros_v,
                        zeros_i,
                        r1,
                        w1,
                        ph,
                        stamp1,
                        p * depth + d,
                        out,
                        outw,
                        sg,
                    )
                    stamp2[d] = p
            if k0 > 1 or t0[a, 0] < 0:  # pass 3 over pass 2's planes (or one zero plane)
                for b in range(o1):
                    for c in range(o2):
                        y[p, a, b, c] = start
                        wp[b, c] = if0[a] * k1 * k2 + zf3[b, c]
                for i in range(k0):
                    d = t0[a, i]
                    if d != -2:
                        for b in range(o1):
                            vals, wins = (zeros_v, zf3[b]) if d == -1 else (r2[d, b], w2[d, b])
                            _merge(vals, wins, i * k1 * k2, y[p, a, b], wp[b], sg)
            for b in range(o1):
                for c in range(o2):
                    pos[p, a, b, c] = wp[b, c]


def _first_real(t: np.ndarray) -> np.ndarray:
    """Per output, the first tap that is not identity padding (-2)."""
    return np.ascontiguousarray(np.argmax(t != -2, axis=1).astype(np.int32))


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
    k2 = t2.shape[1]
    zf2 = _first_real(t2)  # per output column, row, plane: the first tap that is not identity padding
    zf3 = np.ascontiguousarray((_first_real(t1)[:, None] * k2 + zf2[None, :]).astype(np.int32))
    _, depth, height, width = x.shape
    k0, (o1, _), (o2, _) = t0.shape[1], t1.shape, t2.shape
    tabs = (x, t0, t1, t2, geo, zf2, zf3, _first_real(t0), y, pos, np.zeros(o2, x.dtype), np.zeros(o2, np.int32))
    planes = depth if k0 > 1 else 1  # pass 2's planes kept for pass 3 (3-d windows)

    def run(j0: int, j1: int) -> None:  # each thread its own scratch
        rows = np.empty((height, o2), dtype=x.dtype), np.empty((height, o2), dtype=np.int32)
        ph = np.empty((2, -(-width // 2)) if s2 == 2 else (1, o2), dtype=x.dtype)  # the row's phases / gathered taps
        stamp1, stamp2 = np.full(height, -1, dtype=np.int64), np.full(depth, -1, dtype=np.int64)
        r2, w2 = np.empty((planes, o1, o2), dtype=x.dtype), np.empty((planes, o1, o2), dtype=np.int32)
        wp = np.empty((o1, o2), dtype=np.int32)
        _select(j0, j1, *tabs, *rows, ph, stamp1, r2, w2, stamp2, wp, sign > 0)

    work = x.size * t2.shape[1] + y.size * t1.shape[1] * t0.shape[1]
    parallel_for(run, x.shape[0], work=work)
