"""The convolution kernel's packed weights: blocks of BLOCK_OC output channels, each
entry's weights for the block side by side (:func:`pack_weights`).

The packing is one compiled pass on every call, not a cache: a weight array can change
in place (an optimiser's step, a user's ``w[...] = ...``) without anything a cache could
key on, and checking that it did not would read the weights as the pass does.  NumPy's
zero-fill, copy and transposing copy (a 4-float inner run) took 26-34 us for LeNet's
second layer (64 x 32 x 3 x 3, Intel Xeon under KVM); the pass takes a few."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from ..threads import KERNEL
from .layout import _ro
from .tile import BLOCK_OC


def _pack_kernel(block: int) -> Any:
    """The packing pass for blocks of ``block`` output channels.  A factory, so that the
    block is a constant the compiler unrolls (and numba's disk cache keys on it)."""

    @njit(**KERNEL)
    def pack(w, out):
        """out[g, b, e, r] = w[g, b * block + r, e], zero past co."""
        groups, co, n_ent = w.shape
        nb = out.shape[1]
        for gi in range(groups):
            for b in range(nb):
                o0 = b * block
                dst = out[gi, b]
                if o0 + block <= co:  # a whole block: ``block`` rows read side by side
                    src = w[gi, o0 : o0 + block]
                    for e in range(n_ent):
                        for r in range(block):
                            dst[e, r] = src[r, e]
                else:
                    for e in range(n_ent):
                        for r in range(block):
                            dst[e, r] = w[gi, o0 + r, e] if o0 + r < co else 0.0

    return pack


_pack = _pack_kernel(BLOCK_OC)


def pack_weights(w: np.ndarray) -> np.ndarray:
    """(groups, co, E) weights -> flat (groups, ceil(co/BLOCK_OC), E, BLOCK_OC) float32,
    zero past co: the order in which :func:`.wide.conv_wide` reads them."""
    groups, co, n_ent = w.shape
    nb = -(-co // BLOCK_OC)
    packed = np.empty((groups, nb, n_ent, BLOCK_OC), dtype=np.float32)
    _pack(_ro(np.ascontiguousarray(w, dtype=np.float32)), packed)
    return packed.ravel()
