"""Pooling windows cut to the part of the (padded) input they read.

Identity padding (``-inf`` for max, excluded from the median, zeros for a sum)
contributes nothing to a window, so a pool whose kernel, padding, stride or
dilation reach far beyond the input - ``avg_pool2d(x_5x5, 10**9, padding=5 * 10**8)``
- is the same computation as a small one: per spatial dimension, only the kernel
taps that land on the input for some output matter, and only the input rows they
land on.  :func:`plan` builds that small problem, so that memory and time follow
the input and the output, never the kernel size, the padding or the padded
extent; the result is the same, value for value and index for index.

Per dimension the sub-problem's input is gathered from the input, through a
table of source indices (the border map of a border ``padding_mode`` included,
-1 for a zero of 'zeros' padding), and its windows are identity-padded:

* the *hull*: the kernel cut to the taps ``ta..tb`` that read the input (or its
  border) for some output, the input cut to the positions they read, the
  identity padding cut to what the windows still cover; a dimension with one
  output needs no stride and one with one tap no dilation, so those become 1 (a
  stride of ``10**9`` then costs nothing);
* *unfolded* windows, for two outputs far apart (only ``ceil_mode``'s extra last
  window can lie more than about an input size from the first): each window's own
  elements, side by side, as a tiled pool whose windows are padded on the outside.

Windows keep their elements in scan order, so ties resolve to the same element.
Ordinary geometries are left alone (``settings.TUNING.pool_trim_ratio`` and ``pool_trim_slack``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import geometry
from ..settings import TUNING
from ..windows import source_index
from ._common import Geometry


@dataclass(frozen=True)
class _Dim:
    """One dimension of the sub-problem: for each position of its input, the input
    index it is gathered from (-1: a zero), and its windows over that input."""

    source: np.ndarray
    kernel: int
    stride: int
    dilation: int
    pads: tuple[int, int]


@dataclass(frozen=True)
class PoolTrim:
    """The sub-problem: windows ``geom`` over the input gathered by ``dims``."""

    geom: Geometry  # the windows over the gathered input (the same outputs as the original)
    in_size: tuple[int, ...]  # the original input's spatial size
    dims: tuple[_Dim, ...]

    def gather(self, x: np.ndarray) -> np.ndarray:
        """The sub-problem's input, from ``x`` ``(..., *in_size)``."""
        lead = x.ndim - len(self.dims)
        for axis, dim in enumerate(self.dims, start=lead):
            if (dim.source < 0).any():  # zeros of 'zeros' padding: read from an appended zero
                zero = np.zeros(x.shape[:axis] + (1,) + x.shape[axis + 1 :], dtype=x.dtype)
                x = np.take(np.concatenate([x, zero], axis=axis), dim.source, axis=axis)
            else:
                x = np.take(x, dim.source, axis=axis)
        return x

    def scatter(self, g: np.ndarray) -> np.ndarray:
        """Adjoint of :meth:`gather`: the gradient of the sub-problem's input added back
        onto the input elements it was gathered from (zero where nothing was)."""
        lead = g.ndim - len(self.dims)
        for axis, (dim, n) in enumerate(zip(self.dims, self.in_size, strict=True), start=lead):
            ga = np.moveaxis(g, axis, 0)
            out = np.zeros((n + 1,) + ga.shape[1:], dtype=g.dtype)
            np.add.at(out, dim.source, ga)  # a position may be gathered twice; a zero's gradient lands on n
            g = np.moveaxis(out[:n], 0, axis)
        return g

    def input_index(self, flat: np.ndarray) -> np.ndarray:
        """Flat indices into the sub-problem's input as flat indices into the input
        (-1: a zero of the padding; negative values pass through)."""
        coords = np.unravel_index(np.maximum(flat, 0), self.geom.in_size)
        mapped = [dim.source[c] for dim, c in zip(self.dims, coords, strict=True)]
        index = np.ravel_multi_index(tuple(np.maximum(m, 0) for m in mapped), self.in_size)
        zero = np.logical_or.reduce([m < 0 for m in mapped])
        return np.where(flat < 0, flat, np.where(zero, -1, index))


def plan(g: Geometry, mode: str | None) -> PoolTrim | None:
    """The sub-problem of a pool with windows ``g`` and padding ``mode`` (None: the
    reduction's identity), or None when ``g`` is ordinary: its padded input not much
    larger than the input, or the sub-problem not much smaller than it."""
    full = geometry.prod(g.padded)
    if full <= TUNING.pool_trim_ratio * geometry.prod(g.in_size) + TUNING.pool_trim_slack:
        return None
    dims = tuple(
        _dim(n, k, s, d, pads, o, mode)
        for n, k, s, d, pads, o in zip(g.in_size, g.kernel, g.stride, g.dilation, g.pads, g.out, strict=True)
    )
    sub = geometry.prod([dim.pads[0] + len(dim.source) + dim.pads[1] for dim in dims])
    if full <= TUNING.pool_trim_ratio * sub + TUNING.pool_trim_slack:
        return None
    geom = Geometry(
        in_size=tuple(len(dim.source) for dim in dims),
        kernel=tuple(dim.kernel for dim in dims),
        stride=tuple(dim.stride for dim in dims),
        dilation=tuple(dim.dilation for dim in dims),
        pads=tuple(dim.pads for dim in dims),
        out=g.out,
        extra=(0,) * g.nd,
    )
    return PoolTrim(geom, g.in_size, dims)


def _dim(n: int, k: int, s: int, d: int, pads: tuple[int, int], out: int, mode: str | None) -> _Dim:
    """One dimension's sub-problem.  Output ``o``'s tap ``t`` reads input coordinate
    ``o*s + t*d - lo``; what is read lies in ``[-lo, n + hi)`` with a border mode, in
    ``[0, n)`` without.  Arrays here have one entry per output, none per tap."""
    lo, hi = pads
    begin, end = (0, n) if mode is None else (-lo, n + hi)
    base = np.arange(out, dtype=np.int64) * s - lo  # coordinate of each window's tap 0
    first = np.clip(-((base - begin) // d), 0, k)  # first tap reading a coordinate >= begin
    stop = np.clip(-((base - end) // d), 0, k)  # first tap reading a coordinate >= end
    count = np.maximum(stop - first, 0)
    if not count.any():  # no window reads the input (a sum of padding: zero)
        return _Dim(np.zeros(1, dtype=np.int64), 1, 1, 1, (out, 0))  # one element, read by no window
    reads = count > 0
    ta, tb = int(first[reads].min()), int(stop[reads].max()) - 1
    c0 = int((base + first * d)[reads].min())  # first and last coordinate read
    c1 = int((base + (stop - 1) * d)[reads].max()) + 1
    k_hull, lo_hull = tb - ta + 1, lo + c0 - ta * d
    s_hull, d_hull = (s if out > 1 else 1), (d if k_hull > 1 else 1)
    extent = (out - 1) * s_hull + (k_hull - 1) * d_hull + 1
    kc = int(count.max())
    if out == 2 and 2 * kc < extent:  # two windows far apart: each one's elements side by side
        c = [int(v) for v in count]
        read = np.concatenate([b + f * d + np.arange(m) * d for b, f, m in zip(base, first, c, strict=True)])
        return _Dim(_source(read, n, pads, mode), kc, kc, 1, (kc - c[0], kc - c[1]))
    source = _source(np.arange(c0, c1), n, pads, mode)
    return _Dim(source, k_hull, s_hull, d_hull, (lo_hull, extent - lo_hull - (c1 - c0)))


def _source(coords: np.ndarray, n: int, pads: tuple[int, int], mode: str | None) -> np.ndarray:
    """The input index each coordinate (in ``[-lo, n + hi)``) holds, -1 for a zero."""
    if mode is None:  # only the input is read
        return coords
    if mode == "constant":
        return np.where((coords >= 0) & (coords < n), coords, -1)
    return source_index(n, *pads, mode)[coords + pads[0]]  # a border is at most the input size
