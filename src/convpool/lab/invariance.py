"""``convpool invariance``: conv is shift-equivariant, pooling buys partial invariance.

Inputs are shifted circularly by 0..k pixels (so borders play no part) and
each layer's output is compared with its output on the unshifted input:

* relative change ``||f(shift(x)) - f(x)|| / ||f(x)||`` - 0 means invariant;
* equivariance error ``||f(shift(x)) - shift'(f(x))|| / ||f(x)||`` where
  ``shift'`` is the same shift in output pixels (``s / stride``; only defined
  when the stride divides the shift) - 0 means the output just moves along.

Layers: a 3x3 convolution (circular padding, stride 1), 2x2 stride-2 max /
average / median pooling, and an anti-aliased max pool (max with stride 1,
then a [1 2 1] binomial blur, then subsample by 2; Zhang 2019, "Making
convolutional networks shift-invariant again").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import functional as F
from ..config import backend
from ._common import pyplot, save_figure, write_json

Layer = Callable[[np.ndarray], np.ndarray]


def _blur_kernel(c: int) -> np.ndarray:
    b = np.array([1.0, 2.0, 1.0])
    k = np.outer(b, b) / 16.0
    return np.broadcast_to(k, (c, 1, 3, 3)).copy()


def layers(seed: int = 0) -> dict[str, tuple[Layer, int]]:
    """name -> (layer on (N, C, H, W), stride)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((1, 1, 3, 3))

    def conv(x: np.ndarray) -> np.ndarray:
        c = x.shape[1]
        return F.conv2d(x, np.broadcast_to(w, (c, 1, 3, 3)).copy(), None, 1, 1, 1, c, padding_mode="circular")

    def blurpool(x: np.ndarray) -> np.ndarray:
        m = F.max_pool2d(x, 2, 1, padding_mode="circular", padding=((0, 1), (0, 1)))
        blurred = F.conv2d(m, _blur_kernel(x.shape[1]), None, 1, 1, 1, x.shape[1], padding_mode="circular")
        return blurred[:, :, ::2, ::2]

    return {
        "conv 3x3": (conv, 1),
        "max pool 2x2/2": (lambda x: F.max_pool2d(x, 2), 2),
        "avg pool 2x2/2": (lambda x: F.avg_pool2d(x, 2), 2),
        "median pool 2x2/2": (lambda x: F.median_pool2d(x, 2), 2),
        "anti-aliased max pool (blur)": (blurpool, 2),
    }


def inputs(seed: int = 0, n: int = 16, size: int = 32) -> dict[str, np.ndarray]:
    """Random noise, patches of a real photograph, and rectified edge responses of them."""
    from .filters import BANK, load_image

    rng = np.random.default_rng(seed)
    out = {"random noise": rng.standard_normal((n, 1, size, size))}
    img, _ = load_image()
    rows = rng.integers(0, img.shape[0] - size, n)
    cols = rng.integers(0, img.shape[1] - size, n)
    patches = np.stack([img[r : r + size, c : c + size] for r, c in zip(rows, cols, strict=True)])[:, None]
    out["photo patches"] = patches.astype(np.float64)
    sobel = next(iter(BANK.values()))[None, None]
    out["photo edges (ReLU)"] = np.maximum(F.conv2d(out["photo patches"], sobel, padding=1, padding_mode="circular"), 0)
    return out


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """``sum ||a_i - b_i|| / sum ||b_i||`` over the samples (a ratio of totals, so a
    nearly-zero sample cannot dominate)."""
    num = np.sqrt(((a - b) ** 2).reshape(len(a), -1).sum(axis=1)).sum()
    den = np.sqrt((b**2).reshape(len(b), -1).sum(axis=1)).sum()
    return float(num / max(den, 1e-300))


def _int_in(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in [low, high]; a ValueError naming it otherwise."""
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not is_int or value < low or (high is not None and value > high):
        span = f"an int >= {low}" if high is None else f"an int from {low} to {high}"
        raise ValueError(f"{name} must be {span}, got {value!r}")
    return int(value)


def measure(max_shift: int = 4, seed: int = 0, n: int = 16, size: int = 32) -> dict[str, Any]:
    """Relative change and equivariance error of every layer for shifts 0..max_shift."""
    size = _int_in("size", size, 4, 128)  # the patches are cut from a 256-pixel photograph
    max_shift = _int_in("max_shift", max_shift, 0, size - 1)
    seed, n = _int_in("seed", seed, 0), _int_in("n", n, 1)
    res: dict[str, Any] = {}
    for in_name, x in inputs(seed, n, size).items():
        res[in_name] = {}
        for name, (f, stride) in layers(seed).items():
            y0 = f(x)
            change, equi = [], []
            for s in range(max_shift + 1):
                ys = f(np.roll(x, s, axis=3))  # shift right by s pixels
                change.append(_rel(ys, y0))
                equi.append(_rel(ys, np.roll(y0, s // stride, axis=3)) if s % stride == 0 else None)
            res[in_name][name] = {"relative_change": change, "equivariance_error": equi}
    return res


def counterexample() -> dict[str, Any]:
    """1-D: a one-pixel shift flips half of a stride-2 max pool's outputs."""
    x = np.array([0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    xs = np.roll(x, 1)
    y, ys = F.max_pool1d(x[None, None], 2)[0, 0], F.max_pool1d(xs[None, None], 2)[0, 0]
    blur = layers()["anti-aliased max pool (blur)"][0]
    b = blur(x[None, None, None, :].repeat(2, axis=2))[0, 0, 0]
    bs = blur(xs[None, None, None, :].repeat(2, axis=2))[0, 0, 0]
    return {
        "x": x,
        "x_shifted": xs,
        "max_pool": y,
        "max_pool_shifted": ys,
        "changed_outputs": int((y != ys).sum()),
        "outputs": int(y.size),
        "relative_change": float(np.linalg.norm(ys - y) / np.linalg.norm(y)),
        "blurpool": b,
        "blurpool_shifted": bs,
        "blurpool_relative_change": float(np.linalg.norm(bs - b) / np.linalg.norm(b)),
    }


def figure(res: dict[str, Any], path: str) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(res), figsize=(3.7 * len(res), 4.2), sharey=True, layout="constrained")
    for ax, (in_name, per) in zip(np.atleast_1d(axes), res.items(), strict=True):
        for name, r in per.items():
            ax.plot(range(len(r["relative_change"])), r["relative_change"], marker="o", ms=4, label=name)
        ax.set_title(in_name, fontsize=10)
        ax.set_xlabel("shift (pixels)")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("relative change of the output")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle("How much a layer's output changes when its input shifts (0 = invariant)")
    return save_figure(fig, path)


def main(max_shift: int = 4, out: str | None = None, seed: int = 0, n: int = 16, quiet: bool = False) -> dict[str, Any]:
    # float64 (the equivariance errors are ~1e-16) on small patches: the NumPy backend
    # computes them in less time than compiling float64 kernels would take
    with backend("numpy"):
        res = measure(max_shift, seed, n)
        facts: dict[str, Any] = {"max_shift": max_shift, "results": res, "counterexample": counterexample()}
    if not quiet:
        from rich.table import Table

        from ._common import console

        con = console()
        con.rule("[bold]Shift invariance, layer by layer (circular shifts)")
        for in_name, per in res.items():
            t = Table(title=f"{in_name}: relative change of the output", title_justify="left")
            t.add_column("layer")
            for s in range(1, max_shift + 1):
                t.add_column(f"shift {s}", justify="right")
            t.add_column("equivariance error", justify="right")
            for name, r in per.items():
                errs = [e for e in r["equivariance_error"] if e is not None]
                t.add_row(name, *(f"{c:.3f}" for c in r["relative_change"][1:]), f"{max(errs):.1e}")
            con.print(t)
        ce = facts["counterexample"]
        con.print(
            f"1-D counterexample: x = {ce['x'].astype(int).tolist()} -> max_pool(2, stride 2) = "
            f"{ce['max_pool'].astype(int).tolist()}; shifted one pixel {ce['x_shifted'].astype(int).tolist()} -> "
            f"{ce['max_pool_shifted'].astype(int).tolist()}: {ce['changed_outputs']} of {ce['outputs']} outputs "
            f"change (relative change {ce['relative_change']:.2f}); blur-pooled: "
            f"{ce['blurpool_relative_change']:.2f}"
        )
        con.print(
            "conv: the output moves with the input (equivariance error ~1e-16) but changes as a whole; "
            "stride-2 pools are equivariant only for shifts that are multiples of 2 (the error column) "
            "and change less than the conv at small shifts; blurring before subsampling changes least."
        )
    if out:
        facts["figure"] = figure(res, os.path.join(out, "invariance.png"))
        write_json(os.path.join(out, "invariance.json"), facts)
    return facts
