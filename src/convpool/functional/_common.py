"""Shared plumbing for the functional ops: input checks and window geometry."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import geometry
from ..geometry import Geometry, check_bool, check_grad, window_args  # noqa: F401  (re-exported)

_GEOMETRIES: dict[tuple[Any, ...], Geometry] = {}  # make_geometry's plain arguments -> its (frozen) result
_GEOMETRIES_MAX = 512  # entries kept; past it the dict starts over


_PLAIN: dict[int, tuple[Any, ...]] = {}  # id -> a nested tuple found plain, held so that its id stays its own
_PLAIN_MAX = 256


def _plain(value: Any) -> bool:
    """``value`` is made of exact ints, strs and None in tuples: a key whose equality
    means the same arguments (exact types, so ``True``, ``1.0`` or ``np.int64(1)`` - equal
    to ``1`` as keys - never share its entry, and no list that may change is a key).
    A nested tuple found plain is remembered by identity (a tuple never changes, and the
    entry holds it, so its id is not reused): a layer passes the same padding pairs on
    every call, checked once."""
    t = type(value)
    if t is int or t is str or value is None:
        return True
    if t is not tuple:
        return False
    if _PLAIN.get(id(value)) is value:
        return True
    nested = False
    for v in value:
        tv = type(v)
        if tv is tuple:
            nested = True
            if not _plain(v):
                return False
        elif not (tv is int or tv is str or v is None):
            return False
    if nested:
        if len(_PLAIN) >= _PLAIN_MAX:
            _PLAIN.clear()
        _PLAIN[id(value)] = value
    return True


def make_geometry(
    in_size: tuple[int, ...],
    nd: int,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: bool = False,
    *,
    pool: bool = False,
) -> Geometry:
    """:func:`convpool.geometry.make_geometry`, cached: the result depends on the
    arguments only and is immutable, so a layer's calls on one input shape check their
    arguments once.  Only plain arguments (:func:`_plain`, ``ceil_mode`` a bool) are
    keys; others are checked on every call, and errors are never cached."""
    key = (in_size, nd, kernel_size, stride, padding, dilation, ceil_mode, pool)
    cacheable = (
        type(ceil_mode) is bool
        and _plain(in_size)
        and type(nd) is int
        and _plain(kernel_size)
        and _plain(stride)
        and _plain(padding)
        and _plain(dilation)
    )
    if cacheable:
        g = _GEOMETRIES.get(key)
        if g is not None:
            return g
    g = geometry.make_geometry(in_size, nd, kernel_size, stride, padding, dilation, ceil_mode, pool=pool)
    if cacheable:
        if len(_GEOMETRIES) >= _GEOMETRIES_MAX:
            _GEOMETRIES.clear()
        _GEOMETRIES[key] = g
    return g


def batched(x: Any, nd: int, name: str = "input") -> tuple[np.ndarray, bool]:
    """``x`` checked and as ``(N, C, *spatial)``; True if a batch axis was added."""
    x = geometry.check_array(x, name)
    unbatched = geometry.check_rank(x, nd, name)
    return (x[None] if unbatched else x), unbatched


def check_spatial(x: np.ndarray, nd: int, unbatched: bool = False, name: str = "input") -> None:
    """Every spatial dimension of the batched ``x`` must be non-empty: a window of
    nothing has no value.  An empty batch or no channels is fine (the output is empty
    too).  The message names the shape the caller passed."""
    shape = x.shape[1:] if unbatched else x.shape
    for i, n in enumerate(shape[len(shape) - nd :]):
        if n == 0:
            raise ValueError(
                f"{name} of shape {shape} has an empty spatial dim {i} (axis {len(shape) - nd + i}): "
                f"convolution and pooling need at least one element per spatial dim"
            )


def check_weight(x: np.ndarray, weight: Any, bias: Any, nd: int, groups: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``weight`` (C_out, C_in/groups, *kernel) and ``bias`` (C_out,) checked against the
    batched input ``x``: the layout convolution and max-plus convolution share."""
    weight = geometry.check_array(weight, "weight")
    if weight.ndim != nd + 2:
        raise ValueError(
            f"weight of a {nd}-d conv must have {nd + 2} dims (C_out, C_in/groups, *kernel), got shape {weight.shape}"
        )
    if not geometry._is_int(groups) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    c_in, c_out = x.shape[1], weight.shape[0]
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide both in_channels={c_in} and out_channels={c_out}")
    if weight.shape[1] * groups != c_in:
        raise ValueError(
            f"input has {c_in} channels but weight of shape {weight.shape} with groups={groups} "
            f"expects {weight.shape[1] * groups} (weight.shape[1] * groups)"
        )
    if bias is not None:
        bias = geometry.check_array(bias, "bias")
        if bias.shape != (c_out,):
            raise ValueError(f"bias must have shape ({c_out},) (out_channels), got {bias.shape}")
    return weight, bias
