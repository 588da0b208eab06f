"""Fractional max pooling (Graham, "Fractional Max-Pooling", 2014; arXiv:1412.6071).

Max pooling shrinks a dimension by an integer factor (the stride); fractional max
pooling shrinks it by any factor between 1 and 2, e.g. ``output_ratio=0.7``.  The
windows keep their ``kernel_size`` but start at pseudo-random, increasing positions,
drawn once per (sample, channel) plane: with ``n`` input and ``o`` output elements,
``alpha = (n - k) / (o - 1)`` and one number ``u`` in [0, 1), window ``i`` starts at::

    start[i] = int((i + u) * alpha) - int(u * alpha)      (i < o - 1)
    start[o - 1] = n - k

(``int`` truncates; the arithmetic runs in the input's dtype, as PyTorch's
``generate_intervals``.)  So consecutive starts differ by ``floor(alpha)`` or
``ceil(alpha)``, the first window starts at 0 and the last one ends at the input's end;
with ``kernel_size >= ceil(alpha)`` the windows cover the input ("overlapping" pooling
in Graham's paper).  Each window outputs its max.

The numbers ``u`` are ``_random_samples`` of shape ``(N, C, nd)`` (PyTorch's private
argument, kept for a 1:1 call): given the same samples, convpool returns PyTorch's values
and indices exactly.  PyTorch's order of the samples within a plane is kept: for 2-d
pooling ``[..., 0]`` drives the width and ``[..., 1]`` the height; for 3-d ``[..., 0]``,
``[..., 1]``, ``[..., 2]`` drive depth, height and width.  Without ``_random_samples``
they are drawn from convpool's generator (:func:`convpool.manual_seed` makes them
reproducible) in the input's dtype.

* **Indices** (``return_indices=True``) are flat per plane, into each channel's input
  (PyTorch's convention, as ``max_pool2d``).
* **Gradient**: all of it goes to the window's max (the element the index names).
* **Ties**: the first maximal element in scan order (depth, height, width) wins.
  **NaN**: a window holding a NaN outputs NaN, and its index is that of the *last* NaN in
  scan order (PyTorch's loop: ``if (val > max || isnan(val))``).  A window of ``-inf``
  outputs ``-inf`` at its first element.

Deliberately different from PyTorch: the functional form refuses ``output_size`` and
``output_ratio`` together (PyTorch silently uses ``output_size``) and checks
``output_ratio`` in (0, 1) as the module does; ``_random_samples`` must lie in [0, 1)
(PyTorch does not check) and are used in the input's dtype (PyTorch refuses another
dtype); 3-d pooling accepts ``output_size + kernel_size - 1 == input size`` as 2-d does
(PyTorch's 3-d check is stricter by one, refusing this valid case); an empty batch or
channel axis gives an empty output.

Computed in NumPy: the starts are 1-D per dimension and plane, so every window is
gathered with index arrays (one ``(N, C, *out, *kernel)`` gather) and reduced with
``argmax``; the backward pass is one ``bincount``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _random, geometry
from ._common import batched, check_bool, check_grad, check_spatial


@dataclass
class FractionalCtx:
    """What the backward pass needs: the input's shape and each output's flat index."""

    in_shape: tuple[int, ...]  # batched
    unbatched: bool
    dtype: np.dtype
    flat: np.ndarray  # (N, C, *out) int64, flat index into each plane

    @property
    def indices(self) -> np.ndarray:
        """The flat indices as returned to the caller (no batch axis for unbatched input)."""
        return self.flat[0] if self.unbatched else self.flat


def generate_intervals(samples: np.ndarray, in_size: int, out_size: int, kernel: int) -> np.ndarray:
    """Window starts ``(P, out_size)`` along one dimension, one row per sample ``u``.

    PyTorch's ``generate_intervals`` in the samples' dtype: ``alpha = (n - k) / (o - 1)``,
    ``start[i] = int((i + u) * alpha) - int(u * alpha)``, the last start ``n - k``.

    >>> generate_intervals(np.array([0.5]), 10, 4, 2)
    array([[0, 3, 5, 8]])
    """
    dtype = samples.dtype.type
    starts = np.empty((samples.shape[0], out_size), dtype=np.int64)
    if out_size > 1:
        alpha = dtype(in_size - kernel) / dtype(out_size - 1)
        i = np.arange(out_size - 1, dtype=samples.dtype)
        u = samples[:, None]
        starts[:, :-1] = np.trunc((i + u) * alpha).astype(np.int64) - np.trunc(u * alpha).astype(np.int64)
    starts[:, -1] = in_size - kernel
    return starts


def resolve_output_size(
    in_size: tuple[int, ...], kernel: tuple[int, ...], output_size: Any, output_ratio: Any
) -> tuple[int, ...]:
    """The output size from exactly one of ``output_size`` / ``output_ratio``
    (``int(in * ratio)`` per dimension, as PyTorch), checked against the input."""
    nd = len(in_size)
    if (output_size is None) == (output_ratio is None):
        raise ValueError(
            "fractional max pooling needs exactly one of output_size and output_ratio, "
            f"got output_size={output_size!r} and output_ratio={output_ratio!r}"
        )
    if output_size is not None:
        out = geometry.ntuple(output_size, nd, "output_size")
    else:
        out = tuple(int(n * r) for n, r in zip(in_size, geometry.check_output_ratio(output_ratio, nd), strict=True))
        if min(out) < 1:
            raise ValueError(
                f"output_ratio={output_ratio!r} gives output size {out} for input size {in_size}; "
                f"every output size must be at least 1"
            )
    for i, (n, k, o) in enumerate(zip(in_size, kernel, out, strict=True)):
        if k > n:
            raise ValueError(f"kernel_size {kernel} is larger than the input (spatial size {in_size}) in dim {i}")
        if o + k - 1 > n:
            raise ValueError(
                f"output_size {out} is too large for kernel_size {kernel} and input size {in_size} in dim {i}: "
                f"output_size + kernel_size - 1 = {o} + {k} - 1 = {o + k - 1} > {n}"
            )
    return out


def check_random_samples(samples: Any, n: int, c: int, nd: int, dtype: np.dtype) -> np.ndarray:
    """``_random_samples`` ``(N', C, nd)`` with ``N' >= N``, values in [0, 1), as the first
    ``N`` rows in ``dtype``."""
    s = geometry.check_array(samples, "_random_samples")
    if s.ndim != 3 or s.shape[0] < n or s.shape[1] != c or s.shape[2] != nd:
        raise ValueError(
            f"_random_samples must have shape (N, C, {nd}) = ({n}, {c}, {nd}) for this input "
            f"(a larger first dim is allowed), got {s.shape}"
        )
    s = s[:n].astype(dtype, copy=False)
    if not np.all((s >= 0) & (s < 1)):  # NaN fails too
        raise ValueError("_random_samples must lie in [0, 1) (in the input's dtype)")
    return s


def draw_samples(n: int, c: int, nd: int, dtype: np.dtype) -> np.ndarray:
    """``(n, c, nd)`` uniform numbers in [0, 1) from convpool's generator, in ``dtype``."""
    draw = np.float32 if dtype == np.float32 else np.float64
    s = _random.generator().random((n, c, nd), dtype=draw).astype(dtype)
    return np.minimum(s, np.nextafter(dtype.type(1), dtype.type(0)))  # a float16 cast may round up to 1


def _window_max(w: np.ndarray) -> np.ndarray:
    """Per window (last axis), the position PyTorch's loop picks: the first maximum, or
    the last NaN where the window holds one."""
    first_max = np.argmax(w, axis=-1)  # a NaN compares as the max: np.argmax finds the first one
    nan = np.isnan(w)
    last_nan = w.shape[-1] - 1 - np.argmax(nan[..., ::-1], axis=-1)
    return np.where(nan.any(axis=-1), last_nan, first_max)


def fractional_max_pool_forward(
    x: Any,
    nd: int,
    kernel_size: Any,
    output_size: Any = None,
    output_ratio: Any = None,
    _random_samples: Any = None,
) -> tuple[np.ndarray, FractionalCtx]:
    """``(y, ctx)``; ``ctx.indices`` are the flat per-plane indices of the maxima."""
    xb, unbatched = batched(x, nd)
    check_spatial(xb, nd, unbatched)
    n, c, in_size = xb.shape[0], xb.shape[1], tuple(xb.shape[2:])
    kernel = geometry.ntuple(kernel_size, nd, "kernel_size")
    out = resolve_output_size(in_size, kernel, output_size, output_ratio)
    if _random_samples is None:
        samples = draw_samples(n, c, nd, xb.dtype)
    else:
        samples = check_random_samples(_random_samples, n, c, nd, xb.dtype)
    planes = samples.reshape(n * c, nd)
    # PyTorch's sample order: 2-d (W, H), 3-d (T, H, W)
    which = (1, 0) if nd == 2 else tuple(range(nd))
    starts = [generate_intervals(planes[:, which[d]], in_size[d], out[d], kernel[d]) for d in range(nd)]

    # gather every window: (P, *out, *kernel), P = N*C planes
    xp = xb.reshape(n * c, *in_size)
    index: list[np.ndarray] = [np.arange(n * c).reshape((-1,) + (1,) * (2 * nd))]
    for d in range(nd):
        shape = [n * c] + [1] * (2 * nd)
        shape[1 + d], shape[1 + nd + d] = out[d], kernel[d]
        index.append((starts[d][:, :, None] + np.arange(kernel[d])).reshape(shape))
    w = xp[tuple(index)].reshape(n * c, *out, geometry.prod(kernel))
    k = _window_max(w)
    y = np.take_along_axis(w, k[..., None], axis=-1)[..., 0]

    offsets = np.unravel_index(k, kernel)
    flat = np.zeros(k.shape, dtype=np.int64)
    for d in range(nd):
        shape = [n * c] + [1] * nd
        shape[1 + d] = out[d]
        flat = flat * in_size[d] + starts[d].reshape(shape) + offsets[d]
    y = y.reshape(n, c, *out)
    ctx = FractionalCtx(xb.shape, unbatched, xb.dtype, flat.reshape(n, c, *out))
    return (y[0] if unbatched else y), ctx


def fractional_max_pool_backward(dy: Any, ctx: FractionalCtx) -> np.ndarray:
    """The gradient with respect to the input: each output's gradient added at its max."""
    shape = ctx.flat.shape[1:] if ctx.unbatched else ctx.flat.shape
    g = check_grad(dy, shape, ctx.dtype)
    if ctx.unbatched:
        g = g[None]
    n, c = ctx.in_shape[:2]
    plane = geometry.prod(ctx.in_shape[2:])
    rows = np.arange(n * c).reshape(n, c, *([1] * (g.ndim - 2))) * plane
    gx = np.bincount((rows + ctx.flat).ravel(), weights=g.ravel(), minlength=n * c * plane)
    gx = gx.astype(ctx.dtype).reshape(ctx.in_shape)
    return gx[0] if ctx.unbatched else gx


def fractional_max_pool2d(
    input: Any,
    kernel_size: Any,
    output_size: Any = None,
    output_ratio: Any = None,
    return_indices: bool = False,
    _random_samples: Any = None,
) -> Any:
    """2-d fractional max pooling over ``(N, C, H, W)`` or ``(C, H, W)``.

    Args:
        input: the input array.
        kernel_size: window size, an int or ``(kH, kW)``.
        output_size: ``(oH, oW)`` (or one int), with ``o + k - 1 <= in`` per dim.
        output_ratio: instead of ``output_size``: numbers in (0, 1), ``o = int(in * ratio)``.
        return_indices: also return the flat per-plane index of each max.
        _random_samples: ``(N, C, 2)`` numbers in [0, 1) (``[..., 0]`` for W, ``[..., 1]``
            for H); drawn from convpool's generator when None.

    Shape:
        ``(N, C, H, W) -> (N, C, oH, oW)``.

    Example::

        >>> y = fractional_max_pool2d(np.random.rand(1, 3, 10, 10), 2, output_ratio=0.7)
        >>> y.shape
        (1, 3, 7, 7)
    """
    check_bool(return_indices, "return_indices")
    y, ctx = fractional_max_pool_forward(input, 2, kernel_size, output_size, output_ratio, _random_samples)
    return (y, ctx.indices) if return_indices else y


def fractional_max_pool3d(
    input: Any,
    kernel_size: Any,
    output_size: Any = None,
    output_ratio: Any = None,
    return_indices: bool = False,
    _random_samples: Any = None,
) -> Any:
    """3-d fractional max pooling over ``(N, C, D, H, W)`` or ``(C, D, H, W)``.

    Args:
        input: the input array.
        kernel_size: window size, an int or ``(kD, kH, kW)``.
        output_size: ``(oD, oH, oW)`` (or one int), with ``o + k - 1 <= in`` per dim.
        output_ratio: instead of ``output_size``: numbers in (0, 1), ``o = int(in * ratio)``.
        return_indices: also return the flat per-plane index of each max.
        _random_samples: ``(N, C, 3)`` numbers in [0, 1) (for D, H, W); drawn from
            convpool's generator when None.

    Shape:
        ``(N, C, D, H, W) -> (N, C, oD, oH, oW)``.

    Example::

        >>> y = fractional_max_pool3d(np.random.rand(1, 2, 8, 8, 8), 2, output_size=5)
        >>> y.shape
        (1, 2, 5, 5, 5)
    """
    check_bool(return_indices, "return_indices")
    y, ctx = fractional_max_pool_forward(input, 3, kernel_size, output_size, output_ratio, _random_samples)
    return (y, ctx.indices) if return_indices else y
