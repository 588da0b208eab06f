"""Compiled window sums over tiles (numba): windows with stride == kernel, no padding,
no dilation (the average pool's numerator, e.g. ``avg_pool1d(k, stride=k)``), in
whole-row loops without index tables.  Import only when numba is available.

The forward adds a window's elements in scan order, starting from 0 - as PyTorch's
average pool does, so the sums round alike; the backward writes every input element
once (its window's gradient, or 0 where no window reaches in floor mode).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .threads import KERNEL_O2, parallel_for


@njit(**KERNEL_O2)
def _sum_tiled(j0, j1, x, k0, k1, k2, y):
    o0, o1, o2 = y.shape[1], y.shape[2], y.shape[3]
    zero = y.dtype.type(0.0)
    for p in range(j0, j1):
        for a in range(o0):
            for b in range(o1):
                yr = y[p, a, b]
                for c in range(o2):
                    yr[c] = zero
                for i in range(k0):
                    for j in range(k1):
                        xr = x[p, a * k0 + i, b * k1 + j]
                        if k2 == 2:  # a constant stride: vectorised
                            for c in range(o2):
                                yr[c] = (yr[c] + xr[2 * c]) + xr[2 * c + 1]
                        else:
                            for c in range(o2):
                                s = yr[c]
                                for m in range(k2):
                                    s += xr[c * k2 + m]
                                yr[c] = s


def sum_tiled(x: np.ndarray, k0: int, k1: int, k2: int, y: np.ndarray) -> None:
    """Sum of every tiled window.  x: (P, D, H, W); y: (P, o0, o1, o2)."""
    parallel_for(_sum_tiled, x.shape[0], x, k0, k1, k2, y, work=x.size)


@njit(**KERNEL_O2)
def _spread_tiled(j0, j1, dy, k0, k1, k2, g):
    o0, o1, o2 = dy.shape[1], dy.shape[2], dy.shape[3]
    n1, n2 = g.shape[2], g.shape[3]
    zero = g.dtype.type(0.0)
    for p in range(j0, j1):
        for u in range(o0 * k0, g.shape[1]):  # depth no window reads
            for h in range(n1):
                for m in range(n2):
                    g[p, u, h, m] = zero
        for a in range(o0):
            for i in range(k0):
                u = a * k0 + i
                for h in range(o1 * k1, n1):  # rows no window reads
                    for m in range(n2):
                        g[p, u, h, m] = zero
                for b in range(o1):
                    d = dy[p, a, b]
                    for j in range(k1):
                        gr = g[p, u, b * k1 + j]
                        if k2 == 2:
                            for c in range(o2):
                                gr[2 * c] = d[c]
                                gr[2 * c + 1] = d[c]
                        else:
                            for c in range(o2):
                                for m in range(k2):
                                    gr[c * k2 + m] = d[c]
                        for m in range(o2 * k2, n2):  # columns no window reads
                            gr[m] = zero


def spread_tiled(dy: np.ndarray, k0: int, k1: int, k2: int, g: np.ndarray) -> None:
    """Adjoint of :func:`sum_tiled`: g (P, D, H, W), any contents, every element written once."""
    parallel_for(_spread_tiled, g.shape[0], dy, k0, k1, k2, g, work=g.size)
