"""Optimiser updates and schedules equal PyTorch's; a whole CNN training step too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import convpool
from convpool import interop, models, nn, optim
from oracle import assert_close

CASES = [
    (optim.SGD, torch.optim.SGD, {"lr": 0.1}),
    (optim.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    (optim.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "weight_decay": 1e-2}),
    (optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 1e-3}),
    (optim.Adam, torch.optim.Adam, {"lr": 1e-2}),
    (optim.Adam, torch.optim.Adam, {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 1e-2}),
    (optim.AdamW, torch.optim.AdamW, {"lr": 1e-2}),
    (optim.AdamW, torch.optim.AdamW, {"lr": 1e-2, "weight_decay": 0.1}),
]


@pytest.mark.parametrize(("ours_cls", "theirs_cls", "kw"), CASES)
def test_optimizer_steps_match_torch(ours_cls, theirs_cls, kw):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4))
    p = nn.Parameter(w0)
    pt = torch.tensor(w0, requires_grad=True)
    opt, opt_t = ours_cls([p], **kw), theirs_cls([pt], **kw)
    for _ in range(5):
        g = rng.standard_normal((3, 4))
        opt.zero_grad()
        p.accumulate(g)
        opt_t.zero_grad()
        pt.grad = torch.tensor(g)
        opt.step()
        opt_t.step()
        assert_close(p.data, pt.detach().numpy(), f"{ours_cls.__name__} {kw}")


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda o: optim.StepLR(o, 3, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
        (
            lambda o: optim.CosineAnnealingLR(o, 7, 1e-4),
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 7, 1e-4),
        ),
    ],
)
def test_schedules_match_torch(ours, theirs):  # type: ignore[no-untyped-def]
    o = optim.SGD([nn.Parameter(np.zeros(1))], lr=0.1)
    ot = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    s, st = ours(o), theirs(ot)
    for _ in range(10):
        ot.step()
        s.step()
        st.step()
        assert abs(o.lr - ot.param_groups[0]["lr"]) < 1e-12


def test_cnn_training_step_matches_torch():
    convpool.manual_seed(0)
    model = models.lenet(width=4)
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    tmodel = interop.to_torch(model).double()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 1, 8, 8)), rng.integers(0, 10, 6)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt_t = torch.optim.SGD(tmodel.parameters(), lr=0.1, momentum=0.9)
    crit, crit_t = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    for _ in range(3):
        opt.zero_grad()
        crit(model(x), y)
        model.backward(crit.backward())
        opt.step()
        opt_t.zero_grad()
        crit_t(tmodel(torch.tensor(x)), torch.tensor(y)).backward()
        opt_t.step()
    for k, v in tmodel.state_dict().items():
        assert_close(model.state_dict()[k], v.numpy(), k, rtol=1e-9, atol=1e-11)


def test_optimizer_errors():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="lr must be a non-negative number"):
        optim.Adam([nn.Parameter(np.zeros(1))], lr=-1)
    with pytest.raises(TypeError, match=r"unknown arguments \['momentun'\]"):
        optim.SGD([nn.Parameter(np.zeros(1))], lr=0.1, momentun=0.9)
    with pytest.raises(ValueError, match="nesterov momentum requires"):
        optim.SGD([nn.Parameter(np.zeros(1))], lr=0.1, nesterov=True)


@pytest.mark.parametrize("shape", [(150, 120), (3,)])  # split over threads, and on the calling thread
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("ours_cls", "theirs_cls", "kw"), CASES)
def test_fused_steps_equal_numpy_bit_for_bit_and_torch(ours_cls, theirs_cls, kw, dtype, shape, monkeypatch):  # type: ignore[no-untyped-def]
    """The compiled step (one pass per parameter) gets exactly the NumPy step's values,
    and PyTorch's to float rounding, over five steps."""
    from convpool import config
    from convpool.backends.compiled import kernels

    calls = []
    if kernels.AVAILABLE:  # count the compiled steps: the first run must take them
        for name in ("adam_step", "sgd_step"):
            real = getattr(kernels, name)
            monkeypatch.setattr(kernels, name, lambda *a, real=real: calls.append(1) or real(*a))
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(w0.shape).astype(dtype) for _ in range(5)]
    results = []
    for fused_step_min in (0, 1 << 60):  # compiled (when the backend has it), then NumPy
        p = nn.Parameter(w0.copy())
        opt = ours_cls([p], **kw)
        with config.tuning(fused_step_min=fused_step_min):
            for g in grads:
                opt.zero_grad()
                p.accumulate(g)
                opt.step()
        results.append((p.data.copy(), [{k: v.copy() for k, v in st.items()} for st in opt.state]))
    assert len(calls) == (5 if kernels.AVAILABLE else 0)
    np.testing.assert_array_equal(results[0][0], results[1][0])
    for k, v in results[1][1][0].items():
        np.testing.assert_array_equal(results[0][1][0][k], v, err_msg=k)
    pt = torch.tensor(w0, requires_grad=True)
    opt_t = theirs_cls([pt], **kw)
    for g in grads:
        opt_t.zero_grad()
        pt.grad = torch.tensor(g)
        opt_t.step()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(results[0][0], pt.detach().numpy(), rtol=tol, atol=tol)
