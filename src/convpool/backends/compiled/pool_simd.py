"""The float32 2x2 max/min pool's forward on explicit vectors: one output row (up to
:data:`LANES` windows) per step.

The scalar kernel (:func:`.tiled_kernels.select_2x2`) vectorises only along rows of 16
windows or more (LLVM's vector loop takes 8 or more at a time, the rest runs scalar): on
the 14x14 and 7x7 outputs of a small network it ran at 7 ns a window, 6x slower than on
long rows (Intel Xeon under KVM, 1x32x28x28 -> 14x14: 41 us).  Here each step loads the
two input rows of up to LANES windows with masked loads (no element past the windows is
read), splits even and odd columns, and picks the winner in three comparisons - the
right column over the left, then the bottom row over the top - each taking over only
when larger (smaller for min), or NaN where the other is not: the first element of the
window in scan order among equals, the first NaN, as the scalar kernel does.  Values and
positions are written with masked stores.  Import only when numba is available.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .simd import _F32, _I32, _address, _lane_mask, _masked_load
from .threads import KERNEL_O2, parallel_for

LANES = 16  # windows per step (LLVM splits the vectors for narrower registers)
_I8 = ir.IntType(8)


def _takes_over(builder: Any, b: Any, a: Any, sign: float) -> Any:
    """Lanes where ``b`` replaces ``a``: larger (max) or smaller (min), or NaN where ``a`` is not."""
    better = builder.fcmp_ordered(">" if sign > 0 else "<", b, a)
    nan_over = builder.and_(builder.fcmp_unordered("uno", b, b), builder.fcmp_ordered("ord", a, a))
    return builder.or_(better, nan_over)


@functools.cache
def _select_row(sign: float, spill: bool) -> Any:
    """The intrinsic ``select_row(x, top, w, n, y, yi, pos)``: the ``n`` (<= LANES) windows
    whose top-left elements are ``x[top + 2*l]`` (the bottom row ``w`` further), winners
    into ``y[yi + l]`` and their positions (0-3, scan order) into ``pos[yi + l]``.  With
    ``spill`` plain vector loads and stores replace the masked ones - the caller knows
    that the 2 * LANES elements of each row lie in ``x`` and that the outputs past ``n``
    are windows it writes later: AVX2 has no masked byte store (LLVM stores lane by lane)
    and its masked loads and stores cost more than plain ones."""
    vec = ir.VectorType(_F32, LANES)
    bvec = ir.VectorType(_I8, LANES)
    ivec = ir.VectorType(_I32, LANES)

    @intrinsic
    def select_row(typingctx, x, top, w, n, y, yi, pos):
        def codegen(context, builder, sig, args):
            xv, top_i, w_i, n_i, yv, yi_i, posv = args
            i64 = n_i.type
            two_n = builder.mul(n_i, ir.Constant(i64, 2))
            zero, lanes = ir.Constant(i64, 0), ir.Constant(i64, LANES)
            masks = (
                _lane_mask(builder, zero, two_n, LANES),
                _lane_mask(builder, zero, builder.sub(two_n, lanes), LANES),
            )

            def load(at, mask):
                ptr = _address(context, builder, sig.args[0], xv, at, vec)
                return builder.load(ptr, align=4) if spill else _masked_load(builder, ptr, mask, vec)

            def row(start):  # (even, odd) columns of 2n elements from x[start]
                halves = [load(builder.add(start, off), m) for off, m in zip((zero, lanes), masks, strict=True)]
                even = builder.shuffle_vector(halves[0], halves[1], ir.Constant(ivec, list(range(0, 2 * LANES, 2))))
                odd = builder.shuffle_vector(halves[0], halves[1], ir.Constant(ivec, list(range(1, 2 * LANES, 2))))
                return even, odd

            v0, v1 = row(top_i)
            v2, v3 = row(builder.add(top_i, w_i))
            t01 = _takes_over(builder, v1, v0, sign)
            t23 = _takes_over(builder, v3, v2, sign)
            a01, a23 = builder.select(t01, v1, v0), builder.select(t23, v3, v2)
            w01 = builder.select(t01, ir.Constant(bvec, [1] * LANES), ir.Constant(bvec, [0] * LANES))
            w23 = builder.select(t23, ir.Constant(bvec, [3] * LANES), ir.Constant(bvec, [2] * LANES))
            t = _takes_over(builder, a23, a01, sign)
            best, where = builder.select(t, a23, a01), builder.select(t, w23, w01)
            out = _lane_mask(builder, zero, n_i, LANES)
            if spill:
                builder.store(best, _address(context, builder, sig.args[4], yv, yi_i, vec), align=4)
                builder.store(where, _address(context, builder, sig.args[6], posv, yi_i, bvec), align=1)
                return context.get_dummy_value()
            for arrty, arr, value, vt, name in (
                (sig.args[4], yv, best, vec, f"llvm.masked.store.v{LANES}f32.p0"),
                (sig.args[6], posv, where, bvec, f"llvm.masked.store.v{LANES}i8.p0"),
            ):
                ptr = _address(context, builder, arrty, arr, yi_i, vt)
                fnty = ir.FunctionType(ir.VoidType(), [vt, ptr.type, _I32, out.type])
                fn = cgutils.get_or_insert_function(builder.module, fnty, name)
                builder.call(fn, [value, ptr, ir.Constant(_I32, 4 if vt is vec else 1), out])
            return context.get_dummy_value()

        return types.none(x, top, w, n, y, yi, pos), codegen

    return select_row


# The intrinsics as module globals, not closure cells: numba's disk cache keys a closure on
# its cells pickled, and an intrinsic pickles differently in every process - each process
# compiled the kernel again (0.3-0.4 s of CPU apiece; the demo's three processes each did).
_max_row, _max_row_spill = _select_row(1.0, False), _select_row(1.0, True)
_min_row, _min_row_spill = _select_row(-1.0, False), _select_row(-1.0, True)


@njit(inline="always")
def _select(sign, spill, x, top, w, n, y, yi, pos):
    """One step of :func:`_select_row`'s four intrinsics (sign and spill: constants of the caller)."""
    if sign > 0:
        if spill:
            _max_row_spill(x, top, w, n, y, yi, pos)
        else:
            _max_row(x, top, w, n, y, yi, pos)
    elif spill:
        _min_row_spill(x, top, w, n, y, yi, pos)
    else:
        _min_row(x, top, w, n, y, yi, pos)


def _kernel(sign: float) -> Any:
    """The kernel for max (``sign`` 1.0) or min (-1.0); it closes over ``sign`` only."""

    @njit(**KERNEL_O2)
    def _select_2x2_rows(j0, j1, x, h, w, o1, o2, y, pos):
        """Planes ``j0 .. j1`` (flat x of (P, h, w) planes, y and pos of (P, o1, o2)).
        Rows in order: a step's outputs may spill into windows after its own, which this
        call writes later - up to the end of its planes, past which it masks (and where
        a row's plain loads would pass the end of ``x``)."""
        end, size = j1 * o1 * o2, x.shape[0]
        for p in range(j0, j1):
            for b in range(o1):
                top = (p * h + 2 * b) * w
                yi = (p * o1 + b) * o2
                for c in range(0, o2, LANES):
                    m = o2 - c if o2 - c < LANES else LANES  # not min(): no helper to compile
                    if yi + c + LANES <= end and top + 2 * c + w + 2 * LANES <= size:
                        _select(sign, True, x, top + 2 * c, w, m, y, yi + c, pos)
                    else:
                        _select(sign, False, x, top + 2 * c, w, m, y, yi + c, pos)

    return _select_2x2_rows


_rows_max, _rows_min = _kernel(1.0), _kernel(-1.0)


def select_2x2(x: np.ndarray, sign: float, y: np.ndarray, pos: np.ndarray) -> None:
    """:func:`.tiled_kernels.select_2x2` for float32 ``x`` (P, D, H, W) contiguous and
    ``y``, ``pos`` (P, D, H // 2, W // 2) int8 contiguous."""
    p, d, h, w = x.shape
    o1, o2 = y.shape[2], y.shape[3]
    # checks, not asserts: the kernel has no bounds checks and writes through flat views
    if x.dtype != np.float32 or y.dtype != np.float32 or pos.dtype != np.int8:
        raise ValueError(f"select_2x2: expected float32 x, y and int8 pos, got {x.dtype}, {y.dtype}, {pos.dtype}")
    if y.shape != (p, d, h // 2, w // 2) or pos.shape != y.shape:
        raise ValueError(f"select_2x2: y and pos must be {(p, d, h // 2, w // 2)}, got {y.shape} and {pos.shape}")
    if not (x.flags.c_contiguous and y.flags.c_contiguous and pos.flags.c_contiguous):
        raise ValueError("select_2x2: x, y and pos must be C-contiguous")
    kernel = _rows_max if sign > 0 else _rows_min
    parallel_for(kernel, p * d, x.reshape(-1), h, w, o1, o2, y.reshape(-1), pos.reshape(-1), work=x.size)
