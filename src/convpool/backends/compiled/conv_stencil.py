"""Implementation "direct-stencil" of the conv table: float32 depthwise convolution with
stride 1 on explicit SIMD vectors, one (image, channel) plane per job, padding applied
in the kernel.  The drivers are in :mod:`.conv_direct`, the kernels in :mod:`.direct`.

A dense convolution of one image with a single input channel (a network's first layer
on a grey image: LeNet's 1 -> 32 at batch 1) is the depthwise one with C_out output
channels per input channel, and runs here too: each output plane is one stencil over the
input plane, where the wide layout would copy the input first.  Measured (Intel Xeon
under KVM, 1x28x28 -> 32, 3x3, one thread, wall us, stencil / wide): batch 1 forward
63 / 75, weight gradient 82 / 113 (numba for Haswell, AVX2 tile: 103 / 122, 114 / 140);
from batch 16 on the wide layout wins (batch 64 forward 2.7 / 2.1 ms, 4.4 / 3.7 AVX2)."""

from __future__ import annotations

import numpy as np

from ... import geometry
from ..numpy.conv import ConvCtx
from ..tables import ConvProblem
from . import conv_direct
from . import kernels as _kernels
from .conv_wide import direct_kind, reason


def single_channel(p: ConvProblem) -> bool:
    """A float32 stride-1 convolution of one image with one input channel (``groups`` 1,
    a real window) on the SIMD kernels: the depthwise stencil with multiplier C_out."""
    return (
        p.groups == 1
        and p.x.shape[0] == 1
        and p.x.shape[1] == 1
        and _kernels.DIRECT
        and p.x.dtype == np.float32
        and geometry.prod(p.g.kernel) > 1
        and all(s == 1 for s in p.g.stride)
    )


def why_not(p: ConvProblem) -> str | None:
    if direct_kind(p) == "stencil" or single_channel(p):
        return None
    if p.cg > 1 or p.groups == 1:
        return "not depthwise (nor one image of one input channel, stride 1)"
    return reason(p)


def forward(p: ConvProblem) -> tuple[np.ndarray, ConvCtx]:
    return conv_direct.stencil_forward(p.x, p.weight, p.g, p.groups, p.mode, False)


def backward(dy: np.ndarray, ctx: ConvCtx, input_grad: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    return conv_direct.stencil_backward(dy, ctx, input_grad)
