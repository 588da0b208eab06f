"""Shared plumbing for the functional ops: input checks and window geometry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _args
from .._args import Pairs
from ..windows import valid_counts


@dataclass(frozen=True)
class Geometry:
    """Where the windows of one op lie, per spatial dimension.

    ``pads`` is the user's padding as (lo, hi) pairs; ``extra`` is the
    additional high-side room that ``ceil_mode`` may need for a last, partial
    window (filled with the reduction's identity, never counted).
    """

    in_size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: Pairs
    out: tuple[int, ...]
    extra: tuple[int, ...]

    def __post_init__(self) -> None:
        """Every window lies inside the padded input (plus the ceil_mode room): the
        compiled kernels index by these numbers, so a geometry that breaks this never
        reaches them (an out-of-range read or write would be silent there)."""
        for i, (n, k, s, d, (lo, hi), o, e) in enumerate(
            zip(self.in_size, self.kernel, self.stride, self.dilation, self.pads, self.out, self.extra, strict=True)
        ):
            if min(n, lo, hi, o, e) < 0 or min(k, s, d) < 1 or (o - 1) * s + d * (k - 1) + 1 > n + lo + hi + e:
                raise ValueError(
                    f"inconsistent window geometry in spatial dim {i}: input {n}, kernel {k}, stride {s}, "
                    f"dilation {d}, padding ({lo}, {hi}), output {o}, extra {e}"
                )

    @property
    def nd(self) -> int:
        return len(self.kernel)

    @property
    def padded(self) -> tuple[int, ...]:
        """Spatial size after padding (including the ceil_mode room)."""
        return tuple(n + lo + hi + e for n, (lo, hi), e in zip(self.in_size, self.pads, self.extra, strict=True))

    def counts(self, *, include_pad: bool) -> np.ndarray:
        """Per output position, the window elements on the input (or the padded input)."""
        if include_pad:
            lo = [0] * self.nd
            hi = [n + a + b for n, (a, b) in zip(self.in_size, self.pads, strict=True)]
        else:
            lo = [a for a, _ in self.pads]
            hi = [n + a for n, (a, _) in zip(self.in_size, self.pads, strict=True)]
        return valid_counts(self.kernel, self.stride, self.dilation, self.out, lo, hi)


def window_args(
    nd: int, kernel_size: Any, stride: Any, dilation: Any, *, pool: bool
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Kernel, stride and dilation as ``nd``-tuples; a pool's stride defaults to its
    kernel size (PyTorch's ``stride=None``)."""
    kernel = _args.ntuple(kernel_size, nd, "kernel_size")
    strides = kernel if (pool and stride is None) else _args.ntuple(stride, nd, "stride")
    return kernel, strides, _args.ntuple(dilation, nd, "dilation")


def make_geometry(
    in_size: tuple[int, ...],
    nd: int,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: bool = False,
    *,
    pool: bool = False,
) -> Geometry:
    kernel, strides, dil = window_args(nd, kernel_size, stride, dilation, pool=pool)
    check_bool(ceil_mode, "ceil_mode")
    pads = _args.resolve_padding(padding, nd, in_size, kernel, strides, dil)
    if pool:
        _args.check_pool_padding(pads, kernel, dil)
    out = _args.output_size(in_size, kernel, strides, pads, dil, bool(ceil_mode))
    extra = tuple(
        max(0, (o - 1) * s + d * (k - 1) + 1 - (n + lo + hi))
        for n, k, s, d, o, (lo, hi) in zip(in_size, kernel, strides, dil, out, pads, strict=True)
    )
    return Geometry(in_size, kernel, strides, dil, pads, out, extra)


def batched(x: Any, nd: int, name: str = "input") -> tuple[np.ndarray, bool]:
    """``x`` checked and as ``(N, C, *spatial)``; True if a batch axis was added."""
    x = _args.check_array(x, name)
    unbatched = _args.check_rank(x, nd, name)
    return (x[None] if unbatched else x), unbatched


def check_grad(dy: Any, expected: tuple[int, ...], dtype: np.dtype, name: str = "grad_output") -> np.ndarray:
    dy = _args.check_array(dy, name)
    if dy.shape != tuple(expected):
        raise ValueError(f"{name} must have the output's shape {tuple(expected)}, got {dy.shape}")
    return dy.astype(dtype, copy=False)


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is a bool (Python's or NumPy's), else a TypeError naming ``name``
    (PyTorch's rule: flags take ``True``/``False``, not ``1`` or ``'no'``)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_spatial(x: np.ndarray, nd: int, unbatched: bool = False, name: str = "input") -> None:
    """Every spatial dimension of the batched ``x`` must be non-empty: a window of
    nothing has no value.  An empty batch or no channels is fine (the output is empty
    too).  The message names the shape the caller passed."""
    shape = x.shape[1:] if unbatched else x.shape
    for i, n in enumerate(shape[len(shape) - nd :]):
        if n == 0:
            raise ValueError(
                f"{name} of shape {shape} has an empty spatial dim {i} (axis {len(shape) - nd + i}): "
                f"convolution and pooling need at least one element per spatial dim"
            )


def check_weight(x: np.ndarray, weight: Any, bias: Any, nd: int, groups: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``weight`` (C_out, C_in/groups, *kernel) and ``bias`` (C_out,) checked against the
    batched input ``x``: the layout convolution and max-plus convolution share."""
    weight = _args.check_array(weight, "weight")
    if weight.ndim != nd + 2:
        raise ValueError(
            f"weight of a {nd}-d conv must have {nd + 2} dims (C_out, C_in/groups, *kernel), got shape {weight.shape}"
        )
    if not _args._is_int(groups) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    c_in, c_out = x.shape[1], weight.shape[0]
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide both in_channels={c_in} and out_channels={c_out}")
    if weight.shape[1] * groups != c_in:
        raise ValueError(
            f"input has {c_in} channels but weight of shape {weight.shape} with groups={groups} "
            f"expects {weight.shape[1] * groups} (weight.shape[1] * groups)"
        )
    if bias is not None:
        bias = _args.check_array(bias, "bias")
        if bias.shape != (c_out,):
            raise ValueError(f"bias must have shape ({c_out},) (out_channels), got {bias.shape}")
    return weight, bias
