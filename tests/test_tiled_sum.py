"""Window sums over tiles ("tiles" in the pool table, :mod:`convpool.backends.compiled.tiled_sum`):
the average pool's numerator where stride == kernel, against the NumPy reference
(integer inputs: every sum exact) and PyTorch's average pools, forward and backward."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convpool
from convpool import config
from convpool.backends.compiled import kernels as _kernels
from convpool.backends.compiled import pool_tiles, tiled_sum
from convpool.backends.numpy import pool as reference
from convpool.functional._reduce import pool_problem, reduce_window_backward, reduce_window_forward
from convpool.functional.pool import avg_pool_forward
from convpool.functional.reductions import get_reduction

pytestmark = pytest.mark.skipif(
    not _kernels.enabled() or "compiled" not in convpool.available_backends(),
    reason="the tiled sums are compiled kernels (numba not installed or disabled)",
)


@st.composite
def tiles(draw):  # type: ignore[no-untyped-def]
    """Tiled windows (stride == kernel), sizes with a remainder no window reads."""
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4 if nd < 3 else 3)) for _ in range(nd))
    size = tuple(k * draw(st.integers(1, 12 if nd == 1 else 4)) + draw(st.integers(0, k - 1)) for k in kernel)
    return nd, size, kernel


def check(x: np.ndarray, nd: int, kernel: tuple[int, ...]) -> None:
    _, ctx = reduce_window_forward(x, "sum", nd, kernel)
    problem = pool_problem(x, get_reduction("sum"), ctx.work, ctx.mode)
    assert pool_tiles.why_not(problem) is None
    y, state = pool_tiles.forward(problem)
    y_ref, state_ref = reference.forward(problem)
    np.testing.assert_array_equal(y, y_ref)
    dy = np.random.default_rng(1).integers(-4, 5, y.shape).astype(x.dtype)
    gx_ref = reference.backward(dy, state_ref)
    np.testing.assert_array_equal(pool_tiles.backward(dy, state), gx_ref)
    assert y.dtype == x.dtype
    # every element written, the ones no window reads too: a gradient array full of NaN
    k = (1,) * (3 - nd) + kernel
    g = np.full((x.shape[0] * x.shape[1],) + (1,) * (3 - nd) + x.shape[2:], np.nan, x.dtype)
    tiled_sum.spread_tiled(np.ascontiguousarray(dy).reshape((g.shape[0],) + (1,) * (3 - nd) + y.shape[2:]), *k, g)
    np.testing.assert_array_equal(g.reshape(x.shape), gx_ref)


@settings(max_examples=100)
@given(tiles(), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_tiled_sum_equals_reference(case, dtype, seed):  # type: ignore[no-untyped-def]
    nd, size, kernel = case
    x = np.random.default_rng(seed).integers(-8, 9, (2, 3, *size)).astype(dtype)
    check(x, nd, kernel)


@settings(max_examples=20)
@given(tiles(), st.integers(0, 2**16))
def test_tiled_sum_on_several_threads(case, seed):  # type: ignore[no-untyped-def]
    nd, size, kernel = case
    x = np.random.default_rng(seed).integers(-8, 9, (3, 5, *size)).astype(np.float32)
    with config.tuning(threads=3, thread_min_work=0):
        check(x, nd, kernel)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, k",
    [((4, 3, 64), 2), ((4, 3, 67), 3), ((2, 3, 20, 21), 2), ((2, 3, 13, 20), (3, 4)), ((2, 2, 6, 8, 9), (2, 2, 3))],
)
def test_avg_pool_on_tiles_as_pytorch(shape, k, dtype):  # type: ignore[no-untyped-def]
    """The public average pool runs "tiles" (2x2 has kernels of its own) and equals
    PyTorch's, forward and backward."""
    nd = len(shape) - 2
    rng = np.random.default_rng(shape[-1])
    x = rng.standard_normal(shape).astype(dtype)
    y, ctx = avg_pool_forward(x, nd, k)
    assert ctx.name == ("tiles-2x2" if (nd, k) == (2, 2) else "tiles")
    dy = rng.standard_normal(y.shape).astype(dtype)
    pool = (torch.nn.functional.avg_pool1d, torch.nn.functional.avg_pool2d, torch.nn.functional.avg_pool3d)[nd - 1]
    xt = torch.tensor(x, requires_grad=True)
    yt = pool(xt, k)
    (gt,) = torch.autograd.grad(yt, (xt,), torch.tensor(dy))
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-13, "atol": 1e-13}
    np.testing.assert_allclose(y, yt.detach().numpy(), **tol)
    np.testing.assert_allclose(reduce_window_backward(dy, ctx), gt.numpy(), **tol)
