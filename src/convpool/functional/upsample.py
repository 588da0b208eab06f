"""Upsampling: ``interpolate`` (nearest, nearest-exact, linear, bilinear, trilinear,
area), as ``torch.nn.functional.interpolate``.

**Coordinates** (PyTorch's ``UpSample.h``, per spatial dimension with input size ``n``
and output size ``o``).  The *scale* is ``1 / scale_factor`` when a ``scale_factor`` is
given and ``recompute_scale_factor`` is not True, else ``n / o``.

* ``'nearest'`` (OpenCV's ``INTER_NEAREST``): ``src = min(floor(dst * scale), n - 1)``.
* ``'nearest-exact'`` (Pillow, scikit-image): ``src = min(floor((dst + 0.5) * scale), n - 1)``.
* PyTorch 2.13 computes these indices two ways and convpool copies both, index for index:
  2-d outputs with ``oH + oW <= 128`` take ``UpSample.h``'s ``nearest_idx``: the scale in
  float32, and 'nearest' copies where ``o == n`` and halves where ``o == 2n`` even when a
  ``scale_factor`` says otherwise (``scale_factor=1.1`` on 5 pixels gives 5 pixels,
  copied).  1-d, 3-d and larger 2-d outputs take the generic kernel: the scale in the
  input's precision and no such special cases (``scale_factor=1.1`` on 5 pixels reads
  ``[0, 0, 1, 2, 3]``).
* ``'linear'`` / ``'bilinear'`` / ``'trilinear'`` (one mode per rank: 3-d, 4-d, 5-d input)
  interpolate between the two neighbours of ``src = scale * (dst + 0.5) - 0.5``
  (clamped at 0; an output past the last input repeats it); with ``align_corners=True``
  ``src = dst * (n - 1) / (o - 1)``, so the corner pixels' centres line up (the
  ``scale_factor`` is then unused).  ``o == n`` is a copy.  Arithmetic in float32, or
  float64 for float64 input, as PyTorch.
* ``'area'``: adaptive average pooling to the output size (for downsampling); a
  ``scale_factor`` only sets the size.

The output size is ``size``, or ``floor(n * scale_factor)``.  Linear interpolation is
separable: along each axis it is a sparse ``(o, n)`` matrix with two taps per row,
applied one axis at a time (the last axis first, as PyTorch's loop nests); the backward
pass applies the transposed matrices.  Nothing is multiplied by a dense matrix, so a
NaN or inf reaches only the outputs that read it.

**Upsampling in window terms** (both checked in the tests):

* Nearest upsampling by an integer factor ``k`` copies each input element to a
  ``k x .. x k`` tile: it is the transposed convolution with an all-ones kernel of size
  ``k`` at stride ``k``, and so the *adjoint of sum pooling* over the tiles,
  ``<upsample_nearest(x), y> = <x, sum_pool(y)>`` with ``sum_pool = avg_pool * k**d``.
* Bilinear upsampling by 2 (``align_corners=False``) is a fixed depthwise transposed
  convolution: kernel ``outer(a, a)`` with ``a = [1, 3, 3, 1] / 4``, stride 2, on the
  input replicate-padded by 1 pixel, with transposed-conv padding 3 (i.e. padding 1,
  then 2 more output pixels cropped per side).  Padding 1 on the unpadded input gives
  the same interior but a border pulled towards the zeros.

Pixel shuffle, the other way up (channels to space), is in :mod:`.pixel_shuffle`.

Deliberately different from PyTorch: every backward pass here is the exact transpose of
its forward pass.  PyTorch's nearest backward always uses ``nearest_idx``, so where its
forward pass took the generic kernel and the two rules disagree (a ``scale_factor`` with
``o == n`` or ``o == 2n`` in 1-d or 3-d, say) its gradient is not the gradient of its
output; convpool's is.  ``interpolate`` and ``Upsample`` take batched input only, as
PyTorch (the rank selects 1-, 2- or 3-d), but an empty batch or channel axis gives an
empty output; errors are ValueError/TypeError (PyTorch raises NotImplementedError or
RuntimeError for some); ``'bicubic'``, ``'lanczos'`` and ``antialias=True`` are not
implemented.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import geometry
from ..backends.compiled import kernels as _kernels
from ._common import check_bool, check_grad, check_spatial
from .adaptive import AdaptiveCtx, adaptive_avg_pool_backward, adaptive_avg_pool_forward

MODES = ("nearest", "nearest-exact", "linear", "bilinear", "trilinear", "area")
_LINEAR_RANK = {"linear": 1, "bilinear": 2, "trilinear": 3}


# --- one axis ------------------------------------------------------------------------


def _scale(scale: float | None, n: int, o: int, dtype: type) -> Any:
    """PyTorch's ``compute_scales_value``: ``1 / scale`` if given (and > 0), else ``n / o``."""
    return dtype(1.0 / scale) if scale is not None and scale > 0 else dtype(n) / dtype(o)


def _fused(a: Any, b: np.ndarray, c: float, opmath: Any) -> np.ndarray:
    """``a * b + c`` rounded once, as the fused multiply-add PyTorch's compiler makes of
    ``scale * (dst + 0.5) - 0.5`` on CPUs with FMA (x86-64 since Haswell, ARM64).  In
    float32 the product and sum are exact in float64, so one rounding to float32 is the
    FMA's result; float64 is computed as written (an ulp apart at most)."""
    if opmath == np.float32:
        return (np.float64(a) * b.astype(np.float64) + c).astype(np.float32)
    return a * b + opmath(c)


def nearest_index(n: int, o: int, scale: float | None, exact: bool, legacy: bool, dtype: np.dtype) -> np.ndarray:
    """The input index each output reads along one axis ('nearest' or 'nearest-exact').

    PyTorch 2.13 has two index rules and picks one per call (see :func:`uses_legacy_nearest`):

    * ``legacy`` (``nearest_idx`` / ``nearest_exact_idx`` in ``UpSample.h``): the scale in
      float32; 'nearest' copies where ``o == n`` and halves where ``o == 2n``, whatever
      ``scale_factor`` says; else ``floor(dst * scale)``, and 'nearest-exact'
      ``floor((dst + 0.5) * scale)``.
    * otherwise (the generic kernel): the scale in the input's precision (float32 for
      float32, float64 for float64), ``floor(dst * scale)``, and 'nearest-exact'
      ``floor(max(scale * (dst + 0.5) - 0.5, 0) + 0.5)``, each floored in float32.

    >>> nearest_index(3, 5, None, False, True, np.dtype(np.float32))
    array([0, 0, 1, 1, 2])
    """
    opmath: Any = np.float32 if legacy or dtype != np.float64 else np.float64
    s = _scale(scale, n, o, opmath)
    dst = np.arange(o)
    if legacy and not exact and o == n:
        return dst
    if legacy and not exact and o == 2 * n:
        return dst >> 1
    if legacy and exact:  # a double (dst + 0.5) times the float scale
        src = (dst + 0.5) * np.float64(s)
    elif exact:
        real = np.maximum(_fused(s, dst.astype(opmath) + opmath(0.5), -0.5, opmath), opmath(0))
        src = real + opmath(0.5)  # (PyTorch adds a double 0.5: the same, rounded once)
    else:
        src = dst.astype(opmath) * s
    return np.minimum(np.floor(src.astype(np.float32)).astype(np.int64), n - 1)


def uses_legacy_nearest(out: tuple[int, ...]) -> bool:
    """Whether PyTorch 2.13 computes nearest indices with the legacy rule (on a contiguous
    input): its channels-last kernel, taken for a 2-d output with ``oH + oW <= 128``.  1-d,
    3-d and larger 2-d outputs run the generic kernel.  (It also takes the channels-last
    kernel for a 1x1 input with more than 3 channels, where every rule reads pixel 0.)"""
    return len(out) == 2 and sum(out) <= 128


def linear_taps(
    n: int, o: int, align_corners: bool, scale: float | None, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(i0, i1, w0, w1)``: output ``j`` along one axis is ``x[i0[j]]*w0[j] + x[i1[j]]*w1[j]``.

    >>> i0, i1, w0, w1 = linear_taps(2, 4, False, None, np.dtype(np.float64))
    >>> i0, i1, w1
    (array([0, 0, 0, 1]), array([1, 1, 1, 1]), array([0.  , 0.25, 0.75, 0.25]))
    """
    if o == n:  # PyTorch copies, whatever the scale
        i = np.arange(n)
        return i, i, np.ones(n, dtype=dtype), np.zeros(n, dtype=dtype)
    opmath: Any = np.float64 if dtype == np.float64 else np.float32
    dst = np.arange(o, dtype=opmath)
    if align_corners:
        ratio = opmath(n - 1) / opmath(o - 1) if o > 1 else opmath(0)
        src = ratio * dst
    else:
        src = np.maximum(_fused(_scale(scale, n, o, opmath), dst + opmath(0.5), -0.5, opmath), opmath(0))
    # PyTorch floors with floorf (in float32) even for float64, then clamps the weight
    i0 = np.minimum(np.floor(src.astype(np.float32)).astype(np.int64), n - 1)
    w1 = np.clip(src - i0.astype(opmath), 0, 1).astype(opmath)
    i1 = i0 + (i0 < n - 1)
    return i0, i1, (opmath(1) - w1).astype(dtype), w1.astype(dtype)


def _along(w: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """Per-output weights shaped to broadcast along ``axis`` of an ``ndim`` array."""
    return w.reshape((-1,) + (1,) * (ndim - 1 - axis))


def _scatter_sorted(g: np.ndarray, index: np.ndarray, n: int, axis: int) -> np.ndarray:
    """The transpose of ``np.take(x, index, axis)`` for a non-decreasing ``index``.

    The outputs that read input ``j`` are a run ``first[j] .. first[j] + count[j] - 1``;
    the runs are summed offset by offset (as many gathers as the longest run, about
    ``o / n`` for upsampling), an empty run reading a zero past the end."""
    count = np.bincount(index, minlength=n)
    first = np.cumsum(count) - count
    end = g.shape[axis]
    zero = np.zeros(g.shape[:axis] + (1,) + g.shape[axis + 1 :], dtype=g.dtype)
    padded = np.concatenate([g, zero], axis=axis)
    out = np.take(padded, np.where(count > 0, first, end), axis=axis)
    for t in range(1, int(count.max())):
        out += np.take(padded, np.where(t < count, first + t, end), axis=axis)
    return out


@dataclass
class AxisPlan:
    """How one spatial axis is resampled: one tap (nearest) or two weighted taps (linear).

    The NumPy path gathers with ``np.take``; with the compiled backend, large arrays run
    :mod:`convpool.backends.compiled.resample` on the ``(P, n, Q)`` view of the axis instead."""

    axis: int  # array axis (2 + spatial dim)
    n: int
    taps: tuple[np.ndarray, ...]
    weights: tuple[np.ndarray, ...] | None = None

    def _compiled(self, a: np.ndarray) -> Any:
        """The kernels module if ``a`` is worth a compiled pass, else None."""
        if not _kernels.worth_parallel(a):
            return None
        from ..backends.compiled import resample as _resample_kernels

        return _resample_kernels

    def _slabs(self, a: np.ndarray, size: int) -> tuple[tuple[int, int, int], tuple[int, ...]]:
        """``a`` as (P, n, Q) around the axis, and the shape of the result with ``size`` there."""
        p, q = geometry.prod(a.shape[: self.axis]), geometry.prod(a.shape[self.axis + 1 :])
        return (p, a.shape[self.axis], q), a.shape[: self.axis] + (size,) + a.shape[self.axis + 1 :]

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.weights is None:
            return np.take(x, self.taps[0], axis=self.axis)
        i0, i1 = self.taps
        kernels = self._compiled(x)
        if kernels is not None:
            view, shape = self._slabs(x, len(i0))
            y = np.empty(shape, dtype=x.dtype)
            w0, w1 = (w.astype(x.dtype, copy=False) for w in self.weights)
            kernels.linear_axis(np.ascontiguousarray(x).reshape(view), i0, i1, w0, w1, y.reshape(view[0], -1, view[2]))
            return y
        w0, w1 = (_along(w, self.axis, x.ndim) for w in self.weights)
        with np.errstate(invalid="ignore"):  # inf * 0 is NaN, as in PyTorch
            return np.take(x, i0, axis=self.axis) * w0 + np.take(x, i1, axis=self.axis) * w1

    def backward(self, g: np.ndarray) -> np.ndarray:
        kernels = self._compiled(g)
        if kernels is not None:
            view, shape = self._slabs(g, self.n)
            gx = np.empty(shape, dtype=g.dtype)
            g3, gx3 = np.ascontiguousarray(g).reshape(view), gx.reshape(view[0], self.n, view[2])
            if self.weights is None:
                kernels.nearest_axis_t(g3, self.taps[0], gx3)
            else:
                w0, w1 = (w.astype(g.dtype, copy=False) for w in self.weights)
                kernels.linear_axis_t(g3, self.taps[0], self.taps[1], w0, w1, gx3)
            return gx
        if self.weights is None:
            return _scatter_sorted(g, self.taps[0], self.n, self.axis)
        with np.errstate(invalid="ignore"):
            parts = [
                _scatter_sorted(g * _along(w, self.axis, g.ndim), i, self.n, self.axis)
                for i, w in zip(self.taps, self.weights, strict=True)
            ]
            return parts[0] + parts[1]


# --- interpolate ---------------------------------------------------------------------


@dataclass
class InterpolateCtx:
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    dtype: np.dtype
    plans: list[AxisPlan]  # in the order the forward pass applies them
    area: AdaptiveCtx | None = None


def _sizes_and_scales(
    in_size: tuple[int, ...], size: Any, scale_factor: Any, recompute: bool | None
) -> tuple[tuple[int, ...], tuple[float, ...] | None]:
    """The output size and the scales the kernels use (None: computed from the sizes)."""
    nd = len(in_size)
    if (size is None) == (scale_factor is None):
        raise ValueError(
            f"interpolate needs exactly one of size and scale_factor, got size={size!r}, scale_factor={scale_factor!r}"
        )
    if size is not None:
        if recompute:
            raise ValueError("recompute_scale_factor=True is not meaningful with an explicit size (give scale_factor)")
        if isinstance(size, (tuple, list)) and len(size) != nd:
            raise ValueError(
                f"size must be an int or {nd} ints for input with spatial size {in_size}, got {size!r} "
                f"({len(size)} values)"
            )
        return geometry.ntuple(size, nd, "size"), None
    factors = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * nd
    if len(factors) != nd or not all(geometry.is_number(f) for f in factors):
        raise TypeError(
            f"scale_factor must be a number or {nd} numbers for input with spatial size {in_size}, got {scale_factor!r}"
        )
    if not all(math.isfinite(f) and f > 0 for f in factors):
        raise ValueError(f"scale_factor must be positive and finite, got {scale_factor!r}")
    out = tuple(int(n * float(f)) for n, f in zip(in_size, factors, strict=True))
    if min(out) < 1:
        raise ValueError(
            f"scale_factor={scale_factor!r} gives output size {out} for input spatial size {in_size}; "
            f"every output size must be at least 1"
        )
    return out, (None if recompute else tuple(float(f) for f in factors))


def check_mode(mode: Any, align_corners: Any) -> bool:
    """The mode's name, and ``align_corners`` as a bool (False where None), checked."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode in _LINEAR_RANK:
        return False if align_corners is None else check_bool(align_corners, "align_corners")
    if align_corners is not None:
        raise ValueError(
            f"align_corners can only be set with the interpolating modes linear, bilinear and trilinear, "
            f"got align_corners={align_corners!r} with mode={mode!r}"
        )
    return False


def interpolate_forward(
    input: Any,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> tuple[np.ndarray, InterpolateCtx]:
    """``(y, ctx)`` of :func:`interpolate`."""
    corners = check_mode(mode, align_corners)
    if recompute_scale_factor is not None:
        check_bool(recompute_scale_factor, "recompute_scale_factor")
    if check_bool(antialias, "antialias"):
        raise ValueError("antialias=True is not implemented in convpool (PyTorch: bilinear/bicubic downsampling)")
    x = geometry.check_array(input)
    if not 3 <= x.ndim <= 5:
        raise ValueError(
            f"input of interpolate must be (N, C, W), (N, C, H, W) or (N, C, D, H, W), got shape {x.shape}"
        )
    nd = x.ndim - 2
    if mode in _LINEAR_RANK and _LINEAR_RANK[mode] != nd:
        want = _LINEAR_RANK[mode]
        raise ValueError(f"mode={mode!r} needs {want + 2}-d input (N, C, {want} spatial dims), got shape {x.shape}")
    check_spatial(x, nd)
    in_size = tuple(x.shape[2:])
    out, scales = _sizes_and_scales(in_size, size, scale_factor, recompute_scale_factor)
    if mode == "area":  # PyTorch: adaptive average pooling, the scales unused
        y, area = adaptive_avg_pool_forward(x, nd, out)
        return y, InterpolateCtx(x.shape, y.shape, x.dtype, [], area)
    legacy = uses_legacy_nearest(out)
    plans = []
    for d in reversed(range(nd)):  # the last axis first
        n, o, s = in_size[d], out[d], None if scales is None else scales[d]
        if mode in _LINEAR_RANK:
            i0, i1, w0, w1 = linear_taps(n, o, corners, s, x.dtype)
            plans.append(AxisPlan(2 + d, n, (i0, i1), (w0, w1)))
        else:
            index = nearest_index(n, o, s, mode == "nearest-exact", legacy, x.dtype)
            plans.append(AxisPlan(2 + d, n, (index,)))
    y = x
    for plan in plans:
        y = plan.forward(y)
    y = np.ascontiguousarray(y, dtype=x.dtype)
    return y, InterpolateCtx(x.shape, y.shape, x.dtype, plans)


def interpolate_backward(dy: Any, ctx: InterpolateCtx) -> np.ndarray:
    """The gradient with respect to the input: the transposed resampling, axis by axis."""
    g = check_grad(dy, ctx.out_shape, ctx.dtype)
    if ctx.area is not None:
        return adaptive_avg_pool_backward(g, ctx.area)
    for plan in reversed(ctx.plans):
        g = plan.backward(g)
    return np.asarray(g, dtype=ctx.dtype)


def interpolate(
    input: Any,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> np.ndarray:
    """Resample ``input`` ``(N, C, *spatial)`` (1 to 3 spatial dims) to ``size`` or by
    ``scale_factor``; see the module doc for each mode's coordinates.

    Args:
        input: ``(N, C, W)``, ``(N, C, H, W)`` or ``(N, C, D, H, W)``.
        size: output spatial size, an int or one int per spatial dim.
        scale_factor: instead of ``size``: a number or one per dim; ``out = floor(in * s)``.
        mode: 'nearest', 'nearest-exact', 'linear' (3-d input), 'bilinear' (4-d),
            'trilinear' (5-d) or 'area'.
        align_corners: linear modes only (None means False): align the corner pixels'
            centres instead of their outer edges.
        recompute_scale_factor: True: interpolate with ``in / out`` instead of
            ``1 / scale_factor`` (only with ``scale_factor``).
        antialias: must be False (not implemented).

    Shape:
        ``(N, C, *in) -> (N, C, *out)``.

    Example::

        >>> interpolate(np.ones((1, 3, 4, 4)), scale_factor=2, mode="bilinear").shape
        (1, 3, 8, 8)
    """
    return interpolate_forward(input, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)[0]
