"""Batch normalisation (functional.batch_norm and the BatchNorm layers) against PyTorch:
forward, input, weight and bias gradients, training and evaluation, every rank, on the
compiled kernels and on the NumPy expressions (both backends: conftest runs this module
once per backend)."""

from __future__ import annotations

from contextlib import AbstractContextManager

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convpool.functional as F
from convpool import config, nn


def _path(kernels: bool) -> AbstractContextManager:
    """Kernels for every size (when the backend has them) or for none."""
    return config.tuning(parallel_min=0 if kernels else 1 << 60)


def _torch_bn(x, rm, rv, w, b, training, eps, dy):
    xt = torch.tensor(x, requires_grad=True)
    wt = None if w is None else torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    rmt = None if rm is None else torch.tensor(rm)
    rvt = None if rv is None else torch.tensor(rv)
    y = torch.nn.functional.batch_norm(xt, rmt, rvt, wt, bt, training, 0.1, eps)
    y.backward(torch.tensor(dy))
    grads = [xt.grad.numpy(), None if wt is None else wt.grad.numpy(), None if bt is None else bt.grad.numpy()]
    return y.detach().numpy(), grads, rmt, rvt


shapes = st.sampled_from([(3, 2), (2, 3, 17), (2, 2, 4, 5), (3, 2, 3, 2, 3), (1, 3, 20), (4, 1, 6, 6)])


@settings(max_examples=60)
@given(shape=shapes, training=st.booleans(), affine=st.booleans(), kernels=st.booleans(), seed=st.integers(0, 99))
def test_batch_norm_matches_torch(shape, training, affine, kernels, seed):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = rng.standard_normal(shape) * 3 + rng.standard_normal((1, c) + (1,) * (len(shape) - 2)) * 5
    dy = rng.standard_normal(shape)
    rm, rv = rng.standard_normal(c), rng.random(c) + 0.5
    w, b = (rng.standard_normal(c), rng.standard_normal(c)) if affine else (None, None)
    eps = 1e-3
    with _path(kernels):
        y, ctx = F.batch_norm_forward(x, rm, rv, w, b, training, eps)
        dx, dw, db = F.batch_norm_backward(dy, ctx)
    ty, (tdx, tdw, tdb), _, _ = _torch_bn(x, rm, rv, w, b, training, eps, dy)
    np.testing.assert_allclose(y, ty, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dx, tdx, rtol=1e-9, atol=1e-9)
    if affine:
        np.testing.assert_allclose(dw, tdw, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(db, tdb, rtol=1e-9, atol=1e-9)
    else:
        assert dw is None and db is None


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_float32_large_mean(kernels, training):
    """float32 with a large offset (mean 1000, sigma 1): the two-pass float64 statistics
    keep the normalised output within float32 rounding of PyTorch's float64 result."""
    rng = np.random.default_rng(0)
    x = (1000 + rng.standard_normal((8, 4, 32, 32))).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    w, b = rng.standard_normal(4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    rm, rv = np.full(4, 1000.0, np.float32), np.ones(4, np.float32)
    with _path(kernels):
        y, ctx = F.batch_norm_forward(x, rm, rv, w, b, training, 1e-5)
        dx, dw, db = F.batch_norm_backward(dy, ctx)
    assert y.dtype == dx.dtype == dw.dtype == np.float32
    f64 = [a.astype(np.float64) for a in (x, rm, rv, w, b)]
    ty, (tdx, tdw, tdb), _, _ = _torch_bn(*f64, training, 1e-5, dy.astype(np.float64))
    np.testing.assert_allclose(y, ty, rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(dx, tdx, rtol=2e-3, atol=2e-3 * np.abs(tdx).max())
    np.testing.assert_allclose(dw, tdw, rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(db, tdb, rtol=1e-4, atol=1e-2)


def test_functional_updates_running_stats_like_torch():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3, 7))
    rm, rv = rng.standard_normal(3), rng.random(3) + 0.5
    ours_m, ours_v = rm.copy(), rv.copy()
    y = F.batch_norm(x, ours_m, ours_v, training=True, momentum=0.3)
    tm, tv = torch.tensor(rm), torch.tensor(rv)
    ty = torch.nn.functional.batch_norm(torch.tensor(x), tm, tv, training=True, momentum=0.3)
    np.testing.assert_allclose(y, ty.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours_m, tm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours_v, tv.numpy(), rtol=1e-12)
    np.testing.assert_allclose(F.batch_norm(x, ours_m, ours_v), torch.nn.functional.batch_norm(torch.tensor(x), tm, tv))


@pytest.mark.parametrize("kernels", [True, False])
def test_module_training_steps_match_torch(kernels):
    """BatchNorm2d over three training steps then evaluation: outputs, gradients and
    running statistics as PyTorch's (float32, the kernels' dtype)."""
    rng = np.random.default_rng(2)
    ours = nn.BatchNorm2d(6)
    theirs = torch.nn.BatchNorm2d(6)
    with _path(kernels):
        for step in range(3):
            x = (rng.standard_normal((4, 6, 9, 9)) * (step + 1) + step).astype(np.float32)
            dy = rng.standard_normal(x.shape).astype(np.float32)
            y = ours(x)
            dx = ours.backward(dy)
            xt = torch.tensor(x, requires_grad=True)
            yt = theirs(xt)
            yt.backward(torch.tensor(dy))
            np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-5, atol=1e-6)
        ours.eval(), theirs.eval()
        x = rng.standard_normal((2, 6, 5, 5)).astype(np.float32)
        np.testing.assert_allclose(ours(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(("with_weight", "with_bias"), [(False, True), (True, False)])
def test_one_parameter_gets_its_gradient(training, with_weight, with_bias):
    """A bias without a weight (or the reverse), as PyTorch's F.batch_norm allows: each
    given parameter gets its gradient, the other None."""
    rng = np.random.default_rng(4)
    x, dy = rng.standard_normal((4, 3, 20)), rng.standard_normal((4, 3, 20))
    rm, rv = rng.standard_normal(3), rng.random(3) + 0.5
    w = rng.standard_normal(3) if with_weight else None
    b = rng.standard_normal(3) if with_bias else None
    for kernels in (True, False):
        with _path(kernels):
            y, ctx = F.batch_norm_forward(x, rm, rv, w, b, training, 1e-5)
            dx, dw, db = F.batch_norm_backward(dy, ctx)
        ty, (tdx, tdw, tdb), _, _ = _torch_bn(x, rm, rv, w, b, training, 1e-5, dy)
        np.testing.assert_allclose(y, ty, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(dx, tdx, rtol=1e-9, atol=1e-9)
        assert (dw is None) == (not with_weight) and (db is None) == (not with_bias)
        if with_weight:
            np.testing.assert_allclose(dw, tdw, rtol=1e-9, atol=1e-9)
        if with_bias:
            np.testing.assert_allclose(db, tdb, rtol=1e-9, atol=1e-9)


def test_empty_batch_or_channels_in_evaluation():
    m = nn.BatchNorm2d(3).eval()
    x = np.zeros((0, 3, 4, 4), np.float32)
    y = m(x)
    assert y.shape == x.shape
    assert m.backward(np.ones_like(y)).shape == x.shape
    np.testing.assert_array_equal(m.weight.grad, np.zeros(3))
    x = np.zeros((2, 0, 4, 4))  # no channels: functional only (a layer has at least one feature)
    y, ctx = F.batch_norm_forward(x, np.zeros(0), np.ones(0), np.ones(0), np.zeros(0))
    dx, dw, db = F.batch_norm_backward(np.ones_like(y), ctx)
    assert y.shape == dx.shape == x.shape and dw.shape == db.shape == (0,)


def test_kernels_split_over_threads_equal_numpy():
    """Channels split over three threads, long channels (several 1,024-element runs and
    a tail): the kernels' statistics and gradients against the NumPy expressions."""
    from convpool.backends.compiled import kernels

    if not kernels.enabled():
        pytest.skip("the compiled kernels are off on this backend")
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((3, 5, 50, 51)) * 2 + 1).astype(np.float32)  # 2,550 per image and channel
    dy = rng.standard_normal(x.shape).astype(np.float32)
    w, b = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    out = []
    for settings_ in ({"threads": 3, "thread_min_work": 0, "parallel_min": 0}, {"parallel_min": 1 << 60}):
        with config.tuning(**settings_):
            y, ctx = F.batch_norm_forward(x, None, None, w, b, True, 1e-5)
            out.append((y, ctx.batch_mean, ctx.batch_var, *F.batch_norm_backward(dy, ctx)))
    for a, b_ in zip(*out, strict=True):
        np.testing.assert_allclose(a, b_, rtol=2e-5, atol=2e-5)


def test_errors():
    x = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match=r"running_mean is required when training=False"):
        F.batch_norm(x, None, np.ones(3))
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\).*got \(2,\)"):
        F.batch_norm(x, np.zeros(3), np.ones(3), weight=np.ones(2))
    with pytest.raises(ValueError, match=r"eps must be a positive finite number.*got 0"):
        F.batch_norm(x, np.zeros(3), np.ones(3), eps=0)
    with pytest.raises(ValueError, match=r"more than 1 value per channel, got input shape \(1, 3\)"):
        F.batch_norm(np.zeros((1, 3)), None, None, training=True)
    with pytest.raises(ValueError, match=r"at least 2 dims, got shape \(3,\)"):
        F.batch_norm(np.zeros(3), np.zeros(3), np.ones(3))
    with pytest.raises(TypeError, match=r"running_mean is updated in place.*writeable NumPy array, got \[0"):
        F.batch_norm(x, [0.0, 0.0, 0.0], None, training=True)
    with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\], got 2"):
        F.batch_norm(x, None, None, training=True, momentum=2)
    y, ctx = F.batch_norm_forward(x, np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=r"grad_output must have the output's shape \(2, 3, 4\), got \(2, 3\)"):
        F.batch_norm_backward(np.zeros((2, 3)), ctx)
