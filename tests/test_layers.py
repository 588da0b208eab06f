"""Layers and losses against PyTorch (float64): forward, input and parameter gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import convpool
from convpool import interop, nn
from oracle import assert_close


def _compare(ours, x, seed=0):  # type: ignore[no-untyped-def]
    theirs = interop.to_torch(ours)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    y = ours(x)
    assert_close(y, yt.detach().numpy(), f"{type(ours).__name__} forward")
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    assert_close(ours.backward(dy), xt.grad.numpy(), f"{type(ours).__name__} grad input")
    grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, grads[name].grad.numpy(), f"{type(ours).__name__} grad {name}")
    for name, b in theirs.named_buffers():
        assert_close(ours.state_dict()[name], b.numpy(), f"buffer {name}")


@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (lambda: nn.Linear(5, 3, dtype=np.float64), (4, 5)),
        (lambda: nn.Linear(5, 3, bias=False, dtype=np.float64), (2, 6, 5)),
        (nn.ReLU, (3, 4, 5)),
        (lambda: nn.LeakyReLU(0.2), (3, 7)),
        (nn.Tanh, (3, 7)),
        (nn.Sigmoid, (3, 7)),
        (nn.Flatten, (2, 3, 4, 5)),
        (lambda: nn.Flatten(2, 3), (2, 3, 4, 5)),
        (lambda: nn.BatchNorm1d(4, dtype=np.float64), (6, 4)),
        (lambda: nn.BatchNorm1d(4, dtype=np.float64), (6, 4, 3)),
        (lambda: nn.BatchNorm2d(3, dtype=np.float64), (5, 3, 4, 4)),
        (lambda: nn.BatchNorm2d(3, affine=False, dtype=np.float64), (5, 3, 4, 4)),
    ],
)
def test_layer_matches_torch(make, shape):  # type: ignore[no-untyped-def]
    convpool.manual_seed(0)
    layer = make()
    x = np.random.default_rng(1).standard_normal(shape) * 3
    _compare(layer, x)
    if isinstance(layer, nn.layers._BatchNorm):  # then evaluation mode with the running statistics
        layer.eval()
        layer.zero_grad()
        _compare(layer, x + 1.0, seed=2)


def test_batchnorm_running_statistics_follow_torch_over_steps():
    ours = nn.BatchNorm2d(2, momentum=0.3, dtype=np.float64)
    theirs = torch.nn.BatchNorm2d(2, momentum=0.3, dtype=torch.float64)
    rng = np.random.default_rng(0)
    for _ in range(4):
        x = rng.standard_normal((3, 2, 5, 5)) * 2 + 1
        ours(x)
        theirs(torch.tensor(x))
    for k, v in theirs.state_dict().items():
        assert_close(ours.state_dict()[k], v.numpy(), k)


def test_dropout_train_and_eval():
    convpool.manual_seed(0)
    d = nn.Dropout(0.25)
    x = np.ones((200, 50))
    y = d(x)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02 and np.allclose(y[kept], 1 / 0.75)
    g = d.backward(np.ones_like(x))
    np.testing.assert_array_equal(g, y)  # same mask, same scale
    d.eval()
    np.testing.assert_array_equal(d(x), x)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_matches_torch(smoothing):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((7, 5)) * 10  # large values: the log-softmax must be stable
    target = rng.integers(0, 5, 7)
    crit = nn.CrossEntropyLoss(label_smoothing=smoothing)
    lt = torch.tensor(logits, requires_grad=True)
    loss_t = torch.nn.CrossEntropyLoss(label_smoothing=smoothing)(lt, torch.tensor(target))
    loss_t.backward()
    assert abs(crit(logits, target) - loss_t.item()) < 1e-12
    assert_close(crit.backward(), lt.grad.numpy(), "CE gradient")


def test_mse_matches_torch():
    rng = np.random.default_rng(0)
    p, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    pt = torch.tensor(p, requires_grad=True)
    lt = torch.nn.MSELoss()(pt, torch.tensor(t))
    lt.backward()
    crit = nn.MSELoss()
    assert abs(crit(p, t) - lt.item()) < 1e-12
    assert_close(crit.backward(), pt.grad.numpy(), "MSE gradient")


def test_loss_errors():
    with pytest.raises(ValueError, match="target class indices must be in"):
        nn.CrossEntropyLoss()(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"pred must be logits of shape \(N, C\)"):
        nn.CrossEntropyLoss()(np.zeros(3), np.array([0]))
    with pytest.raises(ValueError, match="backward called before forward"):
        nn.MSELoss().backward()
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.MSELoss(reduction="avg")


def test_sequential_keys_indexing_and_backward():
    convpool.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    assert list(m.state_dict()) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert isinstance(m[3], nn.Linear) and len(m) == 4
    t = interop.to_torch(m)
    assert list(t.state_dict()) == list(m.state_dict())
    with pytest.raises(TypeError, match="Sequential takes Modules"):
        nn.Sequential(nn.ReLU(), "relu")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [4, 1 << 15])  # NumPy path and compiled parallel path
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_treat_nan_zero_and_signs_like_torch(size, dtype):  # type: ignore[no-untyped-def]
    x = np.resize(np.array([np.nan, -1.0, 2.0, 0.0, -0.0, np.inf, -np.inf], dtype=dtype), size).reshape(2, -1)
    dy = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
    for layer in (nn.ReLU(), nn.LeakyReLU(), nn.Tanh(), nn.Sigmoid()):
        xt = torch.tensor(x, requires_grad=True)
        yt = interop.to_torch(layer)(xt)
        yt.backward(torch.tensor(dy))
        name = type(layer).__name__
        y = layer(x)
        assert y.dtype == dtype, name
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-6, err_msg=f"{name} forward")
        np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), rtol=1e-6, err_msg=f"{name} backward")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_params_accumulates_what_backward_does(dtype):  # type: ignore[no-untyped-def]
    """The params-only backward (first layer: no input gradient) gives the same parameter
    gradients as the full backward, for the direct, im2col and reference conv paths."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 9, 9)).astype(dtype)

    def model():  # type: ignore[no-untyped-def]
        convpool.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1, dtype=dtype),
            nn.ReLU(),
            nn.Conv2d(4, 4, 3, stride=2, dtype=dtype),
            nn.Flatten(),
            nn.Linear(64, 3, dtype=dtype),
        )

    full, params_only = model(), model()
    dy = rng.standard_normal((3, 3)).astype(dtype)
    full(x)
    full.backward(dy)
    params_only(x)
    assert params_only.backward_params(dy) is None
    for (name, p), (_, q) in zip(full.named_parameters(), params_only.named_parameters()):
        np.testing.assert_allclose(q.grad, p.grad, rtol=1e-6, err_msg=name)
    head = nn.Linear(5, 2, dtype=dtype)
    head(x[:, 0, 0, :5])
    head.backward_params(dy[:, :2])
    ref = nn.Linear(5, 2, dtype=dtype)
    ref.weight.data[...] = head.weight.data
    ref(x[:, 0, 0, :5])
    ref.backward(dy[:, :2])
    np.testing.assert_allclose(head.weight.grad, ref.weight.grad, rtol=1e-6)
