"""The dense convolution's weight gradient as outer products (the form oneDNN uses):
vectors over output channels, the source's values broadcast.

dw[o, e] = sum_i dy[o, i] * src[ents[e] + i] over the wide positions i (:mod:`.wide`).
:func:`.wide.weight_grad_wide` keeps a tile of 5 output channels x 3 entries, each sum a
vector of per-lane partial sums over 16 positions: 8 vector loads (3 of them unaligned,
from rows streamed out of L2) per 15 multiply-adds, and a tile stored every 32 positions.
Here a tile is ``ents`` entries x ``vecs`` vectors of output channels (24 sums with
AVX-512: 6 x 64 channels, 12 x 32, 24 x 16): per position, ``vecs`` aligned loads of
dy - all the tile's channels at that position, from a small block transposed into L1 -
and ``ents`` scalars of the source, each broadcast and used ``vecs`` times; consecutive
positions read the same cache lines of the source.  Every lane is a finished sum, so the
tile stays in registers over a whole chunk of positions and nothing is reduced across
lanes at the end.

Measured (Intel Xeon "rocketlake", AVX-512, one thread's CPU time, useful GFLOP/s,
interleaved medians, this kernel vs the wide one): conv_transpose2d 64->32 k4 s2's weight
gradient (32x32x56x56, 64 channels) 105 vs 70, conv2d 32->64 k3 28x28 108 vs 73, strided
64->128 k3 s2 56x56 84 vs 68, conv1d 32->64 k5 53 vs 43.

Positions that are not outputs (dy = 0 there: the padding's columns and rows, the room
between images) are skipped - each position is a step of its own here, so the kernel
runs over a list of the outputs (:func:`outputs`), 7-13% fewer steps on 28x28 and
56x56 planes padded by 1.

The block of dy is transposed with one masked gather per vector of channels and
position (a column of ``lanes`` rows, :func:`gather_rows`), the runs of the next block
prefetched meanwhile; scalar copies took 2-3 cycles an element, a third of the time on
conv2d 32->64 k3 28x28 and three times the wide kernel's on CIFAR's 3->32 (27 entries).

Used for ungrouped convolutions whose output channels fill the vectors (at most a fifth
of the lanes wasted) and with at least :data:`MIN_ENTRIES` entries (:func:`shape`);
the others keep :mod:`.wide`'s kernel.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..simd import F32xN, _address, _element, _fma, _lane_mask, _splat
from ..threads import KERNEL, parallel_for
from .tile import LANES, TILE

CHUNK = 128  # positions per pass: a block of dy (CHUNK x 64 channels: 32 KiB) stays in L1
# Entries below which the wide kernel is faster: each element of dy is transposed once
# (a gather) and then serves E / lanes multiply-adds per vector of channels.  Measured
# (Xeon "rocketlake", AVX-512, one thread, outer / wide): E = 27 (CIFAR 3->32 k3) 1.5,
# E = 80 (conv1d 16->32 k5) 1.19, E = 160 (conv1d 32->64 k5) 0.80, E = 288 0.68, E = 512 0.66.
MIN_ENTRIES = 128


def _literal(value: Any) -> int | None:
    return value.literal_value if isinstance(value, types.IntegerLiteral) else None


def _vec_at(context, builder, arrty, arr, idx, lanes):
    """The ``lanes`` floats of a flat array at ``idx``, unaligned."""
    vec = ir.VectorType(ir.FloatType(), lanes)
    return builder.load(_address(context, builder, arrty, arr, idx, vec), align=4)


# The tile's operations take their shape from constants of the kernel (literal ints) or
# from the tile's type, so that they are module-level functions: numba's disk cache keys
# a kernel on its closure's values, and an intrinsic built in a factory is a new object in
# every process (never a cache hit); module globals are not part of the key.


@intrinsic
def tile_load(typingctx, acc, i, n, lanes):
    """The tile of ``n`` vectors of ``lanes`` floats at ``acc[i:]`` (n, lanes: constants)."""
    count, width = _literal(n), _literal(lanes)
    if count is None or width is None:
        return None
    ty = types.UniTuple(F32xN(width), count)

    def codegen(context, builder, sig, args):
        arr, base = args[0], args[1]
        vals = [
            _vec_at(context, builder, acc, arr, builder.add(base, base.type(j * width)), width) for j in range(count)
        ]
        return context.make_tuple(builder, ty, vals)

    return ty(acc, i, n, lanes), codegen


@intrinsic
def tile_store(typingctx, acc, i, tile):
    """``acc[i:]`` = the tile's vectors, in order."""
    if not (isinstance(tile, types.UniTuple) and isinstance(tile.dtype, F32xN)):
        return None
    width = tile.dtype.lanes

    def codegen(context, builder, sig, args):
        arr, base, t = args
        vec = ir.VectorType(ir.FloatType(), width)
        for j in range(tile.count):
            ptr = _address(context, builder, acc, arr, builder.add(base, base.type(j * width)), vec)
            builder.store(builder.extract_value(t, j), ptr, align=4)
        return context.get_dummy_value()

    return types.none(acc, i, tile), codegen


@intrinsic
def tile_fma(typingctx, tile, d, drow, x, ent, e, q, vecs):
    """The outer-product step: for each entry t and vector v < ``vecs`` (a constant; the
    tile holds ``ents * vecs`` vectors, entry major), sum[t, v] += d[drow + v*lanes :
    +lanes] * x[ent[e + t] + q] - ``vecs`` vectors of dy loaded, ``ents`` scalars of the
    source broadcast (an FMA's memory operand on AVX-512), ``vecs * ents`` multiply-adds."""
    nv = _literal(vecs)
    if nv is None or not (isinstance(tile, types.UniTuple) and isinstance(tile.dtype, F32xN)) or tile.count % nv:
        return None
    lanes, n_e = tile.dtype.lanes, tile.count // nv

    def codegen(context, builder, sig, args):
        t, darr, drow_v, xarr, earr, e_v, q_v = args[:7]
        vec = ir.VectorType(ir.FloatType(), lanes)
        ds = [_vec_at(context, builder, d, darr, builder.add(drow_v, drow_v.type(v * lanes)), lanes) for v in range(nv)]
        out: list[Any] = []
        for tt in range(n_e):
            off = _element(context, builder, ent, earr, builder.add(e_v, e_v.type(tt)))
            s = _splat(builder, _element(context, builder, x, xarr, builder.add(off, q_v)), vec)
            out.extend(_fma(builder, ds[v], s, builder.extract_value(t, tt * nv + v)) for v in range(nv))
        return context.make_tuple(builder, tile, out)

    return tile(tile, d, drow, x, ent, e, q, vecs), codegen


@intrinsic
def prefetch(typingctx, arr, idx):
    """Ask for the cache line of ``arr[idx]`` (a flat array) ahead of its use:
    ``llvm.prefetch`` (read, keep in all levels); no fault if past the end."""

    def codegen(context, builder, sig, args):
        data = cgutils.create_struct_proxy(sig.args[0])(context, builder, value=args[0]).data
        ptr = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.none(arr, idx), codegen


@intrinsic
def gather_rows(typingctx, out, at, arr, base, ld, rows, lanes):
    """out[at : at + lanes] = arr[base + l*ld] for the lanes l < ``rows`` (0 in the
    others, which read nothing): one masked gather, a column of ``lanes`` rows."""
    width = _literal(lanes)
    if width is None:
        return None

    def codegen(context, builder, sig, args):
        oarr, at_v, xarr, base_v, ld_v, rows_v = args[:6]
        f32 = ir.FloatType()
        vec = ir.VectorType(f32, width)
        i64 = ir.IntType(64)
        ivec = ir.VectorType(i64, width)
        data = cgutils.create_struct_proxy(sig.args[2])(context, builder, value=xarr).data
        step = _splat(builder, ld_v, ivec)
        lane = ir.Constant(ivec, list(range(width)))
        idx = builder.add(_splat(builder, base_v, ivec), builder.mul(lane, step))
        addr = builder.add(
            _splat(builder, builder.ptrtoint(data, i64), ivec), builder.mul(idx, _splat(builder, i64(4), ivec))
        )
        ptrs = builder.inttoptr(addr, ir.VectorType(data.type, width))
        i32 = ir.IntType(32)
        mask = _lane_mask(builder, ir.Constant(rows_v.type, 0), rows_v, width)
        fnty = ir.FunctionType(vec, [ptrs.type, i32, mask.type, vec])
        fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.gather.v{width}f32.v{width}p0")
        v = builder.call(fn, [ptrs, i32(4), mask, ir.Constant(vec, [0.0] * width)])
        builder.store(v, _address(context, builder, sig.args[0], oarr, at_v, vec), align=4)
        return context.get_dummy_value()

    return types.none(out, at, arr, base, ld, rows, lanes), codegen


@functools.cache
def _kernel(vecs: int, ents: int, lanes: int) -> Any:
    """The kernel for one tile shape (built on first use: only the shapes a program's
    channel counts need are compiled).  A factory, so that numba's disk cache keys each
    shape's kernel on its numbers."""
    width = vecs * lanes
    n_sums = vecs * ents
    chunk = CHUNK

    @njit(**KERNEL, fastmath=True)
    def outer(j0, j1, src, dyw, ld, co, ent, pos, dpos, parts, scratch, acc):
        """Parts ``j0 .. j1`` of :func:`weight_grad_outer`."""
        neb = ent.shape[0] // ents
        nob = (co + width - 1) // width
        n_pos = pos.shape[0]
        span = (n_pos + parts - 1) // parts
        for p in range(j0, j1):
            sb = p * chunk * width  # this part's block of dy, (chunk, width)
            for c0 in range(p * span, min(n_pos, (p + 1) * span), chunk):
                m = min(n_pos, (p + 1) * span, c0 + chunk) - c0
                for ob in range(nob):
                    n0 = c0 + m if ob + 1 == nob else c0  # the block after this one: its rows' lines
                    m1 = min(n_pos - n0, chunk)
                    o1 = (ob + 1) % nob * width
                    for o in range(o1, min(co, o1 + width)):
                        for i in range(0, m1, 8):
                            prefetch(dyw, o * ld + dpos[n0 + i])
                    for i in range(m):  # the block, transposed: a gather per vector of channels
                        q = dpos[c0 + i]
                        for v in range(vecs):
                            r = ob * width + v * lanes
                            gather_rows(scratch, sb + i * width + v * lanes, dyw, r * ld + q, ld, co - r, lanes)
                    for eb in range(neb):
                        base = ((p * nob + ob) * neb + eb) * ents * width
                        tile = tile_load(acc, base, n_sums, lanes)
                        for i in range(m):
                            tile = tile_fma(tile, scratch, sb + i * width, src, ent, eb * ents, pos[c0 + i], vecs)
                        tile_store(acc, base, tile)

    return outer


@functools.lru_cache(maxsize=64)
def outputs(padded: tuple[int, ...], out: tuple[int, ...], n: int) -> np.ndarray:
    """The wide positions that are outputs, in order: image ``i``'s output at coordinates
    ``c`` (each below ``out``) is position ``i * prod(padded) + flat(c in padded)``.
    Cached, read-only."""
    plane = int(np.prod(padded))
    grids = np.meshgrid(*[np.arange(o, dtype=np.int64) for o in out], indexing="ij")
    flat = np.ravel_multi_index(tuple(g.ravel() for g in grids), padded) if out else np.zeros(1, np.int64)
    pos = (np.arange(n, dtype=np.int64)[:, None] * plane + flat[None, :]).ravel()
    pos.setflags(write=False)
    return pos


@functools.lru_cache(maxsize=64)
def dense_positions(n: int, co: int, plane: int) -> np.ndarray:
    """Where :func:`outputs`' positions lie in a dense output gradient (N, co, plane):
    image ``i``'s output ``j`` of channel 0 at ``i * co * plane + j`` (channel ``o`` is
    ``o * plane`` further).  Cached, read-only."""
    pos = (np.arange(n, dtype=np.int64)[:, None] * (co * plane) + np.arange(plane, dtype=np.int64)[None, :]).ravel()
    pos.setflags(write=False)
    return pos


def shape(co: int, groups: int, n_ent: int) -> tuple[int, int] | None:
    """The outer-product tile (vectors of output channels, entries) for ``co`` output
    channels and ``n_ent`` entries, or None where :mod:`.wide`'s kernel takes the weight
    gradient: grouped convolutions, channel counts that would leave over a fifth of the
    lanes empty, and fewer than :data:`MIN_ENTRIES` entries.  The widest block that fits,
    of the tile's sums (:mod:`.tile`)."""
    if groups != 1 or n_ent < MIN_ENTRIES:
        return None
    for vecs in range(TILE.wg_vecs, 0, -1):
        width = vecs * LANES
        if -(-co // width) * width * 4 <= co * 5:
            return vecs, TILE.wg_sums // vecs
    return None


def weight_grad_outer(
    src: np.ndarray,
    dyw: np.ndarray,
    ld: int,
    co: int,
    ents: np.ndarray,
    pos: np.ndarray,
    tile: tuple[int, int],
    parts: int,
    dpos: np.ndarray | None = None,
) -> np.ndarray:
    """dw (co, E) float32: dw[o, e] = sum over k of dyw[o*ld + dpos[k]] * src[ents[e] + pos[k]].

    src: the flat wide source; pos: the positions to sum over, the outputs (:func:`outputs`:
    the wide positions that are not outputs have dy = 0 and are skipped); dyw: the output
    gradient, channel o's element for position ``pos[k]`` at ``o*ld + dpos[k]`` - the
    wide layout's rows (:func:`.wide.grad_layout`: dpos = pos, the default) or dy itself
    where it lies (N, co, *out) (ld = the plane, dpos = :func:`dense_positions`: no copy);
    ``tile``: :func:`shape`'s.  ``parts`` ranges of positions, one a job (a thread), each
    summing into its own tile sums, added at the end."""
    vecs, n_e = tile
    width = vecs * LANES
    nob = -(-co // width)
    neb = -(-ents.size // n_e)
    ent = np.zeros(neb * n_e, dtype=np.int64)
    ent[: ents.size] = ents  # extra entries read offset 0 and are dropped
    acc = np.zeros((parts, nob, neb, n_e, width), dtype=np.float32)
    scratch = np.zeros(parts * CHUNK * width, dtype=np.float32)  # (positions, width) per part
    kernel = _kernel(vecs, n_e, LANES)
    work = pos.size * neb * n_e * nob * width
    dpos = pos if dpos is None else dpos
    assert dpos.shape == pos.shape
    parallel_for(kernel, parts, src, dyw, ld, co, ent, pos, dpos, parts, scratch, acc.ravel(), work=work)
    summed = acc.sum(axis=0) if parts > 1 else acc[0]
    # (nob, neb, n_e, width) -> (co, E)
    dw = summed.transpose(0, 3, 1, 2).reshape(nob * width, neb * n_e)
    return np.ascontiguousarray(dw[:co, : ents.size])
