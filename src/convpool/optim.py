"""Optimisers with PyTorch's update rules, and learning-rate schedules.

``opt = SGD(model.parameters(), lr=0.1)``; per step ``opt.zero_grad()``,
forward, backward, ``opt.step()``.  Parameters whose ``.grad`` is None are
skipped.  ``state_dict()`` / ``load_state_dict()`` make resumed training exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from .nn.module import Parameter


class Optimizer:
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: Iterable[Parameter], lr: float, **hyper: Any):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Parameter):
                raise TypeError(f"params must be Parameters, got {type(p).__name__} at position {i}")
        if not (isinstance(lr, (int, float)) and lr >= 0):
            raise ValueError(f"lr must be a non-negative number, got {lr!r}")
        self.lr = float(lr)
        self.hyper = {**self.defaults, **hyper}
        unknown = set(hyper) - set(self.defaults)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown arguments {sorted(unknown)}")
        self.state: list[dict[str, np.ndarray]] = [{} for _ in self.params]
        self.steps = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        self.steps += 1
        for p, st in zip(self.params, self.state, strict=True):
            if p.grad is not None and p.requires_grad:
                self._update(p, p.grad.astype(p.dtype, copy=False), st)

    def _update(self, p: Parameter, g: np.ndarray, st: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "steps": self.steps,
            "state": [{k: v.copy() for k, v in st.items()} for st in self.state],
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        if len(sd["state"]) != len(self.params):
            raise ValueError(
                f"optimizer state has {len(sd['state'])} parameters, this optimizer has {len(self.params)}"
            )
        for p, st in zip(self.params, sd["state"], strict=True):
            for k, v in st.items():
                if np.shape(v) != p.shape and k != "step":
                    raise ValueError(f"optimizer state {k!r} has shape {np.shape(v)}, parameter has {p.shape}")
        self.lr = float(sd["lr"])
        self.steps = int(sd["steps"])
        self.state = [{k: np.array(v, copy=True) for k, v in st.items()} for st in sd["state"]]


class SGD(Optimizer):
    """``v = momentum*v + (1-dampening)*g`` (v = g at first); ``p -= lr * (g + momentum*v if nesterov else v)``;
    ``g`` includes ``weight_decay * p``."""

    defaults: ClassVar[dict[str, Any]] = {"momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0}

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, **hyper: Any):
        super().__init__(params, lr, **hyper)
        if self.hyper["nesterov"] and (self.hyper["momentum"] <= 0 or self.hyper["dampening"] != 0):
            raise ValueError("nesterov momentum requires momentum > 0 and dampening = 0")

    def _update(self, p: Parameter, g: np.ndarray, st: dict[str, np.ndarray]) -> None:
        h = self.hyper
        if h["weight_decay"]:
            g = g + h["weight_decay"] * p.data
        if h["momentum"]:
            if "momentum_buffer" not in st:
                st["momentum_buffer"] = g.copy()
            else:
                buf = st["momentum_buffer"]
                buf *= h["momentum"]
                buf += (1 - h["dampening"]) * g
            buf = st["momentum_buffer"]
            g = g + h["momentum"] * buf if h["nesterov"] else buf
        p.data -= (self.lr * g).astype(p.dtype)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction, PyTorch's arithmetic; ``weight_decay``
    is L2 added to the gradient (use :class:`AdamW` for decoupled decay)."""

    defaults: ClassVar[dict[str, Any]] = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
    decoupled = False

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, **hyper: Any):
        super().__init__(params, lr, **hyper)

    def _update(self, p: Parameter, g: np.ndarray, st: dict[str, np.ndarray]) -> None:
        h = self.hyper
        b1, b2 = h["betas"]
        if h["weight_decay"]:
            if self.decoupled:
                p.data *= 1 - self.lr * h["weight_decay"]
            else:
                g = g + h["weight_decay"] * p.data
        if "exp_avg" not in st:
            st["exp_avg"] = np.zeros_like(p.data)
            st["exp_avg_sq"] = np.zeros_like(p.data)
            st["step"] = np.zeros(())
        st["step"] += 1
        t = float(st["step"])
        m, v = st["exp_avg"], st["exp_avg_sq"]
        m += (1 - b1) * (g - m)
        v *= b2
        v += (1 - b2) * g * g
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        denom = np.sqrt(v) / math.sqrt(bc2) + h["eps"]
        p.data -= ((self.lr / bc1) * m / denom).astype(p.dtype)


class AdamW(Adam):
    """Adam with decoupled weight decay (``p *= 1 - lr*weight_decay`` before the step)."""

    defaults: ClassVar[dict[str, Any]] = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2}
    decoupled = True


class _Schedule:
    """Sets ``optimizer.lr`` from the epoch count; call ``step()`` once per epoch."""

    def __init__(self, optimizer: Optimizer):
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError

    def step(self) -> None:
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"base_lr": self.base_lr, "last_epoch": self.last_epoch}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.base_lr, self.last_epoch = float(sd["base_lr"]), int(sd["last_epoch"])
        self.optimizer.lr = self.lr_at(self.last_epoch)


class StepLR(_Schedule):
    """``lr = base_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        super().__init__(optimizer)
        if not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"step_size must be a positive int, got {step_size!r}")
        self.step_size, self.gamma = step_size, float(gamma)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(_Schedule):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
        super().__init__(optimizer)
        if not isinstance(T_max, int) or T_max < 1:
            raise ValueError(f"T_max must be a positive int, got {T_max!r}")
        self.T_max, self.eta_min = T_max, float(eta_min)

    def lr_at(self, epoch: int) -> float:
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2
