"""Dense layers, activations, regularisers and normalisation, as ``torch.nn``.

Each keeps only what its backward pass needs from the last forward call.  The shared
parts (the activation base, batch normalisation of any rank) are in
:mod:`convpool.nn._layers`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import geometry
from .._random import generator
from ..functional.activation import linear_backward, linear_forward, linear_param_backward, relu_backward, relu_forward
from ._layers import _BatchNorm as _BatchNorm
from ._layers import _Elementwise
from .module import Module, Parameter
from .pool import MaxPool1d, MaxPool2d, MaxPool3d


class Linear(Module):
    """A fully connected layer: ``y = x @ weight.T + bias`` over the last axis.

    Initialisation is PyTorch's: weight and bias uniform in ``+-1/sqrt(in_features)``.

    Args:
        in_features: size of the input's last axis.
        out_features: size of the output's last axis.
        bias: learn a bias (default True).
        dtype: floating-point type of the parameters (default float32).

    Shape:
        ``(*, in_features) -> (*, out_features)``, any number of leading dims.
        Parameters: ``weight`` ``(out_features, in_features)``, ``bias`` ``(out_features,)``.

    Example:
        >>> fc = nn.Linear(20, 10)
        >>> y = fc(np.random.rand(8, 20).astype(np.float32))
        >>> y.shape
        (8, 10)
        >>> fc.backward(np.ones_like(y)).shape  # accumulates fc.weight.grad and fc.bias.grad
        (8, 20)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = np.float32):
        super().__init__()
        self.in_features = geometry.positive_int(in_features, "in_features")
        self.out_features = geometry.positive_int(out_features, "out_features")
        bound = 1.0 / math.sqrt(in_features)
        rng = generator()
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype))
        self.bias = Parameter(rng.uniform(-bound, bound, out_features).astype(dtype)) if bias else None
        self._ctx: Any = None

    def forward(self, x: Any) -> np.ndarray:
        y, self._ctx = linear_forward(x, self.weight.data, None if self.bias is None else self.bias.data)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        dx, dw, db = linear_backward(grad_output, self._need_ctx(self._ctx))
        self._accumulate(dw, db)
        return dx

    def backward_params(self, grad_output: Any) -> None:
        self._accumulate(*linear_param_backward(grad_output, self._need_ctx(self._ctx)))

    def _accumulate(self, dw: np.ndarray, db: np.ndarray | None) -> None:
        self.weight.accumulate(dw)
        if self.bias is not None and db is not None:
            self.bias.accumulate(db)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class ReLU(_Elementwise):
    """The rectified linear unit ``max(x, 0)``, elementwise; NaN stays NaN, as in PyTorch.

    Shape:
        ``(*) -> (*)``, any shape.

    Example:
        >>> nn.ReLU()(np.array([-1.0, 0.0, 2.0]))
        array([0., 0., 2.])
    """

    def forward(self, x: Any) -> np.ndarray:
        y, self._saved = relu_forward(x)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        return relu_backward(grad_output, self._need_ctx(self._saved))


class LeakyReLU(_Elementwise):
    """The leaky rectified linear unit: ``x`` where positive, ``negative_slope * x`` elsewhere.

    Args:
        negative_slope: the slope for negative inputs (default 0.01).

    Shape:
        ``(*) -> (*)``, any shape.

    Example:
        >>> nn.LeakyReLU(0.1)(np.array([-1.0, 0.0, 2.0]))
        array([-0.1,  0. ,  2. ])
    """

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def _fn(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        slope = np.where(x > 0, 1.0, self.negative_slope).astype(x.dtype)
        return x * slope, slope

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Tanh(_Elementwise):
    """The hyperbolic tangent, elementwise.

    Shape:
        ``(*) -> (*)``, any shape.

    Example:
        >>> nn.Tanh()(np.array([0.0, 1.0]))
        array([0.        , 0.76159416])
    """

    def _fn(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = np.tanh(x)
        return y, 1 - y * y


class Sigmoid(_Elementwise):
    """The logistic function ``1 / (1 + exp(-x))``, elementwise (stable for large ``|x|``).

    Shape:
        ``(*) -> (*)``, any shape.

    Example:
        >>> nn.Sigmoid()(np.array([0.0, 1000.0, -1000.0]))
        array([0.5, 1. , 0. ])
    """

    def _fn(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = np.empty_like(x)  # stable for large |x|
        pos = x >= 0
        y[pos] = 1 / (1 + np.exp(-x[pos]))
        e = np.exp(x[~pos])
        y[~pos] = e / (1 + e)
        return y, y * (1 - y)


class Identity(Module):
    """The input unchanged (a placeholder layer); the gradient passes through.

    Shape:
        ``(*) -> (*)``, any input.

    Example:
        >>> nn.Identity()(np.ones(3))
        array([1., 1., 1.])
    """

    def forward(self, x: Any) -> Any:
        return x

    def backward(self, grad_output: Any) -> Any:
        return grad_output


class Flatten(Module):
    """Flattening of the dims ``start_dim .. end_dim`` into one (default: all but the batch).

    Args:
        start_dim: first dim to flatten (default 1).
        end_dim: last dim to flatten, negative from the end (default -1).

    Shape:
        ``(*, S_start, ..., S_end, *) -> (*, S_start * ... * S_end, *)``.

    Example:
        >>> nn.Flatten()(np.zeros((8, 4, 3, 3))).shape
        (8, 36)
    """

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
    """Dropout: in training, each element zeroed with probability ``p``, the rest scaled by ``1/(1-p)``.

    In evaluation (``.eval()``) the input passes unchanged.  Draws come from convpool's
    generator (:func:`convpool.manual_seed`).

    Args:
        p: probability of zeroing an element, in ``[0, 1)`` (default 0.5).

    Shape:
        ``(*) -> (*)``, any shape.

    Example:
        >>> drop = nn.Dropout(0.5)
        >>> y = drop(np.ones((4, 100)))
        >>> sorted(set(y.ravel().tolist()))
        [0.0, 2.0]
        >>> drop.eval()(np.ones(3))
        array([1., 1., 1.])
    """

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


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of ``(N, C)`` or ``(N, C, L)`` input, per channel.

    Training: normalise with the batch's mean and biased variance, update the running
    statistics with ``momentum`` (unbiased variance, as PyTorch); evaluation: normalise
    with the running statistics.  ``eps`` must be positive (0 would give NaN for a
    constant channel).

    Args:
        num_features: the number of channels ``C``.
        eps: added to the variance, > 0 (default 1e-5).
        momentum: weight of the new batch in the running statistics, in ``[0, 1]``, or None
            for a cumulative average (default 0.1).
        affine: learn a scale ``weight`` and shift ``bias`` per channel (default True).
        dtype: floating-point type of parameters and running statistics (default float32).

    Shape:
        ``(N, C) -> (N, C)`` or ``(N, C, L) -> (N, C, L)``.  Parameters: ``weight``, ``bias``
        ``(C,)``; buffers ``running_mean``, ``running_var`` ``(C,)`` and ``num_batches_tracked``.

    Example:
        >>> bn = nn.BatchNorm1d(3)
        >>> y = bn(np.random.rand(16, 3))
        >>> np.allclose(y.mean(axis=0), 0, atol=1e-6), int(bn.num_batches_tracked)
        (True, 1)
    """

    ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of ``(N, C, H, W)`` input, per channel.

    Training: normalise with the batch's mean and biased variance, update the running
    statistics with ``momentum`` (unbiased variance, as PyTorch); evaluation: normalise
    with the running statistics.  ``eps`` must be positive (0 would give NaN for a
    constant channel).

    Args:
        num_features: the number of channels ``C``.
        eps: added to the variance, > 0 (default 1e-5).
        momentum: weight of the new batch in the running statistics, in ``[0, 1]``, or None
            for a cumulative average (default 0.1).
        affine: learn a scale ``weight`` and shift ``bias`` per channel (default True).
        dtype: floating-point type of parameters and running statistics (default float32).

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.  Parameters: ``weight``, ``bias`` ``(C,)``; buffers
        ``running_mean``, ``running_var`` ``(C,)`` and ``num_batches_tracked``.

    Example:
        >>> bn = nn.BatchNorm2d(4)
        >>> bn(np.random.rand(2, 4, 5, 5)).shape
        (2, 4, 5, 5)
        >>> bn.eval()(np.random.rand(1, 4, 5, 5)).shape  # with the running statistics
        (1, 4, 5, 5)
    """

    ranks = (4,)


class Sequential(Module):
    """Layers applied in order; children are named "0", "1", ... as in PyTorch.

    Args:
        layers: the modules, in order (positional arguments).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
        >>> y = net(np.random.rand(2, 1, 8, 8).astype(np.float32))
        >>> y.shape, net.backward(np.ones_like(y)).shape
        ((2, 10), (2, 1, 8, 8))
        >>> list(net.state_dict())[:2]
        ['0.weight', '0.bias']
    """

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
        """The layers in order, except that a ReLU followed by a max pool runs as the pool
        and then the ReLU on its output, a quarter of the size for 2x2 windows:
        ``max(relu(x)) == relu(max(x))`` value for value (NaN too), and the gradients are
        equal (where a window's maximum is not positive the ReLU zeroes the whole window,
        and no gradient passes either way).  The backward pass runs the order that ran."""
        layers, i = list(self._modules.values()), 0
        order: list[Module] = []
        while i < len(layers):
            layer = layers[i]
            pair = type(layer) is ReLU and i + 1 < len(layers) and _pool_first(layer, layers[i + 1], x)
            ran = (layers[i + 1], layer) if pair else (layer,)
            for one in ran:
                x = one(x)
            order += ran
            i += len(ran)
        self._saved = order
        return x

    def _ran(self) -> list[Module]:
        """The layers in the order the last forward pass (on this thread) ran them."""
        order = self._saved
        return list(self._modules.values()) if order is None else order

    def backward(self, grad_output: Any) -> Any:
        for layer in reversed(self._ran()):
            grad_output = layer.backward(grad_output)
        return grad_output

    def backward_params(self, grad_output: Any) -> None:
        """As :meth:`backward`, without the gradient of the input: the first layer
        only accumulates its parameters' gradients."""
        layers = self._ran()
        for layer in reversed(layers[1:]):
            grad_output = layer.backward(grad_output)
        if layers:
            layers[0].backward_params(grad_output)


def _pool_first(layer: Module, after: Module, x: Any) -> bool:
    """Whether a ReLU and the max pool after it may swap (:meth:`Sequential.forward`): a
    plain max pool (identity padding, no indices) on a float array, which both check alike."""
    return (
        type(layer) is ReLU
        and type(after) in (MaxPool1d, MaxPool2d, MaxPool3d)
        and not after.return_indices  # type: ignore[attr-defined]
        and after.padding_mode is None  # type: ignore[attr-defined]
        and isinstance(x, np.ndarray)
        and x.dtype in (np.float32, np.float64)
    )
