"""Explicit float32 vectors for numba kernels, of any width, and register tiles built of them.

LLVM does not turn a block of scalar accumulators in a numba loop into
vector registers (neither its loop nor its SLP vectoriser does, measured:
10 GFLOP/s on one core), so the convolution micro-kernels spell the vectors
out: a numba type ``f32x<n>`` held in one LLVM ``<n x float>`` value, and
intrinsics to load, broadcast, multiply-add and store it.  LLVM lowers a vector
to whatever the CPU has (one AVX-512 register for 16 lanes, two AVX2 registers,
four SSE or NEON registers), so the kernels stay portable; how many lanes and
accumulators pay is the CPU's business, chosen in
:mod:`convpool.backends.compiled.direct.tile` and built here:

* :func:`vectors` - the operations on vectors of a given width (``LANES`` = 16 at
  module level: :data:`f32x16`, :func:`vload`, ... for kernels written for 16 lanes);
* :func:`row_tile` - a register tile of ``rows`` x ``width`` sums as one value (a tuple
  of rows), with the multiply-add of a row of inputs by ``rows`` broadcast weights;
* :func:`grad_tile` - the weight gradient's tile: ``oc`` x ``taps`` vectors of sums.

Only :mod:`convpool.backends.compiled.direct` and :mod:`convpool.backends.compiled.maxplus`
use this module; import it only when numba is available.  Numba's disk cache checks a
kernel's own source file, not this one: after editing an intrinsic here, clear the cached
kernels (``__pycache__/*.nbi``, ``*.nbc`` beside their modules, or ``NUMBA_CACHE_DIR``).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

LANES = 16  # the width of the module-level operations (f32x16, vload, ...)
_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_VEC = ir.VectorType(_F32, LANES)


class F32xN(types.Type):
    """``lanes`` float32 lanes, a value type (lives in registers; LLVM splits a vector
    wider than the CPU's registers into several)."""

    def __init__(self, lanes: int) -> None:
        self.lanes = lanes
        super().__init__(name=f"f32x{lanes}")


@register_model(F32xN)
class _F32xNModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(_F32, fe_type.lanes))


def _address(context, builder, arrty, arr, idx, vec=_VEC):
    """Pointer (to a ``vec``) at element ``idx`` of the flat (1-D, contiguous) array ``arr``."""
    data = cgutils.create_struct_proxy(arrty)(context, builder, value=arr).data
    return builder.bitcast(builder.gep(data, [idx]), vec.as_pointer())


def _element(context, builder, arrty, arr, idx):
    """``arr[idx]`` of a flat (1-D, contiguous) array, no bounds check."""
    data = cgutils.create_struct_proxy(arrty)(context, builder, value=arr).data
    return builder.load(builder.gep(data, [idx]))


def _splat(builder, value, vec_type):
    one = builder.insert_element(ir.Constant(vec_type, ir.Undefined), value, ir.Constant(_I32, 0))
    mask = ir.Constant(ir.VectorType(_I32, vec_type.count), [0] * vec_type.count)
    return builder.shuffle_vector(one, ir.Constant(vec_type, ir.Undefined), mask)


def _fma(builder, a, b, c):
    """``a * b + c`` on vectors: ``llvm.fmuladd``, one fused instruction where the CPU
    has FMA, a multiply and an add where it has not (``llvm.fma`` would call the C
    library's fmaf lane by lane there)."""
    vec = a.type
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vec, [vec] * 3), f"llvm.fmuladd.v{vec.count}f32"
    )
    return builder.call(fn, [a, b, c])


def _lane_mask(builder, lo, hi, lanes):
    """The <lanes x i1> mask of lanes ``lo <= l < hi``."""
    ivec = ir.VectorType(_I32, lanes)
    index = ir.Constant(ivec, list(range(lanes)))
    lo_v = _splat(builder, builder.trunc(lo, _I32), ivec)
    hi_v = _splat(builder, builder.trunc(hi, _I32), ivec)
    return builder.and_(builder.icmp_signed(">=", index, lo_v), builder.icmp_signed("<", index, hi_v))


def _masked_load(builder, ptr, mask, vec):
    fnty = ir.FunctionType(vec, [ptr.type, _I32, mask.type, vec])
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.load.v{vec.count}f32.p0")
    return builder.call(fn, [ptr, ir.Constant(_I32, 4), mask, ir.Constant(vec, [0.0] * vec.count)])


@intrinsic
def vfma(typingctx, a, b, c):
    """``a * b + c`` lane by lane (vectors of one width; fused where the CPU has FMA)."""
    if not (isinstance(a, F32xN) and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        return _fma(builder, *args)

    return a(a, a, a), codegen


@intrinsic
def vstore(typingctx, arr, idx, v):
    """``arr[idx : idx + lanes] = v``."""
    if not isinstance(v, F32xN):
        return None

    def codegen(context, builder, sig, args):
        vec = ir.VectorType(_F32, v.lanes)
        builder.store(args[2], _address(context, builder, arr, args[0], args[1], vec), align=4)
        return context.get_dummy_value()

    return types.none(arr, idx, v), codegen


@functools.cache
def vectors(lanes: int) -> SimpleNamespace:
    """The operations on ``lanes``-float vectors (type ``ty``): ``zero()``, ``load(arr, i)``,
    ``broadcast(x)``, ``load_lanes(arr, i, lo, hi)``, ``store_lanes(arr, i, v, lo, hi)``,
    ``load_even(arr, i, n)`` and ``part(v, i)`` (``fma`` and ``store`` take any width:
    :func:`vfma`, :func:`vstore`).  One set per width, built once."""
    ty = F32xN(lanes)
    vec = ir.VectorType(_F32, lanes)
    ivec = ir.VectorType(_I32, lanes)

    @intrinsic
    def zero(typingctx):
        """All lanes 0."""

        def codegen(context, builder, sig, args):
            return ir.Constant(vec, [0.0] * lanes)

        return ty(), codegen

    @intrinsic
    def load(typingctx, arr, idx):
        """Lanes ``arr[idx : idx + lanes]`` of a flat float32 array (unaligned)."""

        def codegen(context, builder, sig, args):
            return builder.load(_address(context, builder, arr, args[0], args[1], vec), align=4)

        return ty(arr, idx), codegen

    @intrinsic
    def broadcast(typingctx, value):
        """One float32 in every lane."""

        def codegen(context, builder, sig, args):
            return _splat(builder, args[0], vec)

        return ty(types.float32), codegen

    @intrinsic
    def load_lanes(typingctx, arr, idx, lo, hi):
        """Lanes ``arr[idx + l]`` for ``lo <= l < hi``, 0 in the others (a masked load:
        the other lanes' addresses are never read, so a row's tail may end the array)."""

        def codegen(context, builder, sig, args):
            mask = _lane_mask(builder, args[2], args[3], lanes)
            return _masked_load(builder, _address(context, builder, arr, args[0], args[1], vec), mask, vec)

        return ty(arr, idx, lo, hi), codegen

    @intrinsic
    def load_even(typingctx, arr, idx, n):
        """Lanes ``arr[idx + 2*l]`` for ``l < n`` (n <= lanes), 0 in the others: every
        other element, as a stride-2 phase needs.  Two masked loads and one shuffle;
        only the elements ``idx .. idx + 2*(n-1)`` are read."""

        def codegen(context, builder, sig, args):
            end = builder.sub(builder.mul(args[2], ir.Constant(args[2].type, 2)), ir.Constant(args[2].type, 1))
            halves = []
            for base in (ir.Constant(args[2].type, 0), ir.Constant(args[2].type, lanes)):
                mask = _lane_mask(builder, ir.Constant(args[2].type, 0), builder.sub(end, base), lanes)
                ptr = _address(context, builder, arr, args[0], builder.add(args[1], base), vec)
                halves.append(_masked_load(builder, ptr, mask, vec))
            return builder.shuffle_vector(halves[0], halves[1], ir.Constant(ivec, list(range(0, 2 * lanes, 2))))

        return ty(arr, idx, n), codegen

    @intrinsic
    def store_lanes(typingctx, arr, idx, v, lo, hi):
        """``arr[idx + l] = v[l]`` for the lanes ``lo <= l < hi`` only (a masked store:
        the other lanes' addresses are never touched)."""

        def codegen(context, builder, sig, args):
            mask = _lane_mask(builder, args[3], args[4], lanes)
            ptr = _address(context, builder, arr, args[0], args[1], vec)
            fnty = ir.FunctionType(ir.VoidType(), [vec, ptr.type, _I32, mask.type])
            fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.store.v{lanes}f32.p0")
            builder.call(fn, [args[2], ptr, ir.Constant(_I32, 4), mask])
            return context.get_dummy_value()

        return types.none(arr, idx, v, lo, hi), codegen

    @intrinsic
    def part(typingctx, v, i):
        """Lanes ``lanes*i .. lanes*(i+1) - 1`` of a wider vector ``v`` (``i`` a loop
        counter the compiler unrolls: the choice folds to one register)."""
        if not isinstance(v, F32xN) or v.lanes % lanes:
            return None

        def codegen(context, builder, sig, args):
            return _select_part(builder, args[0], args[1], v.lanes // lanes, lanes)

        return ty(v, i), codegen

    return SimpleNamespace(
        ty=ty,
        zero=zero,
        load=load,
        broadcast=broadcast,
        load_lanes=load_lanes,
        load_even=load_even,
        store_lanes=store_lanes,
        part=part,
    )


def _select_part(builder, vec, index, parts, lanes):
    """Part ``index`` (a run-time value the unrolled loop folds) of ``vec``'s ``parts``
    runs of ``lanes``."""
    out = None
    for k in reversed(range(parts)):
        mask = ir.Constant(ir.VectorType(_I32, lanes), list(range(k * lanes, (k + 1) * lanes)))
        piece = builder.shuffle_vector(vec, vec, mask)
        out = piece if out is None else builder.select(builder.icmp_signed("==", index, index.type(k)), piece, out)
    return out


@functools.cache
def row_tile(rows: int, lanes: int, vecs: int) -> SimpleNamespace:
    """A register tile of ``rows`` x ``vecs`` vectors of ``lanes`` float32 sums (type
    ``ty``, a tuple, row major), for the convolution's micro-kernel:

    * ``zero()`` - all sums 0;
    * ``fill(b, k)`` - row r's sums all ``b[k + r]`` (a bias; b a flat float32 array);
    * ``fma(acc, w, k, stride, x, i)`` - row r += w[k + r * stride] * x[i : i + lanes * vecs]
      (``vecs`` vector loads of x, ``rows`` broadcasts of w - each row's weight from its
      own weight row, ``stride`` apart - and ``rows * vecs`` multiply-adds); w and x flat
      float32 arrays;
    * ``part(acc, r, v)`` - vector v of row r (r, v loop counters the compiler unrolls).

    Built once per shape.  Every value is one ``lanes`` vector, so LLVM keeps the tile in
    ``rows * vecs`` registers when the CPU's registers hold ``lanes`` floats (no odd-sized
    vector for the code generator to split)."""
    vec = ir.VectorType(_F32, lanes)
    ty = types.UniTuple(F32xN(lanes), rows * vecs)

    @intrinsic
    def zero(typingctx):
        def codegen(context, builder, sig, args):
            return context.make_tuple(builder, ty, [ir.Constant(vec, [0.0] * lanes)] * (rows * vecs))

        return ty(), codegen

    @intrinsic
    def fill(typingctx, b, k):
        if not (isinstance(b, types.Array) and b.dtype == types.float32 and b.ndim == 1):
            return None

        def codegen(context, builder, sig, args):
            barr, base = args
            rows_ = [
                _splat(builder, _element(context, builder, b, barr, builder.add(base, base.type(r))), vec)
                for r in range(rows)
            ]
            return context.make_tuple(builder, ty, [v for v in rows_ for _ in range(vecs)])

        return ty(b, k), codegen

    @intrinsic
    def fma(typingctx, acc, w, k, stride, x, i):
        if acc != ty:
            return None

        def codegen(context, builder, sig, args):
            tile, warr, base, step, xarr, at = args
            xs = [
                builder.load(_address(context, builder, x, xarr, builder.add(at, at.type(v * lanes)), vec), align=4)
                for v in range(vecs)
            ]
            out: list[Any] = []
            for r in range(rows):
                row = builder.add(base, builder.mul(step, step.type(r))) if r else base
                wr = _splat(builder, _element(context, builder, w, warr, row), vec)
                out.extend(_fma(builder, wr, xs[v], builder.extract_value(tile, r * vecs + v)) for v in range(vecs))
            return context.make_tuple(builder, ty, out)

        return ty(ty, w, k, stride, x, i), codegen

    @intrinsic
    def part(typingctx, acc, r, v):
        if acc != ty:
            return None

        def codegen(context, builder, sig, args):
            tile, rr, vv = args
            j = builder.add(builder.mul(rr, rr.type(vecs)), builder.sext(vv, rr.type) if vv.type != rr.type else vv)
            chosen = builder.extract_value(tile, 0)
            for k in range(1, rows * vecs):
                chosen = builder.select(builder.icmp_signed("==", j, j.type(k)), builder.extract_value(tile, k), chosen)
            return chosen

        return F32xN(lanes)(ty, r, v), codegen

    return SimpleNamespace(ty=ty, zero=zero, fill=fill, fma=fma, part=part)


@functools.cache
def grad_tile(oc: int, taps: int, lanes: int) -> SimpleNamespace:
    """The weight gradient's register tile: ``oc`` x ``taps`` vectors of ``lanes`` per-lane
    sums (a tuple, output channel major), kept in memory between passes:

    * ``load(acc, i)`` / ``store(acc, i, tile)`` - the tile from / to ``oc * taps``
      consecutive vectors of the flat float32 array ``acc`` at ``i``;
    * ``fma(tile, dy, drow, ld, x, xrow, ents, e, q)`` - for each output channel o and
      tap t: sum[o, t] += dy[drow + o*ld + q : +lanes] * x[xrow + ents[e + t] + q : +lanes]
      (``oc`` vectors of dy and ``taps`` of x loaded, ``oc * taps`` multiply-adds)."""
    vec = ir.VectorType(_F32, lanes)
    n = oc * taps
    ty = types.UniTuple(F32xN(lanes), n)

    @intrinsic
    def load(typingctx, acc, i):
        def codegen(context, builder, sig, args):
            arr, base = args
            vals = [
                builder.load(
                    _address(context, builder, acc, arr, builder.add(base, base.type(j * lanes)), vec), align=4
                )
                for j in range(n)
            ]
            return context.make_tuple(builder, ty, vals)

        return ty(acc, i), codegen

    @intrinsic
    def store(typingctx, acc, i, tile):
        if tile != ty:
            return None

        def codegen(context, builder, sig, args):
            arr, base, t = args
            for j in range(n):
                ptr = _address(context, builder, acc, arr, builder.add(base, base.type(j * lanes)), vec)
                builder.store(builder.extract_value(t, j), ptr, align=4)
            return context.get_dummy_value()

        return types.none(acc, i, ty), codegen

    @intrinsic
    def fma(typingctx, tile, dy, drow, ld, x, xrow, ents, e, q):
        if tile != ty:
            return None

        def codegen(context, builder, sig, args):
            t, dyarr, drow_v, ld_v, xarr, xrow_v, earr, e_v, q_v = args
            xs = []
            for tt in range(taps):
                off = _element(context, builder, ents, earr, builder.add(e_v, e_v.type(tt)))
                at = builder.add(builder.add(xrow_v, off), q_v)
                xs.append(builder.load(_address(context, builder, x, xarr, at, vec), align=4))
            out: list[Any] = []
            for o in range(oc):
                at = builder.add(builder.add(drow_v, builder.mul(ld_v, ld_v.type(o))), q_v)
                d = builder.load(_address(context, builder, dy, dyarr, at, vec), align=4)
                out.extend(_fma(builder, d, xs[tt], builder.extract_value(t, o * taps + tt)) for tt in range(taps))
            return context.make_tuple(builder, ty, out)

        return ty(ty, dy, drow, ld, x, xrow, ents, e, q), codegen

    return SimpleNamespace(ty=ty, load=load, store=store, fma=fma)


# --- 16 lanes, for kernels written for them -------------------------------------------
_V16 = vectors(LANES)
f32x16 = _V16.ty
vzero, vload, vbroadcast = _V16.zero, _V16.load, _V16.broadcast
vload_lanes, vload_even, vstore_lanes, vpart = _V16.load_lanes, _V16.load_even, _V16.store_lanes, _V16.part
# a whole row of the AVX-512 register tile (4 vectors of 16) in one value
_V64 = vectors(64)
f32x64 = _V64.ty
wzero, wload, wbroadcast = _V64.zero, _V64.load, _V64.broadcast
