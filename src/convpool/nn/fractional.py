"""Fractional max pooling layers: ``FractionalMaxPool2d`` and ``FractionalMaxPool3d``
(Graham 2014), as in PyTorch.  See :mod:`convpool.functional.fractional` for how the
pseudo-random windows are placed."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import geometry
from ..functional import fractional as FR
from ..functional._common import check_bool
from ._common import set_dim_docs
from .module import Module


class _FractionalMaxPoolNd(Module):
    """Fractional max pooling: windows of ``kernel_size`` at pseudo-random, increasing
    starts, so that a dimension shrinks by any factor between 1 and 2 (Graham,
    "Fractional Max-Pooling", 2014).  A fresh set of starts is drawn per plane on every
    call (from convpool's generator: :func:`convpool.manual_seed` makes it reproducible),
    unless ``_random_samples`` fixes them; the gradient goes to each window's max.

    Args:
        kernel_size: window size (int or tuple).
        output_size: output spatial size (int or tuple), ``o + k - 1 <= in`` per dim.
        output_ratio: instead of ``output_size``: numbers in (0, 1), ``o = int(in * ratio)``.
        return_indices: also return the flat per-plane index of each max.
        _random_samples: fixed samples ``(N, C, nd)`` in [0, 1), used on every call and
            kept in the state dict under ``_random_samples`` (as PyTorch's buffer).

    Shape:
        ``(N, C, *in) -> (N, C, *out)`` (or unbatched ``(C, *in)``).

    Example::

        >>> pool = nn.FractionalMaxPool2d(3, output_ratio=0.5)
        >>> pool(np.random.rand(2, 4, 20, 16)).shape
        (2, 4, 10, 8)
    """

    nd = 0

    def __init__(
        self,
        kernel_size: Any,
        output_size: Any = None,
        output_ratio: Any = None,
        return_indices: bool = False,
        _random_samples: Any = None,
    ):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = geometry.ntuple(kernel_size, self.nd, "kernel_size")
        self.return_indices = check_bool(return_indices, "return_indices")
        if output_size is None and output_ratio is None:
            raise ValueError(f"{name} needs an output_size or an output_ratio, got neither")
        if output_size is not None and output_ratio is not None:
            raise ValueError(
                f"only one of output_size and output_ratio may be given, got output_size={output_size!r} "
                f"and output_ratio={output_ratio!r}"
            )
        self.output_size = None if output_size is None else geometry.ntuple(output_size, self.nd, "output_size")
        self.output_ratio = None if output_ratio is None else FR._ratio(output_ratio, self.nd)
        if _random_samples is not None:
            samples = geometry.check_array(_random_samples, "_random_samples")
            if samples.ndim != 3 or samples.shape[2] != self.nd:
                raise ValueError(f"_random_samples must have shape (N, C, {self.nd}), got {samples.shape}")
            self.register_buffer("_random_samples", samples.copy())
        else:
            self._random_samples: np.ndarray | None = None
        self._ctx: Any = None

    def forward(self, x: Any) -> Any:
        y, self._ctx = FR.fractional_max_pool_forward(
            x, self.nd, self.kernel_size, self.output_size, self.output_ratio, self._random_samples
        )
        return (y, self._ctx.indices) if self.return_indices else y

    def backward(self, grad_output: Any) -> np.ndarray:
        return FR.fractional_max_pool_backward(grad_output, self._need_ctx(self._ctx))

    def extra_repr(self) -> str:
        if self.output_size is not None:
            return f"kernel_size={self.kernel_size}, output_size={self.output_size}"
        return f"kernel_size={self.kernel_size}, output_ratio={self.output_ratio}"


class FractionalMaxPool2d(_FractionalMaxPoolNd):
    nd = 2


class FractionalMaxPool3d(_FractionalMaxPoolNd):
    nd = 3


set_dim_docs((FractionalMaxPool2d, FractionalMaxPool3d))
