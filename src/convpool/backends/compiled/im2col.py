"""Compiled convolution loops for any dtype (numba): im2col and its adjoint, the
depthwise direct loop, per-plane sums and ReLU.  Import only when numba is available
(:mod:`convpool.backends.compiled.kernels` re-exports these names).

Each kernel is a serial loop over a range of independent jobs, ``_kernel(j0, j1,
*args)``, released from the GIL; the function of the same name without the underscore
runs it over all jobs on the kernel threads (:func:`convpool.backends.compiled.threads.parallel_for`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .threads import KERNEL, parallel_for


@njit(cache=True, inline="always")
def _span(o2, s2, w0, n2):
    """Output columns ``cc`` in ``[0, o2)`` with ``0 <= cc*s2 + w0 < n2``: [start, end),
    both within ``[0, o2]`` (a tap whose reads all fall in the left padding has
    start == end == o2, not a start past the row)."""
    # conditional expressions, not min()/max(): numba compiles an overload of those
    # builtins per process (0.1-0.2 s of a strided conv's first call)
    start = (-w0 + s2 - 1) // s2
    start = start if start > 0 else 0
    start = start if start < o2 else o2
    end = (n2 - 1 - w0) // s2 + 1
    end = end if end < o2 else o2
    return start, end if end > start else start


@njit(**KERNEL)
def _im2col(j0, j1, x, k, s, d, lo, out_shape, groups, cols, sb, sg, sr):
    """Jobs (an image's channel) ``j0 .. j1`` of :func:`im2col`."""
    n, c, n0, n1, n2 = x.shape
    o0, o1, o2 = out_shape[0], out_shape[1], out_shape[2]
    cg = c // groups
    kk = k[0] * k[1] * k[2]
    xf = x.reshape(n * c, n0 * n1 * n2)
    for job in range(j0, j1):
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


def im2col(
    x: np.ndarray,
    k: np.ndarray,
    s: np.ndarray,
    d: np.ndarray,
    lo: np.ndarray,
    out_shape: np.ndarray,
    groups: int,
    cols: np.ndarray,
    sb: int,
    sg: int,
    sr: int,
) -> None:
    """Columns of a zero-padded conv, without a padded copy, into the flat array
    ``cols``: the value for image b, group g, row r (= channel-in-group * K + kernel
    offset) and output position q goes to ``b*sb + g*sg + r*sr + q``, so the caller
    picks the layout: (N, groups, Cg*K, P) or (groups, Cg*K, N*P).  The innermost
    loop is a strided copy over the output columns whose input lies inside the image.
    x: (N, C, D, H, W) C-contiguous; k, s, d, lo, out_shape: 3-entry int64 arrays."""
    jobs = x.shape[0] * x.shape[1]
    parallel_for(_im2col, jobs, x, k, s, d, lo, out_shape, groups, cols, sb, sg, sr, work=cols.size)


def im2col_serial(
    x: np.ndarray,
    k: np.ndarray,
    s: np.ndarray,
    d: np.ndarray,
    lo: np.ndarray,
    out_shape: np.ndarray,
    groups: int,
    cols: np.ndarray,
    sb: int,
    sg: int,
    sr: int,
) -> None:
    """:func:`im2col` on the calling thread only (for a caller that runs its own threads)."""
    _im2col(0, x.shape[0] * x.shape[1], x, k, s, d, lo, out_shape, groups, cols, sb, sg, sr)


@njit(**KERNEL)
def _col2im(j0, j1, dcols, k, s, d, lo, out_shape, groups, sb, sg, sr, gx):
    """Jobs (an image's channel) ``j0 .. j1`` of :func:`col2im`."""
    n, c, n0, n1, n2 = gx.shape
    kk = k[0] * k[1] * k[2]
    cg = c // groups
    o0, o1, o2 = out_shape[0], out_shape[1], out_shape[2]
    gf = gx.reshape(n * c, n0 * n1 * n2)
    for job in range(j0, j1):
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


def col2im(
    dcols: np.ndarray,
    k: np.ndarray,
    s: np.ndarray,
    d: np.ndarray,
    lo: np.ndarray,
    out_shape: np.ndarray,
    groups: int,
    sb: int,
    sg: int,
    sr: int,
    gx: np.ndarray,
) -> None:
    """Adjoint of :func:`im2col`: adds the flat column gradients ``dcols`` (same
    layout arguments) into ``gx`` (N, C, D, H, W), zeroed by the caller."""
    jobs = gx.shape[0] * gx.shape[1]
    parallel_for(_col2im, jobs, dcols, k, s, d, lo, out_shape, groups, sb, sg, sr, gx, work=dcols.size)


def col2im_serial(
    dcols: np.ndarray,
    k: np.ndarray,
    s: np.ndarray,
    d: np.ndarray,
    lo: np.ndarray,
    out_shape: np.ndarray,
    groups: int,
    sb: int,
    sg: int,
    sr: int,
    gx: np.ndarray,
) -> None:
    """:func:`col2im` on the calling thread only."""
    _col2im(0, gx.shape[0] * gx.shape[1], dcols, k, s, d, lo, out_shape, groups, sb, sg, sr, gx)


@njit(**KERNEL)
def _depthwise_forward(j0, j1, x, w, k, s, d, lo, out_shape, mult, y):
    """Jobs (an image's output channel) ``j0 .. j1`` of :func:`depthwise_forward`."""
    n, c, n0, n1, n2 = x.shape
    o0, o1, o2 = out_shape[0], out_shape[1], out_shape[2]
    c_out = w.shape[0]
    for job in range(j0, j1):
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


def depthwise_forward(
    x: np.ndarray,
    w: np.ndarray,
    k: np.ndarray,
    s: np.ndarray,
    d: np.ndarray,
    lo: np.ndarray,
    out_shape: np.ndarray,
    mult: int,
    y: np.ndarray,
) -> None:
    """Conv with one input channel per output channel (C_in/groups == 1), zero padding.
    w: (C_out, K).  Output channel o reads input channel o // mult.  y: (N, C_out, *out),
    zeroed by the caller."""
    jobs = x.shape[0] * w.shape[0]
    parallel_for(_depthwise_forward, jobs, x, w, k, s, d, lo, out_shape, mult, y, work=y.size * w.shape[1])


@njit(**KERNEL)
def _depthwise_backward(j0, j1, dy, x, w, k, s, d, lo, mult, dx, dw):
    """Input channels ``j0 .. j1`` of :func:`depthwise_backward`."""
    n, c, n0, n1, n2 = x.shape
    _, c_out, o0, o1, o2 = dy.shape
    for ch in range(j0, j1):  # one input channel and its output channels per job: no races
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


def depthwise_backward(
    dy: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    k: np.ndarray,
    s: np.ndarray,
    d: np.ndarray,
    lo: np.ndarray,
    mult: int,
    dx: np.ndarray,
    dw: np.ndarray,
) -> None:
    """Gradients dx (like x) and dw (C_out, K) of :func:`depthwise_forward`, both zeroed
    by the caller."""
    work = dy.size * w.shape[1] * 2
    parallel_for(_depthwise_backward, x.shape[1], dy, x, w, k, s, d, lo, mult, dx, dw, work=work)


# --- per-plane sums: global average pooling, bias gradients ---------------------------


@njit(**KERNEL, fastmath=True)
def _plane_sum(j0, j1, x, y, div):
    rows, out = x[j0:j1], y[j0:j1]  # views indexed from 0: no negative-index wraparound
    for r in range(rows.shape[0]):  # (and no view per row: short planes have many rows)
        acc = 0.0  # float64 whatever the input: a float32 running sum drifts on long rows
        for i in range(rows.shape[1]):
            acc += rows[r, i]
        out[r] = acc / div


def plane_sum(x: np.ndarray, y: np.ndarray, div: int = 1) -> None:
    """y[r] = (sum of row r of x (R, plane)) / div (the mean of a global average pool
    with div = plane: no second pass), summed in float64 (a float32 running sum over a
    1024x1024 plane of values near 1000 drifted by 1e-6 to 5e-5 relative); fastmath lets
    the sum vectorise (a different summation order, as in any vectorised sum).  NumPy's
    sum over the (N, C, *spatial) axes of a conv's bias gradient took 4x as long."""
    parallel_for(_plane_sum, x.shape[0], x, y, float(div), work=x.size)


@njit(**KERNEL)
def _plane_fill(j0, j1, dy, g):
    plane = g.shape[1]
    for r in range(j0, j1):
        v = dy[r] / plane
        for i in range(plane):
            g[r, i] = v


def plane_fill(dy: np.ndarray, g: np.ndarray) -> None:
    """g[r, :] = dy[r] / plane: the mean's adjoint (g: (R, plane), any contents)."""
    parallel_for(_plane_fill, g.shape[0], dy, g, work=g.size)


@njit(**KERNEL)
def _plane_add(j0, j1, y, b):
    rows = y[j0:j1]  # a view from 0: no wraparound selects in the loop
    nb = b.shape[0]
    for r in range(rows.shape[0]):
        v = b[(j0 + r) % nb]
        row = rows[r]
        for i in range(row.shape[0]):
            row[i] += v


def plane_add(y: np.ndarray, b: np.ndarray) -> None:
    """y[r, :] += b[r % len(b)]: a conv's bias over (N*C, plane) planes, in place.  NumPy's
    broadcast add runs one inner loop per plane: on 256x32x64 outputs it took a third
    of a small conv1d's forward."""
    parallel_for(_plane_add, y.shape[0], y, b, work=y.size)


# --- elementwise: ReLU ---------------------------------------------------------------
# NumPy's ufuncs run on one core and write a temporary per step (np.where: a mask,
# then the result); these are one pass each, split over the threads.

RELU_BLOCK = 1 << 14  # elements per job


# Loops index views from 0: numba wraps negative indices, and with a loop from j0 * BLOCK
# the compiler cannot rule them out, so it vectorises the wraparound into gathers (3x slower).


@njit(**KERNEL)
def _relu_forward(j0, j1, x, y):
    lo, hi = j0 * RELU_BLOCK, min(j1 * RELU_BLOCK, x.shape[0])
    xs, ys = x[lo:hi], y[lo:hi]
    zero = x.dtype.type(0.0)
    for i in range(xs.shape[0]):
        v = xs[i]
        ys[i] = zero if v <= 0 else v


def relu_forward(x: np.ndarray, y: np.ndarray) -> None:
    """y = max(x, 0), NaN kept (flat arrays)."""
    parallel_for(_relu_forward, -(-x.shape[0] // RELU_BLOCK), x, y, work=x.size)


@njit(**KERNEL)
def _relu_backward(j0, j1, dy, y, dx):
    lo, hi = j0 * RELU_BLOCK, min(j1 * RELU_BLOCK, dy.shape[0])
    dys, ys, dxs = dy[lo:hi], y[lo:hi], dx[lo:hi]
    zero = dx.dtype.type(0.0)
    for i in range(dys.shape[0]):
        dxs[i] = zero if ys[i] <= 0 else dys[i]


def relu_backward(dy: np.ndarray, y: np.ndarray, dx: np.ndarray) -> None:
    """dx = dy where the output y > 0 or is NaN, else 0 (PyTorch's threshold_backward)."""
    parallel_for(_relu_backward, -(-dy.shape[0] // RELU_BLOCK), dy, y, dx, work=dy.size)
