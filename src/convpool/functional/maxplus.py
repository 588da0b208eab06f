"""Max-plus and min-plus convolution: the convolution of the (max, +) and (min, +) semirings.

Replace the product of a convolution by a sum and its sum by a maximum::

    y[n, o, p] = max over (c in o's group, k) of  x[n, c, p*stride + k*dilation - pad_lo] + w[o, c, k]  (+ b[o])

and ``min`` for min-plus.  This is grey-scale morphology with a learned structuring
element (Serra 1982): max-plus is a dilation by ``w`` reflected (like the convolution
here, it is a correlation), min-plus an erosion by ``-w``.  With ``w = 0`` and one
input channel per output channel it *is* max (min) pooling, which is why pooling and
convolution are one family here: the same window engine, a different (combine,
reduce) pair.

Shapes and arguments are the convolution's: input ``(N, C_in, *in)`` or unbatched,
weight ``(C_out, C_in/groups, *kernel)``, optional bias ``(C_out,)``, ``padding`` an int,
a tuple, ``(lo, hi)`` pairs, 'valid' or 'same'.  The default padding is the
reduction's identity (-inf for max-plus, +inf for min-plus): the padding takes no
part, as in max pooling, and a window lying wholly in it is refused.  A
``padding_mode`` ('zeros', 'reflect', 'replicate', 'circular') instead fills the
border with real values that take part.

Gradient: each output's gradient goes to its winner, the (c, k) pair reaching the
maximum - to that input element and to ``w[o, c, k]``; ties go to the first pair in
scan order (c outer, k inner, C order), as in max pooling.  A NaN sum wins (the
first one), so NaN propagates as in max pooling.  The bias gradient is the sum.

Two implementations: the readable NumPy loop over (channel, tap) entries below, and
compiled kernels (:mod:`convpool.backends.compiled.maxplus`) for finite inputs; an inf or NaN
in the input sends the call to the NumPy loop.  Each output's winner is kept as an
int32 entry index (the output's size again) for the backward pass.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import geometry
from ..backends.compiled import kernels as _kernels
from ..windows import check_border_padding, pad, pad_backward, window_view
from ._common import Geometry, batched, check_grad, check_weight, make_geometry


@dataclass
class MaxPlusCtx:
    geom: Geometry
    groups: int
    mode: str | None  # None: identity padding; else a border mode ('constant': zeros)
    win: np.ndarray  # (N, C_out, *out) int32: each output's winning entry c*K + k in its group
    x_shape: tuple[int, ...]  # batched
    dtype: np.dtype  # the input's, in which it computes
    w_shape: tuple[int, ...]
    w_dtype: np.dtype
    has_bias: bool
    unbatched: bool
    y_shape: tuple[int, ...]


def _forward(
    x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any, groups: Any, padding_mode: Any,
    nd: int | None, sign: float,
) -> tuple[np.ndarray, MaxPlusCtx]:  # fmt: skip
    if nd is None:
        nd = np.ndim(weight) - 2
    xb, unbatched = batched(x, nd)
    if 0 in xb.shape[2:]:
        raise ValueError(f"input has an empty spatial dimension: shape {np.shape(x)}; only N or C may be 0")
    weight, bias = check_weight(xb, weight, bias, nd, groups)
    if weight.shape[1] == 0:
        raise ValueError(f"weight of shape {weight.shape}: a max/min over no input channels has no value")
    mode = None if padding_mode is None else geometry.check_padding_mode(padding_mode)
    g = make_geometry(xb.shape[2:], nd, weight.shape[2:], stride, padding, dilation)
    if mode is None:
        _check_windows_touch_input(g)
    elif mode != "constant":
        check_border_padding(g.in_size, g.pads, mode)
    w = weight.astype(xb.dtype, copy=False)
    b = np.zeros(w.shape[0], xb.dtype) if bias is None else bias.astype(xb.dtype, copy=False)
    shape = (xb.shape[0], w.shape[0]) + g.out
    result = None
    if xb.size == 0 or w.shape[0] == 0:
        result = np.zeros(shape, xb.dtype), np.zeros(shape, np.int32)
    elif _kernels.enabled() and xb.dtype in (np.float32, np.float64) and np.isfinite(w).all():
        result = _fast_forward(xb, w, b, g, groups, mode, sign)  # None: inf or NaN met, or -inf came out
    if result is None:
        result = _reference_forward(xb, w, b, g, groups, mode, sign)
    y, win = result
    ctx = MaxPlusCtx(g, groups, mode, win, xb.shape, xb.dtype, weight.shape, weight.dtype, bias is not None,
                     unbatched, y.shape)  # fmt: skip
    return (y[0] if unbatched else y), ctx


def _check_windows_touch_input(g: Geometry) -> None:
    """With identity padding a window wholly in the padding has nothing to reduce."""
    counts = g.counts(include_pad=False)
    if counts.size and not counts.all():
        where = tuple(int(i) for i in np.argwhere(counts == 0)[0])
        raise ValueError(
            f"padding: the window at output position {where} lies entirely in the padding (input size "
            f"{g.in_size}, kernel {g.kernel}, padding {g.pads}, dilation {g.dilation}), where identity "
            f"padding leaves nothing to reduce: use less padding or a padding_mode"
        )


def _backward(dy: Any, ctx: MaxPlusCtx, input_grad: bool) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    dy = check_grad(dy, ctx.y_shape[1:] if ctx.unbatched else ctx.y_shape, ctx.dtype)
    if ctx.unbatched:
        dy = dy[None]
    if ctx.win.size == 0:
        dx = np.zeros(ctx.x_shape, ctx.dtype) if input_grad else None
        dw, db = np.zeros(ctx.w_shape), np.zeros(ctx.w_shape[0])
    elif _kernels.enabled() and ctx.dtype in (np.float32, np.float64):
        dx, dw, db = _fast_backward(dy, ctx, input_grad)
    else:
        dx, dw, db = _reference_backward(dy, ctx, input_grad)
    if dx is not None and ctx.unbatched:
        dx = dx[0]
    return dx, dw.astype(ctx.w_dtype, copy=False), (db.astype(ctx.w_dtype, copy=False) if ctx.has_bias else None)


def maxplus_conv_forward(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    padding_mode: str | None = None,
    *,
    nd: int | None = None,
) -> tuple[np.ndarray, MaxPlusCtx]:
    """N-d max-plus convolution (morphological dilation); returns ``(y, ctx)`` for
    :func:`maxplus_conv_backward`.  ``padding_mode`` None: identity (-inf) padding."""
    return _forward(x, weight, bias, stride, padding, dilation, groups, padding_mode, nd, 1.0)


def minplus_conv_forward(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    padding_mode: str | None = None,
    *,
    nd: int | None = None,
) -> tuple[np.ndarray, MaxPlusCtx]:
    """N-d min-plus convolution (morphological erosion); returns ``(y, ctx)`` for
    :func:`minplus_conv_backward`.  ``padding_mode`` None: identity (+inf) padding."""
    return _forward(x, weight, bias, stride, padding, dilation, groups, padding_mode, nd, -1.0)


def maxplus_conv_backward(dy: Any, ctx: MaxPlusCtx) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients ``(grad_input, grad_weight, grad_bias)`` (``grad_bias`` None without bias)."""
    dx, dw, db = _backward(dy, ctx, input_grad=True)
    assert dx is not None
    return dx, dw, db


minplus_conv_backward = maxplus_conv_backward  # the context knows which reduction it was


def maxplus_conv_param_backward(dy: Any, ctx: MaxPlusCtx) -> tuple[np.ndarray, np.ndarray | None]:
    """``(grad_weight, grad_bias)`` only: for a first layer, whose input needs no gradient."""
    _, dw, db = _backward(dy, ctx, input_grad=False)
    return dw, db


# --- the NumPy reference -------------------------------------------------------------


def _reference_forward(
    xb: np.ndarray, w: np.ndarray, b: np.ndarray, g: Geometry, groups: int, mode: str | None, sign: float
) -> tuple[np.ndarray, np.ndarray]:
    """One pass over the (channel, tap) entries in scan order, each a vectorised update
    of every output: a sum takes over where it beats the best so far.  Min-plus is
    max-plus of the negated input and weights, negated.  Memory: a few output-sized
    arrays, whatever the number of entries."""
    sx, sw = (xb, w) if sign > 0 else (-xb, -w)
    fill = -np.inf if mode is None else 0.0
    view = window_view(pad(sx, g.pads, mode or "constant", fill), g.kernel, g.stride, g.dilation, g.out)
    n, c = xb.shape[:2]
    c_out, cg = w.shape[:2]
    co, k = c_out // groups, geometry.prod(g.kernel)
    wg = sw.reshape(groups, co, cg, k)
    shape = (n, groups, co) + g.out
    best = np.full(shape, -np.inf, dtype=xb.dtype)
    win = np.zeros(shape, dtype=np.int32)
    found = np.zeros(shape, dtype=bool)  # an entry on the input has been seen
    real = _real_taps(g) if mode is None else None  # identity padding takes no part
    for ci in range(cg):
        for t, tap in enumerate(itertools.product(*map(range, g.kernel))):
            at: tuple[Any, ...] = (Ellipsis, *tap)
            xs = view[at].reshape((n, groups, cg) + g.out)[:, :, ci, None]  # (N, groups, 1, *out)
            with np.errstate(invalid="ignore"):  # inf + -inf: a NaN sum, which wins
                v = xs + wg[:, :, ci, t].reshape((groups, co) + (1,) * g.nd)
                take = ~found | (v > best) | (np.isnan(v) & ~np.isnan(best))  # the first NaN wins
            if real is not None:
                take &= real[t]
                found |= real[t]
            else:
                found[...] = True
            best = np.where(take, v, best)
            win[take] = ci * k + t
    y = (best if sign > 0 else -best).reshape((n, c_out) + g.out) + b.reshape((c_out,) + (1,) * g.nd)
    return y, win.reshape(y.shape)


def _real_taps(g: Geometry) -> list[np.ndarray]:
    """Per tap (scan order), a mask over the outputs: the tap reads the input, not the padding."""
    per_dim = [
        [((np.arange(o) * s + t * d >= lo) & (np.arange(o) * s + t * d < lo + n)) for t in range(k)]
        for n, k, s, d, (lo, _), o in zip(g.in_size, g.kernel, g.stride, g.dilation, g.pads, g.out, strict=True)
    ]
    return [functools.reduce(np.logical_and.outer, masks) for masks in itertools.product(*per_dim)]


def _reference_backward(
    dy: np.ndarray, ctx: MaxPlusCtx, input_grad: bool
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Per entry: the outputs it won pass their gradient to its weight and, one strided
    add over all outputs, to the input elements it read (then the padding's adjoint)."""
    g, groups = ctx.geom, ctx.groups
    n, c = ctx.x_shape[:2]
    c_out, cg = ctx.w_shape[:2]
    co, k = c_out // groups, geometry.prod(g.kernel)
    dyg = dy.reshape((n, groups, co) + g.out)
    win = ctx.win.reshape(dyg.shape)
    dw = np.zeros((groups, co, cg * k))
    gp = np.zeros((n, groups, cg) + g.padded, dtype=dy.dtype) if input_grad else None
    spatial = tuple(range(3, 3 + g.nd))
    for e in range(cg * k):
        hit = np.where(win == e, dyg, 0)
        dw[:, :, e] = hit.sum(axis=(0, *spatial))
        if gp is not None:
            ci, tap = divmod(e, k)
            taps = np.unravel_index(tap, g.kernel)
            target = tuple(
                slice(t * d, t * d + s * (o - 1) + 1, s) for t, d, s, o in zip(taps, g.dilation, g.stride, g.out)
            )
            where: tuple[Any, ...] = (slice(None), slice(None), ci, *target)
            gp[where] += hit.sum(axis=2)
    db = dy.sum(axis=(0, *range(2, 2 + g.nd)), dtype=np.float64)
    dx = None if gp is None else pad_backward(gp.reshape((n, c) + g.padded), g.pads, ctx.mode or "constant")
    return dx, dw.reshape(ctx.w_shape), db


# --- the compiled kernels ------------------------------------------------------------


def _as3(v: tuple[int, ...], fill: int) -> np.ndarray:
    return np.array((fill,) * (3 - len(v)) + tuple(v), dtype=np.int64)


def _fast_forward(
    xb: np.ndarray, w: np.ndarray, b: np.ndarray, g: Geometry, groups: int, mode: str | None, sign: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """The compiled forward for finite inputs on the channel-major padded layout, split
    into stride phases; None where the NumPy reference must decide (an inf or NaN in the
    input, an output of -inf - whose tie and NaN rules the fast loops leave out - or a
    stride so large against the input that the layout would be mostly overhead)."""
    from ..backends.compiled import maxplus as K

    if not _wide_fits(xb.shape[0], g):
        return None
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
    dy: np.ndarray, ctx: MaxPlusCtx, input_grad: bool
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    from ..backends.compiled import maxplus as K

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


def _op(reduction: str, nd: int) -> Callable[..., Any]:
    forward = maxplus_conv_forward if reduction == "max" else minplus_conv_forward

    def op(
        input: Any,
        weight: Any,
        bias: Any = None,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        *,
        padding_mode: str | None = None,
    ) -> np.ndarray:
        return forward(input, weight, bias, stride, padding, dilation, groups, padding_mode, nd=nd)[0]

    op.__name__ = op.__qualname__ = f"{reduction}plus_conv{nd}d"
    what = "dilation; identity padding -inf" if reduction == "max" else "erosion; identity padding +inf"
    op.__doc__ = (
        f"{nd}-d {reduction}-plus convolution (morphological {what}): ``y[n, o, p] = {reduction} over "
        f"(c, k) of x[n, c, p*stride + k*dilation - pad_lo] + weight[o, c, k]`` (+ ``bias[o]``).  "
        "Arguments as :func:`conv{nd}d`; see the module doc."
    )
    return op


maxplus_conv1d = _op("max", 1)
maxplus_conv2d = _op("max", 2)
maxplus_conv3d = _op("max", 3)
minplus_conv1d = _op("min", 1)
minplus_conv2d = _op("min", 2)
minplus_conv3d = _op("min", 3)
