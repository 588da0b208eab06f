"""The dense convolution as outer products (the form oneDNN uses): vectors over output
channels, the source's values at a few output positions broadcast - on the AVX2 tile.

y[o, k] = sum_e w[o, e] * src[ents[e] + pos[k]] over the entries e (one per input channel
and tap, :func:`.layout._entries`) of the wide layout, for the output positions ``pos``
only (:func:`.outer.outputs`).  :func:`.wide.conv_wide` computes every position of the
padded planes instead (30 x 30 for a 28 x 28 output: 15% more multiply-adds).  A register
tile is ``vecs`` vectors of 8 output channels x ``npos`` positions (2 x 6: 12 of the 16
ymm registers): per entry, ``vecs`` aligned loads of packed weights and ``npos`` scalars
of the source broadcast - no unaligned vector load of the source.  The sums come out
channels-last; a chunk of 24 positions goes through a small scratch and 8 x 8
transposes (:func:`transpose_store8`) into the output, a vector store per channel and 8
positions.  Entries in blocks of at most :data:`E_MAX`, the tile's sums kept in the
scratch between blocks, so that a block's packed weights stay in L1 while the chunk's
positions pass over them.

OFF BY DEFAULT: on the one machine measured it did not win at two threads.  Intel Xeon
(Sapphire Rapids class) under KVM, 2 shared vCPUs, numba for Haswell, PyTorch held to
AVX2; this kernel / :func:`.wide.conv_wide` on the same wide layout, interleaved calls in
one process (/tmp/fx/cmp.py: medians of 7-11 calls, then the median over 5 runs):

=====================================  ==========================  =================
case (forward kernel)                  one thread                  two threads
=====================================  ==========================  =================
conv2d 32->64 k3 p1, 32x32x28x28       0.81 (runs 0.57-1.11)       1.06 (0.87-1.12)
conv2d 64->64 k3 p1, 32x64x28x28       1.08 (0.85-1.14)            1.10 (0.84-1.16)
conv_transpose2d 64->32 k3 s1 (fwd)    1.00 (0.68-1.12)            1.06 (0.98-1.29)
=====================================  ==========================  =================

and ``convpool bench --isa avx2 --only conv`` (2 threads, convpool / PyTorch forward, two
runs each, off / on): 32->64 28x28 1.23, 1.28 / 1.47, 1.42; 64->64 28x28 1.33, 1.27 /
1.51, 1.18; transposed k3 s1 1.03, 1.07 / 1.25, 1.22.  One thread's CPU time favoured it
where it saves 12% of the positions (28 x 28 planes: minima 0.80-0.88 in most runs) and
not at 56 x 56 (7%: 0.89-1.15).  The inner loop is as tight as the wide kernel's (12
fused multiply-adds per entry, 9 loads, no spills; 1 x 12 and 4 x 3 tiles ran at 0.5-0.7).
:data:`ENV` ``=1`` turns on :func:`choose`'s rule (``=all``: wherever it applies) - for
measuring on other AVX2 CPUs (two load ports, smaller caches), where the balance may
differ.  Only for 8 lanes; AVX-512 keeps the wide kernel.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..runtime import aligned_empty
from ..simd import F32xN, _address, _element, _fma, _splat
from ..threads import KERNEL, num_threads, parallel_for
from .outer import dense_positions, outputs, tile_load, tile_store
from .tile import LANES


def _literal(value: Any) -> int | None:
    return value.literal_value if isinstance(value, types.IntegerLiteral) else None


@intrinsic
def tile_zero(typingctx, n, lanes):
    """A tile of ``n`` vectors of ``lanes`` zeros (constants)."""
    count, width = _literal(n), _literal(lanes)
    if count is None or width is None:
        return None
    ty = types.UniTuple(F32xN(width), count)

    def codegen(context, builder, sig, args):
        vec = ir.VectorType(ir.FloatType(), width)
        return context.make_tuple(builder, ty, [ir.Constant(vec, [0.0] * width)] * count)

    return ty(n, lanes), codegen


@intrinsic
def tile_step(typingctx, tile, w, wrow, x, xbase, pos, k0, vecs):
    """For each position k < npos and vector v < ``vecs`` (the tile: npos * vecs vectors,
    position major): sum[k, v] += w[wrow + v*lanes : +lanes] * x[xbase + pos[k0 + k]]."""
    nv = _literal(vecs)
    if nv is None or not (isinstance(tile, types.UniTuple) and isinstance(tile.dtype, F32xN)) or tile.count % nv:
        return None
    lanes, npos = tile.dtype.lanes, tile.count // nv

    def codegen(context, builder, sig, args):
        t, warr, wrow_v, xarr, xbase_v, parr, k0_v = args[:7]
        vec = ir.VectorType(ir.FloatType(), lanes)
        ws = [
            builder.load(_address(context, builder, w, warr, builder.add(wrow_v, wrow_v.type(v * lanes)), vec), align=4)
            for v in range(nv)
        ]
        data = cgutils.create_struct_proxy(x)(context, builder, value=xarr).data
        row = builder.gep(data, [xbase_v])  # the entry's run: positions index from here
        out: list[Any] = []
        for k in range(npos):
            p = _element(context, builder, pos, parr, builder.add(k0_v, k0_v.type(k)))
            s = _splat(builder, builder.load(builder.gep(row, [p])), vec)
            out.extend(_fma(builder, ws[v], s, builder.extract_value(t, k * nv + v)) for v in range(nv))
        return context.make_tuple(builder, tile, out)

    return tile(tile, w, wrow, x, xbase, pos, k0, vecs), codegen


_TLO = [0, 8, 1, 9, 4, 12, 5, 13]
_THI = [2, 10, 3, 11, 6, 14, 7, 15]
_QLO = [0, 1, 8, 9, 4, 5, 12, 13]
_QHI = [2, 3, 10, 11, 6, 7, 14, 15]
_HLO = [0, 1, 2, 3, 8, 9, 10, 11]
_HHI = [4, 5, 6, 7, 12, 13, 14, 15]


@intrinsic
def transpose_store8(typingctx, y, at, plane, rows, scratch, s0, ld):
    """An 8 x 8 block transposed: y[at + r*plane + l] = scratch[s0 + l*ld + r] for the
    rows r < ``rows`` (each a vector store) - eight vector loads, 24 shuffles (unpack,
    shuffle, lane permute), up to eight stores."""

    def codegen(context, builder, sig, args):
        yarr, at_v, plane_v, rows_v, sarr, s0_v, ld_v = args
        vec = ir.VectorType(ir.FloatType(), 8)
        i32 = ir.IntType(32)

        def sh(a, b, m):
            return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(i32, 8), m))

        r = [
            builder.load(
                _address(context, builder, scratch, sarr, builder.add(s0_v, builder.mul(ld_v, ld_v.type(i))), vec),
                align=4,
            )
            for i in range(8)
        ]
        t = []
        for i in range(0, 8, 2):
            t += [sh(r[i], r[i + 1], _TLO), sh(r[i], r[i + 1], _THI)]
        u = [sh(t[a], t[b], m) for a, b in ((0, 2), (1, 3), (4, 6), (5, 7)) for m in (_QLO, _QHI)]
        u = [u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7]]  # (t0,t2)lo,hi (t1,t3)lo,hi (t4,t6).. (t5,t7)..
        out = [sh(u[j], u[j + 4], _HLO) for j in range(4)] + [sh(u[j], u[j + 4], _HHI) for j in range(4)]
        for j in range(8):
            with cgutils.if_likely(builder, builder.icmp_signed(">", rows_v, rows_v.type(j))):
                idx = builder.add(at_v, builder.mul(plane_v, plane_v.type(j)))
                builder.store(out[j], _address(context, builder, y, yarr, idx, vec), align=4)
        return context.get_dummy_value()

    return types.none(y, at, plane, rows, scratch, s0, ld), codegen


@functools.cache
def _kernel(vecs: int, npos: int, chunk: int) -> Any:
    """The kernel for one tile shape (8 lanes; built on first use).  A factory, so that
    numba's disk cache keys each shape's kernel on its numbers."""
    lanes = 8
    width = vecs * lanes
    n_sums = vecs * npos
    span = chunk * npos  # positions per item, a multiple of 8

    @njit(**KERNEL, fastmath=True)
    def conv(j0, j1, src, wpk, ent, co, pos, dpos, plane, y, parts, scratch, e_blk):
        """Parts ``j0 .. j1`` of :func:`conv_outer`: each its share of the items (a
        block of ``width`` channels x ``chunk * npos`` positions), its own scratch."""
        n_ent = ent.shape[0]
        nob = (co + width - 1) // width
        nkb = pos.shape[0] // npos
        items = (nkb + chunk - 1) // chunk * nob
        for p in range(j0, j1):
            sb = p * span * width
            for it in range(p * items // parts, (p + 1) * items // parts):
                ob = it % nob
                kb0 = it // nob * chunk
                kb1 = min(nkb, kb0 + chunk)
                wrow = ob * n_ent * width
                for e0 in range(0, n_ent, e_blk):  # a block of entries: its weights stay in L1
                    for kb in range(kb0, kb1):
                        k0 = kb * npos
                        at = sb + (kb - kb0) * npos * width
                        tile = tile_zero(n_sums, lanes) if e0 == 0 else tile_load(scratch, at, n_sums, lanes)
                        for e in range(e0, min(n_ent, e0 + e_blk)):
                            tile = tile_step(tile, wpk, wrow + e * width, src, ent[e], pos, k0, vecs)
                        tile_store(scratch, at, tile)
                m = (kb1 - kb0) * npos
                k0 = kb0 * npos
                for g in range(0, m, 8):  # 8 positions: consecutive in y unless at an image's end
                    k = k0 + g
                    whole = g + 8 <= m and dpos[k + 7] - dpos[k] == 7
                    for v in range(vecs):
                        o = ob * width + v * lanes
                        rows = min(lanes, co - o)
                        if rows <= 0:
                            continue
                        if whole:
                            transpose_store8(
                                y, dpos[k] + o * plane, plane, rows, scratch, sb + g * width + v * lanes, width
                            )
                        else:
                            for kk in range(min(8, m - g)):
                                for r in range(rows):
                                    y[dpos[k + kk] + (o + r) * plane] = scratch[sb + (g + kk) * width + v * lanes + r]

    return conv


E_MAX = 256  # entries per block (2 x 8 channels: 16 KiB of packed weights)
MIN_SAVING = 0.12  # the share of the wide kernel's positions it must save to be chosen
MIN_ENTRIES = 64  # and at least this many entries: a chunk's transposes cost as much as ~16 entries
MIN_MACS = 1 << 22  # and this many multiply-adds: its set-up (packing, positions, scratch) costs ~100 us
ENV = "CONVPOOL_OUTER_FORWARD"  # "1": choose()'s rule, "all": wherever it applies; unset or "0": never
# True: wherever it applies, None: choose()'s rule, False: never (the default: see the module's note)
FORCE: bool | None = {"1": None, "all": True}.get(os.environ.get(ENV, ""), False)


def choose(
    co: int, groups: int, n_ent: int, padded: tuple[int, ...], out: tuple[int, ...], n: int
) -> tuple[int, int] | None:
    """The tile for a convolution of ``n_ent`` entries into ``co`` channels (``groups``)
    from the wide planes ``padded`` to ``out`` of ``n`` images, or None where
    :mod:`.wide`'s kernel takes it: on tiles other than 8 lanes, where :func:`shape` has
    none, with fewer than :data:`MIN_ENTRIES` entries or :data:`MIN_MACS` multiply-adds,
    or saving under :data:`MIN_SAVING` of the positions."""
    if FORCE is False or LANES != 8:
        return None
    tile = shape(co, groups)
    if tile is None or FORCE:
        return tile
    if n_ent < MIN_ENTRIES:
        return None
    wide, dense = math.prod(padded), math.prod(out)
    if dense > (1 - MIN_SAVING) * wide or n * dense * co * n_ent < MIN_MACS:
        return None
    return tile


def shape(co: int, groups: int) -> tuple[int, int] | None:
    """The tile (vectors of output channels, positions) for ``co`` output channels, or
    None where it does not apply: grouped convolutions, and channel counts that would
    leave over a fifth of the 16-channel blocks' lanes empty.  One shape, 2 x 6: 1 x 12
    ran at 0.5-0.7 of the wide kernel's speed (the 12 positions' indices do not fit the
    general registers beside the loop's own), 4 x 3 at 0.6-0.7."""
    if groups != 1 or -(-co // 16) * 16 * 4 > co * 5:
        return None
    return 2, 6


def pack(w: np.ndarray, width: int) -> np.ndarray:
    """(co, E) weights -> flat (ceil(co/width), E, width) float32, zero past co."""
    co, n_ent = w.shape
    nob = -(-co // width)
    packed = aligned_empty(nob * n_ent * width, np.float32)  # each entry's vectors on one cache line
    blocks = packed.reshape(nob, n_ent, width)
    blocks[:] = 0
    for ob in range(nob):
        part = w[ob * width : (ob + 1) * width]
        blocks[ob, :, : part.shape[0]] = part.T
    return packed


@functools.lru_cache(maxsize=64)
def positions(
    padded: tuple[int, ...], out: tuple[int, ...], n: int, co: int, npos: int
) -> tuple[np.ndarray, np.ndarray]:
    """The output positions in the wide layout (:func:`.outer.outputs`) and in the
    output (N, co, *out) (:func:`.outer.dense_positions`), lengthened to a multiple of
    ``npos`` by repeating the last one (its sums are stored twice, equal).  Cached,
    read-only."""
    pos = outputs(padded, out, n)
    dpos = dense_positions(n, co, int(np.prod(out)))
    total = -(-pos.size // npos) * npos
    res = []
    for a in (pos, dpos):
        b = np.empty(total, dtype=np.int64)
        b[: a.size] = a
        b[a.size :] = a[-1]
        b.setflags(write=False)
        res.append(b)
    return res[0], res[1]


def conv_outer(
    src: np.ndarray,
    w: np.ndarray,
    ents: np.ndarray,
    padded: tuple[int, ...],
    out: tuple[int, ...],
    n: int,
    y: np.ndarray,
    tile: tuple[int, int],
    chunk: int = 4,
    e_max: int = E_MAX,
) -> None:
    """y[i, o, c] = sum_e w[o, e] * src[ents[e] + i * prod(padded) + flat(c in padded)]
    for every output channel o of w (co, E), image i < n and output coordinates c < out
    (the wide layout's outputs); y flat (n, co, *out) float32.  ``tile``: :func:`shape`'s;
    ``chunk`` blocks of positions per item (chunk * npos a multiple of 8); entries in
    blocks of at most ``e_max`` (0: one block)."""
    vecs, npos = tile
    assert LANES == 8 and chunk * npos % 8 == 0
    width = vecs * LANES
    co, n_ent = w.shape
    plane = int(np.prod(out))
    pos_p, dpos_p = positions(padded, out, n, co, npos)
    nob = -(-co // width)
    nkb = pos_p.size // npos
    items = -(-nkb // chunk) * nob
    parts = max(1, min(items, 4 * num_threads()))
    scratch = aligned_empty(parts * chunk * npos * width, np.float32)
    kernel = _kernel(vecs, npos, chunk)
    ent = np.ascontiguousarray(ents, dtype=np.int64)
    assert pos_p[-1] + ent.max(initial=0) < src.size, "an entry reads past the source"
    e_blk = -(-n_ent // -(-n_ent // e_max)) if e_max else n_ent
    args = (src, pack(w, width), ent, co, pos_p, dpos_p, plane, y, parts, scratch, e_blk)
    parallel_for(kernel, parts, *args, work=nob * nkb * n_ent * width * npos)
