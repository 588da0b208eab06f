"""Argument normalising and the one output-size formula.

Every op in convpool takes PyTorch-style arguments (an int or a per-dimension
tuple) and turns them into per-dimension tuples here, so the engine below only
ever sees tuples of the right length.  Error messages name the argument, the
value and what was expected.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

IntOrTuple = int | Sequence[int]
# Padding as the engine sees it: one (lo, hi) pair per spatial dimension.
Pairs = tuple[tuple[int, int], ...]

PADDING_MODES = ("zeros", "constant", "reflect", "replicate", "circular")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def ntuple(value: Any, n: int, name: str, *, minimum: int = 1) -> tuple[int, ...]:
    """``value`` as an ``n``-tuple of ints, each ``>= minimum``.

    >>> ntuple(3, 2, "kernel_size")
    (3, 3)
    """
    if _is_int(value):
        out = (int(value),) * n
    elif isinstance(value, (tuple, list)) and all(_is_int(v) for v in value):
        if len(value) == 1 and n > 1:
            out = (int(value[0]),) * n
        elif len(value) != n:
            raise ValueError(
                f"{name} must be an int or a tuple of {n} ints for a {n}-d op, got {value!r} ({len(value)} values)"
            )
        else:
            out = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")
    bad = [v for v in out if v < minimum]
    if bad:
        what = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return out


def check_array(x: Any, name: str = "input") -> np.ndarray:
    """``x`` as a floating-point ndarray (float16/32/64), or a clear TypeError."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as exc:  # pragma: no cover - numpy's own message is kept
            raise TypeError(f"{name} must be a NumPy array, got {type(x).__name__}") from exc
    if x.dtype.kind != "f":  # np.issubdtype(x.dtype, np.floating), without its ~1 us
        raise TypeError(f"{name} must be a floating-point array (float32 or float64), got dtype {x.dtype}")
    return x


def check_rank(x: np.ndarray, nd: int, name: str = "input") -> bool:
    """Check ``x`` is ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``.

    Returns True when the input was unbatched (the caller adds and removes
    the batch axis).
    """
    if x.ndim == nd + 2:
        return False
    if x.ndim == nd + 1:
        return True
    raise ValueError(
        f"{name} of a {nd}-d op must have {nd + 2} dims (N, C, {_spatial_names(nd)}) "
        f"or {nd + 1} dims unbatched, got shape {x.shape}"
    )


def _spatial_names(nd: int) -> str:
    return ", ".join(("D", "H", "W")[3 - nd :]) if nd <= 3 else f"{nd} spatial dims"


def padding_pairs(padding: Any, nd: int, name: str = "padding") -> Pairs:
    """An int, a per-dimension tuple or explicit ``(lo, hi)`` pairs, as pairs."""
    if _is_int(padding) or (isinstance(padding, (tuple, list)) and all(_is_int(p) for p in padding)):
        p = ntuple(padding, nd, name, minimum=0)
        return tuple((v, v) for v in p)
    if isinstance(padding, (tuple, list)) and len(padding) == nd:
        pairs = []
        for pair in padding:
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                break
            lo, hi = ntuple(tuple(pair), 2, name, minimum=0)
            pairs.append((lo, hi))
        else:
            return tuple(pairs)
    raise TypeError(
        f"{name} must be an int, a tuple of {nd} ints, {nd} (lo, hi) pairs, 'valid' or 'same', got {padding!r}"
    )


def same_padding(
    in_size: Sequence[int], kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> Pairs:
    """'same' padding: output = ceil(in / stride), the odd pixel padded at the end.

    For stride 1 this is PyTorch's rule (output size == input size, total
    padding ``dilation*(kernel-1)`` split with the extra one on the high side).
    PyTorch refuses 'same' with stride > 1; convpool uses TensorFlow's rule,
    which reduces to PyTorch's at stride 1.
    """
    pairs = []
    for n, k, s, d in zip(in_size, kernel, stride, dilation, strict=True):
        out = -(-n // s)
        total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
        pairs.append((total // 2, total - total // 2))
    return tuple(pairs)


def resolve_padding(
    padding: Any,
    nd: int,
    in_size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> Pairs:
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding == "same":
            return same_padding(in_size, kernel, stride, dilation)
        raise ValueError(f"padding must be 'valid', 'same' or ints, got {padding!r}")
    return padding_pairs(padding, nd)


def output_size(
    in_size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Pairs,
    dilation: Sequence[int],
    ceil_mode: bool = False,
    what: str = "input",
) -> tuple[int, ...]:
    """The sliding-window output size, per dimension::

        out = floor_or_ceil((in + lo + hi - dilation*(kernel-1) - 1) / stride) + 1

    With ``ceil_mode`` a last window that would start inside the high padding
    is dropped (PyTorch's rule), so every window touches the input or the low
    padding.  A window that does not fit raises ValueError showing the formula
    with the caller's numbers.
    """
    out = []
    for i, (n, k, s, (lo, hi), d) in enumerate(zip(in_size, kernel, stride, padding, dilation, strict=True)):
        span = d * (k - 1) + 1
        room = n + lo + hi - span
        # with ceil_mode a window may overhang the padded input, as long as it starts
        # inside it (PyTorch: a 4-window on 3 elements, stride 2, gives one output)
        if room < (-(s - 1) if ceil_mode else 0):
            raise ValueError(
                f"the window does not fit the padded {what} in spatial dim {i}: "
                f"out = floor((in + pad_lo + pad_hi - dilation*(kernel-1) - 1) / stride) + 1 "
                f"= floor(({n} + {lo} + {hi} - {d}*({k}-1) - 1) / {s}) + 1 < 1; "
                f"use a smaller kernel/dilation or more padding"
            )
        o = (-(-room // s) if ceil_mode else room // s) + 1
        if ceil_mode and (o - 1) * s >= n + lo:
            o -= 1
        out.append(o)
    return tuple(out)


def check_pool_padding(padding: Pairs, kernel: Sequence[int], dilation: Sequence[int], name: str = "padding") -> None:
    """Pools need every window to touch the input: pad <= effective kernel / 2.

    This is PyTorch's rule for max and average pooling; without it a window
    could lie entirely in the padding and produce -inf or a 0/0.
    """
    for (lo, hi), k, d in zip(padding, kernel, dilation, strict=True):
        half = (d * (k - 1) + 1) // 2
        if max(lo, hi) > half:
            raise ValueError(
                f"{name} must be at most half the effective kernel size "
                f"(dilation*(kernel-1)+1)//2 = {half} for kernel {tuple(kernel)}, "
                f"got {tuple(padding)}"
            )


def check_padding_mode(mode: str, name: str = "padding_mode") -> str:
    if mode not in PADDING_MODES:
        raise ValueError(f"{name} must be one of {PADDING_MODES}, got {mode!r}")
    return "constant" if mode == "zeros" else mode


def prod(values: Sequence[int]) -> int:
    return math.prod(values)


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is a bool (Python's or NumPy's), else a TypeError naming ``name``
    (PyTorch's rule: flags take ``True``/``False``, not ``1`` or ``'no'``)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r} ({type(value).__name__})")
    return bool(value)


def tap_counts(k: int, s: int, d: int, out: int, lo: int, hi: int) -> np.ndarray:
    """Along one dimension: for every output ``o``, how many taps ``t`` in ``0..k-1`` read
    a position ``o*s + t*d`` inside ``[lo, hi)``.

    Closed form, ``O(out)`` whatever the kernel size: the taps that land in the range
    are ``ceil((lo - o*s)/d) <= t < ceil((hi - o*s)/d)``, clipped to ``[0, k)``.
    """
    base = np.arange(out, dtype=np.int64) * s
    first = np.minimum(np.maximum(-((base - lo) // d), 0), k)  # ceil((lo - base) / d), in [0, k]
    stop = np.minimum(np.maximum(-((base - hi) // d), 0), k)
    return np.maximum(stop - first, 0)


def valid_counts(
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    out: Sequence[int],
    lo: Sequence[int],
    hi: Sequence[int],
) -> np.ndarray:
    """For every output position, how many window elements fall in ``[lo, hi)``.

    Positions are in padded coordinates; e.g. ``lo = pad_lo, hi = pad_lo + in``
    counts the real input elements of each window (the divisor of an average
    that excludes padding).  The count is separable, so it is built as an
    outer product of one :func:`tap_counts` vector per dimension.  Shape ``out``.
    """
    counts = np.ones((), dtype=np.int64)
    for k, s, d, o, a, b in zip(kernel, stride, dilation, out, lo, hi, strict=True):
        counts = np.multiply.outer(counts, tap_counts(k, s, d, o, a, b))
    return counts


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

    def __hash__(self) -> int:
        """The fields' hash, worked out once (a cached geometry keys the tables' choices)."""
        h: int | None = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.in_size, self.kernel, self.stride, self.dilation, self.pads, self.out, self.extra))
            object.__setattr__(self, "_hash", h)
        return h

    def __getstate__(self) -> dict[str, Any]:  # the fields only: the hash and ``padded`` are worked out again
        return {k: v for k, v in self.__dict__.items() if k not in ("_hash", "padded")}

    @property
    def nd(self) -> int:
        return len(self.kernel)

    @functools.cached_property
    def padded(self) -> tuple[int, ...]:
        """Spatial size after padding (including the ceil_mode room); worked out once."""
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
    kernel = ntuple(kernel_size, nd, "kernel_size")
    strides = kernel if (pool and stride is None) else ntuple(stride, nd, "stride")
    return kernel, strides, ntuple(dilation, nd, "dilation")


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
    pads = resolve_padding(padding, nd, in_size, kernel, strides, dil)
    if pool:
        check_pool_padding(pads, kernel, dil)
    out = output_size(in_size, kernel, strides, pads, dil, bool(ceil_mode))
    extra = tuple(
        max(0, (o - 1) * s + d * (k - 1) + 1 - (n + lo + hi))
        for n, k, s, d, o, (lo, hi) in zip(in_size, kernel, strides, dil, out, pads, strict=True)
    )
    return Geometry(in_size, kernel, strides, dil, pads, out, extra)


def is_int(value: Any) -> bool:
    """An int (Python's or NumPy's), not a bool: what a size or an index may be."""
    return _is_int(value)


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int; ValueError naming ``name`` unless it is a positive int."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_groups(in_channels: Any, out_channels: Any, groups: Any) -> int:
    """Channel counts and ``groups`` of a convolution: positive ints, ``groups`` dividing
    both counts (the rule and messages of the functional ops' weight check)."""
    for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
        positive_int(v, name)
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"groups={groups} must divide both in_channels={in_channels} and out_channels={out_channels}")
    return int(groups)


def conv_padding(padding: Any, nd: int) -> Pairs | str:
    """A convolution's ``padding`` checked before the input size is known: 'valid' or
    'same' as given, anything else as (lo, hi) pairs (:func:`resolve_padding`'s rule)."""
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'valid', 'same' or ints, got {padding!r}")
        return padding
    return padding_pairs(padding, nd)


def check_grad(dy: Any, expected: tuple[int, ...], dtype: np.dtype, name: str = "grad_output") -> np.ndarray:
    """``dy`` checked as a floating-point array of the output's shape ``expected``, as ``dtype``."""
    dy = check_array(dy, name)
    if dy.shape != tuple(expected):
        raise ValueError(f"{name} must have the output's shape {tuple(expected)}, got {dy.shape}")
    return dy.astype(dtype, copy=False)


def is_number(value: Any) -> bool:
    """An int or a float (Python's or NumPy's), not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_output_ratio(output_ratio: Any, nd: int) -> tuple[float, ...]:
    """Fractional max pooling's ``output_ratio`` as ``nd`` floats, each in (0, 1)."""
    if isinstance(output_ratio, (tuple, list)):
        values = tuple(output_ratio)
        if len(values) == 1:
            values = values * nd
    else:
        values = (output_ratio,) * nd
    if not (len(values) == nd and all(is_number(r) for r in values)):
        raise TypeError(f"output_ratio must be a number or a tuple of {nd} numbers in (0, 1), got {output_ratio!r}")
    if not all(0 < r < 1 for r in values):  # NaN fails too
        raise ValueError(f"output_ratio must be between 0 and 1 (exclusive), got {output_ratio!r}")
    return tuple(float(r) for r in values)
