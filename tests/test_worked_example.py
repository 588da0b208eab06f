"""The 5x5 / 3x3 worked example, computed by hand (see docs in examples.py)."""

from __future__ import annotations

import numpy as np

import convpool.functional as F
from convpool.examples import INPUT, KERNELS, centre_pixel

X = INPUT[None, None]
K = KERNELS["vertical-edge"][None, None]

# out[i, j] = (column sums of rows i..i+2)[j] - (...)[j+2], worked out by hand
CONV_VALID = [[-3, 4, -3], [-3, 4, -1], [3, 2, 1]]
MAX_VALID = [[5, 5, 6], [5, 5, 5], [7, 5, 5]]


def test_centre_pixel_products_and_max():
    c = centre_pixel(INPUT, KERNELS["vertical-edge"])
    assert c["window"].tolist() == [[4, 1, 2], [1, 5, 0], [3, 0, 2]]
    assert c["conv"] == 4.0  # 4 - 2 + 1 + 3 - 2
    assert c["max"] == 5.0 and c["max_at"] == (2, 2)


def test_valid_and_strided_outputs():
    assert F.conv2d(X, K)[0, 0].tolist() == CONV_VALID
    assert F.max_pool2d(X, 3, 1)[0, 0].tolist() == MAX_VALID
    assert F.conv2d(X, K, stride=2)[0, 0].tolist() == [[-3, -3], [3, 1]]
    assert F.max_pool2d(X, 3, 2)[0, 0].tolist() == [[5, 6], [7, 5]]


def test_zero_padding_keeps_size_and_corner_values():
    conv = F.conv2d(X, K, padding=1)[0, 0]
    pool = F.max_pool2d(X, 3, 1, 1)[0, 0]
    assert conv.shape == pool.shape == (5, 5)
    # top-left corner: window [[0,0,0],[0,1,2],[0,0,4]] -> conv = 0*1 + ... = -(2 + 4) = -6
    assert conv[0, 0] == -6.0
    # max pooling pads with -inf: the corner is max(1, 2, 0, 4) = 4, padding never wins
    assert pool[0, 0] == 4.0


def test_gradients_by_hand():
    y, ctx = F.reduce_window_forward(X, "max", 2, 3, 1)
    g = F.reduce_window_backward(np.ones_like(y), ctx)[0, 0]
    # the 5 at the centre wins 7 of the 9 windows, the 6 and the 7 one each
    assert g[2, 2] == 7 and g[0, 4] == 1 and g[4, 0] == 1 and g.sum() == 9
    y, ctx = F.conv_forward(X, K, np.zeros(1), 1, 0)
    _, dw, db = F.conv_backward(np.ones_like(y), ctx)
    assert dw[0, 0, 0, 0] == INPUT[:3, :3].sum() == 16  # sum of the top-left 3x3 block
    assert db.tolist() == [9.0]
