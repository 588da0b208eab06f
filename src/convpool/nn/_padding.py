"""What the padding layers of :mod:`convpool.nn.padding` share: the ``padding`` argument
(PyTorch's order, last dim first), cropping by negative padding and the adjoint for the
backward pass, one class per mode; the public 1-d/2-d/3-d classes fix ``nd`` and carry
the documentation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import geometry
from ..functional.padding import pad, pad_grad
from .module import Module


def padding_tuple(padding: Any, nd: int) -> tuple[int, ...]:
    """``padding`` as a tuple of ``2 * nd`` ints, last dim first (PyTorch's order)."""
    n = 2 * nd
    if geometry.is_int(padding):
        return (int(padding),) * n
    if isinstance(padding, (tuple, list)) and all(geometry.is_int(p) for p in padding):
        if len(padding) != n:
            raise ValueError(
                f"padding of a {nd}-d padding layer must be an int or a tuple of {n} ints "
                f"(last dim first: left, right{', top, bottom' if nd > 1 else ''}"
                f"{', front, back' if nd > 2 else ''}), got {tuple(padding)} ({len(padding)} values)"
            )
        return tuple(int(p) for p in padding)
    raise TypeError(f"padding must be an int or a tuple of {n} ints, got {padding!r}")


def _crop(shape: tuple[int, ...], cut: tuple[int, ...]) -> tuple[slice, ...]:
    """Index of the array ``shape`` less ``cut`` (PyTorch order: last dim first) on each side."""
    pairs = [(cut[i], cut[i + 1]) for i in range(0, len(cut), 2)][::-1]
    lead = len(shape) - len(pairs)
    return (slice(None),) * lead + tuple(slice(lo, n - hi) for n, (lo, hi) in zip(shape[lead:], pairs, strict=True))


class _PadNd(Module):
    """A padding layer: ``mode`` fixed by the class, ``padding`` per side."""

    nd = 0
    mode = ""
    value = 0.0
    any_rank = False  # constant padding pads the last nd dims of any array

    def __init__(self, padding: Any):
        super().__init__()
        self.padding = padding_tuple(padding, self.nd)
        self._ctx: Any = None

    def _check_input(self, x: Any) -> np.ndarray:
        x = geometry.check_array(x)
        nd = self.nd
        if self.any_rank and x.ndim < nd:
            raise ValueError(
                f"{type(self).__name__} pads {nd} dims: input needs at least {nd} dims, got shape {x.shape}"
            )
        if not self.any_rank and x.ndim not in (nd + 1, nd + 2):
            raise ValueError(
                f"{type(self).__name__} expects a {nd + 1}-d (C, *spatial) or {nd + 2}-d (N, C, *spatial) input, "
                f"got shape {x.shape}"
            )
        return x

    def _check_sizes(self, shape: tuple[int, ...], cut_first: bool) -> None:
        """Per spatial dim: a cut before padding fits the dim; the output is not negative
        (not empty for reflect / replicate, as PyTorch)."""
        p = self.padding
        for i in range(self.nd):
            axis = len(shape) - 1 - i
            n, lo, hi = shape[axis], p[2 * i], p[2 * i + 1]
            cut = max(-lo, 0) + max(-hi, 0)
            least = 0 if cut_first else 1
            if (cut_first and cut > n) or n + lo + hi < least:
                raise ValueError(
                    f"padding ({lo}, {hi}) of dim {axis} crops too much from an input of shape {shape}: "
                    f"{n} + {lo} + {hi} = {n + lo + hi} elements left"
                    + (f", cutting {cut} of {n}" if cut_first else ", the output needs at least one")
                )

    def forward(self, x: Any) -> np.ndarray:
        x = self._check_input(x)
        grow = tuple(max(p, 0) for p in self.padding)
        cut = tuple(max(-p, 0) for p in self.padding)
        mode, value = self.mode, (self.value if self.mode == "constant" else None)
        cut_first = mode in ("constant", "circular")
        self._check_sizes(x.shape, cut_first)
        if cut_first:
            y = pad(x[_crop(x.shape, cut)], grow, mode, value)
        else:
            xp = pad(x, grow, mode)
            y = xp[_crop(xp.shape, cut)]
        self._ctx = (x.shape, y.shape, x.dtype, grow, cut, cut_first)
        return y

    def backward(self, grad_output: Any) -> np.ndarray:
        """The adjoint: :func:`pad_grad` of the padded part, zeros where the input was cut."""
        shape, y_shape, dtype, grow, cut, cut_first = self._need_ctx(self._ctx)
        g = geometry.check_grad(grad_output, y_shape, dtype)
        if cut_first:  # y = pad(x[crop])
            inner = pad_grad(g, grow, self.mode)
            if not any(cut):
                return inner
            gx = np.zeros(shape, dtype=inner.dtype)
            gx[_crop(shape, cut)] = inner
            return gx
        if any(cut):  # y = pad(x)[crop]
            lead = len(shape) - self.nd
            padded = shape[:lead] + tuple(
                n + grow[2 * i] + grow[2 * i + 1] for i, n in zip(range(self.nd - 1, -1, -1), shape[lead:])
            )
            gp = np.zeros(padded, dtype=g.dtype)
            gp[_crop(padded, cut)] = g
            g = gp
        return pad_grad(g, grow, self.mode)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    """Pad with a constant ``value``; subclasses fix ``nd``."""

    mode = "constant"
    any_rank = True

    def __init__(self, padding: Any, value: float):
        super().__init__(padding)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"value must be a real number, got {value!r} ({type(value).__name__})")
        self.value = value

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class _ZeroPadNd(_ConstantPadNd):
    """Pad with zeros; subclasses fix ``nd``."""

    def __init__(self, padding: Any):
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _ReflectionPadNd(_PadNd):
    """Pad with the reflection of the input, the edge not repeated; subclasses fix ``nd``."""

    mode = "reflect"


class _ReplicationPadNd(_PadNd):
    """Pad by repeating the edge element; subclasses fix ``nd``."""

    mode = "replicate"


class _CircularPadNd(_PadNd):
    """Pad by wrapping around; subclasses fix ``nd``."""

    mode = "circular"
