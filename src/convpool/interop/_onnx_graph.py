"""Building blocks of the ONNX exporter: a small graph builder and the window ops
every pooling layer is written with.

Shapes are static except the batch axis, so every window is known when the graph is
written: ``ceil_mode`` and the per-window divisors of average pooling become explicit
padding and a constant, never attributes whose meaning differs between PyTorch,
the ONNX specification and its runtimes.  Only the ``onnx`` package is used.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import geometry
from ..geometry import Pairs
from ..windows import valid_counts

# convpool's border-padding modes as ONNX ``Pad`` modes
PAD_MODES = {"zeros": "constant", "constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("ONNX export and import need the onnx package: pip install onnx") from exc
    return onnx


class ExportError(TypeError):
    """A layer that has no exact ONNX form (the message names the layer and says why)."""


class Graph:
    """Nodes and initializers of one ONNX graph, written layer by layer.

    ``prefix`` is the current layer's name in the model (``"3"``, ``"features.0"``):
    node and tensor names start with it, and :meth:`param` names initializers by the
    layer's state_dict keys (``"3.weight"``), as ``torch.onnx.export`` does.
    """

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.prefix = ""
        self._used: set[str] = set()
        self._count = itertools.count()

    def name(self, hint: str) -> str:
        """A fresh tensor or node name under the current layer's prefix."""
        base = f"{self.prefix}/{hint}" if self.prefix else hint
        name = base
        while name in self._used:
            name = f"{base}_{next(self._count)}"
        self._used.add(name)
        return name

    def op(self, op_type: str, inputs: Sequence[str], outputs: int = 1, **attrs: Any) -> Any:
        """Append a node; returns its output name (a list of names for ``outputs > 1``)."""
        onnx = _onnx()
        outs = [self.name(f"{op_type}_out{i}" if outputs > 1 else op_type) for i in range(outputs)]
        node = onnx.helper.make_node(op_type, list(inputs), outs, name=self.name(f"{op_type}_node"), **attrs)
        self.nodes.append(node)
        return outs if outputs > 1 else outs[0]

    def const(self, value: Any, hint: str = "const", dtype: Any = np.float32) -> str:
        """A constant tensor (an initializer with a fresh name)."""
        onnx = _onnx()
        name = self.name(hint)
        self.initializers.append(onnx.numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def ints(self, values: Sequence[int], hint: str = "ints") -> str:
        return self.const(np.asarray(list(values), dtype=np.int64), hint, np.int64)

    def param(self, key: str, value: np.ndarray) -> str:
        """The array of state_dict entry ``key`` (float32), named by the key."""
        onnx = _onnx()
        if key in self._used:
            raise ValueError(f"initializer {key!r} written twice")
        self._used.add(key)
        self.initializers.append(onnx.numpy_helper.from_array(np.asarray(value, dtype=np.float32), key))
        return key

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name


# --- geometry --------------------------------------------------------------------------


def pads_attr(pairs: Pairs) -> list[int]:
    """ONNX's ``pads``: every begin, then every end."""
    return [lo for lo, _ in pairs] + [hi for _, hi in pairs]


def window_out(
    in_size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    pairs: Pairs,
    dilation: Sequence[int],
    ceil_mode: bool,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Output size (convpool's, i.e. PyTorch's rule) and the high-side room ``extra``
    that its last ``ceil_mode`` windows hang past the padding."""
    out = geometry.output_size(in_size, kernel, stride, pairs, dilation, ceil_mode)
    extra = tuple(
        max(0, (o - 1) * s + d * (k - 1) + 1 - (n + lo + hi))
        for n, k, s, d, o, (lo, hi) in zip(in_size, kernel, stride, dilation, out, pairs, strict=True)
    )
    return out, extra


def pad(g: Graph, x: str, pairs: Pairs, mode: str = "zeros", value: float = 0.0) -> str:
    """``Pad`` of the spatial axes (``pairs`` per spatial dim, non-negative); nothing if zero."""
    if not any(lo or hi for lo, hi in pairs):
        return x
    onnx_mode = PAD_MODES[mode]
    full = ((0, 0), (0, 0), *pairs)
    inputs = [x, g.ints(pads_attr(full), "pads")]
    if onnx_mode == "constant" and value != 0.0:
        inputs.append(g.const(value, "pad_value"))
    return g.op("Pad", inputs, mode=onnx_mode)


def _fits(pairs: Pairs, kernel: Sequence[int]) -> bool:
    """onnxruntime's pools take a pad only when it is smaller than the (undilated) kernel."""
    return all(lo < k and hi < k for (lo, hi), k in zip(pairs, kernel, strict=True))


def max_pool(
    g: Graph,
    x: str,
    in_size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    pairs: Pairs,
    dilation: Sequence[int],
    ceil_mode: bool,
    padded: bool = False,
) -> str:
    """PyTorch's max pooling as ``MaxPool`` with ``ceil_mode=0``: the last ceil_mode
    windows become explicit high-side padding (ignored by the max, as PyTorch's
    overhang), so the output size is the same under every ONNX version's rule.  A pad
    onnxruntime refuses (not smaller than the kernel) becomes a ``Pad`` with -inf.
    ``padded``: ``x`` already holds the padding ``pairs`` (a border padding mode)."""
    _, extra = window_out(in_size, kernel, stride, pairs, dilation, ceil_mode)
    full = _op_pads(pairs, extra, padded)
    attrs: dict[str, Any] = {"kernel_shape": list(kernel), "strides": list(stride), "dilations": list(dilation)}
    if not _fits(full, kernel):
        x = pad(g, x, full, "constant", -np.inf)
        full = tuple((0, 0) for _ in full)
    return g.op("MaxPool", [x], pads=pads_attr(full), **attrs)


def _op_pads(pairs: Pairs, extra: Sequence[int], padded: bool) -> Pairs:
    """The pads a pooling operator adds: the layer's (unless ``x`` holds them) and the
    ceil_mode overhang."""
    return tuple((0 if padded else lo, (0 if padded else hi) + e) for (lo, hi), e in zip(pairs, extra, strict=True))


def sum_pool(
    g: Graph,
    x: str,
    in_size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    pairs: Pairs,
    ceil_mode: bool,
    divisor: str | int = "pad",
    padded: bool = False,
) -> str:
    """Window sums divided by ``divisor``: ``'pad'`` (the window's elements on the padded
    input: ``count_include_pad=True``), ``'real'`` (on the input only), ``'one'`` (plain
    sums) or an int (``divisor_override``).  Elements a ``ceil_mode`` window hangs past
    the padding never count (PyTorch's rule).  ``padded``: ``x`` already holds the
    padding ``pairs`` (a border padding mode, whose values count as the input's).

    One ``AveragePool`` when its own divisor is already right; otherwise
    ``AveragePool(count_include_pad=1)`` over explicitly padded windows (every window
    whole, divisor ``prod(kernel)``) times a constant ``prod(kernel) / divisor`` per
    output position."""
    nd = len(kernel)
    ones = (1,) * nd
    out, extra = window_out(in_size, kernel, stride, pairs, ones, ceil_mode)
    full = _op_pads(pairs, extra, padded)
    attrs: dict[str, Any] = {"kernel_shape": list(kernel), "strides": list(stride)}
    if not any(extra) and divisor in ("pad", "real") and _fits(full, kernel):
        include = divisor == "pad" or padded
        return g.op("AveragePool", [x], pads=pads_attr(full), count_include_pad=int(include), **attrs)
    if not _fits(full, kernel):
        x = pad(g, x, full)
        full = tuple((0, 0) for _ in full)
    y = g.op("AveragePool", [x], pads=pads_attr(full), count_include_pad=1, **attrs)
    k = float(geometry.prod(kernel))
    if divisor == "one":
        scale: Any = np.float32(k)
    elif isinstance(divisor, int):
        scale = np.float32(k / divisor)
    else:
        real = divisor == "real" and not padded
        lo = [a if real else 0 for a, _ in pairs]
        hi = [n + a + (0 if real else b) for n, (a, b) in zip(in_size, pairs, strict=True)]
        counts = valid_counts(kernel, stride, ones, out, lo, hi).astype(np.float64)
        scale = (k / counts).astype(np.float32)[None, None]
        if np.all(scale == 1):
            return y
    return g.op("Mul", [y, g.const(scale, "divisor")])


def window_counts(in_size: Sequence[int], kernel: Sequence[int], stride: Sequence[int], pairs: Pairs) -> np.ndarray:
    """Per output position, the window's elements on the input (padding excluded)."""
    ones = (1,) * len(kernel)
    out, _ = window_out(in_size, kernel, stride, pairs, ones, False)
    lo = [a for a, _ in pairs]
    hi = [n + a for n, (a, _) in zip(in_size, pairs, strict=True)]
    return valid_counts(kernel, stride, ones, out, lo, hi)


def windows(
    g: Graph,
    x: str,
    in_size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    pairs: Pairs,
    dilation: Sequence[int],
    *,
    ceil_mode: bool = False,
    mode: str | None = None,
    fill: float = 0.0,
) -> tuple[str, tuple[int, ...]]:
    """Every window as a new axis: ``(N, C, *in) -> (N, C, K, *out)``, ``K = prod(kernel)``
    in scan order.  The padding ``pairs`` holds ``fill`` (or, with a border ``mode``,
    the border's values); a ``ceil_mode`` overhang always holds ``fill``.

    convpool's window view written with standard operators: one strided ``Slice`` of
    the padded input per kernel offset, stacked with ``Concat``.  The exact form of
    every window reduction ONNX has no operator for (median, log-mean-exp, SoftPool,
    max-plus convolution)."""
    out, extra = window_out(in_size, kernel, stride, pairs, dilation, ceil_mode)
    if mode is not None:
        xp = pad(g, pad(g, x, pairs, mode), tuple((0, e) for e in extra), "constant", fill)
    else:
        xp = pad(g, x, _op_pads(pairs, extra, False), "constant", fill)
    nd = len(kernel)
    axes = g.ints(range(2, 2 + nd), "axes")
    steps = g.ints(stride, "steps")
    parts = []
    for offset in itertools.product(*(range(k) for k in kernel)):
        starts = [o * d for o, d in zip(offset, dilation, strict=True)]
        ends = [a + (n - 1) * s + 1 for a, n, s in zip(starts, out, stride, strict=True)]
        piece = g.op("Slice", [xp, g.ints(starts, "starts"), g.ints(ends, "ends"), axes, steps])
        parts.append(g.op("Unsqueeze", [piece, g.ints([2], "axis")]))
    stacked = parts[0] if len(parts) == 1 else g.op("Concat", parts, axis=2)
    return stacked, out


def adaptive(g: Graph, x: str, in_size: Sequence[int], out_size: Sequence[int], reduce: str) -> str:
    """Adaptive ``'max'`` or ``'avg'`` pooling: PyTorch's bins ``[floor(i*n/o),
    ceil((i+1)*n/o))``.  ``GlobalMaxPool``/``GlobalAveragePool`` for one bin,
    ``MaxPool``/``AveragePool`` when every size divides, else per dim one ``Slice`` and
    ``ReduceMax``/``ReduceMean`` per bin, concatenated (the bins are products of
    intervals, so reducing one dim at a time is exact)."""
    nd = len(in_size)
    if all(o == 1 for o in out_size):
        return g.op("GlobalMaxPool" if reduce == "max" else "GlobalAveragePool", [x])
    if all(n % o == 0 for n, o in zip(in_size, out_size, strict=True)):
        k = [n // o for n, o in zip(in_size, out_size, strict=True)]
        if reduce == "max":
            return g.op("MaxPool", [x], kernel_shape=k, strides=k)
        return g.op("AveragePool", [x], kernel_shape=k, strides=k)
    y = x
    for d in range(nd):
        n, o = in_size[d], out_size[d]
        if n == o:
            continue
        axis = g.ints([2 + d], "axis")
        bins = []
        for i in range(o):
            lo, hi = (i * n) // o, -((-(i + 1) * n) // o)
            piece = g.op("Slice", [y, g.ints([lo], "start"), g.ints([hi], "end"), axis])
            bins.append(g.op("ReduceMax" if reduce == "max" else "ReduceMean", [piece, axis], keepdims=1))
        y = bins[0] if len(bins) == 1 else g.op("Concat", bins, axis=2 + d)
    return y


def reshape(g: Graph, x: str, shape: Sequence[int]) -> str:
    """``Reshape`` to ``(N, *shape)``: the batch axis kept whatever its size (0 copies it)."""
    return g.op("Reshape", [x, g.ints([0, *shape], "shape")])
