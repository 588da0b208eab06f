"""What the learned pooling layers of :mod:`convpool.nn.learned_pools` share: one class
per family (GeM, log-mean-exp, mixed, gated), N-d, with the checks of their arguments and
the handling of a learned scalar; the public 1-d/2-d/3-d classes fix ``nd`` and carry the
documentation.  See :mod:`convpool.functional.learned_pools` for the formulas.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import geometry
from .._random import generator
from ..functional import learned_pools as LP
from ._pool import _validate_window
from .module import Module, Parameter


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
    """Generalised-mean pooling, N-d; subclasses fix ``nd`` (see :class:`GeMPool2d`)."""

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
            if stride is not None or not (geometry.is_int(padding) and padding == 0):
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
    """Log-mean-exp pooling, N-d; subclasses fix ``nd`` (see :class:`LSEPool2d`)."""

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
    """Mixed max-average pooling, N-d; subclasses fix ``nd`` (see :class:`MixedPool2d`)."""

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
    """Gated max-average pooling, N-d; subclasses fix ``nd`` (see :class:`GatedPool2d`)."""

    nd = 0

    def __init__(
        self, in_channels: int, kernel_size: Any, stride: Any = None, padding: Any = 0, dtype: Any = np.float32
    ):
        super().__init__()
        self.in_channels = geometry.positive_int(in_channels, "in_channels")
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
