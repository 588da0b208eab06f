"""The classic worked example: a 5x5 input, a 3x3 kernel, the centre pixel.

Convolution multiplies the window element-wise by the kernel's coefficients
and sums; max pooling takes the window's largest element.  Everything here is
computed by convpool's own functions; :func:`format_worked_example` prints it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import functional as F

INPUT = np.array(
    [
        [1, 2, 0, 1, 6],
        [0, 4, 1, 2, 1],
        [2, 1, 5, 0, 2],
        [1, 3, 0, 2, 4],
        [7, 1, 2, 1, 0],
    ],
    dtype=np.float64,
)

KERNELS = {
    "vertical-edge": np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], dtype=np.float64),
    "horizontal-edge": np.array([[1, 1, 1], [0, 0, 0], [-1, -1, -1]], dtype=np.float64),
    "blur": np.full((3, 3), 1.0 / 9.0),
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64),
    "identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float64),
}


def _as4d(a: np.ndarray) -> np.ndarray:
    return a[None, None]


def centre_pixel(x: np.ndarray, kernel: np.ndarray) -> dict[str, Any]:
    """The window around the centre pixel: conv's products and sum, pool's max."""
    k = kernel.shape[0]
    c = x.shape[0] // 2
    h = k // 2
    window = x[c - h : c + h + 1, c - h : c + h + 1]
    products = window * kernel
    arg = np.unravel_index(int(np.argmax(window)), window.shape)
    return {
        "window": window,
        "products": products,
        "conv": float(products.sum()),
        "max": float(window.max()),
        "max_at": (int(arg[0]) + c - h, int(arg[1]) + c - h),
    }


def output_maps(x: np.ndarray, kernel: np.ndarray, pool: str = "max") -> dict[str, dict[str, np.ndarray]]:
    """Full output maps for valid/padded borders and stride 1/2."""
    k = kernel.shape[0]
    w = _as4d(kernel)
    maps: dict[str, dict[str, np.ndarray]] = {}
    cases = {
        "valid, stride 1": dict(stride=1, padding=0, mode="zeros"),
        "valid, stride 2": dict(stride=2, padding=0, mode="zeros"),
        "zero padding 1, stride 1": dict(stride=1, padding=k // 2, mode="zeros"),
        "reflect padding 1, stride 1": dict(stride=1, padding=k // 2, mode="reflect"),
        "replicate padding 1, stride 1": dict(stride=1, padding=k // 2, mode="replicate"),
        "zero padding 1, stride 2": dict(stride=2, padding=k // 2, mode="zeros"),
    }
    for name, cfg in cases.items():
        s, p, mode = cfg["stride"], cfg["padding"], cfg["mode"]
        conv = F.conv2d(_as4d(x), w, None, s, p, padding_mode=str(mode))[0, 0]
        # pooling pads with its identity (-inf for max) unless a border mode is asked for
        pool_mode = None if mode == "zeros" else str(mode)
        pooled = F.reduce_window(_as4d(x), pool, (k, k), (int(s),) * 2, (int(p),) * 2, 1, False, pool_mode)[0, 0]
        maps[name] = {"conv": conv, pool: pooled}
    return maps


def output_size_line(n: int, k: int, s: int, p: int) -> str:
    out = (n + 2 * p - k) // s + 1
    return f"out = floor(({n} + 2*{p} - {k}) / {s}) + 1 = {out}"


def _grid(a: np.ndarray) -> str:
    return "\n".join("  " + " ".join(f"{v:6.2f}" if v != int(v) else f"{int(v):6d}" for v in row) for row in a)


def format_worked_example(kernel_name: str = "vertical-edge", pool: str = "max") -> str:
    """The worked example as plain text (the lab renders it richer)."""
    x, kernel = INPUT, KERNELS[kernel_name]
    c = centre_pixel(x, kernel)
    terms = " + ".join(f"{w:g}*{k:g}" for w, k in zip(c["window"].ravel(), kernel.ravel(), strict=True))
    lines = [
        "Input (5x5):",
        _grid(x),
        f"Conv kernel ({kernel_name}; in a real network these coefficients are learned):",
        _grid(kernel),
        "",
        "Centre pixel, 3x3 window:",
        _grid(c["window"]),
        f"  convolution = sum of products = {terms}",
        f"              = {c['conv']:g}",
        f"  max pooling = the largest element = {c['max']:g} (at row {c['max_at'][0]}, col {c['max_at'][1]}),"
        " no coefficients",
        "",
    ]
    for name, maps in output_maps(x, kernel, pool).items():
        lines.append(f"{name}:")
        for op, m in maps.items():
            lines.append(f" {op} -> {m.shape[0]}x{m.shape[1]}")
            lines.append(_grid(m))
    lines += [
        "",
        "Output size: "
        + output_size_line(5, 3, 1, 0)
        + " (valid, stride 1); "
        + output_size_line(5, 3, 2, 0)
        + " (valid, stride 2); "
        + output_size_line(5, 3, 1, 1)
        + " (padded, stride 1)",
    ]
    return "\n".join(lines)
