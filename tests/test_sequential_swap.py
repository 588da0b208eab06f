"""Sequential runs a ReLU followed by a max pool as the pool, then the ReLU: the output
and every gradient must equal running the layers in the order given, bit for bit (NaN,
infinities, ties and all-negative windows included), and PyTorch's for a LeNet."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convpool
from convpool import _random, interop, models
from convpool import nn as cnn

VALUES = np.array([-2.0, -1.0, -0.0, 0.0, 0.5, 1.0, 1.0, 3.0, np.nan, np.inf, -np.inf])


def in_order(layers: list[Any], x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Output and input gradient with every layer called in the order given."""
    h = x
    for layer in layers:
        h = layer(h)
    y, g = h, dy
    for layer in reversed(layers):
        g = layer.backward(g)
    return y, g


@st.composite
def pool_case(draw):  # type: ignore[no-untyped-def]
    nd = draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    p = tuple(draw(st.integers(0, kk // 2)) for kk in k)
    size = tuple(draw(st.integers(dd * (kk - 1) + 1, dd * (kk - 1) + 6)) for kk, dd in zip(k, d))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *size)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    special = draw(st.booleans())  # NaN, infinities, signed zeros and ties, or plain normals
    return nd, k, s, p, d, draw(st.booleans()), shape, dtype, special


@settings(max_examples=150)
@given(pool_case(), st.integers(0, 2**16))
def test_swapped_pair_equals_in_order(case, seed):  # type: ignore[no-untyped-def]
    nd, k, s, p, d, ceil, shape, dtype, special = case
    rng = np.random.default_rng(seed)
    x = (rng.choice(VALUES, shape) if special else rng.standard_normal(shape)).astype(dtype)
    pool = getattr(cnn, f"MaxPool{nd}d")(k, s, p, d, ceil_mode=ceil)
    net = cnn.Sequential(cnn.ReLU(), pool)
    y_ref, g_ref = in_order(list(net), x, dy := rng.standard_normal(pool(x).shape).astype(dtype))
    y = net(x)
    assert net._saved == [net[1], net[0]], "the pair did not swap"
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(net.backward(dy), g_ref)


def test_not_swapped() -> None:
    """A pool that pads by a border mode, a ReLU subclass, a float16 input, the pool
    before the ReLU and an average pool keep the order given."""

    class MyReLU(cnn.ReLU):
        pass

    x = np.random.default_rng(0).standard_normal((1, 2, 6, 6)).astype(np.float32)
    for net in (
        cnn.Sequential(cnn.ReLU(), cnn.MaxPool2d(3, 1, padding=1, padding_mode="reflect")),
        cnn.Sequential(MyReLU(), cnn.MaxPool2d(2)),
        cnn.Sequential(cnn.MaxPool2d(2), cnn.ReLU()),
        cnn.Sequential(cnn.ReLU(), cnn.AvgPool2d(2)),
    ):
        net(x)
        assert net._saved == list(net)
    net = cnn.Sequential(cnn.ReLU(), cnn.MaxPool2d(2))
    net(x.astype(np.float16))
    assert net._saved == list(net)


def test_backward_without_forward_in_this_order() -> None:
    """Layers called one by one, then the Sequential's backward: the order given."""
    net = cnn.Sequential(cnn.ReLU(), cnn.MaxPool2d(2))
    x = np.random.default_rng(1).standard_normal((1, 1, 4, 4)).astype(np.float32)
    y, g = in_order(list(net), x, np.ones((1, 1, 2, 2), np.float32))
    assert net._saved is None
    np.testing.assert_array_equal(net.backward(np.ones_like(y)), g)


@pytest.mark.parametrize("backend", convpool.available_backends())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lenet_step_against_torch(backend: str, dtype: Any) -> None:
    """The LeNet (two ReLU + max pool pairs) forward, input and parameter gradients."""
    _random.manual_seed(3)
    net = models.lenet(1, 10, 12, width=4)
    for prm in net.parameters():
        prm.data = prm.data.astype(dtype)
    tnet = interop.to_torch(net).to(torch.float64 if dtype == np.float64 else torch.float32)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1, 12, 12)).astype(dtype)
    dy = rng.standard_normal((3, 10)).astype(dtype)
    with convpool.backend(backend):
        y = net(x)
        assert [type(m).__name__ for m in net._saved][1:3] == ["MaxPool2d", "ReLU"]
        dx = net.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = tnet(xt)
    yt.backward(torch.tensor(dy))
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y, yt.detach().numpy(), **tol)
    assert xt.grad is not None
    np.testing.assert_allclose(dx, xt.grad.numpy(), **tol)
    for (name, prm), tp in zip(net.named_parameters(), tnet.parameters(), strict=True):
        assert tp.grad is not None
        np.testing.assert_allclose(prm.grad, tp.grad.numpy(), err_msg=name, **tol)
    # backward_params: the first layer's parameters get the same gradients
    for prm in net.parameters():
        prm.grad = None
    with convpool.backend(backend):
        net(x)
        net.backward_params(dy)
    for (name, prm), tp in zip(net.named_parameters(), tnet.parameters(), strict=True):
        np.testing.assert_allclose(prm.grad, tp.grad.numpy(), err_msg=name, **tol)
