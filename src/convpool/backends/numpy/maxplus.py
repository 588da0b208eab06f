"""Implementation "reference" of the max-plus table: the readable loop over the (channel,
tap) entries in scan order, each a vectorised update of every output, and its backward
from the winners.  The state (:class:`MaxPlusState`) is every max-plus implementation's."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import geometry
from ...geometry import Geometry
from ...windows import pad, pad_backward, window_view
from ..tables import MaxPlusProblem


@dataclass
class MaxPlusState:
    geom: Geometry
    groups: int
    mode: str | None  # None: identity padding; else a border mode ('constant': zeros)
    win: np.ndarray  # (N, C_out, *out) int32: each output's winning entry c*K + k in its group
    x_shape: tuple[int, ...]  # batched
    dtype: np.dtype  # the input's, in which it computes
    w_shape: tuple[int, ...]


def why_not(p: MaxPlusProblem) -> str | None:
    return None  # the reference takes every problem


def state(p: MaxPlusProblem, win: np.ndarray) -> MaxPlusState:
    return MaxPlusState(p.g, p.groups, p.mode, win, p.x.shape, p.x.dtype, p.w.shape)


def forward(p: MaxPlusProblem) -> tuple[np.ndarray, MaxPlusState]:
    y, win = _reference_forward(p.x, p.w, p.b, p.g, p.groups, p.mode, p.sign)
    return y, state(p, win)


def backward(dy: np.ndarray, st: MaxPlusState, input_grad: bool) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    return _reference_backward(dy, st, input_grad)


def _reference_forward(
    xb: np.ndarray, w: np.ndarray, b: np.ndarray, g: Geometry, groups: int, mode: str | None, sign: float
) -> tuple[np.ndarray, np.ndarray]:
    """One pass over the (channel, tap) entries in scan order, each a vectorised update
    of every output: a sum takes over where it beats the best so far.  Min-plus is
    max-plus of the negated input and weights, negated.  Memory: a few output-sized
    arrays, whatever the number of entries."""
    sx, sw = (xb, w) if sign > 0 else (-xb, -w)
    fill = -np.inf if mode is None else 0.0
    view = window_view(pad(sx, g.pads, mode or "constant", fill), g.kernel, g.stride, g.dilation, g.out)
    n, c = xb.shape[:2]
    c_out, cg = w.shape[:2]
    co, k = c_out // groups, geometry.prod(g.kernel)
    wg = sw.reshape(groups, co, cg, k)
    shape = (n, groups, co) + g.out
    best = np.full(shape, -np.inf, dtype=xb.dtype)
    win = np.zeros(shape, dtype=np.int32)
    found = np.zeros(shape, dtype=bool)  # an entry on the input has been seen
    real = _real_taps(g) if mode is None else None  # identity padding takes no part
    for ci in range(cg):
        for t, tap in enumerate(itertools.product(*map(range, g.kernel))):
            at: tuple[Any, ...] = (Ellipsis, *tap)
            xs = view[at].reshape((n, groups, cg) + g.out)[:, :, ci, None]  # (N, groups, 1, *out)
            with np.errstate(invalid="ignore"):  # inf + -inf: a NaN sum, which wins
                v = xs + wg[:, :, ci, t].reshape((groups, co) + (1,) * g.nd)
                take = ~found | (v > best) | (np.isnan(v) & ~np.isnan(best))  # the first NaN wins
            if real is not None:
                take &= real[t]
                found |= real[t]
            else:
                found[...] = True
            best = np.where(take, v, best)
            win[take] = ci * k + t
    y = (best if sign > 0 else -best).reshape((n, c_out) + g.out) + b.reshape((c_out,) + (1,) * g.nd)
    return y, win.reshape(y.shape)


def _real_taps(g: Geometry) -> list[np.ndarray]:
    """Per tap (scan order), a mask over the outputs: the tap reads the input, not the padding."""
    per_dim = [
        [((np.arange(o) * s + t * d >= lo) & (np.arange(o) * s + t * d < lo + n)) for t in range(k)]
        for n, k, s, d, (lo, _), o in zip(g.in_size, g.kernel, g.stride, g.dilation, g.pads, g.out, strict=True)
    ]
    return [functools.reduce(np.logical_and.outer, masks) for masks in itertools.product(*per_dim)]


def _reference_backward(
    dy: np.ndarray, ctx: MaxPlusState, input_grad: bool
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Per entry: the outputs it won pass their gradient to its weight and, one strided
    add over all outputs, to the input elements it read (then the padding's adjoint)."""
    g, groups = ctx.geom, ctx.groups
    n, c = ctx.x_shape[:2]
    c_out, cg = ctx.w_shape[:2]
    co, k = c_out // groups, geometry.prod(g.kernel)
    dyg = dy.reshape((n, groups, co) + g.out)
    win = ctx.win.reshape(dyg.shape)
    dw = np.zeros((groups, co, cg * k))
    gp = np.zeros((n, groups, cg) + g.padded, dtype=dy.dtype) if input_grad else None
    spatial = tuple(range(3, 3 + g.nd))
    for e in range(cg * k):
        hit = np.where(win == e, dyg, 0)
        dw[:, :, e] = hit.sum(axis=(0, *spatial))
        if gp is not None:
            ci, tap = divmod(e, k)
            taps = np.unravel_index(tap, g.kernel)
            target = tuple(
                slice(t * d, t * d + s * (o - 1) + 1, s) for t, d, s, o in zip(taps, g.dilation, g.stride, g.out)
            )
            where: tuple[Any, ...] = (slice(None), slice(None), ci, *target)
            gp[where] += hit.sum(axis=2)
    db = dy.sum(axis=(0, *range(2, 2 + g.nd)), dtype=np.float64)
    dx = None if gp is None else pad_backward(gp.reshape((n, c) + g.padded), g.pads, ctx.mode or "constant")
    return dx, dw.reshape(ctx.w_shape), db
