"""A transposed convolution as ``prod(stride)`` stride-1 convolutions, one per output
phase (the "sub-pixel" decomposition), each on convolution's fast forward pass.

Per dim, output ``o`` of a transposed convolution receives ``x[i] * w[t]`` for every
``stride*i + dilation*t = o + padding``.  Split the outputs by their phase ``r = o % stride``
(``o = stride*q + r``): a tap reaches phase ``r`` only when ``dilation*t = r + padding``
(mod stride), so the phase's taps are the progression ``t0, t0 + S, ...`` (``S = stride /
gcd(stride, dilation)``, ``J`` of them), and with ``D = dilation / gcd`` and ``c = (r +
padding - dilation*t0) / stride``::

    y[stride*q + r] = sum_j x[q + c - j*D] * w[t0 + j*S]

- a stride-1 convolution of ``x`` (dilation ``D``) with that sub-kernel flipped, ``x``
padded by ``(J-1)*D - c`` below (cropped where that is negative) and as much above as
the phase's ``ceil((out - r) / stride)`` outputs need.  In N-d a phase is one residue per
dim and its sub-kernel the product of the dims' tap sets; a phase no tap reaches is zero
(plus the bias).  The phases' outputs interleave into ``y`` (``y[..., r::stride] = ...``).

At stride 1 there is one phase: the whole transposed convolution is one convolution of
``x`` with the flipped kernel, straight into ``y``.

Implementation "phases" of the conv_transpose table (:mod:`convpool.backends.tables`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backends.tables import ConvTransposeProblem
from ..settings import TUNING
from ._conv_transpose_adjoint import flip_weight
from .conv import conv_forward


def why_not(p: ConvTransposeProblem) -> str | None:
    return None  # every geometry: dilation, groups, padding wider than the reach, k < s


def declines(p: ConvTransposeProblem) -> str | None:
    if p.phases == 1:
        return None
    if math.prod(p.weight.shape[2:]) < TUNING.transpose_min_overlap * p.phases:
        return "windows overlap little: W^T x + col2im was measured faster"
    if p.work < TUNING.transpose_min_work * p.phases:
        return "small phase convolutions: W^T x + col2im was measured faster"
    return None


def forward(p: ConvTransposeProblem) -> np.ndarray:
    return transpose(p.x, flip_weight(p.weight, p.groups), p.bias, p.y_shape, p.stride, p.padding, p.dilation, p.groups)


def conv_span(n: int, reach: int, first: int, count: int) -> tuple[slice, tuple[int, int]] | None:
    """The input span and zero padding of a stride-1 convolution over an input of size
    ``n`` whose output ``j`` (of ``count``) has its window start at input ``first + j -
    reach`` and span ``reach + 1``: padding ``reach - first`` below and what the last
    window needs above, the input cropped where either would be negative.  None when
    no window reaches the input."""
    lo = reach - first
    hi = count + reach - n - lo  # the padded input spans count + reach
    start, stop = max(0, -lo), n - max(0, -hi)
    if start >= stop:
        return None
    return slice(start, stop), (max(lo, 0), max(hi, 0))


@dataclass(frozen=True)
class DimPhase:
    """One residue of one spatial dim: its outputs (``out``, ``count`` of them) and - when
    a tap reaches them - the flipped weight's taps (``taps``), the input span read
    (``span``) with its zero padding (``pads``), and the sub-kernel's dilation."""

    out: slice
    count: int
    taps: slice | None = None
    span: slice | None = None
    pads: tuple[int, int] = (0, 0)
    dilation: int = 1


def dim_phases(n: int, k: int, s: int, p: int, d: int, out: int) -> list[DimPhase]:
    """The phases of one spatial dim with input size ``n``, kernel ``k``, stride ``s``,
    padding ``p``, dilation ``d`` and output size ``out`` (output_padding included);
    residues with no output are left out."""
    phases = []
    g = math.gcd(s, d)
    step, dil = s // g, d // g  # the tap step within a phase, the sub-kernel's dilation
    for r in range(min(s, out)):
        count = -(-(out - r) // s)
        zero = DimPhase(slice(r, None, s), count)
        t0 = next((t for t in range(min(k, step)) if (d * t - r - p) % s == 0), None)
        if t0 is None:  # no tap lands on this residue
            phases.append(zero)
            continue
        j = (k - 1 - t0) // step + 1  # taps t0, t0 + step, ... < k
        span = conv_span(n, (j - 1) * dil, (r + p - d * t0) // s, count)
        if span is None:  # the phase's windows miss the input
            phases.append(zero)
            continue
        f = k - 1 - t0 - (j - 1) * step  # the phase's first tap in the flipped kernel
        taps = slice(f, f + (j - 1) * step + 1, step)
        phases.append(DimPhase(slice(r, None, s), count, taps, span[0], span[1], dil))
    return phases


def transpose(
    xb: np.ndarray,
    wf: np.ndarray,
    bias: np.ndarray | None,
    y_shape: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
) -> np.ndarray:
    """``y`` (``y_shape``, batched) of the transposed convolution of ``xb``, bias included,
    given the flipped weight ``wf`` (convolution layout ``(C_out, C_in/groups, *kernel)``,
    every kernel flipped: :func:`._conv_transpose_adjoint.flip_weight`)."""
    nd = len(stride)
    kernel = wf.shape[2:]
    per_dim = [
        dim_phases(n, k, s, p, d, o)
        for n, k, s, p, d, o in zip(xb.shape[2:], kernel, stride, padding, dilation, y_shape[2:], strict=True)
    ]
    phases = list(itertools.product(*per_dim))
    y: np.ndarray | None = None if len(phases) == 1 else np.empty(y_shape, dtype=xb.dtype)
    for phase in phases:
        if any(ph.taps is None for ph in phase):
            y_sub = np.zeros((y_shape[0], y_shape[1]) + tuple(ph.count for ph in phase), dtype=xb.dtype)
            if bias is not None:
                y_sub += bias.astype(xb.dtype, copy=False).reshape((-1,) + (1,) * nd)
        else:
            span: tuple[Any, ...] = (Ellipsis, *(ph.span for ph in phase))
            taps: tuple[Any, ...] = (Ellipsis, *(ph.taps for ph in phase))
            x_sub, w_sub = xb[span], wf[taps]
            pads = tuple(ph.pads for ph in phase)
            dil = tuple(ph.dilation for ph in phase)
            y_sub = conv_forward(x_sub, w_sub, bias, 1, pads, dil, groups, nd=nd)[0]
        if y is None:  # one phase: it is the output
            return y_sub
        out: tuple[Any, ...] = (Ellipsis, *(ph.out for ph in phase))
        y[out] = y_sub
    assert y is not None
    return y
