"""The float32 row-mean kernel of the global average pool (backends/compiled/rowsum.py)."""

from __future__ import annotations

import numpy as np
import pytest

from convpool.backends.compiled import kernels

pytestmark = pytest.mark.skipif(not kernels.DIRECT, reason="needs numba's intrinsics (llvmlite)")


@pytest.mark.parametrize("plane", [1, 7, 15, 16, 17, 31, 32, 49, 64, 100])
@pytest.mark.parametrize("rows", [1, 2, 3, 130])
def test_row_means_against_float64(rows: int, plane: int) -> None:
    x = np.random.default_rng(rows * 1000 + plane).standard_normal((rows, plane)).astype(np.float32)
    y = np.full(rows, np.nan, dtype=np.float32)
    kernels.row_means(x, y, plane)  # each row exactly at the end of the array for the last one
    np.testing.assert_allclose(y, x.astype(np.float64).mean(axis=1), rtol=1e-6, atol=1e-6)


def test_row_means_divides_by_div_and_propagates_nan_inf() -> None:
    x = np.ones((5, 49), dtype=np.float32)
    x[1, 48] = np.nan  # in the masked tail vector
    x[2, 3] = np.inf
    x[3, 0], x[3, 1] = np.inf, -np.inf
    y = np.empty(5, dtype=np.float32)
    kernels.row_means(x, y, 7)
    assert y[0] == pytest.approx(7.0) and y[4] == pytest.approx(7.0)
    assert np.isnan(y[1]) and y[2] == np.inf and np.isnan(y[3])


def test_global_average_pool_uses_row_means_and_matches_mean() -> None:
    import convpool.functional as F

    x = np.random.default_rng(1).standard_normal((64, 300, 7, 7)).astype(np.float32)  # big enough for the kernel path
    y = F.adaptive_avg_pool2d(x, 1)
    np.testing.assert_allclose(y, x.astype(np.float64).mean(axis=(2, 3), keepdims=True), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel", ["row_means", "plane_sum"])
def test_large_float32_planes_stay_accurate(kernel: str) -> None:
    """Values near 1000 over a 1024x1024 plane: a float32 running sum drifts by ~5e-5
    relative; chunks added in float64 keep the mean to float32 rounding (PyTorch: 1e-4)."""
    x = (1000 + 0.1 * np.random.default_rng(3).random((2, 1024 * 1024))).astype(np.float32)
    y = np.empty(2, dtype=np.float32)
    getattr(kernels, kernel)(x, y, x.shape[1])
    np.testing.assert_allclose(y, x.astype(np.float64).mean(axis=1), rtol=2e-7)
