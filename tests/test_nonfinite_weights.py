"""A weight holding inf or NaN: the compiled input gradient has PyTorch's inf and NaN
where PyTorch has them, no more.  The SIMD kernels compute it as a convolution of ``dy``
padded with zeros, and 0 * inf = NaN where an inf weight meets that padding: the
backward then takes the NumPy path's sums, as for non-finite weight gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convpool.functional import conv_backward, conv_forward


@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("groups, c_in, c_out", [(1, 8, 16), (8, 8, 8), (8, 8, 16)])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_input_gradient_with_a_nonfinite_weight(padding: int, groups: int, c_in: int, c_out: int, bad: float) -> None:
    rng = np.random.default_rng(padding)
    x = rng.standard_normal((2, c_in, 12, 12)).astype(np.float32)
    w = rng.standard_normal((c_out, c_in // groups, 3, 3)).astype(np.float32)
    w[3, 0, 0, 0] = bad
    y, ctx = conv_forward(x, w, None, 1, padding, 1, groups)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw = conv_backward(dy, ctx)[:2]
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.conv2d(xt, wt, None, 1, padding, 1, groups).backward(torch.tensor(dy, dtype=torch.float64))
    for ours, ref in ((dx, xt.grad.numpy()), (dw, wt.grad.numpy())):
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(ref))
        np.testing.assert_array_equal(np.sign(ours[np.isinf(ref)]), np.sign(ref[np.isinf(ref)]))
        finite = np.isfinite(ref)
        np.testing.assert_allclose(ours[finite], ref[finite], rtol=1e-4, atol=1e-4)
