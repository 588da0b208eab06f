"""Window reductions: what a pooling layer does with each window.

A reduction is an object, not a mode string: it knows the value that fills
padding (its identity, so padding never wins), how to reduce a window, and how
to route a gradient back to the window's elements.  The pools in
:mod:`convpool.functional.pool` are thin wrappers around these.

Windows arrive flattened: ``w`` has shape ``(..., K)`` with ``K`` the number of
window elements in scan order (row-major over the kernel).  ``valid`` is, per
window, the number of elements that are real input (a reduction that excludes
padding, such as the median, needs it; others ignore it).

Tie rule for max, min and median: the first element in scan order among equal
candidates receives the whole gradient (what PyTorch and JAX do for max).
"""

from __future__ import annotations

import numpy as np


class Reduction:
    """Base class: subclass it to define a new pooling reduction.

    Attributes:
        name: short name used in messages and by :func:`get_reduction`.
        pad_value: the constant that fills padding by default; it must never
            change the result (-inf for max, +inf for min, 0 for sum).
    """

    name = "reduction"
    pad_value = 0.0

    def forward(self, w: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, object]:
        """Reduce the last axis; return the result and what backward needs."""
        raise NotImplementedError

    def backward(self, dy: np.ndarray, aux: object, k: int) -> np.ndarray:
        """Gradient for every window element, shape ``dy.shape + (k,)``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _SelectOne(Reduction):
    """A reduction that picks one element per window (max, min, median)."""

    def select(self, w: np.ndarray, valid: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def forward(self, w: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, object]:
        idx = self.select(w, valid)[..., None]
        y = np.take_along_axis(w, idx, axis=-1)[..., 0]
        return y, idx

    def rank_among_real(self, w: np.ndarray, y: np.ndarray, real: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """For windows ``w`` (M, K) whose selected value ``y`` (M,) equals the padding
        value: which of the real elements equal to ``y`` (0: the first in scan order)
        the selection stands for, so that padding can be skipped.  ``real`` (M, K)
        marks the real elements, ``valid`` (M,) counts them."""
        return np.zeros(len(y), dtype=np.int64)

    def backward(self, dy: np.ndarray, aux: object, k: int) -> np.ndarray:
        assert isinstance(aux, np.ndarray)
        gw = np.zeros(dy.shape + (k,), dtype=dy.dtype)
        np.put_along_axis(gw, aux, dy[..., None], axis=-1)
        return gw


class Max(_SelectOne):
    """The largest element; NaN anywhere in the window gives NaN (as PyTorch)."""

    name = "max"
    pad_value = -np.inf

    def select(self, w: np.ndarray, valid: np.ndarray) -> np.ndarray:
        return np.argmax(w, axis=-1)  # first maximum; NaN counts as the maximum


class Min(_SelectOne):
    """The smallest element; NaN anywhere in the window gives NaN."""

    name = "min"
    pad_value = np.inf

    def select(self, w: np.ndarray, valid: np.ndarray) -> np.ndarray:
        return np.argmin(w, axis=-1)


class Median(_SelectOne):
    """The lower median of the real elements of the window (padding excluded).

    For an even count the lower of the two middle values is taken (as
    ``torch.median``), so the result is always an input element and the
    gradient goes to exactly one element.  Padding is filled with +inf, which
    sorts after every real value, and the rank ``(valid - 1) // 2`` is taken.
    NaN anywhere in the window gives NaN.
    """

    name = "median"
    pad_value = np.inf

    def select(self, w: np.ndarray, valid: np.ndarray) -> np.ndarray:
        order = np.argsort(w, axis=-1, kind="stable")  # ties keep scan order
        rank = np.broadcast_to((valid - 1) // 2, w.shape[:-1])[..., None]
        idx = np.take_along_axis(order, rank, axis=-1)[..., 0]
        nan = np.isnan(w).any(axis=-1)
        if nan.any():  # point NaN windows at their first NaN so the value is NaN
            idx = np.where(nan, np.argmax(np.isnan(w), axis=-1), idx)
        return idx

    def rank_among_real(self, w: np.ndarray, y: np.ndarray, real: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """The median's rank among the real elements, less those below ``y``: equal
        values keep scan order, as in the stable sort."""
        return (valid - 1) // 2 - (real & (w < y[:, None])).sum(axis=-1)


class Sum(Reduction):
    """The sum of the window (average and Lp pooling are built on it)."""

    name = "sum"
    pad_value = 0.0

    def forward(self, w: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, object]:
        return w.sum(axis=-1), None

    def backward(self, dy: np.ndarray, aux: object, k: int) -> np.ndarray:
        return np.broadcast_to(dy[..., None], dy.shape + (k,))


REDUCTIONS: dict[str, Reduction] = {r.name: r for r in (Max(), Min(), Median(), Sum())}


def get_reduction(reduction: str | Reduction) -> Reduction:
    if isinstance(reduction, Reduction):
        return reduction
    if isinstance(reduction, str) and reduction in REDUCTIONS:
        return REDUCTIONS[reduction]
    raise ValueError(f"reduction must be one of {sorted(REDUCTIONS)} or a Reduction instance, got {reduction!r}")
