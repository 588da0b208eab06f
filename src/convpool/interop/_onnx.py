"""ONNX export and import: ``to_onnx(model, input_shape, path)`` and ``from_onnx(path)``.

``to_onnx`` writes a convpool chain (a :class:`~convpool.nn.Sequential`, nested ones
included, or a single layer) as an ONNX graph with the ``onnx`` package's own API (no
PyTorch): one operator per layer where ONNX has one, an exact composition of standard
operators where it has none (min, median, GeM, log-mean-exp, mixed, gated, Soft,
stochastic, blur and pyramid pooling, max-plus and min-plus convolution), and a
TypeError naming the layer and the reason where no exact form exists (fractional max
pooling, max unpooling in a chain).  The graph is checked with
``onnx.checker.check_model(full_check=True)`` before it is written.

What the graph computes is the model in inference mode (``model.eval()``): dropout is
the identity, batch norm uses its running statistics and stochastic pooling its
expectation.  The graph is float32 (onnxruntime has no float64 convolution), with a
free batch axis ``N`` and the per-example shape fixed by ``input_shape``, so every
window is known when the graph is written: ``ceil_mode`` and average-pooling divisors
are written as explicit padding and constants (see :mod:`._onnx_graph`), and
``Upsample`` becomes ``Resize`` only where ``Resize`` reads the same pixels as PyTorch
(see :mod:`._onnx_resize`).

Initializers are named by the state_dict keys (``"0.weight"``), and the model's
metadata (``convpool.layers``) records each layer's class, constructor arguments and
nodes, so that :func:`from_onnx` rebuilds composed layers exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import __version__
from ..nn.module import Module
from . import _onnx_compose as C
from . import _onnx_layers as L
from ._onnx_config import config_of
from ._onnx_graph import ExportError, Graph, _onnx
from ._onnx_import import METADATA_KEY, from_onnx
from ._onnx_resize import emit_upsample

DEFAULT_OPSET = 19
MIN_OPSET = 19  # Pad 'wrap' (circular padding), Resize with axes, Col2Im

# base-class name in convpool.nn -> how to write the layer
EMITTERS: dict[str, Any] = {
    "_ConvNd": L.emit_conv,
    "_ConvTransposeNd": L.emit_conv_transpose,
    "_MaxPoolNd": L.emit_max_pool,
    "_AvgPoolNd": L.emit_avg_pool,
    "_LPPoolNd": L.emit_lp_pool,
    "_AdaptiveAvgPoolNd": L.emit_adaptive_avg,
    "_AdaptiveMaxPoolNd": L.emit_adaptive_max,
    "Linear": L.emit_linear,
    "ReLU": L.emit_activation,
    "LeakyReLU": L.emit_activation,
    "Tanh": L.emit_activation,
    "Sigmoid": L.emit_activation,
    "Identity": L.emit_activation,
    "Flatten": L.emit_flatten,
    "Dropout": L.emit_dropout,
    "_BatchNorm": L.emit_batch_norm,
    "_PadNd": L.emit_padding,
    "Upsample": emit_upsample,
    "PixelShuffle": L.emit_pixel_shuffle,
    "PixelUnshuffle": L.emit_pixel_unshuffle,
    "Unfold": L.emit_unfold,
    "Fold": L.emit_fold,
    "_MinPoolNd": C.emit_min_pool,
    "_MedianPoolNd": C.emit_median_pool,
    "_MaxPlusConvNd": C.emit_maxplus,
    "_GeMPoolNd": C.emit_gem,
    "_LSEPoolNd": C.emit_lse,
    "_MixedPoolNd": C.emit_mixed,
    "_GatedPoolNd": C.emit_gated,
    "_SoftPoolNd": C.emit_soft_pool,
    "_StochasticPoolNd": C.emit_stochastic,
    "_BlurPoolNd": C.emit_blur,
    "_MaxBlurPoolNd": C.emit_max_blur,
    "_SpatialPyramidPoolNd": C.emit_spp,
    "_FractionalMaxPoolNd": C.refuse_fractional,
    "_MaxUnpoolNd": C.refuse_unpool,
}
REFUSALS = (C.refuse_fractional, C.refuse_unpool)


def _emitter(m: Module) -> Any:
    for cls in type(m).__mro__:
        if cls.__name__ in EMITTERS and cls.__module__.startswith("convpool.nn"):
            return EMITTERS[cls.__name__]
    raise ExportError(f"{type(m).__name__} has no ONNX export (layer {m!r})")


def _leaves(m: Module, prefix: str = "") -> Iterator[tuple[str, Module]]:
    """The layers of a chain in order, nested Sequentials flattened; names as state_dict prefixes."""
    if type(m).__name__ == "Sequential" and type(m).__module__.startswith("convpool.nn"):
        for name, child in m.named_children():
            yield from _leaves(child, f"{prefix}.{name}" if prefix else name)
    elif any(True for _ in m.named_children()):
        raise ExportError(
            f"{type(m).__name__} holds sub-layers but is not a Sequential: only chains export (layer {prefix or 'model'})"
        )
    else:
        yield prefix, m


def _check_shape(input_shape: Any) -> tuple[int, ...]:
    if not isinstance(input_shape, (tuple, list)) or not input_shape:
        raise TypeError(
            f"input_shape must be a tuple of positive ints (one example, no batch axis), got {input_shape!r}"
        )
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in input_shape):
        raise ValueError(f"input_shape must be positive ints (one example, no batch axis), got {input_shape!r}")
    return tuple(int(v) for v in input_shape)


def _check_opset(opset: Any) -> int:
    onnx = _onnx()
    newest = onnx.defs.onnx_opset_version()
    if opset is None:
        return min(DEFAULT_OPSET, newest)
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"opset must be an int from {MIN_OPSET} to {newest} (this onnx package's newest), got {opset!r}"
        )
    return int(opset)


def build_onnx(model: Module, input_shape: Any, opset: Any = None) -> Any:
    """The ``onnx.ModelProto`` :func:`to_onnx` writes (checked), without writing it."""
    onnx = _onnx()
    if not isinstance(model, Module):
        raise TypeError(f"model must be a convpool Module, got {type(model).__name__}")
    shape = _check_shape(input_shape)
    opset = _check_opset(opset)
    layers = list(_leaves(model))
    emitters = [_emitter(m) for _, m in layers]
    for (_, m), emit in zip(layers, emitters, strict=True):
        if emit in REFUSALS:
            emit(None, m, "", (), ())  # raises, naming the layer
        C.check_no_indices(m)
    g = Graph(opset)
    records = []
    was_training = model.training
    model.eval()
    try:
        x = np.random.default_rng(0).random((1, *shape)).astype(np.float32)
        name = "input"
        for (prefix, m), emit in zip(layers, emitters, strict=True):
            si = tuple(x.shape[1:])
            try:
                x = m(x)
            except (ValueError, TypeError) as exc:
                raise ValueError(
                    f"layer {prefix} ({type(m).__name__}) does not accept the shape (N, {', '.join(map(str, si))}) "
                    f"that input_shape={shape} gives it: {exc}"
                ) from exc
            g.prefix = prefix
            first = len(g.nodes)
            name = emit(g, m, name, si, tuple(x.shape[1:]))
            records.append(
                {
                    "name": prefix,
                    "type": type(m).__name__,
                    "config": config_of(m),
                    "nodes": [n.name for n in g.nodes[first:]],
                }
            )
    finally:
        model.train(was_training)
    if g.nodes and g.nodes[-1].output[0] == name:
        g.nodes[-1].output[0] = "output"
    else:
        g.nodes.append(onnx.helper.make_node("Identity", [name], ["output"], name="output_identity"))
    graph = onnx.helper.make_graph(
        g.nodes,
        "convpool",
        [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", *shape])],
        [onnx.helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, ["N", *x.shape[1:]])],
        g.initializers,
    )
    proto = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", opset)],
        producer_name="convpool",
        producer_version=__version__,
    )
    proto.ir_version = min(proto.ir_version, _ir_version(opset))
    onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(records)})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _ir_version(opset: int) -> int:
    """The IR version that came with ``opset`` (older runtimes refuse newer IR versions)."""
    onnx = _onnx()
    for _, ir, op, *_ in onnx.helper.VERSION_TABLE:
        if op == opset:
            return int(ir)
    return int(onnx.IR_VERSION)


def to_onnx(model: Module, input_shape: Any, path: str, opset: int | None = None) -> Any:
    """Write ``model`` (a chain of convpool layers) as an ONNX model at ``path``.

    Args:
        model: a :class:`~convpool.nn.Sequential` (nested ones included) or one layer.
        input_shape: one example's shape without the batch axis, e.g. ``(1, 28, 28)``
            (as :func:`convpool.models.summary` takes it); the batch axis is free (``N``).
        path: where to write the ``.onnx`` file.
        opset: ONNX opset (default 19, the oldest with every operator used here).

    Returns the ``onnx.ModelProto`` written.  Raises TypeError naming the layer for a
    layer with no exact ONNX form, ImportError if the ``onnx`` package is missing.

    Example::

        >>> model = convpool.models.lenet5(pool="gem")
        >>> to_onnx(model, (1, 28, 28), "lenet5.onnx")
        >>> import onnxruntime as ort          # anywhere, without convpool
        >>> ort.InferenceSession("lenet5.onnx").run(None, {"input": x})[0]
    """
    onnx = _onnx()
    proto = build_onnx(model, input_shape, opset)
    onnx.save(proto, path)
    return proto


__all__ = ["ExportError", "build_onnx", "from_onnx", "to_onnx"]
