"""Compiled resampling kernels (numba) for :mod:`convpool.functional.upsample`; import
only when numba is available.

Resampling along one axis sees the array as ``(P, n, Q)``: ``P`` everything before the
axis, ``Q`` everything after it (contiguous).  Linear interpolation reads two taps per
output, ``out[p, j, q] = x[p, i0[j], q] * w0[j] + x[p, i1[j], q] * w1[j]`` (the NumPy
path's arithmetic, in the same order: the results are bit-identical); the backward
passes add each output's gradient back onto its taps.  Parallel over ``P``: each thread
owns whole ``(n, Q)`` slabs, so the scatter needs no atomics.
"""

from __future__ import annotations

from numba import njit, prange


@njit(parallel=True, cache=True)
def linear_axis(x, i0, i1, w0, w1, out):
    """out (P, o, Q) = two weighted taps of x (P, n, Q) per output along the middle axis."""
    for p in prange(x.shape[0]):
        for j in range(out.shape[1]):
            a, b, u, v = i0[j], i1[j], w0[j], w1[j]
            for q in range(x.shape[2]):
                out[p, j, q] = x[p, a, q] * u + x[p, b, q] * v


@njit(parallel=True, cache=True)
def linear_axis_t(g, i0, i1, w0, w1, out):
    """out (P, n, Q) = the transpose of :func:`linear_axis` applied to g (P, o, Q)."""
    for p in prange(g.shape[0]):
        out[p] = 0
        for j in range(g.shape[1]):
            a, b, u, v = i0[j], i1[j], w0[j], w1[j]
            for q in range(g.shape[2]):
                out[p, a, q] += g[p, j, q] * u
                out[p, b, q] += g[p, j, q] * v


@njit(parallel=True, cache=True)
def nearest_axis_t(g, index, out):
    """out (P, n, Q) = the transpose of the gather ``x[:, index, :]``, applied to g (P, o, Q)."""
    for p in prange(g.shape[0]):
        out[p] = 0
        for j in range(g.shape[1]):
            a = index[j]
            for q in range(g.shape[2]):
                out[p, a, q] += g[p, j, q]
