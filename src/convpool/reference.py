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


def _plus_sources(n: int, lo: int, hi: int, padding_mode: str | None) -> np.ndarray:
    """Along one padded axis, the input index each position holds: -1 a zero ('zeros'
    padding), -2 identity padding (no value).  Border modes map through ``np.pad`` of
    the indices themselves."""
    idx = np.arange(n)
    if padding_mode is None or padding_mode == "zeros":
        return np.pad(idx, (lo, hi), constant_values=-2 if padding_mode is None else -1)
    return np.pad(idx, (lo, hi), mode=_NP_MODES[padding_mode])  # type: ignore[call-overload]


def _plus_winners(
    x: np.ndarray,
    w: np.ndarray,
    stride: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dilation: Sequence[int],
    groups: int,
    padding_mode: str | None,
    reducer: str,
) -> dict[tuple[int, ...], tuple[float, int, tuple[int, ...], tuple[int, ...] | None]]:
    """For every output ``(n, o, *p)``: its value and its winner ``(c, k, input index or
    None for a zero of the padding)``, scanning (c, k) in order with c outer; sums in the
    input's dtype; identity padding (``padding_mode`` None) takes no part; a NaN sum
    wins (the first), else the first strict max (min) does."""
    nd = w.ndim - 2
    kernel = w.shape[2:]
    sources = [_plus_sources(x.shape[2 + i], *pads[i], padding_mode) for i in range(nd)]
    out = [(len(sources[i]) - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(nd)]
    cg, og = x.shape[1] // groups, w.shape[0] // groups
    better = (lambda a, b: a > b) if reducer == "max" else (lambda a, b: a < b)
    result = {}
    for bi, o, p in itertools.product(range(x.shape[0]), range(w.shape[0]), _positions(out)):
        best, win = None, None
        for ci in range(cg):
            for k in _positions(kernel):
                src = tuple(int(sources[i][p[i] * stride[i] + k[i] * dilation[i]]) for i in range(nd))
                if min(src) == -2:
                    continue
                at = None if min(src) < 0 else (bi, (o // og) * cg + ci, *src)
                with np.errstate(invalid="ignore"):  # inf + -inf is a NaN sum
                    v = (x.dtype.type(0) if at is None else x[at]) + x.dtype.type(w[(o, ci, *k)])
                if best is None or better(v, best) or (np.isnan(v) and not np.isnan(best)):
                    best, win = v, (ci, k, at)
        assert best is not None and win is not None, "a window wholly in the identity padding"
        result[(bi, o, *p)] = (float(best), *win)
    return result


def maxplus_conv(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dilation: Sequence[int],
    groups: int = 1,
    padding_mode: str | None = None,
    reducer: str = "max",
) -> np.ndarray:
    """``y[n, o, p] = b[o] + max_{c in group(o), k} xpad[n, c, p*stride + k*dilation] + w[o, c, k]``
    (``reducer='min'``: min-plus).  ``padding_mode`` None: the padding takes no part."""
    wins = _plus_winners(x, w, stride, pads, dilation, groups, padding_mode, reducer)
    out = tuple(max(key[2 + i] for key in wins) + 1 for i in range(w.ndim - 2))
    y = np.zeros((x.shape[0], w.shape[0], *out), dtype=np.float64)
    for key, (v, *_) in wins.items():
        y[key] = v + (0.0 if b is None else float(b[key[1]]))
    return y


def minplus_conv(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dilation: Sequence[int],
    groups: int = 1,
    padding_mode: str | None = None,
) -> np.ndarray:
    """Min-plus convolution: :func:`maxplus_conv` with ``min``."""
    return maxplus_conv(x, w, b, stride, pads, dilation, groups, padding_mode, "min")


def maxplus_conv_grad(
    x: np.ndarray,
    w: np.ndarray,
    dy: np.ndarray,
    stride: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dilation: Sequence[int],
    groups: int = 1,
    padding_mode: str | None = None,
    reducer: str = "max",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dx, dw, db)`` of :func:`maxplus_conv`: each output's gradient to its winner's
    input element (none for a zero of the padding) and weight; the bias gets the sum."""
    dx, dw = np.zeros(x.shape), np.zeros(w.shape)
    for key, (_, ci, k, at) in _plus_winners(x, w, stride, pads, dilation, groups, padding_mode, reducer).items():
        g = float(dy[key])
        dw[(key[1], ci, *k)] += g
        if at is not None:
            dx[at] += g
    return dx, dw, dy.sum(axis=(0, *range(2, dy.ndim)), dtype=np.float64)
