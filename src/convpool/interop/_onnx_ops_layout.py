"""ONNX operators that move or resample data, as convpool layers: ``Reshape`` (a
flatten), ``Pad``, ``Slice`` (a crop), ``Resize`` and ``SpaceToDepth``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..nn.module import Module
from ._onnx_ops_base import ImportState, _attrs, _const, _nd, _Unsupported


def _reshape_as_flatten(node: Any, state: ImportState, cls: dict[str, type]) -> Module:
    target = _const(state, node, 1, "shape")
    assert target is not None
    shape = state.example.shape
    want = [shape[i] if v == 0 else int(v) for i, v in enumerate(target.tolist())]
    if -1 in want:
        known = math.prod(v for v in want if v != -1)
        want[want.index(-1)] = int(np.prod(shape)) // max(known, 1)
    if target.tolist()[0] not in (0, -1) and len(target) > 1 and -1 not in target.tolist()[1:]:
        raise _Unsupported(f"shape {target.tolist()} fixes the batch size")
    for s in range(1, len(shape)):
        for e in range(s, len(shape)):
            if list(shape[:s]) + [math.prod(shape[s : e + 1])] + list(shape[e + 1 :]) == want:
                return cls["Flatten"](s, e - len(shape) if e == len(shape) - 1 else e)
    raise _Unsupported(f"a reshape of {shape} to {want} that is not a flatten")


def _pad(node: Any, state: ImportState, cls: dict[str, type]) -> Module:
    a = _attrs(node)
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    rank = state.example.ndim
    pads = _const(state, node, 1, "pads")
    value = _const(state, node, 2, "constant_value")
    axes = _const(state, node, 3, "axes")
    assert pads is not None
    full = [0] * (2 * rank)
    for j, ax in enumerate(range(rank) if axes is None else [int(v) % rank for v in axes]):
        n = len(pads) // 2
        full[ax], full[ax + rank] = int(pads[j]), int(pads[j + n])
    nd = rank - 2
    if any(full[i] or full[i + rank] for i in range(2)) or not 1 <= nd <= 3:
        raise _Unsupported(f"pads {full} on the batch or channel axis (convpool pads 1 to 3 spatial dims)")
    torch_order = [v for d in reversed(range(2, rank)) for v in (full[d], full[d + rank])]
    if mode != "constant" and min(torch_order) < 0:
        raise _Unsupported(f"negative pads in mode {mode!r}")
    if mode == "constant":
        v = 0.0 if value is None else float(value.reshape(-1)[0]) if value.size else 0.0
        return cls[f"ZeroPad{nd}d"](torch_order) if v == 0.0 else cls[f"ConstantPad{nd}d"](torch_order, v)
    names = {"reflect": "ReflectionPad", "edge": "ReplicationPad", "wrap": "CircularPad"}
    if mode not in names:
        raise _Unsupported(f"mode {mode!r}")
    return cls[f"{names[mode]}{nd}d"](torch_order)


def _slice(node: Any, state: ImportState, cls: dict[str, type]) -> Module:
    """A crop of spatial axes (step 1): a zero-padding layer with negative padding."""
    shape, rank = state.example.shape, state.example.ndim
    starts, ends = _const(state, node, 1, "starts"), _const(state, node, 2, "ends")
    axes, steps = _const(state, node, 3, "axes"), _const(state, node, 4, "steps")
    assert starts is not None and ends is not None
    axes_list = list(range(len(starts))) if axes is None else [int(v) % rank for v in axes]
    if steps is not None and any(int(v) != 1 for v in steps):
        raise _Unsupported(f"steps {steps.tolist()} (only a crop, step 1, is a convpool layer)")
    cut = {}
    for ax, a, b in zip(axes_list, starts.tolist(), ends.tolist(), strict=True):
        n = shape[ax]
        a, b = min(a + n if a < 0 else a, n), min(b + n if b < 0 else b, n)
        cut[ax] = (a, n - b)
    nd = rank - 2
    if any(cut.get(d, (0, 0)) != (0, 0) for d in (0, 1)) or not 1 <= nd <= 3:
        raise _Unsupported("a slice of the batch or channel axis (a crop of 1 to 3 spatial dims is a padding layer)")
    torch_order = [-v for d in reversed(range(2, rank)) for v in cut.get(d, (0, 0))]
    return cls[f"ZeroPad{nd}d"](torch_order)


def _resize(node: Any, state: ImportState, cls: dict[str, type]) -> Module:
    a = _attrs(node)

    def text(key: str, default: str) -> str:
        v = a.get(key, default)
        return v.decode() if isinstance(v, bytes) else str(v)

    mode, coords, nearest = text("mode", "nearest"), text("coordinate_transformation_mode", "half_pixel"), ""
    nd, rank = _nd(state), state.example.ndim
    if a.get("antialias", 0):
        raise _Unsupported("antialias=1")
    if mode == "nearest":
        nearest = text("nearest_mode", "round_prefer_floor")
        table = {("asymmetric", "floor"): "nearest", ("half_pixel", "round_prefer_ceil"): "nearest-exact"}
        if (coords, nearest) not in table:
            raise _Unsupported(
                f"nearest with {coords!r} and {nearest!r} (PyTorch's: asymmetric/floor, half_pixel/round_prefer_ceil)"
            )
        up_mode, corners = table[(coords, nearest)], None
    elif mode == "linear" and coords in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        up_mode, corners = ("linear", "bilinear", "trilinear")[nd - 1], coords == "align_corners"
    else:
        raise _Unsupported(f"mode {mode!r} with {coords!r}")
    scales, sizes = _const(state, node, 2, "scales"), _const(state, node, 3, "sizes")
    use_sizes = sizes is not None and sizes.size > 0
    given = sizes if use_sizes else scales
    if given is None or not given.size:
        raise _Unsupported("neither scales nor sizes")
    per_axis = dict(zip([int(v) % rank for v in a.get("axes", range(rank))], given.tolist(), strict=True))

    def unchanged(d: int) -> float:
        return float(state.example.shape[d]) if use_sizes else 1.0

    if any(per_axis.get(d, unchanged(d)) != unchanged(d) for d in (0, 1)):
        raise _Unsupported("resizing the batch or channel axis")
    spatial = [float(per_axis.get(d, unchanged(d))) for d in range(2, rank)]
    if use_sizes:
        return cls["Upsample"](size=[int(v) for v in spatial], mode=up_mode, align_corners=corners)
    return cls["Upsample"](scale_factor=spatial, mode=up_mode, align_corners=corners)


def _space_to_depth(nodes: list[Any], i: int, state: ImportState, cls: dict[str, type]) -> tuple[Module, int]:
    node = nodes[i]
    r, c = int(_attrs(node)["blocksize"]), state.example.shape[1]
    if c == 1:
        return cls["PixelUnshuffle"](r), 1
    perm = [(a * r + b) * c + ch for ch in range(c) for a in range(r) for b in range(r)]
    nxt = nodes[i + 1] if i + 1 < len(nodes) else None
    if nxt is not None and nxt.op_type == "Gather" and nxt.input[0] == node.output[0] and _attrs(nxt).get("axis") == 1:
        index = state.consts.get(nxt.input[1])
        if index is not None and np.asarray(index).tolist() == perm:
            return cls["PixelUnshuffle"](r), 2
    raise _Unsupported(
        "SpaceToDepth of more than one channel orders them offset-first; PyTorch's pixel unshuffle channel-first"
    )
