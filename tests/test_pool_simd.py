"""The float32 2x2 max/min pool forward on explicit vectors (backends/compiled/pool_simd.py):
the scalar kernel's values and positions bit for bit - ties (the first in scan order),
NaN (the first), infinities, signed zeros - on rows shorter and longer than a vector, odd
leftover rows and columns, several threads' chunks (no step spills into another's
planes); PyTorch's values and indices through the layer; the path the forward takes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from convpool.backends.compiled import kernels as _kernels
from convpool.config import tuning
from convpool.nn.pool import MaxPool2d, MaxPool3d

pytestmark = pytest.mark.skipif(not (_kernels.enabled() and _kernels.DIRECT), reason="no explicit vectors here")


def _vector_rows() -> bool:
    from convpool.backends.compiled import pool_2x2

    return bool(pool_2x2.vector_rows())


SPECIAL = np.array([0.0, -0.0, 1.0, 2.0, 2.0, -1.0, np.nan, np.inf, -np.inf], dtype=np.float32)


def _both(x: np.ndarray, sign: float) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    from convpool.backends.compiled import pool_simd, tiled_kernels

    out = (x.shape[0], x.shape[1], x.shape[2] // 2, x.shape[3] // 2)
    y, pos = np.full(out, 7.0, np.float32), np.full(out, 9, np.int8)
    y0, pos0 = np.empty(out, np.float32), np.empty(out, np.int8)
    pool_simd.select_2x2(x, sign, y, pos)
    tiled_kernels.select_2x2(x, sign, y0, pos0)
    return (y, pos), (y0, pos0)


@settings(max_examples=150, deadline=None)
@given(
    planes=st.integers(1, 5),
    depth=st.integers(1, 2),
    h=st.integers(2, 9),
    w=st.integers(2, 70),
    special=st.booleans(),
    sign=st.sampled_from([1.0, -1.0]),
    seed=st.integers(0, 2**16),
)
def test_matches_the_scalar_kernel(
    planes: int, depth: int, h: int, w: int, special: bool, sign: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    shape = (planes, depth, h, w)
    x = rng.choice(SPECIAL, size=shape) if special else rng.standard_normal(shape).astype(np.float32)
    (y, pos), (y0, pos0) = _both(np.ascontiguousarray(x, dtype=np.float32), sign)
    np.testing.assert_array_equal(pos, pos0)
    np.testing.assert_array_equal(y, y0)  # NaN where NaN
    np.testing.assert_array_equal(np.signbit(y), np.signbit(y0))


@pytest.mark.parametrize("threads", [2, 3])
def test_threads_chunks_do_not_spill(threads: int) -> None:
    rng = np.random.default_rng(threads)
    for shape in ((7, 1, 28, 28), (5, 1, 14, 14), (3, 1, 6, 40), (9, 1, 2, 2)):
        x = rng.choice(SPECIAL, size=shape)
        with tuning(threads=threads, thread_min_work=0):
            (y, pos), (y0, pos0) = _both(x, 1.0)
        np.testing.assert_array_equal(pos, pos0)
        np.testing.assert_array_equal(y, y0)


@pytest.mark.skipif(not _vector_rows(), reason="this tile keeps the scalar 2x2 kernel")
def test_layers_match_torch_and_take_the_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    from convpool.backends.compiled import pool_simd

    calls: list[tuple[int, ...]] = []
    real = pool_simd.select_2x2
    monkeypatch.setattr(pool_simd, "select_2x2", lambda x, s, y, p: (calls.append(x.shape), real(x, s, y, p))[1])
    rng = np.random.default_rng(0)
    x = rng.choice(SPECIAL, size=(2, 3, 15, 29))
    np.testing.assert_array_equal(MaxPool2d(2)(x), torch.nn.functional.max_pool2d(torch.tensor(x), 2).numpy())
    x = rng.choice(SPECIAL[SPECIAL == SPECIAL], size=(2, 3, 15, 29))  # ties, no NaN (PyTorch: the last NaN)
    y, idx = MaxPool2d(2, return_indices=True)(x)
    ty, tidx = torch.nn.functional.max_pool2d(torch.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    x3 = rng.standard_normal((2, 2, 3, 6, 8)).astype(np.float32)
    np.testing.assert_array_equal(
        MaxPool3d((1, 2, 2))(x3), torch.nn.functional.max_pool3d(torch.tensor(x3), (1, 2, 2)).numpy()
    )
    MaxPool2d(2)(x.astype(np.float64))  # float64: the scalar kernel
    assert calls == [(6, 1, 15, 29), (6, 1, 15, 29), (4, 3, 6, 8)]


def test_backward_from_the_vector_positions() -> None:
    rng = np.random.default_rng(1)
    x = rng.choice(SPECIAL[SPECIAL == SPECIAL], size=(1, 4, 14, 14))  # ties and infinities, no NaN
    pool = MaxPool2d(2)
    y = pool(x)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(xt, 2).backward(torch.tensor(gy))
    assert xt.grad is not None
    np.testing.assert_array_equal(pool.backward(gy), xt.grad.numpy())


def test_the_vector_kernel_refuses_arrays_it_cannot_write() -> None:
    """The kernel writes through flat views without bounds checks: dtype, shape and
    layout are checked first."""
    from convpool.backends.compiled import pool_simd

    x = np.zeros((1, 2, 4, 4), np.float32)
    y, pos = np.empty((1, 2, 2, 2), np.float32), np.empty((1, 2, 2, 2), np.int8)
    with pytest.raises(ValueError, match="int8 pos"):
        pool_simd.select_2x2(x, 1.0, y, pos.astype(np.int32))
    with pytest.raises(ValueError, match="must be"):
        pool_simd.select_2x2(x, 1.0, y[:, :, :1], pos[:, :, :1])
    with pytest.raises(ValueError, match="C-contiguous"):
        pool_simd.select_2x2(np.zeros((1, 2, 4, 8), np.float32)[..., ::2], 1.0, y, pos)
    pool_simd.select_2x2(x, 1.0, y, pos)  # the checks pass what the forward hands it
    assert not y.any()
