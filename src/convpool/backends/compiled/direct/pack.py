"""The convolution kernel's packed weights: blocks of BLOCK_OC output channels, each
entry's weights for the block side by side (:func:`pack_weights`)."""

from __future__ import annotations

import numpy as np

from .tile import BLOCK_OC


def pack_weights(w: np.ndarray) -> np.ndarray:
    """(groups, co, E) weights -> flat (groups, ceil(co/BLOCK_OC), E, BLOCK_OC) float32,
    zero past co: the order in which :func:`.wide.conv_wide` reads them."""
    groups, co, n_ent = w.shape
    nb = -(-co // BLOCK_OC)
    packed = np.zeros((groups, nb * BLOCK_OC, n_ent), dtype=np.float32)
    packed[:, :co] = w
    return np.ascontiguousarray(packed.reshape(groups, nb, BLOCK_OC, n_ent).transpose(0, 1, 3, 2)).ravel()
