"""``Upsample`` as ONNX ``Resize``, where ``Resize`` reads the same pixels.

PyTorch's interpolation rules and ONNX's ``Resize`` attributes line up as:

* ``'nearest'``: ``src = floor(dst * scale)`` = ``coordinate_transformation_mode=
  'asymmetric'``, ``nearest_mode='floor'``;
* ``'nearest-exact'``: ``src = floor((dst + 0.5) * scale)`` = ``'half_pixel'`` with
  ``nearest_mode='round_prefer_ceil'``;
* linear modes: ``'half_pixel'`` (clamped at the border, as PyTorch's ``max(src, 0)``),
  or ``'align_corners'``;
* ``scale = 1 / scale_factor`` when a scale factor is given (passed as ``scales``), else
  ``in / out`` (passed as ``sizes``); ``'area'`` is adaptive average pooling.

PyTorch also has special cases ``Resize`` cannot express (an axis whose output size
equals its input size is copied whatever the scale factor; 'nearest' halves exactly
where the output is twice the input on small 2-d outputs; its scale in float32), and
onnxruntime copies the input whenever the output has its size, whatever the scales.  So
the exporter computes, for every axis, the input pixels (and weights) convpool uses
and those ``Resize`` would use under the ONNX formulas, in float32 and in float64; if
any differ the layer is written as one ``Gather`` per axis (nearest) or two
``Gather``s and a weighted sum (linear) with convpool's own indices and weights:
exact either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._onnx_graph import Graph, adaptive

Shape = tuple[int, ...]
_LINEAR = ("linear", "bilinear", "trilinear")


def _onnx_src(n: int, o: int, scale: float, mode: str, corners: bool, dtype: Any) -> np.ndarray:
    """The input coordinate ONNX's ``Resize`` maps output ``dst`` to (``scale`` = out/in
    as ONNX defines it), in ``dtype``."""
    dst = np.arange(o, dtype=dtype)
    s = dtype(scale)
    if corners:
        return dst * dtype(n - 1) / dtype(o - 1) if o > 1 else np.zeros(o, dtype=dtype)
    if mode == "nearest":
        return dst / s
    return (dst + dtype(0.5)) / s - dtype(0.5)


def _matrix(n: int, i0: np.ndarray, i1: np.ndarray, w0: np.ndarray, w1: np.ndarray) -> np.ndarray:
    """Linear interpolation along one axis as an ``(out, in)`` matrix."""
    m = np.zeros((len(i0), n))
    rows = np.arange(len(i0))
    np.add.at(m, (rows, i0), w0)
    np.add.at(m, (rows, i1), w1)
    return m


def _resize_reads_the_same(n: int, o: int, onnx_scale: float, mode: str, corners: bool, taps: tuple) -> bool:
    """Whether ``Resize`` with ``onnx_scale`` reads the pixels (with the weights) that
    convpool's ``taps`` read along one axis, its coordinates computed in float32 and in
    float64 (a runtime may use either)."""
    for dtype in (np.float32, np.float64):
        if int(np.floor(dtype(n) * dtype(onnx_scale))) != o:
            return False
        src = _onnx_src(n, o, onnx_scale, mode, corners, dtype)
        if mode in ("nearest", "nearest-exact"):
            if mode == "nearest-exact":
                src = src + dtype(0.5)  # round half up
            if not np.array_equal(np.clip(np.floor(src).astype(np.int64), 0, n - 1), taps[0]):
                return False
        else:
            src = np.clip(src, 0, n - 1)
            i0 = np.floor(src).astype(np.int64)
            w1 = (src - i0).astype(np.float64)
            onnx = _matrix(n, i0, np.minimum(i0 + 1, n - 1), 1 - w1, w1)
            if not np.allclose(onnx, _matrix(n, *taps), rtol=0, atol=1e-5):
                return False
    return True


def emit_upsample(g: Graph, m: Any, x: str, si: Shape, so: Shape) -> str:
    from ..functional import upsample as U

    in_size, out = si[1:], so[1:]
    nd = len(in_size)
    if m.mode == "area":
        return adaptive(g, x, in_size, out, "avg")
    corners = bool(m.align_corners) if m.mode in _LINEAR else False
    _, scales = U._sizes_and_scales(in_size, m.size, m.scale_factor, m.recompute_scale_factor)
    legacy = U.uses_legacy_nearest(out)
    plans = []
    resize_ok = True
    for d in range(nd):
        n, o = in_size[d], out[d]
        s = None if scales is None else scales[d]
        if m.mode in _LINEAR:
            taps: tuple = U.linear_taps(n, o, corners, s, np.dtype(np.float32))
        else:
            taps = (U.nearest_index(n, o, s, m.mode == "nearest-exact", legacy, np.dtype(np.float32)),)
        plans.append(taps)
        onnx_scale = o / n if s is None else s
        resize_ok = resize_ok and _resize_reads_the_same(n, o, onnx_scale, m.mode, corners, taps)
    if resize_ok and tuple(out) == tuple(in_size):  # onnxruntime copies then, whatever the scales say
        resize_ok = all(np.array_equal(taps[0], np.arange(n)) for taps, n in zip(plans, in_size, strict=True))
        resize_ok = resize_ok and all(len(taps) == 1 or np.all(taps[3] == 0) for taps in plans)
    if resize_ok:
        attrs: dict[str, Any] = {}
        if m.mode in _LINEAR:
            attrs.update(mode="linear", coordinate_transformation_mode="align_corners" if corners else "half_pixel")
        elif m.mode == "nearest":
            attrs.update(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        else:
            attrs.update(mode="nearest", coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_ceil")
        axes = list(range(2, 2 + nd))  # the batch size is not known: sizes of the spatial axes only
        if scales is None:
            return g.op("Resize", [x, "", "", g.ints(out, "sizes")], axes=axes, **attrs)
        return g.op("Resize", [x, "", g.const(scales, "scales")], axes=axes, **attrs)
    y = x
    for d in reversed(range(nd)):  # the last axis first, as convpool (and PyTorch)
        axis = 2 + d
        taps = plans[d]
        if len(taps) == 1:
            y = g.op("Gather", [y, g.ints(taps[0], "index")], axis=axis)
            continue
        i0, i1, w0, w1 = taps
        shape = (-1,) + (1,) * (nd - 1 - d)
        a = g.op("Mul", [g.op("Gather", [y, g.ints(i0, "i0")], axis=axis), g.const(w0.reshape(shape), "w0")])
        b = g.op("Mul", [g.op("Gather", [y, g.ints(i1, "i1")], axis=axis), g.const(w1.reshape(shape), "w1")])
        y = g.op("Add", [a, b])
    return y
