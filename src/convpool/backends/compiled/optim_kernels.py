"""Optimiser steps as one compiled pass per parameter: Adam/AdamW and SGD with momentum.

NumPy's version (:mod:`convpool.optim`) makes a temporary per operation - Adam's step
is a dozen passes over the parameter - on one core.  These kernels do the same
arithmetic, in the same order and in the parameter's dtype (the scalars arrive already
cast to it; no fastmath, so no reassociation and no fused multiply-add), so their
result equals NumPy's bit for bit; each element is read and written once, and the
elements are split over the kernel threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .threads import KERNEL, parallel_for

BLOCK = 1 << 14  # elements per job


@njit(**KERNEL, error_model="numpy")  # IEEE division as NumPy's: no zero check, so it vectorises
def _adam(j0, j1, p, g, m, v, c1, b2, c2, step, sqrt_bc2, eps, decay, l2):
    lo, hi = j0 * BLOCK, min(j1 * BLOCK, p.shape[0])
    ps, gs, ms, vs = p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi]  # views from 0: no wraparound
    for i in range(ps.shape[0]):
        pi = ps[i] * decay  # AdamW's decoupled decay (1 otherwise), before the step
        gi = gs[i] + l2 * pi if l2 != 0 else gs[i]  # Adam's L2 term
        mi = ms[i] + c1 * (gi - ms[i])
        vi = vs[i] * b2 + c2 * gi * gi
        ms[i] = mi
        vs[i] = vi
        ps[i] = pi - step * mi / (np.sqrt(vi) / sqrt_bc2 + eps)


def adam(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    c1: np.floating,
    b2: np.floating,
    c2: np.floating,
    step: np.floating,
    sqrt_bc2: np.floating,
    eps: np.floating,
    decay: np.floating,
    l2: np.floating,
) -> None:
    """One Adam step on flat arrays of one dtype, in place: ``p *= decay``;
    ``g += l2 * p``; ``m += c1 * (g - m)``; ``v = v * b2 + c2 * g * g``;
    ``p -= step * m / (sqrt(v) / sqrt_bc2 + eps)`` (scalars of the arrays' dtype)."""
    args = (p, g, m, v, c1, b2, c2, step, sqrt_bc2, eps, decay, l2)
    parallel_for(_adam, -(-p.shape[0] // BLOCK), *args, work=4 * p.size)


@njit(**KERNEL)
def _sgd(j0, j1, p, g, buf, lr, wd, momentum, c, first, nesterov):
    lo, hi = j0 * BLOCK, min(j1 * BLOCK, p.shape[0])
    ps, gs, bs = p[lo:hi], g[lo:hi], buf[lo:hi]
    for i in range(ps.shape[0]):
        gi = gs[i] + wd * ps[i] if wd != 0 else gs[i]
        if momentum != 0:
            b = gi if first else bs[i] * momentum + c * gi
            bs[i] = b
            gi = gi + momentum * b if nesterov else b
        ps[i] = ps[i] - lr * gi


def sgd(
    p: np.ndarray,
    g: np.ndarray,
    buf: np.ndarray,
    lr: np.floating,
    wd: np.floating,
    momentum: np.floating,
    c: np.floating,
    first: bool,
    nesterov: bool,
) -> None:
    """One SGD step on flat arrays of one dtype, in place: ``g += wd * p``; with
    momentum ``buf = g`` (``first``) or ``buf * momentum + c * g``, then ``g = buf`` (or
    ``g + momentum * buf``, Nesterov); ``p -= lr * g``."""
    parallel_for(_sgd, -(-p.shape[0] // BLOCK), p, g, buf, lr, wd, momentum, c, first, nesterov, work=3 * p.size)
