"""Implementation "direct-wide" of the conv table: float32 convolution on explicit SIMD
vectors over the "wide" layout (every image padded and laid out channel by channel,
each (channel, tap) pair a shifted run), any stride (the input split into its stride
phases), dense or grouped.  The drivers are in :mod:`.conv_direct`, the kernels in
:mod:`.direct`."""

from __future__ import annotations

import numpy as np

from ... import geometry
from ..numpy.conv import ConvCtx
from ..tables import ConvProblem
from . import conv_direct
from . import kernels as _kernels


def direct_kind(p: ConvProblem) -> str | None:
    """:func:`.conv_direct.kind` of ``p``, worked out once for both SIMD rows."""
    if "direct" not in p.memo:
        p.memo["direct"] = conv_direct.kind(p.x, p.g, p.cg, p.groups)
    kind: str | None = p.memo["direct"]
    return kind


def why_not(p: ConvProblem) -> str | None:
    if direct_kind(p) == "wide":
        return None
    return reason(p)


def reason(p: ConvProblem) -> str:
    """Why the SIMD kernels (wide or stencil) decline ``p``, in words."""
    if not _kernels.DIRECT:
        return "the SIMD kernels are off (CONVPOOL_NO_DIRECT, or no llvmlite)"
    if p.x.dtype != np.float32:
        return f"float32 only, not {p.x.dtype}"
    if geometry.prod(p.g.kernel) == 1:
        return "a 1x1 window reads its input in place (pointwise)"
    if not conv_direct.wide_fits(p.x.shape[0], p.g):
        return "strides large against the input: the phase layout would be mostly overhead"
    if p.cg == 1 and p.groups > 1:
        return "depthwise: the stencil's case" if all(s == 1 for s in p.g.stride) else "strided depthwise"
    return "declined by conv_direct.kind on this CPU"


FUSES_BIAS = True  # the kernel's sums start from p.bias


def forward(p: ConvProblem) -> tuple[np.ndarray, ConvCtx]:
    return conv_direct.wide_forward(p.x, p.weight, p.g, p.groups, p.mode, False, p.bias)


def backward(dy: np.ndarray, ctx: ConvCtx, input_grad: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    return conv_direct.wide_backward(dy, ctx, input_grad)
