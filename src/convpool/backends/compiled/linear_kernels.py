"""The product of a few rows with a Linear layer's weights, compiled: ``y = x @ w.T (+ b)``
for ``x`` of at most :data:`GEMV_MAX_ROWS` rows (a batch-1 forward).

Each output is a dot product of a contiguous weight row with an input row, four weight
rows per pass over the input row (the input's loads shared), the sums vectorised (the
compiler may reassociate them: ``fastmath`` reassoc/contract only, so inf and NaN keep
IEEE behaviour).  NumPy's ``x @ w.T`` on one BLAS thread - the one-thread switch
included, which :func:`.runtime.one_blas_thread` pays on every call - took about 32 us for
LeNet's 1 x 3136 -> 64 and 10 us for 1 x 64 -> 10; this kernel 22 and 1.6 (Intel Xeon
under KVM, one thread, /tmp/m/gemv_try.py; about the same for numba's Haswell target).
The sums are ordered differently from BLAS's: equal to within float rounding, not bit
for bit.  Import only when numba is available.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .threads import KERNEL, parallel_for

GEMV_MAX_ROWS = 4  # rows of x up to which the kernel takes the product (more: BLAS's blocking wins)
_ROWS = 4  # weight rows per pass over an input row
# multiply-adds under which the product runs on the calling thread: it reads each weight
# once, at memory speed, so a hand-off (25-35 us) pays only for large weight matrices
SERIAL_MACS = 1 << 22


@njit(**KERNEL, fastmath={"reassoc", "contract"})
def _gemv(j0, j1, x, w, b, bias, y):
    """Output features ``4 * j0 .. 4 * j1`` (to w.shape[0]) of y = x @ w.T (+ b).  One loop
    body: a tail of 1-3 features repeats its last weight row (computed, not stored), so
    the compiler builds one vectorised loop, not two (first call 0.56 s of CPU to compile
    instead of 0.94 with a loop for the tail; the same run time and bits)."""
    n_out, k_in = w.shape
    lo, hi = _ROWS * j0, min(_ROWS * j1, n_out)
    for j in range(lo, hi, _ROWS):
        w0, w1, w2, w3 = w[j], w[min(j + 1, hi - 1)], w[min(j + 2, hi - 1)], w[min(j + 3, hi - 1)]
        for i in range(x.shape[0]):
            xi = x[i]
            v = xi[0]
            a0, a1, a2, a3 = v * w0[0], v * w1[0], v * w2[0], v * w3[0]
            for k in range(1, k_in):
                v = xi[k]
                a0 += v * w0[k]
                a1 += v * w1[k]
                a2 += v * w2[k]
                a3 += v * w3[k]
            for r, a in enumerate((a0, a1, a2, a3)):
                if j + r < hi:  # + 0.0: a sum of -0.0 products is +0.0, as BLAS's sums from +0 give
                    y[i, j + r] = (a + 0.0) + b[j + r] if bias else a + 0.0


def gemv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """``x @ w.T (+ b)`` for C-contiguous 2-d ``x`` (rows, K) and ``w`` (N, K) of one float
    dtype (K >= 1), ``b`` (N,) of it or None; returns a new (rows, N) array."""
    n_out = w.shape[0]
    y = np.empty((x.shape[0], n_out), dtype=x.dtype)
    bb = w[0] if b is None else b  # any array of the dtype: read only with a bias
    jobs = -(-n_out // _ROWS)
    if x.shape[0] * x.shape[1] * n_out < SERIAL_MACS:
        _gemv(0, jobs, x, w, bb, b is not None, y)
    else:
        parallel_for(_gemv, jobs, x, w, bb, b is not None, y)
    return y
