"""``pad`` with PyTorch's argument convention (last dimension first)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import geometry, windows


def _pairs(x: np.ndarray, pad_arg: Any) -> geometry.Pairs:
    if not isinstance(pad_arg, (tuple, list)) or not all(geometry._is_int(p) for p in pad_arg):
        raise TypeError(f"pad must be a tuple of ints (last dim first), got {pad_arg!r}")
    if len(pad_arg) % 2 or len(pad_arg) // 2 > x.ndim:
        raise ValueError(
            f"pad must have an even length of at most 2*input.ndim = {2 * x.ndim}, "
            f"got {len(pad_arg)} values {tuple(pad_arg)}"
        )
    if any(p < 0 for p in pad_arg):
        raise ValueError(f"pad must be non-negative (cropping is not supported), got {tuple(pad_arg)}")
    pairs = [(int(pad_arg[i]), int(pad_arg[i + 1])) for i in range(0, len(pad_arg), 2)]
    return tuple(reversed(pairs))


def pad(input: Any, pad: Any, mode: str = "constant", value: float | None = None) -> np.ndarray:
    """Pad ``input``; ``pad = (left, right, top, bottom, ...)`` pads the last dim
    first, as ``torch.nn.functional.pad``.  ``mode``: 'constant' (with ``value``,
    default 0), 'reflect', 'replicate' or 'circular'.
    """
    x = geometry.check_array(input)
    pairs = _pairs(x, pad)
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise ValueError(f"mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")
    if value is not None and not isinstance(value, (int, float, np.integer, np.floating, np.bool_)):
        raise TypeError(f"value must be a real number (or None), got {value!r} ({type(value).__name__})")
    if value is not None and mode != "constant":
        raise ValueError(f"value is only used with mode='constant', got mode={mode!r} and value={value!r}")
    if mode != "constant":
        _check_border(x.shape, pairs, mode)
    return windows.pad(x, pairs, mode, 0.0 if value is None else float(value))


def _check_border(shape: tuple[int, ...], pairs: geometry.Pairs, mode: str) -> None:
    """A border mode copies values from the input: it cannot pad an empty dimension
    (a constant can: ``pad(zeros((1, 0)), (1, 1))`` is ``zeros((1, 2))``, as PyTorch)."""
    for axis, (lo, hi) in enumerate(pairs, start=len(shape) - len(pairs)):
        if shape[axis] == 0 and (lo or hi):
            raise ValueError(
                f"mode={mode!r} copies values from the input, but dim {axis} of the input of shape {shape} "
                f"is empty: got padding ({lo}, {hi}) for it"
            )


def pad_grad(grad_output: Any, pad: Any, mode: str = "constant") -> np.ndarray:
    """Gradient of :func:`pad` with respect to its input (the adjoint)."""
    g = geometry.check_array(grad_output, "grad_output")
    pairs = _pairs(g, pad)
    lead = g.ndim - len(pairs)
    shape = g.shape[:lead] + tuple(n - lo - hi for n, (lo, hi) in zip(g.shape[lead:], pairs, strict=True))
    if min(shape, default=0) < 0:
        raise ValueError(f"grad_output of shape {g.shape} is smaller than its padding {tuple(pad)}")
    if mode != "constant":
        _check_border(shape, pairs, mode)
    return windows.pad_backward(g, pairs, mode)
