"""Linear's forward on a few rows (a batch-1 forward) runs on the compiled product
(convpool.backends.compiled.linear_kernels): PyTorch's values in float64 and float32,
every shape of input, bias or none, the kernel's unrolled and leftover output rows,
inf and NaN where BLAS has them, and the path it takes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from convpool.backends.compiled import kernels as _kernels
from convpool.config import tuning
from convpool.functional.activation import linear_forward
from convpool.nn.layers import Linear

needs_kernels = pytest.mark.skipif(not _kernels.enabled(), reason="the compiled backend is off")


def _torch(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    t = torch.nn.functional.linear(
        torch.tensor(x, dtype=torch.float64),
        torch.tensor(w, dtype=torch.float64),
        None if b is None else torch.tensor(b, dtype=torch.float64),
    )
    return t.numpy()


@settings(max_examples=120, deadline=None)
@given(
    lead=st.sampled_from([(), (1,), (2,), (3,), (4,), (5,), (1, 1), (2, 2), (1, 3)]),
    k=st.integers(1, 70),
    n=st.integers(1, 11),
    bias=st.booleans(),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
def test_few_rows_match_torch(lead: tuple[int, ...], k: int, n: int, bias: bool, dtype: type, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(lead + (k,)).astype(dtype)
    w = rng.standard_normal((n, k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32) if bias else None
    y, _ = linear_forward(x, w, b)
    assert y.shape == lead + (n,) and y.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(y, _torch(x, w, b), rtol=tol, atol=tol * k)


def test_lenet_sizes_float32() -> None:
    rng = np.random.default_rng(0)
    for k, n in ((3136, 64), (64, 10)):
        x = rng.random((1, k), dtype=np.float32)
        w = (rng.random((n, k), dtype=np.float32) - 0.5) / np.sqrt(k)
        b = rng.random(n, dtype=np.float32)
        y, _ = linear_forward(x, w, b)
        np.testing.assert_allclose(y, _torch(x, w, b), rtol=1e-5, atol=1e-5)


def test_strided_input_and_weight() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 9, 2))[:, ::2, 0]  # (2, 5), not contiguous
    w = rng.standard_normal((5, 7)).T  # (7, 5), Fortran order
    y, _ = linear_forward(x, w)
    np.testing.assert_allclose(y, _torch(x, w, None), rtol=1e-12, atol=1e-12)


def test_inf_and_nan_as_blas() -> None:
    x = np.array([[np.nan, 1.0, 2.0], [np.inf, 0.0, 1.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    w = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [2.0, 2.0, 2.0]], np.float32)
    y, _ = linear_forward(x, w)
    with np.errstate(invalid="ignore"):
        ref = x.astype(np.float64) @ w.T.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(y[~np.isnan(y)], ref[~np.isnan(ref)].astype(np.float32))


@needs_kernels
def test_few_rows_take_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    from convpool.backends.compiled import linear_kernels

    calls: list[tuple[int, ...]] = []
    real = linear_kernels.gemv

    def spy(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        calls.append(x.shape)
        return real(x, w, b)

    monkeypatch.setattr(linear_kernels, "gemv", spy)
    fc = Linear(20, 6)
    rng = np.random.default_rng(2)
    for rows in (1, 4, 5, 64):
        x = rng.random((rows, 20), dtype=np.float32)
        np.testing.assert_allclose(fc(x), _torch(x, fc.weight.data, fc.bias.data), rtol=1e-5, atol=1e-5)
    assert calls == [(1, 20), (4, 20)]  # 5 and 64 rows: BLAS


@needs_kernels
def test_large_product_splits_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Over the kernel's serial size the output rows are split over threads: the same bits."""
    from convpool.backends.compiled import linear_kernels

    rng = np.random.default_rng(3)
    x, w, b = rng.random((2, 300), dtype=np.float32), rng.random((45, 300), dtype=np.float32), rng.random(45)
    one = linear_forward(x, w, b.astype(np.float32))[0]
    monkeypatch.setattr(linear_kernels, "SERIAL_MACS", 0)
    split, run = [], linear_kernels.parallel_for
    monkeypatch.setattr(linear_kernels, "parallel_for", lambda *a, **k: split.append(1) or run(*a, **k))
    with tuning(threads=3):  # the tests run on one thread: split over three regardless
        np.testing.assert_array_equal(linear_forward(x, w, b.astype(np.float32))[0], one)
    assert split, "the product was not split"


def test_backward_unchanged_on_one_row() -> None:
    rng = np.random.default_rng(4)
    fc = Linear(30, 7)
    x = rng.random((1, 30), dtype=np.float32)
    gy = rng.random((1, 7), dtype=np.float32)
    fc(x)
    gx = fc.backward(gy)
    np.testing.assert_allclose(gx, gy @ fc.weight.data, rtol=1e-6)
    assert fc.weight.grad is not None and fc.bias is not None and fc.bias.grad is not None
    np.testing.assert_allclose(fc.weight.grad, gy.T @ x, rtol=1e-6)
    np.testing.assert_allclose(fc.bias.grad, gy[0], rtol=1e-6)


@needs_kernels
def test_no_output_features_and_signed_zeros_as_blas() -> None:
    """An empty weight gives an empty product (as BLAS and PyTorch), and a sum of -0.0
    products is +0.0 (BLAS sums from +0), with and without a bias."""
    x = np.ones((1, 3), np.float32)
    assert linear_forward(x, np.zeros((0, 3), np.float32))[0].shape == (1, 0)
    neg = np.full((1, 5), -0.0, np.float32)
    for bias in (None, np.full(6, -0.0, np.float32)):
        y = linear_forward(neg, np.ones((6, 5), np.float32), bias)[0]
        want = _torch(neg, np.ones((6, 5), np.float32), bias)
        assert np.array_equal(np.signbit(y), np.signbit(want)) and not np.signbit(y).any()
