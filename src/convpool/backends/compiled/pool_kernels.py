"""Compiled pooling kernels over index tables (numba): max/min and the winner's
position, the median; the max/min gradient routing lives in :mod:`.pool_route`
(``route``, re-exported here).  Import only when numba is available
(:mod:`convpool.backends.compiled.kernels` re-exports the ones the backends call).

``select_max`` / ``select_min`` with ``find_selected`` (two passes) are no longer called by
the backends: they stay as the straightforward compiled references that the tests hold
:func:`select_where` to, result for result.  ``median_forward`` (an insertion sort per
window) is the reference for :func:`.median_rank.median_forward`, and runs in its place on
an input holding NaN (a window's first NaN is its result, which the ranks cannot see).

Every kernel sees 3 spatial dimensions and (P, D, H, W) planes; windows are read
through one index table per dimension (:func:`convpool.backends.compiled.kernels.index_table`).  Each
kernel is a serial loop over a range of planes, ``_kernel(j0, j1, *args)``, released
from the GIL; the function of the same name without the underscore runs it over all
planes on the kernel threads (:func:`convpool.backends.compiled.threads.parallel_for`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .pool_route import route  # noqa: F401  (re-exported by .kernels)
from .threads import KERNEL_O2, parallel_for


def _work(y: np.ndarray, *tables: np.ndarray) -> int:
    """Window elements a pass reads: outputs times kernel size."""
    return y.size * int(np.prod([t.shape[1] for t in tables]))


def _select_for(sign: float):
    """The kernel for max (sign 1) or min (sign -1): each compiled on its first use, the
    sign a constant of the code (a kernel taking it as an argument keeps both loops)."""

    @njit(**KERNEL_O2)
    def _select(j0, j1, x, t0, t1, t2, y):
        """Planes ``j0 .. j1`` of :func:`select_max` (sign 1) / :func:`select_min` (sign -1)."""
        o0, k0 = t0.shape
        o1, k1 = t1.shape
        o2, k2 = t2.shape
        zero_v = x.dtype.type(0.0)
        start = x.dtype.type(-np.inf * sign)
        for p in range(j0, j1):
            for a in range(o0):
                for b in range(o1):
                    for c in range(o2):
                        best = start
                        for i in range(k0):
                            si = t0[a, i]
                            if si == -2:
                                continue
                            for j in range(k1):
                                sj = t1[b, j]
                                if sj == -2:
                                    continue
                                zero = si < 0 or sj < 0
                                for m in range(k2):
                                    sm = t2[c, m]
                                    if sm == -2:
                                        continue
                                    v = zero_v if (zero or sm < 0) else x[p, si, sj, sm]
                                    # max()/min(), not an if on the data: branch-free, so it vectorises
                                    best = max(best, v) if sign > 0 else min(best, v)
                        y[p, a, b, c] = best

    return _select


_select_max, _select_min = _select_for(1.0), _select_for(-1.0)


def select_max(x: np.ndarray, t0: np.ndarray, t1: np.ndarray, t2: np.ndarray, y: np.ndarray) -> None:
    """Max of every window, values only: the chosen element is found by
    :func:`find_selected`, which also puts a window's NaN in its place (here a NaN may
    win or lose, by its place in the window).  Two passes: measured 20 + 36 ms on the
    3x3/s2 benchmark case, one pass tracking both 87-90 ms.  x: (P, D, H, W); t0, t1,
    t2: index tables."""
    parallel_for(_select_max, x.shape[0], x, t0, t1, t2, y, work=_work(y, t0, t1, t2))


def select_min(x: np.ndarray, t0: np.ndarray, t1: np.ndarray, t2: np.ndarray, y: np.ndarray) -> None:
    """Min of every window, values only (as :func:`select_max`)."""
    parallel_for(_select_min, x.shape[0], x, t0, t1, t2, y, work=_work(y, t0, t1, t2))


@njit(**KERNEL_O2)
def _find_selected(j0, j1, x, t0, t1, t2, y, pos):
    o0, k0 = t0.shape
    o1, k1 = t1.shape
    o2, k2 = t2.shape
    for p in range(j0, j1):
        for a in range(o0):
            for b in range(o1):
                for c in range(o2):
                    target = y[p, a, b, c]
                    where = 0
                    nan_at = -1  # the first NaN in the window wins, value and place
                    nan_v = target
                    for i in range(k0 - 1, -1, -1):
                        si = t0[a, i]
                        if si == -2:
                            continue
                        for j in range(k1 - 1, -1, -1):
                            sj = t1[b, j]
                            if sj == -2:
                                continue
                            for m in range(k2 - 1, -1, -1):
                                sm = t2[c, m]
                                if sm == -2:
                                    continue
                                if si < 0 or sj < 0 or sm < 0:
                                    v = x.dtype.type(0.0)
                                else:
                                    v = x[p, si, sj, sm]
                                e = (i * k1 + j) * k2 + m
                                where = e if v == target else where
                                if v != v:
                                    nan_at, nan_v = e, v
                    if nan_at >= 0:
                        where = nan_at
                        y[p, a, b, c] = nan_v
                    pos[p, a, b, c] = where


def find_selected(
    x: np.ndarray, t0: np.ndarray, t1: np.ndarray, t2: np.ndarray, y: np.ndarray, pos: np.ndarray
) -> None:
    """For every window, the position in the window (scan order over the full kernel,
    ``(i*k1 + j)*k2 + m``) of its first element equal to the selected value ``y``;
    a window holding NaN gets its first NaN, in ``pos`` and in ``y``.  The window is
    scanned backwards and every match overwrites the last, so the first match wins
    without an early exit."""
    parallel_for(_find_selected, x.shape[0], x, t0, t1, t2, y, pos, work=_work(y, t0, t1, t2))


def _select_where_for(sign: float):
    """The one-pass kernel for max (sign 1) or min (sign -1), compiled on its first use."""

    @njit(**KERNEL_O2)
    def _select_where(j0, j1, x, t0, t1, t2, y, pos):
        o0, k0 = t0.shape
        o1, k1 = t1.shape
        o2, k2 = t2.shape
        zero_v = x.dtype.type(0.0)
        start = x.dtype.type(-np.inf * sign)
        for p in range(j0, j1):
            for a in range(o0):
                for b in range(o1):
                    for c in range(o2):
                        best, where = start, -1
                        for i in range(k0):
                            si = t0[a, i]
                            if si == -2:
                                continue
                            for j in range(k1):
                                sj = t1[b, j]
                                if sj == -2:
                                    continue
                                zero = si < 0 or sj < 0
                                for m in range(k2):
                                    sm = t2[c, m]
                                    if sm == -2:
                                        continue
                                    v = zero_v if (zero or sm < 0) else x[p, si, sj, sm]
                                    # the first element, a better one, or the first NaN
                                    if (
                                        where < 0
                                        or ((v > best) if sign > 0 else (v < best))
                                        or (v != v and best == best)
                                    ):
                                        best, where = v, (i * k1 + j) * k2 + m
                        y[p, a, b, c] = best
                        pos[p, a, b, c] = where if where >= 0 else 0

    return _select_where


_select_where_max, _select_where_min = _select_where_for(1.0), _select_where_for(-1.0)


def select_where(
    x: np.ndarray, t0: np.ndarray, t1: np.ndarray, t2: np.ndarray, sign: float, y: np.ndarray, pos: np.ndarray
) -> None:
    """Max (sign 1) or min (sign -1) of every window and its position in the window
    (scan order, ``(i*k1 + j)*k2 + m``): the first element equal to it, or the first NaN
    (value and place) - what :func:`select_max` and :func:`find_selected` give, in one
    pass and one kernel.  The pool table's "index-tables" runs it: it compiles in about
    half their time (one kernel instead of two, 0.6 vs 1.25 s CPU) and "separable" takes
    the long rows where their branch-free pass paid."""
    kernel = _select_where_max if sign > 0 else _select_where_min
    parallel_for(kernel, x.shape[0], x, t0, t1, t2, y, pos, work=_work(y, t0, t1, t2))


@njit(**KERNEL_O2)
def _median_forward(j0, j1, x, t0, t1, t2, y, idx, vals, where):
    n1, n2 = x.shape[2], x.shape[3]
    o0, k0 = t0.shape
    o1, k1 = t1.shape
    o2, k2 = t2.shape
    for p in range(j0, j1):
        for a in range(o0):
            for b in range(o1):
                for c in range(o2):
                    cnt = 0
                    nan_at = -1
                    for i in range(k0):
                        si = t0[a, i]
                        if si == -2:
                            continue
                        for j in range(k1):
                            sj = t1[b, j]
                            if sj == -2:
                                continue
                            for m in range(k2):
                                sm = t2[c, m]
                                if sm == -2:
                                    continue
                                if si < 0 or sj < 0 or sm < 0:
                                    v = x.dtype.type(0.0)
                                    f = -1
                                else:
                                    v = x[p, si, sj, sm]
                                    f = (si * n1 + sj) * n2 + sm
                                if v != v and nan_at < 0:
                                    nan_at = cnt
                                q = cnt  # insert, keeping equal values in scan order
                                while q > 0 and vals[q - 1] > v:
                                    vals[q] = vals[q - 1]
                                    where[q] = where[q - 1]
                                    q -= 1
                                vals[q] = v
                                where[q] = f
                                cnt += 1
                    if nan_at >= 0:
                        for q in range(cnt):
                            if vals[q] != vals[q]:
                                y[p, a, b, c] = vals[q]
                                idx[p, a, b, c] = where[q]
                                break
                    else:
                        y[p, a, b, c] = vals[(cnt - 1) // 2]
                        idx[p, a, b, c] = where[(cnt - 1) // 2]


def median_forward(
    x: np.ndarray, t0: np.ndarray, t1: np.ndarray, t2: np.ndarray, y: np.ndarray, idx: np.ndarray
) -> None:
    """Lower median of every window's values (a stable insertion sort, so ties keep
    scan order) and its flat input index; NaN anywhere gives the first NaN."""
    kk = t0.shape[1] * t1.shape[1] * t2.shape[1]

    def run(j0: int, j1: int) -> None:  # each thread its own sort buffers
        vals = np.empty(kk, dtype=x.dtype)
        where = np.empty(kk, dtype=np.int64)
        _median_forward(j0, j1, x, t0, t1, t2, y, idx, vals, where)

    parallel_for(run, x.shape[0], work=_work(y, t0, t1, t2) * 4)


@njit(**KERNEL_O2)
def _select_backward(j0, j1, dy, idx, g):
    for p in range(j0, j1):
        g[p, :] = 0.0
        for t in range(dy.shape[1]):
            i = idx[p, t]
            if i >= 0:
                g[p, i] += dy[p, t]


def select_backward(dy: np.ndarray, idx: np.ndarray, g: np.ndarray) -> None:
    """Add each output's gradient to its chosen input element, given as a flat index
    (-1: none).  g: (P, in), any contents: each plane is zeroed here."""
    p_count = dy.shape[0]
    flat_dy = np.ascontiguousarray(dy).reshape(p_count, -1)
    flat_idx = np.ascontiguousarray(idx).reshape(p_count, -1)
    parallel_for(_select_backward, p_count, flat_dy, flat_idx, g, work=g.size + dy.size)
