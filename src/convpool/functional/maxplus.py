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

The max-plus table (:data:`convpool.backends.tables.MAXPLUS`) chooses who computes it:
the readable NumPy loop over (channel, tap) entries (:mod:`convpool.backends.numpy.maxplus`)
or compiled kernels for finite weights (:mod:`convpool.backends.compiled.maxplus_conv`; an
inf or NaN in the input sends the call to the NumPy loop).  Each output's winner is kept
as an int32 entry index (the output's size again) for the backward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .. import geometry
from ..backends.numpy import maxplus as reference
from ..backends.numpy.maxplus import MaxPlusState
from ..backends.tables import MAXPLUS, MaxPlusProblem
from ..windows import check_border_padding
from ._common import Geometry, batched, check_grad, check_weight, make_geometry


@dataclass
class MaxPlusCtx:
    """A max-plus convolution that ran: the implementation (None: nothing to compute)
    and its state."""

    impl: ModuleType | None
    state: MaxPlusState
    w_dtype: np.dtype
    has_bias: bool
    unbatched: bool
    y_shape: tuple[int, ...]

    @property
    def geom(self) -> Geometry:
        return self.state.geom

    @property
    def name(self) -> str:
        """The implementation's name in the max-plus table ("empty": nothing computed)."""
        return "empty" if self.impl is None else MAXPLUS.name_of(self.impl)


def problem(
    x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any, groups: Any, padding_mode: Any,
    nd: int | None, sign: float,
) -> tuple[MaxPlusProblem, bool]:  # fmt: skip
    """The checked call as the max-plus table sees it, and whether the input was unbatched."""
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
    return MaxPlusProblem(xb, w, b, g, groups, mode, sign), unbatched


def _forward(
    x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any, groups: Any, padding_mode: Any,
    nd: int | None, sign: float,
) -> tuple[np.ndarray, MaxPlusCtx]:  # fmt: skip
    p, unbatched = problem(x, weight, bias, stride, padding, dilation, groups, padding_mode, nd, sign)
    xb, w = p.x, p.w
    shape = (xb.shape[0], w.shape[0]) + p.g.out
    impl: ModuleType | None = None
    if xb.size == 0 or w.shape[0] == 0:
        y, state = np.zeros(shape, xb.dtype), reference.state(p, np.zeros(shape, np.int32))
    else:
        impl = MAXPLUS.choose(p)
        y, state = impl.forward(p)
    ctx = MaxPlusCtx(impl, state, np.asarray(weight).dtype, bias is not None, unbatched, y.shape)
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
    st = ctx.state
    dy = check_grad(dy, ctx.y_shape[1:] if ctx.unbatched else ctx.y_shape, st.dtype)
    if ctx.unbatched:
        dy = dy[None]
    if ctx.impl is None:
        dx = np.zeros(st.x_shape, st.dtype) if input_grad else None
        dw, db = np.zeros(st.w_shape), np.zeros(st.w_shape[0])
    else:
        dx, dw, db = ctx.impl.backward(dy, st, input_grad)
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
