"""Max and min over tiled windows ("tiles" in the pool table): the general kernel
(:func:`convpool.backends.compiled.tiled_kernels.select_tiled`) and the windows two wide
along the last dimension (:mod:`convpool.backends.compiled.tiled_pairs`: pairs alone,
``max_pool1d(2)``, and ``(k0, k1, 2)``, ``max_pool3d(2)``),
against the NumPy reference - values, winners (ties: the first; NaN wins, the first),
input gradients, flat indices - and ``max_pool1d(2)`` against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convpool
from convpool import config
from convpool.backends.compiled import kernels as _kernels
from convpool.backends.compiled import pool_tiles
from convpool.backends.numpy import pool as reference
from convpool.functional._reduce import flat_indices, pool_problem, reduce_window_backward, reduce_window_forward
from convpool.functional.reductions import get_reduction

pytestmark = pytest.mark.skipif(
    not _kernels.enabled() or "compiled" not in convpool.available_backends(),
    reason="the tiled selections are compiled kernels (numba not installed or disabled)",
)


@st.composite
def tiles(draw, pairs: bool = False):  # type: ignore[no-untyped-def]
    """Tiled windows (stride == kernel), sizes with a remainder no window reads; with
    ``pairs`` windows of two along the last dimension only."""
    nd = draw(st.integers(1, 3))
    if pairs:
        kernel = (1,) * (nd - 1) + (2,)
    else:
        kernel = tuple(draw(st.integers(1, 4 if nd < 3 else 3)) for _ in range(nd))
    size = tuple(k * draw(st.integers(1, 12 if nd == 1 else 4)) + draw(st.integers(0, k - 1)) for k in kernel)
    return nd, size, kernel


def awkward(shape: tuple[int, ...], dtype: type, seed: int) -> np.ndarray:
    """Small integers (ties everywhere), some NaN and some infinities of both signs."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, shape).astype(dtype)
    x.ravel()[rng.random(x.size) < 0.08] = np.nan
    x.ravel()[rng.random(x.size) < 0.05] = np.inf
    x.ravel()[rng.random(x.size) < 0.05] = -np.inf
    return x


def check(x: np.ndarray, red: str, nd: int, kernel: tuple[int, ...]) -> None:
    _, ctx = reduce_window_forward(x, red, nd, kernel)
    problem = pool_problem(x, get_reduction(red), ctx.work, ctx.mode)
    assert pool_tiles.why_not(problem) is None
    y, state = pool_tiles.forward(problem)
    y_ref, state_ref = reference.forward(problem)
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(pool_tiles.flat_indices(state), reference.flat_indices(state_ref))
    dy = np.random.default_rng(1).integers(-4, 5, y.shape).astype(x.dtype)
    np.testing.assert_array_equal(pool_tiles.backward(dy, state), reference.backward(dy, state_ref))


@settings(max_examples=150)
@given(tiles(), st.sampled_from(["max", "min"]), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_tiled_select_equals_reference(case, red, dtype, seed):  # type: ignore[no-untyped-def]
    nd, size, kernel = case
    check(awkward((2, 3, *size), dtype, seed), red, nd, kernel)


@settings(max_examples=100)
@given(
    tiles(pairs=True), st.sampled_from(["max", "min"]), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16)
)
def test_pairs_equal_reference(case, red, dtype, seed):  # type: ignore[no-untyped-def]
    nd, size, kernel = case
    assert pool_tiles.pairs(reduce_window_forward(np.zeros((1, 1, *size)), red, nd, kernel)[1].work)
    check(awkward((2, 3, *size), dtype, seed), red, nd, kernel)


@settings(max_examples=20)
@given(st.one_of(tiles(), tiles(pairs=True)), st.integers(0, 2**16))
def test_tiled_select_on_several_threads(case, seed):  # type: ignore[no-untyped-def]
    nd, size, kernel = case
    with config.tuning(threads=3, thread_min_work=0):
        check(awkward((3, 5, *size), np.float32, seed), "max", nd, kernel)


@pytest.mark.parametrize("kernel", [(1, 1, 2), (2, 2, 2), (1, 3, 2), (3, 1, 1), (2, 1, 3)])
def test_backward_writes_every_element(kernel: tuple[int, int, int]) -> None:
    """The gradient array comes uninitialised: elements no window reads must be zeroed."""
    from convpool.backends.compiled.tiled_pairs import route_pairs, select_pair_windows, select_pairs

    k0, k1, k2 = kernel
    x = np.random.default_rng(0).standard_normal((4, 2 * k0 + 1, 2 * k1 + 1, 3 * k2 + 1)).astype(np.float32)
    y = np.empty((4, 2, 2, 3), np.float32)
    pos = np.empty(y.shape, np.int8)
    g = np.full(x.shape, np.nan, np.float32)
    if kernel == (1, 1, 2):
        y, pos = np.empty((4, *x.shape[1:3], 3), np.float32), np.empty((4, *x.shape[1:3], 3), np.int8)
        select_pairs(x, 1.0, y, pos)
        route_pairs(pos, np.ones_like(y), g)
    else:
        if k2 == 2:
            select_pair_windows(x, k0, k1, 1.0, y, pos)
            y0, pos0 = np.empty_like(y), np.empty_like(pos)
            _kernels.select_tiled(x, k0, k1, k2, 1.0, y0, pos0)  # the general kernel agrees
            np.testing.assert_array_equal(y0, y)
            np.testing.assert_array_equal(pos0, pos)
        else:
            _kernels.select_tiled(x, k0, k1, k2, 1.0, y, pos)
        _kernels.route_tiled(pos, k0, k1, k2, np.ones_like(y), g)
    assert not np.isnan(g).any()
    assert g.sum() == y.size  # one winner per window


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 3, 64), (2, 5, 67), (3, 5), (6, 2)])
def test_max_pool1d_2_as_pytorch(shape: tuple[int, ...], dtype: type) -> None:
    """max_pool1d(2) (batched and unbatched, odd lengths) runs the pairs and equals
    PyTorch's: values, indices and the input gradient."""
    x = np.random.default_rng(shape[-1]).standard_normal(shape).astype(dtype)
    y, ctx = reduce_window_forward(x, "max", 1, 2)
    assert ctx.name == "tiles"
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    yt, it = torch.nn.functional.max_pool1d(xt, 2, return_indices=True)
    (gt,) = torch.autograd.grad(yt, (xt,), torch.tensor(dy))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(flat_indices(ctx), it.numpy())
    np.testing.assert_array_equal(reduce_window_backward(dy, ctx), gt.numpy())
