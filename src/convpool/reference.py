"""Slow, loop-based, obviously correct convolution and pooling.

Independent of the window engine (no window view, no scatter-add, NumPy's own
``np.pad``): one explicit loop over every output position, one explicit list
of window elements.  It is a second oracle for the tests (it covers what
PyTorch lacks: median and min pooling, border modes for pools) and reads as
the textbook definition.  Use it on tiny inputs only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

_NP_MODES = {
    "zeros": "constant",
    "constant": "constant",
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
}


def _positions(out: Sequence[int]) -> itertools.product:
    return itertools.product(*(range(o) for o in out))


def conv(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dilation: Sequence[int],
    groups: int = 1,
    padding_mode: str = "zeros",
) -> np.ndarray:
    """``y[n, o, p] = b[o] + sum_{c in group(o), k} w[o, c, k] * xpad[n, c, p*stride + k*dilation]``."""
    nd = w.ndim - 2
    xp = np.pad(x, [(0, 0), (0, 0), *pads], mode=_NP_MODES[padding_mode])  # type: ignore[call-overload]
    kernel = w.shape[2:]
    out = [(xp.shape[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(nd)]
    n, c_out = x.shape[0], w.shape[0]
    cg, og = x.shape[1] // groups, c_out // groups
    y = np.zeros((n, c_out, *out), dtype=np.float64)
    for bi, o, p in itertools.product(range(n), range(c_out), _positions(out)):
        g = o // og
        total = 0.0 if b is None else float(b[o])
        for ci in range(cg):
            for k in _positions(kernel):
                idx = tuple(p[i] * stride[i] + k[i] * dilation[i] for i in range(nd))
                total += float(w[(o, ci, *k)]) * float(xp[(bi, g * cg + ci, *idx)])
        y[(bi, o, *p)] = total
    return y


def lower_median(values: list[float]) -> float:
    s = sorted(values)
    return s[(len(s) - 1) // 2]


REDUCERS: dict[str, Callable[[list[float]], float]] = {
    "max": max,
    "min": min,
    "median": lower_median,
    "sum": sum,
}


def pool(
    x: np.ndarray,
    reducer: str,
    kernel: Sequence[int],
    stride: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dilation: Sequence[int],
    ceil_mode: bool = False,
    padding_mode: str | None = None,
) -> np.ndarray:
    """Reduce each window's elements with ``reducer``.

    Without ``padding_mode`` only the elements inside the input take part
    (padding never wins); with one, ``np.pad`` fills the border and those
    values take part.  Output size as PyTorch, ceil_mode included.
    """
    nd = len(kernel)
    if padding_mode is not None:
        x = np.pad(x, [(0, 0), (0, 0), *pads], mode=_NP_MODES[padding_mode])  # type: ignore[call-overload]
        lo = [0] * nd
        size = list(x.shape[2:])
        total = size
    else:
        lo = [a for a, _ in pads]
        size = list(x.shape[2:])
        total = [size[i] + pads[i][0] + pads[i][1] for i in range(nd)]
    out = []
    for i in range(nd):
        in_i = x.shape[2 + i] if padding_mode is not None else size[i] + pads[i][0]
        room = total[i] - dilation[i] * (kernel[i] - 1) - 1
        o = (-(-room // stride[i]) if ceil_mode else room // stride[i]) + 1
        if ceil_mode and (o - 1) * stride[i] >= (in_i if padding_mode is None else size[i] - pads[i][1]):
            o -= 1
        out.append(o)
    n, c = x.shape[:2]
    y = np.zeros((n, c, *out), dtype=np.float64)
    for bi, ci, p in itertools.product(range(n), range(c), _positions(out)):
        vals = []
        for k in _positions(kernel):
            idx = [p[i] * stride[i] + k[i] * dilation[i] - lo[i] for i in range(nd)]
            if all(0 <= idx[i] < size[i] for i in range(nd)):
                vals.append(float(x[(bi, ci, *idx)]))
        y[(bi, ci, *p)] = REDUCERS[reducer](vals)
    return y
