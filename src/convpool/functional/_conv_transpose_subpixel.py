"""A strided transposed convolution as ONE stride-1 convolution with ``prod(stride)``
times the output channels, then depth-to-space ("sub-pixel convolution").

Per dim with stride ``s > 1`` (and dilation 1): tap ``t`` lands on output phase ``R = t %
s`` at a shift ``a = t // s``: the full (uncropped) output is ``yfull[s*Q + R] = sum_t x[Q
- t // s] * w[t]`` over the taps with ``t % s == R``.  So every phase is a stride-1
convolution of ``x`` with a kernel of ``A + 1`` taps (``A = (k-1) // s``, taps ``A - t // s``
of phase ``R``, zero where a phase has fewer), and all phases are one convolution whose
output channel ``(c, R)`` is phase ``R`` of channel ``c``.  A dim with stride 1 keeps its
kernel (flipped) and dilation.  Only the outputs ``Q`` that the cropped ``y`` needs are
computed (``padding`` crops).

Depth-to-space puts phase ``R`` of ``Q`` at ``y[s*Q + R - padding]``: the columns of
windows of size ``stride`` at stride ``stride``, i.e. the compiled col2im without overlap
(on the NumPy backend a reshape and transpose).  The kernel taps that the zero-padding
of short phases adds are wasted work: :func:`waste` says how much
(``prod(s * (A+1)) / prod(k)``; none when the kernel is a multiple of the stride).

Implementation "subpixel" of the conv_transpose table (:mod:`convpool.backends.tables`).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .. import geometry
from ..backends.compiled import kernels as _kernels
from ..backends.tables import ConvTransposeProblem
from ..settings import TUNING
from ._conv_transpose_adjoint import as3
from ._conv_transpose_phases import conv_span
from .conv import conv_forward


def why_not(p: ConvTransposeProblem) -> str | None:
    if p.phases == 1:
        return "stride 1: one conv with the flipped kernel (phases)"
    if not applies(p.stride, p.dilation):
        return "a strided dim is dilated: the phases' kernels do not make one kernel"
    return None


def declines(p: ConvTransposeProblem) -> str | None:
    kernel = tuple(p.weight.shape[2:])
    if geometry.prod(kernel) < TUNING.transpose_min_overlap * p.phases:
        return "windows overlap little: W^T x + col2im was measured faster"
    if p.work < TUNING.transpose_min_work:
        return "a small problem: W^T x + col2im was measured faster"
    if (w := waste(kernel, p.stride, p.dilation)) > TUNING.transpose_max_waste:
        return f"the one conv would do {w:.2f}x the multiply-adds (kernel not a multiple of the stride)"
    return None


def forward(p: ConvTransposeProblem) -> np.ndarray | None:
    return transpose(p.x, p.weight, p.bias, p.y_shape, p.stride, p.padding, p.dilation, p.groups)


def applies(stride: tuple[int, ...], dilation: tuple[int, ...]) -> bool:
    """Strided in some dim, and every strided dim undilated."""
    return any(s > 1 for s in stride) and all(s == 1 or d == 1 for s, d in zip(stride, dilation, strict=True))


def _sub_kernel(k: int, s: int, d: int) -> tuple[int, int]:
    """A dim's kernel size and dilation in the phase convolution."""
    return (k, d) if s == 1 else ((k - 1) // s + 1, 1)


def waste(kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...]) -> float:
    """Multiply-adds of the one convolution over those of the transposed convolution."""
    taps = geometry.prod(tuple(s * _sub_kernel(k, s, d)[0] for k, s, d in zip(kernel, stride, dilation, strict=True)))
    return taps / geometry.prod(kernel)


def phase_weight(weight: np.ndarray, stride: tuple[int, ...], dilation: tuple[int, ...], groups: int) -> np.ndarray:
    """The phase convolution's weight ``(C_out * prod(stride), C_in/groups, *sub_kernel)``
    from the transposed convolution's ``(C_in, C_out/groups, *kernel)``: output channel
    ``c * prod(stride) + R`` (``R`` the phase, C order over dims) holds, at the sub-kernel
    position ``A - t // s`` (``k - 1 - t`` in a dim of stride 1), the tap ``t`` of phase ``R``."""
    c_in, cog = weight.shape[:2]
    kernel = weight.shape[2:]
    cg = c_in // groups
    wc = weight.reshape((groups, cg, cog) + kernel).swapaxes(1, 2).reshape((groups * cog, cg) + kernel)
    sub = tuple(_sub_kernel(k, s, d)[0] for k, s, d in zip(kernel, stride, dilation, strict=True))
    w = np.zeros((groups * cog,) + stride + (cg,) + sub, dtype=weight.dtype)
    for t in itertools.product(*(range(k) for k in kernel)):
        phase = tuple(tt % s for tt, s in zip(t, stride, strict=True))
        at = tuple(kk - 1 - tt // s for tt, s, kk in zip(t, stride, sub, strict=True))
        to: tuple[Any, ...] = (slice(None), *phase, slice(None), *at)
        tap: tuple[Any, ...] = (slice(None), slice(None), *t)
        w[to] = wc[tap]
    return w.reshape((groups * cog * geometry.prod(stride), cg) + sub)


def transpose(
    xb: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    y_shape: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
) -> np.ndarray | None:
    """``y`` (``y_shape``, batched) with the bias, or None where no window of the phase
    convolution reaches the input (``y`` is then the bias alone)."""
    n, c_out = xb.shape[0], y_shape[1]
    subs = [_sub_kernel(k, s, d) for k, s, d in zip(weight.shape[2:], stride, dilation, strict=True)]
    spans: list[slice] = []
    pads: list[tuple[int, int]] = []
    counts: list[int] = []
    lo: list[int] = []
    for size, (kc, dc), s, p, o in zip(xb.shape[2:], subs, stride, padding, y_shape[2:], strict=True):
        first, last = p // s, (p + o - 1) // s  # the outputs Q that y needs
        span = conv_span(size, dc * (kc - 1), first, last - first + 1)
        if span is None:
            return None
        spans.append(span[0])
        pads.append(span[1])
        counts.append(last - first + 1)
        lo.append(p - s * first)  # y[o] is phase (o + lo) % s of output (o + lo) // s
    w = phase_weight(weight.astype(xb.dtype, copy=False), stride, dilation, groups)
    dil = tuple(dc for _, dc in subs)
    read: tuple[Any, ...] = (Ellipsis, *spans)
    yc = conv_forward(xb[read], w, None, 1, tuple(pads), dil, groups, nd=len(stride))[0]
    return _depth_to_space(yc.reshape((n, c_out) + stride + tuple(counts)), stride, tuple(lo), y_shape, bias)


def _depth_to_space(
    yc: np.ndarray, stride: tuple[int, ...], lo: tuple[int, ...], y_shape: tuple[int, ...], bias: np.ndarray | None
) -> np.ndarray:
    """``y[n, c, s*Q + R - lo] = yc[n, c, *R, *Q] + bias[c]``: every element of ``y`` is one
    phase output (:func:`transpose` computes the outputs ``Q`` that ``y`` needs, output
    padding included)."""
    nd = len(stride)
    counts = yc.shape[2 + nd :]
    if _kernels.enabled() and _kernels.DIRECT and yc.dtype == np.float32:
        # one pass: each output row gathers its phases' rows (and the bias)
        y = np.empty(y_shape, dtype=yc.dtype)
        lead = (1,) * (3 - nd)
        p = y_shape[0] * y_shape[1]
        _kernels.from_phases(
            np.ascontiguousarray(yc).ravel(), lead + counts, as3(stride), as3(lo, 0),
            y.reshape((p,) + lead + y_shape[2:]), phase_major=False, bias=bias,
        )  # fmt: skip
        return y
    if _kernels.enabled() and yc.dtype in (np.float32, np.float64):
        # col2im adds the windows into y: start from the bias (no pass of its own)
        y = np.empty(y_shape, dtype=yc.dtype) if bias is not None else np.zeros(y_shape, dtype=yc.dtype)
        if bias is not None:
            y[...] = bias.astype(yc.dtype, copy=False).reshape((-1,) + (1,) * nd)
        plane = geometry.prod(counts)
        _kernels.col2im(
            np.ascontiguousarray(yc).ravel(), as3(stride), as3(stride), as3((1,) * nd), as3(lo, 0), as3(counts), 1,
            y_shape[1] * geometry.prod(stride) * plane, 0, plane, y.reshape(y_shape[:2] + (1,) * (3 - nd) + y_shape[2:]),
        )  # fmt: skip
        return y
    # (N, C, *R, *Q) -> (N, C, Q0, R0, Q1, R1, ...) -> (N, C, Q0*s0, ...), then crop (and pad)
    order = (0, 1, *itertools.chain.from_iterable((2 + nd + i, 2 + i) for i in range(nd)))
    full: np.ndarray = yc.transpose(order).reshape(
        yc.shape[:2] + tuple(q * s for q, s in zip(counts, stride, strict=True))
    )
    y = np.zeros(y_shape, dtype=yc.dtype)
    keep = tuple(min(o, f - a) for o, f, a in zip(y_shape[2:], full.shape[2:], lo, strict=True))
    into: tuple[Any, ...] = (Ellipsis, *(slice(0, k) for k in keep))
    part: tuple[Any, ...] = (Ellipsis, *(slice(a, a + k) for a, k in zip(lo, keep, strict=True)))
    y[into] = full[part]
    if bias is not None:
        y += bias.astype(yc.dtype, copy=False).reshape((-1,) + (1,) * nd)
    return y
