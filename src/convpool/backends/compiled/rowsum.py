"""Means of short rows in float32 (a global average pool's planes: 7x7 = 49 elements),
on explicit 16-lane vectors.

LLVM's own vectorisation of a row sum unrolls by 4 vectors, so a 49-element row runs
mostly in its narrow and scalar remainder loops: 3 vector, 4 narrow and 1 scalar adds,
plus two horizontal reductions, per row.  Here a row is whole vectors and one masked
vector (the lanes past the row are never read), summed across lanes once; two rows at a
time, so that their loads overlap."""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .simd import F32xN, _address, vectors
from .threads import KERNEL_O2, parallel_for

CHUNK = 1024  # elements summed in float32 before a float64 add
AHEAD = 64  # rows ahead to prefetch (64 x 49 floats: 12.5 KiB)
_V = vectors(16)
_vzero, _vload, _vload_lanes = _V.zero, _V.load, _V.load_lanes


@intrinsic
def _vadd(typingctx, a, b):
    """``a + b`` lane by lane."""
    if not (isinstance(a, F32xN) and a == b):
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1])

    return a(a, b), codegen


@intrinsic
def _hsum(typingctx, v):
    """The sum of ``v``'s lanes (halves added pairwise: log2(lanes) shuffles and adds)."""
    if not isinstance(v, F32xN):
        return None

    def codegen(context, builder, sig, args):
        x, n = args[0], v.lanes
        while n > 1:
            n //= 2
            i32 = ir.IntType(32)
            lo = builder.shuffle_vector(x, x, ir.Constant(ir.VectorType(i32, n), list(range(n))))
            hi = builder.shuffle_vector(x, x, ir.Constant(ir.VectorType(i32, n), list(range(n, 2 * n))))
            x = builder.fadd(lo, hi)
        return builder.extract_element(x, ir.Constant(ir.IntType(32), 0))

    return types.float32(v), codegen


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Ask for the cache line of ``arr[idx]`` (a hint: never faults, even past the end)."""

    def codegen(context, builder, sig, args):
        ptr = _address(context, builder, arr, args[0], args[1], ir.IntType(8))
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32]), "llvm.prefetch.p0"
        )
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.none(arr, idx), codegen


@njit(inline="always")
def _row(x, base, plane):
    """The row's sum in float64: vectors of float32 sums over chunks of CHUNK elements
    (short rows: one chunk, one reduction across the lanes), the chunks added in float64
    (a float32 running sum over a 1024x1024 plane of values near 1000 was off by 5e-5)."""
    full = plane - plane % 16
    acc = _vload_lanes(x, base + full, 0, plane - full) if full < plane else _vzero()
    total = 0.0
    i = 0
    while True:
        end = min(i + CHUNK, full)
        for k in range(i, end, 16):
            acc = _vadd(acc, _vload(x, base + k))
        i = end
        if i >= full:
            return total + _hsum(acc)
        total += _hsum(acc)
        acc = _vzero()


@njit(**KERNEL_O2)
def _row_means(j0, j1, x, plane, y, div):
    r = j0
    while r + 1 < j1:  # two rows at a time: independent sums, overlapping loads
        for k in range(0, 2 * plane, 16):
            _prefetch(x, (r + AHEAD) * plane + k)
        a = _row(x, r * plane, plane)
        b = _row(x, (r + 1) * plane, plane)
        y[r] = a / div
        y[r + 1] = b / div
        r += 2
    if r < j1:
        y[r] = _row(x, r * plane, plane) / div


def row_means(x: np.ndarray, y: np.ndarray, div: int) -> None:
    """y[r] = sum(x[r, :]) / div for a float32 C-contiguous x (R, plane) (flat y)."""
    rows, plane = x.shape
    parallel_for(_row_means, rows, x.reshape(-1), plane, y, float(div), work=x.size)
