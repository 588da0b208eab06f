"""ONNX forms of the layers that have an ONNX operator: convolution, transposed
convolution, max / average / Lp / adaptive pooling, linear, activations, flatten,
batch norm, dropout, padding, upsampling, pixel shuffle, fold and unfold.

Each ``emit_*`` writes one layer into a :class:`~._onnx_graph.Graph` and returns its
output's name; ``si`` and ``so`` are the layer's input and output shapes without the
batch axis.  Where PyTorch's semantics and the ONNX operator's differ the layer is
written so that the graph computes PyTorch's (convpool's) result on every runtime
(``ceil_mode`` windows, average divisors, ``Resize`` coordinates: see
:mod:`._onnx_graph`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import geometry
from ._onnx_compose import check_no_indices
from ._onnx_graph import (
    Graph,
    adaptive,
    max_pool,
    pad,
    pads_attr,
    reshape,
    sum_pool,
    window_out,
    windows,
)

Shape = tuple[int, ...]


def _zeros(nd: int) -> geometry.Pairs:
    return ((0, 0),) * nd


def _bias(g: Graph, m: Any) -> list[str]:
    return [] if m.bias is None else [g.param(g.key("bias"), m.bias.data)]


def emit_conv(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    pairs = geometry.resolve_padding(m.padding, m.nd, si[1:], m.kernel_size, m.stride, m.dilation)
    if m.padding_mode not in ("zeros", "constant"):
        x = pad(g, x, pairs, m.padding_mode)
        pairs = _zeros(m.nd)
    w = g.param(g.key("weight"), m.weight.data)
    return g.op(
        "Conv",
        [x, w, *_bias(g, m)],
        kernel_shape=list(m.kernel_size),
        strides=list(m.stride),
        pads=pads_attr(pairs),
        dilations=list(m.dilation),
        group=m.groups,
    )


def emit_conv_transpose(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    """``ConvTranspose`` with ``output_padding`` written as less cropping at the high end
    (``pads = [p, p - output_padding]``): onnxruntime takes no ``output_padding`` of
    ``stride`` or more, which PyTorch allows with a dilation.  Where the output padding
    exceeds ``p`` the output grows past the transposed convolution's reach: zeros there
    (a ``Pad``), then the bias."""
    nd = m.nd
    w = g.param(g.key("weight"), m.weight.data)
    short = [max(op - p, 0) for p, op in zip(m.padding, m.output_padding, strict=True)]
    ends = [max(p - op, 0) for p, op in zip(m.padding, m.output_padding, strict=True)]
    attrs: dict[str, Any] = {
        "kernel_shape": list(m.kernel_size),
        "strides": list(m.stride),
        "dilations": list(m.dilation),
    }
    if not any(short):
        return g.op("ConvTranspose", [x, w, *_bias(g, m)], pads=list(m.padding) + ends, group=m.groups, **attrs)
    y = g.op("ConvTranspose", [x, w], pads=list(m.padding) + ends, group=m.groups, **attrs)
    y = pad(g, y, tuple((0, e) for e in short))
    if m.bias is None:
        return y
    bias = g.op("Reshape", [_bias(g, m)[0], g.ints((m.out_channels,) + (1,) * nd, "shape")])
    return g.op("Add", [y, bias])


def emit_max_pool(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    check_no_indices(m)
    padded = m.padding_mode is not None
    if padded:
        x = pad(g, x, m.padding, m.padding_mode)
    return max_pool(g, x, si[1:], m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, padded)


def emit_avg_pool(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    divisor: str | int = "pad" if m.count_include_pad else "real"
    padded = m.padding_mode is not None
    if padded:  # the border holds real values: it always counts
        x = pad(g, x, m.padding, m.padding_mode)
    if m.divisor_override is not None:
        divisor = int(m.divisor_override)
    return sum_pool(g, x, si[1:], m.kernel_size, m.stride, m.padding, m.ceil_mode, divisor, padded)


def emit_lp_pool(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    """``LpPool`` for an even whole ``p`` without ceil_mode overhang (where ``|x|**p`` is
    ``x**p``, convpool's and PyTorch's formula); else ``Pow``, window sums, ``Pow``.
    ``p=inf``: ``MaxPool`` of ``Abs``."""
    nd, p = m.nd, float(m.norm_type)
    ones = (1,) * nd
    if p == math.inf:
        return max_pool(g, g.op("Abs", [x]), si[1:], m.kernel_size, m.stride, _zeros(nd), ones, m.ceil_mode)
    _, extra = window_out(si[1:], m.kernel_size, m.stride, _zeros(nd), ones, m.ceil_mode)
    if p.is_integer() and p % 2 == 0 and not any(extra):
        return g.op("LpPool", [x], p=int(p), kernel_shape=list(m.kernel_size), strides=list(m.stride))
    powered = g.op("Pow", [x, g.const(p, "p")])
    s = sum_pool(g, powered, si[1:], m.kernel_size, m.stride, _zeros(nd), m.ceil_mode, "one")
    return g.op("Pow", [s, g.const(1.0 / p, "inv_p")])


def emit_adaptive_avg(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    return adaptive(g, x, si[1:], so[1:], "avg")


def emit_adaptive_max(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    check_no_indices(m)
    return adaptive(g, x, si[1:], so[1:], "max")


def emit_linear(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    w = g.param(g.key("weight"), m.weight.data)
    if len(si) == 1:  # (N, in): one Gemm, as torch.onnx writes it
        return g.op("Gemm", [x, w, *_bias(g, m)], transB=1)
    y = g.op("MatMul", [x, g.op("Transpose", [w], perm=[1, 0])])
    return g.op("Add", [y, *_bias(g, m)]) if m.bias is not None else y


def emit_activation(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    name = type(m).__name__
    if name == "LeakyReLU":
        return g.op("LeakyRelu", [x], alpha=float(m.negative_slope))
    return g.op({"ReLU": "Relu", "Tanh": "Tanh", "Sigmoid": "Sigmoid", "Identity": "Identity"}[name], [x])


def emit_flatten(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    r = len(si) + 1
    s, e = m.start_dim % r, m.end_dim % r
    if s == 1 and e == r - 1:
        return g.op("Flatten", [x], axis=1)
    if s == 0:  # the batch axis merges too
        return g.op("Reshape", [x, g.ints([-1, *so[e:]] if e < r - 1 else [-1], "shape")])
    return reshape(g, x, so)


def emit_dropout(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    """``Dropout`` in inference mode: the identity (what the model does after ``eval()``)."""
    return g.op("Dropout", [x, g.const(m.p, "ratio")])


def emit_batch_norm(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    c = m.num_features
    scale = g.param(g.key("weight"), m.weight.data) if m.weight is not None else g.const(np.ones(c), "scale")
    shift = g.param(g.key("bias"), m.bias.data) if m.bias is not None else g.const(np.zeros(c), "shift")
    mean = g.param(g.key("running_mean"), m.running_mean)
    var = g.param(g.key("running_var"), m.running_var)
    momentum = 0.9 if m.momentum is None else 1.0 - m.momentum  # ONNX weighs the running value
    return g.op("BatchNormalization", [x, scale, shift, mean, var], epsilon=float(m.eps), momentum=momentum)


def emit_padding(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    """The padding layers: ``Pad`` (constant, reflect, edge, wrap); negative padding
    crops with a ``Slice``, before the pad (constant, circular) or after it (reflect,
    replicate), in convpool's (PyTorch's) order."""
    nd, r = m.nd, len(si) + 1
    sides = [(m.padding[2 * i], m.padding[2 * i + 1]) for i in range(nd)][::-1]  # first padded dim first
    grow = tuple((max(lo, 0), max(hi, 0)) for lo, hi in sides)
    cut = tuple((max(-lo, 0), max(-hi, 0)) for lo, hi in sides)
    cut_first = m.mode in ("constant", "circular")

    def crop(t: str, sizes: tuple[int, ...]) -> str:
        if not any(a or b for a, b in cut):
            return t
        starts = [a for a, _ in cut]
        ends = [n - b for n, (_, b) in zip(sizes, cut, strict=True)]
        return g.op("Slice", [t, g.ints(starts, "starts"), g.ints(ends, "ends"), g.ints(range(r - nd, r), "axes")])

    def grow_pad(t: str) -> str:
        if not any(a or b for a, b in grow):
            return t
        full = ((0, 0),) * (r - nd) + grow
        inputs = [t, g.ints(pads_attr(full), "pads")]
        if m.mode == "constant" and float(m.value) != 0.0:
            inputs.append(g.const(float(m.value), "value"))
        return g.op("Pad", inputs, mode={"replicate": "edge", "circular": "wrap"}.get(m.mode, m.mode))

    sizes = si[len(si) - nd :]
    if cut_first:
        return grow_pad(crop(x, sizes))
    return crop(grow_pad(x), tuple(n + a + b for n, (a, b) in zip(sizes, grow, strict=True)))


def emit_pixel_shuffle(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    r = m.upscale_factor
    if len(si) == 3:
        return g.op("DepthToSpace", [x], blocksize=r, mode="CRD")  # CRD is PyTorch's channel order
    *lead, c, h, w = si
    t = reshape(g, x, (*lead, c // (r * r), r, r, h, w))
    k = len(lead) + 1  # with the batch axis
    perm = [*range(k), k, k + 3, k + 1, k + 4, k + 2]
    return reshape(g, g.op("Transpose", [t], perm=perm), so)


def emit_pixel_unshuffle(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    """``SpaceToDepth`` puts offset ``(i, j)`` before the channel; PixelUnshuffle after
    it: a ``Gather`` of the channels reorders them (none needed for one channel)."""
    r = m.downscale_factor
    if len(si) == 3:
        c = si[0]
        y = g.op("SpaceToDepth", [x], blocksize=r)
        if c == 1:
            return y
        perm = [(i * r + j) * c + ch for ch in range(c) for i in range(r) for j in range(r)]
        return g.op("Gather", [y, g.ints(perm, "channel_order")], axis=1)
    *lead, c, h, w = si
    t = reshape(g, x, (*lead, c, h // r, r, w // r, r))
    k = len(lead) + 1
    perm = [*range(k), k, k + 2, k + 4, k + 1, k + 3]
    return reshape(g, g.op("Transpose", [t], perm=perm), so)


def _fold_args(m: Any, nd: int) -> tuple[tuple[int, ...], ...]:
    return (
        geometry.ntuple(m.kernel_size, nd, "kernel_size"),
        geometry.ntuple(m.dilation, nd, "dilation"),
        geometry.ntuple(m.padding, nd, "padding", minimum=0),
        geometry.ntuple(m.stride, nd, "stride"),
    )


def emit_unfold(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    nd = len(si) - 1
    k, d, p, s = _fold_args(m, nd)
    stacked, out = windows(g, x, si[1:], k, s, tuple((v, v) for v in p), d)
    return reshape(g, stacked, so)


def emit_fold(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    """``Col2Im``, the ONNX operator for PyTorch's fold."""
    nd = len(so) - 1
    k, d, p, s = _fold_args(m, nd)
    return g.op(
        "Col2Im",
        [x, g.ints(so[1:], "image_shape"), g.ints(k, "block_shape")],
        dilations=list(d),
        pads=list(p) * 2,
        strides=list(s),
    )
