"""Compiled sliding-window loops (numba), behind the same functional API.

The NumPy code in :mod:`convpool.windows` and :mod:`convpool.functional` is the
readable reference; these kernels compute the same thing in one pass over
memory, parallel over (batch x channel) planes, without materialising padded
copies or window copies.  They are used when numba is installed and
``CONVPOOL_PURE_NUMPY`` is not set; the tests check both paths give the same
results.

Every kernel sees 3 spatial dimensions: 1-D and 2-D inputs get leading
size-1 dimensions.  Padding is resolved per element by :func:`_src`:

* mode 0 (identity): a padded position has no value and is skipped;
* mode 1 (zeros): it holds 0 (a real value, no gradient);
* modes 2, 3, 4 (reflect, replicate, circular): it reads an input element.

Positions beyond the padding (the room a ``ceil_mode`` window may need) are
always skipped.
"""

from __future__ import annotations

import os

import numpy as np

try:  # numba is optional: without it everything runs on the NumPy reference path
    if os.environ.get("CONVPOOL_PURE_NUMPY"):
        raise ImportError
    from numba import njit, prange

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised by the pure-NumPy CI leg
    AVAILABLE = False

MODES = {None: 0, "constant": 1, "zeros": 1, "reflect": 2, "replicate": 3, "circular": 4}
MAX, MIN, SUM, MEDIAN = 0, 1, 2, 3
REDUCTION_CODES = {"max": MAX, "min": MIN, "sum": SUM, "median": MEDIAN}


def enabled() -> bool:
    return AVAILABLE and not os.environ.get("CONVPOOL_PURE_NUMPY")


if AVAILABLE:

    @njit(cache=True, inline="always")
    def _src(c: int, lo: int, n: int, hi: int, mode: int) -> int:
        """Input index read by padded coordinate ``c``; -1: zero value; -2: no value."""
        i = c - lo
        if 0 <= i < n:
            return i
        if i < -lo or i >= n + hi:
            return -2
        if mode == 0:
            return -2
        if mode == 1:
            return -1
        if mode == 3:
            return 0 if i < 0 else n - 1
        if mode == 4:
            return i % n
        period = 2 * (n - 1)  # reflect
        if period == 0:
            return 0
        i = abs(i) % period
        return period - i if i >= n else i

    @njit(parallel=True, cache=True)
    def pool_forward(x, red, k, s, d, lo, hi, mode, out_shape):  # type: ignore[no-untyped-def]
        """x: (P, D, H, W) contiguous.  Returns y (P, oD, oH, oW) and, for select
        reductions, the flat input index of the chosen element (-1: padding)."""
        p_count, n0, n1, n2 = x.shape
        o0, o1, o2 = out_shape
        y = np.empty((p_count, o0, o1, o2), dtype=x.dtype)
        idx = np.full((p_count, o0, o1, o2), -1, dtype=np.int64)
        kk = k[0] * k[1] * k[2]
        for p in prange(p_count):
            vals = np.empty(kk, dtype=x.dtype)
            where = np.empty(kk, dtype=np.int64)
            for a in range(o0):
                for b in range(o1):
                    for c in range(o2):
                        cnt = 0
                        for i in range(k[0]):
                            si = _src(a * s[0] + i * d[0], lo[0], n0, hi[0], mode)
                            if si == -2:
                                continue
                            for j in range(k[1]):
                                sj = _src(b * s[1] + j * d[1], lo[1], n1, hi[1], mode)
                                if sj == -2:
                                    continue
                                for m in range(k[2]):
                                    sm = _src(c * s[2] + m * d[2], lo[2], n2, hi[2], mode)
                                    if sm == -2:
                                        continue
                                    if si == -1 or sj == -1 or sm == -1:
                                        vals[cnt] = 0.0
                                        where[cnt] = -1
                                    else:
                                        vals[cnt] = x[p, si, sj, sm]
                                        where[cnt] = (si * n1 + sj) * n2 + sm
                                    cnt += 1
                        if red == 2:  # sum
                            acc = 0.0
                            for t in range(cnt):
                                acc += vals[t]
                            y[p, a, b, c] = acc
                            continue
                        best = 0
                        nan_at = -1
                        for t in range(cnt):
                            if np.isnan(vals[t]):
                                nan_at = t
                                break
                        if nan_at >= 0:
                            best = nan_at
                        elif red == 0:
                            for t in range(1, cnt):
                                if vals[t] > vals[best]:
                                    best = t
                        elif red == 1:
                            for t in range(1, cnt):
                                if vals[t] < vals[best]:
                                    best = t
                        else:  # lower median: stable insertion sort of positions
                            order = np.empty(cnt, dtype=np.int64)
                            for t in range(cnt):
                                q = t
                                while q > 0 and vals[order[q - 1]] > vals[t]:
                                    order[q] = order[q - 1]
                                    q -= 1
                                order[q] = t
                            best = order[(cnt - 1) // 2]
                        y[p, a, b, c] = vals[best]
                        idx[p, a, b, c] = where[best]
        return y, idx

    @njit(parallel=True, cache=True)
    def select_backward(dy, idx, in_size):  # type: ignore[no-untyped-def]
        """Add each output's gradient to its chosen input element."""
        p_count = dy.shape[0]
        g = np.zeros((p_count, in_size), dtype=dy.dtype)
        flat_dy = dy.reshape(p_count, -1)
        flat_idx = idx.reshape(p_count, -1)
        for p in prange(p_count):
            for t in range(flat_dy.shape[1]):
                i = flat_idx[p, t]
                if i >= 0:
                    g[p, i] += flat_dy[p, t]
        return g

    @njit(parallel=True, cache=True)
    def sum_backward(dy, k, s, d, lo, hi, mode, in_shape):  # type: ignore[no-untyped-def]
        """Adjoint of the window sum: every input element a window read gets that window's gradient."""
        p_count, o0, o1, o2 = dy.shape
        n0, n1, n2 = in_shape
        g = np.zeros((p_count, n0, n1, n2), dtype=dy.dtype)
        for p in prange(p_count):
            for a in range(o0):
                for b in range(o1):
                    for c in range(o2):
                        v = dy[p, a, b, c]
                        for i in range(k[0]):
                            si = _src(a * s[0] + i * d[0], lo[0], n0, hi[0], mode)
                            if si < 0:
                                continue
                            for j in range(k[1]):
                                sj = _src(b * s[1] + j * d[1], lo[1], n1, hi[1], mode)
                                if sj < 0:
                                    continue
                                for m in range(k[2]):
                                    sm = _src(c * s[2] + m * d[2], lo[2], n2, hi[2], mode)
                                    if sm >= 0:
                                        g[p, si, sj, sm] += v
        return g

    @njit(parallel=True, cache=True)
    def im2col(x, k, s, d, lo, out_shape, groups):  # type: ignore[no-untyped-def]
        """Columns (N, groups, Cg*K, P) of a zero-padded conv, without a padded copy."""
        n, c, n0, n1, n2 = x.shape
        o0, o1, o2 = out_shape
        cg = c // groups
        kk = k[0] * k[1] * k[2]
        pp = o0 * o1 * o2
        cols = np.empty((n, groups, cg * kk, pp), dtype=x.dtype)
        for job in prange(n * c):
            b = job // c
            ch = job % c
            g = ch // cg
            r0 = (ch % cg) * kk
            for i in range(k[0]):
                for j in range(k[1]):
                    for m in range(k[2]):
                        row = r0 + (i * k[1] + j) * k[2] + m
                        q = 0
                        for a in range(o0):
                            u = a * s[0] + i * d[0] - lo[0]
                            for bb in range(o1):
                                v = bb * s[1] + j * d[1] - lo[1]
                                inside = 0 <= u < n0 and 0 <= v < n1
                                for cc in range(o2):
                                    w = cc * s[2] + m * d[2] - lo[2]
                                    if inside and 0 <= w < n2:
                                        cols[b, g, row, q] = x[b, ch, u, v, w]
                                    else:
                                        cols[b, g, row, q] = 0.0
                                    q += 1
        return cols

    @njit(parallel=True, cache=True)
    def col2im(dcols, k, s, d, lo, out_shape, in_shape, groups):  # type: ignore[no-untyped-def]
        """Adjoint of :func:`im2col`: (N, groups, Cg*K, P) -> (N, C, *in)."""
        n = dcols.shape[0]
        cg = dcols.shape[2] // (k[0] * k[1] * k[2])
        c = cg * groups
        n0, n1, n2 = in_shape
        o0, o1, o2 = out_shape
        kk = k[0] * k[1] * k[2]
        gx = np.zeros((n, c, n0, n1, n2), dtype=dcols.dtype)
        for job in prange(n * c):
            b = job // c
            ch = job % c
            g = ch // cg
            r0 = (ch % cg) * kk
            for i in range(k[0]):
                for j in range(k[1]):
                    for m in range(k[2]):
                        row = r0 + (i * k[1] + j) * k[2] + m
                        q = 0
                        for a in range(o0):
                            u = a * s[0] + i * d[0] - lo[0]
                            for bb in range(o1):
                                v = bb * s[1] + j * d[1] - lo[1]
                                inside = 0 <= u < n0 and 0 <= v < n1
                                for cc in range(o2):
                                    w = cc * s[2] + m * d[2] - lo[2]
                                    if inside and 0 <= w < n2:
                                        gx[b, ch, u, v, w] += dcols[b, g, row, q]
                                    q += 1
        return gx

    @njit(parallel=True, cache=True)
    def depthwise_forward(x, w, k, s, d, lo, out_shape, mult):  # type: ignore[no-untyped-def]
        """Conv with one input channel per output channel (C_in/groups == 1), zero padding.
        w: (C_out, K).  Output channel o reads input channel o // mult."""
        n, c, n0, n1, n2 = x.shape
        o0, o1, o2 = out_shape
        c_out = w.shape[0]
        y = np.zeros((n, c_out, o0, o1, o2), dtype=x.dtype)
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
        return y

    @njit(parallel=True, cache=True)
    def depthwise_backward(dy, x, w, k, s, d, lo, mult):  # type: ignore[no-untyped-def]
        """Gradients (dx, dw (C_out, K)) of :func:`depthwise_forward`."""
        n, c, n0, n1, n2 = x.shape
        _, c_out, o0, o1, o2 = dy.shape
        kk = k[0] * k[1] * k[2]
        dx = np.zeros(x.shape, dtype=x.dtype)
        dw = np.zeros((c_out, kk), dtype=np.float64)
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
        return dx, dw
