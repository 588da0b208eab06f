"""Compiled resampling kernels (numba) for :mod:`convpool.functional.upsample`; import
only when numba is available.

Resampling along one axis sees the array as ``(P, n, Q)``: ``P`` everything before the
axis, ``Q`` everything after it (contiguous).  Linear interpolation reads two taps per
output, ``out[p, j, q] = x[p, i0[j], q] * w0[j] + x[p, i1[j], q] * w1[j]`` (the NumPy
path's arithmetic, in the same order: the results are bit-identical); the backward
passes add each output's gradient back onto its taps.  Parallel over ``P`` on the kernel
threads (:func:`convpool.backends.compiled.threads.parallel_for`): each job owns a whole ``(n, Q)`` slab,
so the scatter needs no atomics.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .threads import KERNEL, parallel_for


@njit(**KERNEL)
def _linear_axis(j0, j1, x, i0, i1, w0, w1, out):
    for p in range(j0, j1):
        for j in range(out.shape[1]):
            a, b, u, v = i0[j], i1[j], w0[j], w1[j]
            for q in range(x.shape[2]):
                out[p, j, q] = x[p, a, q] * u + x[p, b, q] * v


@njit(**KERNEL)
def _linear_axis_t(j0, j1, g, i0, i1, w0, w1, out):
    for p in range(j0, j1):
        out[p] = 0
        for j in range(g.shape[1]):
            a, b, u, v = i0[j], i1[j], w0[j], w1[j]
            for q in range(g.shape[2]):
                out[p, a, q] += g[p, j, q] * u
                out[p, b, q] += g[p, j, q] * v


@njit(**KERNEL)
def _nearest_axis_t(j0, j1, g, index, out):
    for p in range(j0, j1):
        out[p] = 0
        for j in range(g.shape[1]):
            a = index[j]
            for q in range(g.shape[2]):
                out[p, a, q] += g[p, j, q]


def linear_axis(x: np.ndarray, i0: np.ndarray, i1: np.ndarray, w0: np.ndarray, w1: np.ndarray, out: np.ndarray) -> None:
    """out (P, o, Q) = two weighted taps of x (P, n, Q) per output along the middle axis."""
    parallel_for(_linear_axis, x.shape[0], x, i0, i1, w0, w1, out, work=out.size)


def linear_axis_t(
    g: np.ndarray, i0: np.ndarray, i1: np.ndarray, w0: np.ndarray, w1: np.ndarray, out: np.ndarray
) -> None:
    """out (P, n, Q) = the transpose of :func:`linear_axis` applied to g (P, o, Q)."""
    parallel_for(_linear_axis_t, g.shape[0], g, i0, i1, w0, w1, out, work=g.size + out.size)


def nearest_axis_t(g: np.ndarray, index: np.ndarray, out: np.ndarray) -> None:
    """out (P, n, Q) = the transpose of the gather ``x[:, index, :]``, applied to g (P, o, Q)."""
    parallel_for(_nearest_axis_t, g.shape[0], g, index, out, work=g.size + out.size)
