"""The convolution kernel's weights: read where they lie, one row of entries per output
channel (:func:`weight_rows`).

The kernel's register tile takes BLOCK_OC output channels at a time and broadcasts each
row's weight of an entry from its own row (:func:`.simd.row_tile`'s ``fma``: four
streams of weights, each read in order).  It used to read them packed - each entry's
BLOCK_OC weights side by side, made by a compiled pass on every call - which was no
faster (the kernel alone, packed / as they lie, paired medians in one process, Intel Xeon
"rocketlake", one thread: 0.99-1.03 natively and under numba for Haswell on 32->64 3x3
28x28, 64->128 3x3, batch-1 32->64 14x14, 1->6 5x5 and 3->32 3x3 convolutions), cost
7-27 us a call at batch 1 and 0.25-0.44 s of CPU to compile in a process's first
convolution."""

from __future__ import annotations

import numpy as np

from .layout import _ro
from .tile import BLOCK_OC


def weight_rows(w: np.ndarray) -> np.ndarray:
    """(groups, co, E) weights -> flat read-only (groups, ceil(co/BLOCK_OC) * BLOCK_OC, E)
    float32: the rows as they are when they already fill whole blocks (no copy for C-order
    float32), else a copy with zero rows past ``co`` (a block may start at the last
    channel; its extra rows are computed and never stored)."""
    groups, co, n_ent = w.shape
    padded = -(-co // BLOCK_OC) * BLOCK_OC
    if padded == co:
        rows = np.ascontiguousarray(w, dtype=np.float32)
    else:
        rows = np.zeros((groups, padded, n_ent), dtype=np.float32)
        rows[:, :co] = w
    return _ro(rows.reshape(-1))
