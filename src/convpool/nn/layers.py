"""Dense layers, activations, regularisers and normalisation.

Each keeps only what its backward pass needs from the last forward call.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import geometry
from .._random import generator
from ..backends.compiled import kernels as _kernels
from .module import Module, Parameter


def _is_real(v: Any) -> bool:
    """A real number (int or float, NumPy's too), not a bool and not NaN."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) and v == v


def _positive_int(name: str, v: Any) -> int:
    if not geometry._is_int(v) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return int(v)


class Linear(Module):
    """``y = x @ W.T + b`` over the last axis; PyTorch's init (uniform +-1/sqrt(in))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = np.float32):
        super().__init__()
        self.in_features = _positive_int("in_features", in_features)
        self.out_features = _positive_int("out_features", out_features)
        bound = 1.0 / math.sqrt(in_features)
        rng = generator()
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype))
        self.bias = Parameter(rng.uniform(-bound, bound, out_features).astype(dtype)) if bias else None
        self._x: np.ndarray | None = None

    def forward(self, x: Any) -> np.ndarray:
        x = geometry.check_array(x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear expects input (..., {self.in_features}), got shape {x.shape}")
        self._x = x
        with _kernels.one_blas_thread():  # see one_blas_thread: keeps the cores free for the kernels
            y = x @ self.weight.data.astype(x.dtype, copy=False).T
        if self.bias is not None:
            y = y + self.bias.data.astype(x.dtype, copy=False)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        g = self._param_grads(grad_output)
        with _kernels.one_blas_thread():
            return g @ self.weight.data.astype(g.dtype, copy=False)

    def backward_params(self, grad_output: Any) -> None:
        self._param_grads(grad_output)

    def _param_grads(self, grad_output: Any) -> np.ndarray:
        """Accumulate the weight and bias gradients; returns grad_output checked."""
        x = self._need_ctx(self._x)
        g = _grad(grad_output, x.shape[:-1] + (self.out_features,), x.dtype)
        g2, x2 = g.reshape(-1, self.out_features), x.reshape(-1, self.in_features)
        with _kernels.one_blas_thread():
            self.weight.accumulate(g2.T @ x2)
        if self.bias is not None:
            self.bias.accumulate(g2.sum(axis=0))
        return g

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def _grad(g: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    g = geometry.check_array(g, "grad_output")
    if g.shape != shape:
        raise ValueError(f"grad_output must have the output's shape {shape}, got {g.shape}")
    return g.astype(dtype, copy=False)


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
        return _grad(grad_output, saved.shape, saved.dtype) * saved

    def _fn(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output and the local derivative."""
        raise NotImplementedError


class ReLU(_Elementwise):
    """``max(x, 0)``; NaN stays NaN and passes its gradient, as in PyTorch.  Keeps the
    output (not a mask) for the backward pass."""

    def forward(self, x: Any) -> np.ndarray:
        x = geometry.check_array(x)
        if _kernels.worth_parallel(x):
            y = np.empty_like(x, order="C")
            _kernels.relu_forward(np.ascontiguousarray(x).ravel(), y.ravel())
        else:
            y = np.maximum(x, 0)
        self._saved = y
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        y = self._need_ctx(self._saved)
        g = _grad(grad_output, y.shape, y.dtype)
        if _kernels.worth_parallel(y):
            dx = np.empty_like(y, order="C")
            _kernels.relu_backward(np.ascontiguousarray(g).ravel(), y.ravel(), dx.ravel())
            return dx
        return np.where(y <= 0, 0, g).astype(y.dtype, copy=False)


class LeakyReLU(_Elementwise):
    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def _fn(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        slope = np.where(x > 0, 1.0, self.negative_slope).astype(x.dtype)
        return x * slope, slope

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Tanh(_Elementwise):
    def _fn(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = np.tanh(x)
        return y, 1 - y * y


class Sigmoid(_Elementwise):
    def _fn(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = np.empty_like(x)  # stable for large |x|
        pos = x >= 0
        y[pos] = 1 / (1 + np.exp(-x[pos]))
        e = np.exp(x[~pos])
        y[~pos] = e / (1 + e)
        return y, y * (1 - y)


class Identity(Module):
    def forward(self, x: Any) -> Any:
        return x

    def backward(self, grad_output: Any) -> Any:
        return grad_output


class Flatten(Module):
    """Flatten dims ``start_dim..end_dim`` (default: all but the batch)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: Any) -> np.ndarray:
        x = geometry.check_array(x)
        self._shape = x.shape
        nd = x.ndim
        s, e = self.start_dim % nd, self.end_dim % nd
        return x.reshape(x.shape[:s] + (math.prod(x.shape[s : e + 1]),) + x.shape[e + 1 :])

    def backward(self, grad_output: Any) -> np.ndarray:
        shape = self._need_ctx(self._shape)
        return np.asarray(grad_output).reshape(shape)


class Dropout(Module):
    """Zero each element with probability ``p`` in training, scale the rest by 1/(1-p)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self._mask: np.ndarray | None = None

    def forward(self, x: Any) -> np.ndarray:
        x = geometry.check_array(x)
        if not self.training or self.p == 0.0:
            self._mask = np.ones((), dtype=x.dtype)
            return x
        keep = generator().random(x.shape) >= self.p
        self._mask = (keep / (1.0 - self.p)).astype(x.dtype)
        return x * self._mask

    def backward(self, grad_output: Any) -> np.ndarray:
        return np.asarray(grad_output) * self._need_ctx(self._mask)

    def extra_repr(self) -> str:
        return f"p={self.p}"


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
        self.num_features = _positive_int("num_features", num_features)
        if not _is_real(eps) or not 0 < eps < math.inf:
            raise ValueError(f"eps must be a positive finite number (0 gives NaN for a constant channel), got {eps!r}")
        if momentum is not None and (not _is_real(momentum) or not 0 <= momentum <= 1):
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
        self._ctx: tuple[np.ndarray, np.ndarray, tuple[int, ...]] | None = None

    def forward(self, x: Any) -> np.ndarray:
        x = geometry.check_array(x)
        if x.ndim not in self.ranks or x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}) expects input with {self.num_features} channels "
                f"and {' or '.join(map(str, self.ranks))} dims, got shape {x.shape}"
            )
        axes = (0, *range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if self.training:
            count = x.size // self.num_features
            if count < 2:
                raise ValueError(f"BatchNorm in training needs more than 1 value per channel, got shape {x.shape}")
            mean = x.mean(axis=axes)
            var = x.var(axis=axes)
            self._set_buffer("num_batches_tracked", self.num_batches_tracked + 1)
            m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            self._set_buffer("running_mean", ((1 - m) * self.running_mean + m * mean).astype(self.running_mean.dtype))
            unbiased = var * count / (count - 1)
            self._set_buffer("running_var", ((1 - m) * self.running_var + m * unbiased).astype(self.running_var.dtype))
        else:
            mean, var = self.running_mean.astype(x.dtype), self.running_var.astype(x.dtype)
        inv = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype)
        xhat = (x - mean.reshape(shape)) * inv.reshape(shape)
        self._ctx = (xhat, inv, axes)
        if self.weight is None:
            return xhat
        return xhat * self.weight.data.astype(x.dtype).reshape(shape) + self.bias.data.astype(x.dtype).reshape(shape)

    def backward(self, grad_output: Any) -> np.ndarray:
        xhat, inv, axes = self._need_ctx(self._ctx)
        g = _grad(grad_output, xhat.shape, xhat.dtype)
        shape = (1, -1) + (1,) * (xhat.ndim - 2)
        if self.weight is not None:
            self.weight.accumulate((g * xhat).sum(axis=axes))
            self.bias.accumulate(g.sum(axis=axes))
            g = g * self.weight.data.astype(g.dtype).reshape(shape)
        if not self.training:  # statistics are constants
            return g * inv.reshape(shape)
        gm = g.mean(axis=axes).reshape(shape)
        gxm = (g * xhat).mean(axis=axes).reshape(shape)
        return (g - gm - xhat * gxm) * inv.reshape(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    ranks = (4,)


class Sequential(Module):
    """Layers applied in order; children are named "0", "1", ... as in PyTorch."""

    def __init__(self, *layers: Module):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes Modules, got {type(layer).__name__} at position {i}")
            setattr(self, str(i), layer)

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, layer: Module) -> Sequential:
        setattr(self, str(len(self)), layer)
        return self

    def forward(self, x: Any) -> Any:
        for layer in self._modules.values():
            x = layer(x)
        return x

    def backward(self, grad_output: Any) -> Any:
        for layer in reversed(self._modules.values()):
            grad_output = layer.backward(grad_output)
        return grad_output

    def backward_params(self, grad_output: Any) -> None:
        """As :meth:`backward`, without the gradient of the input: the first layer
        only accumulates its parameters' gradients."""
        layers = list(self._modules.values())
        for layer in reversed(layers[1:]):
            grad_output = layer.backward(grad_output)
        if layers:
            layers[0].backward_params(grad_output)
