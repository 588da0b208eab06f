"""Compiled sliding-window loops (numba), behind the same functional API.

The NumPy code in :mod:`convpool.windows` and :mod:`convpool.functional` is the
readable reference; these kernels compute the same thing in one pass over
memory, parallel over (batch x channel) planes, without materialising padded
copies or window copies.  They are used when numba is installed and
``CONVPOOL_PURE_NUMPY`` is not set; the tests check both paths give the same
results.

Every kernel sees 3 spatial dimensions: 1-D and 2-D inputs get leading
size-1 dimensions.  Pooling kernels read through one small index table per
dimension (:func:`index_table`), which resolves padding once per call:
identity padding (skipped), zeros (a value 0 with no gradient) or a border
mode (reflect, replicate, circular: an input element).
"""

from __future__ import annotations

import contextlib
import os
import threading
import types
from typing import Any

import numpy as np

from . import config

try:  # numba is optional: without it everything runs on the NumPy reference path
    if os.environ.get("CONVPOOL_PURE_NUMPY"):
        raise ImportError
    import numba
    from numba import njit, prange

    if "NUMBA_THREADING_LAYER" not in os.environ and "NUMBA_THREADING_LAYER_PRIORITY" not in os.environ:
        # OpenMP starts a parallel loop in ~1 us here, numba's own work queue in 73-127 us,
        # which is more than many small kernels take (measured: an empty prange).  The
        # work queue remains the fallback where no OpenMP runtime is installed.
        numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]
    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised by the pure-NumPy CI leg
    AVAILABLE = False


def _start_threads() -> None:
    """Start numba's worker threads now, with OpenMP's idle workers sleeping rather
    than spinning (``OMP_WAIT_POLICY=PASSIVE``, set only while numba loads its OpenMP
    runtime, and only if the user has not chosen a policy).

    Spinning workers keep a core busy for a while after every parallel loop; work on
    other threads that follows - a matrix product per core, as in the 1x1 conv's
    backward pass - then runs on half the machine (measured: that backward pass took
    11.6 ms with spinning workers, 7.6 ms with sleeping ones; the LeNet step was
    unchanged at 12.2-13.0 ms).  A runtime another library loaded first keeps its own
    settings."""
    if os.environ.get("OMP_WAIT_POLICY"):
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        from numba.np.ufunc import parallel

        parallel._launch_threads()  # numba-internal; without it the threads start on first use
    except (ImportError, AttributeError):  # pragma: no cover - another numba version
        pass
    finally:
        del os.environ["OMP_WAIT_POLICY"]


if AVAILABLE:
    _start_threads()


def enabled() -> bool:
    """Whether the compiled kernels run (numba loaded and the backend is "compiled")."""
    return AVAILABLE and config.get_backend() == "compiled"


PARALLEL_MIN = 1 << 14  # elements: below this a compiled parallel pass costs more than NumPy's


def worth_parallel(x: np.ndarray) -> bool:
    """Whether an elementwise or per-plane pass over ``x`` should run compiled: kernels
    on, a float dtype they are built for, and enough elements to pay for the threads."""
    return enabled() and x.dtype in (np.float32, np.float64) and x.size >= PARALLEL_MIN


def num_threads() -> int:
    """Worker threads the compiled kernels use."""
    return int(numba.get_num_threads()) if AVAILABLE else 1


_limiter: object = None


def blas_limiter():
    """A threadpoolctl controller for the BLAS thread count, or None without threadpoolctl."""
    global _limiter
    if _limiter is None:
        try:
            from threadpoolctl import ThreadpoolController

            _limiter = ThreadpoolController()
        except ImportError:
            _limiter = False
    return _limiter or None


def one_blas_thread() -> Any:
    """A context in which BLAS runs on the calling thread only.

    OpenBLAS's idle worker threads keep polling the cores for a while after every
    multi-threaded call; the compiled kernels that follow then run at a fraction of
    their speed (measured: the LeNet training step took 53-59 ms with 2 BLAS threads
    between the kernels, 22 ms with 1).  Small products lose little by running on one
    core; large ones are split across cores by the caller instead."""
    limiter = blas_limiter()
    return limiter.limit(limits=1, user_api="blas") if limiter is not None else contextlib.nullcontext()


# Outputs are allocated by NumPy and passed in: NumPy asks the kernel for huge pages on
# large arrays, and first-touch page faults on fresh memory otherwise cost more than
# the kernels themselves (measured here: 4 GB/s writing fresh memory, 28 GB/s reused).
_workspace = threading.local()


def aligned_empty(size: int, dtype: Any) -> np.ndarray:
    """A fresh flat array whose data starts on a 64-byte (cache line) boundary."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.empty(size + 64 // itemsize, dtype=dtype)
    start = (-raw.ctypes.data % 64) // itemsize
    return raw[start : start + size]


def workspace(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A scratch array reused across calls (per thread, per dtype), 64-byte aligned;
    contents undefined."""
    size = int(np.prod(shape))
    key = np.dtype(dtype).str
    buf = getattr(_workspace, key, None)
    if buf is None or buf.size < size:
        buf = aligned_empty(size, dtype)
        setattr(_workspace, key, buf)
    return buf[:size].reshape(shape)


def index_table(n: int, k: int, s: int, d: int, lo: int, hi: int, out: int, mode: str | None) -> np.ndarray:
    """For output ``o`` and window element ``t`` along one dimension, the input index read:
    ``>= 0`` an input element, -1 a zero value (zero padding), -2 nothing (identity padding
    or the room beyond the padding).  Built once per call with NumPy; the kernels only look up."""
    from .windows import _border_index

    c = np.arange(out)[:, None] * s + np.arange(k)[None, :] * d  # padded coordinate
    i = c - lo
    table = np.full(c.shape, -2, dtype=np.int64)
    inside = (i >= 0) & (i < n)
    table[inside] = i[inside]
    border = ~inside & (i >= -lo) & (i < n + hi)
    if mode in ("constant", "zeros"):
        table[border] = -1
    elif mode is not None:
        table[border] = _border_index(n, lo, hi, mode)[c[border]]
    return table


if AVAILABLE:

    def _make_select(sign: float):
        @njit(parallel=True, cache=True)
        def select(x, t0, t1, t2, y):
            """Max (sign 1) or min (sign -1) of every window; NaN wins.  Values only: the
            chosen element is found by :func:`find_selected` (measured: two passes took
            20 + 36 ms on the 3x3/s2 benchmark case, one pass tracking both 87-90 ms).
            x: (P, D, H, W); t0, t1, t2: index tables."""
            p_count = x.shape[0]
            o0, k0 = t0.shape
            o1, k1 = t1.shape
            o2, k2 = t2.shape
            zero_v = x.dtype.type(0.0)
            start = x.dtype.type(-np.inf * sign)
            for p in prange(p_count):
                for a in range(o0):
                    for b in range(o1):
                        for c in range(o2):
                            best = start
                            total = zero_v  # NaN iff a NaN (or inf - inf) was seen
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
                                        total += v
                                        # max()/min(), not an if: branch-free, so it vectorises
                                        best = max(best, v) if sign > 0 else min(best, v)
                            if total != total:  # rare: propagate a NaN if there really is one
                                for i in range(k0):
                                    for j in range(k1):
                                        for m in range(k2):
                                            si, sj, sm = t0[a, i], t1[b, j], t2[c, m]
                                            if si >= 0 and sj >= 0 and sm >= 0 and x[p, si, sj, sm] != x[p, si, sj, sm]:
                                                best = x[p, si, sj, sm]
                            y[p, a, b, c] = best

        return select

    select_max = _make_select(1.0)
    select_min = _make_select(-1.0)

    @njit(parallel=True, cache=True)
    def find_selected(x, t0, t1, t2, y, pos):
        """For every window, the position in the window (scan order over the full kernel,
        ``(i*k1 + j)*k2 + m``) of its first element equal to the selected value ``y``;
        for NaN, the first NaN.  The window is scanned backwards and every match
        overwrites the last, so the first match wins without an early exit."""
        p_count = x.shape[0]
        o0, k0 = t0.shape
        o1, k1 = t1.shape
        o2, k2 = t2.shape
        for p in prange(p_count):
            for a in range(o0):
                for b in range(o1):
                    for c in range(o2):
                        target = y[p, a, b, c]
                        is_nan = target != target
                        where = 0
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
                                    if v == target or (is_nan and v != v):
                                        where = (i * k1 + j) * k2 + m
                        pos[p, a, b, c] = where

    @njit(parallel=True, cache=True)
    def route(pos, t0, t1, t2, ei, ej, em, dy, g):
        """Backward of :func:`select` and :func:`find_selected`: add each window's gradient
        to its selected input element (none for a zero from padding).  ei, ej, em: the
        kernel coordinates of each window position (looked up: three integer divisions
        per window cost more than the rest).  g: (P, D, H, W), any contents: each plane is
        zeroed here, by the thread that then writes it."""
        for p in prange(g.shape[0]):
            g[p] = 0.0
            for a in range(t0.shape[0]):
                for b in range(t1.shape[0]):
                    for c in range(t2.shape[0]):
                        e = pos[p, a, b, c]
                        si, sj, sm = t0[a, ei[e]], t1[b, ej[e]], t2[c, em[e]]
                        if si >= 0 and sj >= 0 and sm >= 0:
                            g[p, si, sj, sm] += dy[p, a, b, c]

    # Tiled windows (stride == kernel, no padding, dilation 1: every input element is in at
    # most one window - the usual 2x2 pool) get loops over whole rows, no index tables and
    # no branches on the data (a mispredicted branch per element cost more than the rest
    # of the loop here), and the forward pass records the winner's position in its window
    # (int8), so that the backward pass is one dense write.

    @njit(parallel=True, cache=True)
    def select_tiled(x, k0, k1, k2, sign, y, pos):
        """Max (sign 1) or min (sign -1) of tiled windows and the position in the window
        (scan order) of its first element equal to it; NaN wins.  y, pos: (P, o0, o1, o2).
        Works on one output row at a time; 2-wide windows get a loop of their own (a
        constant stride the compiler vectorises)."""
        o0, o1, o2 = y.shape[1], y.shape[2], y.shape[3]
        start = x.dtype.type(-np.inf * sign)
        for p in prange(x.shape[0]):
            total = np.empty(o2, dtype=x.dtype)  # NaN iff a NaN (or inf - inf) was seen
            for a in range(o0):
                for b in range(o1):
                    best = y[p, a, b]
                    where = pos[p, a, b]
                    best[:] = start
                    total[:] = 0.0
                    for i in range(k0):
                        for j in range(k1):
                            row = x[p, a * k0 + i, b * k1 + j]
                            if k2 == 2:
                                for c in range(o2):
                                    v0 = row[2 * c]
                                    v1 = row[2 * c + 1]
                                    total[c] += v0 + v1
                                    if sign > 0:
                                        best[c] = max(best[c], max(v0, v1))
                                    else:
                                        best[c] = min(best[c], min(v0, v1))
                            else:
                                for c in range(o2):
                                    for m in range(k2):
                                        v = row[c * k2 + m]
                                        total[c] += v
                                        best[c] = max(best[c], v) if sign > 0 else min(best[c], v)
                    # positions: scan backwards, so the last match (first in scan order) stays
                    where[:] = 0
                    e = k0 * k1 * k2
                    for i in range(k0 - 1, -1, -1):
                        for j in range(k1 - 1, -1, -1):
                            row = x[p, a * k0 + i, b * k1 + j]
                            if k2 == 2:
                                e -= 2
                                for c in range(o2):
                                    t = best[c]
                                    where[c] = e + 1 if row[2 * c + 1] == t else where[c]
                                    where[c] = e if row[2 * c] == t else where[c]
                            else:
                                for m in range(k2 - 1, -1, -1):
                                    e -= 1
                                    for c in range(o2):
                                        where[c] = e if row[c * k2 + m] == best[c] else where[c]
                    for c in range(o2):
                        if total[c] != total[c]:  # rare: a NaN in the window wins, the first one
                            for e in range(k0 * k1 * k2 - 1, -1, -1):
                                v = x[p, a * k0 + e // (k1 * k2), b * k1 + e // k2 % k1, c * k2 + e % k2]
                                if v != v:
                                    best[c] = v
                                    where[c] = e

    @njit(parallel=True, cache=True)
    def select_2x2(x, sign, y, pos):
        """:func:`select_tiled` for 2x2 windows (the 2-d pool everyone uses): four scalars
        per window and selects only - NaN included - so the loop over a row vectorises;
        small planes (14x14) cost no per-row set-up."""
        o0, o1, o2 = y.shape[1], y.shape[2], y.shape[3]
        for p in prange(x.shape[0]):
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

    @njit(parallel=True, fastmath=True, cache=True)
    def sum_2x2(x, y):
        """Sum of each tiled 2x2 window (the 2x2 average pool's numerator)."""
        for p in prange(x.shape[0]):
            for d in range(y.shape[1]):
                for b in range(y.shape[2]):
                    for c in range(y.shape[3]):
                        y[p, d, b, c] = (x[p, d, 2 * b, 2 * c] + x[p, d, 2 * b, 2 * c + 1]) + (
                            x[p, d, 2 * b + 1, 2 * c] + x[p, d, 2 * b + 1, 2 * c + 1]
                        )

    @njit(parallel=True, cache=True)
    def spread_2x2(dy, g):
        """Adjoint of :func:`sum_2x2`: every element of g (any contents) written once."""
        o0, o1, o2 = dy.shape[1], dy.shape[2], dy.shape[3]
        n1, n2 = g.shape[2], g.shape[3]
        for p in prange(g.shape[0]):
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

    @njit(parallel=True, cache=True)
    def route_2x2(pos, dy, g):
        """Backward of :func:`select_2x2`: every element of g (any contents) written once."""
        o0, o1, o2 = dy.shape[1], dy.shape[2], dy.shape[3]
        n1, n2 = g.shape[2], g.shape[3]
        for p in prange(g.shape[0]):
            for d in range(o0):
                for b in range(o1):
                    for c in range(o2):
                        w, v = pos[p, d, b, c], dy[p, d, b, c]
                        g[p, d, 2 * b, 2 * c] = v if w == 0 else 0.0
                        g[p, d, 2 * b, 2 * c + 1] = v if w == 1 else 0.0
                        g[p, d, 2 * b + 1, 2 * c] = v if w == 2 else 0.0
                        g[p, d, 2 * b + 1, 2 * c + 1] = v if w == 3 else 0.0
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

    @njit(parallel=True, cache=True)
    def route_tiled(pos, k0, k1, k2, dy, g):
        """Backward of :func:`select_tiled`: every element of g (like the input, any
        contents) written once - the window's gradient at its winner, zero elsewhere
        (and zero where no window reaches, in floor mode)."""
        o0, o1, o2 = dy.shape[1], dy.shape[2], dy.shape[3]
        n1, n2 = g.shape[2], g.shape[3]
        for p in prange(g.shape[0]):
            g[p, o0 * k0 :] = 0.0
            for a in range(o0):
                for i in range(k0):
                    u = a * k0 + i
                    for h in range(o1 * k1, n1):
                        for m in range(n2):
                            g[p, u, h, m] = 0.0
                    for b in range(o1):
                        for j in range(k1):
                            v_ = b * k1 + j
                            e0 = (i * k1 + j) * k2
                            if k2 == 2:  # a constant stride: the compiler vectorises this one
                                for c in range(o2):
                                    w, d = pos[p, a, b, c], dy[p, a, b, c]
                                    g[p, u, v_, 2 * c] = d if w == e0 else 0.0
                                    g[p, u, v_, 2 * c + 1] = d if w == e0 + 1 else 0.0
                            else:
                                for c in range(o2):
                                    w, d = pos[p, a, b, c], dy[p, a, b, c]
                                    for m in range(k2):
                                        g[p, u, v_, c * k2 + m] = d if w == e0 + m else 0.0
                            for m in range(o2 * k2, n2):
                                g[p, u, v_, m] = 0.0

    # Window sums are separable: sum along the last dimension into a small per-plane
    # buffer, then along the middle, then the first.  Each pass is a loop over whole rows
    # (vectorised), where the one-pass kernel gathered every window element through the
    # tables.  ``wmap`` maps the last dimension's padded coordinates to input columns
    # (-1: nothing there), so that a padded row can be built once and read at a
    # constant stride.

    @njit(parallel=True, fastmath=True, cache=True)
    def sum_separable(x, t0, t1, wmap, k2, s2, d2, y):
        """y[p, a, b, c] = sum over the window of x (padding contributes nothing).
        x: (P, n0, n1, n2); y: (P, o0, o1, o2); t0, t1: index tables of the first two
        dimensions; the last dimension's windows start at c*s2, elements m*d2 apart,
        in padded coordinates resolved by wmap."""
        n0, n1 = x.shape[1], x.shape[2]
        o0, o1, o2 = y.shape[1], y.shape[2], y.shape[3]
        k0, k1 = t0.shape[1], t1.shape[1]
        for p in prange(x.shape[0]):
            row = np.empty(wmap.shape[0], dtype=x.dtype)
            sw = np.empty((n0, n1, o2), dtype=x.dtype)  # sums along the last dimension
            for u in range(n0):
                for v in range(n1):
                    for w in range(wmap.shape[0]):
                        i = wmap[w]
                        row[w] = x[p, u, v, i] if i >= 0 else 0.0
                    for c in range(o2):
                        sw[u, v, c] = 0.0
                    for m in range(k2):
                        if s2 == 1:  # constant strides: these loops vectorise
                            for c in range(o2):
                                sw[u, v, c] += row[c + m * d2]
                        elif s2 == 2:
                            for c in range(o2):
                                sw[u, v, c] += row[2 * c + m * d2]
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

    @njit(parallel=True, fastmath=True, cache=True)
    def sum_separable_backward(dy, t0, t1, wmap, k2, s2, d2, g):
        """Adjoint of :func:`sum_separable`; g: (P, n0, n1, n2), any contents (each plane
        is written here)."""
        n0, n1, n2 = g.shape[1], g.shape[2], g.shape[3]
        o0, o1, o2 = dy.shape[1], dy.shape[2], dy.shape[3]
        k0, k1 = t0.shape[1], t1.shape[1]
        for p in prange(g.shape[0]):
            row = np.empty(wmap.shape[0], dtype=g.dtype)
            sw = np.zeros((n0, n1, o2), dtype=g.dtype)
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
                        elif s2 == 2:
                            for c in range(o2):
                                row[2 * c + m * d2] += sw[u, v, c]
                        else:
                            for c in range(o2):
                                row[c * s2 + m * d2] += sw[u, v, c]
                    for w in range(n2):
                        g[p, u, v, w] = 0.0
                    for w in range(wmap.shape[0]):
                        i = wmap[w]
                        if i >= 0:
                            g[p, u, v, i] += row[w]

    @njit(parallel=True, cache=True)
    def median_forward(x, t0, t1, t2, y, idx):
        """Lower median of every window's values (a stable insertion sort, so ties keep
        scan order) and its flat input index; NaN anywhere gives the first NaN."""
        p_count, n0, n1, n2 = x.shape
        o0, k0 = t0.shape
        o1, k1 = t1.shape
        o2, k2 = t2.shape
        kk = k0 * k1 * k2
        for p in prange(p_count):
            vals = np.empty(kk, dtype=x.dtype)
            where = np.empty(kk, dtype=np.int64)
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

    @njit(parallel=True, cache=True)
    def select_backward(dy, idx, g):
        """Add each output's gradient to its chosen input element, given as a flat index
        (-1: none).  g: (P, in), any contents: each plane is zeroed here."""
        p_count = dy.shape[0]
        flat_dy = dy.reshape(p_count, -1)
        flat_idx = idx.reshape(p_count, -1)
        for p in prange(p_count):
            g[p, :] = 0.0
            for t in range(flat_dy.shape[1]):
                i = flat_idx[p, t]
                if i >= 0:
                    g[p, i] += flat_dy[p, t]

    @njit(cache=True, inline="always")
    def _span(o2, s2, w0, n2):
        """Output columns ``cc`` in ``[0, o2)`` with ``0 <= cc*s2 + w0 < n2``: [start, end),
        both within ``[0, o2]`` (a tap whose reads all fall in the left padding has
        start == end == o2, not a start past the row)."""
        start = min(o2, max(0, (-w0 + s2 - 1) // s2))
        end = min(o2, (n2 - 1 - w0) // s2 + 1)
        return start, max(start, end)

    def _im2col(x, k, s, d, lo, out_shape, groups, cols, sb, sg, sr):
        """Columns of a zero-padded conv, without a padded copy, into the flat array
        ``cols``: the value for image b, group g, row r (= channel-in-group * K + kernel
        offset) and output position q goes to ``b*sb + g*sg + r*sr + q``, so the caller
        picks the layout: (N, groups, Cg*K, P) or (groups, Cg*K, N*P).  The innermost
        loop is a strided copy over the output columns whose input lies inside the image."""
        n, c, n0, n1, n2 = x.shape
        o0, o1, o2 = out_shape[0], out_shape[1], out_shape[2]
        cg = c // groups
        kk = k[0] * k[1] * k[2]
        xf = x.reshape(n * c, n0 * n1 * n2)
        for job in prange(n * c):
            b = job // c
            ch = job % c
            r0 = (ch % cg) * kk
            plane = b * sb + (ch // cg) * sg
            for i in range(k[0]):
                for j in range(k[1]):
                    for m in range(k[2]):
                        row = plane + (r0 + (i * k[1] + j) * k[2] + m) * sr
                        w0 = m * d[2] - lo[2]
                        start, end = _span(o2, s[2], w0, n2)
                        for a in range(o0):
                            u = a * s[0] + i * d[0] - lo[0]
                            for bb in range(o1):
                                v = bb * s[1] + j * d[1] - lo[1]
                                o = row + (a * o1 + bb) * o2
                                if u < 0 or u >= n0 or v < 0 or v >= n1:
                                    for cc in range(o2):
                                        cols[o + cc] = 0.0
                                    continue
                                for cc in range(start):
                                    cols[o + cc] = 0.0
                                src = (u * n1 + v) * n2 + w0
                                for cc in range(start, end):
                                    cols[o + cc] = xf[job, src + cc * s[2]]
                                for cc in range(end, o2):
                                    cols[o + cc] = 0.0

    def _col2im(dcols, k, s, d, lo, out_shape, groups, sb, sg, sr, gx):
        """Adjoint of :func:`im2col`: adds the flat column gradients ``dcols`` (same
        layout arguments) into ``gx`` (N, C, D, H, W), zeroed by the caller."""
        n, c, n0, n1, n2 = gx.shape
        kk = k[0] * k[1] * k[2]
        cg = c // groups
        o0, o1, o2 = out_shape[0], out_shape[1], out_shape[2]
        gf = gx.reshape(n * c, n0 * n1 * n2)
        for job in prange(n * c):
            b = job // c
            ch = job % c
            r0 = (ch % cg) * kk
            plane = b * sb + (ch // cg) * sg
            for i in range(k[0]):
                for j in range(k[1]):
                    for m in range(k[2]):
                        row = plane + (r0 + (i * k[1] + j) * k[2] + m) * sr
                        w0 = m * d[2] - lo[2]
                        start, end = _span(o2, s[2], w0, n2)
                        for a in range(o0):
                            u = a * s[0] + i * d[0] - lo[0]
                            if u < 0 or u >= n0:
                                continue
                            for bb in range(o1):
                                v = bb * s[1] + j * d[1] - lo[1]
                                if v < 0 or v >= n1:
                                    continue
                                o = row + (a * o1 + bb) * o2
                                dst = (u * n1 + v) * n2 + w0
                                for cc in range(start, end):
                                    gf[job, dst + cc * s[2]] += dcols[o + cc]

    # parallel over (image, channel) planes, or serial for one worker thread of many
    # (nogil: the threads run truly in parallel, each with its own BLAS-free stretch)
    def _renamed(fn, name):
        """A copy of ``fn`` under another name: numba caches compiled code by name, and
        the serial and parallel builds of one function must not share a cache entry."""
        copy = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
        copy.__qualname__ = name
        return copy

    im2col = njit(parallel=True, cache=True)(_im2col)
    col2im = njit(parallel=True, cache=True)(_col2im)
    im2col_serial = njit(nogil=True, cache=True)(_renamed(_im2col, "im2col_serial"))
    col2im_serial = njit(nogil=True, cache=True)(_renamed(_col2im, "col2im_serial"))

    @njit(parallel=True, cache=True)
    def depthwise_forward(x, w, k, s, d, lo, out_shape, mult, y):
        """Conv with one input channel per output channel (C_in/groups == 1), zero padding.
        w: (C_out, K).  Output channel o reads input channel o // mult."""
        n, c, n0, n1, n2 = x.shape
        o0, o1, o2 = out_shape
        c_out = w.shape[0]  # y: (N, C_out, *out), zeroed by the caller
        for job in prange(n * c_out):
            b = job // c_out
            o = job % c_out
            ch = o // mult
            for i in range(k[0]):
                for j in range(k[1]):
                    for m in range(k[2]):
                        wv = w[o, (i * k[1] + j) * k[2] + m]
                        for a in range(o0):
                            u = a * s[0] + i * d[0] - lo[0]
                            if u < 0 or u >= n0:
                                continue
                            for bb in range(o1):
                                v = bb * s[1] + j * d[1] - lo[1]
                                if v < 0 or v >= n1:
                                    continue
                                for cc in range(o2):
                                    ww = cc * s[2] + m * d[2] - lo[2]
                                    if 0 <= ww < n2:
                                        y[b, o, a, bb, cc] += wv * x[b, ch, u, v, ww]

    @njit(parallel=True, cache=True)
    def depthwise_backward(dy, x, w, k, s, d, lo, mult, dx, dw):
        """Gradients dx (like x) and dw (C_out, K) of :func:`depthwise_forward`, both zeroed by the caller."""
        n, c, n0, n1, n2 = x.shape
        _, c_out, o0, o1, o2 = dy.shape
        for ch in prange(c):  # one input channel and its output channels per job: no races
            for o in range(ch * mult, (ch + 1) * mult):
                for b in range(n):
                    for i in range(k[0]):
                        for j in range(k[1]):
                            for m in range(k[2]):
                                t = (i * k[1] + j) * k[2] + m
                                wv = w[o, t]
                                acc = 0.0
                                for a in range(o0):
                                    u = a * s[0] + i * d[0] - lo[0]
                                    if u < 0 or u >= n0:
                                        continue
                                    for bb in range(o1):
                                        v = bb * s[1] + j * d[1] - lo[1]
                                        if v < 0 or v >= n1:
                                            continue
                                        for cc in range(o2):
                                            ww = cc * s[2] + m * d[2] - lo[2]
                                            if 0 <= ww < n2:
                                                g = dy[b, o, a, bb, cc]
                                                acc += g * x[b, ch, u, v, ww]
                                                dx[b, ch, u, v, ww] += g * wv
                                dw[o, t] += acc


if AVAILABLE:
    # --- per-plane sums: global average pooling, bias gradients ---------------------------

    @njit(parallel=True, fastmath=True, cache=True)
    def plane_sum(x, y):
        """y[r] = sum of row r of x (R, plane); fastmath lets the sum vectorise (a
        different summation order, as in any vectorised sum).  NumPy's sum over the
        (N, C, *spatial) axes of a conv's bias gradient took 4x as long."""
        for r in prange(x.shape[0]):
            acc = x.dtype.type(0.0)
            for i in range(x.shape[1]):
                acc += x[r, i]
            y[r] = acc

    @njit(parallel=True, cache=True)
    def plane_fill(dy, g):
        """g[r, :] = dy[r] / plane: the mean's adjoint (g: (R, plane), any contents)."""
        plane = g.shape[1]
        for r in prange(g.shape[0]):
            v = dy[r] / plane
            for i in range(plane):
                g[r, i] = v

    # --- elementwise: ReLU ---------------------------------------------------------------
    # NumPy's ufuncs run on one core and write a temporary per step (np.where: a mask,
    # then the result); these are one parallel pass each.

    @njit(parallel=True, fastmath=False, cache=True)
    def relu_forward(x, y):
        """y = max(x, 0), NaN kept (flat arrays)."""
        for i in prange(x.shape[0]):
            v = x[i]
            y[i] = 0.0 if v <= 0 else v

    @njit(parallel=True, fastmath=False, cache=True)
    def relu_backward(dy, y, dx):
        """dx = dy where the output y > 0 or is NaN, else 0 (PyTorch's threshold_backward)."""
        for i in prange(dy.shape[0]):
            dx[i] = 0.0 if y[i] <= 0 else dy[i]


try:  # the direct SIMD convolution needs numba's LLVM intrinsics (llvmlite)
    if not AVAILABLE or os.environ.get("CONVPOOL_NO_DIRECT"):
        raise ImportError
    from . import _direct  # noqa: F401

    DIRECT = True
except ImportError:
    DIRECT = False
