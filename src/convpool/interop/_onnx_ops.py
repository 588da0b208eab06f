"""ONNX operators as convpool layers, for :func:`~._onnx_import.from_onnx`.

``Conv``, ``ConvTranspose``, ``MaxPool``, ``AveragePool``, ``LpPool`` (even ``p``: ONNX
takes ``|x|``, convpool and PyTorch ``x``), ``GlobalAveragePool``, ``GlobalMaxPool``,
``Gemm``, ``MatMul`` (+ ``Add`` of a bias), ``Relu``, ``LeakyRelu``, ``Tanh``,
``Sigmoid``, ``Identity``, ``Flatten`` (axis 1), a ``Reshape`` that flattens,
``BatchNormalization``, ``Dropout``, ``Pad``, ``Slice`` (a crop), ``Resize`` (the coordinate modes
PyTorch has), ``DepthToSpace`` (CRD), ``SpaceToDepth`` (+ the ``Gather`` that puts
channels in PyTorch's order), ``Col2Im`` and ``Constant``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..nn.module import Module
from ._onnx_config import _nn_classes
from ._onnx_graph import _onnx
from ._onnx_ops_base import ImportState, _attrs, _check_auto_pad, _const, _nd, _pairs, _Unsupported
from ._onnx_ops_layout import _pad, _reshape_as_flatten, _resize, _slice, _space_to_depth


def _conv(node: Any, state: ImportState, cls: dict[str, type]) -> Module:
    a = _attrs(node)
    _check_auto_pad(a)
    w, b = _const(state, node, 1, "weight"), _const(state, node, 2, "bias")
    assert w is not None
    nd, groups = w.ndim - 2, int(a.get("group", 1))
    ones = [1] * nd
    if node.op_type == "Conv":
        layer = cls[f"Conv{nd}d"](
            w.shape[1] * groups,
            w.shape[0],
            list(w.shape[2:]),
            a.get("strides", ones),
            _pairs(a.get("pads"), nd),
            a.get("dilations", ones),
            groups,
            b is not None,
        )
    else:
        if "output_shape" in a:
            raise _Unsupported("output_shape: give pads and output_padding")
        pairs = _pairs(a.get("pads"), nd)
        if any(lo < hi for lo, hi in pairs):
            raise _Unsupported(f"pads {a.get('pads')} crop more at the end than at the start")
        # less cropped at the end is output padding (the form to_onnx writes it in)
        out_pad = [op + lo - hi for op, (lo, hi) in zip(a.get("output_padding", [0] * nd), pairs, strict=True)]
        layer = cls[f"ConvTranspose{nd}d"](
            w.shape[0],
            w.shape[1] * groups,
            list(w.shape[2:]),
            a.get("strides", ones),
            [lo for lo, _ in pairs],
            out_pad,
            groups,
            b is not None,
            a.get("dilations", ones),
        )
    sd = {"weight": w} | ({"bias": b} if b is not None else {})
    layer.load_state_dict(sd)
    return layer


def _pool(node: Any, state: ImportState, cls: dict[str, type]) -> Module:
    a = _attrs(node)
    _check_auto_pad(a)
    if len(node.output) > 1 and node.output[1]:
        raise _Unsupported("the indices output: a convpool chain passes only the values on")
    kernel = list(a["kernel_shape"])
    nd = len(kernel)
    strides, pairs = a.get("strides", [1] * nd), _pairs(a.get("pads"), nd)
    ceil = bool(a.get("ceil_mode", 0))
    if node.op_type == "MaxPool":
        if a.get("storage_order", 0):
            raise _Unsupported("storage_order=1 (column-major indices)")
        return cls[f"MaxPool{nd}d"](kernel, strides, pairs, a.get("dilations", [1] * nd), False, ceil)
    if any(d != 1 for d in a.get("dilations", [1] * nd)):
        raise _Unsupported("dilations (convpool's average and Lp pools have none)")
    if node.op_type == "AveragePool":
        return cls[f"AvgPool{nd}d"](kernel, strides, pairs, ceil, bool(a.get("count_include_pad", 0)))
    p = int(a.get("p", 2))
    if p % 2 or any(lo or hi for lo, hi in pairs):
        raise _Unsupported(f"p={p} with pads {a.get('pads')}: ONNX's LpPool sums |x|**p, convpool's (PyTorch's) x**p")
    return cls[f"LPPool{nd}d"](float(p), kernel, strides, ceil)


def _gemm(node: Any, state: ImportState, cls: dict[str, type]) -> Module:
    a = _attrs(node)
    if a.get("transA", 0):
        raise _Unsupported("transA=1")
    w, c = _const(state, node, 1, "weight"), _const(state, node, 2, "bias")
    assert w is not None
    w = (w if a.get("transB", 0) else w.T) * float(a.get("alpha", 1.0))
    layer = cls["Linear"](w.shape[1], w.shape[0], c is not None)
    sd = {"weight": w}
    if c is not None:
        sd["bias"] = np.broadcast_to(c * float(a.get("beta", 1.0)), (w.shape[0],))
    layer.load_state_dict(sd)
    return layer


def _simple(node: Any, state: ImportState, cls: dict[str, type]) -> Module | None:
    a = _attrs(node)
    op = node.op_type
    if op in ("Relu", "Tanh", "Sigmoid"):
        return cls[{"Relu": "ReLU"}.get(op, op)]()
    if op == "LeakyRelu":
        return cls["LeakyReLU"](float(a.get("alpha", 0.01)))
    if op in ("GlobalAveragePool", "GlobalMaxPool"):
        return cls[f"Adaptive{'Avg' if op == 'GlobalAveragePool' else 'Max'}Pool{_nd(state)}d"](1)
    if op == "Flatten":
        if a.get("axis", 1) != 1:
            raise _Unsupported(f"axis={a.get('axis')} (ONNX merges the leading dims too; PyTorch's flatten is axis 1)")
        return cls["Flatten"]()
    if op == "Dropout":
        training = _const(state, node, 2, "training_mode")
        if training is not None and bool(training):
            raise _Unsupported("training_mode=True")
        ratio = _const(state, node, 1, "ratio")
        return cls["Dropout"](float(a.get("ratio", 0.5)) if ratio is None else float(ratio))
    if op == "BatchNormalization":
        if a.get("training_mode", 0):
            raise _Unsupported("training_mode=1")
        params = [_const(state, node, k, what) for k, what in enumerate(("", "scale", "B", "mean", "var")) if k]
        rank = state.example.ndim
        if rank not in (2, 3, 4):
            raise _Unsupported(f"an input of {rank} dims (convpool has BatchNorm1d and BatchNorm2d)")
        if any(v is None for v in params):
            raise _Unsupported("a missing scale, B, mean or var")
        channels = state.example.shape[1]
        layer = cls["BatchNorm1d" if rank < 4 else "BatchNorm2d"](
            channels, float(a.get("epsilon", 1e-5)), 1.0 - float(a.get("momentum", 0.9))
        )
        names = ("weight", "bias", "running_mean", "running_var")
        layer.load_state_dict(dict(zip(names, params, strict=True)), strict=False)
        return layer
    if op == "DepthToSpace":
        r = int(a["blocksize"])
        mode = a.get("mode", b"DCR")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode != "CRD" and state.example.shape[1] != r * r:
            raise _Unsupported("mode DCR with more than one output channel (PyTorch's pixel shuffle is CRD)")
        return cls["PixelShuffle"](r)
    if op == "Col2Im":
        image, block = _const(state, node, 1, "image_shape"), _const(state, node, 2, "block_shape")
        assert image is not None and block is not None
        nd = len(block)
        pairs = _pairs(a.get("pads"), nd)
        if any(lo != hi for lo, hi in pairs):
            raise _Unsupported(f"asymmetric pads {a.get('pads')}")
        return cls["Fold"](
            tuple(int(v) for v in image),
            tuple(int(v) for v in block),
            tuple(a.get("dilations", [1] * nd)),
            tuple(lo for lo, _ in pairs),
            tuple(a.get("strides", [1] * nd)),
        )
    return None


def _matmul(nodes: list[Any], i: int, state: ImportState, cls: dict[str, type]) -> tuple[Module, int]:
    node = nodes[i]
    w = _const(state, node, 1, "weight")
    assert w is not None
    if w.ndim != 2:
        raise _Unsupported(f"a weight of shape {w.shape} (a Linear layer's is 2-d)")
    nxt = nodes[i + 1] if i + 1 < len(nodes) else None
    bias = None
    if nxt is not None and nxt.op_type == "Add" and node.output[0] in nxt.input:
        other = [n for n in nxt.input if n != node.output[0]]
        if len(other) == 1 and other[0] in state.consts and np.asarray(state.consts[other[0]]).size == w.shape[1]:
            bias = np.asarray(state.consts[other[0]]).reshape(-1)
    layer = cls["Linear"](w.shape[0], w.shape[1], bias is not None)
    layer.load_state_dict({"weight": w.T} | ({"bias": bias} if bias is not None else {}))
    return layer, 2 if bias is not None else 1


_ONE = {
    "Conv": _conv,
    "ConvTranspose": _conv,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "LpPool": _pool,
    "Gemm": _gemm,
    "Reshape": _reshape_as_flatten,
    "Pad": _pad,
    "Slice": _slice,
    "Resize": _resize,
}


_FOLD = {
    "Transpose": lambda node, v: np.transpose(v[0], _attrs(node).get("perm")),
    "Reshape": lambda node, v: v[0].reshape([d if d else v[0].shape[i] for i, d in enumerate(v[1].tolist())]),
}


def import_node(nodes: list[Any], i: int, state: ImportState) -> tuple[list[Module], int]:
    """The layers for ``nodes[i]`` (and any node it pairs with) and how many nodes they took."""
    onnx = _onnx()
    node = nodes[i]
    where = f"from_onnx: node {i} {node.name!r} ({node.op_type})"
    if node.op_type == "Constant":
        value = _attrs(node).get("value")
        if value is None:
            raise ValueError(f"{where}: only tensor constants ('value') are supported")
        state.consts[node.output[0]] = onnx.numpy_helper.to_array(value)
        return [], 1
    if node.input and all(n in state.consts for n in node.input) and node.op_type in _FOLD:
        state.consts[node.output[0]] = _FOLD[node.op_type](node, [np.asarray(state.consts[n]) for n in node.input])
        return [], 1  # a constant computed from constants (a transposed weight, say)
    if not node.input or node.input[0] != state.current:
        raise ValueError(
            f"{where} does not read the chain's tensor {state.current!r} first (inputs {list(node.input)}): "
            "from_onnx imports chains; convpool has no residual or branching container"
        )
    cls = _nn_classes()
    try:
        if node.op_type == "Identity":
            state.current = node.output[0]
            return [], 1
        used = 1
        layer: Module | None
        if node.op_type in _ONE:
            layer = _ONE[node.op_type](node, state, cls)
        elif node.op_type == "SpaceToDepth":
            layer, used = _space_to_depth(nodes, i, state, cls)
        elif node.op_type == "MatMul":
            layer, used = _matmul(nodes, i, state, cls)
        else:
            layer = _simple(node, state, cls)
        if layer is None:
            hint = {
                "Softmax": ": convpool has no Softmax layer (its CrossEntropyLoss takes the logits)",
                "Add": ": a residual connection or a constant shift (convpool models are chains of layers)",
                "Concat": ": a concatenation of branches (convpool models are chains of layers)",
            }.get(node.op_type, "")
            raise _Unsupported(f"no convpool layer for this operator{hint}")
    except _Unsupported as exc:
        raise ValueError(f"{where} is not supported: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from exc
    state.advance(layer, nodes[i + used - 1].output[0], f"node {i} {node.name!r}")
    return [layer], used
