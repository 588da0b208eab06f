"""The weight gradients that sum per-image products over the batch (the 1x1 conv's
"pointwise" path, the im2col path): the batch split over kernel threads, each product on
one BLAS thread, gives PyTorch's gradient, and the same bits on every run - the chunks'
partial sums are added in batch order, not in the order the threads finish."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import convpool
from convpool import config
from convpool.functional import conv_backward, conv_forward

pytestmark = pytest.mark.skipif(
    "compiled" not in convpool.available_backends(), reason="the compiled backend's batch split"
)


@pytest.mark.parametrize(
    "impl, kernel, x_shape, c_out, dtype",
    [
        ("pointwise", 1, (24, 32, 12, 12), 8, np.float32),  # 24 x 18 KiB of columns: split (from 256 KiB)
        ("pointwise", 1, (9, 6, 5, 7), 4, np.float64),  # small: in turn, one BLAS thread
        ("im2col", 3, (16, 32, 32, 32), 8, np.float32),  # 16 x 1.2 MiB of columns: split (from 8 MiB)
        ("im2col", 3, (5, 3, 8, 8), 7, np.float64),
    ],
)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_weight_gradient_over_threads(impl, kernel, x_shape, c_out, dtype, threads):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(threads)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((c_out, x_shape[1], kernel, kernel)).astype(dtype)
    runs = []
    with config.use("conv", impl), config.tuning(threads=threads, thread_min_work=0):
        for _ in range(3):
            y, ctx = conv_forward(x, w, None, 1, 0)
            dy = np.random.default_rng(7).standard_normal(y.shape).astype(dtype)
            runs.append(conv_backward(dy, ctx)[:2])
    assert ctx.name == impl  # the path named ran
    for dx, dw in runs[1:]:  # bit for bit, run after run
        np.testing.assert_array_equal(dw, runs[0][1])
        np.testing.assert_array_equal(dx, runs[0][0])
    f64 = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w)]
    torch.nn.functional.conv2d(*f64).backward(torch.tensor(dy, dtype=torch.float64))
    tol = 1e-5 if dtype == np.float32 else 1e-12  # of the largest element: sums of thousands of terms
    for ours, ref in zip(runs[0], (f64[0].grad.numpy(), f64[1].grad.numpy()), strict=True):
        np.testing.assert_allclose(ours, ref, rtol=0, atol=tol * np.abs(ref).max())
