"""Trimming a zero-padded convolution to the part that reads the input.

A zero-padded convolution whose padding, stride or dilation reach far beyond the
input has outputs whose windows lie wholly in the padding (they are zero, plus the
bias), kernel taps that never land on the input (their weights never meet a
value), and input rows no window reads.  Computing it as written would pad the
input to the full padded extent - memory in proportion to the arguments rather
than to the input and the output (``padding=10**5, dilation=2 * 10**5`` on a
length-1 input asks for a 200,001-element plane per channel).

:func:`plan` finds, per spatial dimension, the hull of the outputs and taps that
read the input and the input span they read; the convolution then runs on that
sub-problem - the input crop, the kept taps, the padding cut to what is read -
and its result is placed into a zero output.  A dimension with one output needs
no stride and one with one tap no dilation, so those are set to 1 (a stride of
10**9 then costs nothing).  Nothing changes for ordinary geometries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import geometry
from ..settings import TUNING
from ._common import Geometry


@dataclass(frozen=True)
class Trim:
    """A sub-problem of a zero-padded convolution: ``y[out_slices] = conv(x[in_slices],
    w[tap_slices], pads, stride, dilation)``, the rest of ``y`` zero.  ``empty``: no
    window reads the input (the output is all zero)."""

    empty: bool
    in_slices: tuple[slice, ...] = ()
    tap_slices: tuple[slice, ...] = ()
    out_slices: tuple[slice, ...] = ()
    pads: geometry.Pairs = ()
    stride: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()

    def at(self, slices: tuple[slice, ...]) -> tuple[Any, ...]:
        """An index of the last ``len(slices)`` axes of an (N, C, *spatial) array."""
        return (Ellipsis, *slices)

    @staticmethod
    def whole(slices: tuple[slice, ...], sizes: tuple[int, ...]) -> bool:
        """Whether ``slices`` cover the last ``len(slices)`` of ``sizes`` (nothing cut):
        then the sub-problem's array is the full one and needs no zero-filled copy."""
        spatial = sizes[len(sizes) - len(slices) :]
        return all((s.start, s.stop) == (0, n) for s, n in zip(slices, spatial, strict=True))


def _dim(n: int, k: int, s: int, d: int, lo: int, out: int) -> tuple[slice, slice, slice, tuple[int, int]] | None:
    """One dimension's (input, tap, output) slices and padding, or None if no window
    reads the input.  Tap ``t`` of output ``o`` reads padded ``o*s + t*d``, input
    ``o*s + t*d - lo``."""
    t = np.arange(k, dtype=np.int64) * d
    first_o = np.maximum(0, -((t - lo) // s))  # ceil((lo - t*d) / s)
    last_o = np.minimum(out - 1, (lo + n - 1 - t) // s)
    reads = np.flatnonzero(first_o <= last_o)
    if reads.size == 0:
        return None
    ta, tb = int(reads[0]), int(reads[-1])
    oa, ob = int(first_o[reads].min()), int(last_o[reads].max()) + 1
    first, last = oa * s + ta * d, (ob - 1) * s + tb * d  # padded coordinates read
    c0, c1 = max(0, first - lo), min(n, last - lo + 1)
    pads = (max(0, lo - first), max(0, last - (lo + n - 1)))
    return slice(c0, c1), slice(ta, tb + 1), slice(oa, ob), pads


def plan(g: Geometry) -> Trim | None:
    """The trimmed sub-problem of a zero-padded convolution with geometry ``g``, or None
    when running ``g`` as it is costs about as much (the ordinary case)."""
    normal = all((o > 1 or s == 1) and (k > 1 or d == 1) for o, s, k, d in zip(g.out, g.stride, g.kernel, g.dilation))
    if normal and geometry.prod(g.padded) <= TUNING.conv_trim_ratio * geometry.prod(g.in_size) + TUNING.conv_trim_slack:
        return None  # padding near the input's size: memory follows the input (checked in O(nd))
    dims = [_dim(n, k, s, d, lo, o) for n, k, s, d, (lo, _), o in zip(*_fields(g), strict=True)]
    if any(dim is None for dim in dims):
        return Trim(empty=True)
    in_s, tap_s, out_s, pads = zip(*dims, strict=True)
    stride = tuple(1 if o.stop - o.start == 1 else s for o, s in zip(out_s, g.stride, strict=True))
    dilation = tuple(1 if t.stop - t.start == 1 else d for t, d in zip(tap_s, g.dilation, strict=True))
    sub = geometry.prod([p[0] + c.stop - c.start + p[1] for c, p in zip(in_s, pads, strict=True)])
    if (
        geometry.prod(g.padded) <= TUNING.conv_trim_ratio * sub + TUNING.conv_trim_slack
        and stride == g.stride
        and dilation == g.dilation
    ):
        return None
    return Trim(False, in_s, tap_s, out_s, pads, stride, dilation)


def _fields(g: Geometry) -> tuple[Any, ...]:
    return g.in_size, g.kernel, g.stride, g.dilation, g.pads, g.out
