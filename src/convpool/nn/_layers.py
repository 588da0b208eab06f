"""What the layers of :mod:`convpool.nn.layers` share: the elementwise activation base
and the batch normalisation of any rank; the public classes carry the documentation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import geometry
from ..functional import batch_norm_backward, batch_norm_forward
from .module import Module, Parameter


def is_real(v: Any) -> bool:
    """A real number (int or float, NumPy's too), not a bool and not NaN."""
    return geometry.is_number(v) and v == v


class _Elementwise(Module):
    """An activation: ``y = f(x)``, ``dx = dy * f'(x)`` from what forward kept."""

    def __init__(self) -> None:
        super().__init__()
        self._saved: np.ndarray | None = None

    def forward(self, x: Any) -> np.ndarray:
        x = geometry.check_array(x)
        y, self._saved = self._fn(x)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        saved = self._need_ctx(self._saved)
        return geometry.check_grad(grad_output, saved.shape, saved.dtype) * saved

    def _fn(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output and the local derivative."""
        raise NotImplementedError


class _BatchNorm(Module):
    """Batch normalisation over all axes but the channel axis 1.

    Training: normalise with the batch's mean and biased variance, update the
    running statistics with ``momentum`` (unbiased variance, as PyTorch).
    Evaluation: normalise with the running statistics.

    ``momentum=None`` keeps a cumulative moving average, as PyTorch: the factor
    of the n-th training batch is ``1 / n`` (``n = num_batches_tracked`` after
    counting it), so the running statistics are the plain mean of the batch
    statistics seen so far.  Otherwise ``momentum`` must lie in [0, 1].

    ``eps`` must be positive (PyTorch also accepts 0): with ``eps = 0`` any
    channel that is constant over a batch - a dead ReLU channel, a blank border -
    has variance 0 and its output becomes NaN (0/0) without a word, so it is
    refused here with a ValueError instead.
    """

    ranks: tuple[int, ...] = ()
    running_mean: np.ndarray
    running_var: np.ndarray
    num_batches_tracked: np.ndarray

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        dtype: Any = np.float32,
    ):
        super().__init__()
        self.num_features = geometry.positive_int(num_features, "num_features")
        if not is_real(eps) or not 0 < eps < math.inf:
            raise ValueError(f"eps must be a positive finite number (0 gives NaN for a constant channel), got {eps!r}")
        if momentum is not None and (not is_real(momentum) or not 0 <= momentum <= 1):
            raise ValueError(
                f"momentum must be a number in [0, 1], or None for a cumulative moving average, got {momentum!r}"
            )
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        else:
            self.weight = self.bias = None  # type: ignore[assignment]
        self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
        self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))
        self._ctx: Any = None  # functional.normalization.BatchNormCtx

    def forward(self, x: Any) -> np.ndarray:
        x = geometry.check_array(x)
        if x.ndim not in self.ranks or x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}) expects input with {self.num_features} channels "
                f"and {' or '.join(map(str, self.ranks))} dims, got shape {x.shape}"
            )
        if self.training and x.size // self.num_features < 2:
            raise ValueError(f"BatchNorm in training needs more than 1 value per channel, got shape {x.shape}")
        w = None if self.weight is None else self.weight.data
        b = None if self.bias is None else self.bias.data
        y, ctx = batch_norm_forward(x, self.running_mean, self.running_var, w, b, self.training, self.eps)
        if self.training:
            self._set_buffer("num_batches_tracked", self.num_batches_tracked + 1)
            m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            mean, var = ctx.blend(self.running_mean, self.running_var, m)
            self._set_buffer("running_mean", mean)
            self._set_buffer("running_var", var)
        self._ctx = ctx
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        ctx = self._need_ctx(self._ctx)
        dx, dw, db = batch_norm_backward(grad_output, ctx)
        if dw is not None:
            self.weight.accumulate(dw)
        if db is not None:
            self.bias.accumulate(db)
        return dx

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
