"""The separable max/min pool ("separable" in the pool table) against the NumPy
reference: values, winners (the flat indices) and gradients exactly equal, with small
integers (ties everywhere), NaN and +-inf, for any windows - 1 to 3 dims, stride,
dilation, padding (identity, zeros or a border mode), ceil_mode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convpool
from convpool import config
from convpool.backends.compiled import kernels as _kernels
from convpool.backends.compiled import pool_separable
from convpool.backends.numpy import pool as reference
from convpool.backends.tables import POOL
from convpool.functional import pool as fpool
from convpool.functional._reduce import pool_problem, reduce_window_backward, reduce_window_forward
from convpool.functional.reductions import get_reduction

pytestmark = pytest.mark.skipif(
    not _kernels.enabled() or "compiled" not in convpool.available_backends(),
    reason="the separable pool is a compiled implementation (numba not installed or disabled)",
)

MODES = [None, "zeros", "reflect", "replicate", "circular"]


@st.composite
def windows(draw, max_kernel: int = 4):  # type: ignore[no-untyped-def]
    nd = draw(st.integers(1, 3))
    top = max_kernel if nd < 3 else 3
    kernel = tuple(draw(st.integers(1, top)) for _ in range(nd))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    pads = tuple(draw(st.integers(0, (d * (k - 1) + 1) // 2)) for k, d in zip(kernel, dil, strict=True))
    size = tuple(
        draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p, p + 1), d * (k - 1) + 5))
        for k, d, p in zip(kernel, dil, pads, strict=True)
    )
    return nd, size, kernel, stride, pads, dil, draw(st.booleans())


def special_values(rng: np.random.Generator, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """Small integers (ties), with NaN, +inf and -inf sprinkled in."""
    x = rng.integers(-2, 3, shape).astype(dtype)
    for value, share in ((np.nan, 0.05), (np.inf, 0.05), (-np.inf, 0.08)):
        x.ravel()[rng.random(x.size) < share] = value
    return x


def run(x: np.ndarray, red: str, case: tuple, mode: str | None) -> tuple:
    """Through the table: forward, flat indices, the input gradient (integer dy: every
    sum exact) and the implementation's name."""
    nd, _, kernel, stride, pads, dil, ceil = case
    y, ctx = reduce_window_forward(x, red, nd, kernel, stride, pads, dil, ceil, mode)
    dy = np.random.default_rng(1).integers(-4, 5, y.shape).astype(x.dtype)
    return y, fpool.flat_indices(ctx), reduce_window_backward(dy, ctx), ctx.name


def check_table_choice(x: np.ndarray, red: str, case: tuple, mode: str | None) -> None:
    """The table chooses "separable", and it equals the reference backend."""
    with convpool.backend("numpy"):
        want = run(x, red, case, mode)
    got = run(x, red, case, mode)
    assert got[3] == "separable", f"the table chose {got[3]}"
    for a, b, what in zip(got[:3], want[:3], ("values", "winners", "gradients"), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"{what} differ")  # NaN where NaN
    assert got[0].dtype == got[2].dtype == x.dtype


def check_equal_to_reference(x: np.ndarray, red: str, case: tuple, mode: str | None) -> None:
    """The implementation itself (its protocol, whatever its why_not says about speed)
    against the reference implementation on the same problem: values, winners and
    gradients exactly equal."""
    nd, _, kernel, stride, pads, dil, ceil = case
    with convpool.backend("numpy"):
        try:  # the windows as the ops compute them (a trimmed sub-problem where they reach far)
            _, ctx = reduce_window_forward(x, red, nd, kernel, stride, pads, dil, ceil, mode)
        except ValueError:  # windows lying in the padding: refused before any table
            return
    xw = x if ctx.trim is None else ctx.trim.gather(x)
    problem = pool_problem(xw, get_reduction(red), ctx.work, ctx.mode)
    assert pool_separable.why_not(problem) is None
    y, state = pool_separable.forward(problem)
    y_ref, state_ref = reference.forward(problem)
    np.testing.assert_array_equal(y, y_ref)  # NaN where NaN
    np.testing.assert_array_equal(pool_separable.flat_indices(state), reference.flat_indices(state_ref))
    dy = np.random.default_rng(1).integers(-4, 5, y.shape).astype(x.dtype)
    np.testing.assert_array_equal(pool_separable.backward(dy, state), reference.backward(dy, state_ref))
    assert y.dtype == x.dtype


@given(
    windows(),
    st.sampled_from(["max", "min"]),
    st.sampled_from(MODES),
    st.sampled_from([np.float32, np.float64]),
    st.integers(0, 2**16),
)
def test_separable_equals_reference(case, red, mode, dtype, seed):  # type: ignore[no-untyped-def]
    _, size, *_ = case
    x = special_values(np.random.default_rng(seed), (2, 2, *size), dtype)
    check_equal_to_reference(x, red, case, mode)


@settings(max_examples=40)
@given(windows(max_kernel=3), st.sampled_from(["max", "min"]), st.sampled_from(MODES), st.integers(0, 2**16))
def test_separable_on_several_threads(case, red, mode, seed):  # type: ignore[no-untyped-def]
    """Planes split over threads, each with its own scratch rows."""
    _, size, *_ = case
    x = special_values(np.random.default_rng(seed), (3, 5, *size), np.float32)
    with config.tuning(threads=3, thread_min_work=0):
        check_equal_to_reference(x, red, case, mode)


@settings(max_examples=100)
@given(windows(), st.sampled_from(["max", "min"]), st.sampled_from(MODES), st.integers(0, 2**16))
def test_table_runs_separable_on_long_rows(case, red, mode, seed):  # type: ignore[no-untyped-def]
    """Through the public ops, on rows long enough for the table to pick "separable"
    (held, so that windows which tile the input do not go to their own kernels)."""
    nd, size, kernel, stride, pads, dil, ceil = case
    need = pool_separable.shortest_row(nd, stride[-1])
    last = max(size[-1], (need - 1) * stride[-1] + dil[-1] * (kernel[-1] - 1) + 1)
    case = (nd, size[:-1] + (last,), kernel, stride, pads, dil, ceil)
    x = special_values(np.random.default_rng(seed), (2, 2, *case[1]), np.float32)
    with convpool.backend("numpy"):
        try:
            run(x, red, case, mode)
        except ValueError:
            return
    with config.use("pool", "separable"):
        check_table_choice(x, red, case, mode)


@pytest.mark.parametrize("red", ["max", "min"])
def test_large_window_positions_in_int32(red: str) -> None:
    """More than 127 elements per window: positions kept as int32."""
    case = (3, (7, 8, 9), (4, 6, 6), (1, 2, 1), (1, 2, 3), (1, 1, 1), True)
    x = special_values(np.random.default_rng(0), (1, 2, 7, 8, 9), np.float64)
    check_equal_to_reference(x, red, case, "reflect")
    check_equal_to_reference(x, red, case, None)


def test_all_minus_inf_picks_the_first_real_element() -> None:
    """Every real element -inf: the first one that is not identity padding wins."""
    x = np.full((1, 1, 5, 6), -np.inf)
    for case in [(2, (5, 6), (3, 3), (2, 2), (1, 1), (1, 1), True), (1, (6,), (4,), (3,), (2,), (1,), True)]:
        xs = x[:, :, 0] if case[0] == 1 else x
        check_equal_to_reference(xs, "max", case, None)
        check_equal_to_reference(-xs, "min", case, None)


def test_default_choice_and_describe() -> None:
    """The table picks "separable" for 3x3 pools, and describe() names it; the tiled
    windows keep their own kernels."""
    x = np.random.default_rng(0).standard_normal((2, 3, 28, 28)).astype(np.float32)
    assert reduce_window_forward(x, "max", 2, 3, 2, 1)[1].name == "separable"
    assert reduce_window_forward(x, "min", 2, 3, 1, 1)[1].name == "separable"
    assert reduce_window_forward(x, "max", 2, 2, 2)[1].name == "tiles-2x2"
    text = config.describe("max_pool2d", input=(32, 64, 112, 112), kernel_size=3, stride=2, padding=1)
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("separable"))
    assert "CHOSEN" in line
    assert POOL.names.index("separable") < POOL.names.index("index-tables")


def verdict(op: str, **kw: object) -> str | None:
    return next(v.reason for v in config.verdicts(op, **kw) if v.name == "separable")


def test_why_not() -> None:
    """Max and min only, float32/float64; declined where index-tables measured faster,
    unless held."""
    assert verdict("avg_pool2d", input=(1, 2, 8, 8), kernel_size=3, stride=1) == "max or min only, not sum"
    assert "not median" in str(verdict("median_pool2d", input=(1, 2, 8, 8), kernel_size=3))
    assert "float32/float64" in str(verdict("max_pool1d", input=(1, 1, 8), kernel_size=3, dtype="int32"))
    assert "output rows of 12 < 16" in str(
        verdict("max_pool2d", input=(1, 2, 36, 36), kernel_size=3, stride=3, padding=1)
    )
    assert verdict("max_pool2d", input=(1, 2, 112, 112), kernel_size=3, stride=3, padding=1) is None
    assert "output rows of 4 < 12" in str(verdict("max_pool2d", input=(1, 2, 8, 8), kernel_size=3, stride=2, padding=1))
    assert "output rows of 8 < 16" in str(verdict("max_pool1d", input=(1, 2, 8), kernel_size=3, stride=1, padding=1))
    assert verdict("max_pool2d", input=(1, 2, 24, 24), kernel_size=3, stride=2, padding=1) is None
    assert verdict("max_pool2d", input=(1, 2, 7, 7), kernel_size=3, stride=1, padding=1) is None
    assert verdict("max_pool3d", input=(1, 2, 4, 4, 4), kernel_size=3, stride=1, padding=1) is None
    with config.use("pool", "separable"):
        assert verdict("max_pool1d", input=(1, 2, 8), kernel_size=3, stride=1, padding=1) is None
