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

from .backends.compiled import kernels as _kernels
from .nn.module import Parameter
from .settings import TUNING


def _fused(p: Parameter, *state: np.ndarray) -> bool:
    """Whether a step runs as one compiled pass (:mod:`convpool.backends.compiled.optim_kernels`,
    the same arithmetic bit for bit): kernels on, a float32/float64 parameter of at least
    ``settings.TUNING.fused_step_min`` elements, its state arrays C-ordered in its dtype
    (they are updated in place through flat views).  Small parameters too: the pass runs
    on the calling thread, where NumPy's dozen operations cost 30-40 us a parameter."""
    d = p.data
    return (
        d.dtype in (np.float32, np.float64)
        and d.size >= TUNING.fused_step_min
        and _kernels.enabled()
        and all(a.flags.c_contiguous and a.dtype == d.dtype for a in (d, *state))
    )


class Optimizer:
    defaults: ClassVar[dict[str, Any]] = {}
    # The per-parameter state arrays a step keeps: each parameter's state holds all of them or,
    # before its first update, none.  None (an optimiser that does not declare them): any keys.
    # A state array named "step" is a scalar count; the others have the parameter's shape.
    state_keys: ClassVar[tuple[str, ...] | None] = None

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

    def check_state_dict(self, sd: Any) -> None:
        """ValueError naming the key and the problem unless ``sd`` is a state this optimiser
        can load (as :meth:`state_dict` returns it): lr and steps, one record per parameter
        with all of :attr:`state_keys` or none, each a finite float array of the parameter's
        shape (``step``: a scalar >= 0).  Changes nothing."""
        if not isinstance(sd, dict) or not {"lr", "steps", "state"} <= sd.keys():
            raise ValueError("optimizer state must be a dict with 'lr', 'steps' and 'state'")
        lr, steps, state = sd["lr"], sd["steps"], sd["state"]
        if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, (int, float, np.integer, np.floating)):
            raise ValueError(f"optimizer state 'lr' must be a number, got {lr!r}")
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"optimizer state 'lr' must be finite and >= 0, got {lr!r}")
        if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"optimizer state 'steps' must be an int >= 0, got {steps!r}")
        if not isinstance(state, (list, tuple)):
            raise ValueError(f"optimizer state 'state' must be a list of records, got {type(state).__name__}")
        if len(state) != len(self.params):
            raise ValueError(f"optimizer state has {len(state)} parameters, this optimizer has {len(self.params)}")
        for i, (p, st) in enumerate(zip(self.params, state, strict=True)):
            if not isinstance(st, dict):
                raise ValueError(f"optimizer state of parameter {i} must be a dict, got {type(st).__name__}")
            if self.state_keys is not None and st and set(st) != set(self.state_keys):
                missing = [k for k in self.state_keys if k not in st]
                extra = sorted(str(k) for k in st if k not in self.state_keys)
                problems = [f"{what} {names}" for what, names in (("missing", missing), ("unexpected", extra)) if names]
                raise ValueError(
                    f"the {type(self).__name__} state of parameter {i} is incomplete or mixed: {', '.join(problems)}; "
                    f"expected all of {list(self.state_keys)} or none"
                )
            for k, v in st.items():
                try:
                    a = np.asarray(v)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"optimizer state {k!r} of parameter {i} is not an array ({exc})") from exc
                shape = () if k == "step" else p.shape
                if a.shape != shape:
                    raise ValueError(f"optimizer state {k!r} of parameter {i} has shape {a.shape}, expected {shape}")
                if a.dtype.kind != "f":
                    raise ValueError(f"optimizer state {k!r} of parameter {i} has dtype {a.dtype}, expected floats")
                if not np.isfinite(a).all():
                    raise ValueError(f"optimizer state {k!r} of parameter {i} holds non-finite values")
                if k == "step" and a < 0:
                    raise ValueError(f"optimizer state {k!r} of parameter {i} is {float(a)}, expected a count >= 0")

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; everything is checked (:meth:`check_state_dict`)
        before anything is assigned, so on a ValueError the optimiser is left as it was."""
        self.check_state_dict(sd)
        self.lr = float(sd["lr"])
        self.steps = int(sd["steps"])
        self.state = [{k: np.array(v, copy=True) for k, v in st.items()} for st in sd["state"]]


class SGD(Optimizer):
    """``v = momentum*v + (1-dampening)*g`` (v = g at first); ``p -= lr * (g + momentum*v if nesterov else v)``;
    ``g`` includes ``weight_decay * p``."""

    defaults: ClassVar[dict[str, Any]] = {"momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0}
    state_keys: ClassVar[tuple[str, ...] | None] = ("momentum_buffer",)  # kept only with momentum

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, **hyper: Any):
        super().__init__(params, lr, **hyper)
        if self.hyper["nesterov"] and (self.hyper["momentum"] <= 0 or self.hyper["dampening"] != 0):
            raise ValueError("nesterov momentum requires momentum > 0 and dampening = 0")

    def _update(self, p: Parameter, g: np.ndarray, st: dict[str, np.ndarray]) -> None:
        h = self.hyper
        if _fused(p, *st.values()):
            first = h["momentum"] and "momentum_buffer" not in st
            if first:
                st["momentum_buffer"] = np.empty_like(p.data)
            buf = st.get("momentum_buffer", p.data)
            f = p.data.dtype.type
            scalars = (f(self.lr), f(h["weight_decay"]), f(h["momentum"]), f(1 - h["dampening"]))
            _kernels.sgd_step(
                p.data.ravel(), np.ascontiguousarray(g).ravel(), buf.ravel(), *scalars, bool(first), h["nesterov"]
            )
            return
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
    state_keys: ClassVar[tuple[str, ...] | None] = ("exp_avg", "exp_avg_sq", "step")
    decoupled = False

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, **hyper: Any):
        super().__init__(params, lr, **hyper)

    def _update(self, p: Parameter, g: np.ndarray, st: dict[str, np.ndarray]) -> None:
        h = self.hyper
        b1, b2 = h["betas"]
        if "exp_avg" not in st:
            st["exp_avg"] = np.zeros_like(p.data)
            st["exp_avg_sq"] = np.zeros_like(p.data)
            st["step"] = np.zeros(())
        st["step"] += 1
        t = float(st["step"])
        m, v = st["exp_avg"], st["exp_avg_sq"]
        if _fused(p, m, v):
            f = p.data.dtype.type
            wd = h["weight_decay"]
            decay, l2 = (f(1 - self.lr * wd), f(0)) if self.decoupled else (f(1), f(wd))
            bc1, bc2 = 1 - b1**t, 1 - b2**t
            scalars = (f(1 - b1), f(b2), f(1 - b2), f(self.lr / bc1), f(math.sqrt(bc2)), f(h["eps"]), decay, l2)
            _kernels.adam_step(p.data.ravel(), np.ascontiguousarray(g, p.dtype).ravel(), m.ravel(), v.ravel(), *scalars)
            return
        if h["weight_decay"]:
            if self.decoupled:
                p.data *= 1 - self.lr * h["weight_decay"]
            else:
                g = g + h["weight_decay"] * p.data
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
