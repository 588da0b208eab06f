"""The classic worked example: a 5x5 input, a 3x3 kernel, the centre pixel.

Convolution multiplies the window element-wise by the kernel's coefficients
and sums; max pooling takes the window's largest element.  The numbers live
here; ``convpool explain`` (:mod:`convpool.lab.explain`) computes and shows
the rest with convpool's own functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
