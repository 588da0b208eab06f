"""ONNX forms of the layers ONNX has no operator for, each an exact composition of
standard operators:

* min pooling: ``-MaxPool(-x)``;
* median pooling: the windows (:func:`._onnx_graph.windows`), sorted by ``TopK``, the
  element of rank ``(valid - 1) // 2`` picked by a constant mask (``Where``,
  ``ReduceSum``): padding holds +inf, which sorts last, as in convpool;
* max-plus / min-plus convolution: the windows plus the structuring element
  (``Add``), ``ReduceMax`` / ``ReduceMin`` over each output channel's group;
* GeM: ``Max(x, eps)`` -> ``Pow(p)`` -> ``AveragePool`` -> ``Pow(1/p)``;
* log-mean-exp: the windows less their ``ReduceMax``, ``Exp``, ``ReduceSum``, ``Log``,
  as convpool computes it (no overflow at large ``beta``);
* mixed / gated pooling: ``MaxPool`` and ``AveragePool`` blended by ``alpha`` (clipped
  to [0, 1]) or by ``Sigmoid`` of a depthwise ``Conv``;
* SoftPool: ``Softmax`` over each window, times the window, summed;
* stochastic pooling (its inference form, the expectation): window sums of ``x*x``
  over window sums of ``x``, 0 where the sum is 0;
* BlurPool / MaxBlurPool: ``Pad`` and a depthwise ``Conv`` with the fixed binomial
  filter (after a stride-1 ``MaxPool``);
* spatial pyramid pooling: adaptive pools, ``Flatten``, ``Concat``.

Learned scalars (GeM's ``p``, LSE's ``beta``, mixed pooling's ``alpha``) are
initializers named by their state_dict keys, as weights are.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import geometry
from ..functional.published_pools import binomial_filter
from ..windows import valid_counts
from ._onnx_graph import ExportError, Graph, adaptive, max_pool, pad, reshape, sum_pool, window_counts, windows

Shape = tuple[int, ...]


def _scalar(g: Graph, m: Any, name: str, value: Any) -> str:
    """A learned scalar (an initializer keyed as in the state_dict) or a fixed one."""
    if hasattr(value, "data"):  # a Parameter
        return g.param(g.key(name), value.data)
    return g.const(float(value), name)


def emit_min_pool(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    check_no_indices(m)
    padded = m.padding_mode is not None
    if padded:
        x = pad(g, x, m.padding, m.padding_mode)
    y = max_pool(g, g.op("Neg", [x]), si[1:], m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, padded)
    return g.op("Neg", [y])


def check_no_indices(m: Any) -> None:
    """A TypeError for a layer that returns (values, indices)."""
    if getattr(m, "return_indices", False):
        raise ExportError(
            f"{m!r}: return_indices=True makes the layer return (values, indices), which a Sequential chain "
            "passes on as a tuple; export the model without return_indices"
        )


def emit_median_pool(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    check_no_indices(m)
    in_size, nd = si[1:], m.nd
    w, out = windows(
        g,
        x,
        in_size,
        m.kernel_size,
        m.stride,
        m.padding,
        m.dilation,
        ceil_mode=m.ceil_mode,
        mode=m.padding_mode,
        fill=np.inf,
    )
    k = geometry.prod(m.kernel_size)
    border = m.padding_mode is not None
    lo = [0 if border else a for a, _ in m.padding]
    hi = [n + a + (b if border else 0) for n, (a, b) in zip(in_size, m.padding, strict=True)]
    valid = valid_counts(m.kernel_size, m.stride, m.dilation, out, lo, hi)
    rank = (valid - 1) // 2
    mask = (np.arange(k).reshape((k,) + (1,) * nd) == rank[None])[None, None]
    ranked = g.op("TopK", [w, g.ints([k], "k")], outputs=2, axis=2, largest=0, sorted=1)[0]
    picked = g.op("Where", [g.const(mask, "rank_mask", np.bool_), ranked, g.const(0.0, "zero")])
    return g.op("ReduceSum", [picked, g.ints([2], "axis")], keepdims=0)


def emit_maxplus(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    nd, groups = m.nd, m.groups
    pairs = geometry.resolve_padding(m.padding, nd, si[1:], m.kernel_size, m.stride, m.dilation)
    is_max = m.reduction == "max"
    w, out = windows(
        g,
        x,
        si[1:],
        m.kernel_size,
        m.stride,
        pairs,
        m.dilation,
        mode=m.padding_mode,
        fill=-np.inf if is_max else np.inf,
    )
    k = geometry.prod(m.kernel_size)
    cg, og = m.in_channels // groups, m.out_channels // groups
    w = reshape(g, w, (groups, 1, cg * k, *out))
    weight = g.param(g.key("weight"), m.weight.data)
    weight = g.op("Reshape", [weight, g.ints((1, groups, og, cg * k) + (1,) * nd, "shape")])
    summed = g.op("Add", [w, weight])
    y = g.op("ReduceMax" if is_max else "ReduceMin", [summed, g.ints([3], "axis")], keepdims=0)
    y = reshape(g, y, (m.out_channels, *out))
    if m.bias is not None:
        bias = g.param(g.key("bias"), m.bias.data)
        y = g.op("Add", [y, g.op("Reshape", [bias, g.ints((m.out_channels,) + (1,) * nd, "shape")])])
    return y


def emit_gem(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    p = _scalar(g, m, "p", m.p)
    u = g.op("Pow", [g.op("Max", [x, g.const(m.eps, "eps")]), p])
    if m.kernel_size is None:
        mean = g.op("GlobalAveragePool", [u])
    else:
        mean = sum_pool(g, u, si[1:], m.kernel_size, m.stride, m.padding, False, "real")
    return g.op("Pow", [mean, g.op("Reciprocal", [p])])


def emit_lse(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    beta = _scalar(g, m, "beta", m.beta)
    ones = (1,) * m.nd
    w, out = windows(g, x, si[1:], m.kernel_size, m.stride, m.padding, ones, fill=-np.inf)
    axis = g.ints([2], "axis")
    top = g.op("ReduceMax", [w, axis], keepdims=1)
    e = g.op("Exp", [g.op("Mul", [g.op("Sub", [w, top]), beta])])
    count = window_counts(si[1:], m.kernel_size, m.stride, m.padding).astype(np.float32)[None, None]
    mean = g.op("Div", [g.op("ReduceSum", [e, axis], keepdims=0), g.const(count, "count")])
    y = g.op("Div", [g.op("Log", [mean]), beta])
    return g.op("Add", [g.op("Squeeze", [top, axis]), y])


def _blend(g: Graph, weight: str, mx: str, av: str) -> str:
    """``weight * mx + (1 - weight) * av``."""
    rest = g.op("Sub", [g.const(1.0, "one"), weight])
    return g.op("Add", [g.op("Mul", [weight, mx]), g.op("Mul", [rest, av])])


def _max_and_avg(g: Graph, m: Any, x: str, si: Shape) -> tuple[str, str]:
    ones = (1,) * m.nd
    mx = max_pool(g, x, si[1:], m.kernel_size, m.stride, m.padding, ones, False)
    av = sum_pool(g, x, si[1:], m.kernel_size, m.stride, m.padding, False, "real")
    return mx, av


def emit_mixed(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    alpha = _scalar(g, m, "alpha", m.alpha)
    if hasattr(m.alpha, "data"):  # a learned alpha is clipped to [0, 1] when used
        alpha = g.op("Clip", [alpha, g.const(0.0, "zero"), g.const(1.0, "one")])
    mx, av = _max_and_avg(g, m, x, si)
    return _blend(g, alpha, mx, av)


def emit_gated(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    c = m.in_channels
    weight = g.param(g.key("weight"), m.weight.data)
    weight = g.op("Reshape", [weight, g.ints((c, 1, *m.kernel_size), "shape")])
    bias = g.param(g.key("bias"), m.bias.data)
    pads = [lo for lo, _ in m.padding] + [hi for _, hi in m.padding]
    conv = g.op("Conv", [x, weight, bias], kernel_shape=list(m.kernel_size), strides=list(m.stride), pads=pads, group=c)
    mx, av = _max_and_avg(g, m, x, si)
    return _blend(g, g.op("Sigmoid", [conv]), mx, av)


def emit_soft_pool(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    nd = m.nd
    w, _ = windows(g, x, si[1:], m.kernel_size, m.stride, ((0, 0),) * nd, (1,) * nd)
    weighted = g.op("Mul", [g.op("Softmax", [w], axis=2), w])
    return g.op("ReduceSum", [weighted, g.ints([2], "axis")], keepdims=0)


def emit_stochastic(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    """The inference form (what ``.eval()`` computes): ``sum(x**2) / sum(x)`` per window."""
    nd = m.nd
    zero = ((0, 0),) * nd
    s1 = sum_pool(g, x, si[1:], m.kernel_size, m.stride, zero, False, "one")
    s2 = sum_pool(g, g.op("Mul", [x, x]), si[1:], m.kernel_size, m.stride, zero, False, "one")
    positive = g.op("Greater", [s1, g.const(0.0, "zero")])
    return g.op("Where", [positive, g.op("Div", [s2, s1]), g.const(0.0, "zero")])


def _blur(g: Graph, x: str, nd: int, channels: int, filt_size: int, stride: int, pad_mode: str) -> str:
    pairs = (((filt_size - 1) // 2, filt_size // 2),) * nd
    xp = pad(g, x, pairs, pad_mode)
    filt = binomial_filter(filt_size, nd, np.float64)
    weight = np.ascontiguousarray(np.broadcast_to(filt, (channels, 1, *filt.shape)))
    w = g.const(weight, "binomial_filter")
    return g.op("Conv", [xp, w], kernel_shape=[filt_size] * nd, strides=[stride] * nd, group=channels)


def emit_blur(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    return _blur(g, x, m.nd, m.channels, m.filt_size, m.stride, m.pad_mode)


def emit_max_blur(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    nd = m.nd
    ones = (1,) * nd
    mx = max_pool(g, x, si[1:], m.kernel_size, ones, ((0, 0),) * nd, ones, False)
    return _blur(g, mx, nd, m.channels, m.filt_size, m.stride, m.pad_mode)


def emit_spp(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    parts = []
    for level in m.levels:
        pooled = adaptive(g, x, si[1:], (level,) * m.nd, m.mode)
        parts.append(g.op("Flatten", [pooled], axis=1))
    return parts[0] if len(parts) == 1 else g.op("Concat", parts, axis=1)


def refuse_fractional(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    raise ExportError(
        f"{m!r} has no exact ONNX form: its windows start at pseudo-random offsets drawn per call (or fixed per "
        "(N, C) plane by _random_samples), and no ONNX pooling operator takes per-plane window starts"
    )


def refuse_unpool(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    raise ExportError(
        f"{m!r} cannot be exported in a chain: max unpooling needs the indices of a MaxPool(return_indices=True), "
        "and a Sequential chain passes only one array from layer to layer"
    )
