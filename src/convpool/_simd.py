"""Explicit 16-lane float32 vectors for numba kernels.

LLVM does not turn a block of scalar accumulators in a numba loop into
vector registers (neither its loop nor its SLP vectoriser does, measured:
10 GFLOP/s on one core), so the convolution micro-kernels spell the vectors
out: a numba type :data:`f32x16` held in one LLVM ``<16 x float>`` value, and
intrinsics to load, broadcast, multiply-add and store it.  LLVM lowers them to
whatever the CPU has (one AVX-512 register, two AVX2 registers, four NEON
registers), so the kernels stay portable.

Only :mod:`convpool._direct` uses this module; import it only when numba is
available.
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


class F32x16(types.Type):
    """Sixteen float32 lanes, a value type (lives in registers)."""

    def __init__(self) -> None:
        super().__init__(name="f32x16")


f32x16 = F32x16()


@register_model(F32x16)
class _F32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VEC)


def _address(context, builder, arrty, arr, idx):
    """Pointer to element ``idx`` of the flat (1-D, contiguous) array ``arr``."""
    data = cgutils.create_struct_proxy(arrty)(context, builder, value=arr).data
    return builder.bitcast(builder.gep(data, [idx]), _VEC.as_pointer())


def _splat(builder, value, vec_type):
    one = builder.insert_element(ir.Constant(vec_type, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, ir.Constant(vec_type, ir.Undefined), ir.Constant(_IVEC, [0] * LANES))


@intrinsic
def vzero(typingctx):
    """All lanes 0."""

    def codegen(context, builder, sig, args):
        return ir.Constant(_VEC, [0.0] * LANES)

    return f32x16(), codegen


@intrinsic
def vload(typingctx, arr, idx):
    """Lanes ``arr[idx : idx + 16]`` of a flat float32 array (unaligned)."""

    def codegen(context, builder, sig, args):
        return builder.load(_address(context, builder, arr, args[0], args[1]), align=4)

    return f32x16(arr, idx), codegen


@intrinsic
def vbroadcast(typingctx, value):
    """One float32 in every lane."""

    def codegen(context, builder, sig, args):
        return _splat(builder, args[0], _VEC)

    return f32x16(types.float32), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """``a * b + c`` lane by lane, one rounding."""

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VEC, [_VEC] * 3), "llvm.fma.v16f32")
        return builder.call(fn, args)

    return f32x16(f32x16, f32x16, f32x16), codegen


@intrinsic
def vstore(typingctx, arr, idx, v):
    """``arr[idx : idx + 16] = v``."""

    def codegen(context, builder, sig, args):
        builder.store(args[2], _address(context, builder, arr, args[0], args[1]), align=4)
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
