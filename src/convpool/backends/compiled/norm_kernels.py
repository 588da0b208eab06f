"""Batch normalisation kernels: per-channel statistics, the affine normalisation and its
gradients, each one compiled pass per step over a (N, C, S) array, channels split over
the kernel threads.

NumPy's version of the same arithmetic (:mod:`convpool.functional.normalization`)
makes a temporary per operation - mean, x - mean, its square, the variance, x_hat,
x_hat * w, + b, and as many again backward - each a pass over the whole batch on one
core.  Here forward reads x twice (mean, then the centred sum of squares: the two-pass
variance, no cancellation) and writes y once; backward reads (g, x) once for the two
sums and once more to write dx.

Sums run in float32 over runs of at most ``_RUN`` elements (vectorised, the compiler's
partial sums per lane) and are added up in float64, so the statistics of a channel of
a million elements lose no more than a run's rounding.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .threads import KERNEL, parallel_for

_RUN = 1024  # elements summed in the array's dtype before the float64 total

# Every loop indexes a view from 0 (``x[base : base + s]``): numba wraps negative indices,
# and from a computed start the compiler cannot rule them out and vectorises the
# wraparound into gathers, several times slower.


@njit(**KERNEL, fastmath=True)
def _run_sum(v):
    total = 0.0
    for r0 in range(0, v.shape[0], _RUN):
        run = v[r0 : r0 + _RUN]
        acc = v.dtype.type(0.0)
        for i in range(run.shape[0]):
            acc += run[i]
        total += acc
    return total


@njit(**KERNEL, fastmath=True)
def _run_sq(v, m):
    total = 0.0
    for r0 in range(0, v.shape[0], _RUN):
        run = v[r0 : r0 + _RUN]
        acc = v.dtype.type(0.0)
        for i in range(run.shape[0]):
            d = run[i] - m
            acc += d * d
        total += acc
    return total


@njit(**KERNEL)
def _stats(c0, c1, x, n, c, s, mean, var):
    for ch in range(c0, c1):
        total = 0.0
        for img in range(n):
            base = (img * c + ch) * s
            total += _run_sum(x[base : base + s])
        m = total / (n * s)
        mx = x.dtype.type(m)
        sq = 0.0
        for img in range(n):
            base = (img * c + ch) * s
            sq += _run_sq(x[base : base + s], mx)
        mean[ch] = m
        var[ch] = sq / (n * s)


def stats(x: np.ndarray, n: int, c: int, s: int, mean: np.ndarray, var: np.ndarray) -> None:
    """Per-channel mean and biased variance (float64 outputs) of flat x, (n, c, s) C-order."""
    parallel_for(_stats, c, x, n, c, s, mean, var, work=x.size)


@njit(**KERNEL, fastmath=True)
def _affine(c0, c1, x, n, c, s, scale, shift, y):
    for ch in range(c0, c1):
        a = x.dtype.type(scale[ch])
        b = x.dtype.type(shift[ch])
        for img in range(n):
            base = (img * c + ch) * s
            xs, ys = x[base : base + s], y[base : base + s]
            for i in range(s):
                ys[i] = xs[i] * a + b


def affine(x: np.ndarray, n: int, c: int, s: int, scale: np.ndarray, shift: np.ndarray, y: np.ndarray) -> None:
    """y = x * scale[ch] + shift[ch] over flat (n, c, s) arrays (scale, shift float64)."""
    parallel_for(_affine, c, x, n, c, s, scale, shift, y, work=x.size)


@njit(**KERNEL, fastmath=True)
def _grad_sums(c0, c1, g, x, n, c, s, mean, sum_g, sum_gx):
    """sum_g[ch] = sum of g, sum_gx[ch] = sum of g * (x - mean[ch]) over the channel."""
    for ch in range(c0, c1):
        m = x.dtype.type(mean[ch])
        tg = 0.0
        tgx = 0.0
        for img in range(n):
            base = (img * c + ch) * s
            for r0 in range(base, base + s, _RUN):
                gs, xs = g[r0 : min(r0 + _RUN, base + s)], x[r0 : min(r0 + _RUN, base + s)]
                ag = g.dtype.type(0.0)
                agx = g.dtype.type(0.0)
                for i in range(gs.shape[0]):
                    v = gs[i]
                    ag += v
                    agx += v * (xs[i] - m)
                tg += ag
                tgx += agx
        sum_g[ch] = tg
        sum_gx[ch] = tgx


def grad_sums(
    g: np.ndarray, x: np.ndarray, n: int, c: int, s: int, mean: np.ndarray, sum_g: np.ndarray, sum_gx: np.ndarray
) -> None:
    """Per-channel sums of g and of g * (x - mean) (float64 outputs), flat (n, c, s) arrays."""
    parallel_for(_grad_sums, c, g, x, n, c, s, mean, sum_g, sum_gx, work=2 * x.size)


@njit(**KERNEL, fastmath=True)
def _input_grad(c0, c1, g, x, n, c, s, mean, k, gm, xk, dx):
    for ch in range(c0, c1):
        m = x.dtype.type(mean[ch])
        kk = x.dtype.type(k[ch])
        a = x.dtype.type(gm[ch])
        b = x.dtype.type(xk[ch])
        for img in range(n):
            base = (img * c + ch) * s
            gs, xs, ds = g[base : base + s], x[base : base + s], dx[base : base + s]
            for i in range(s):
                ds[i] = kk * (gs[i] - a - (xs[i] - m) * b)


def input_grad(
    g: np.ndarray,
    x: np.ndarray,
    n: int,
    c: int,
    s: int,
    mean: np.ndarray,
    k: np.ndarray,
    gm: np.ndarray,
    xk: np.ndarray,
    dx: np.ndarray,
) -> None:
    """dx = k * (g - gm - (x - mean) * xk) per channel (the training-mode input gradient:
    k = w / sigma, gm = mean of g, xk = mean of g * x_hat / sigma), flat (n, c, s) arrays."""
    parallel_for(_input_grad, c, g, x, n, c, s, mean, k, gm, xk, dx, work=2 * x.size)
