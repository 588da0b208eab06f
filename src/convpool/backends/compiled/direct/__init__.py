"""Direct (im2col-free) float32 convolution on explicit SIMD vectors (a package).

Modules: :mod:`.tile` (the register tile chosen for the CPU numba compiles for),
:mod:`.layout` (the wide layout: :class:`Wide`, phases, entries, store plans),
:mod:`.relayout` (the copies into and out of it), :mod:`.wide` (dense and grouped
convolution kernels and drivers), :mod:`.outer` (the weight gradient as outer products,
for ungrouped convs with enough entries) and :mod:`.depthwise` (the stride-1 depthwise
stencil).

The idea: pad every input plane and lay the whole batch out channel by channel,
``src[c, n * P + i]`` with ``P`` the padded plane size and ``i`` the flat index in
the padded plane.  With stride 1, output position ``i`` (in padded-plane
coordinates) reads input ``i + off[t]`` for kernel tap ``t``, where ``off[t]``
is one number per tap (``kd*dd*Hp*Wp + kh*dh*Wp + kw*dw``).  So every tap is a
shifted, contiguous run of the source, for 1-, 2- and 3-D alike and across
images, and the convolution is

    y[o, i] = sum over c, t of  w[o, c, t] * src[c, i + off[t]]

computed "wide": every ``i`` of the padded planes, positions that are not
outputs (the last ``k-1`` columns of a row, the rows past the output, the
room between images) are computed and never stored.  With stride 1 and zero
padding, neighbouring rows and images share their zeros (:func:`.layout.shared_plane`:
a row pitch of ``W + max(lo, hi)``, one set of zero rows between two images), which
halves those positions: 841 per 784 outputs of a 28x28 plane padded by 1, not 900.
The micro-kernel keeps a
block of sums in vector registers - output channels x positions, its shape chosen
for the CPU (:mod:`.tile`: 4 x 64 in 16 zmm registers with AVX-512, 4 x 24 in 12 ymm
with AVX2) - and streams the source once per (channel, tap) "entry" - no column
matrix, no matrix-product call.

Strided convolutions split each padded plane into its stride phases (the
elements ``r + s*m`` for each remainder ``r``): output ``m`` reads padded
``s*m + k*d``, which is phase ``k*d % s`` at ``m + k*d // s`` - again a shifted run,
of one phase row.  A 1x1 convolution needs no layout at all: it reads the input
where it lies (:func:`pointwise`).

The backward pass reuses the two kernels: the input gradient is the convolution of
the output gradient (padded by ``dilation * (k - 1)``) with the flipped, transposed
weights - for a strided conv, phase by phase (:func:`input_grad_strided`) - and the
weight gradient is the same shifted-run product reduced over positions instead of
channels (:func:`weight_grad`; :mod:`.outer` computes it with vectors over output
channels and reads dy in place where its layout is not shared).

Measured (``convpool bench``, ResNet-block case 32x64x56x56, 64->64, 3x3, forward
including the layout copy, AVX-512 tile): 334-365 GFLOP/s on 2 cores of an AMD Zen 5,
where NumPy's float32 matrix product reaches 247-253 GFLOP/s there; per-ISA figures:
``benchmarks/direct_vs_im2col.py``.
"""

from __future__ import annotations

from .depthwise import depthwise, depthwise_planes, depthwise_planes_grad, depthwise_weight_grad
from .layout import Wide, _entries, _store_plan, flat_offset, out_size, phase_plane, reach, shared_plane
from .relayout import from_phases, to_wide
from .tile import BLOCK_OC, BLOCK_Q, DW_CHUNK, DW_OC, DW_TAPS, LANES, TILE, tile_info
from .wide import (
    _conv_wide,
    _weight_grad_wide,
    conv_wide,
    convolve,
    grad_layout,
    input_grad_shared,
    input_grad_strided,
    pointwise,
    weight_grad,
    weight_grad_in_place,
    weight_grad_wide,
)

__all__ = [
    "BLOCK_OC",
    "BLOCK_Q",
    "DW_CHUNK",
    "DW_OC",
    "DW_TAPS",
    "LANES",
    "TILE",
    "Wide",
    "_conv_wide",
    "_entries",
    "_store_plan",
    "_weight_grad_wide",
    "conv_wide",
    "convolve",
    "depthwise",
    "depthwise_planes",
    "depthwise_planes_grad",
    "depthwise_weight_grad",
    "flat_offset",
    "from_phases",
    "grad_layout",
    "input_grad_shared",
    "input_grad_strided",
    "out_size",
    "phase_plane",
    "pointwise",
    "reach",
    "shared_plane",
    "tile_info",
    "to_wide",
    "weight_grad",
    "weight_grad_in_place",
    "weight_grad_wide",
]
