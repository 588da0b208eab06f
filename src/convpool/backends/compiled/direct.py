"""Direct (im2col-free) float32 convolution on explicit SIMD vectors.

The idea: pad every input plane and lay the whole batch out channel by channel,
``src[c, n * P + i]`` with ``P`` the padded plane size and ``i`` the flat index in
the padded plane.  With stride 1, output position ``i`` (in padded-plane
coordinates) reads input ``i + off[t]`` for kernel tap ``t``, where ``off[t]``
is one number per tap (``kd*dd*Hp*Wp + kh*dh*Wp + kw*dw``).  So every tap is a
shifted, contiguous run of the source, for 1-, 2- and 3-D alike and across
images, and the convolution is

    y[o, i] = sum over c, t of  w[o, c, t] * src[c, i + off[t]]

computed "wide": every ``i`` of the padded planes, positions that are not
outputs (the last ``k-1`` columns of a row, the rows past the output, the
room between images) are computed and never stored.  The micro-kernel keeps a
4 output channels x 64 positions block of sums in 16 vector registers and
streams the source once per (channel, tap) "entry" - no column matrix, no
matrix-product call.

Strided convolutions split each padded plane into its stride phases (the
elements ``r + s*m`` for each remainder ``r``): output ``m`` reads padded
``s*m + k*d``, which is phase ``k*d % s`` at ``m + k*d // s`` - again a shifted run,
of one phase row.  A 1x1 convolution needs no layout at all: it reads the input
where it lies (:func:`pointwise`).

The backward pass reuses the two kernels: the input gradient is the convolution of
the output gradient (padded by ``dilation * (k - 1)``) with the flipped, transposed
weights - for a strided conv, phase by phase (:func:`input_grad_strided`) - and the
weight gradient is the same shifted-run product reduced over positions instead of
channels (:func:`weight_grad`).

Measured (``convpool bench``, ResNet-block case 32x64x56x56, 64->64, 3x3, forward
including the layout copy): 334-365 GFLOP/s on 2 cores, where NumPy's float32 matrix
product reaches 247-253 GFLOP/s on this machine.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit

from ... import geometry
from ...windows import pad
from . import runtime as _kernels
from .im2col import _span
from .simd import vfma, vload, vload_even, vload_lanes, vpart, vstore, vstore_lanes, wbroadcast, wload, wzero
from .threads import KERNEL, parallel_for

BLOCK_OC = 4  # output channels per micro-kernel block
BLOCK_Q = 64  # positions per block: 4 vectors of 16 lanes
DW_OC = 5  # output channels per weight-gradient block
DW_TAPS = 3  # kernel taps per weight-gradient block
DW_CHUNK = 512  # positions per weight-gradient pass (keeps the sources in L2)


# --- kernels -------------------------------------------------------------------------
# Each kernel computes a range of independent jobs, ``kernel(j0, j1, *args)``; the
# function of the same name without the underscore runs it over all jobs on the
# kernel threads (:func:`convpool.backends.compiled.threads.parallel_for`).


@njit(inline="always")
def _store(y, oc_base, v, plan, ptr, vi):
    """Store the lanes of wide vector ``vi`` that are outputs: one masked store per
    run of consecutive outputs (``plan`` rows: first lane, end lane, y index of lane 0)."""
    for s in range(ptr[vi], ptr[vi + 1]):
        vstore_lanes(y, oc_base + plan[s, 2], v, plan[s, 0], plan[s, 1])


@njit(**KERNEL, fastmath=True)
def _conv_wide(j0, j1, src, gstride, wp, ents, groups, co, q_len, plan, ptr, plane, y, n_img, img_src, img_y):
    """Jobs ``j0 .. j1`` of :func:`conv_wide`: one block of 4 output channels x 64
    positions each, the sums in four 64-lane vectors (16 registers of 16 floats)."""
    nb = (co + BLOCK_OC - 1) // BLOCK_OC
    n_ent = ents.shape[0]
    nq = (q_len + BLOCK_Q - 1) // BLOCK_Q
    for job in range(j0, j1):
        b = job % nb  # output-channel blocks fastest: they share the source block in cache
        gq = job // nb
        qb = gq % nq
        gn = gq // nq
        gi = gn % groups
        img = gn // groups
        a0 = a1 = a2 = a3 = wzero()
        xrow = img * img_src + gi * gstride + qb * BLOCK_Q
        wrow = (gi * nb + b) * n_ent * BLOCK_OC
        for e in range(n_ent):
            x = wload(src, xrow + ents[e])
            k = wrow + e * BLOCK_OC
            a0 = vfma(wbroadcast(wp[k]), x, a0)
            a1 = vfma(wbroadcast(wp[k + 1]), x, a1)
            a2 = vfma(wbroadcast(wp[k + 2]), x, a2)
            a3 = vfma(wbroadcast(wp[k + 3]), x, a3)
        o = b * BLOCK_OC
        yb = img * img_y + (gi * co + o) * plane
        for r in range(min(BLOCK_OC, co - o)):  # loops of 4 the compiler unrolls
            a = a0 if r == 0 else a1 if r == 1 else a2 if r == 2 else a3
            for vi in range(BLOCK_Q // 16):
                _store(y, yb + r * plane, vpart(a, vi), plan, ptr, qb * 4 + vi)


def conv_wide(
    src: np.ndarray,
    gstride: int,
    wp: np.ndarray,
    ents: np.ndarray,
    groups: int,
    co: int,
    q_len: int,
    plan: np.ndarray,
    ptr: np.ndarray,
    plane: int,
    y: np.ndarray,
    n_img: int,
    img_src: int,
    img_y: int,
) -> None:
    """y[n, g*co + o, *out] = sum_e w[g, o, e] * src[g*gstride + ents[e] + i]  (flat src).

    An entry ``e`` is one (input channel, kernel tap) pair: its source row and the tap's
    offset in the row, ``row * length + off`` (:func:`_entries`).  wp: flat (groups,
    ceil(co/4), E, 4) packed weights (zero past co); y: flat (N, groups*co, plane).
    ``q_len`` positions, through the store plan; or, with ``n_img`` > 1, ``q_len``
    positions for each of n_img images, image n's source at ``n * img_src`` and its
    output at ``n * img_y`` (a 1x1 conv reads the input where it lies)."""
    nb = -(-co // BLOCK_OC)
    jobs = n_img * groups * nb * -(-q_len // BLOCK_Q)
    args = (src, gstride, wp, _ro(ents), groups, co, q_len, _ro(plan), _ro(ptr), plane, y, n_img, img_src, img_y)
    parallel_for(_conv_wide, jobs, *args, work=jobs * ents.shape[0] * BLOCK_OC * BLOCK_Q)


def _ro(a: np.ndarray) -> np.ndarray:
    """A read-only view: every caller passes the tables read-only, so the kernel has one
    signature (numba compiles one per combination of writable and read-only arrays)."""
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


@njit(**KERNEL, fastmath=True)
def _weight_grad_wide(j0, j1, src, gstride, dyw, ld, ents3, groups, nb, q_len, parts, acc, sums):
    """Parts ``j0 .. j1`` of :func:`weight_grad_wide`."""
    ntb = ents3.shape[0] // 3
    span = ((q_len + parts - 1) // parts + 15) // 16 * 16
    for p in range(j0, j1):
        q_lo = p * span
        q_hi = min(q_len, q_lo + span)
        for c0 in range(q_lo, q_hi, DW_CHUNK):
            c1 = min(q_hi, c0 + DW_CHUNK)
            for job in range(groups * nb * ntb):
                tb = job % ntb
                rest = job // ntb
                b = rest % nb
                gi = rest // nb
                base = ((((p * groups + gi) * nb + b) * ntb + tb) * 15) * 16
                a00 = vload(acc, base + 0)
                a01 = vload(acc, base + 16)
                a02 = vload(acc, base + 32)
                a10 = vload(acc, base + 48)
                a11 = vload(acc, base + 64)
                a12 = vload(acc, base + 80)
                a20 = vload(acc, base + 96)
                a21 = vload(acc, base + 112)
                a22 = vload(acc, base + 128)
                a30 = vload(acc, base + 144)
                a31 = vload(acc, base + 160)
                a32 = vload(acc, base + 176)
                a40 = vload(acc, base + 192)
                a41 = vload(acc, base + 208)
                a42 = vload(acc, base + 224)
                xrow = gi * gstride
                s0 = xrow + ents3[tb * 3 + 0]
                s1 = xrow + ents3[tb * 3 + 1]
                s2 = xrow + ents3[tb * 3 + 2]
                drow = (gi * nb + b) * 5 * ld
                for q in range(c0, c1, 16):
                    d0 = vload(dyw, drow + q)
                    d1 = vload(dyw, drow + 1 * ld + q)
                    d2 = vload(dyw, drow + 2 * ld + q)
                    d3 = vload(dyw, drow + 3 * ld + q)
                    d4 = vload(dyw, drow + 4 * ld + q)
                    x = vload(src, s0 + q)
                    a00 = vfma(d0, x, a00)
                    a10 = vfma(d1, x, a10)
                    a20 = vfma(d2, x, a20)
                    a30 = vfma(d3, x, a30)
                    a40 = vfma(d4, x, a40)
                    x = vload(src, s1 + q)
                    a01 = vfma(d0, x, a01)
                    a11 = vfma(d1, x, a11)
                    a21 = vfma(d2, x, a21)
                    a31 = vfma(d3, x, a31)
                    a41 = vfma(d4, x, a41)
                    x = vload(src, s2 + q)
                    a02 = vfma(d0, x, a02)
                    a12 = vfma(d1, x, a12)
                    a22 = vfma(d2, x, a22)
                    a32 = vfma(d3, x, a32)
                    a42 = vfma(d4, x, a42)
                vstore(acc, base + 0, a00)
                vstore(acc, base + 16, a01)
                vstore(acc, base + 32, a02)
                vstore(acc, base + 48, a10)
                vstore(acc, base + 64, a11)
                vstore(acc, base + 80, a12)
                vstore(acc, base + 96, a20)
                vstore(acc, base + 112, a21)
                vstore(acc, base + 128, a22)
                vstore(acc, base + 144, a30)
                vstore(acc, base + 160, a31)
                vstore(acc, base + 176, a32)
                vstore(acc, base + 192, a40)
                vstore(acc, base + 208, a41)
                vstore(acc, base + 224, a42)
        n_sums = groups * nb * ntb * 15  # the part's per-lane sums, summed over the lanes
        for i in range(p * n_sums, (p + 1) * n_sums):
            total = np.float32(0.0)
            for lane in range(16):
                total += acc[i * 16 + lane]
            sums[i] = total


def weight_grad_wide(
    src: np.ndarray,
    gstride: int,
    dyw: np.ndarray,
    ld: int,
    ents3: np.ndarray,
    groups: int,
    nb: int,
    q_len: int,
    parts: int,
    acc: np.ndarray,
    sums: np.ndarray,
) -> None:
    """Partial sums of dw[g, o, e] = sum_i dyw[g*5nb + o, i] * src[g*gstride + ents3[e] + i].

    A block is 5 output channels x 3 entries (15 vector sums).  dyw: flat (groups * nb * 5
    rows of ``ld``), zero wherever i is not an output; ents3: the entries (see
    :func:`conv_wide`) padded to a multiple of 3 (extra ones read offset 0 and are
    dropped); acc: (parts, groups, nb, ntb, 5, 3, 16) float32, zeroed: per-lane sums.  Part
    ``p`` sums its own range of positions, in chunks of DW_CHUNK so that a chunk's sources
    stay in cache while every block passes over them, then its lanes into sums[p] (sums:
    like acc without the lanes; the caller adds the parts)."""
    work = q_len * ents3.shape[0] * nb * DW_OC
    args = (src, gstride, dyw, ld, ents3, groups, nb, q_len, parts, acc, sums)
    parallel_for(_weight_grad_wide, parts, *args, work=work)


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


@njit(**KERNEL)
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


@njit(**KERNEL, fastmath=True)
def _depthwise_planes(j0, j1, x, shape, lo, q, w, offs, ratio, plan, ptr, out_plane, y, buf):
    """Jobs (planes) ``j0 .. j1`` of :func:`depthwise_planes`; buf: room for J padded planes."""
    n_ch, d0, d1, d2 = shape[1], shape[2], shape[3], shape[4]
    q0, q1, q2 = q[0], q[1], q[2]
    c_out, n_in, taps = w.shape[0], w.shape[1], offs.shape[0]
    nq = (q0 * q1 * q2 + BLOCK_Q - 1) // BLOCK_Q
    length = buf.shape[0] // n_in
    for job in range(j0, j1):
        n = job // c_out
        o = job % c_out
        for j in range(n_in):
            c = (o // ratio) * n_in + j
            _pad_plane(
                x, (n * n_ch + c) * d0 * d1 * d2, d0, d1, d2, lo[0], lo[1], lo[2], q0, q1, q2, buf, j * length, length
            )
        yb = (n * c_out + o) * out_plane
        for qb in range(nq):
            a = wzero()
            for j in range(n_in):
                base = j * length + qb * BLOCK_Q
                for t in range(taps):
                    a = vfma(wbroadcast(w[o, j, t]), wload(buf, base + offs[t]), a)
            for vi in range(BLOCK_Q // 16):
                _store(y, yb, vpart(a, vi), plan, ptr, qb * 4 + vi)


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
    One output channel x 64 positions per register block.  x: flat (N, C, *in) of the
    5-entry ``shape``; y: flat (N, C_out, *out)."""
    c_out, n_in, taps = w.shape
    plane = int(q[0] * q[1] * q[2])
    nq = -(-plane // BLOCK_Q)
    length = -(-(nq * BLOCK_Q + int(offs[-1])) // 16) * 16  # the blocks' reach, in whole vectors
    jobs = int(shape[0]) * c_out

    def run(j0: int, j1: int) -> None:  # each thread its own plane buffer
        buf = np.empty(n_in * length, dtype=np.float32)
        _depthwise_planes(j0, j1, x, shape, lo, q, w, offs, ratio, _ro(plan), _ro(ptr), out_plane, y, buf)

    parallel_for(run, jobs, work=jobs * nq * BLOCK_Q * n_in * taps)


@njit(**KERNEL, fastmath=True)
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


@njit(**KERNEL)
def _to_wide(j0, j1, a, shape, lo, q, rows, length, buf):
    """Jobs (a channel of an image) ``j0 .. j1`` of :func:`to_wide` with stride 1."""
    n_img, n_ch, d0, d1, d2 = shape[0], shape[1], shape[2], shape[3], shape[4]
    q0, q1, q2 = q[0], q[1], q[2]
    l2 = lo[2]
    for job in range(j0, j1):
        n = job % n_img
        c = job // n_img
        base = rows[c] * length + n * q0 * q1 * q2
        src = (n * n_ch + c) * d0 * d1 * d2
        for z in range(q0):
            u = z - lo[0]
            for h in range(q1):
                v = h - lo[1]
                row = base + (z * q1 + h) * q2
                if 0 <= u < d0 and 0 <= v < d1:
                    _copy_row(a, src + (u * d1 + v) * d2, d2, l2, q2, buf, row)
                else:
                    for w in range(q2):
                        buf[row + w] = 0.0


@njit(**KERNEL)
def _to_wide_phases(j0, j1, a, shape, lo, q, st, rows, length, buf):
    """Jobs (a stride phase of a channel of an image) ``j0 .. j1`` of :func:`to_wide`."""
    n_img, n_ch, d0, d1, d2 = shape[0], shape[1], shape[2], shape[3], shape[4]
    q0, q1, q2 = q[0], q[1], q[2]
    s0, s1, s2 = st[0], st[1], st[2]
    n_ph = s0 * s1 * s2
    for job in range(j0, j1):
        ph = job % n_ph
        rest = job // n_ph
        n = rest % n_img
        c = rest // n_img
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
                            m = min(16, w_hi - w)
                            vstore_lanes(buf, row + w, vload_even(a, start + 2 * w + off, m), 0, m)
                    else:
                        for w in range(w_lo, w_hi):
                            buf[row + w] = a[start + w * s2 + off]
                    for w in range(w_hi, q2):
                        buf[row + w] = 0.0
                else:
                    for w in range(q2):
                        buf[row + w] = 0.0


def to_wide(
    a: np.ndarray,
    shape: np.ndarray,
    lo: np.ndarray,
    q: np.ndarray,
    st: np.ndarray,
    rows: np.ndarray,
    length: int,
    buf: np.ndarray,
) -> None:
    """buf[rows[c] + ph, n*P : (n+1)*P] = phase ``ph`` of channel c of image n, zero-padded
    (``lo`` zeros before each dimension): the padded plane's elements at coordinates
    ``r + st*m`` for the phase's remainders ``r``, laid out as a ``q`` plane.  With stride
    1 there is one phase, the padded plane itself.  a: flat (N, C, D, H, W) of ``shape``;
    buf: flat (R rows of ``length``).  Rows are copied as 16-lane vectors (stride 2: every
    other element, shuffled), the last one masked.  Strided layouts have a kernel of
    their own, compiled only when a strided convolution runs."""
    jobs = int(shape[0] * shape[1])
    work = jobs * int(q[0] * q[1] * q[2])
    if (st == 1).all():
        parallel_for(_to_wide, jobs, a, shape, lo, q, rows, length, buf, work=work)
    else:
        phases = int(st[0] * st[1] * st[2])
        parallel_for(_to_wide_phases, jobs * phases, a, shape, lo, q, st, rows, length, buf, work=work * phases)


@njit(**KERNEL)
def _from_phases(j0, j1, ys, st, lo, first, at, count, dx):
    """Planes ``j0 .. j1`` of :func:`from_phases`."""
    s0, s1, s2 = st[0], st[1], st[2]
    for p in range(j0, j1):
        for u in range(dx.shape[1]):
            uu = u + lo[0]
            ph0, m0 = uu % s0 * s1, uu // s0
            for v in range(dx.shape[2]):
                vv = v + lo[1]
                ph = (ph0 + vv % s1) * s2
                m1 = vv // s1
                for r2 in range(s2):
                    src = ys[ph + r2, p, m0, m1]
                    w0, m = first[r2], at[r2]
                    for k in range(count[r2]):
                        dx[p, u, v, w0 + k * s2] = src[m + k]


def from_phases(ys: np.ndarray, st: np.ndarray, lo: np.ndarray, dx: np.ndarray) -> None:
    """The inverse of the phase split: dx[p, u, v, w] = phase (U%s0, V%s1, W%s2) of
    ys at (U//s0, V//s1, W//s2), where (U, V, W) = (u, v, w) + lo.  ys: (S, P, q0, q1, q2),
    dx: (P, D, H, W).  Row by row and phase by phase, divisions hoisted out of the rows:
    per last-dim phase r2, its first column, that column's index in the phase, and its
    number of columns."""
    s2, n2 = int(st[2]), dx.shape[3]
    r2 = np.arange(s2, dtype=np.int64)
    first = (r2 - lo[2]) % s2
    at = (first + lo[2]) // s2
    count = (n2 - first + s2 - 1) // s2
    parallel_for(_from_phases, dx.shape[0], ys, st, lo, first, at, count, dx, work=dx.size)


# --- drivers -------------------------------------------------------------------------


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


def reach(
    plane: tuple[int, ...], kernel: tuple[int, ...], dilation: tuple[int, ...], stride: tuple[int, ...] | None = None
) -> int:
    """The largest tap offset in a (phase) plane: how far past a position its window reads."""
    stride = stride or (1,) * len(kernel)
    return sum(
        (k - 1) * d // s * step for k, d, s, step in zip(kernel, dilation, stride, _plane_strides(plane), strict=True)
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
    ) -> None:
        n, c = a.shape[:2]
        nd = a.ndim - 2
        self.stride = stride or (1,) * nd
        self.phases = geometry.prod(self.stride)
        assert row_of is None or self.phases == 1
        self.full = tuple(s + lo + hi for s, (lo, hi) in zip(a.shape[2:], pads, strict=True))
        self.padded = phase_plane(self.full, self.stride)  # the plane the kernels see
        self.plane = geometry.prod(self.padded)
        self.q_len = n * self.plane
        # blocks of BLOCK_Q read up to BLOCK_Q - 1 past q_len, plus the largest tap offset;
        # a multiple of 16 floats, so that every row stays 64-byte aligned
        self.length = -(-(-(-self.q_len // BLOCK_Q) * BLOCK_Q + reach + BLOCK_Q) // 16) * 16
        size = (rows if row_of is not None else c * self.phases) * self.length
        self.margin = -(-margin // 16) * 16  # zeros before row 0, for reads shifted back
        total = self.margin + size
        flat = _kernels.workspace((total,), np.float32) if scratch else _kernels.aligned_empty(total, np.float32)
        flat[: self.margin] = 0
        self.base = flat  # what the kernels index: entries are offset by the margin
        self.buf = flat[self.margin :].reshape(-1, self.length)
        self.buf[:, self.q_len :] = 0
        if row_of is None:
            row_of = np.arange(c, dtype=np.int64) * self.phases
        else:
            self.buf[np.setdiff1d(np.arange(rows), row_of)] = 0
        if mode != "constant" and any(lo or hi for lo, hi in pads):
            a, pads = pad(a, pads, mode), tuple((0, 0) for _ in pads)
        shape = np.array((n, c) + (1,) * (3 - nd) + a.shape[2:], dtype=np.int64)
        lo = _as3(tuple(p for p, _ in pads), 0)
        values = np.ascontiguousarray(a, dtype=np.float32).ravel()
        q3, s3 = _as3(self.padded, 1), _as3(self.stride, 1)
        to_wide(values, shape, lo, q3, s3, row_of, self.length, self.buf.ravel())


@functools.lru_cache(maxsize=64)
def _store_plan(
    padded: tuple[int, ...], out: tuple[int, ...], n: int, img_stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """Where the wide results go: for every 16-lane vector of wide positions, its runs of
    consecutive outputs as rows (first lane, end lane, y index of lane 0) - CSR, ``ptr``
    indexing the rows of each vector.  Depends on the geometry only, so it is cached."""
    plane_in = geometry.prod(padded)
    q_len = n * plane_in
    nvec = -(-q_len // BLOCK_Q) * (BLOCK_Q // 16)
    q = np.arange(nvec * 16, dtype=np.int64)
    img, rest = np.divmod(q, plane_in)
    coords = np.unravel_index(rest, padded)
    valid = img < n
    index = img * img_stride
    for c, o, step in zip(coords, out, _plane_strides(out), strict=True):
        valid &= c < o
        index = index + c * step
    lane = q % 16
    prev_ok = np.zeros_like(valid)
    prev_ok[1:] = valid[:-1] & valid[1:] & (index[1:] == index[:-1] + 1)
    starts = np.flatnonzero(valid & ((lane == 0) | ~prev_ok))
    ends_mask = valid & ((lane == 15) | ~np.append(prev_ok[1:], False))
    ends = np.flatnonzero(ends_mask) + 1
    plan = np.stack([starts % 16, (ends - 1) % 16 + 1, index[starts] - starts % 16], axis=1)
    ptr = np.searchsorted(starts // 16, np.arange(nvec + 1)).astype(np.int64)
    plan.setflags(write=False)
    ptr.setflags(write=False)
    return plan, ptr


def _pack(w: np.ndarray) -> np.ndarray:
    """(groups, co, E) weights -> flat (groups, ceil(co/4), E, 4), zero-filled."""
    groups, co, n_ent = w.shape
    nb = -(-co // BLOCK_OC)
    packed = np.zeros((groups, nb * BLOCK_OC, n_ent), dtype=np.float32)
    packed[:, :co] = w
    return np.ascontiguousarray(packed.reshape(groups, nb, BLOCK_OC, n_ent).transpose(0, 1, 3, 2)).ravel()


def _run(src: Wide, w: np.ndarray, ents: np.ndarray, out: tuple[int, ...], n: int) -> np.ndarray:
    """conv_wide over a Wide batch: w (groups, co, E) for the entries ``ents`` (relative
    to a group's first row; may reach back by up to the layout's margin)."""
    groups, co = w.shape[:2]
    plane = geometry.prod(out)
    y = np.empty((n, groups * co) + out, dtype=np.float32)
    plan, ptr = _store_plan(src.padded, out, n, groups * co * plane)
    gstride = (src.buf.shape[0] // groups) * src.length
    ents = ents + src.margin if src.margin else ents
    conv_wide(src.base, gstride, _pack(w), ents, groups, co, src.q_len, plan, ptr, plane, y.ravel(), 1, 0, 0)
    return y


def pointwise(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """A 1x1 convolution read where the input lies, no layout copy: x (N, groups*cg, P)
    float32, C-contiguous; w (groups, co, cg); returns (N, groups*co, P).

    Each image is one run of positions per channel.  A block of 64 positions may read up
    to 63 past its image's channel - into the next channel or image, never stored - so
    only the last image, whose reads would leave the array, goes through a copy with
    room after it."""
    n, c, p = x.shape
    groups, co, cg = w.shape
    y = np.empty((n, groups * co, p), dtype=np.float32)
    plan, ptr = _store_plan((p,), (p,), 1, 0)
    wp = _pack(w)
    ents = np.arange(cg, dtype=np.int64) * p
    if n > 1:
        conv_wide(x.ravel(), cg * p, wp, ents, groups, co, p, plan, ptr, p, y.ravel(), n - 1, c * p, groups * co * p)
    last = _kernels.workspace((c * p + BLOCK_Q,), np.float32)
    last[: c * p] = x[n - 1].ravel()
    last[c * p :] = 0
    conv_wide(last, cg * p, wp, ents, groups, co, p, plan, ptr, p, y[n - 1].ravel(), 1, 0, 0)
    return y


def out_size(
    full: tuple[int, ...], kernel: tuple[int, ...], dilation: tuple[int, ...], stride: tuple[int, ...]
) -> tuple[int, ...]:
    """Output size of a convolution of a padded plane ``full``."""
    return tuple((f - d * (k - 1) - 1) // s + 1 for f, k, d, s in zip(full, kernel, dilation, stride, strict=True))


def convolve(src: Wide, w: np.ndarray, kernel: tuple[int, ...], dilation: tuple[int, ...], n: int) -> np.ndarray:
    """Convolution (stride: the layout's) of a :class:`Wide` batch with weights (groups,
    co, cg, *kernel); returns (N, groups*co, *out) float32."""
    groups, co, cg = w.shape[:3]
    out = out_size(src.full, kernel, dilation, src.stride)
    ents = _entries(src.padded, kernel, dilation, src.stride, cg, src.length)
    return _run(src, w.reshape(groups, co, -1).astype(np.float32, copy=False), ents, out, n)


def input_grad_strided(
    dy: np.ndarray,
    w: np.ndarray,
    kernel: tuple[int, ...],
    dilation: tuple[int, ...],
    stride: tuple[int, ...],
    full: tuple[int, ...],
    lo: tuple[int, ...],
    shape: tuple[int, ...],
) -> np.ndarray:
    """Input gradient of a strided convolution (weights w (groups, co, cg, *kernel)), as
    the ``shape`` block at ``lo`` of the padded input ``full``.

    Phase by phase: padded element ``s*m + r`` receives ``w[o, c, t] * dy[o, m - a_t]``
    from the taps t of phase r (shift a_t), so each phase of the gradient is a
    stride-1 convolution of the output gradient with that phase's taps, flipped - one
    kernel call per phase, then one pass interleaves the phases."""
    groups, co, cg = w.shape[:3]
    n = dy.shape[0]
    q = phase_plane(full, stride)
    amax = tuple((k - 1) * d // s for k, d, s in zip(kernel, dilation, stride, strict=True))
    pads = tuple((a, qq - o) for a, qq, o in zip(amax, q, dy.shape[2:], strict=True))  # plane q + amax
    dplane = tuple(qq + a for qq, a in zip(q, amax, strict=True))
    phase, shift = _tap_phases(dplane, kernel, dilation, stride)  # shift: a_t as an offset in dplane
    corner = sum(a * step for a, step in zip(amax, _plane_strides(dplane), strict=True))  # the largest
    dsrc = Wide(dy, pads, "constant", corner, scratch=True)
    wt = w.reshape(groups, co, cg, -1).transpose(0, 2, 1, 3)  # (groups, cg, co, T)
    ys = np.empty((geometry.prod(stride), n, groups * cg) + q, dtype=np.float32)
    for ph in range(ys.shape[0]):
        taps = np.flatnonzero(phase == ph)
        if taps.size == 0:
            ys[ph] = 0
            continue
        # output m of this phase reads dy[m - a_t] = dsrc at m + (amax - a_t)
        rel = corner - shift[taps]
        ents = (np.arange(co, dtype=np.int64)[:, None] * dsrc.length + rel[None, :]).ravel()
        ys[ph] = _run(dsrc, np.ascontiguousarray(wt[:, :, :, taps]).reshape(groups, cg, -1), ents, q, n)
    dx = np.empty(shape, dtype=np.float32)
    p = shape[0] * shape[1]
    s3, lo3 = _as3(stride, 1), _as3(lo, 0)
    lead = (1,) * (3 - len(q))
    from_phases(ys.reshape((ys.shape[0], p) + lead + q), s3, lo3, dx.reshape((p,) + lead + shape[2:]))
    return dx


def grad_layout(dy: np.ndarray, src: Wide, groups: int, margin: int = 0) -> Wide:
    """The output gradient at the wide positions of the source (zero where a position is
    not an output), each group's channels in blocks of DW_OC rows, as
    :func:`weight_grad` reads it."""
    c_out = dy.shape[1]
    co = c_out // groups
    nb = -(-co // DW_OC)
    rows = np.arange(c_out, dtype=np.int64)
    row_of = rows // co * (nb * DW_OC) + rows % co  # (group, o) -> its row, blocks of DW_OC
    pads = tuple((0, p - o) for p, o in zip(src.padded, dy.shape[2:], strict=True))
    dyw = Wide(dy, pads, "constant", src.length - src.q_len, row_of, groups * nb * DW_OC, margin=margin, scratch=True)
    assert dyw.length >= src.q_len and dyw.plane == src.plane
    return dyw


def weight_grad(
    src: Wide, dyw: Wide, groups: int, co: int, kernel: tuple[int, ...], dilation: tuple[int, ...], parts: int
) -> np.ndarray:
    """dw (groups*co, cg, *kernel) float32 of :func:`convolve`, given the output gradient
    laid out by :func:`grad_layout`."""
    cg = src.buf.shape[0] // (groups * src.phases)
    nb = -(-co // DW_OC)
    ents = _entries(src.padded, kernel, dilation, src.stride, cg, src.length)
    n_ent = ents.size
    ntb = -(-n_ent // DW_TAPS)
    ents3 = np.zeros(ntb * DW_TAPS, dtype=np.int64)
    ents3[:n_ent] = ents
    acc = np.zeros((parts, groups, nb, ntb, DW_OC, DW_TAPS, 16), dtype=np.float32)
    gstride = cg * src.phases * src.length
    sums = np.empty(acc.shape[:-1], dtype=np.float32)
    args = (src.buf.ravel(), gstride, dyw.buf.ravel(), dyw.length, ents3, groups, nb, src.q_len, parts)
    weight_grad_wide(*args, acc.ravel(), sums.ravel())
    summed = sums.sum(axis=0) if parts > 1 else sums[0]
    # (groups, nb, ntb, oc, 3) -> (groups, co, E)
    dw = summed.transpose(0, 1, 3, 2, 4)
    dw = dw.reshape(groups, nb * DW_OC, ntb * DW_TAPS)[:, :co, :n_ent]
    return np.ascontiguousarray(dw).reshape((groups * co, cg) + kernel)


def input_grad_shared(
    dyw: Wide, w: np.ndarray, kernel: tuple[int, ...], dilation: tuple[int, ...], shift: int, n: int
) -> np.ndarray:
    """Input gradient of a stride-1 'same'-size convolution read from the weight
    gradient's layout of dy: the input gradient is the convolution of dy padded by
    (reach - lo) with the flipped, transposed weights; that padded plane is the layout's
    plane (when lo + hi == reach), entered ``shift`` positions earlier.  w: (groups, co,
    cg, *kernel) forward weights; returns (N, groups*cg, *in)."""
    groups, co, cg = w.shape[:3]
    wf = np.flip(w.reshape(groups, co, cg, -1), axis=-1).transpose(0, 2, 1, 3)  # (groups, cg, co, T)
    offs = _entries(dyw.padded, kernel, dilation, (1,) * len(kernel), co, dyw.length) - shift
    out = out_size(dyw.padded, kernel, dilation, (1,) * len(kernel))
    assert shift <= dyw.margin
    return _run(dyw, np.ascontiguousarray(wf).reshape(groups, cg, -1), offs, out, n)


def _dw_geometry(
    a: np.ndarray, pads: geometry.Pairs, mode: str, kernel: tuple[int, ...], dilation: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, ...], np.ndarray]:
    """For the plane kernels: the input (border modes padded here; zeros are padded in
    the kernels), its 5-entry shape, the zero padding before each dimension, the tap
    offsets in the padded plane, and that plane's shape (as a tuple and 3-entry array)."""
    if mode != "constant" and any(lo or hi for lo, hi in pads):
        a, pads = pad(a, pads, mode), tuple((0, 0) for _ in pads)
    full = tuple(s + lo + hi for s, (lo, hi) in zip(a.shape[2:], pads, strict=True))
    offs = _entries(full, kernel, dilation, (1,) * len(kernel), 1, 0)  # one row: the offsets
    shape = np.array(a.shape[:2] + (1,) * (5 - a.ndim) + a.shape[2:], dtype=np.int64)
    lo = _as3(tuple(p for p, _ in pads), 0)
    return np.ascontiguousarray(a, dtype=np.float32), shape, lo, offs, full, _as3(full, 1)


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
    a, shape, lo, offs, full, q3 = _dw_geometry(a, pads, mode, kernel, dilation)
    n, c_out = a.shape[0], w.shape[0]
    out = out_size(full, kernel, dilation, (1,) * len(kernel))
    plane = geometry.prod(out)
    y = np.empty((n, c_out) + out, dtype=np.float32)
    plan, ptr = _store_plan(full, out, 1, 0)
    wt = np.ascontiguousarray(w.reshape(c_out, w.shape[1], -1), dtype=np.float32)
    depthwise_planes(a.ravel(), shape, lo, q3, wt, offs, ratio, plan, ptr, plane, y.ravel())
    return y


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
    ntb = -(-taps // DW_TAPS)
    offs3 = np.zeros(ntb * DW_TAPS, dtype=np.int64)
    offs3[:taps] = offs
    acc = np.empty((c_out, ntb * DW_TAPS * 16), dtype=np.float32)
    dy = np.ascontiguousarray(dy, dtype=np.float32)
    depthwise_planes_grad(a.ravel(), shape, lo, q3, dy.ravel(), _as3(dy.shape[2:], 1), offs3, ratio, acc)
    dw = acc.reshape(c_out, -1, 16).sum(axis=2, dtype=np.float32)[:, :taps]
    return np.ascontiguousarray(dw).reshape((c_out, 1) + kernel)
