"""Losses as modules: ``loss = crit(pred, target)``, then ``crit.backward()``
returns the gradient with respect to ``pred`` (mean reduction, as PyTorch)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import geometry
from .nn.module import Module

REDUCTIONS = ("mean", "sum")


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self._grad: np.ndarray | None = None

    def __call__(self, pred: Any, target: Any) -> float:  # type: ignore[override]
        return self.forward(pred, target)

    def forward(self, pred: Any, target: Any) -> float:  # type: ignore[override]
        raise NotImplementedError

    def backward(self, grad_output: Any = 1.0) -> np.ndarray:
        """Gradient of the loss with respect to ``pred`` (times ``grad_output``)."""
        return self._need_ctx(self._grad) * grad_output


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy on logits ``(N, C)`` and class indices ``(N,)``.

    Computed with a stable log-softmax.  ``label_smoothing`` mixes the one-hot
    target with the uniform distribution: ``q = (1-e) * onehot + e / C``.
    """

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, pred: Any, target: Any) -> float:  # type: ignore[override]
        logits = geometry.check_array(pred, "pred")
        target = np.asarray(target)
        if logits.ndim != 2:
            raise ValueError(f"pred must be logits of shape (N, C), got shape {logits.shape}")
        n, c = logits.shape
        if target.shape != (n,) or not np.issubdtype(target.dtype, np.integer):
            raise ValueError(f"target must be {n} integer class indices, got shape {target.shape} dtype {target.dtype}")
        if n and (target.min() < 0 or target.max() >= c):
            raise ValueError(f"target class indices must be in [0, {c}), got range [{target.min()}, {target.max()}]")
        shifted = logits - logits.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        q = np.zeros_like(logp)
        q[np.arange(n), target] = 1.0
        if self.label_smoothing:
            q = q * (1.0 - self.label_smoothing) + self.label_smoothing / c
        per = -(q * logp).sum(axis=1)
        scale = 1.0 / n if (self.reduction == "mean" and n) else 1.0
        self._grad = ((np.exp(logp) - q) * scale).astype(logits.dtype)
        return float(per.sum() * scale)


class MSELoss(_Loss):
    """Mean squared error ``mean((pred - target)**2)``."""

    def forward(self, pred: Any, target: Any) -> float:  # type: ignore[override]
        pred = geometry.check_array(pred, "pred")
        target = np.asarray(target, dtype=pred.dtype)
        if target.shape != pred.shape:
            raise ValueError(f"target must have pred's shape {pred.shape}, got {target.shape}")
        diff = pred - target
        scale = 1.0 / diff.size if (self.reduction == "mean" and diff.size) else 1.0
        self._grad = (2.0 * scale * diff).astype(pred.dtype)
        return float((diff * diff).sum() * scale)
