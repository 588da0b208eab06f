"""Copies into and out of the direct convolution's layouts: the padded (and, when
strided, phase-split) wide rows (:func:`to_wide`), one padded plane (:func:`_pad_plane`),
and the phases' interleaving back into a plane (:func:`from_phases`)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ..im2col import _span
from ..simd import vload, vload_even, vload_lanes, vstore, vstore_lanes
from ..threads import KERNEL_O2, parallel_for


@njit(inline="always")
def _copy_row(a, start, d2, l2, q2, buf, row):
    """buf[row : row + q2] = l2 zeros, a[start : start + d2], zeros: in 16-lane vectors,
    the last one masked (slices cost ~10 ns of set-up each, and these rows are short)."""
    for w in range(l2):
        buf[row + w] = 0.0
    full = d2 - d2 % 16
    for w in range(0, full, 16):
        vstore(buf, row + l2 + w, vload(a, start + w))
    if full < d2:
        m = d2 - full
        vstore_lanes(buf, row + l2 + full, vload_lanes(a, start + full, 0, m), 0, m)
    for w in range(l2 + d2, q2):
        buf[row + w] = 0.0


@njit(**KERNEL_O2)
def _pad_plane(a, src, d0, d1, d2, l0, l1, l2, q0, q1, q2, buf, dst, length):
    """buf[dst : dst + length] = the plane of ``a`` at ``src`` (d0 x d1 x d2), zero-padded
    to q0 x q1 x q2 with (l0, l1, l2) zeros before, then zeros to ``length``.  A function
    of its own (called once per plane), compiled once for the kernels that call it."""
    for z in range(q0):
        u = z - l0
        for h in range(q1):
            v = h - l1
            row = dst + (z * q1 + h) * q2
            if 0 <= u < d0 and 0 <= v < d1:
                _copy_row(a, src + (u * d1 + v) * d2, d2, l2, q2, buf, row)
            else:
                for w in range(q2):
                    buf[row + w] = 0.0
    for i in range(dst + q0 * q1 * q2, dst + length):
        buf[i] = 0.0


@njit(inline="always")
def _copy_plane(a, src, d0, d1, d2, lo, q0, q1, q2, buf, base):
    """buf[base : base + q0*q1*q2] = the plane of ``a`` at ``src`` (d0 x d1 x d2) with
    ``lo`` zeros before it along each dimension and zeros after (rows through
    :func:`_copy_row`); inlined into each kernel that copies planes."""
    for z in range(q0):
        u = z - lo[0]
        for h in range(q1):
            v = h - lo[1]
            row = base + (z * q1 + h) * q2
            if 0 <= u < d0 and 0 <= v < d1:
                _copy_row(a, src + (u * d1 + v) * d2, d2, lo[2], q2, buf, row)
            else:
                buf[row : row + q2] = 0.0


@njit(**KERNEL_O2)
def _to_wide(j0, j1, a, shape, lo, q, rows, length, buf):
    """Jobs (a channel of an image) ``j0 .. j1`` of :func:`to_wide` with stride 1."""
    n_img, n_ch, d0, d1, d2 = shape[0], shape[1], shape[2], shape[3], shape[4]
    q0, q1, q2 = q[0], q[1], q[2]
    n = j0 % n_img  # then counted, not divided: short rows (1-D inputs) made the two
    c = j0 // n_img  # divisions per job a third of the copy's time
    for _ in range(j0, j1):
        base = rows[c] * length + n * q0 * q1 * q2
        _copy_plane(a, (n * n_ch + c) * d0 * d1 * d2, d0, d1, d2, lo, q0, q1, q2, buf, base)
        n += 1
        if n == n_img:  # the row is complete: zeros past its last image, to the row's end
            buf[base + q0 * q1 * q2 : (rows[c] + 1) * length] = 0.0
            n = 0
            c += 1


@njit(**KERNEL_O2)
def _to_wide_blocks(j0, j1, a, shape, lo, q, rows, length, buf, block):
    """Blocks of ``block`` images ``j0 .. j1`` of :func:`to_wide` with stride 1, channel
    by channel within a block: for short planes, whose channel-major copy over the whole
    batch reads a few cache lines every ``C * plane`` floats (lines shared by two
    channels fetched twice, a stride the prefetchers do not follow across pages), a
    block's input stays in cache while its channels are copied; each channel's rows of
    the block are still written as one run."""
    n_img, n_ch, d0, d1, d2 = shape[0], shape[1], shape[2], shape[3], shape[4]
    q0, q1, q2 = q[0], q[1], q[2]
    plane = q0 * q1 * q2
    for j in range(j0, j1):
        n_lo = j * block
        n_hi = n_lo + block if n_lo + block < n_img else n_img  # not min(): no helper to compile
        for c in range(n_ch):
            for n in range(n_lo, n_hi):
                base = rows[c] * length + n * plane
                _copy_plane(a, (n * n_ch + c) * d0 * d1 * d2, d0, d1, d2, lo, q0, q1, q2, buf, base)
            if n_hi == n_img:  # the row is complete: zeros past its last image, to the row's end
                buf[rows[c] * length + n_img * plane : (rows[c] + 1) * length] = 0.0


# Planes of at most this many floats are copied in blocks of images
# (:func:`_to_wide_blocks`, about BLOCK_BYTES of input a block, 8 blocks at least),
# larger ones channel by channel over the batch.  Whole conv1d k5 p2, one process,
# interleaved, paired medians blocks / channel by channel (Intel Xeon under KVM, 2
# threads): 512x32x40 forward 0.83 backward 0.86, 256x16x64 0.84 / 0.84 natively; 0.97 /
# 0.97 and 0.97 / 0.94 with numba for Haswell; 64x8x100 (0.3 ms) 1.00-1.03.  Image by image
# without blocks: 64 output channels' rows written at once made the backward 1.30x slower.
IMAGE_MAJOR_PLANE = 128
BLOCK_BYTES = 64 << 10


@njit(**KERNEL_O2)
def _to_wide_phases(j0, j1, a, shape, lo, q, st, rows, length, buf):
    """Jobs (a stride phase of a channel of an image) ``j0 .. j1`` of :func:`to_wide`."""
    n_img, n_ch, d0, d1, d2 = shape[0], shape[1], shape[2], shape[3], shape[4]
    q0, q1, q2 = q[0], q[1], q[2]
    s0, s1, s2 = st[0], st[1], st[2]
    n_ph = s0 * s1 * s2
    ph = j0 % n_ph  # counted from here on, not divided (see _to_wide)
    n = j0 // n_ph % n_img
    c = j0 // n_ph // n_img
    for _ in range(j0, j1):
        r2 = ph % s2
        r1 = ph // s2 % s1
        r0 = ph // (s1 * s2)
        base = (rows[c] + ph) * length + n * q0 * q1 * q2
        src = (n * n_ch + c) * d0 * d1 * d2
        # columns w*s2 + r2 - lo2 inside the row are w in [w_lo, w_hi) (found once per
        # job: two floor divisions per row cost more than a short row's copy)
        off = r2 - lo[2]
        w_lo, w_hi = _span(q2, s2, off, d2)
        for z in range(q0):
            u = z * s0 + r0 - lo[0]
            for h in range(q1):
                v = h * s1 + r1 - lo[1]
                row = base + (z * q1 + h) * q2
                if 0 <= u < d0 and 0 <= v < d1:
                    start = src + (u * d1 + v) * d2
                    for w in range(w_lo):
                        buf[row + w] = 0.0
                    if s2 == 2:  # every other element: vectors, shuffled
                        for w in range(w_lo, w_hi, 16):
                            m = w_hi - w if w_hi - w < 16 else 16
                            vstore_lanes(buf, row + w, vload_even(a, start + 2 * w + off, m), 0, m)
                    else:
                        for w in range(w_lo, w_hi):
                            buf[row + w] = a[start + w * s2 + off]
                    for w in range(w_hi, q2):
                        buf[row + w] = 0.0
                else:
                    buf[row : row + q2] = 0.0
        if n == n_img - 1:  # the phase row is complete: zeros past its last image
            buf[base + q0 * q1 * q2 : (rows[c] + ph + 1) * length] = 0.0
        ph += 1
        if ph == n_ph:
            ph = 0
            n += 1
            if n == n_img:
                n = 0
                c += 1


def to_wide(
    a: np.ndarray,
    shape: np.ndarray,
    lo: np.ndarray,
    q: np.ndarray,
    st: np.ndarray,
    rows: np.ndarray,
    length: int,
    buf: np.ndarray,
    *,
    strided: bool | None = None,
) -> None:
    """buf[rows[c] + ph, n*P : (n+1)*P] = phase ``ph`` of channel c of image n, zero-padded
    (``lo`` zeros before each dimension): the padded plane's elements at coordinates
    ``r + st*m`` for the phase's remainders ``r``, laid out as a ``q`` plane; and zeros
    from the last image's plane to the row's end (``length``).  With stride
    1 there is one phase, the padded plane itself.  a: flat (N, C, D, H, W) of ``shape``;
    buf: flat (R rows of ``length``).  Rows are copied as 16-lane vectors (stride 2: every
    other element, shuffled), the last one masked.  Strided layouts have a kernel of
    their own, compiled only when a strided convolution runs.  ``strided``: whether ``st``
    holds a stride above 1, if the caller knows (None: found from ``st``)."""
    jobs = int(shape[0]) * int(shape[1])
    work = jobs * int(q[0]) * int(q[1]) * int(q[2])
    if strided is None:
        strided = bool((st != 1).any())
    size = int(shape[2]) * int(shape[3]) * int(shape[4])
    if not strided and size <= IMAGE_MAJOR_PLANE:
        block = max(1, min(BLOCK_BYTES // (4 * size * int(shape[1])), int(shape[0]) // 8))  # 8 blocks at least
        n_blocks = -(-int(shape[0]) // block)
        parallel_for(_to_wide_blocks, n_blocks, a, shape, lo, q, rows, length, buf, block, work=work)
    elif not strided:
        parallel_for(_to_wide, jobs, a, shape, lo, q, rows, length, buf, work=work)
    else:
        phases = int(st[0]) * int(st[1]) * int(st[2])
        parallel_for(_to_wide_phases, jobs * phases, a, shape, lo, q, st, rows, length, buf, work=work * phases)


@njit(**KERNEL_O2)
def _from_phases(j0, j1, ys, sph, sp, q, st, lo, first, at, count, bias, nb, flat, n0, n1, n2):
    """Planes ``j0 .. j1`` of :func:`from_phases` (dx flat, planes of n0 x n1 x n2; flattened
    by the caller: a ``reshape`` in the kernel cost 0.2 s of its compilation)."""
    s0, s1, s2 = st[0], st[1], st[2]
    q1, q2 = q[1], q[2]
    for p in range(j0, j1):
        b = bias[p % nb]
        for u in range(n0):
            uu = u + lo[0]
            ph0, m0 = uu % s0 * s1, uu // s0
            for v in range(n1):
                vv = v + lo[1]
                ph = (ph0 + vv % s1) * s2
                row = p * sp + (m0 * q1 + vv // s1) * q2
                out = flat[((p * n0 + u) * n1 + v) * n2 :]  # views from 0: no wraparound selects
                if s2 == 2 and count[0] == count[1]:  # pairs (phase 0, phase 1): an interleaving store
                    a = ys[ph * sph + row + at[0] :]
                    c = ys[(ph + 1) * sph + row + at[1] :]
                    if first[0] == 0:
                        for k in range(count[0]):
                            out[2 * k] = a[k] + b
                            out[2 * k + 1] = c[k] + b
                    else:
                        for k in range(count[0]):
                            out[2 * k] = c[k] + b
                            out[2 * k + 1] = a[k] + b
                    continue
                for r2 in range(s2):
                    src = ys[(ph + r2) * sph + row + at[r2] :]
                    dst = out[first[r2] :]
                    for k in range(count[r2]):
                        dst[k * s2] = src[k] + b


def from_phases(
    ys: np.ndarray,
    q: tuple[int, ...],
    st: np.ndarray,
    lo: np.ndarray,
    dx: np.ndarray,
    *,
    phase_major: bool = True,
    bias: np.ndarray | None = None,
) -> None:
    """The inverse of the phase split (depth-to-space): dx[p, u, v, w] = phase (U%s0,
    V%s1, W%s2) of plane p of ys at (U//s0, V//s1, W//s2), plus ``bias[p % len(bias)]``
    when given, where (U, V, W) = (u, v, w) + lo.  ys: flat float32, its planes of ``q``
    (3 dims) ordered (S, P) when ``phase_major`` (the phase split's own order), else
    (P, S) (a convolution whose output channel ``c*S + R`` is phase R of channel c); dx:
    (P, D, H, W) float32, every element covered by a phase.  Row by row and phase by
    phase, divisions hoisted out of the rows: per last-dim phase r2, its first column,
    that column's index in the phase, and its number of columns."""
    n_ph, plane = int(np.prod(st)), q[0] * q[1] * q[2]
    n_p = dx.shape[0]
    # checks, not asserts (python -O would drop them): the kernel reads without bounds checks
    if ys.size != n_ph * n_p * plane or ys.dtype != np.float32 or dx.dtype != np.float32:
        raise ValueError(
            f"from_phases: ys ({ys.size} {ys.dtype}) does not hold {n_ph} phases of {n_p} float32 planes {q}"
        )
    if any((n - 1 + a) // s >= qq for n, a, s, qq in zip(dx.shape[1:], lo, st, q, strict=True)):
        raise ValueError(f"from_phases: phase planes {q} do not cover dx {dx.shape[1:]} at offset {tuple(lo)}")
    sph, sp = (n_p * plane, plane) if phase_major else (plane, n_ph * plane)
    s2, n2 = int(st[2]), dx.shape[3]
    r2 = np.arange(s2, dtype=np.int64)
    first = (r2 - lo[2]) % s2
    at = (first + lo[2]) // s2
    count = (n2 - first + s2 - 1) // s2
    b = np.zeros(1, np.float32) if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
    q3 = np.asarray(q, dtype=np.int64)
    if not dx.flags.c_contiguous:  # written through a flat view
        raise ValueError("from_phases: dx must be C-contiguous")
    args = (ys, sph, sp, q3, st, lo, first, at, count, b, b.size, dx.reshape(-1), *dx.shape[1:])
    parallel_for(_from_phases, n_p, *args, work=dx.size)
