"""The page's presets: input maps and kernels, all from convpool's own data and examples.

Inputs: the 5x5 worked example (:mod:`convpool.examples`), an MNIST test digit
(:func:`convpool.data.load_mnist`; scikit-learn's 8x8 digits if MNIST is not
installed), a crop of the photograph the lab filters (:func:`convpool.lab.filters.load_image`),
a random map and a 1-D signal.  Kernels: edges, blur, sharpen, Laplacian, the
flat structuring element (all zeros: max-plus convolution with it is max
pooling) and two 1-D kernels.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .. import functional as F
from ..examples import INPUT, KERNELS

PHOTO_CROP = (slice(48, 112), slice(53, 117))  # Grace Hopper's face: 64 x 64 of the 200 x 171 photograph


def _rounded(a: np.ndarray, digits: int = 2) -> list[list[float]]:
    return np.round(np.asarray(a, dtype=np.float64), digits).tolist()


@functools.lru_cache(maxsize=1)
def mnist_test() -> tuple[np.ndarray, np.ndarray] | None:
    """MNIST's test images (N, 28, 28) and labels, or None where MNIST is not installed."""
    from .. import data

    try:
        split = data.load_mnist(n_train=1)
    except (OSError, ValueError):
        return None
    return split.test.x[:, 0], split.test.y


def digit() -> tuple[list[list[float]], str]:
    test = mnist_test()
    if test is not None:
        x, y = test
        return _rounded(x[0]), f"MNIST test digit 0 (a {int(y[0])}), 28 x 28"
    from .. import data

    try:
        split = data.load_digits()
    except ImportError:  # scikit-learn comes with the lab extra
        return _rounded(INPUT / INPUT.max()), "no digits installed: the worked example, scaled"
    return _rounded(split.test.x[0, 0]), f"scikit-learn digit (a {int(split.test.y[0])}), 8 x 8"


def photo() -> tuple[list[list[float]], str] | None:
    try:
        from ..lab.filters import load_image

        img, _ = load_image()
    except (ImportError, OSError, ValueError):  # matplotlib comes with the lab extra
        return None
    face = F.avg_pool2d(img[PHOTO_CROP][None, None].astype(np.float64), 2)[0, 0]  # halved by convpool
    return _rounded(
        face
    ), "the face in the photograph (grace_hopper.jpg), 64 x 64 average-pooled to 32 x 32, grey levels"


def signal() -> list[list[float]]:
    """A 1 x 16 signal: a step, a spike and a ramp."""
    s = np.zeros(16)
    s[2:6] = 1.0
    s[8] = 3.0
    s[11:16] = np.arange(1, 6) / 2.0
    return [s.tolist()]


@functools.lru_cache(maxsize=1)
def presets() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    inputs: dict[str, dict[str, Any]] = {
        "worked": {"label": "5 x 5 worked example", "grid": INPUT.tolist(), "about": "the classic 5x5 example"},
    }
    grid, about = digit()
    inputs["digit"] = {"label": "a handwritten digit", "grid": grid, "about": about}
    crop = photo()
    if crop is not None:
        inputs["photo"] = {"label": "a crop of the photograph", "grid": crop[0], "about": crop[1]}
    inputs["random"] = {
        "label": "random 8 x 8",
        "grid": np.round(rng.standard_normal((8, 8)), 1).tolist(),
        "about": "standard normal values (seed 0), one decimal",
    }
    inputs["signal"] = {"label": "1-D signal (1 x 16)", "grid": signal(), "about": "a step, a spike and a ramp"}
    sobel_x = [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]
    kernels: dict[str, dict[str, Any]] = {
        "vertical-edge": {"label": "vertical edge", "grid": KERNELS["vertical-edge"].tolist()},
        "horizontal-edge": {"label": "horizontal edge", "grid": KERNELS["horizontal-edge"].tolist()},
        "sobel-x": {"label": "Sobel x", "grid": sobel_x},
        "blur": {"label": "blur (box 3x3, 1/9)", "grid": np.round(KERNELS["blur"], 4).tolist()},
        "sharpen": {"label": "sharpen", "grid": KERNELS["sharpen"].tolist()},
        "laplacian": {"label": "Laplacian", "grid": [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]},
        "identity": {"label": "identity", "grid": KERNELS["identity"].tolist()},
        "flat": {"label": "flat structuring element (zeros)", "grid": np.zeros((3, 3)).tolist()},
        "diff-1d": {"label": "1-D difference [1, 0, -1]", "grid": [[1.0, 0.0, -1.0]]},
        "smooth-1d": {"label": "1-D smoothing [1, 2, 1] / 4", "grid": [[0.25, 0.5, 0.25]]},
    }
    return {"inputs": inputs, "kernels": kernels}
