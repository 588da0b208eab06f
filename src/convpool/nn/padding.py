"""Padding layers, as ``torch.nn``: ``ZeroPad*d``, ``ConstantPad*d``, ``ReflectionPad*d``,
``ReplicationPad*d``, ``CircularPad*d`` (1-d, 2-d, 3-d).

Forward is :func:`convpool.functional.pad`, backward its adjoint
:func:`convpool.functional.padding.pad_grad`.  ``padding`` is an int (every side) or a
tuple of ``2 * nd`` ints in PyTorch's order, last dim first:
``(left, right, top, bottom, front, back)``, stored as the tuple ``self.padding``.

**Negative padding crops**, as in PyTorch: ``ZeroPad2d((-1, 0, 0, 0))`` drops the first
column.  Per side, a negative amount is cut and a positive one padded:

* constant (zero) and circular: the input is cut first, then padded - so circular
  padding wraps around what is left (PyTorch's rule); a cut larger than the dim is an
  error, and circular padding may be at most the size left after the cut (PyTorch checks
  the uncut size and then reads memory it should not);
* reflect and replicate: the input is padded first, then cut (PyTorch's: the output
  element ``j`` is the padded input's ``j - pad_lo``); reflect padding must be smaller
  than the input size, and the output must keep at least one element per dim.

Inputs: ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``; the constant (zero)
layers, like PyTorch's, pad the last ``nd`` dims of an array of any rank ``>= nd``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import geometry
from ..functional._common import check_grad
from ..functional.padding import pad, pad_grad
from ._common import set_dim_docs
from .module import Module


def padding_tuple(padding: Any, nd: int) -> tuple[int, ...]:
    """``padding`` as a tuple of ``2 * nd`` ints, last dim first (PyTorch's order)."""
    n = 2 * nd
    if geometry._is_int(padding):
        return (int(padding),) * n
    if isinstance(padding, (tuple, list)) and all(geometry._is_int(p) for p in padding):
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
        g = check_grad(grad_output, y_shape, dtype)
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
    """Pad with a constant ``value`` (negative padding crops).

    Args:
        padding: int, or ``2 * nd`` ints, last dim first: ``(left, right, top, bottom,
            front, back)``; negative values crop.
        value: the fill value.

    Shape:
        ``(*, *in) -> (*, *out)``, ``out = in + pad_lo + pad_hi`` per padded dim; any
        number of leading dims.

    Example::

        >>> nn.ConstantPad2d((1, 1, 0, 2), 3.5)(np.zeros((1, 1, 2, 2))).shape
        (1, 1, 4, 4)
    """

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
    """Pad with zeros (negative padding crops).

    Args:
        padding: int, or ``2 * nd`` ints, last dim first: ``(left, right, top, bottom,
            front, back)``; negative values crop.

    Shape:
        ``(*, *in) -> (*, *out)``, ``out = in + pad_lo + pad_hi`` per padded dim; any
        number of leading dims.

    Example::

        >>> nn.ZeroPad2d((1, 1, 2, 0))(np.ones((1, 1, 3, 3))).shape
        (1, 1, 5, 5)
        >>> nn.ZeroPad2d(-1)(np.ones((1, 1, 3, 3))).shape   # crop one on every side
        (1, 1, 1, 1)
    """

    def __init__(self, padding: Any):
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _ReflectionPadNd(_PadNd):
    """Pad with the reflection of the input, the edge not repeated (``[1, 2, 3]``
    padded by 2: ``[3, 2, 1, 2, 3, 2, 1]``).  Padding must be smaller than the input
    size; negative padding crops.

    Args:
        padding: int, or ``2 * nd`` ints, last dim first: ``(left, right, top, bottom,
            front, back)``.

    Shape:
        ``(N, C, *in) -> (N, C, *out)`` or ``(C, *in) -> (C, *out)``,
        ``out = in + pad_lo + pad_hi``.

    Example::

        >>> nn.ReflectionPad1d(2)(np.array([[1.0, 2.0, 3.0]]))
        array([[3., 2., 1., 2., 3., 2., 1.]])
    """

    mode = "reflect"


class _ReplicationPadNd(_PadNd):
    """Pad by repeating the edge element (``[1, 2, 3]`` padded by 2:
    ``[1, 1, 1, 2, 3, 3, 3]``); negative padding crops.

    Args:
        padding: int, or ``2 * nd`` ints, last dim first: ``(left, right, top, bottom,
            front, back)``.

    Shape:
        ``(N, C, *in) -> (N, C, *out)`` or ``(C, *in) -> (C, *out)``,
        ``out = in + pad_lo + pad_hi``.

    Example::

        >>> nn.ReplicationPad1d(2)(np.array([[1.0, 2.0, 3.0]]))
        array([[1., 1., 1., 2., 3., 3., 3.]])
    """

    mode = "replicate"


class _CircularPadNd(_PadNd):
    """Pad by wrapping around: the end of the input pads the start and vice versa
    (``[1, 2, 3]`` padded by 2: ``[2, 3, 1, 2, 3, 1, 2]``).  Padding must be at most the
    input size; negative padding crops first.

    Args:
        padding: int, or ``2 * nd`` ints, last dim first: ``(left, right, top, bottom,
            front, back)``.

    Shape:
        ``(N, C, *in) -> (N, C, *out)`` or ``(C, *in) -> (C, *out)``,
        ``out = in + pad_lo + pad_hi``.

    Example::

        >>> nn.CircularPad1d(2)(np.array([[1.0, 2.0, 3.0]]))
        array([[2., 3., 1., 2., 3., 1., 2.]])
    """

    mode = "circular"


class ZeroPad1d(_ZeroPadNd):
    nd = 1


class ZeroPad2d(_ZeroPadNd):
    nd = 2


class ZeroPad3d(_ZeroPadNd):
    nd = 3


class ConstantPad1d(_ConstantPadNd):
    nd = 1


class ConstantPad2d(_ConstantPadNd):
    nd = 2


class ConstantPad3d(_ConstantPadNd):
    nd = 3


class ReflectionPad1d(_ReflectionPadNd):
    nd = 1


class ReflectionPad2d(_ReflectionPadNd):
    nd = 2


class ReflectionPad3d(_ReflectionPadNd):
    nd = 3


class ReplicationPad1d(_ReplicationPadNd):
    nd = 1


class ReplicationPad2d(_ReplicationPadNd):
    nd = 2


class ReplicationPad3d(_ReplicationPadNd):
    nd = 3


class CircularPad1d(_CircularPadNd):
    nd = 1


class CircularPad2d(_CircularPadNd):
    nd = 2


class CircularPad3d(_CircularPadNd):
    nd = 3


set_dim_docs(
    (
        ZeroPad1d,
        ZeroPad2d,
        ZeroPad3d,
        ConstantPad1d,
        ConstantPad2d,
        ConstantPad3d,
        ReflectionPad1d,
        ReflectionPad2d,
        ReflectionPad3d,
        ReplicationPad1d,
        ReplicationPad2d,
        ReplicationPad3d,
        CircularPad1d,
        CircularPad2d,
        CircularPad3d,
    )
)
