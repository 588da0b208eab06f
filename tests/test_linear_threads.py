"""Linear's backward runs its two products on two kernel threads where it pays: the same
arrays, bit for bit, as the products one after the other, whatever the thread setting."""

from __future__ import annotations

import numpy as np
import pytest

from convpool import config
from convpool.functional.activation import linear_backward, linear_forward


@pytest.mark.parametrize("shape", [(64, 3136, 64), (3, 5, 2), (2, 4, 7, 3)])  # (*batch, in, out)
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_equals_products_in_turn(shape: tuple[int, ...], threads: int, dtype: type) -> None:
    rng = np.random.default_rng(0)
    *batch, n_in, n_out = shape
    x = rng.standard_normal((*batch, n_in)).astype(dtype)
    w = rng.standard_normal((n_out, n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    g = rng.standard_normal((*batch, n_out)).astype(dtype)
    _, ctx = linear_forward(x, w, b)
    g2, x2 = g.reshape(-1, n_out), x.reshape(-1, n_in)
    with config.tuning(threads=threads, thread_min_work=0):
        dx, dw, db = linear_backward(g, ctx)
    np.testing.assert_array_equal(dw, g2.T @ x2)
    np.testing.assert_array_equal(dx, g @ w)
    assert db is not None
    np.testing.assert_array_equal(db, g2.sum(axis=0))
    assert dx.shape == x.shape and dw.shape == w.shape


def test_backward_error_is_raised() -> None:
    """A gradient of the wrong shape: the check's ValueError, before any thread runs."""
    x = np.ones((4, 3), np.float32)
    _, ctx = linear_forward(x, np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        linear_backward(np.ones((4, 5), np.float32), ctx)
