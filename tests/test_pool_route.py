"""The compiled max/min pools' backward (:mod:`convpool.backends.compiled.pool_route`):
both kernels, the vectorised ``_gather`` and the scalar ``_scatter``, each held by its
thresholds, against the NumPy reference (integer gradients: every sum exact; ties,
NaN and +-inf in the input; any windows and padding modes) and against PyTorch with
float gradients, bit for bit: an input element that wins several windows gets their
gradients added in output order, as PyTorch adds them."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convpool
from convpool import config
from convpool.backends.compiled import kernels as _kernels
from convpool.backends.compiled import pool_separable, pool_tables
from convpool.backends.numpy import pool as reference
from convpool.functional._reduce import pool_problem, reduce_window_backward, reduce_window_forward
from convpool.functional.reductions import get_reduction
from test_pool_separable import MODES, special_values, windows

pytestmark = pytest.mark.skipif(
    not _kernels.enabled() or "compiled" not in convpool.available_backends(),
    reason="the pool backward kernels are compiled (numba not installed or disabled)",
)

KERNELS = ["gather", "scatter"]


@pytest.fixture(params=KERNELS)
def kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Hold route() to one kernel: the gather wherever it can run (any row length, any
    window size), or the scatter everywhere."""
    from convpool.backends.compiled import pool_route

    if request.param == "gather":
        monkeypatch.setattr(pool_route, "GATHER_MIN_ROW", 0)
        monkeypatch.setattr(pool_route, "GATHER_MAX_TAPS", 1 << 30)
    else:
        monkeypatch.setattr(pool_route, "GATHER_MAX_TAPS", -1)
    yield request.param


def long_rows(case: tuple, rows: int) -> tuple:
    """The case with its last dimension long enough for ``rows`` output columns."""
    nd, size, kernel, stride, pads, dil, ceil = case
    last = max(size[-1], (rows - 1) * stride[-1] + dil[-1] * (kernel[-1] - 1) + 1)
    return (nd, size[:-1] + (last,), kernel, stride, pads, dil, ceil)


def check_backward(x: np.ndarray, red: str, case: tuple, mode: str | None, impl: object) -> None:
    """``impl``'s backward (and forward, indices) on the problem the ops compute,
    against the reference implementation: exactly equal (integer dy)."""
    nd, _, kernel, stride, pads, dil, ceil = case
    with convpool.backend("numpy"):
        try:
            _, ctx = reduce_window_forward(x, red, nd, kernel, stride, pads, dil, ceil, mode)
        except ValueError:  # windows lying in the padding: refused before any table
            return
    xw = x if ctx.trim is None else ctx.trim.gather(x)
    problem = pool_problem(xw, get_reduction(red), ctx.work, ctx.mode)
    y, state = impl.forward(problem)  # type: ignore[attr-defined]
    y_ref, state_ref = reference.forward(problem)
    np.testing.assert_array_equal(y, y_ref)
    dy = np.random.default_rng(1).integers(-4, 5, y.shape).astype(x.dtype)
    np.testing.assert_array_equal(impl.backward(dy, state), reference.backward(dy, state_ref))  # type: ignore[attr-defined]


@settings(max_examples=120)
@given(
    windows(),
    st.sampled_from(["max", "min"]),
    st.sampled_from(MODES),
    st.sampled_from([np.float32, np.float64]),
    st.integers(0, 2**16),
    st.sampled_from([1, 20]),
)
def test_route_equals_reference(kernel, case, red, mode, dtype, seed, rows):  # type: ignore[no-untyped-def]
    """Short rows and rows of 20+ outputs, through both compiled max/min pools."""
    case = long_rows(case, rows)
    x = special_values(np.random.default_rng(seed), (2, 2, *case[1]), dtype)
    check_backward(x, red, case, mode, pool_separable)
    check_backward(x, red, case, mode, pool_tables)


@settings(max_examples=30)
@given(windows(max_kernel=3), st.sampled_from(["max", "min"]), st.sampled_from(MODES), st.integers(0, 2**16))
def test_route_on_several_threads(kernel, case, red, mode, seed):  # type: ignore[no-untyped-def]
    """Planes split over threads, each with its own scratch."""
    case = long_rows(case, 18)
    x = special_values(np.random.default_rng(seed), (3, 5, *case[1]), np.float32)
    with config.tuning(threads=3, thread_min_work=0):
        check_backward(x, red, case, mode, pool_tables)


@pytest.mark.parametrize("impl", [pool_tables, pool_separable])
@pytest.mark.parametrize(
    "case",
    [
        (2, (5, 6), (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), False),
        (1, (9,), (3,), (2,), ((1, 1),), (1,), False),
        (2, (6, 40), (3, 3), (1, 2), ((1, 1), (1, 1)), (1, 1), False),
    ],
)
def test_zero_padding_that_wins_takes_no_gradient(kernel, impl, case):  # type: ignore[no-untyped-def]
    """padding_mode="zeros" with every input negative: the padding's 0 wins each border
    window, and its gradient goes nowhere (not to a neighbouring element)."""
    x = -1.0 - np.random.default_rng(0).random((2, 3, *case[1])).astype(np.float32)
    check_backward(x, "max", case, "zeros", impl)


TORCH_CASES = [  # (input shape, kernel, stride, padding, dilation, ceil_mode)
    ((3, 4, 150), 3, 2, 1, 1, False),
    ((2, 3, 97), 4, 3, 2, 1, True),
    ((2, 3, 80), 3, 1, 1, 2, False),
    ((2, 3, 40), 2, 1, 0, 1, False),
    ((2, 3, 37, 41), 3, 2, 1, 1, False),
    ((2, 3, 30, 45), (3, 2), (1, 2), (1, 0), (1, 2), True),
    ((1, 2, 9, 10, 40), 3, 2, 1, 1, False),
    ((1, 2, 8, 9, 36), (2, 3, 3), (1, 1, 3), (1, 1, 1), 1, True),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k, s, p, d, ceil", TORCH_CASES)
def test_route_rounds_as_pytorch(kernel, shape, k, s, p, d, ceil, dtype):  # type: ignore[no-untyped-def]
    """Float gradients, overlapping windows: the same sums as PyTorch's, bit for bit.
    Small integer inputs make ties, so elements win several windows."""
    nd = len(shape) - 2
    rng = np.random.default_rng(len(shape) * 100 + shape[-1])
    x = rng.integers(-3, 4, shape).astype(dtype)
    y, ctx = reduce_window_forward(x, "max", nd, k, s, p, d, ceil)
    dy = rng.standard_normal(y.shape).astype(dtype)
    gx = reduce_window_backward(dy, ctx)
    pool = (torch.nn.functional.max_pool1d, torch.nn.functional.max_pool2d, torch.nn.functional.max_pool3d)[nd - 1]
    xt = torch.tensor(x, requires_grad=True)
    yt = pool(xt, k, s, p, d, ceil)
    (gt,) = torch.autograd.grad(yt, (xt,), torch.tensor(dy))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(gx, gt.numpy())
    assert gx.dtype == dtype


def test_gather_runs_where_it_applies() -> None:
    """The default thresholds: long rows of small windows gather; short rows, border
    modes and windows of 9+ elements scatter (the choice, not the result: both are
    tested above)."""
    from convpool.backends.compiled import pool_route

    def tables(n: int, k: int, s: int, lo: int, mode: str | None) -> np.ndarray:
        return _kernels.index_table(n, k, s, 1, lo, lo, (n + 2 * lo - k) // s + 1, mode)

    one = np.zeros((1, 1), dtype=np.int64)
    assert pool_route.gathers(one, one, tables(256, 3, 2, 1, None), (2, 1, 1), 256)
    assert pool_route.gathers(one, tables(56, 2, 1, 0, None), tables(56, 2, 1, 0, "constant"), (1, 1, 0), 56)
    assert not pool_route.gathers(one, tables(56, 3, 2, 1, None), tables(56, 3, 2, 1, None), (2, 1, 1), 56)  # 9
    assert not pool_route.gathers(one, one, tables(20, 3, 2, 1, None), (2, 1, 1), 20)  # 10 outputs a row
    assert not pool_route.gathers(one, one, tables(256, 3, 2, 1, "replicate"), (2, 1, 1), 256)
    assert not pool_route.gathers(one, tables(56, 3, 1, 1, "reflect"), tables(56, 3, 1, 1, None), (1, 1, 1), 56)
