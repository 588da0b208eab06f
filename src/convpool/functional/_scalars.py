"""Checks of the scalar arguments the learned and published pools take (p, beta, alpha,
eps...): real numbers or one-element float arrays (a learned parameter's data), finite,
with the range each needs; messages name the argument and the value."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def check_number(value: Any, name: str) -> float:
    """``value`` as a float: a real number, or an array of one element (shape ``()`` or
    ``(1,)``, e.g. a learned parameter's data); NaN and inf refused."""
    if isinstance(value, np.ndarray) and value.shape in ((), (1,)) and np.issubdtype(value.dtype, np.floating):
        value = value.reshape(())[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number (or a 1-element float array), got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def check_positive(value: Any, name: str, hint: str = "") -> float:
    v = check_number(value, name)
    if v <= 0:
        raise ValueError(f"{name} must be > 0, got {v!r}{hint}")
    return v


def check_unit(value: Any, name: str) -> float:
    """A number in ``[0, 1]``."""
    v = check_number(value, name)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {v!r}")
    return v


def param_grad(value: Any, grad: float) -> np.ndarray:
    """The gradient of a scalar parameter, shaped like it (``()`` for a plain number)."""
    return np.full(np.shape(value), grad)
