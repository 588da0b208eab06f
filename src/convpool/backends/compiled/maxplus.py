"""Compiled max-plus convolution kernels (numba); import only when numba is available.

Max-plus convolution is the direct convolution with ``max`` in place of the sum and
``+`` in place of the product: ``y[o, p] = max over (c, t) of x[c, p + off[t]] + w[o, c, t]``.
These kernels compute it for *finite* inputs (the caller falls back to the NumPy
reference for inf and NaN, whose tie and NaN rules cost the fast loop too much):

* :func:`forward_wide` (float32, on explicit 16-lane vectors): the batch is laid out as
  in :mod:`convpool.backends.compiled.direct` - every padded plane flattened, channel by channel, and
  split into its stride phases when strided - so each (input channel, tap) entry is one
  shifted, contiguous run (:func:`to_wide`, which also applies the sign, the padding
  and the finiteness check).
  A block of 4 output channels x 16 positions keeps, per input channel, the maximum
  over the taps in registers (an add and a max per entry), then the running best and
  the winning channel (a compare and two selects per channel, not per entry).  The
  winning tap of the winning channel is found once per output at the end (the first
  tap whose sum equals the maximum), so the winner is the first in scan order.
* :func:`forward_runs` (float64, or without the SIMD vectors): the same per-channel
  scheme on the same layout, one output channel x 256 positions per job.
* :func:`route` - the backward pass: each output's gradient goes to its winning
  input element and weight entry (bias: the sum), images split between threads.

Winners are stored as the entry index ``c * K + t`` within the group (int32).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .simd import _VEC, f32x16, vbroadcast, vload
from .threads import KERNEL, parallel_for

BLOCK = 16  # positions per block: one f32x16 vector
RUN = 256  # positions per job of forward_runs


@intrinsic
def vadd(typingctx, a, b):
    """``a + b`` lane by lane."""

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1])

    return f32x16(f32x16, f32x16), codegen


@intrinsic
def vmax(typingctx, a, b):
    """``a if a > b else b`` lane by lane (one vmaxps; finite lanes only here)."""

    def codegen(context, builder, sig, args):
        return builder.select(builder.fcmp_ordered(">", args[0], args[1]), args[0], args[1])

    return f32x16(f32x16, f32x16), codegen


@intrinsic
def vpick(typingctx, a, b, x, y):
    """``x if a > b else y`` lane by lane."""

    def codegen(context, builder, sig, args):
        return builder.select(builder.fcmp_ordered(">", args[0], args[1]), args[2], args[3])

    return f32x16(f32x16, f32x16, f32x16, f32x16), codegen


@intrinsic
def vget(typingctx, v, i):
    """Lane ``i`` of ``v`` as a float32."""

    def codegen(context, builder, sig, args):
        return builder.extract_element(args[0], builder.trunc(args[1], ir.IntType(32)))

    return types.float32(f32x16, i), codegen


assert _VEC.count == BLOCK


@njit(**KERNEL)
def _to_wide(j0, j1, x, lo, q, st, fill, sign, length, src, bad):
    n_img, n_ch, d0, d1, d2 = x.shape
    q0, q1, q2 = q[0], q[1], q[2]
    s0, s1, s2 = st[0], st[1], st[2]
    n_ph = s0 * s1 * s2
    plane = q0 * q1 * q2
    for job in range(j0, j1):
        ph = job % n_ph
        n = job // n_ph % n_img
        c = job // (n_ph * n_img)
        r0, r1, r2 = ph // (s1 * s2), ph // s2 % s1, ph % s2
        base = (c * n_ph + ph) * length + n * plane
        # columns m whose padded coordinate m*s2 + r2 lies on the input: [w_lo, w_hi)
        off = r2 - lo[2]
        w_lo = min(q2, max(0, (-off + s2 - 1) // s2))
        w_hi = max(w_lo, min(q2, (d2 - 1 - off) // s2 + 1))
        check = np.float32(0.0)
        for z in range(q0):
            u = z * s0 + r0 - lo[0]
            for h in range(q1):
                v = h * s1 + r1 - lo[1]
                row = base + (z * q1 + h) * q2
                if 0 <= u < d0 and 0 <= v < d1:
                    for w in range(w_lo):
                        src[row + w] = fill
                    for w in range(w_lo, w_hi):
                        val = x[n, c, u, v, w * s2 + off]
                        check += val - val  # NaN iff val is inf or NaN
                        src[row + w] = sign * val
                    for w in range(w_hi, q2):
                        src[row + w] = fill
                else:
                    for w in range(q2):
                        src[row + w] = fill
        bad[job] = check
        if n == n_img - 1:  # the row's tail: read only for positions that are not outputs
            for i in range(n_img * plane, length):
                src[(c * n_ph + ph) * length + i] = 0.0


def to_wide(
    x: np.ndarray,
    lo: np.ndarray,
    q: np.ndarray,
    st: np.ndarray,
    fill: Any,
    sign: float,
    length: int,
    src: np.ndarray,
    bad: np.ndarray,
) -> None:
    """The layout: row ``c * S + ph`` (S = prod(st) stride phases) holds, for each image n
    at ``[n * Q, (n + 1) * Q)`` (Q = prod(q)), phase ``ph`` of the padded plane of channel
    c times ``sign``: the elements at padded coordinates ``r + st * m`` for the phase's
    remainders r, a ``q`` plane, with ``fill`` around the input (``lo`` before it in
    each of the 3 dims); 0 past the planes.  With stride 1
    there is one phase, the padded plane itself.  x: (N, C, D, H, W); bad[(c * N + n) * S
    + ph] becomes NaN if those elements hold inf or NaN."""
    jobs = x.shape[0] * x.shape[1] * int(st[0] * st[1] * st[2])
    parallel_for(_to_wide, jobs, x, lo, q, st, fill, sign, length, src, bad, work=src.size)


@njit(inline="always")
def _emit(best, win, o, co, gi, q0, q_len, ymap, out_plane, src, gbase, ents, wp, wrow, taps, sign, bias, y, wout):
    """Store the outputs of one block row: for each lane that is an output, its value
    and its winning entry (the first tap of the winning channel reaching the maximum).
    Returns True if an output is -inf (a window of -inf sums: the caller redoes it)."""
    low = False
    if o >= co:
        return low
    oc = gi * co + o
    for lane in range(BLOCK):
        q = q0 + lane
        if q >= q_len or ymap[q] < 0:
            continue
        bv = vget(best, lane)
        c = np.int64(vget(win, lane))
        t = 0
        while t < taps - 1:  # the last tap must be it if no earlier one is
            e = c * taps + t
            if src[gbase + ents[e] + q] + wp[wrow + e * 4 + o % 4] == bv:
                break
            t += 1
        at = ymap[q] + oc * out_plane
        y[at] = sign * bv + bias[oc]
        wout[at] = c * taps + t
        low = low or bv == -np.inf
    return low


@njit(**KERNEL)
def _forward_wide(j0, j1, src, gstride, wp, ents, taps, groups, co, q_len, ymap, out_plane, sign, bias, y, wout, flags):
    nb = (co + 3) // 4
    n_ent = ents.shape[0]
    cg = n_ent // taps
    nq = (q_len + BLOCK - 1) // BLOCK
    neg = vbroadcast(np.float32(-np.inf))
    zero = vbroadcast(np.float32(0.0))
    for job in range(j0, j1):
        b = job % nb  # output-channel blocks fastest: they share the source block in cache
        rest = job // nb
        qb = rest % nq
        gi = rest // nq
        q0 = qb * BLOCK
        gbase = gi * gstride
        xrow = gbase + q0
        wrow = (gi * nb + b) * n_ent * 4
        best0 = best1 = best2 = best3 = neg
        win0 = win1 = win2 = win3 = zero
        for c in range(cg):
            m0 = m1 = m2 = m3 = neg
            for t in range(taps):
                e = c * taps + t
                xv = vload(src, xrow + ents[e])
                k = wrow + e * 4
                m0 = vmax(vadd(xv, vbroadcast(wp[k])), m0)
                m1 = vmax(vadd(xv, vbroadcast(wp[k + 1])), m1)
                m2 = vmax(vadd(xv, vbroadcast(wp[k + 2])), m2)
                m3 = vmax(vadd(xv, vbroadcast(wp[k + 3])), m3)
            cv = vbroadcast(np.float32(c))
            win0 = vpick(m0, best0, cv, win0)
            best0 = vmax(m0, best0)
            win1 = vpick(m1, best1, cv, win1)
            best1 = vmax(m1, best1)
            win2 = vpick(m2, best2, cv, win2)
            best2 = vmax(m2, best2)
            win3 = vpick(m3, best3, cv, win3)
            best3 = vmax(m3, best3)
        low = False
        for i in range(4):  # unrolled by the compiler: the vectors are named
            best, win = (
                (best0, win0) if i == 0 else (best1, win1) if i == 1 else (best2, win2) if i == 2 else (best3, win3)
            )
            low |= _emit(best, win, b * 4 + i, co, gi, q0, q_len, ymap, out_plane, src, gbase, ents, wp, wrow, taps,
                         sign, bias, y, wout)  # fmt: skip
        flags[job] = low


def forward_wide(
    src: np.ndarray,
    gstride: int,
    wp: np.ndarray,
    ents: np.ndarray,
    taps: int,
    groups: int,
    co: int,
    q_len: int,
    ymap: np.ndarray,
    out_plane: int,
    sign: float,
    bias: np.ndarray,
    y: np.ndarray,
    wout: np.ndarray,
    flags: np.ndarray,
) -> None:
    """Max-plus forward on a :func:`to_wide` layout.

    Entry ``e = c * taps + t`` reads ``src[g * gstride + ents[e] + q]`` for wide position
    ``q``; wp: flat (groups, ceil(co/4), E, 4) packed weights; ymap[q]: the y index of
    position q's output in channel 0 (-1: not an output); y, wout: flat (N, C_out, P).
    flags[job] = 1 where some output came out -inf."""
    args = (src, gstride, wp, ents, taps, groups, co, q_len, ymap, out_plane, sign, bias, y, wout, flags)
    parallel_for(_forward_wide, flags.shape[0], *args, work=flags.shape[0] * BLOCK * 4 * ents.shape[0])


@njit(**KERNEL)
def _forward_runs(
    j0,
    j1,
    src,
    gstride,
    w,
    ents,
    taps,
    groups,
    co,
    q_len,
    ymap,
    out_plane,
    sign,
    bias,
    y,
    wout,
    flags,
    best,
    cm,
    nxt,
    win,
):
    n_ent = ents.shape[0]
    cg = n_ent // taps
    for job in range(j0, j1):
        oc = job % (groups * co)  # channels fastest: they share the source run in cache
        qb = job // (groups * co)
        gbase = oc // co * gstride
        q0 = qb * RUN
        m = min(RUN, q_len - q0)
        best[:] = -np.inf
        win[:] = 0
        for c in range(cg):
            cm[:] = -np.inf
            for t in range(taps):
                e = c * taps + t
                wv = w[oc, e]
                run = src[gbase + ents[e] + q0 : gbase + ents[e] + q0 + m]
                # into the other buffer: an update in place becomes a masked store (microcoded on AMD)
                for i in range(m):
                    nxt[i] = max(cm[i], run[i] + wv)
                cm, nxt = nxt, cm
            for i in range(m):
                if cm[i] > best[i]:
                    best[i] = cm[i]
                    win[i] = c
        low = False
        for i in range(m):
            q = q0 + i
            if ymap[q] < 0:
                continue
            bv, c = best[i], win[i]
            t = 0
            while t < taps - 1:  # the first tap of the winning channel that reaches the maximum
                e = c * taps + t
                if src[gbase + ents[e] + q] + w[oc, e] == bv:
                    break
                t += 1
            at = ymap[q] + oc * out_plane
            y[at] = sign * bv + bias[oc]
            wout[at] = c * taps + t
            low = low or bv == -np.inf
        flags[job] = low


def forward_runs(
    src: np.ndarray,
    gstride: int,
    w: np.ndarray,
    ents: np.ndarray,
    taps: int,
    groups: int,
    co: int,
    q_len: int,
    ymap: np.ndarray,
    out_plane: int,
    sign: float,
    bias: np.ndarray,
    y: np.ndarray,
    wout: np.ndarray,
    flags: np.ndarray,
) -> None:
    """:func:`forward_wide` for any dtype, without explicit vectors: one output channel
    and RUN positions per job, the per-channel maxima in a small array that the compiler
    vectorises over (a load, an add, a max and a store per entry).  w: (C_out, E) signed."""
    args = (src, gstride, w, ents, taps, groups, co, q_len, ymap, out_plane, sign, bias, y, wout, flags)

    def run(j0: int, j1: int) -> None:  # each thread its own run buffers
        best, cm, nxt = (np.empty(RUN, dtype=y.dtype) for _ in range(3))
        win = np.empty(RUN, dtype=np.int64)
        _forward_runs(j0, j1, *args, best, cm, nxt, win)

    parallel_for(run, flags.shape[0], work=flags.shape[0] * RUN * ents.shape[0])


@njit(**KERNEL)
def _route(j0, j1, win, dy, groups, cg, tap3, s3, d3, lo3, want_dx, dx, dw, db):
    n_img, c_out, o0, o1, o2 = dy.shape
    n0, n1, n2 = dx.shape[2], dx.shape[3], dx.shape[4]
    kk = tap3.shape[1]
    co = c_out // groups
    parts = dw.shape[0]
    for part in range(j0, j1):
        for n in range(part * n_img // parts, (part + 1) * n_img // parts):
            for oc in range(c_out):
                ch0 = oc // co * cg
                for a in range(o0):
                    for bb in range(o1):
                        for cc in range(o2):
                            e = win[n, oc, a, bb, cc]
                            g = dy[n, oc, a, bb, cc]
                            dw[part, oc, e] += g
                            db[part, oc] += g
                            if want_dx:
                                t = e % kk
                                u = a * s3[0] + tap3[0, t] * d3[0] - lo3[0]
                                v = bb * s3[1] + tap3[1, t] * d3[1] - lo3[1]
                                z = cc * s3[2] + tap3[2, t] * d3[2] - lo3[2]
                                if 0 <= u < n0 and 0 <= v < n1 and 0 <= z < n2:
                                    dx[n, ch0 + e // kk, u, v, z] += g


def route(
    win: np.ndarray,
    dy: np.ndarray,
    groups: int,
    cg: int,
    tap3: np.ndarray,
    s3: np.ndarray,
    d3: np.ndarray,
    lo3: np.ndarray,
    want_dx: bool,
    dx: np.ndarray,
    dw: np.ndarray,
    db: np.ndarray,
) -> None:
    """Backward: each output's gradient to its winning entry's weight (dw: (parts, C_out,
    E) float64, zeroed), its bias (db: (parts, C_out)) and, if ``want_dx``, its input
    element (dx: (N, C, n0, n1, n2), zeroed; input coordinate ``p*s + tap*d - lo``,
    dropped outside dx: a zero of 'zeros' padding).  tap3: (3, K) tap coordinates."""
    parts = dw.shape[0]
    parallel_for(_route, parts, win, dy, groups, cg, tap3, s3, d3, lo3, want_dx, dx, dw, db, work=dy.size * 3)
