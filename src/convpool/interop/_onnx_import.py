"""``from_onnx(path)``: a convpool :class:`~convpool.nn.Sequential` from an ONNX graph.

The graph must be a chain: one input, one output, each node reading the previous
node's output and constants.  convpool has no residual container, so an ``Add`` or
``Concat`` of two activations (a residual connection, a branch) is refused, as is any
operator without a convpool layer; the error names the first such node.

A graph written by :func:`~._onnx.to_onnx` carries each layer's class and constructor
arguments in its metadata: its layers are rebuilt from those (so composed layers such
as GeM or median pooling come back as themselves) and their parameters read from the
initializers named by their state_dict keys.  Any other graph (``torch.onnx.export``'s,
say) is read operator by operator; see :mod:`._onnx_ops` for the operators.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .. import nn
from ..nn.module import Module
from ._onnx_config import build_layer
from ._onnx_graph import _onnx
from ._onnx_ops import ImportState, import_node

METADATA_KEY = "convpool.layers"


def _load(path: Any) -> Any:
    onnx = _onnx()
    if isinstance(path, onnx.ModelProto):
        return path
    return onnx.load(path)


def _metadata(proto: Any) -> dict[str, dict[str, Any]]:
    """The exporter's layer records, by the name of each layer's first node."""
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            try:
                records = json.loads(prop.value)
            except ValueError as exc:
                raise ValueError(f"from_onnx: the {METADATA_KEY} metadata is not JSON ({exc})") from exc
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise ValueError(f"from_onnx: the {METADATA_KEY} metadata is not a list of layer records")
            return {r["nodes"][0]: r for r in records if isinstance(r.get("nodes"), list) and r["nodes"]}
    return {}


def _input_shape(graph: Any, initializers: set[str]) -> tuple[int, ...]:
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ValueError(
            f"from_onnx imports chains: one input and one output, got inputs {[i.name for i in inputs]} "
            f"and outputs {[o.name for o in graph.output]}"
        )
    dims = inputs[0].type.tensor_type.shape.dim
    shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
    if len(shape) < 2 or min(shape[1:]) < 1:
        raise ValueError(
            f"from_onnx needs the input's shape, fixed but for the batch axis, got {shape} for input {inputs[0].name!r}"
        )
    return shape[1:]


def _layer_from_record(rec: dict[str, Any], state: ImportState) -> Module:
    where = f"from_onnx: layer {rec.get('name')!r}"
    layer = build_layer(str(rec.get("type")), rec.get("config"), where)
    own = layer.state_dict()
    found = {}
    for key, value in own.items():
        full = f"{rec['name']}.{key}" if rec.get("name") else key
        if full in state.consts:
            array = np.asarray(state.consts[full])
            if array.size != value.size:
                raise ValueError(
                    f"{where}: initializer {full!r} has shape {array.shape}, the layer needs {value.shape}"
                )
            found[key] = array.reshape(value.shape)
        elif key.endswith("num_batches_tracked"):
            found[key] = value  # not part of an inference graph
        else:
            raise ValueError(f"{where}: no initializer {full!r} for the layer's {key!r}")
    layer.load_state_dict(found)
    return layer


def _nest(named: list[tuple[str, Module]]) -> nn.Sequential:
    """The Sequential the names describe (``"1.0"`` is child 0 of child 1), else a flat one."""
    tree: dict[str, Any] = {}
    for name, layer in named:
        parts = name.split(".") if name else []
        if not parts or not all(p.isdigit() for p in parts):
            return nn.Sequential(*(m for _, m in named))
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                return nn.Sequential(*(m for _, m in named))
        if parts[-1] in node:
            return nn.Sequential(*(m for _, m in named))
        node[parts[-1]] = layer

    def build(node: dict[str, Any]) -> nn.Sequential | None:
        keys = sorted(node, key=int)
        if keys != [str(i) for i in range(len(keys))]:
            return None
        children = []
        for k in keys:
            child = node[k] if isinstance(node[k], Module) else build(node[k])
            if child is None:
                return None
            children.append(child)
        return nn.Sequential(*children)

    return build(tree) or nn.Sequential(*(m for _, m in named))


def from_onnx(path: Any) -> nn.Sequential:
    """A convpool model equal to the ONNX chain at ``path`` (or an ``onnx.ModelProto``).

    Returns an :class:`~convpool.nn.Sequential` in eval mode, float32.  Raises
    ValueError naming the first node it cannot import (an operator convpool has no
    layer for, a branch or residual connection, a non-constant weight).

    Example::

        >>> model = from_onnx("lenet5.onnx")       # written by to_onnx, or torch.onnx.export
        >>> model(x)
    """
    onnx = _onnx()
    proto = _load(path)
    graph = proto.graph
    consts = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    shape = _input_shape(graph, set(consts))
    records = _metadata(proto)
    source = next(i.name for i in graph.input if i.name not in consts)
    state = ImportState(consts, np.zeros((1, *shape), dtype=np.float32), source)
    named: list[tuple[str, Module]] = []
    nodes = list(graph.node)
    i = 0
    while i < len(nodes):
        node = nodes[i]
        rec = records.get(node.name)
        group = nodes[i : i + len(rec["nodes"])] if rec is not None else []
        if rec is not None and any(state.current in n.input for n in group):
            if [n.name for n in group] != rec["nodes"]:
                raise ValueError(f"from_onnx: the nodes of layer {rec.get('name')!r} are not consecutive in the graph")
            layer = _layer_from_record(rec, state)
            state.advance(layer, group[-1].output[0], f"layer {rec.get('name')!r}")
            named.append((str(rec.get("name", "")), layer))
            i += len(group)
            continue
        layers, used = import_node(nodes, i, state)
        for layer in layers:
            named.append(("", layer))
        i += used
    if state.current != graph.output[0].name:
        raise ValueError(
            f"from_onnx: the chain ends at {state.current!r}, not at the graph's output {graph.output[0].name!r}"
        )
    model = _nest(named) if all(name for name, _ in named) else nn.Sequential(*(m for _, m in named))
    return model.eval()  # type: ignore[return-value]
