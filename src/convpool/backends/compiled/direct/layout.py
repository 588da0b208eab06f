"""The wide layout's geometry (:class:`Wide`, stride phases, kernel entries, where the
results go) for the direct convolution; the copies themselves are in :mod:`.relayout`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np

from .... import geometry
from ....windows import pad
from .. import runtime as _kernels
from .relayout import to_wide
from .tile import BLOCK_Q, LANES, STENCIL_Q


def _plane_strides(padded: tuple[int, ...]) -> tuple[int, ...]:
    """Element strides of a C-order plane of shape ``padded``."""
    return tuple(geometry.prod(padded[i + 1 :]) for i in range(len(padded)))


def flat_offset(plane: tuple[int, ...], coords: tuple[int, ...]) -> int:
    """Flat index of ``coords`` in a C-order plane."""
    return sum(c * step for c, step in zip(coords, _plane_strides(plane), strict=True))


def phase_plane(full: tuple[int, ...], stride: tuple[int, ...]) -> tuple[int, ...]:
    """The plane of one stride phase of a padded plane ``full``: ceil(full / stride)."""
    return tuple(-(-f // s) for f, s in zip(full, stride, strict=True))


def _tap_phases(
    plane: tuple[int, ...], kernel: tuple[int, ...], dilation: tuple[int, ...], stride: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """For every kernel tap (C order): its phase (which of the prod(stride) phase rows it
    reads) and its offset in the phase plane ``plane``.  Tap coordinate ``k*d`` reads
    phase ``k*d % s`` at shift ``k*d // s``: output m reads padded ``s*m + k*d``."""
    grids = np.meshgrid(*[np.arange(k) * d for k, d in zip(kernel, dilation, strict=True)], indexing="ij")
    phase = np.zeros(grids[0].shape, dtype=np.int64)
    offset = np.zeros(grids[0].shape, dtype=np.int64)
    for g, s, step in zip(grids, stride, _plane_strides(plane), strict=True):
        phase = phase * s + g % s
        offset = offset + g // s * step
    return phase.ravel(), offset.ravel()


@functools.lru_cache(maxsize=64)
def _entries(
    plane: tuple[int, ...],
    kernel: tuple[int, ...],
    dilation: tuple[int, ...],
    stride: tuple[int, ...],
    cg: int,
    length: int,
) -> np.ndarray:
    """The kernels' entries, one per (input channel c < cg, tap t) in that order: the flat
    offset ``row * length + off`` in a group's rows of a :class:`Wide` layout whose rows
    are ``length`` long, ``prod(stride)`` phase rows per channel.  Cached, read-only."""
    phase, offset = _tap_phases(plane, kernel, dilation, stride)
    n_phases = geometry.prod(stride)
    rows = np.arange(cg, dtype=np.int64)[:, None] * n_phases + phase[None, :]
    ents = np.ascontiguousarray((rows * length + offset[None, :]).ravel())
    ents.setflags(write=False)
    return ents


_F = TypeVar("_F", bound=Callable[..., Any])


def _remembered(fn: _F) -> _F:
    """``fn`` remembered per arguments (an lru_cache of 256) when they are hashable - a
    Geometry's tuples - and computed afresh when they are not (lists): a batch-1 conv's
    set-up called :func:`reach` and :func:`shared_plane` at 4-7 us a call."""
    cached = functools.lru_cache(maxsize=256)(fn)

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        try:
            return cached(*args)
        except TypeError:  # unhashable
            return fn(*args)

    return cast(_F, call)


@_remembered
def reach(
    plane: tuple[int, ...], kernel: tuple[int, ...], dilation: tuple[int, ...], stride: tuple[int, ...] | None = None
) -> int:
    """The largest tap offset in a (phase) plane: how far past a position its window reads."""
    stride = stride or (1,) * len(kernel)
    return sum(
        (k - 1) * d // s * step for k, d, s, step in zip(kernel, dilation, stride, _plane_strides(plane), strict=True)
    )


@_remembered
def shared_plane(
    size: tuple[int, ...], pads: geometry.Pairs, kernel: tuple[int, ...], dilation: tuple[int, ...]
) -> tuple[int, ...]:
    """The plane a stride-1 convolution's :class:`Wide` layout lays each image in when
    neighbours share their zero padding: ``size + max(lo, hi)`` per dimension instead of
    ``size + lo + hi`` (and at least the output's size).

    Each image sits at offset ``lo`` of its plane, zeros after it.  A window that runs
    off a row (column) then reads the zeros between two rows - the right padding of one
    row is the left padding of the next - and one set of zero rows (planes) lies between
    two images, so ``max(lo, hi)`` zeros serve both sides.  Output ``c`` of a row reads
    columns ``c + k*d - lo`` of the data, in ``[-lo, size + hi)``: a column below 0 lands
    in the previous row's trailing zeros, one at or past ``size`` in this row's, whichever
    dimension runs off.  A 28x28 plane padded by 1 becomes 29x29 (841 positions per 784
    outputs) instead of 30x30 (900); a 1-D row of 40 padded by 2, 42 instead of 44."""
    return tuple(
        s + max(lo, hi, lo + hi - d * (k - 1)) for s, (lo, hi), k, d in zip(size, pads, kernel, dilation, strict=True)
    )


def _as3(v: tuple[int, ...], fill: int) -> np.ndarray:
    return np.array((fill,) * (3 - len(v)) + tuple(v), dtype=np.int64)


class Wide:
    """A batch laid out for the kernels: ``rows`` of ``length`` floats, channel ``c``
    of image ``n`` padded and flattened at ``[n * plane, (n + 1) * plane)`` of row
    ``row_of[c]`` (default: row c), zeros beyond; rows no channel maps to are zero.
    Rows start on 64-byte boundaries.

    ``stride``: each padded plane is split into its ``prod(stride)`` phases (the
    elements at ``r + stride * m`` for each remainder ``r``), each a ``plane`` of
    ``ceil(padded / stride)``, channel c's phases in rows ``c * phases + ph``.  A strided
    convolution then reads every tap as a shifted run of one phase row, as a stride-1
    one does (:func:`_entries`).

    ``margin``: zeros before the first row, so that entries may reach back (one layout
    of the output gradient serves both gradients, see :func:`_direct_backward`).
    ``plane``: the plane each image is laid out in, at offset ``lo`` (stride 1, zero
    padding): :func:`shared_plane` lets neighbouring rows and images share their zeros;
    default the padded plane ``size + lo + hi``.  ``full`` stays the padded size.
    ``scratch``: a layout that does not outlive the call goes into the reused workspace
    (fresh memory's page faults cost as much as the copy itself)."""

    def __init__(
        self,
        a: np.ndarray,
        pads: geometry.Pairs,
        mode: str,
        reach: int,
        row_of: np.ndarray | None = None,
        rows: int = 0,
        *,
        stride: tuple[int, ...] | None = None,
        margin: int = 0,
        scratch: bool = False,
        plane: tuple[int, ...] | None = None,
    ) -> None:
        if mode != "constant" and any(lo or hi for lo, hi in pads):
            a, pads = pad(a, pads, mode), tuple((0, 0) for _ in pads)
            plane = None
        self.stride = stride = tuple(stride) if stride else (1,) * (a.ndim - 2)
        if plane is not None and any(s != 1 for s in stride):  # checks, not asserts: the kernels have no bounds checks
            raise ValueError(f"a shared plane needs stride 1, got stride {stride}")
        n_rows = rows if row_of is not None else None
        try:  # the callers' pads are tuples of int pairs (a Geometry's): a key as they are
            plan = _layout_plan(a.shape, pads, int(reach), stride, n_rows, plane)
        except TypeError:  # unhashable: lists
            pads = tuple((int(lo), int(hi)) for lo, hi in pads)
            plan = _layout_plan(a.shape, pads, int(reach), stride, n_rows, plane)
        self.phases, self.full, self.padded, self.plane, self.q_len, self.length = plan[:6]
        assert row_of is None or self.phases == 1
        size = plan[6] * self.length
        self.margin = -(-margin // 16) * 16  # zeros before row 0, for reads shifted back
        total = self.margin + size
        flat = _kernels.workspace((total,), np.float32) if scratch else _kernels.recycled_empty(total, np.float32)
        if self.margin:
            flat[: self.margin] = 0
        self.base = flat  # what the kernels index: entries are offset by the margin
        self.buf = flat[self.margin :].reshape(-1, self.length)
        shape, lo, q3, s3, rows_of_channels = plan[7:]
        if row_of is None:
            row_of = rows_of_channels
        elif row_of.size < rows:  # rows no channel maps to (to_wide zeros the rest of each row it fills)
            unmapped = np.ones(rows, dtype=bool)
            unmapped[row_of] = False
            self.buf[unmapped] = 0
        values = np.ascontiguousarray(a, dtype=np.float32).ravel()
        to_wide(values, shape, lo, q3, s3, row_of, self.length, self.buf.ravel(), strided=self.phases > 1)


@functools.lru_cache(maxsize=128)
def _layout_plan(
    shape: tuple[int, ...],
    pads: geometry.Pairs,
    reach: int,
    stride: tuple[int, ...],
    rows: int | None,
    shared: tuple[int, ...] | None = None,
) -> tuple[Any, ...]:
    """What a :class:`Wide` layout of an input of ``shape`` (padded already for a border
    mode) works out from the geometry alone, once per geometry: phases, full and phase
    plane, positions, row length, row count, and the kernels' small arrays (never
    written: the kernels only read them; writable, as the kernels' signatures expect)."""
    n, c = shape[:2]
    nd = len(shape) - 2
    phases = geometry.prod(stride)
    full = tuple(s + lo + hi for s, (lo, hi) in zip(shape[2:], pads, strict=True))
    padded = shared or phase_plane(full, stride)  # the plane the kernels see
    if shared is not None and any(p < s + lo for p, s, (lo, _) in zip(shared, shape[2:], pads, strict=True)):
        raise ValueError(f"plane {shared} too small for size {shape[2:]} with leading padding {pads}")
    plane = geometry.prod(padded)
    q_len = n * plane
    # blocks of BLOCK_Q read up to BLOCK_Q - 1 past q_len, plus the largest tap offset;
    # a multiple of 16 floats, so that every row stays 64-byte aligned
    length = -(-(-(-q_len // BLOCK_Q) * BLOCK_Q + reach + BLOCK_Q) // 16) * 16
    n_rows = rows if rows is not None else c * phases
    shape5 = np.array((n, c) + (1,) * (3 - nd) + shape[2:], dtype=np.int64)
    lo = _as3(tuple(p for p, _ in pads), 0)
    rows_of_channels = np.arange(c, dtype=np.int64) * phases
    return (
        phases,
        full,
        padded,
        plane,
        q_len,
        length,
        n_rows,
        shape5,
        lo,
        _as3(padded, 1),
        _as3(stride, 1),
        rows_of_channels,
    )


@functools.lru_cache(maxsize=64)
def _store_plan(
    padded: tuple[int, ...], out: tuple[int, ...], n: int, img_stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """Where the wide results go: for every vector of LANES wide positions (enough for
    whole blocks of BLOCK_Q and of STENCIL_Q), its runs of consecutive outputs as rows (first lane, end
    lane, y index of lane 0) - CSR, ``ptr`` indexing the rows of each vector.  Depends
    on the geometry only, so it is cached."""
    plane_in = geometry.prod(padded)
    q_len = n * plane_in
    nvec = max(-(-q_len // block) * block for block in (BLOCK_Q, STENCIL_Q)) // LANES
    q = np.arange(nvec * LANES, dtype=np.int64)
    img, rest = np.divmod(q, plane_in)
    coords = np.unravel_index(rest, padded)
    valid = img < n
    index = img * img_stride
    for c, o, step in zip(coords, out, _plane_strides(out), strict=True):
        valid &= c < o
        index = index + c * step
    lane = q % LANES
    prev_ok = np.zeros_like(valid)
    prev_ok[1:] = valid[:-1] & valid[1:] & (index[1:] == index[:-1] + 1)
    starts = np.flatnonzero(valid & ((lane == 0) | ~prev_ok))
    ends_mask = valid & ((lane == LANES - 1) | ~np.append(prev_ok[1:], False))
    ends = np.flatnonzero(ends_mask) + 1
    plan = np.stack([starts % LANES, (ends - 1) % LANES + 1, index[starts] - starts % LANES], axis=1)
    ptr = np.searchsorted(starts // LANES, np.arange(nvec + 1)).astype(np.int64)
    plan.setflags(write=False)
    ptr.setflags(write=False)
    return plan, ptr


def _ro(a: np.ndarray) -> np.ndarray:
    """A read-only view: every caller passes the tables read-only, so the kernel has one
    signature (numba compiles one per combination of writable and read-only arrays)."""
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


def out_size(
    full: tuple[int, ...], kernel: tuple[int, ...], dilation: tuple[int, ...], stride: tuple[int, ...]
) -> tuple[int, ...]:
    """Output size of a convolution of a padded plane ``full``."""
    return tuple((f - d * (k - 1) - 1) // s + 1 for f, k, d, s in zip(full, kernel, dilation, stride, strict=True))
