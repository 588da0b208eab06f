"""Implementation "wide-runs" of the max-plus table: compiled max-plus / min-plus
convolution for finite weights on the channel-major padded layout, split into stride
phases (the direct convolution's layout, add + max); float32 on explicit SIMD vectors.
Data decides the rest: where the input holds an inf or NaN, or an output comes out
-inf (whose tie and NaN rules the fast loops leave out), the forward hands the call to
the reference (:mod:`convpool.backends.numpy.maxplus`); the backward routes from the
winners either way."""

from __future__ import annotations

import functools

import numpy as np

from ... import geometry
from ...geometry import Geometry
from ...windows import pad, pad_backward
from ..numpy import maxplus as reference
from ..numpy.maxplus import MaxPlusState
from ..tables import MaxPlusProblem
from . import kernels as _kernels


def why_not(p: MaxPlusProblem) -> str | None:
    if p.x.dtype not in (np.float32, np.float64):
        return f"compiled kernels take float32/float64, not {p.x.dtype}"
    if not np.isfinite(p.w).all():
        return "weights hold inf or NaN: the reference's tie and NaN rules"
    if not _wide_fits(p.x.shape[0], p.g):
        return "strides large against the input: the phase layout would be mostly overhead"
    return None


def forward(p: MaxPlusProblem) -> tuple[np.ndarray, MaxPlusState]:
    result = _fast_forward(p.x, p.w, p.b, p.g, p.groups, p.mode, p.sign)
    if result is None:  # an inf or NaN met, or -inf came out: the reference decides
        return reference.forward(p)
    y, win = result
    return y, reference.state(p, win)


def backward(dy: np.ndarray, st: MaxPlusState, input_grad: bool) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    return _fast_backward(dy, st, input_grad)


def _as3(v: tuple[int, ...], fill: int) -> np.ndarray:
    return np.array((fill,) * (3 - len(v)) + tuple(v), dtype=np.int64)


def _fast_forward(
    xb: np.ndarray, w: np.ndarray, b: np.ndarray, g: Geometry, groups: int, mode: str | None, sign: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """The compiled forward for finite inputs on the channel-major padded layout, split
    into stride phases; None where the NumPy reference must decide (an inf or NaN in the
    input, an output of -inf - whose tie and NaN rules the fast loops leave out - or a
    stride so large against the input that the layout would be mostly overhead)."""
    from . import maxplus as K

    n, c = xb.shape[:2]
    c_out, cg = w.shape[:2]
    if mode is None or mode == "constant":
        src_x, lo = xb, tuple(a for a, _ in g.pads)
    else:
        src_x, lo = pad(xb, g.pads, mode), (0,) * g.nd
    x5 = np.ascontiguousarray(src_x).reshape((n, c) + (1,) * (3 - g.nd) + src_x.shape[2:])
    q3, s3 = _as3(_phase_plane(g), 1), _as3(g.stride, 1)
    phase, offs = _tap_offsets(tuple(q3), tuple(_as3(g.kernel, 1)), tuple(_as3(g.dilation, 1)), tuple(s3))
    phases, q_len = geometry.prod(g.stride), n * int(np.prod(q3))
    length = -(-(-(-q_len // K.RUN) * K.RUN + int(offs.max())) // 16) * 16
    src = _kernels.workspace((c * phases * length,), xb.dtype)
    bad = np.empty(c * n * phases, dtype=xb.dtype)
    fill = xb.dtype.type(-np.inf if mode is None else 0.0)
    K.to_wide(x5, _as3(lo, 0), q3, s3, fill, xb.dtype.type(sign), length, src, bad)
    if np.isnan(bad).any():
        return None
    rows = np.arange(cg, dtype=np.int64)[:, None] * phases + phase[None, :]
    ents = (rows * length + offs[None, :]).ravel()
    y = np.empty((n, c_out) + g.out, dtype=xb.dtype)
    win = np.empty(y.shape, dtype=np.int32)
    co = c_out // groups
    ymap = _output_map(tuple(q3[3 - g.nd :]), g.out, n, c_out)
    args = (
        ents,
        len(offs),
        groups,
        co,
        q_len,
        ymap,
        geometry.prod(g.out),
        xb.dtype.type(sign),
        b,
        y.ravel(),
        win.ravel(),
    )
    if _kernels.DIRECT and xb.dtype == np.float32:  # explicit 16-lane vectors
        flags = np.zeros(groups * -(-co // 4) * -(-q_len // K.BLOCK), dtype=np.bool_)
        K.forward_wide(src, cg * phases * length, _pack(w * np.float32(sign), groups), *args, flags)
    else:
        flags = np.zeros(c_out * -(-q_len // K.RUN), dtype=np.bool_)
        K.forward_runs(src, cg * phases * length, (w * sign).reshape(c_out, -1), *args, flags)
    return None if flags.any() else (y, win)


def _phase_plane(g: Geometry) -> tuple[int, ...]:
    """The plane of one stride phase of the padded plane: ceil(padded / stride)."""
    return tuple(-(-p // s) for p, s in zip(g.padded, g.stride, strict=True))


def _wide_fits(n: int, g: Geometry) -> bool:
    """Whether the phase layout stays within about twice the padded input (a stride large
    against the input would make it mostly per-row overhead)."""
    phases = geometry.prod(g.stride)
    return phases * (n * geometry.prod(_phase_plane(g)) + 64) <= 2 * n * geometry.prod(g.padded) + 4096


@functools.lru_cache(maxsize=32)
def _tap_offsets(
    plane: tuple[int, ...], kernel: tuple[int, ...], dilation: tuple[int, ...], stride: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """For every tap (scan order): which stride phase it reads and its flat offset in the
    phase ``plane``.  Tap coordinate ``k*d`` reads phase ``k*d % s`` shifted by ``k*d // s``:
    output m reads padded ``s*m + k*d``."""
    steps = [int(np.prod(plane[i + 1 :])) for i in range(3)]
    taps = np.indices(kernel).reshape(3, -1) * np.array(dilation)[:, None]
    phase, offset = np.zeros(taps.shape[1], dtype=np.int64), np.zeros(taps.shape[1], dtype=np.int64)
    for i in range(3):
        phase = phase * stride[i] + taps[i] % stride[i]
        offset += taps[i] // stride[i] * steps[i]
    return phase, offset


@functools.lru_cache(maxsize=32)
def _output_map(plane: tuple[int, ...], out: tuple[int, ...], n: int, c_out: int) -> np.ndarray:
    """For every wide position (image, index in the phase ``plane``), the flat index of its
    output in channel 0 of ``(N, C_out, *out)``, or -1 where it is not an output."""
    img, rest = np.divmod(np.arange(n * geometry.prod(plane), dtype=np.int64), geometry.prod(plane))
    coords = np.unravel_index(rest, plane)
    valid = functools.reduce(np.logical_and, [cc < o for cc, o in zip(coords, out, strict=True)])
    flat = np.ravel_multi_index(tuple(np.minimum(cc, o - 1) for cc, o in zip(coords, out, strict=True)), out)
    ymap = np.where(valid, img * c_out * geometry.prod(out) + flat, -1)
    ymap.setflags(write=False)
    return ymap


def _pack(w: np.ndarray, groups: int) -> np.ndarray:
    """(C_out, C_in/groups, *kernel) -> flat float32 (groups, ceil(co/4), E, 4), zero-filled."""
    c_out = w.shape[0]
    co, nb = c_out // groups, -(-c_out // groups // 4)
    packed = np.zeros((groups, nb * 4, w[0].size), dtype=np.float32)
    packed[:, :co] = w.reshape(groups, co, -1)
    return np.ascontiguousarray(packed.reshape(groups, nb, 4, -1).transpose(0, 1, 3, 2)).ravel()


def _fast_backward(
    dy: np.ndarray, ctx: MaxPlusState, input_grad: bool
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    from . import maxplus as K

    g = ctx.geom
    n, c = ctx.x_shape[:2]
    border = ctx.mode not in (None, "constant")
    lo = (0,) * g.nd if border else tuple(a for a, _ in g.pads)
    target = g.padded if border else g.in_size
    dx = np.zeros((n, c) + tuple(_as3(target, 1)) if input_grad else (1, 1, 1, 1, 1), dtype=ctx.dtype)
    parts = max(1, min(n, _kernels.num_threads()))
    c_out, e = ctx.w_shape[0], geometry.prod(ctx.w_shape[1:])
    dw, db = np.zeros((parts, c_out, e)), np.zeros((parts, c_out))
    as5 = (n, c_out) + tuple(_as3(g.out, 1))
    tap3 = np.indices(tuple(_as3(g.kernel, 1))).reshape(3, -1)
    K.route(ctx.win.reshape(as5), np.ascontiguousarray(dy).reshape(as5), ctx.groups, ctx.w_shape[1], tap3,
            _as3(g.stride, 1), _as3(g.dilation, 1), _as3(lo, 0), input_grad, dx, dw, db)  # fmt: skip
    gx = None
    if input_grad:
        gx = dx.reshape((n, c) + target)
        if border:
            gx = pad_backward(gx, g.pads, ctx.mode or "constant")
    return gx, dw.sum(axis=0).reshape(ctx.w_shape), db.sum(axis=0)
