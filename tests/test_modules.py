"""The module contract: call, backward, accumulation, state dicts, PyTorch parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import convpool
from convpool import nn
from oracle import assert_close


def _copy_to_torch(ours, theirs):  # type: ignore[no-untyped-def]
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(torch.tensor(ours.state_dict()[name]))


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_module_matches_torch_module(nd, mode):  # type: ignore[no-untyped-def]
    ours = getattr(nn, f"Conv{nd}d")(
        4, 6, 3, stride=2, padding=1, dilation=1, groups=2, padding_mode=mode, dtype=np.float64
    )
    theirs = getattr(torch.nn, f"Conv{nd}d")(
        4, 6, 3, stride=2, padding=1, groups=2, padding_mode=mode, dtype=torch.float64
    )
    assert [k for k in ours.state_dict()] == [k for k in theirs.state_dict()]
    _copy_to_torch(ours, theirs)
    x = np.random.default_rng(nd).standard_normal((2, 4, *(7,) * nd))
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    y = ours(x)
    assert_close(y, yt.detach().numpy(), "forward")
    dy = np.random.default_rng(9).standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    assert_close(ours.backward(dy), xt.grad.numpy(), "grad input")
    assert_close(ours.weight.grad, theirs.weight.grad.numpy(), "grad weight")
    assert_close(ours.bias.grad, theirs.bias.grad.numpy(), "grad bias")


def test_gradients_accumulate_until_zero_grad():
    m = nn.Conv1d(1, 1, 2, bias=True, dtype=np.float64)
    x = np.ones((1, 1, 3))
    for _ in range(2):
        m.backward(np.ones_like(m(x)))
    assert m.bias.grad.tolist() == [4.0]  # two calls, each 2 output positions
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None


def test_default_init_is_pytorch_kaiming_uniform():
    convpool.manual_seed(0)
    m = nn.Conv2d(8, 16, 3)
    bound = 1 / np.sqrt(8 * 9)
    assert np.abs(m.weight.data).max() <= bound and np.abs(m.weight.data).max() > 0.9 * bound
    assert np.abs(m.bias.data).max() <= bound
    assert m.weight.dtype == np.float32 and m.num_parameters() == 16 * 8 * 9 + 16
    convpool.manual_seed(0)
    np.testing.assert_array_equal(nn.Conv2d(8, 16, 3).weight.data, m.weight.data)


def test_pool_modules_match_torch_and_have_no_parameters():
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9))
    pairs = [
        (nn.MaxPool2d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
        (
            nn.AvgPool2d(3, 2, 1, count_include_pad=False),
            torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False),
        ),
        (nn.LPPool2d(2, 3, 2), torch.nn.LPPool2d(2, 3, 2)),
        (nn.AdaptiveAvgPool2d((2, 3)), torch.nn.AdaptiveAvgPool2d((2, 3))),
        (nn.AdaptiveMaxPool2d(4), torch.nn.AdaptiveMaxPool2d(4)),
    ]
    for ours, theirs in pairs:
        assert ours.parameters() == [] and ours.state_dict() == {}
        xt = torch.tensor(x, requires_grad=True)
        yt = theirs(xt)
        assert_close(ours(x), yt.detach().numpy(), type(ours).__name__)
        dy = np.random.default_rng(1).standard_normal(yt.shape)
        yt.backward(torch.tensor(dy))
        assert_close(ours.backward(dy), xt.grad.numpy(), type(ours).__name__ + " backward")


def test_return_indices_modules():
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 6))
    y, idx = nn.MaxPool2d(2, return_indices=True)(x)
    yt, it = torch.nn.MaxPool2d(2, return_indices=True)(torch.tensor(x))
    np.testing.assert_array_equal(idx, it.numpy())
    y, idx = nn.AdaptiveMaxPool2d(3, return_indices=True)(x)
    _, it = torch.nn.AdaptiveMaxPool2d(3, return_indices=True)(torch.tensor(x))
    np.testing.assert_array_equal(idx, it.numpy())


def test_unbatched_input_and_dtype_follow_input():
    m = nn.Conv2d(3, 4, 3, padding="same")
    x = np.random.default_rng(0).standard_normal((3, 5, 5))
    y = m(x)
    assert y.shape == (4, 5, 5) and y.dtype == np.float64
    gx = m.backward(np.ones_like(y))
    assert gx.shape == x.shape and m.weight.grad.dtype == np.float32
    p = nn.MedianPool2d(3, 1, 1, padding_mode="reflect")
    assert p(x.astype(np.float32)).dtype == np.float32


def test_train_eval_flags_and_repr():
    m = nn.MaxPool2d(2)
    assert m.training and not m.eval().training and m.train().training
    assert "Conv2d(3, 4, kernel_size=(3, 3)" in repr(nn.Conv2d(3, 4, 3))
