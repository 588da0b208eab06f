"""What the compiled pool implementations share: the index tables and their interior
columns, the 3-d view the kernels see, the tiled-window tests and the winners'
positions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ...geometry import Geometry
from ..numpy.pool import PoolState
from ..tables import PoolProblem
from . import kernels as _kernels


def compiled_problem(p: PoolProblem) -> str | None:
    """Why the compiled kernels cannot take ``p``, or None: they cover the built-in
    reductions (max, min, median, sum) on non-empty float32/float64 inputs."""
    if p.builtin is None:
        return f"a reduction of its own ({type(p.reduction).__name__}): the reference runs it"
    if p.x.dtype not in (np.float32, np.float64):
        return f"compiled kernels take float32/float64, not {p.x.dtype}"
    if p.x.size == 0:
        return "an empty input"
    return None


def as3(x: np.ndarray, nd: int, spatial: tuple[int, ...]) -> np.ndarray:
    """``(N, C, *spatial)`` as ``(N*C, 1.., *spatial)`` with 3 spatial dims, contiguous."""
    n, c = x.shape[:2]
    return np.ascontiguousarray(x).reshape((n * c,) + (1,) * (3 - nd) + spatial)


def new_output(p: PoolProblem) -> np.ndarray:
    n, c = p.x.shape[:2]
    return np.empty((n * c,) + (1,) * (3 - p.g.nd) + p.g.out, dtype=p.x.dtype)


def positions(p: PoolProblem, y: np.ndarray) -> np.ndarray:
    """An array for each winner's position in its window (scan order)."""
    import math

    return np.empty(y.shape, dtype=np.int8 if math.prod(p.g.kernel) <= 127 else np.int32)


def sign(p: PoolProblem) -> float:
    return 1.0 if p.builtin == "max" else -1.0


def state(p: PoolProblem, y: np.ndarray, aux: object) -> tuple[np.ndarray, PoolState]:
    """The output as ``(N, C, *out)`` and the state."""
    n, c = p.x.shape[:2]
    y = y.reshape((n, c) + p.g.out)
    return y, PoolState(p.g, p.mode, p.reduction, p.x.shape, y.shape, aux)


def gradient(dy: np.ndarray, st: PoolState) -> tuple[np.ndarray, np.ndarray]:
    """``dy`` as the kernels see it, and a gradient array for them to fill (they zero it)."""
    g = st.g
    n, c = st.in_shape[:2]
    dy4 = as3(dy, g.nd, g.out)
    gx = np.empty((n * c,) + (1,) * (3 - g.nd) + g.in_size, dtype=dy.dtype)
    return dy4, gx


def finish(gx: np.ndarray, st: PoolState) -> np.ndarray:
    return gx.reshape(st.in_shape)


def selected_indices(st: PoolState) -> np.ndarray:
    """Flat input index of each output's chosen element, shaped like the output."""
    aux = st.aux.flat_indices() if isinstance(st.aux, Selected) else st.aux
    assert isinstance(aux, np.ndarray)
    return aux.reshape(st.y_shape)


def tables(g: Geometry, mode: str | None) -> list[np.ndarray]:
    """Index tables for the 3 spatial dims the kernels see (1-D/2-D get size-1 dims)."""
    lead = [np.zeros((1, 1), dtype=np.int64)] * (3 - g.nd)
    return lead + [
        _kernels.index_table(n, k, s, d, lo, hi, o, mode)
        for n, k, s, d, (lo, hi), o in zip(g.in_size, g.kernel, g.stride, g.dilation, g.pads, g.out, strict=True)
    ]


def last_dim(g: Geometry, t2: np.ndarray) -> tuple[np.ndarray, int, int, int]:
    """For the separable sum: the last dimension's padded coordinates mapped to input
    columns (-1: padding or nothing), and its kernel, stride and dilation."""
    o2, k2 = t2.shape
    s2, d2 = k3(g.stride)[2], k3(g.dilation)[2]
    wmap = np.full((o2 - 1) * s2 + (k2 - 1) * d2 + 1, -1, dtype=np.int64)
    coord = np.arange(o2)[:, None] * s2 + np.arange(k2)[None, :] * d2
    wmap[coord] = np.maximum(t2, -1)  # a coordinate always maps to one column (or none)
    return wmap, k2, s2, d2


def adjoint_sum(g: Geometry, mode: str | None) -> Geometry | None:
    """The windows whose sums over ``dy`` give the input gradient of a stride-1 window
    sum: input element ``i`` lies in the windows ``o = i + lo - t*d`` (t < k), so its
    gradient is the sum of ``dy`` over the window of the same kernel and dilation
    starting at ``i - ((k-1)*d - lo)`` - padding ``(k-1)*d - lo`` before, the windows
    over ``dy`` lying where the original windows' padding was (identity padding only:
    a border mode sends some windows' elements elsewhere).  None where that does not
    hold (stride > 1, a border mode, padding beyond the kernel's reach)."""
    reach = [d * (k - 1) for k, d in zip(g.kernel, g.dilation, strict=True)]
    if mode is not None or any(s != 1 for s in g.stride) or any(g.extra):
        return None
    if any(not (0 <= lo <= r and 0 <= hi <= r) for (lo, hi), r in zip(g.pads, reach, strict=True)):
        return None
    return Geometry(
        in_size=g.out,
        kernel=g.kernel,
        stride=g.stride,
        dilation=g.dilation,
        pads=tuple((r - lo, r - hi) for (lo, hi), r in zip(g.pads, reach, strict=True)),
        out=g.in_size,
        extra=g.extra,
    )


def interior(t2: np.ndarray, s2: int, d2: int, lo2: int) -> tuple[int, int]:
    """The output columns ``[c0, c1)`` whose taps all read the input at
    ``c*s2 + m*d2 - lo2`` (a contiguous range; ``(0, 0)`` if none)."""
    o2, k2 = t2.shape
    direct = np.arange(o2)[:, None] * s2 + np.arange(k2)[None, :] * d2 - lo2
    inside = np.flatnonzero(np.all((t2 == direct) & (t2 >= 0), axis=1))
    if inside.size == 0:
        return 0, 0
    c0, c1 = int(inside[0]), int(inside[-1]) + 1
    assert c1 - c0 == inside.size, "interior columns are contiguous"
    return c0, c1


def tiled(g: Geometry) -> bool:
    """Windows that tile the input: stride == kernel, no padding, no dilation, no
    ceil_mode room - each input element lies in at most one window."""
    return (
        g.stride == g.kernel
        and all(d == 1 for d in g.dilation)
        and not any(lo or hi for lo, hi in g.pads)
        and not any(g.extra)
    )


def is_2x2(g: Geometry) -> bool:
    """Tiled 2x2 windows (2-d, or 3-d with a depth-1 kernel): kernels of their own."""
    return tiled(g) and k3(g.kernel) == (1, 2, 2)


def k3(v: tuple[int, ...]) -> tuple[int, ...]:
    return (1,) * (3 - len(v)) + tuple(v)


class LazyTables:
    """:func:`tables` of a geometry, built on first use: the 2x2 pool's backward needs only
    the winners' positions, so its forward (a batch-1 forward's pools: 5-10 us of a
    call on 14x14 planes) builds no tables that only ``return_indices`` reads."""

    __slots__ = ("_g", "_mode", "_tables")

    def __init__(self, g: Geometry, mode: str | None) -> None:
        self._g, self._mode = g, mode
        self._tables: list[np.ndarray] | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._tables is None:
            self._tables = tables(self._g, self._mode)
        return iter(self._tables)


@dataclass
class Selected:
    """What the compiled max/min pool keeps: each winner's position in its window
    (scan order over the kernel) and the index tables that map it to the input."""

    pos: np.ndarray  # (P, o0, o1, o2) int8 (int32 for windows over 127 elements)
    tables: list[np.ndarray] | LazyTables
    in3: tuple[int, ...]  # the input's 3 spatial dims as the kernels see them

    def flat_indices(self) -> np.ndarray:
        """Flat input index of each winner (-1: a zero from padding), like ``pos``."""
        t0, t1, t2 = self.tables
        k1, k2 = t1.shape[1], t2.shape[1]
        e = self.pos.astype(np.int64)
        o0, o1, o2 = self.pos.shape[1:]
        si = t0[np.arange(o0)[:, None, None], e // (k1 * k2)]
        sj = t1[np.arange(o1)[None, :, None], e // k2 % k1]
        sm = t2[np.arange(o2)[None, None, :], e % k2]
        flat = (si * self.in3[1] + sj) * self.in3[2] + sm
        return np.where((si < 0) | (sj < 0) | (sm < 0), -1, flat)
