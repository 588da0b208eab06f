"""Depthwise stride-1 convolution on explicit SIMD vectors: one (image, channel) plane
per job, padded into a small buffer that stays in cache (the "stencil" path)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numba import njit

from .... import geometry
from ....windows import pad
from ..simd import vectors, vfma, vload, vstore
from ..threads import KERNEL, parallel_for
from .layout import _as3, _entries, _ro, _store_plan, out_size
from .relayout import _pad_plane
from .tile import LANES, STENCIL_Q

_S = vectors(STENCIL_Q)  # a block of the stencil: STENCIL_Q positions, one channel
_szero, _sload, _sbroadcast = _S.zero, _S.load, _S.broadcast
_vpart, _vstore_lanes = vectors(LANES).part, vectors(LANES).store_lanes
_SV = STENCIL_Q // LANES  # vectors per block
_TAPS = 3  # kernel taps per pass of the weight gradient (three 16-lane sums)


@njit(inline="always")
def _store(y, oc_base, v, plan, ptr, vi):
    """Store the lanes of wide vector ``vi`` that are outputs: one masked store per
    run of consecutive outputs (``plan`` rows: first lane, end lane, y index of lane 0)."""
    for s in range(ptr[vi], ptr[vi + 1]):
        _vstore_lanes(y, oc_base + plan[s, 2], v, plan[s, 0], plan[s, 1])


def _stencil_kernel(vecs: int, lanes: int) -> Any:
    """The stencil kernel for blocks of ``vecs`` vectors of ``lanes`` (a factory that
    closes over them: numba's disk cache keys on the closure, see
    :func:`.wide._tile_kernels`)."""
    block = vecs * lanes

    @njit(**KERNEL, fastmath=True)
    def kernel(j0, j1, x, shape, lo, q, w, offs, ratio, plan, ptr, out_plane, y, buf):
        """Jobs (planes) ``j0 .. j1`` of :func:`depthwise_planes`; buf: room for J padded planes."""
        n_ch, d0, d1, d2 = shape[1], shape[2], shape[3], shape[4]
        q0, q1, q2 = q[0], q[1], q[2]
        c_out, n_in, taps = w.shape[0], w.shape[1], offs.shape[0]
        nq = (q0 * q1 * q2 + block - 1) // block
        length = buf.shape[0] // n_in
        held = -1  # the first input plane the buffer holds: jobs of one input plane pad it once
        for job in range(j0, j1):
            n = job // c_out
            o = job % c_out
            first = n * n_ch + (o // ratio) * n_in
            if first != held:
                for j in range(n_in):
                    at = ((first + j) * d0 * d1 * d2, j * length)
                    _pad_plane(x, at[0], d0, d1, d2, lo[0], lo[1], lo[2], q0, q1, q2, buf, at[1], length)
                held = first
            yb = (n * c_out + o) * out_plane
            for qb in range(nq):
                a = _szero()
                for j in range(n_in):
                    base = j * length + qb * block
                    for t in range(taps):
                        a = vfma(_sbroadcast(w[o, j, t]), _sload(buf, base + offs[t]), a)
                for vi in range(vecs):
                    _store(y, yb, _vpart(a, vi), plan, ptr, qb * vecs + vi)

    return kernel


_depthwise_planes = _stencil_kernel(_SV, LANES)


def depthwise_planes(
    x: np.ndarray,
    shape: np.ndarray,
    lo: np.ndarray,
    q: np.ndarray,
    w: np.ndarray,
    offs: np.ndarray,
    ratio: int,
    plan: np.ndarray,
    ptr: np.ndarray,
    out_plane: int,
    y: np.ndarray,
) -> None:
    """Depthwise stencil, one (image, output channel) plane per job:
    y[n, o, *out] = sum_{j, t} w[o, j, t] * xp[n, (o // ratio) * J + j][i + off[t]], J = w.shape[1],
    xp the input zero-padded (``lo`` before) to the plane ``q``, built per job in a small
    buffer that stays in cache - no padded copy of the batch.  The forward pass has J = 1
    and ratio = the channel multiplier; the input gradient J = multiplier, ratio = 1.
    One output channel x STENCIL_Q positions per register block.  x: flat (N, C, *in) of the
    5-entry ``shape``; y: flat (N, C_out, *out)."""
    nq, length = _blocks(int(q[0] * q[1] * q[2]), int(offs[-1]))
    assert ptr.shape[0] > nq * _SV, "the store plan does not cover every block"
    _run_planes(x, int(shape[0]), shape, lo, q, w, offs, ratio, _ro(plan), _ro(ptr), out_plane, y, nq, length)


def _blocks(plane: int, reach: int) -> tuple[int, int]:
    """The stencil's blocks over a padded plane, and the buffer length they read (whole vectors)."""
    nq = -(-plane // STENCIL_Q)
    return nq, -(-(nq * STENCIL_Q + reach) // 16) * 16


def _run_planes(
    x: np.ndarray,
    n: int,
    shape: np.ndarray,
    lo: np.ndarray,
    q: np.ndarray,
    w: np.ndarray,
    offs: np.ndarray,
    ratio: int,
    plan: np.ndarray,
    ptr: np.ndarray,
    out_plane: int,
    y: np.ndarray,
    nq: int,
    length: int,
) -> None:
    """:func:`depthwise_planes` with its blocks worked out and the plan read-only."""
    c_out, n_in, taps = w.shape
    jobs = n * c_out

    def run(j0: int, j1: int) -> None:  # each thread its own plane buffer
        buf = np.empty(n_in * length, dtype=np.float32)
        _depthwise_planes(j0, j1, x, shape, lo, q, w, offs, ratio, plan, ptr, out_plane, y, buf)

    parallel_for(run, jobs, work=jobs * nq * STENCIL_Q * n_in * taps)


@njit(**KERNEL, fastmath=True)  # 16-lane sums whatever the tile: cached as it is
def _depthwise_planes_grad(j0, j1, x, shape, lo, q, dy, out3, offs3, ratio, acc, xb, db):
    """Output channels ``j0 .. j1`` of :func:`depthwise_planes_grad`; xb, db: room for
    one padded plane each."""
    n_img, n_ch, d0, d1, d2 = shape[0], shape[1], shape[2], shape[3], shape[4]
    q0, q1, q2 = q[0], q[1], q[2]
    c_out, ntb = acc.shape[0], offs3.shape[0] // 3
    out_plane = out3[0] * out3[1] * out3[2]
    nv = (q0 * q1 * q2 + 15) // 16 * 16
    length = xb.shape[0]
    zero = np.int64(0)  # not the literal 0: _pad_plane then has one signature for all its calls
    for o in range(j0, j1):
        sums = acc[o]
        sums[:] = 0.0
        c = o // ratio
        for n in range(n_img):
            _pad_plane(x, (n * n_ch + c) * d0 * d1 * d2, d0, d1, d2, lo[0], lo[1], lo[2], q0, q1, q2, xb, zero, length)
            # dy at the plane's output positions (top-left), zero elsewhere
            src = (n * c_out + o) * out_plane
            _pad_plane(dy, src, out3[0], out3[1], out3[2], zero, zero, zero, q0, q1, q2, db, zero, length)
            for tb in range(ntb):
                a0 = vload(sums, tb * 48)
                a1 = vload(sums, tb * 48 + 16)
                a2 = vload(sums, tb * 48 + 32)
                s0, s1, s2 = offs3[tb * 3], offs3[tb * 3 + 1], offs3[tb * 3 + 2]
                for i in range(0, nv, 16):
                    d = vload(db, i)
                    a0 = vfma(d, vload(xb, i + s0), a0)
                    a1 = vfma(d, vload(xb, i + s1), a1)
                    a2 = vfma(d, vload(xb, i + s2), a2)
                vstore(sums, tb * 48, a0)
                vstore(sums, tb * 48 + 16, a1)
                vstore(sums, tb * 48 + 32, a2)


def depthwise_planes_grad(
    x: np.ndarray,
    shape: np.ndarray,
    lo: np.ndarray,
    q: np.ndarray,
    dy: np.ndarray,
    out3: np.ndarray,
    offs3: np.ndarray,
    ratio: int,
    acc: np.ndarray,
) -> None:
    """Per-lane partial sums of dw[o, t] = sum_{n, i} dy[n, o, i] * xp[n, o // ratio][i + off[t]]
    (xp as in :func:`depthwise_planes`): one output channel per job, image by image, three
    taps per pass over a plane held in cache.  dy: flat (N, C_out, *out3); offs3: offsets
    padded to a multiple of 3 with 0 (dropped after); acc: (C_out, ntb * 3 * 16), taps by
    lanes."""
    nv = -(-int(q[0] * q[1] * q[2]) // 16) * 16
    length = -(-(nv + int(offs3.max()) + 16) // 16) * 16
    c_out = acc.shape[0]

    def run(j0: int, j1: int) -> None:  # each thread its own plane buffers
        xb = np.empty(length, dtype=np.float32)
        db = np.empty(length, dtype=np.float32)
        _depthwise_planes_grad(j0, j1, x, shape, lo, q, dy, out3, offs3, ratio, acc, xb, db)

    parallel_for(run, c_out, work=int(shape[0]) * c_out * nv * offs3.shape[0])


def _dw_geometry(
    a: np.ndarray, pads: geometry.Pairs, mode: str, kernel: tuple[int, ...], dilation: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, ...], np.ndarray]:
    """For the plane kernels: the input (border modes padded here; zeros are padded in
    the kernels), its 5-entry shape, the zero padding before each dimension, the tap
    offsets in the padded plane, and that plane's shape (as a tuple and 3-entry array)."""
    if mode != "constant" and any(lo or hi for lo, hi in pads):
        a, pads = pad(a, pads, mode), tuple((0, 0) for _ in pads)
    shape, lo, offs, full, q3 = _plane_geometry(a.shape, tuple(pads), kernel, dilation)
    return np.ascontiguousarray(a, dtype=np.float32), shape, lo, offs, full, q3


@functools.lru_cache(maxsize=64)
def _plane_geometry(
    a_shape: tuple[int, ...], pads: geometry.Pairs, kernel: tuple[int, ...], dilation: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, ...], np.ndarray]:
    """The part of :func:`_dw_geometry` that depends on shapes only, cached (a layer's
    calls on one shape: 5-10 us of a batch-1 call).  The kernels only read these arrays."""
    full = tuple(s + lo + hi for s, (lo, hi) in zip(a_shape[2:], pads, strict=True))
    offs = _entries(full, kernel, dilation, (1,) * len(kernel), 1, 0)  # one row: the offsets
    shape = np.array(a_shape[:2] + (1,) * (5 - len(a_shape)) + a_shape[2:], dtype=np.int64)
    lo = _as3(tuple(p for p, _ in pads), 0)
    return shape, lo, offs, full, _as3(full, 1)


def depthwise(
    a: np.ndarray,
    w: np.ndarray,
    pads: geometry.Pairs,
    mode: str,
    kernel: tuple[int, ...],
    dilation: tuple[int, ...],
    ratio: int,
) -> np.ndarray:
    """Stride-1 depthwise convolution of a (N, C, *in) with w (C_out, J, *kernel): output
    channel o reads input channels (o // ratio) * J + j (see :func:`depthwise_planes`);
    returns (N, C_out, *out) float32."""
    if mode != "constant" and any(lo or hi for lo, hi in pads):
        a, pads = pad(a, pads, mode), tuple((0, 0) for _ in pads)
    a = np.ascontiguousarray(a, dtype=np.float32)
    shape, lo, offs, q3, out, plan, ptr, nq, length = _stencil_plan(a.shape, tuple(pads), kernel, dilation)
    c_out = w.shape[0]
    y = np.empty((a.shape[0], c_out) + out, dtype=np.float32)
    wt = np.ascontiguousarray(w.reshape(c_out, w.shape[1], -1), dtype=np.float32)
    plane = geometry.prod(out)
    _run_planes(a.ravel(), a.shape[0], shape, lo, q3, wt, offs, ratio, plan, ptr, plane, y.ravel(), nq, length)
    return y


@functools.lru_cache(maxsize=64)
def _stencil_plan(
    a_shape: tuple[int, ...], pads: geometry.Pairs, kernel: tuple[int, ...], dilation: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, ...], np.ndarray, np.ndarray, int, int]:
    """What :func:`depthwise` hands the kernels that depends on shapes only, cached: the
    plane geometry, the output size, the store plan (read-only) and the blocks."""
    shape, lo, offs, full, q3 = _plane_geometry(a_shape, pads, kernel, dilation)
    out = out_size(full, kernel, dilation, (1,) * len(kernel))
    plan, ptr = _store_plan(full, out, 1, 0)
    nq, length = _blocks(geometry.prod(full), int(offs[-1]))
    assert ptr.shape[0] > nq * _SV, "the store plan does not cover every block"
    return shape, lo, offs, q3, out, _ro(plan), _ro(ptr), nq, length


def depthwise_weight_grad(
    a: np.ndarray,
    dy: np.ndarray,
    pads: geometry.Pairs,
    mode: str,
    kernel: tuple[int, ...],
    dilation: tuple[int, ...],
    ratio: int,
) -> np.ndarray:
    """dw (C_out, 1, *kernel) of :func:`depthwise` (J = 1), given its input and dy."""
    a, shape, lo, offs, _, q3 = _dw_geometry(a, pads, mode, kernel, dilation)
    c_out = dy.shape[1]
    taps = offs.size
    ntb = -(-taps // _TAPS)
    offs3 = np.zeros(ntb * _TAPS, dtype=np.int64)
    offs3[:taps] = offs
    acc = np.empty((c_out, ntb * _TAPS * 16), dtype=np.float32)
    dy = np.ascontiguousarray(dy, dtype=np.float32)
    depthwise_planes_grad(a.ravel(), shape, lo, q3, dy.ravel(), _as3(dy.shape[2:], 1), offs3, ratio, acc)
    dw = acc.reshape(c_out, -1, 16).sum(axis=2, dtype=np.float32)[:, :taps]
    return np.ascontiguousarray(dw).reshape((c_out, 1) + kernel)
