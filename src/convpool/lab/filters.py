"""``convpool filters``: what filters and pools do to a real image.

Hand-made kernels (edges, blur, sharpen, Laplacian) convolved with a real
photograph - by default the sample image that matplotlib ships, no download -
then max / average / median pooled: conv extracts patterns, pooling shrinks
and summarises them.  Also draws the first-layer filters a CNN learned on
``digits`` and ``lines`` (the LeNet-style CNN) or ``mnist`` (LeNet-5).  The
times it prints exclude compilation: each op runs once to warm up first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import functional as F
from .. import nn
from ..examples import KERNELS
from ._common import pyplot, save_figure, write_json

BANK = {
    "vertical edge (Sobel x)": np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=np.float64),
    "horizontal edge (Sobel y)": np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=np.float64),
    "Laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64),
    "blur (box 3x3)": KERNELS["blur"],
    "sharpen": KERNELS["sharpen"],
}


MIN_SIDE = 8  # the 4x4 pools of the figure need a few windows


def load_image(path: str | None = None, max_side: int = 256) -> tuple[np.ndarray, str]:
    """A grayscale float image in [0, 1], shrunk by average pooling to at most ``max_side``."""
    import matplotlib.image as mpimg

    if path is None:
        import matplotlib

        source = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
        name = "grace_hopper.jpg (matplotlib sample data)"
    else:
        source, name = path, os.path.basename(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"image {path!r} does not exist or is not a file")
    try:
        img = mpimg.imread(source)
    except (OSError, ValueError, SyntaxError) as exc:  # PIL reports a bad file as any of these
        raise ValueError(f"image {source!r} is not a readable image (PNG, JPEG, ...): {exc}") from exc
    factor = int(np.ceil(max(img.shape[:2]) / max_side))
    if img.ndim not in (2, 3) or min(img.shape[:2]) < MIN_SIDE * factor:
        raise ValueError(
            f"image {source!r} has shape {img.shape}; expected an image of at least {MIN_SIDE}x{MIN_SIDE} pixels "
            f"(after shrinking its longer side to {max_side})"
        )
    scale = np.iinfo(img.dtype).max if np.issubdtype(img.dtype, np.integer) else 1.0
    img = np.asarray(img, dtype=np.float64) / scale
    if not np.isfinite(img).all():
        raise ValueError(f"image {source!r} holds non-finite pixel values")
    if img.max() > 1.0:  # a float image on the 0..255 scale
        img = img / 255.0
    if img.ndim == 3:  # RGB(A) to luminance; grey + alpha keeps the grey channel
        img = img[..., :3] @ np.array([0.299, 0.587, 0.114]) if img.shape[2] >= 3 else img[..., 0]
    img = img.astype(np.float32)  # the dtype of everything after: one set of kernels
    if factor > 1:  # shrink with convpool's own average pooling
        img = F.avg_pool2d(img[None, None], factor, ceil_mode=True)[0, 0]
    return img, name


def timed(fn: Callable[[], np.ndarray], repeats: int = 3) -> tuple[np.ndarray, float]:
    """``fn()`` and its time in seconds: the median of ``repeats`` runs after one
    warm-up run, so numba's compilation (or loading from its cache) is not counted."""
    out = fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return out, float(np.median(times))


def apply_bank(img: np.ndarray) -> dict[str, Any]:
    """Every kernel of the bank in one Conv2d call ('same' padding, reflect border);
    ``seconds`` excludes compilation (see :func:`timed`)."""
    w = np.stack([k for k in BANK.values()])[:, None].astype(np.float32)
    y, seconds = timed(lambda: F.conv2d(img[None, None], w, padding="same", padding_mode="reflect"))
    out = y[0]
    h, wd = img.shape
    return {
        "maps": dict(zip(BANK, out, strict=True)),
        "seconds": seconds,
        "mult_adds": int(len(BANK) * h * wd * 9),
        "parameters": int(w.size),
    }


def apply_pools(fmap: np.ndarray, sizes: tuple[int, ...] = (2, 4)) -> dict[str, Any]:
    """Max / average / median pooling of a (rectified) feature map; ``seconds``
    excludes compilation (see :func:`timed`)."""
    x = np.maximum(fmap, 0)[None, None]
    res: dict[str, Any] = {}

    def pool(name: str, k: int) -> Callable[[], np.ndarray]:
        return lambda: F.avg_pool2d(x, k) if name == "avg" else F.reduce_window(x, name, (k, k))

    for k in sizes:
        for name in ("max", "avg", "median"):
            y, seconds = timed(pool(name, k))
            res[f"{name} {k}x{k}"] = {
                "map": y[0, 0],
                "shape": y.shape[2:],
                "seconds": seconds,
                "window_ops": int(y.size * k * k),
                "parameters": 0,
                "kept_fraction": float(y.size / x.size),
            }
    return res


LEARN_DATASETS = ("digits", "lines", "mnist")


def learned_filters(dataset: str, epochs: int = 6, seed: int = 0) -> tuple[np.ndarray, float]:
    """Train briefly - the LeNet-style CNN on ``digits`` or ``lines``, LeNet-5 on the first
    5,000 MNIST images - and return the first-layer kernels and the test accuracy."""
    from .. import _random, data, models, train

    _random.manual_seed(seed)
    if dataset == "mnist":
        split = data.load_dataset("mnist", n_train=5000, n_test=1000)
        model = models.lenet5(1, 10, split.train.x.shape[2])
    else:
        split = data.load_digits() if dataset == "digits" else data.load_lines(n_train=1500, n_test=500)
        c, s = split.train.x.shape[1], split.train.x.shape[2]
        model = models.build("lenet", c, split.train.num_classes, s)
    _, final = train.train_classifier(model, split.train, split.test, epochs=epochs, progress=False)
    first = model[0]
    assert isinstance(first, nn.Conv2d)
    return first.weight.data[:, 0].copy(), final["test_acc"]


def figure_image(img: np.ndarray, bank: dict[str, Any], pools: dict[str, Any], path: str) -> str:
    plt = pyplot()
    maps = bank["maps"]
    fig, axes = plt.subplots(2, 6, figsize=(18, 6.6))
    axes[0, 0].imshow(img, cmap="gray")
    axes[0, 0].set_title(f"input {img.shape[0]}x{img.shape[1]}", fontsize=9)
    for ax, (name, m) in zip(axes[0, 1:], maps.items(), strict=False):
        if "blur" in name or "sharpen" in name:  # images: grayscale
            ax.imshow(m, cmap="gray")
        else:  # signed responses: a symmetric diverging scale
            v = np.abs(m).max()
            ax.imshow(m, cmap="RdBu_r", vmin=-v, vmax=v)
        ax.set_title(f"conv: {name}", fontsize=9)
    vert = next(iter(maps))
    axes[1, 0].imshow(np.maximum(maps[vert], 0), cmap="magma")
    axes[1, 0].set_title(f"ReLU({vert.split(' (')[0]}) {maps[vert].shape[0]}x{maps[vert].shape[1]}", fontsize=9)
    for ax, (name, p) in zip(axes[1, 1:], pools.items(), strict=False):
        ax.imshow(p["map"], cmap="magma")
        ax.set_title(f"{name} pool -> {p['shape'][0]}x{p['shape'][1]}", fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        "Convolution extracts patterns (learned in a CNN, hand-made here); pooling shrinks and summarises them"
    )
    return save_figure(fig, path)


def figure_learned(filters: dict[str, tuple[np.ndarray, float]], path: str) -> str:
    """``name -> (kernels (n, k, k), test accuracy)``: one row of kernels per name."""
    plt = pyplot()
    n = max(len(f) for f, _ in filters.values())
    cols = min(16, n)
    rows_per = -(-n // cols)
    fig, axes = plt.subplots(rows_per * len(filters), cols, figsize=(cols * 0.9, rows_per * len(filters) * 1.05 + 0.6))
    axes = np.atleast_2d(axes)
    for d, (name, (f, acc)) in enumerate(filters.items()):
        for i in range(rows_per * cols):
            ax = axes[d * rows_per + i // cols, i % cols]
            ax.set_xticks([])
            ax.set_yticks([])
            if i < len(f):
                v = np.abs(f[i]).max()
                ax.imshow(f[i], cmap="RdBu_r", vmin=-v, vmax=v)
            else:
                ax.axis("off")
        axes[d * rows_per, 0].set_ylabel(f"{name}\nacc {acc:.3f}", fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle("First-layer filters learned by training (red +, blue -)", fontsize=10)
    return save_figure(fig, path)


def main(
    image: str | None = None,
    out: str | None = None,
    learn: tuple[str, ...] = ("digits", "lines"),
    epochs: int = 6,
    quiet: bool = False,
) -> dict[str, Any]:
    unknown = [d for d in learn if d not in LEARN_DATASETS]
    if unknown:
        raise ValueError(f"learn must name datasets from {LEARN_DATASETS}, got {unknown}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    img, name = load_image(image)
    bank = apply_bank(img)
    vert = next(iter(bank["maps"]))
    pools = apply_pools(bank["maps"][vert])
    facts: dict[str, Any] = {
        "image": name,
        "image_shape": img.shape,
        "conv": {
            "kernels": {k: v for k, v in BANK.items()},
            "output_shape": bank["maps"][vert].shape,
            "mult_adds": bank["mult_adds"],
            "parameters": bank["parameters"],
            "seconds": bank["seconds"],
            "response_std": {k: float(m.std()) for k, m in bank["maps"].items()},
        },
        "pool": {k: {kk: vv for kk, vv in v.items() if kk != "map"} for k, v in pools.items()},
        "timing": "seconds: the median of 3 runs after one warm-up run (compilation excluded)",
    }
    learned = {d: learned_filters(d, epochs) for d in learn}
    facts["learned"] = {d: {"filters": f, "test_acc": acc} for d, (f, acc) in learned.items()}
    if not quiet:
        from rich.table import Table

        from ._common import console

        con = console()
        con.rule(f"[bold]Filters and pools on {name}, {img.shape[0]}x{img.shape[1]}")
        con.print(
            f"conv: {len(BANK)} 3x3 kernels in one Conv2d -> {len(BANK)} maps of "
            f"{bank['maps'][vert].shape[0]}x{bank['maps'][vert].shape[1]}; {bank['mult_adds']:,} multiply-adds, "
            f"{bank['parameters']} coefficients (a CNN learns them), {bank['seconds'] * 1e3:.3g} ms "
            "(median of 3 runs after a warm-up run: compilation excluded)"
        )
        t = Table("pool", "output", "kept", "window ops", "parameters", "ms (warm)")
        for k, p in pools.items():
            t.add_row(
                k,
                f"{p['shape'][0]}x{p['shape'][1]}",
                f"{p['kept_fraction']:.1%}",
                f"{p['window_ops']:,}",
                "0",
                f"{p['seconds'] * 1e3:.3g}",
            )
        con.print(t)
        for d, (_, acc) in learned.items():
            con.print(f"learned first-layer filters on {d}: {len(learned[d][0])} kernels (test accuracy {acc:.3f})")
    if out:
        facts["figures"] = [figure_image(img, bank, pools, os.path.join(out, "filters.png"))]
        if learned:
            facts["figures"].append(figure_learned(learned, os.path.join(out, "learned_filters.png")))
        write_json(os.path.join(out, "filters.json"), facts)
    return facts
