"""Explicit float32 vectors for numba kernels: 16 lanes, and 64-lane rows of a tile.

LLVM does not turn a block of scalar accumulators in a numba loop into
vector registers (neither its loop nor its SLP vectoriser does, measured:
10 GFLOP/s on one core), so the convolution micro-kernels spell the vectors
out: a numba type :data:`f32x16` held in one LLVM ``<16 x float>`` value, and
intrinsics to load, broadcast, multiply-add and store it.  LLVM lowers them to
whatever the CPU has (one AVX-512 register, two AVX2 registers, four NEON
registers), so the kernels stay portable.  A wider vector (:data:`f32x64`, a row of
the convolution's 4 x 64 register tile) is split by LLVM into as many registers as
it takes: one value per row keeps the kernel's source (and its compile time) small.

Only :mod:`convpool.backends.compiled.direct` and :mod:`convpool.backends.compiled.maxplus` use this module;
import it only when numba is available.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

LANES = 16
_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_VEC = ir.VectorType(_F32, LANES)
_IVEC = ir.VectorType(_I32, LANES)


class F32xN(types.Type):
    """``lanes`` float32 lanes, a value type (lives in registers; LLVM splits a vector
    wider than the CPU's registers into several)."""

    def __init__(self, lanes: int) -> None:
        self.lanes = lanes
        super().__init__(name=f"f32x{lanes}")


f32x16 = F32xN(LANES)


@register_model(F32xN)
class _F32xNModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(_F32, fe_type.lanes))


def _address(context, builder, arrty, arr, idx, vec=_VEC):
    """Pointer (to a ``vec``) at element ``idx`` of the flat (1-D, contiguous) array ``arr``."""
    data = cgutils.create_struct_proxy(arrty)(context, builder, value=arr).data
    return builder.bitcast(builder.gep(data, [idx]), vec.as_pointer())


def _splat(builder, value, vec_type):
    one = builder.insert_element(ir.Constant(vec_type, ir.Undefined), value, ir.Constant(_I32, 0))
    mask = ir.Constant(ir.VectorType(_I32, vec_type.count), [0] * vec_type.count)
    return builder.shuffle_vector(one, ir.Constant(vec_type, ir.Undefined), mask)


def _ops(ty: F32xN):
    """zero, load and broadcast for vectors of type ``ty`` (the other operations take
    any width)."""
    vec = ir.VectorType(_F32, ty.lanes)

    @intrinsic
    def zero(typingctx):
        def codegen(context, builder, sig, args):
            return ir.Constant(vec, [0.0] * ty.lanes)

        return ty(), codegen

    @intrinsic
    def load(typingctx, arr, idx):
        def codegen(context, builder, sig, args):
            return builder.load(_address(context, builder, arr, args[0], args[1], vec), align=4)

        return ty(arr, idx), codegen

    @intrinsic
    def broadcast(typingctx, value):
        def codegen(context, builder, sig, args):
            return _splat(builder, args[0], vec)

        return ty(types.float32), codegen

    zero.__doc__ = f"All {ty.lanes} lanes 0."
    load.__doc__ = f"Lanes ``arr[idx : idx + {ty.lanes}]`` of a flat float32 array (unaligned)."
    broadcast.__doc__ = "One float32 in every lane."
    return zero, load, broadcast


vzero, vload, vbroadcast = _ops(f32x16)
# a whole row of a register tile in one value: the convolution's 4 x 64 tile is 4 of these
f32x64 = F32xN(64)
wzero, wload, wbroadcast = _ops(f32x64)


@intrinsic
def vfma(typingctx, a, b, c):
    """``a * b + c`` lane by lane, one rounding (vectors of one width)."""
    if not (isinstance(a, F32xN) and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        vec = ir.VectorType(_F32, a.lanes)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), f"llvm.fma.v{a.lanes}f32")
        return builder.call(fn, args)

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


def _lane_mask(builder, lo, hi):
    """The <16 x i1> mask of lanes ``lo <= l < hi``."""
    lanes = ir.Constant(_IVEC, list(range(LANES)))
    lo_v = _splat(builder, builder.trunc(lo, _I32), _IVEC)
    hi_v = _splat(builder, builder.trunc(hi, _I32), _IVEC)
    return builder.and_(builder.icmp_signed(">=", lanes, lo_v), builder.icmp_signed("<", lanes, hi_v))


@intrinsic
def vload_lanes(typingctx, arr, idx, lo, hi):
    """Lanes ``arr[idx + l]`` for ``lo <= l < hi``, 0 in the others (a masked load: the
    other lanes' addresses are never read, so a row's tail may end the array)."""

    def codegen(context, builder, sig, args):
        mask = _lane_mask(builder, args[2], args[3])
        ptr = _address(context, builder, arr, args[0], args[1])
        fnty = ir.FunctionType(_VEC, [ptr.type, _I32, mask.type, _VEC])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.masked.load.v16f32.p0")
        return builder.call(fn, [ptr, ir.Constant(_I32, 4), mask, ir.Constant(_VEC, [0.0] * LANES)])

    return f32x16(arr, idx, lo, hi), codegen


@intrinsic
def vload_even(typingctx, arr, idx, n):
    """Lanes ``arr[idx + 2*l]`` for ``l < n`` (n <= 16), 0 in the others: every other
    element, as a stride-2 phase needs.  Two masked loads and one shuffle; only the
    elements ``idx .. idx + 2*(n-1)`` are read."""

    def codegen(context, builder, sig, args):
        end = builder.sub(builder.mul(args[2], ir.Constant(args[2].type, 2)), ir.Constant(args[2].type, 1))
        zero, sixteen = ir.Constant(args[2].type, 0), ir.Constant(args[2].type, LANES)
        fnty = ir.FunctionType(_VEC, [_VEC.as_pointer(), _I32, ir.VectorType(ir.IntType(1), LANES), _VEC])
        load = cgutils.get_or_insert_function(builder.module, fnty, "llvm.masked.load.v16f32.p0")
        halves = []
        for base in (zero, sixteen):  # elements [idx, idx+16) and [idx+16, idx+32)
            mask = _lane_mask(builder, zero, builder.sub(end, base))  # up to idx + 2n - 2
            ptr = _address(context, builder, arr, args[0], builder.add(args[1], base))
            halves.append(builder.call(load, [ptr, ir.Constant(_I32, 4), mask, ir.Constant(_VEC, [0.0] * LANES)]))
        even = ir.Constant(_IVEC, list(range(0, 2 * LANES, 2)))
        return builder.shuffle_vector(halves[0], halves[1], even)

    return f32x16(arr, idx, n), codegen


@intrinsic
def vstore_lanes(typingctx, arr, idx, v, lo, hi):
    """``arr[idx + l] = v[l]`` for the lanes ``lo <= l < hi`` only (a masked store:
    the other lanes' addresses are never touched)."""

    def codegen(context, builder, sig, args):
        mask = _lane_mask(builder, args[3], args[4])
        ptr = _address(context, builder, arr, args[0], args[1])
        fnty = ir.FunctionType(ir.VoidType(), [_VEC, ptr.type, _I32, mask.type])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.masked.store.v16f32.p0")
        builder.call(fn, [args[2], ptr, ir.Constant(_I32, 4), mask])
        return context.get_dummy_value()

    return types.none(arr, idx, v, lo, hi), codegen


@intrinsic
def vpart(typingctx, v, i):
    """Lanes ``16*i .. 16*i + 15`` of a wider vector ``v`` as an f32x16 (``i`` a loop
    counter the compiler unrolls: the choice folds to one register)."""
    if not isinstance(v, F32xN) or v.lanes % LANES:
        return None
    parts = v.lanes // LANES

    def codegen(context, builder, sig, args):
        vec, index = args
        out = None
        for k in reversed(range(parts)):
            piece = builder.shuffle_vector(vec, vec, ir.Constant(_IVEC, list(range(k * LANES, (k + 1) * LANES))))
            if out is None:
                out = piece
            else:
                out = builder.select(builder.icmp_signed("==", index, ir.Constant(index.type, k)), piece, out)
        return out

    return f32x16(v, i), codegen
