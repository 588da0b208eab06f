"""Regression tests for the convolution defects of the red-team issue, the shared-module
thread defect and the backend switch.  Each runs on the backend the suite runs on (the
pure-NumPy leg of `make test` runs this file again with CONVPOOL_PURE_NUMPY=1)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convpool
import convpool.functional as F
from convpool import nn
from convpool.functional.conv import TrimmedCtx
from oracle import check_against_torch

TORCH_CONV = {1: TF.conv1d, 2: TF.conv2d, 3: TF.conv3d}


def test_float64_conv_padding_and_dilation_beyond_the_input_is_right_every_time() -> None:
    """Item 1: the im2col zero fill ran past the row (start not capped at the output width)."""
    x = np.arange(1.0, 9.0).reshape(2, 2, 2, 1)
    w = np.ones((2, 2, 1, 3))
    values = {float(F.conv2d(x, w, padding=(0, 2), dilation=(1, 2))[0, 0, 0, 0]) for _ in range(20)}
    assert values == {4.0}


def test_conv1d_huge_padding_and_dilation_no_crash() -> None:
    """Item 1: padding=100000, dilation=200000 on a length-1 input segfaulted; run it in a
    subprocess so that a crash fails the test instead of the test run."""
    code = """
        import numpy as np, convpool.functional as F
        y = F.conv1d(np.ones((1, 2, 1)), np.ones((1, 2, 2)), padding=100000, dilation=200000)
        z = F.conv1d(np.ones((1, 2, 1)), np.ones((1, 2, 2)), padding=100000, dilation=100000)
        print(y.shape, float(y[0, 0, 0]), z.shape, float(z[0, 0, 0]), float(z[0, 0, -1]), float(z.sum()))
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    # y's two taps read padded positions 0 and 200000, the input sits at 100000; z has
    # 100001 outputs, of which the first (tap 1) and the last (tap 0) read it
    assert out.stdout.split() == ["(1,", "1,", "1)", "0.0", "(1,", "1,", "100001)", "2.0", "2.0", "4.0"]


@pytest.mark.parametrize(
    "x_shape, k, stride, padding, dilation",
    [
        ((2, 3, 1), 3, 2, 3, 3),  # the fuzz's float64 Conv1d mismatch
        ((1, 2, 4), 2, 1, 9, 7),
        ((2, 2, 3), 3, 5, 6, 4),
        ((1, 1, 5), 1, 3, 4, 1),
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv1d_padding_and_dilation_beyond_the_input_matches_torch(
    x_shape, k, stride, padding, dilation, dtype
) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((3, x_shape[1], k))
    b = rng.standard_normal(3)
    check_against_torch(
        lambda x, w, b: F.conv_forward(x, w, b, stride, padding, dilation, nd=1),
        F.conv_backward,
        lambda xt, wt, bt: TF.conv1d(xt, wt, bt, stride, padding, dilation),
        [x, w, b],
    )
    y = F.conv1d(x.astype(dtype), w.astype(dtype), b.astype(dtype), stride, padding, dilation)
    ref = TF.conv1d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride, padding, dilation).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride", [3, 3000, 10**9])
def test_conv2d_stride_beyond_the_input(dtype, stride) -> None:  # type: ignore[no-untyped-def]
    """Item 2: float32 stride 10**9 raised "Maximum allowed dimension exceeded"; stride
    3000 peaked at 9.2 GB (the strided layout had prod(stride) phase rows)."""
    x, w = np.ones((1, 2, 5, 5), dtype), np.ones((2, 2, 3, 3), dtype)
    y, ctx = F.conv_forward(x, w, None, stride)
    assert y.shape == (1, 2, 1, 1) and y.dtype == dtype
    np.testing.assert_array_equal(y, 18.0)
    dx, dw, _ = F.conv_backward(np.ones_like(y), ctx)
    expected_dx = np.zeros_like(x)
    expected_dx[:, :, :3, :3] = 2.0
    np.testing.assert_array_equal(dx, expected_dx)
    np.testing.assert_array_equal(dw, 1.0)


MEMORY_PROBE = """
import resource, sys, numpy as np, convpool, convpool.functional as F
convpool.set_backend(sys.argv[1])
x = np.random.default_rng(0).standard_normal((2, 3, 40, 40)).astype(np.float32)
w = np.ones((4, 3, 3, 3), np.float32)
y, ctx = F.conv_forward(x, w, None, 1, 1)
F.conv_backward(y, ctx)  # load the kernels first
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for kw in (dict(stride=10**6), dict(stride=(2, 30000)), dict(padding=30000, dilation=30000),
           dict(padding=(0, 20000), stride=(1, 9999))):
    y, ctx = F.conv_forward(x, w, None, **kw)
    F.conv_backward(np.ones_like(y), ctx)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
"""


@pytest.mark.parametrize("backend", convpool.available_backends())
def test_conv_memory_is_bounded_by_input_and_output_not_arguments(backend: str) -> None:
    """Huge strides, padding and dilation cost memory in proportion to the input and the
    output: the padded plane of the third call alone would be 60,040^2 floats (14 GB)."""
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, backend], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) < 100, f"peak memory grew by {out.stdout.split()[-1]} MB"


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_far_padding_matches_torch_with_trimmed_outputs(nd: int) -> None:
    """Outputs whose window lies wholly in the padding are zero plus bias; taps that never
    reach the input get zero gradient (the trimmed sub-problem is embedded correctly)."""
    rng = np.random.default_rng(nd)
    x = rng.standard_normal((2, 2) + (4,) * nd)
    w = rng.standard_normal((3, 2) + (3,) * nd)
    b = rng.standard_normal(3)
    # padding far past the input in dim 0 (padded 6004 against 4): trimmed
    stride, padding, dilation = (2,) + (1,) * (nd - 1), (3000,) + (3,) * (nd - 1), (2000,) + (1,) * (nd - 1)
    assert isinstance(F.conv_forward(x, w, b, stride, padding, dilation, nd=nd)[1], TrimmedCtx)
    check_against_torch(
        lambda x, w, b: F.conv_forward(x, w, b, stride, padding, dilation, nd=nd),
        F.conv_backward,
        lambda xt, wt, bt: TORCH_CONV[nd](xt, wt, bt, stride, padding, dilation),
        [x, w, b],
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_weight_with_zero_output_channels(dtype) -> None:  # type: ignore[no-untyped-def]
    """Item 6: a weight with 0 output channels failed on the compiled path only."""
    x = np.ones((2, 3, 5, 5), dtype)
    y, ctx = F.conv_forward(x, np.ones((0, 3, 3, 3), dtype), None, 1, 1)
    assert y.shape == (2, 0, 5, 5) and y.dtype == dtype
    dx, dw, _ = F.conv_backward(np.ones_like(y), ctx)
    assert dx.shape == x.shape and not dx.any() and dw.shape == (0, 3, 3, 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_empty_batch(dtype) -> None:  # type: ignore[no-untyped-def]
    y, ctx = F.conv_forward(np.ones((0, 3, 5, 5), dtype), np.ones((4, 3, 3, 3), dtype), np.ones(4, dtype))
    assert y.shape == (0, 4, 3, 3)
    dx, dw, db = F.conv_backward(y, ctx)
    assert dx.shape == (0, 3, 5, 5) and not dw.any() and db is not None and not db.any()


def test_shared_module_in_two_threads_keeps_each_threads_context() -> None:
    """Item 8: two threads running ``y = pool(x_i); pool.backward(ones)`` on one shared
    MaxPool2d got 10 of 120 gradients wrong (one saved context for both)."""
    pool, conv = nn.MaxPool2d(2), nn.Conv2d(3, 3, 3, padding=1, dtype=np.float64)
    wrong: list[int] = []
    barrier = threading.Barrier(2)

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        barrier.wait()
        for _ in range(60):
            x = rng.standard_normal((2, 3, 8, 8))
            g = pool.backward(np.ones_like(pool(x)))
            gc = conv.backward(np.ones_like(conv(x)))
            fresh = nn.MaxPool2d(2)
            expected = fresh.backward(np.ones_like(fresh(x)))
            y, ctx = F.conv_forward(x, conv.weight.data, None, 1, 1)
            expected_conv = F.conv_backward(np.ones_like(y), ctx)[0]
            wrong.append(int(not np.array_equal(g, expected) or not np.allclose(gc, expected_conv)))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wrong) == 120 and sum(wrong) == 0


def test_backend_switch_and_context_manager() -> None:
    before = convpool.get_backend()
    with convpool.backend("numpy"):
        assert convpool.get_backend() == "numpy"
        y = F.max_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2)
    assert convpool.get_backend() == before
    np.testing.assert_array_equal(y, [[[[5.0, 7.0], [13.0, 15.0]]]])
    with pytest.raises(ValueError, match="backend must be one of"):
        convpool.set_backend("cuda")
    if "compiled" not in convpool.available_backends():
        with pytest.raises(ValueError, match="not available"):
            convpool.set_backend("compiled")


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_ceil_mode_window_overhanging_the_input_matches_torch(count_include_pad: bool) -> None:
    """Found by the fuzzer: with ceil_mode a window larger than the padded input still
    gives one output when it starts inside it (kernel 4 on 3 rows, stride 2)."""
    x = np.random.default_rng(6).random((2, 3, 3, 3)).astype(np.float32)
    xt = torch.tensor(x)
    args = ((4, 2), (2, 1000), (0, 1))
    avg = F.avg_pool2d(x, *args, ceil_mode=True, count_include_pad=count_include_pad)
    ref = TF.avg_pool2d(xt, *args, ceil_mode=True, count_include_pad=count_include_pad).numpy()
    np.testing.assert_allclose(avg, ref, rtol=1e-6)
    np.testing.assert_array_equal(F.max_pool2d(x, *args, ceil_mode=True), TF.max_pool2d(xt, *args, ceil_mode=True))
    with pytest.raises(ValueError, match="does not fit"):
        F.avg_pool2d(x, *args)


@pytest.mark.parametrize("special", [np.inf, np.nan])
@pytest.mark.parametrize("depthwise", [False, True])
def test_conv_weight_gradient_with_inf_or_nan_in_the_input_matches_torch(special: float, depthwise: bool) -> None:
    """Found by the fuzzer (seed 272): the float32 SIMD weight gradient reduces over every
    padded position, outputs or not, so an inf the outputs never read made NaN weights
    (0 * inf).  Every placement of one special value, against PyTorch."""
    rng = np.random.default_rng(272)
    c = 2
    w = rng.standard_normal((c, 1 if depthwise else c, 3, 3)).astype(np.float32)
    stride, dilation, padding = ((1, 1), (1, 2), (2, 2)) if depthwise else ((1, 2), (1, 2), (2, 2))
    groups = c if depthwise else 1
    for pos in np.ndindex(5, 3):
        x = rng.standard_normal((2, c, 5, 3)).astype(np.float32)
        x[(1, 0, *pos)] = special
        y, ctx = F.conv_forward(x, w, None, stride, padding, dilation, groups)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        _, dw, _ = F.conv_backward(dy, ctx)
        xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        TF.conv2d(xt, wt, None, stride, padding, dilation, groups).backward(torch.tensor(dy))
        np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-5, atol=1e-5, err_msg=f"special at {pos}")


def test_conv_input_with_an_empty_spatial_dim_is_refused() -> None:
    with pytest.raises(ValueError, match=r"shape \(2, 2, 0, 1\) has an empty spatial dim 0"):
        F.conv2d(np.ones((2, 2, 0, 1)), np.ones((2, 2, 2, 3)), padding=(2, 4))


def test_im2col_span_stays_within_the_row() -> None:
    """Item 1's root cause, at the kernel: a tap whose reads all fall in the left padding
    must give an empty span at the row's end, not a start past it (the zero fill ran into
    the next row, or past the buffer).  The public calls above are now trimmed before
    they reach the kernel, so the kernel's contract is checked here directly."""
    from convpool.backends.compiled import kernels as _kernels

    if not _kernels.AVAILABLE:
        pytest.skip("numba is not loaded")
    assert _kernels._span(1, 1, -2, 1) == (1, 1)  # o2=1 output, its read at -2
    assert _kernels._span(3, 2, -100, 5) == (3, 3)
    assert _kernels._span(4, 1, -1, 2) == (1, 3)
    assert _kernels._span(4, 3, 7, 5) == (0, 0)  # all reads past the right edge
    for o2, s2, w0, n2 in np.ndindex(5, 4, 12, 5):
        start, end = _kernels._span(o2, s2 + 1, w0 - 6, n2 + 1)
        inside = [c for c in range(o2) if 0 <= c * (s2 + 1) + w0 - 6 < n2 + 1]
        assert 0 <= start <= end <= o2 and list(range(start, end)) == inside


@pytest.mark.parametrize("n", [0, 2])
def test_conv_border_padding_limits_hold_for_an_empty_batch(n: int) -> None:
    """Found by the fuzzer: with N=0 a reflect padding as large as the input was
    accepted (the border was never built); PyTorch refuses it whatever the batch."""
    x, w = np.ones((n, 2, 2, 6)), np.ones((1, 2, 1, 1))
    with pytest.raises(ValueError, match="reflect padding must be smaller than the input size"):
        F.conv_forward(x, w, None, 1, (3, 1), 1, 1, "reflect")
    with pytest.raises(ValueError, match="circular padding must be at most the input size"):
        F.conv_forward(x, w, None, 1, (3, 1), 1, 1, "circular")


def test_geometry_that_would_index_outside_the_padded_input_is_refused() -> None:
    """Geometry is validated before any kernel runs: a window reaching past the padded
    input (here output 3 of stride 2 on 4 padded elements) cannot be built."""
    from convpool.functional._common import Geometry

    Geometry((4,), (1,), (2,), (1,), ((0, 0),), (2,), (0,))  # windows at 0 and 2: fine
    with pytest.raises(ValueError, match="inconsistent window geometry in spatial dim 0"):
        Geometry((4,), (1,), (2,), (1,), ((0, 0),), (3,), (0,))
    with pytest.raises(ValueError, match="inconsistent window geometry"):
        Geometry((4,), (1,), (0,), (1,), ((0, 0),), (1,), (0,))
