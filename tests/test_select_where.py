"""The one-pass max/min over index tables (:func:`convpool.backends.compiled.pool_kernels.select_where`,
what "index-tables" runs): the same values and winners as the two-pass kernels
(``select_max``/``select_min`` then ``find_selected``) and as the NumPy reference, over
windows with stride, padding (zeros and border modes), dilation and ceil_mode; ties,
NaN and infinities."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convpool
from convpool.backends.compiled import kernels as _kernels
from convpool.backends.compiled import pool_tables
from convpool.backends.numpy import pool as reference
from convpool.functional._reduce import pool_problem, reduce_window_forward
from convpool.functional.reductions import get_reduction

pytestmark = pytest.mark.skipif(
    not _kernels.enabled() or "compiled" not in convpool.available_backends(),
    reason="compiled kernels (numba not installed or disabled)",
)


@st.composite
def windows(draw):  # type: ignore[no-untyped-def]
    nd = draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 3)) for _ in range(nd)]
    stride = [draw(st.integers(1, 3)) for _ in range(nd)]
    dilation = [draw(st.integers(1, 2)) for _ in range(nd)]
    padding = [draw(st.integers(0, k // 2)) for k in kernel]
    size = [draw(st.integers(d * (k - 1) + 1, 9)) for k, d in zip(kernel, dilation, strict=True)]
    mode = draw(st.sampled_from([None, "zeros", "replicate", "reflect", "circular"]))
    if mode == "reflect":
        padding = [min(p, n - 1) for p, n in zip(padding, size, strict=True)]
    ceil_mode = draw(st.booleans())
    return nd, size, kernel, stride, padding, dilation, ceil_mode, mode


@settings(max_examples=150)
@given(windows(), st.sampled_from(["max", "min"]), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_select_where_equals_two_passes_and_reference(case, red, dtype, seed):  # type: ignore[no-untyped-def]
    from convpool.backends.compiled.pool_kernels import find_selected, select_max, select_min, select_where
    from convpool.backends.compiled.pool_layout import as3, tables

    nd, size, kernel, stride, padding, dilation, ceil_mode, mode = case
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (2, 3, *size)).astype(dtype)
    x.ravel()[rng.random(x.size) < 0.08] = np.nan
    x.ravel()[rng.random(x.size) < 0.05] = np.inf
    x.ravel()[rng.random(x.size) < 0.05] = -np.inf
    _, ctx = reduce_window_forward(x, red, nd, kernel, stride, padding, dilation, ceil_mode, mode)
    problem = pool_problem(x, get_reduction(red), ctx.work, ctx.mode)
    t0, t1, t2 = tables(problem.g, problem.mode)
    x4 = as3(problem.x, problem.g.nd, problem.g.in_size)
    o = (t0.shape[0], t1.shape[0], t2.shape[0])
    y1, p1 = np.empty((x4.shape[0], *o), dtype), np.empty((x4.shape[0], *o), np.int8)
    y2, p2 = np.empty_like(y1), np.empty_like(p1)
    select_where(x4, t0, t1, t2, 1.0 if red == "max" else -1.0, y1, p1)
    (select_max if red == "max" else select_min)(x4, t0, t1, t2, y2)
    find_selected(x4, t0, t1, t2, y2, p2)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(p1, p2)
    # and through the table's implementation, against the reference
    y, state = pool_tables.forward(problem)
    y_ref, state_ref = reference.forward(problem)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(pool_tables.flat_indices(state), reference.flat_indices(state_ref))
    dy = rng.integers(-4, 5, y.shape).astype(dtype)
    np.testing.assert_array_equal(pool_tables.backward(dy, state), reference.backward(dy, state_ref))
