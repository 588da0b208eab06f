"""Transposed convolution's three forward paths (one convolution per output phase, the
phases as one convolution with depth-to-space, ``W^T @ x`` + col2im), each forced on every
geometry and checked against PyTorch; the phase split; the policy that picks a path."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from convpool import config
from convpool.functional import conv_transpose as CT
from convpool.functional._conv_transpose_phases import dim_phases
from convpool.functional.conv_transpose import conv_transpose_backward, conv_transpose_forward, forward_path
from oracle import assert_close, check_against_torch
from test_conv_transpose import TORCH_CT, _torch_all, ct_case

PATHS = ("phases", "subpixel", "col2im")


def forced(path: str) -> Any:
    """Make the conv_transpose table pick ``path`` wherever it applies (the sub-pixel path
    needs every strided dim undilated, else the phases run; at stride 1 the phases always
    run), through the public thresholds."""
    overlap, work, waste = {
        "phases": (0.0, 0, -1.0),
        "subpixel": (0.0, 0, math.inf),
        "col2im": (math.inf, 0, math.inf),
    }[path]
    return config.tuning(transpose_min_overlap=overlap, transpose_min_work=work, transpose_max_waste=waste)


def _expected_path(path: str, stride: tuple[int, ...], dilation: tuple[int, ...]) -> str:
    if all(s == 1 for s in stride):
        return "phases"
    if path == "subpixel" and any(s > 1 and d > 1 for s, d in zip(stride, dilation)):
        return "phases"
    return path


@given(ct_case(), st.sampled_from(PATHS), st.integers(0, 2**16))
def test_every_forward_path_matches_torch(case, path, seed):  # type: ignore[no-untyped-def]
    """Each path on every geometry: forward and all gradients against PyTorch."""
    nd, n, cin, cout, size, kernel, stride, pad_arg, pads, op, dilation, groups, bias, _ = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(((n,) if n else ()) + (cin, *size))
    w = rng.standard_normal((cin, cout // groups, *kernel))
    b = rng.standard_normal(cout) if bias else None
    with forced(path):
        assert forward_path((1, cin, *size), w.shape, stride, dilation) == _expected_path(path, stride, dilation)

        def ours(x, w, b):  # type: ignore[no-untyped-def]
            return conv_transpose_forward(x, w, b, stride, pad_arg, op, groups, dilation, nd=nd)

        def theirs(xt, wt, bt):  # type: ignore[no-untyped-def]
            return TORCH_CT[nd](xt, wt, bt, stride, pad_arg, op, groups, dilation)

        check_against_torch(ours, conv_transpose_backward, theirs, [x, w, b], seed)


# every kind of phase: kernel a multiple of the stride or not, smaller than it (1x1 and empty
# phases), dilation sharing a factor with the stride (empty phases) or not, groups,
# output_padding past the last phase output, padding cropping whole phases, 1-D and 3-D
PHASE_CASES = [
    (2, (2, 4, 5, 6), 4, (4, 4), {"stride": 2, "padding": 1}),  # the decoder case: 2x2 per phase
    (2, (2, 4, 5, 6), 4, (3, 3), {"stride": 2, "padding": 1, "output_padding": 1}),  # 2x2, 2x1, 1x2, 1x1
    (2, (2, 4, 5, 4), 6, (1, 2), {"stride": 3, "output_padding": (2, 1)}),  # k < s: 1x1 phases, empty ones
    (2, (2, 4, 5, 5), 2, (3, 2), {"stride": 2, "dilation": 2, "padding": 1}),  # gcd(s, d) = 2: empty phases
    (2, (2, 4, 5, 5), 2, (3, 3), {"stride": (2, 3), "dilation": (3, 2), "output_padding": (2, 1)}),
    (2, (2, 6, 4, 5), 4, (5, 4), {"stride": 2, "padding": (3, 2), "groups": 2}),
    (2, (2, 6, 5, 4), 6, (3, 3), {"stride": (1, 2), "dilation": (2, 1), "groups": 3, "padding": 2}),
    (2, (1, 2, 3, 3), 2, (2, 2), {"stride": 3, "padding": 2, "output_padding": 2}),  # crops past the reach
    (1, (2, 3, 7), 4, (5,), {"stride": 3, "padding": 1, "output_padding": 2}),
    (1, (2, 3, 7), 4, (2,), {"stride": 4, "padding": 3}),
    (3, (2, 4, 3, 4, 3), 2, (4, 3, 2), {"stride": 2, "padding": 1, "output_padding": (0, 1, 1)}),
    (3, (1, 2, 3, 3, 2), 3, (3, 1, 2), {"stride": (3, 2, 1), "dilation": (1, 2, 3), "padding": (1, 0, 2)}),
]


@pytest.mark.parametrize(("nd", "x_shape", "cout", "kernel", "kw"), PHASE_CASES)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_phase_cases_against_torch(nd, x_shape, cout, kernel, kw, path, dtype):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(5)
    groups = kw.get("groups", 1)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((x_shape[1], cout // groups, *kernel)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    with forced(path):
        y, ctx = conv_transpose_forward(x, w, b, nd=nd, **kw)
    dy = rng.standard_normal(y.shape).astype(dtype)
    grads = conv_transpose_backward(dy, ctx)
    assert y.dtype == dtype and all(g.dtype == dtype for g in grads)
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == np.float32 else {}
    for ours, theirs, what in zip((y, *grads), _torch_all(nd, x, w, b, dy, **kw), ("y", "dx", "dw", "db")):
        assert_close(ours, theirs, what, **tol)


@given(st.integers(1, 6), st.integers(1, 5), st.integers(1, 4), st.integers(0, 4), st.integers(1, 4), st.integers(0, 3))
def test_dim_phases_partition_outputs_and_taps(n, k, s, p, d, op):  # type: ignore[no-untyped-def]
    """Per dim: the phases' outputs are every output once, their taps (in the flipped
    kernel) are disjoint, and each phase's padded input span gives its output count."""
    out = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
    if out < 1:
        return
    phases = dim_phases(n, k, s, p, d, out)
    outputs = sorted(o for ph in phases for o in range(out)[ph.out])
    assert outputs == list(range(out)) and [ph.count for ph in phases] == [len(range(out)[ph.out]) for ph in phases]
    taps = [t for ph in phases if ph.taps is not None for t in range(k)[ph.taps]]
    assert len(taps) == len(set(taps))
    for ph in phases:
        if ph.taps is not None:
            assert ph.span is not None
            j = len(range(k)[ph.taps])
            padded = len(range(n)[ph.span]) + ph.pads[0] + ph.pads[1]
            assert padded - ph.dilation * (j - 1) == ph.count


def test_forward_path_policy():
    """The decoder case runs as one phase convolution, windows that overlap little and
    small problems on col2im, many overlapping windows that the sub-pixel kernel would
    pad a lot per phase, stride 1 always as one convolution."""
    assert forward_path((32, 64, 28, 28), (64, 32, 4, 4), (2, 2), (1, 1)) == "subpixel"
    assert forward_path((32, 64, 28, 28), (64, 32, 3, 3), (2, 2), (1, 1)) == "col2im"
    assert forward_path((32, 64, 28, 28), (64, 32, 2, 2), (2, 2), (1, 1)) == "col2im"
    assert forward_path((32, 64, 28, 28), (64, 32, 5, 5), (2, 2), (1, 1)) == "phases"
    assert forward_path((32, 64, 28, 28), (64, 32, 4, 4), (2, 2), (2, 2)) == "phases"
    assert forward_path((2, 8, 7, 7), (8, 4, 4, 4), (2, 2), (1, 1)) == "col2im"
    assert forward_path((2, 8, 7, 7), (8, 4, 3, 3), (1, 1), (1, 1)) == "phases"
    assert forward_path((0, 8, 7, 7), (8, 4, 3, 3), (2, 2), (1, 1)) == "empty"


def test_col2im_path_threads_share_a_large_batch():
    """Columns past PARALLEL_COLS: three threads take shares of the batch, each in chunks
    (compiled backend; the NumPy one ignores the settings)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20, 32, 24, 24))
    w = rng.standard_normal((32, 16, 3, 3))
    with forced("col2im"), config.tuning(threads=3, cols_budget=2 * 2**20):
        y = CT.conv_transpose2d(x, w, None, 2, 1)
    assert_close(y, TORCH_CT[2](*(torch.tensor(a) for a in (x, w)), None, 2, 1).numpy(), "y")
