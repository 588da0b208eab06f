"""Pooling layers with learned parameters: ``GeMPool*d``, ``LSEPool*d``,
``MixedPool*d``, ``GatedPool*d``.

Max and average pooling have nothing to learn; each of these has a scalar (or,
for the gated pool, a small depthwise filter) that lets the network choose,
by gradient descent, how close to max or to average pooling it pools.  The
parameters are :class:`~convpool.nn.Parameter` objects, so optimisers,
``state_dict`` and ``Sequential`` work as for any layer.  See
:mod:`convpool.functional.learned_pools` for the formulas.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import geometry
from .._random import generator
from ..functional import learned_pools as LP
from ._common import positive_int, set_dim_docs
from .module import Module, Parameter
from .pool import _validate_window


def pool_window(
    nd: int, kernel_size: Any, stride: Any, padding: Any
) -> tuple[tuple[int, ...], tuple[int, ...], geometry.Pairs]:
    """Kernel, stride (default: the kernel) and padding pairs of a pooling layer, checked
    now: positive sizes, padding at most half the kernel."""
    kernel, strides, pads, _ = _validate_window(nd, kernel_size, stride, padding, 1, TypeError)
    return kernel, strides, pads


def scalar_parameter(value: float, dtype: Any) -> Parameter:
    """A learned scalar, as PyTorch's GeM implementations hold it: shape ``(1,)``."""
    return Parameter(np.full((1,), value, dtype=np.dtype(dtype)))


def _maybe_learned(value: float, learn: bool, dtype: Any) -> Parameter | float:
    """A scalar hyper-parameter: a :func:`scalar_parameter` if ``learn``, else the float."""
    return scalar_parameter(value, dtype) if learn else value


def _current(v: Parameter | float) -> Any:
    """The value now: a learned scalar's data (shape ``(1,)``) or the fixed float."""
    return v.data if isinstance(v, Parameter) else v


def _accumulate(v: Parameter | float, grad: np.ndarray) -> None:
    """Accumulate a learned scalar's gradient (nothing for a fixed float)."""
    if isinstance(v, Parameter):
        v.accumulate(grad.reshape(v.shape))


def _window_repr(kernel: Any, stride: Any, pads: Any) -> str:
    if all(lo == hi for lo, hi in pads):  # symmetric: one number per dim, as Conv*d prints it
        pads = tuple(lo for lo, _ in pads)
    return f"kernel_size={kernel}, stride={stride}, padding={pads}"


class _GeMPoolNd(Module):
    """Generalised-mean (GeM) pooling: ``(mean over the window of clamp(x, eps)**p) ** (1/p)``.

    ``p = 1`` is average pooling and ``p -> inf`` max pooling; with a learned ``p`` the
    network picks the point in between (Radenovic, Tolias and Chum, "Fine-tuning CNN
    image retrieval with no human annotation", TPAMI 2018).  What max/avg pooling
    lacks: a learned, smooth trade-off between them, with a gradient to every
    element of the window.  Padding is left out of the mean.

    Args:
        kernel_size: window size (int or tuple); ``None`` pools globally (output size 1
            per spatial dim).
        stride: default ``kernel_size``.
        padding: implicit padding on both sides, at most half the kernel.
        p: the power, > 0.
        learn_p: make ``p`` a :class:`Parameter` of shape ``(1,)`` (state_dict key
            ``"p"``); else a fixed float.
        eps: the clamp ``max(x, eps)`` that keeps powers and logs finite, > 0.
        dtype: dtype of the learned ``p``.

    Shape:
        ``(N, C, *in) -> (N, C, *out)``, ``out = floor((in + 2*padding - kernel) / stride) + 1``
        (1 for global pooling).

    Example::

        >>> pool = nn.GeMPool2d()                  # global, learned p = 3
        >>> pool(np.random.rand(8, 64, 7, 7)).shape
        (8, 64, 1, 1)
    """

    nd = 0

    def __init__(
        self,
        kernel_size: Any = None,
        stride: Any = None,
        padding: Any = 0,
        p: float = 3.0,
        learn_p: bool = True,
        eps: float = 1e-6,
        dtype: Any = np.float32,
    ):
        super().__init__()
        if kernel_size is None:
            if stride is not None or not (geometry._is_int(padding) and padding == 0):
                raise ValueError(
                    f"kernel_size=None pools globally: leave stride (got {stride!r}) and padding "
                    f"(got {padding!r}) at their defaults"
                )
            self.kernel_size: Any = None
            self.stride: Any = None
            self.padding: Any = 0
        else:
            self.kernel_size, self.stride, self.padding = pool_window(self.nd, kernel_size, stride, padding)
        pv = LP.check_positive(p, "p")
        self.eps = LP.check_positive(eps, "eps")
        self.learn_p = LP.check_flag(learn_p, "learn_p")
        self.p = _maybe_learned(pv, self.learn_p, dtype)
        self._ctx: Any = None

    def forward(self, x: Any) -> np.ndarray:
        p = _current(self.p)
        LP.check_positive(p, "p", " (a learned p must stay positive: lower the learning rate, or fix p)")
        y, self._ctx = LP.gem_pool_forward(x, p, self.nd, self.kernel_size, self.stride, self.padding, self.eps)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        gx, dp = LP.gem_pool_backward(grad_output, self._need_ctx(self._ctx))
        _accumulate(self.p, dp)
        return gx

    def extra_repr(self) -> str:
        p = float(self.p.data[0]) if isinstance(self.p, Parameter) else self.p
        where = "global" if self.kernel_size is None else _window_repr(self.kernel_size, self.stride, self.padding)
        return f"{where}, p={p:.4g}, learn_p={self.learn_p}, eps={self.eps}"


class _LSEPoolNd(Module):
    """Log-mean-exp pooling: ``(1/beta) log(mean over the window of exp(beta x))``.

    A smooth maximum: average pooling as ``beta -> 0``, max pooling as ``beta -> inf``,
    with every element receiving its softmax share of the gradient.  Computed with
    the window's max subtracted, so ``beta = 1e4`` stays finite.  What max/avg pooling
    lack: a (learnable) temperature between them (Pinheiro and Collobert, "From
    image-level to pixel-level labeling with convolutional networks", CVPR 2015).
    Padding is left out of the mean.

    Args:
        kernel_size: window size (int or tuple).
        stride: default ``kernel_size``.
        padding: implicit padding on both sides, at most half the kernel.
        beta: the inverse temperature, > 0.
        learn_beta: make ``beta`` a :class:`Parameter` of shape ``(1,)`` (key ``"beta"``).
        dtype: dtype of the learned ``beta``.

    Shape:
        ``(N, C, *in) -> (N, C, *out)``, ``out = floor((in + 2*padding - kernel) / stride) + 1``.

    Example::

        >>> pool = nn.LSEPool2d(2, beta=10.0, learn_beta=True)
        >>> pool(np.random.rand(1, 3, 8, 8)).shape
        (1, 3, 4, 4)
    """

    nd = 0

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        beta: float = 1.0,
        learn_beta: bool = False,
        dtype: Any = np.float32,
    ):
        super().__init__()
        self.kernel_size, self.stride, self.padding = pool_window(self.nd, kernel_size, stride, padding)
        bv = LP.check_positive(beta, "beta")
        self.learn_beta = LP.check_flag(learn_beta, "learn_beta")
        self.beta = _maybe_learned(bv, self.learn_beta, dtype)
        self._ctx: Any = None

    def forward(self, x: Any) -> np.ndarray:
        beta = _current(self.beta)
        LP.check_positive(beta, "beta", " (a learned beta must stay positive: lower the learning rate)")
        y, self._ctx = LP.lse_pool_forward(x, beta, self.nd, self.kernel_size, self.stride, self.padding)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        gx, db = LP.lse_pool_backward(grad_output, self._need_ctx(self._ctx))
        _accumulate(self.beta, db)
        return gx

    def extra_repr(self) -> str:
        beta = float(self.beta.data[0]) if isinstance(self.beta, Parameter) else self.beta
        return f"{_window_repr(self.kernel_size, self.stride, self.padding)}, beta={beta:.4g}"


class _MixedPoolNd(Module):
    """Mixed max-average pooling: ``alpha * max_pool(x) + (1 - alpha) * avg_pool(x)``.

    One ``alpha`` in ``[0, 1]`` per layer, learned by default (Yu, Wang, Chen and Wei,
    "Mixed pooling for convolutional neural networks", RSKT 2014; Lee, Gallagher and
    Tu, "Generalizing pooling functions in CNNs: mixed, gated, and tree", AISTATS
    2016).  What max/avg pooling lack: the layer learns how much of each it wants.
    A learned ``alpha`` is clipped to ``[0, 1]`` when used, with the gradient of the
    unclipped formula (so it can come back from a bound).  Padding: ignored by the
    max, left out of the average.

    Args:
        kernel_size: window size (int or tuple).
        stride: default ``kernel_size``.
        padding: implicit padding on both sides, at most half the kernel.
        alpha: the weight of max pooling, in ``[0, 1]``.
        learn_alpha: make ``alpha`` a :class:`Parameter` of shape ``(1,)`` (key ``"alpha"``).
        dtype: dtype of the learned ``alpha``.

    Shape:
        ``(N, C, *in) -> (N, C, *out)``, ``out = floor((in + 2*padding - kernel) / stride) + 1``.

    Example::

        >>> pool = nn.MixedPool2d(2)              # alpha = 0.5, learned
        >>> pool(np.random.rand(1, 3, 8, 8)).shape
        (1, 3, 4, 4)
    """

    nd = 0

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        alpha: float = 0.5,
        learn_alpha: bool = True,
        dtype: Any = np.float32,
    ):
        super().__init__()
        self.kernel_size, self.stride, self.padding = pool_window(self.nd, kernel_size, stride, padding)
        av = LP.check_unit(alpha, "alpha")
        self.learn_alpha = LP.check_flag(learn_alpha, "learn_alpha")
        self.alpha = _maybe_learned(av, self.learn_alpha, dtype)
        self._ctx: Any = None

    def _alpha(self) -> float:
        if isinstance(self.alpha, Parameter):
            return min(max(LP.check_number(self.alpha.data, "alpha"), 0.0), 1.0)
        return self.alpha

    def forward(self, x: Any) -> np.ndarray:
        y, self._ctx = LP.mixed_pool_forward(x, self._alpha(), self.nd, self.kernel_size, self.stride, self.padding)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        gx, da = LP.mixed_pool_backward(grad_output, self._need_ctx(self._ctx))
        _accumulate(self.alpha, da)
        return gx

    def extra_repr(self) -> str:
        return f"{_window_repr(self.kernel_size, self.stride, self.padding)}, alpha={self._alpha():.4g}"


class _GatedPoolNd(Module):
    """Gated max-average pooling: ``g * max_pool(x) + (1 - g) * avg_pool(x)`` with
    ``g = sigmoid(w . window + b)`` computed per output position and channel.

    The gate is a depthwise convolution with learned weights ``(C, *kernel)``
    (key ``"weight"``) and bias ``(C,)`` (key ``"bias"``) over the pool's own windows
    (same kernel, stride and padding): each window decides from its content how
    max-like its output is (Lee, Gallagher and Tu, "Generalizing pooling functions
    in convolutional neural networks: mixed, gated, and tree", AISTATS 2016; they
    use no bias).  Padding: the max ignores it, the average leaves it out, and the
    gate - a convolution - sees zeros there.  Initialised as a conv layer
    (uniform in ``+-1/sqrt(prod(kernel))``).

    Args:
        in_channels: C, the number of channels of the input.
        kernel_size: window size (int or tuple).
        stride: default ``kernel_size``.
        padding: implicit padding on both sides, at most half the kernel.
        dtype: dtype of the weights.

    Shape:
        ``(N, C, *in) -> (N, C, *out)``, ``out = floor((in + 2*padding - kernel) / stride) + 1``.
        Parameters: ``C * prod(kernel) + C``.

    Example::

        >>> pool = nn.GatedPool2d(16, 2)
        >>> pool(np.random.rand(1, 16, 8, 8).astype(np.float32)).shape
        (1, 16, 4, 4)
    """

    nd = 0

    def __init__(
        self, in_channels: int, kernel_size: Any, stride: Any = None, padding: Any = 0, dtype: Any = np.float32
    ):
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        self.kernel_size, self.stride, self.padding = pool_window(self.nd, kernel_size, stride, padding)
        bound = 1.0 / math.sqrt(geometry.prod(self.kernel_size))
        rng = generator()
        dt = np.dtype(dtype)
        self.weight = Parameter(rng.uniform(-bound, bound, (self.in_channels, *self.kernel_size)).astype(dt))
        self.bias = Parameter(rng.uniform(-bound, bound, self.in_channels).astype(dt))
        self._ctx: Any = None

    def forward(self, x: Any) -> np.ndarray:
        y, self._ctx = LP.gated_pool_forward(x, self.weight.data, self.bias.data, self.nd, self.stride, self.padding)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        gx, dw, db = LP.gated_pool_backward(grad_output, self._need_ctx(self._ctx))
        self.weight.accumulate(dw)
        assert db is not None
        self.bias.accumulate(db)
        return gx

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {_window_repr(self.kernel_size, self.stride, self.padding)}"


class GeMPool1d(_GeMPoolNd):
    nd = 1


class GeMPool2d(_GeMPoolNd):
    nd = 2


class GeMPool3d(_GeMPoolNd):
    nd = 3


class LSEPool1d(_LSEPoolNd):
    nd = 1


class LSEPool2d(_LSEPoolNd):
    nd = 2


class LSEPool3d(_LSEPoolNd):
    nd = 3


class MixedPool1d(_MixedPoolNd):
    nd = 1


class MixedPool2d(_MixedPoolNd):
    nd = 2


class MixedPool3d(_MixedPoolNd):
    nd = 3


class GatedPool1d(_GatedPoolNd):
    nd = 1


class GatedPool2d(_GatedPoolNd):
    nd = 2


class GatedPool3d(_GatedPoolNd):
    nd = 3


set_dim_docs(
    (
        GeMPool1d,
        GeMPool2d,
        GeMPool3d,
        LSEPool1d,
        LSEPool2d,
        LSEPool3d,
        MixedPool1d,
        MixedPool2d,
        MixedPool3d,
        GatedPool1d,
        GatedPool2d,
        GatedPool3d,
    )
)
