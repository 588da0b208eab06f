"""The conv bias's compiled add over output planes (backends/compiled/im2col.py plane_add),
taken by conv_forward for outputs of 16384 elements and more."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convpool.backends.compiled import kernels
from convpool.functional.conv import conv_forward

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="needs numba")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 5, 7), (4, 3, 2, 9, 11), (2, 130, 1)])
def test_plane_add_equals_broadcast_add(shape: tuple[int, ...], dtype: type) -> None:
    rng = np.random.default_rng(len(shape))
    y = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    want = y + b.reshape((-1,) + (1,) * (len(shape) - 2))
    kernels.plane_add(y.reshape(shape[0] * shape[1], -1), b)
    np.testing.assert_array_equal(y, want)  # one add per element: bit-equal


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_bias_on_large_outputs_against_torch(dtype: type) -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 3, 40, 40)).astype(dtype)  # output 4 x 8 x 38 x 38 = 46,208 elements
    w = rng.standard_normal((8, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    y, _ = conv_forward(x, w, b, 1, 0, 1, 1, nd=2)
    want = torch.nn.functional.conv2d(*(torch.from_numpy(a) for a in (x, w, b))).numpy()
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)
