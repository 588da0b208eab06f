"""Implementation "reference" of the pool table: the readable window reduction.

Pad the input (a border mode, or the reduction's identity), take the window view,
reduce each window (one copy of the windows); the backward routes the gradient to
window elements, scatter-adds them back and undoes the padding.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import geometry
from ...geometry import Geometry
from ...windows import pad, pad_backward, scatter_add, source_index, window_view
from ..tables import PoolProblem


@dataclass
class PoolState:
    """What a pool implementation keeps for the backward pass and the indices."""

    g: Geometry  # the windows as computed
    mode: str | None
    reduction: Any
    in_shape: tuple[int, ...]  # the batched input's
    y_shape: tuple[int, ...]
    aux: Any  # the implementation's own: window positions, chosen indices...


def why_not(p: PoolProblem) -> str | None:
    return None  # the reference takes every problem


def forward(p: PoolProblem) -> tuple[np.ndarray, PoolState]:
    y, aux = _reference_forward(p.x, p.reduction, p.g, p.mode, p.selects_one)
    return y, PoolState(p.g, p.mode, p.reduction, p.x.shape, y.shape, aux)


def backward(dy: np.ndarray, state: PoolState) -> np.ndarray:
    return _reference_backward(dy, state)


def flat_indices(state: PoolState) -> np.ndarray:
    """Flat index into each channel's input of every output's selected element."""
    assert isinstance(state.aux, np.ndarray)
    return _reference_indices(state.g, state.mode, state.aux[..., 0])


def _fill_windows(x: np.ndarray, g: Geometry, reduction: Any, mode: str | None) -> np.ndarray:
    """Pad ``x`` for ``g`` (border mode or identity) plus the ceil_mode room."""
    if mode is None:
        pads = tuple((lo, hi + e) for (lo, hi), e in zip(g.pads, g.extra, strict=True))
        return pad(x, pads, "constant", reduction.pad_value)
    xp = pad(x, g.pads, mode, 0.0)
    if any(g.extra):
        xp = pad(xp, tuple((0, e) for e in g.extra), "constant", reduction.pad_value)
    return xp


def _reference_forward(
    x: np.ndarray, red: Any, g: Geometry, mode: str | None, selects_one: bool
) -> tuple[np.ndarray, object]:
    xp = _fill_windows(x, g, red, mode)
    view = window_view(xp, g.kernel, g.stride, g.dilation, g.out)
    w = view.reshape(view.shape[: 2 + g.nd] + (geometry.prod(g.kernel),))  # one copy: (N, C, *out, K)
    valid = g.counts(include_pad=mode is not None)
    y, aux = red.forward(w, valid)
    if selects_one and w.size:
        assert isinstance(aux, np.ndarray)
        _skip_identity_padding(red, w, y, aux, valid, g, mode)
    return y, aux


def _skip_identity_padding(
    red: Any, w: np.ndarray, y: np.ndarray, aux: np.ndarray, valid: np.ndarray, g: Geometry, mode: str | None
) -> None:
    """Identity padding (-inf for max, +inf for min and the median) ties with an
    infinite input value and, coming first in scan order, would be selected (or, in
    the median's sort, shift the rank).  A window whose result is such a value gets
    the input element the compiled kernels (and PyTorch) choose: the real elements
    alone decide.  Rewrites those windows' choice in ``aux`` in place."""
    tied = y == red.pad_value
    identity_padding = any(g.extra) or (mode is None and g.padded != g.in_size)
    if not identity_padding or not tied.any():
        return
    real = np.ones((), dtype=bool)  # per window element: not identity padding
    for dim_sources in _window_sources(g, mode):
        real = np.logical_and.outer(real, dim_sources != -2)
    nd = g.nd
    real = real.transpose(tuple(range(0, 2 * nd, 2)) + tuple(range(1, 2 * nd, 2))).reshape(g.out + (-1,))
    real = np.broadcast_to(real, w.shape)[tied]
    ws, ys = w[tied], y[tied]
    rank = red.rank_among_real(ws, ys, real, np.broadcast_to(valid, y.shape)[tied])
    candidates = real & (ws == ys[:, None])
    aux[tied] = np.argmax(np.cumsum(candidates, axis=-1) > rank[:, None], axis=-1)[:, None]


def _window_sources(g: Geometry, mode: str | None) -> list[np.ndarray]:
    """Per dimension ``(out, kernel)``: the input index each window element reads (-1 a
    zero of 'zeros' padding, -2 identity padding or the ceil_mode room)."""
    tables = []
    for n, k, s, d, (lo, hi), o, e in zip(
        g.in_size, g.kernel, g.stride, g.dilation, g.pads, g.out, g.extra, strict=True
    ):
        src = source_index(n, lo, hi, mode, e)
        tables.append(src[np.arange(o)[:, None] * s + np.arange(k)[None, :] * d])
    return tables


def _reference_indices(g: Geometry, mode: str | None, pos: np.ndarray) -> np.ndarray:
    """Flat input index of window element ``pos`` (scan order) of every window: -1 a zero
    of 'zeros' padding, -2 identity padding."""
    koff = np.unravel_index(pos, g.kernel)
    coords = []
    for i, table in enumerate(_window_sources(g, mode)):
        o = np.arange(g.out[i]).reshape((-1,) + (1,) * (g.nd - 1 - i))
        coords.append(table[o, koff[i]])
    flat = np.ravel_multi_index(tuple(np.maximum(c, 0) for c in coords), g.in_size).astype(np.int64)
    lowest = functools.reduce(np.minimum, coords)  # -2 if any dimension reads identity padding, else -1 if any a zero
    return np.where(lowest < 0, lowest, flat)


def _reference_backward(dy: np.ndarray, ctx: PoolState) -> np.ndarray:
    g = ctx.g
    gw = ctx.reduction.backward(dy, ctx.aux, geometry.prod(g.kernel))
    gw = gw.reshape(dy.shape + g.kernel)
    gp = scatter_add(gw, ctx.in_shape[:2] + g.padded, g.stride, g.dilation)
    if any(g.extra):
        gp = pad_backward(gp, tuple((0, e) for e in g.extra), "constant")
    return pad_backward(gp, g.pads, ctx.mode or "constant")
