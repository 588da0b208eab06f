"""The backward of the compiled max/min pools (numba): each output's gradient added to
its window's winner, from the winner's position in its window (scan order,
``(i*k1 + j)*k2 + m``) and the index tables.  Import only when numba is available.

Sums round as PyTorch's: its backward zeroes the input gradient and adds each
output's gradient in output order, so an input element that wins several windows
gets ``0 + dy[first] + dy[second] + ...``; both kernels here add in that order.

* ``_gather`` (windows of up to 8 elements, output rows of 16+, no border mode):
  vectorised along the output row.  For each window position e (last to first, so
  that an element's additions come in output order), every column's gradient where e
  won, 0 elsewhere, added at the column's tap: tap ``m`` of column ``c`` reads input
  column ``s2*(c + sh) + ph`` (``sh, ph = divmod(m*d2 - lo2, s2)``), so with each input
  row held as its ``s2`` phases (a plane-sized scratch, with room before and after
  for the taps in the padding, whose gradient is dropped) every pass is one
  contiguous run.  The phases are then interleaved into the gradient.  It needs the
  rows of a window to be distinct (else an element's additions from one window row
  would come before an earlier column's from another): border modes can repeat a row.
* ``_scatter`` (the rest): one addition per output, at its winner's offset: its
  window row's offset plus ``c*s2 + m*d2 - lo2`` on interior columns (every tap
  inside the row), through the last dimension's table on the border columns.

Measured (Intel Xeon, AVX-512, llvm rocketlake; one thread, CPU time, convpool /
PyTorch, gather vs scatter): max_pool1d on 256x64x256 k3 s2 p1 0.49-0.62 vs
0.78-0.86, k5 s2 p2 0.74 vs 1.09, k4 s1 p1 0.64 vs 1.00; max_pool2d on 64x64x56x56
2x2 s1 0.76 vs 0.79; 3x3 s2 p1 on 32x64x112x112 0.58 vs 0.48 and 3x3 s1 p1 on
64x64x56x56 0.86 vs 0.79 (9 passes over rows of 56: the scatter wins).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .threads import KERNEL_O2, parallel_for

GATHER_MAX_TAPS = 8  # larger windows: a pass per window position costs more than the scatter (3x3: measured)
GATHER_MIN_ROW = 16  # shorter output rows: too short to vectorise


@njit(**KERNEL_O2)
def _scatter(j0, j1, pos, rowbs, tabs, t2, geo, em, dy, g):
    """Planes ``j0 .. j1``: one addition per output.  g: (P, D*H*W) flat planes;
    for output row (a, b) and window position e: ``rowbs[a*o1 + b, e]`` its row's
    offset in the plane (negative: a padding row), ``tabs[a*o1 + b, e]`` the input
    offset of interior column 0's tap (interior column c's: ``+ c*s2``)."""
    c0, c1, s2 = geo
    o0, o1, o2 = pos.shape[1], pos.shape[2], pos.shape[3]
    zero = g.dtype.type(0.0)
    for p in range(j0, j1):
        gp = g[p]
        for q in range(gp.shape[0]):
            gp[q] = zero
        for a in range(o0):
            for b in range(o1):
                dyr, pr, rowb, tab = dy[p, a, b], pos[p, a, b], rowbs[a * o1 + b], tabs[a * o1 + b]
                for c in range(o2):
                    e = pr[c]
                    if c0 <= c < c1:  # an interior column: its tap's offset from the table
                        off = tab[e] + c * s2
                    else:  # a border column: through the last dimension's table
                        col = t2[c, em[e]]
                        off = rowb[e] + col if rowb[e] >= 0 and col >= 0 else -1
                    if off >= 0:
                        gp[off] += dyr[c]


@njit(**KERNEL_O2)
def _interleave(src, out, s2, wq, lead):
    """A row's s2 phases (``src[ph*wq + lead + q]`` = column ``q*s2 + ph``) into the row."""
    width = out.shape[0]
    if s2 == 1:
        for q in range(width):
            out[q] = src[lead + q]
    elif s2 == 2:
        a, b = src[lead : lead + wq], src[wq + lead : 2 * wq]
        for q in range(width // 2):
            out[2 * q] = a[q]
            out[2 * q + 1] = b[q]
        if width % 2:
            out[width - 1] = a[width // 2]
    else:
        for ph in range(s2):
            for q in range((width - ph + s2 - 1) // s2):
                out[q * s2 + ph] = src[ph * wq + lead + q]


@njit(**KERNEL_O2)
def _gather(j0, j1, pos, tabs, geo, dy, g, acc):
    """Planes ``j0 .. j1``: a vector pass per window position over the output row.
    acc: the plane's rows as s2 phases of wq elements, ``lead`` before column 0, so
    that every column's taps (padding ones too: dropped) land inside; tabs[a*o1 + b, e]:
    where column 0 of output row (a, b) has its window position e in acc (-1: a
    padding row)."""
    s2, width, wq, lead = geo
    o0, o1, o2 = pos.shape[1], pos.shape[2], pos.shape[3]
    kk = tabs.shape[1]
    zero = g.dtype.type(0.0)
    span = s2 * wq
    rows = acc.shape[0] // span
    for p in range(j0, j1):
        for q in range(acc.shape[0]):
            acc[q] = zero
        for a in range(o0):
            for b in range(o1):
                dyr, pr, tab = dy[p, a, b], pos[p, a, b], tabs[a * o1 + b]
                for e in range(kk - 1, -1, -1):  # the last position first: each element's additions in output order
                    if tab[e] >= 0:
                        run = acc[tab[e] : tab[e] + o2]
                        ee = pr.dtype.type(e)
                        for c in range(o2):
                            run[c] += dyr[c] if pr[c] == ee else zero
        gp = g[p]
        for r in range(rows):
            _interleave(acc[r * span : (r + 1) * span], gp[r * width : (r + 1) * width], s2, wq, lead)


def _distinct_rows(t: np.ndarray) -> bool:
    """Whether every window's real rows (table entries >= 0) are distinct."""
    real = np.where(t >= 0, t, -1 - np.arange(t.shape[1]))  # padding entries made distinct
    s = np.sort(real, axis=1)
    return bool(np.all(s[:, 1:] != s[:, :-1]))


def _plain(t2: np.ndarray, s2: int, d2: int, lo2: int, width: int) -> bool:
    """Whether the last dimension's taps read the plain columns ``c*s2 + m*d2 - lo2``
    (padding, -1 or -2, only where that column lies outside the row): no border mode."""
    o2, k2 = t2.shape
    col = np.arange(o2)[:, None] * s2 + np.arange(k2)[None, :] * d2 - lo2
    outside = (col < 0) | (col >= width)
    return bool(np.all(np.where(t2 >= 0, t2 == col, outside)))


def gathers(t0: np.ndarray, t1: np.ndarray, t2: np.ndarray, last: tuple[int, int, int], width: int) -> bool:
    """Whether ``_gather`` takes these windows: small windows (a pass per window
    position), output rows long enough to vectorise, distinct rows in each window
    and plain taps along the last dimension."""
    kk = t0.shape[1] * t1.shape[1] * t2.shape[1]
    if kk > GATHER_MAX_TAPS or t2.shape[0] < GATHER_MIN_ROW:
        return False
    return _plain(t2, *last, width) and _distinct_rows(t0) and _distinct_rows(t1)


def row_starts(t0: np.ndarray, t1: np.ndarray, height: int, span: int) -> np.ndarray:
    """(o0*o1, k0*k1): where each output row's window rows start, rows ``span`` apart
    (a large negative number for a padding row)."""
    rows = t0[:, None, :, None] * height + t1[None, :, None, :]  # (o0, o1, k0, k1)
    real = (t0[:, None, :, None] >= 0) & (t1[None, :, None, :] >= 0)
    return np.where(real, rows * span, -(1 << 40)).reshape(t0.shape[0] * t1.shape[0], -1)


def route(
    pos: np.ndarray,
    t0: np.ndarray,
    t1: np.ndarray,
    t2: np.ndarray,
    cols: tuple[int, int, int, int, int],
    dy: np.ndarray,
    g: np.ndarray,
) -> None:
    """Backward of the max/min pools: add each window's gradient to its winner (none
    for a zero from padding), in output order.  pos: (P, o0, o1, o2) winners' positions;
    cols: the interior columns ``[c0, c1)`` (:func:`.pool_layout.interior`) and the last
    dimension's stride, dilation and low padding; dy: (P, o0, o1, o2); g: (P, D, H, W),
    any contents (every element is written)."""
    c0, c1, s2, d2, lo2 = cols
    _, depth, height, width = g.shape
    (o2, k2), kk = t2.shape, t0.shape[1] * t1.shape[1] * t2.shape[1]
    flat = g.reshape(g.shape[0], -1)
    offs = np.arange(k2) * d2 - lo2  # column 0's taps
    if gathers(t0, t1, t2, (s2, d2, lo2), width):
        sh, ph = offs // s2, offs % s2  # tap m of column c: phase ph[m], element c + sh[m]
        lead = max(0, -int(sh.min()))
        wq = lead + max(o2 + int(sh.max()), -(-width // s2))
        starts = row_starts(t0, t1, height, s2 * wq)
        tabs = (starts[:, :, None] + (ph * wq + lead + sh)[None, None, :]).reshape(starts.shape[0], kk)
        tabs = np.ascontiguousarray(np.maximum(tabs, -1))

        def gather(j0: int, j1: int) -> None:  # each thread its own scratch
            acc = np.empty(depth * height * s2 * wq, dtype=g.dtype)
            _gather(j0, j1, pos, tabs, (s2, width, wq, lead), dy, flat, acc)

        parallel_for(gather, g.shape[0], work=g.size + dy.size)
        return
    em = np.tile(np.arange(k2), kk // k2)
    rowbs = np.ascontiguousarray(np.repeat(row_starts(t0, t1, height, width), k2, axis=1))
    tabs = rowbs + np.tile(offs, kk // k2)[None, :]
    parallel_for(_scatter, g.shape[0], pos, rowbs, tabs, t2, (c0, c1, s2), em, dy, flat, work=g.size + dy.size)
