"""``POST /api/shift``: shift the input and watch each layer's output.

The input is shifted circularly (``np.roll``: the borders take no part, as in
``convpool invariance``), and every layer runs on the original and on the
shifted map, all with convpool's functional ops:

* relative change ``||f(shift(x)) - f(x)|| / ||f(x)||``: 0 means invariant;
* equivariance error ``||f(shift(x)) - shift'(f(x))|| / ||f(x)||`` with ``shift'``
  the same shift in output pixels (``shift / stride``, only when whole): 0 means
  the output just moves along.

A stride-1 convolution is equivariant (error 0) and not invariant; a stride-2
conv or pool is equivariant only for even shifts (aliasing); blurring before
subsampling (Zhang 2019) changes least.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import functional as F
from ..examples import KERNELS
from .layer import LayerError, cells
from .schemas import ShiftRequest

MAX_CURVE = 16  # the curve covers shifts 0..15 (or the map's width)

Layer = Callable[[np.ndarray], np.ndarray]


def layers(kernel: np.ndarray) -> list[tuple[str, int, Layer]]:
    """(name, stride, f) on a (1, 1, H, W) map; circular borders throughout."""
    w = kernel[None, None]

    def conv(stride: int) -> Layer:
        return lambda x: F.conv2d(x, w, None, stride, "same", padding_mode="circular")

    def pool2(name: str) -> Layer:
        def f(x: np.ndarray) -> np.ndarray:
            pads = ((0, x.shape[2] % 2), (0, x.shape[3] % 2))  # odd sizes: wrap one row/column round
            if name == "avg":
                return F.avg_pool2d(x, 2, 2, pads, padding_mode="circular")
            return F.max_pool2d(x, 2, 2, pads, padding_mode="circular")

        return f

    def max_blur(x: np.ndarray) -> np.ndarray:  # max at stride 1, then blur and subsample (Zhang 2019)
        m = F.max_pool2d(x, 2, 1, ((0, 1), (0, 1)), padding_mode="circular")
        return F.blur_pool2d(m, 3, 2, "circular")

    return [
        ("conv, stride 1", 1, conv(1)),
        ("conv, stride 2", 2, conv(2)),
        ("max pool 2x2, stride 2", 2, pool2("max")),
        ("avg pool 2x2, stride 2", 2, pool2("avg")),
        ("blur pool (binomial 3x3, stride 2)", 2, lambda x: F.blur_pool2d(x, 3, 2, "circular")),
        ("max-blur pool (max 2x2 stride 1, blur, stride 2)", 2, max_blur),
    ]


def _rel(a: np.ndarray, b: np.ndarray) -> float | None:
    den = float(np.linalg.norm(b))
    if den == 0.0:
        return None if float(np.linalg.norm(a)) != 0.0 else 0.0
    return float(np.linalg.norm(a - b)) / den


def compute_shift(req: ShiftRequest) -> dict[str, Any]:
    x = np.asarray(req.input, dtype=np.float64)[None, None]
    kernel = np.asarray(req.kernel if req.kernel is not None else KERNELS["vertical-edge"], dtype=np.float64)
    axis = 3 if req.axis == "horizontal" else 2
    n = x.shape[axis]
    shifts = list(range(min(n, MAX_CURVE)))
    xs = np.roll(x, req.shift, axis=axis)
    try:
        return _measure(x, xs, kernel, req, axis, shifts)
    except (ValueError, TypeError) as exc:  # e.g. a kernel whose 'same' padding exceeds the map
        raise LayerError("kernel" if "padding" in str(exc) or "window" in str(exc) else "input", str(exc)) from exc


def _measure(
    x: np.ndarray, xs: np.ndarray, kernel: np.ndarray, req: ShiftRequest, axis: int, shifts: list[int]
) -> dict[str, Any]:
    out = []
    for name, stride, f in layers(kernel):
        y0, ys = f(x), f(xs)
        curve = [_rel(f(np.roll(x, s, axis=axis)), y0) for s in shifts]
        equi = None
        if req.shift % stride == 0:  # shift' = shift / stride output pixels
            equi = _rel(ys, np.roll(y0, req.shift // stride, axis=axis))
        out.append(
            {
                "name": name,
                "stride": stride,
                "output": cells(y0[0, 0]),
                "shifted_output": cells(ys[0, 0]),
                "relative_change": _rel(ys, y0),
                "equivariance_error": equi,
                "curve": curve,
            }
        )
    return {
        "shift": req.shift,
        "axis": req.axis,
        "input": cells(x[0, 0]),
        "shifted_input": cells(xs[0, 0]),
        "layers": out,
        "shifts": shifts,
    }
