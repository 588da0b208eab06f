"""The dense and grouped convolution on the wide layout: the micro-kernels
(:func:`conv_wide`, :func:`weight_grad_wide`) and the forward and backward drivers."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from .... import geometry
from .. import runtime as _kernels
from ..simd import grad_tile, row_tile, vectors
from ..threads import KERNEL, parallel_for
from . import outer
from .layout import (
    Wide,
    _as3,
    _entries,
    _plane_strides,
    _ro,
    _store_plan,
    _tap_phases,
    out_size,
    phase_plane,
    shared_plane,
)
from .pack import weight_rows
from .relayout import from_phases
from .tile import BLOCK_OC, BLOCK_Q, DW_CHUNK, DW_OC, DW_TAPS, LANES, TILE

# the tile's operations (:mod:`.tile` chose its shape for the CPU)
_V = vectors(LANES)
_vstore_lanes, _vpart = _V.store_lanes, _V.part
_T = row_tile(BLOCK_OC, LANES, TILE.block_vecs)
_tfill, _tfma, _tpart = _T.fill, _T.fma, _T.part
_G = grad_tile(DW_OC, DW_TAPS, LANES)
_gload, _gstore, _gfma = _G.load, _G.store, _G.fma
_VECS = TILE.block_vecs

# --- kernels -------------------------------------------------------------------------
# Each kernel computes a range of independent jobs, ``kernel(j0, j1, *args)``; the
# function of the same name without the underscore runs it over all jobs on the
# kernel threads (:func:`convpool.backends.compiled.threads.parallel_for`).


def _tile_kernels(block_oc: int, vecs: int, lanes: int, dw_oc: int, dw_taps: int) -> tuple[Any, Any]:
    """The two micro-kernels for one register tile (:mod:`.tile`): ``block_oc`` output
    channels x ``vecs`` vectors of ``lanes`` positions for the convolution, ``dw_oc``
    channels x ``dw_taps`` entries for the weight gradient.  A factory, so that the
    kernels close over the tile's numbers: numba's disk cache keys a kernel on its
    closure's values (and its target CPU), so kernels built for different tiles
    (``CONVPOOL_TILE``, an edited tile table) never share a cache entry."""
    block_q = vecs * lanes

    @njit(**KERNEL, fastmath=True)
    def conv(j0, j1, src, gstride, wp, ents, groups, co, q_len, plan, ptr, plane, y, n_img, img_src, img_y, bias):
        """Jobs ``j0 .. j1`` of :func:`conv_wide`: one block of block_oc output channels x
        block_q positions each, the sums in the register tile (:mod:`.tile`), which starts
        from the block's biases."""
        nb = (co + block_oc - 1) // block_oc
        n_ent = ents.shape[0]
        nq = (q_len + block_q - 1) // block_q
        for job in range(j0, j1):
            b = job % nb  # output-channel blocks fastest: they share the source block in cache
            gq = job // nb
            qb = gq % nq
            gn = gq // nq
            gi = gn % groups
            img = gn // groups
            acc = _tfill(bias, gi * co + b * block_oc)
            xrow = img * img_src + gi * gstride + qb * block_q
            wrow = (gi * nb + b) * block_oc * n_ent  # the block's first weight row
            for e in range(n_ent):
                acc = _tfma(acc, wp, wrow + e, n_ent, src, xrow + ents[e])
            o = b * block_oc
            yb = img * img_y + (gi * co + o) * plane
            rows = co - o if co - o < block_oc else block_oc  # not min(): no helper to compile
            for vi in range(vecs):  # each run of outputs: its lanes and place read once for every row
                v = qb * vecs + vi
                for s in range(ptr[v], ptr[v + 1]):
                    lo, hi, at = plan[s, 0], plan[s, 1], yb + plan[s, 2]
                    for r in range(block_oc):  # a constant trip count: unrolled, each part one register
                        if r < rows:
                            _vstore_lanes(y, at + r * plane, _tpart(acc, r, vi), lo, hi)

    @njit(**KERNEL, fastmath=True)
    def weight_grad(j0, j1, src, gstride, dyw, ld, ents3, groups, nb, q_len, parts, acc, sums):
        """Parts ``j0 .. j1`` of :func:`weight_grad_wide`."""
        ntb = ents3.shape[0] // dw_taps
        span = ((q_len + parts - 1) // parts + lanes - 1) // lanes * lanes
        for p in range(j0, j1):
            q_lo = p * span
            q_hi = q_lo + span if q_lo + span < q_len else q_len
            for c0 in range(q_lo, q_hi, DW_CHUNK):
                c1 = c0 + DW_CHUNK if c0 + DW_CHUNK < q_hi else q_hi
                for job in range(groups * nb * ntb):
                    tb = job % ntb
                    rest = job // ntb
                    b = rest % nb
                    gi = rest // nb
                    base = ((((p * groups + gi) * nb + b) * ntb + tb) * dw_oc * dw_taps) * lanes
                    tile = _gload(acc, base)
                    drow = (gi * nb + b) * dw_oc * ld
                    for q in range(c0, c1, lanes):
                        tile = _gfma(tile, dyw, drow, ld, src, gi * gstride, ents3, tb * dw_taps, q)
                    _gstore(acc, base, tile)
            n_sums = groups * nb * ntb * dw_oc * dw_taps  # the part's per-lane sums, summed over the lanes
            for i in range(p * n_sums, (p + 1) * n_sums):
                total = np.float32(0.0)
                for lane in range(lanes):
                    total += acc[i * lanes + lane]
                sums[i] = total

    return conv, weight_grad


_conv_wide, _weight_grad_wide = _tile_kernels(BLOCK_OC, _VECS, LANES, DW_OC, DW_TAPS)


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
    bias: np.ndarray | None = None,
) -> None:
    """y[n, g*co + o, *out] = bias[g*co + o] + sum_e w[g, o, e] * src[g*gstride + ents[e] + i]
    (flat src; no bias: 0).

    An entry ``e`` is one (input channel, kernel tap) pair: its source row and the tap's
    offset in the row, ``row * length + off`` (:func:`_entries`).  wp: flat (groups,
    ceil(co/4) * 4, E) weight rows (zero past co: :func:`.pack.weight_rows`); y: flat
    (N, groups*co, plane).
    ``q_len`` positions, through the store plan; or, with ``n_img`` > 1, ``q_len``
    positions for each of n_img images, image n's source at ``n * img_src`` and its
    output at ``n * img_y`` (a 1x1 conv reads the input where it lies)."""
    nb = -(-co // BLOCK_OC)
    jobs = n_img * groups * nb * -(-q_len // BLOCK_Q)
    assert ptr.shape[0] > -(-q_len // BLOCK_Q) * _VECS, "the store plan does not cover every block"
    rows = _bias_rows(bias, groups * co)
    args = (src, gstride, wp, _ro(ents), groups, co, q_len, _ro(plan), _ro(ptr), plane, y, n_img, img_src, img_y, rows)
    parallel_for(_conv_wide, jobs, *args, work=jobs * ents.shape[0] * BLOCK_OC * BLOCK_Q)


def _bias_rows(bias: np.ndarray | None, c_out: int) -> np.ndarray:
    """The biases as the kernel reads them: float32, zeros past ``c_out`` (a block of
    BLOCK_OC rows may start at the last channel) or everywhere without a bias."""
    rows = np.zeros(c_out + BLOCK_OC, dtype=np.float32)
    if bias is not None:
        if bias.shape != (c_out,):  # a check, not an assert: the kernel has no bounds checks
            raise ValueError(f"bias: expected shape ({c_out},), got {bias.shape}")
        rows[:c_out] = bias
    return rows


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


def _run(
    src: Wide, w: np.ndarray, ents: np.ndarray, out: tuple[int, ...], n: int, bias: np.ndarray | None = None
) -> np.ndarray:
    """conv_wide over a Wide batch: w (groups, co, E) for the entries ``ents`` (relative
    to a group's first row; may reach back by up to the layout's margin), plus ``bias``
    (groups * co,) if given."""
    groups, co = w.shape[:2]
    plane = geometry.prod(out)
    y = np.empty((n, groups * co) + out, dtype=np.float32)
    plan, ptr = _store_plan(src.padded, out, n, groups * co * plane)
    gstride = (src.buf.shape[0] // groups) * src.length
    ents = ents + src.margin if src.margin else ents
    wp = weight_rows(w)
    conv_wide(src.base, gstride, wp, ents, groups, co, src.q_len, plan, ptr, plane, y.ravel(), 1, 0, 0, bias)
    return y


def pointwise(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """A 1x1 convolution read where the input lies, no layout copy: x (N, groups*cg, P)
    float32, C-contiguous; w (groups, co, cg); bias (groups*co,) or None; returns (N, groups*co, P).

    Each image is one run of positions per channel.  A block of 64 positions may read up
    to 63 past its image's channel - into the next channel or image, never stored - so
    only the last image, whose reads would leave the array, goes through a copy with
    room after it."""
    n, c, p = x.shape
    groups, co, cg = w.shape
    y = np.empty((n, groups * co, p), dtype=np.float32)
    plan, ptr = _store_plan((p,), (p,), 1, 0)
    wp = weight_rows(w)
    ents = np.arange(cg, dtype=np.int64) * p
    if n > 1:
        conv_wide(
            x.ravel(), cg * p, wp, ents, groups, co, p, plan, ptr, p, y.ravel(), n - 1, c * p, groups * co * p, bias
        )
    last = _kernels.workspace((c * p + BLOCK_Q,), np.float32)
    last[: c * p] = x[n - 1].ravel()
    last[c * p :] = 0
    conv_wide(last, cg * p, wp, ents, groups, co, p, plan, ptr, p, y[n - 1].ravel(), 1, 0, 0, bias)
    return y


def convolve(
    src: Wide,
    w: np.ndarray,
    kernel: tuple[int, ...],
    dilation: tuple[int, ...],
    n: int,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """Convolution (stride: the layout's) of a :class:`Wide` batch with weights (groups,
    co, cg, *kernel), plus ``bias`` (groups*co,) if given; returns (N, groups*co, *out) float32."""
    groups, co, cg = w.shape[:3]
    out = out_size(src.full, kernel, dilation, src.stride)
    ents = _entries(src.padded, kernel, dilation, src.stride, cg, src.length)
    return _run(src, w.reshape(groups, co, -1).astype(np.float32, copy=False), ents, out, n, bias)


def input_grad_strided(
    dy: np.ndarray,
    w: np.ndarray,
    kernel: tuple[int, ...],
    dilation: tuple[int, ...],
    stride: tuple[int, ...],
    full: tuple[int, ...],
    lo: tuple[int, ...],
    shape: tuple[int, ...],
    *,
    share: bool = True,
) -> np.ndarray:
    """Input gradient of a strided convolution (weights w (groups, co, cg, *kernel)), as
    the ``shape`` block at ``lo`` of the padded input ``full``.

    Phase by phase: padded element ``s*m + r`` receives ``w[o, c, t] * dy[o, m - a_t]``
    from the taps t of phase r (shift a_t), so each phase of the gradient is a
    stride-1 convolution of the output gradient with that phase's taps, flipped - one
    kernel call per phase, then one pass interleaves the phases.  dy padded by (amax,
    q - out) is laid out with its rows and images sharing those zeros when ``share``
    (:func:`.layout.shared_plane`: 29x29 instead of 30x30 for a 28x28 dy of a 3x3
    stride-2 conv of 56x56 padded by 1)."""
    groups, co, cg = w.shape[:3]
    n = dy.shape[0]
    q = phase_plane(full, stride)
    amax = tuple((k - 1) * d // s for k, d, s in zip(kernel, dilation, stride, strict=True))
    pads = tuple((a, qq - o) for a, qq, o in zip(amax, q, dy.shape[2:], strict=True))
    if share:  # a stride-1 window of amax + 1 taps, read through zeros either side
        dplane = shared_plane(dy.shape[2:], pads, tuple(a + 1 for a in amax), (1,) * len(q))
    else:  # the padded plane q + amax
        dplane = tuple(qq + a for qq, a in zip(q, amax, strict=True))
    phase, shift = _tap_phases(dplane, kernel, dilation, stride)  # shift: a_t as an offset in dplane
    corner = sum(a * step for a, step in zip(amax, _plane_strides(dplane), strict=True))  # the largest
    dsrc = Wide(dy, pads, "constant", corner, scratch=True, plane=dplane if share else None)
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
    from_phases(ys.ravel(), lead + q, s3, lo3, dx.reshape((p,) + lead + shape[2:]))
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


def weight_grad_in_place(
    src: Wide, dy: np.ndarray, groups: int, kernel: tuple[int, ...], dilation: tuple[int, ...], parts: int
) -> np.ndarray | None:
    """dw (co, cg, *kernel) float32 of :func:`convolve` by :mod:`.outer`'s kernel reading
    the output gradient ``dy`` (N, co, *out) where it lies - no :func:`grad_layout` copy -
    or None where that kernel does not take the problem (then lay dy out and call
    :func:`weight_grad`)."""
    n, co = dy.shape[:2]
    cg = src.buf.shape[0] // (groups * src.phases)
    tile = outer.shape(co, groups, cg * geometry.prod(kernel))  # one entry per (channel, tap)
    if tile is None or dy.dtype != np.float32 or not dy.flags.c_contiguous:
        return None  # decided before any table is built: the caller's fallback builds its own
    ents = _entries(src.padded, kernel, dilation, src.stride, cg, src.length)
    out = out_size(src.full, kernel, dilation, src.stride)
    assert dy.shape[2:] == out and n == src.q_len // src.plane
    plane = geometry.prod(out)
    pos, dpos = outer.outputs(src.padded, out, n), outer.dense_positions(n, co, plane)
    dw = outer.weight_grad_outer(src.buf.ravel(), dy.ravel(), plane, co, ents, pos, tile, parts, dpos)
    return dw.reshape((co, cg) + kernel)


def weight_grad(
    src: Wide, dyw: Wide, groups: int, co: int, kernel: tuple[int, ...], dilation: tuple[int, ...], parts: int
) -> np.ndarray:
    """dw (groups*co, cg, *kernel) float32 of :func:`convolve`, given the output gradient
    laid out by :func:`grad_layout`: by :mod:`.outer`'s kernel where its tile fits the
    output channels (ungrouped, the lanes filled), else by :func:`weight_grad_wide`."""
    cg = src.buf.shape[0] // (groups * src.phases)
    nb = -(-co // DW_OC)
    ents = _entries(src.padded, kernel, dilation, src.stride, cg, src.length)
    n_ent = ents.size
    tile = outer.shape(co, groups, n_ent)
    if tile is not None:  # the outer-product form (row o of dyw is channel o when ungrouped)
        pos = outer.outputs(src.padded, out_size(src.full, kernel, dilation, src.stride), src.q_len // src.plane)
        dw_outer = outer.weight_grad_outer(src.buf.ravel(), dyw.buf.ravel(), dyw.length, co, ents, pos, tile, parts)
        return dw_outer.reshape((co, cg) + kernel)
    ntb = -(-n_ent // DW_TAPS)
    ents3 = np.zeros(ntb * DW_TAPS, dtype=np.int64)
    ents3[:n_ent] = ents
    acc = np.zeros((parts, groups, nb, ntb, DW_OC, DW_TAPS, LANES), dtype=np.float32)
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
    dyw: Wide,
    w: np.ndarray,
    kernel: tuple[int, ...],
    dilation: tuple[int, ...],
    shift: int,
    n: int,
    size: tuple[int, ...],
) -> np.ndarray:
    """Input gradient (spatial ``size``) of a stride-1 convolution read from the weight
    gradient's layout of dy: the input gradient is the convolution of dy padded by
    (reach - lo, reach - hi) with the flipped, transposed weights.  dy lies at offset 0
    of the layout's planes with at least max(reach - lo, reach - hi) zeros after each row
    (plane) - the zeros a window running off a row reads, whichever side
    (:func:`.layout.shared_plane`) - so the padded dy is the layout entered ``shift``
    positions earlier (reach - lo rows and columns).  w: (groups, co, cg, *kernel)
    forward weights; returns (N, groups*cg, *size)."""
    groups, co, cg = w.shape[:3]
    wf = np.flip(w.reshape(groups, co, cg, -1), axis=-1).transpose(0, 2, 1, 3)  # (groups, cg, co, T)
    offs = _entries(dyw.padded, kernel, dilation, (1,) * len(kernel), co, dyw.length) - shift
    out = tuple(size)
    if shift > dyw.margin or any(s > p for s, p in zip(out, dyw.padded, strict=True)):  # no bounds checks below
        raise ValueError(f"shift {shift} past the margin {dyw.margin}, or output {out} past the plane {dyw.padded}")
    return _run(dyw, np.ascontiguousarray(wf).reshape(groups, cg, -1), offs, out, n)
