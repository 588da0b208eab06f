"""The sliding-window engine: pad, window view, and the view's adjoint.

Convolution and pooling are both "gather every window, then combine".  This
module does the gathering, for any number of spatial dimensions:

* :func:`pad` / :func:`pad_backward` - pad the spatial axes with a constant or a
  border mode (reflect, replicate, circular), and the exact adjoint of that.
* :func:`window_view` - a read-only strided view ``(N, C, *out, *kernel)`` of a
  padded array: no copy, one window per output position.
* :func:`scatter_add` - the adjoint of the window view: add a gradient with
  respect to every window element back onto the padded input.  Every backward
  pass in convpool goes through it.

Arrays are channels-first ``(N, C, *spatial)``; the spatial axes are the last
``len(kernel)`` axes.  Nothing here loops over batch or output positions; the
only loops are over spatial dimensions or over the (few) kernel offsets.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from .geometry import Pairs, valid_counts  # noqa: F401  (window counts: geometry's)


def _border_index(n: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """For each padded position along one axis, the source index in ``0..n-1``."""
    pos = np.arange(-lo, n + hi)
    if mode == "replicate":
        return np.clip(pos, 0, n - 1)
    if mode == "circular":
        return pos % n
    if mode == "reflect":  # mirror without repeating the edge, as PyTorch
        period = 2 * (n - 1)
        if period == 0:
            return np.zeros_like(pos)
        pos = np.abs(pos) % period
        return np.where(pos >= n, period - pos, pos)
    raise ValueError(f"unknown padding mode {mode!r}")


def source_index(n: int, lo: int, hi: int, mode: str | None, extra: int = 0) -> np.ndarray:
    """For each position along one padded axis, ``lo + n + hi`` plus ``extra`` room: the
    input index it holds, -1 for a zero ('constant' padding), -2 for nothing (identity
    padding when ``mode`` is None, and the room)."""
    if mode is None or mode == "constant":
        border = np.full(lo + n + hi, -2 if mode is None else -1, dtype=np.int64)
        border[lo : lo + n] = np.arange(n)
    else:
        border = _border_index(n, lo, hi, mode)
    return np.concatenate([border, np.full(extra, -2, dtype=np.int64)])


def check_border_padding(in_size: Sequence[int], pads: Pairs, mode: str) -> None:
    """PyTorch's limits: reflect needs pad < size, circular pad <= size, and no border
    mode can pad an empty dimension (there is no value to copy)."""
    for i, (n, (lo, hi)) in enumerate(zip(in_size, pads, strict=True)):
        if n == 0 and (lo or hi):
            raise ValueError(
                f"{mode} padding needs values to copy, but spatial dim {i} of the input is empty "
                f"(spatial size {tuple(in_size)}, padding ({lo}, {hi}))"
            )
        if mode == "reflect" and max(lo, hi) >= n:
            raise ValueError(
                f"reflect padding must be smaller than the input size: spatial dim {i} "
                f"has size {n}, got padding ({lo}, {hi})"
            )
        if mode == "circular" and max(lo, hi) > n:
            raise ValueError(
                f"circular padding must be at most the input size: spatial dim {i} "
                f"has size {n}, got padding ({lo}, {hi})"
            )


def pad(x: np.ndarray, pads: Pairs, mode: str = "constant", value: float = 0.0) -> np.ndarray:
    """Pad the last ``len(pads)`` axes of ``x`` by ``(lo, hi)`` pairs.

    ``mode`` is 'constant' (with ``value``; -inf for max pooling), 'reflect',
    'replicate' or 'circular'.  Returns ``x`` itself when nothing is padded.
    """
    nd = len(pads)
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    lead = x.ndim - nd
    if mode == "constant":
        shape = x.shape[:lead] + tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[lead:], pads, strict=True))
        out = np.full(shape, value, dtype=x.dtype)
        inner = (Ellipsis,) + tuple(slice(lo, lo + n) for n, (lo, _) in zip(x.shape[lead:], pads, strict=True))
        out[inner] = x
        return out
    check_border_padding(x.shape[lead:], pads, mode)
    for axis, (lo, hi) in zip(range(lead, x.ndim), pads, strict=True):
        if lo or hi:
            x = np.take(x, _border_index(x.shape[axis], lo, hi, mode), axis=axis)
    return x


def pad_backward(g: np.ndarray, pads: Pairs, mode: str = "constant") -> np.ndarray:
    """Adjoint of :func:`pad`: the gradient with respect to the unpadded input.

    For 'constant' this crops; for border modes every padded element's gradient
    is added to the input element it was copied from.
    """
    nd = len(pads)
    lead = g.ndim - nd
    if mode == "constant":
        inner = (Ellipsis,) + tuple(slice(lo, n - hi) for n, (lo, hi) in zip(g.shape[lead:], pads, strict=True))
        return g[inner]
    # Undo one axis at a time, in reverse order of padding.
    for axis, (lo, hi) in reversed(list(zip(range(lead, g.ndim), pads, strict=True))):
        if not (lo or hi):
            continue
        n = g.shape[axis] - lo - hi
        src = _border_index(n, lo, hi, mode)
        gm = np.moveaxis(g, axis, 0)
        out = gm[lo : lo + n].copy()
        for j in itertools.chain(range(lo), range(lo + n, lo + n + hi)):  # border only
            out[src[j]] += gm[j]
        g = np.moveaxis(out, 0, axis)
    return g


def window_view(
    xp: np.ndarray,
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    out: Sequence[int],
) -> np.ndarray:
    """Read-only view ``(*lead, *out, *kernel)`` of the padded array ``xp``.

    ``view[..., o1, .., od, k1, .., kd] == xp[..., o1*s1 + k1*d1, .., od*sd + kd*dd]``.
    The view shares memory with ``xp``: no copy is made.
    """
    nd = len(kernel)
    lead = xp.ndim - nd
    st = xp.strides
    shape = xp.shape[:lead] + tuple(out) + tuple(kernel)
    strides = (
        st[:lead]
        + tuple(st[lead + i] * stride[i] for i in range(nd))
        + tuple(st[lead + i] * dilation[i] for i in range(nd))
    )
    return np.lib.stride_tricks.as_strided(xp, shape, strides, writeable=False)


def scatter_add(
    gw: np.ndarray,
    padded_shape: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> np.ndarray:
    """Adjoint of :func:`window_view`.

    ``gw`` has shape ``(*lead, *out, *kernel)``: a value for every element of
    every window.  Returns an array of ``padded_shape`` where each padded
    element holds the sum of the values of all window elements that read it.
    Loops only over the kernel offsets (e.g. 9 for 3x3), each step one strided
    add over all batches, channels and output positions.
    """
    nd = len(stride)
    kernel = gw.shape[-nd:]
    out = gw.shape[-2 * nd : -nd]
    g = np.zeros(padded_shape, dtype=gw.dtype)
    for offset in itertools.product(*(range(k) for k in kernel)):
        target = (Ellipsis,) + tuple(
            slice(k * d, k * d + s * (o - 1) + 1, s) for k, d, s, o in zip(offset, dilation, stride, out, strict=True)
        )
        g[target] += gw[(Ellipsis,) + offset]
    return g
