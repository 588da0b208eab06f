"""Fractional max pooling layers: ``FractionalMaxPool2d`` and ``FractionalMaxPool3d``
(Graham 2014), as in PyTorch.  See :mod:`convpool.functional.fractional` for how the
pseudo-random windows are placed."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import geometry
from ..functional import fractional as FR
from .module import Module


class _FractionalMaxPoolNd(Module):
    """Fractional max pooling (Graham 2014), N-d; subclasses fix ``nd`` (see :class:`FractionalMaxPool2d`)."""

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
        self.return_indices = geometry.check_bool(return_indices, "return_indices")
        if output_size is None and output_ratio is None:
            raise ValueError(f"{name} needs an output_size or an output_ratio, got neither")
        if output_size is not None and output_ratio is not None:
            raise ValueError(
                f"only one of output_size and output_ratio may be given, got output_size={output_size!r} "
                f"and output_ratio={output_ratio!r}"
            )
        self.output_size = None if output_size is None else geometry.ntuple(output_size, self.nd, "output_size")
        self.output_ratio = None if output_ratio is None else geometry.check_output_ratio(output_ratio, self.nd)
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
    """2-d fractional max pooling: windows of ``kernel_size`` at pseudo-random, increasing starts.

    A dim shrinks by any factor between 1 and 2 (Graham, "Fractional Max-Pooling", 2014).  Fresh starts are
    drawn per plane on every call from convpool's generator (:func:`convpool.manual_seed`), unless
    ``_random_samples`` fixes them; the gradient goes to each window's max.

    Args:
        kernel_size: window size, an int or a pair ``(kH, kW)``.
        output_size: the output's spatial size, an int or a pair, ``out + kernel_size - 1 <= in`` (default None).
        output_ratio: instead of ``output_size``: a number or 2 numbers in (0, 1), ``out = int(in * ratio)``.
        return_indices: also return the flat per-plane index of each max (default False).
        _random_samples: fixed samples ``(N, C, 2)`` in [0, 1), used on every call and kept in the state
            dict as PyTorch's buffer (default None: drawn).

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``; no padding.

    Example:
        >>> pool = nn.FractionalMaxPool2d(3, output_ratio=0.5)
        >>> pool(np.random.rand(2, 4, 20, 16)).shape
        (2, 4, 10, 8)
    """

    nd = 2


class FractionalMaxPool3d(_FractionalMaxPoolNd):
    """3-d fractional max pooling: windows of ``kernel_size`` at pseudo-random, increasing starts.

    A dim shrinks by any factor between 1 and 2 (Graham, "Fractional Max-Pooling", 2014).  Fresh starts are
    drawn per plane on every call from convpool's generator (:func:`convpool.manual_seed`), unless
    ``_random_samples`` fixes them; the gradient goes to each window's max.

    Args:
        kernel_size: window size, an int or a triple ``(kD, kH, kW)``.
        output_size: the output's spatial size, an int or a triple, ``out + kernel_size - 1 <= in`` (default None).
        output_ratio: instead of ``output_size``: a number or 3 numbers in (0, 1), ``out = int(in * ratio)``.
        return_indices: also return the flat per-plane index of each max (default False).
        _random_samples: fixed samples ``(N, C, 3)`` in [0, 1), used on every call and kept in the state
            dict as PyTorch's buffer (default None: drawn).

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``; no padding.

    Example:
        >>> pool = nn.FractionalMaxPool3d(3, output_ratio=0.5)
        >>> pool(np.random.rand(1, 2, 10, 12, 16)).shape
        (1, 2, 5, 6, 8)
    """

    nd = 3
