"""Whole-network cases of ``convpool bench``: a LeNet training step, a CIFAR-style training
step and a batch-1 LeNet forward (latency), each beside the same network in PyTorch
with the same weights (:func:`convpool.interop.to_torch`); and the peak-memory probe.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np

from .. import nn
from .bench_cases import Case, Spec


def cifar_net(num_classes: int = 10, width: int = 32) -> nn.Sequential:
    """The small CIFAR-style network of the CIFAR step: three blocks of 3x3 conv
    (padding 1) -> BatchNorm2d -> ReLU -> 2x2 max pool with ``width``, ``2 * width`` and
    ``4 * width`` channels, then Flatten and a Linear layer, for 3x32x32 images."""
    layers: list[nn.Module] = []
    c_in = 3
    for c in (width, 2 * width, 4 * width):
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
        c_in = c
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * 4 * 4, num_classes))


def _step_case(name: str, group: str, model: nn.Module, x: np.ndarray, y: np.ndarray, optimizer: str) -> Case:
    """One training step - forward, cross-entropy, backward, optimiser step - in both
    libraries on the same model, data and optimiser settings."""
    import torch

    from .. import interop, optim

    tmodel = interop.to_torch(model)
    if optimizer == "adamw":
        opt: Any = optim.AdamW(model.parameters(), lr=1e-3)
        topt: Any = torch.optim.AdamW(tmodel.parameters(), lr=1e-3)
    else:
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        topt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9)
    crit, tcrit = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    xt, yt = torch.tensor(x), torch.tensor(y)

    def ours() -> None:
        opt.zero_grad()
        crit(model(x), y)
        model.backward_params(crit.backward())  # like PyTorch: no gradient for the data
        opt.step()

    def theirs() -> None:
        topt.zero_grad()
        tcrit(tmodel(xt), yt).backward()
        topt.step()

    return Case(name, group, ours, None, theirs, None)


def _data(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random(shape, dtype=np.float32), rng.integers(0, 10, shape[0])


def lenet_step_case(name: str, batch: int) -> Case:
    """A training step (AdamW) of the LeNet-style model on ``batch`` 1x28x28 images."""
    from .. import _random, models

    _random.manual_seed(0)
    return _step_case(name, "lenet_step", models.lenet(1, 10, 28), *_data((batch, 1, 28, 28)), "adamw")


def cifar_step_case(name: str, batch: int) -> Case:
    """A training step (SGD with momentum 0.9) of :func:`cifar_net` on ``batch`` 3x32x32 images."""
    from .. import _random

    _random.manual_seed(0)
    return _step_case(name, "cifar_step", cifar_net(), *_data((batch, 3, 32, 32)), "sgd")


def lenet_latency_case(name: str) -> Case:
    """The LeNet-style model's forward on one 1x28x28 image in eval mode: convpool as
    called, PyTorch under ``torch.inference_mode()`` (what a server does)."""
    import torch

    from .. import _random, interop, models

    _random.manual_seed(0)
    model = models.lenet(1, 10, 28).eval()
    tmodel = interop.to_torch(model).eval()
    x, _ = _data((1, 1, 28, 28))
    xt = torch.tensor(x)

    def theirs() -> Any:
        with torch.inference_mode():
            return tmodel(xt)

    return Case(name, "lenet_b1", lambda: model(x), None, theirs, None)


def specs(quick: bool = False) -> list[Spec]:
    """The whole-network cases; ``quick``: batches 4x smaller."""
    n = 4 if quick else 1
    lenet = f"LeNet training step {64 // n}x1x28x28 (AdamW)"
    cifar = f"CIFAR-style training step {128 // n}x3x32x32 (SGD)"
    b1 = "LeNet forward batch 1 (eval)"
    return [
        Spec(lenet, "lenet_step", lambda: lenet_step_case(lenet, 64 // n)),
        Spec(cifar, "cifar_step", lambda: cifar_step_case(cifar, 128 // n)),
        Spec(b1, "lenet_b1", lambda: lenet_latency_case(b1)),
    ]


_PEAK_MEMORY = """
import numpy as np
lib = {lib!r}
rng = np.random.default_rng(0)
x = rng.standard_normal((32, 64, 56, 56), dtype=np.float32)
w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
dy = rng.standard_normal((32, 64, 56, 56), dtype=np.float32)
if lib == "torch":
    import torch
    xt, wt, dyt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True), torch.tensor(dy)
    run = lambda: torch.autograd.grad(torch.nn.functional.conv2d(xt, wt, None, 1, 1), (xt, wt), dyt)
else:
    import convpool.functional as F
    run = lambda: F.conv_backward(dy, F.conv_forward(x, w, None, 1, 1)[1])
import os, threading, time
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
peak, done = [0], [False]
def watch():
    while not done[0]:
        peak[0] = max(peak[0], rss())
        time.sleep(0.0005)
base = rss()
t = threading.Thread(target=watch)
t.start()
run()
done[0] = True
t.join()
print((max(peak[0], rss()) - base) / 2**20)
"""


def peak_memory(lib: str) -> float:
    """Peak extra memory (MiB) of the ResNet-block conv forward+backward, in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_MEMORY.format(lib=lib)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])
