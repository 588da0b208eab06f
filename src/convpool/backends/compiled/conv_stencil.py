"""Implementation "direct-stencil" of the conv table: float32 depthwise convolution with
stride 1 on explicit SIMD vectors, one (image, channel) plane per job, padding applied
in the kernel.  The drivers are in :mod:`.conv_direct`, the kernels in :mod:`.direct`."""

from __future__ import annotations

import numpy as np

from ..numpy.conv import ConvCtx
from ..tables import ConvProblem
from . import conv_direct
from .conv_wide import direct_kind, reason


def why_not(p: ConvProblem) -> str | None:
    if direct_kind(p) == "stencil":
        return None
    if p.cg > 1 or p.groups == 1:
        return "not depthwise"
    return reason(p)


def forward(p: ConvProblem) -> tuple[np.ndarray, ConvCtx]:
    return conv_direct.stencil_forward(p.x, p.weight, p.g, p.groups, p.mode, False)


def backward(dy: np.ndarray, ctx: ConvCtx, input_grad: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    return conv_direct.stencil_backward(dy, ctx, input_grad)
