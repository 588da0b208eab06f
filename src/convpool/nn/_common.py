"""Small helpers the layer modules share: argument checks and the per-dimension docs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import geometry


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int; ValueError unless it is a positive int."""
    if not geometry._is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def set_dim_docs(classes: Iterable[type]) -> None:
    """Give each 1-d/2-d/3-d class its base's docstring, headed by its number of dims."""
    for cls in classes:
        cls.__doc__ = f"{cls.nd}-d version.\n\n" + (cls.__mro__[1].__doc__ or "")  # type: ignore[attr-defined]
