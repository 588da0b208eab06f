"""The complete answer to "is pooling a convolution?", each part computed.

A window op combines every input of the window with a weight, then reduces:

* convolution: ``x * w`` then sum - the (+, x) algebra, with learned weights;
* average pooling: the same algebra with fixed weights ``1/k^2``;
* max pooling: ``x + w`` then max - the (max, +) algebra - with a flat structuring
  element ``w = 0``: max pooling *is* a max-plus convolution whose weights are zero;
* pooling can have parameters: a max-plus layer learns its structuring element, GeM
  learns its exponent ``p``, mixed pooling its blend ``alpha`` between max and mean.

:func:`maxplus_facts` computes the first three on the worked example and on random
data; :func:`learned_pooling` trains LeNet-5 on MNIST with each learned pooling
layer and reads back what it learned.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from .. import functional as F
from .. import nn
from ._common import pyplot, save_figure


def maxplus_facts(window: np.ndarray, kernel: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """The centre window combined both ways, and max pooling against max-plus
    convolution with a zero structuring element on a random input."""
    flat = np.zeros_like(window)
    sums = window + flat
    products = window * kernel
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 9, 9))
    as_pool = F.max_pool2d(x, 3, 2, 1)
    as_maxplus = F.maxplus_conv2d(x, np.zeros((3, 1, 3, 3)), None, 2, 1, 1, 3)
    min_pool = F.min_pool2d(x, 3, 2, 1)
    as_minplus = F.minplus_conv2d(x, np.zeros((3, 1, 3, 3)), None, 2, 1, 1, 3)
    return {
        "window": {
            "structuring_element": flat,
            "sums": sums,
            "max": float(sums.max()),
            "products": products,
            "sum": float(products.sum()),
        },
        "shape": x.shape,
        "max_abs_diff": float(np.abs(as_pool - as_maxplus).max()),
        "min_abs_diff": float(np.abs(min_pool - as_minplus).max()),
    }


def _learned_values(model: Any, kind: str) -> Any:
    pools: list[Any] = [m for m in model if isinstance(m, (nn.GeMPool2d, nn.MixedPool2d, nn.MaxPlusConv2d))]
    if kind == "gem":
        return [float(m.p.data[0]) for m in pools]
    if kind == "mixed":
        return [float(m.alpha.data[0]) for m in pools]
    return [m.weight.data[:, 0].astype(float) for m in pools]  # (channels, 2, 2) per layer


def learned_pooling(n_train: int = 5000, epochs: int = 2, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Train LeNet-5 on the first ``n_train`` MNIST images with GeM, mixed and max-plus
    pooling; return each layer's starting and learned parameters and the test accuracy."""
    from .. import _random, data, models, train

    split = data.load_dataset("mnist", n_train=n_train, n_test=2000)
    out: dict[str, Any] = {"n_train": n_train, "epochs": epochs, "test_acc": {}, "seconds": {}}
    for kind in ("gem", "mixed", "maxplus"):
        _random.manual_seed(seed)
        model = models.lenet5(pool=kind)
        start = _learned_values(model, kind)
        t0 = time.perf_counter()
        _, final = train.train_classifier(
            model, split.train, split.test, epochs=epochs, batch_size=64, progress=progress
        )
        out["seconds"][kind] = time.perf_counter() - t0
        out["test_acc"][kind] = final["test_acc"]
        learned = _learned_values(model, kind)
        if kind == "maxplus":
            out["maxplus_se"] = learned  # per pooling layer: (channels, 2, 2)
        else:
            out[f"{'gem_p' if kind == 'gem' else 'mixed_alpha'}"] = {"start": start, "learned": learned}
    return out


def figure(facts: dict[str, Any], path: str) -> str:
    """The two algebras side by side on the centre window, and the learned
    structuring elements of the first max-plus layer."""
    plt = pyplot()
    w = facts["maxplus"]["window"]
    panels = [
        ("input window x", facts["centre"]["window"]),
        ("conv: weights w (learned)", facts["kernel"]),
        (f"x * w, then sum = {w['sum']:.3g}", w["products"]),
        ("max pool: w = 0 (flat)", w["structuring_element"]),
        (f"x + w, then max = {w['max']:.3g}", w["sums"]),
    ]
    learned = facts.get("learned") or {}
    ses = learned.get("maxplus_se") or []
    first = np.asarray(ses[0]) if ses else np.zeros((0, 2, 2))
    cols = max(len(panels), len(first))
    rows = 2 if len(first) else 1
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (title, a) in zip(axes[0], panels, strict=False):
        ax.imshow(a, cmap="coolwarm" if np.min(a) < 0 else "viridis")
        for (i, j), v in np.ndenumerate(a):
            ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=8, bbox=dict(fc="white", alpha=0.6, lw=0))
        ax.set_title(title, fontsize=9)
    if len(first):
        lim = max(float(np.abs(first).max()), 1e-6)
        for c, (ax, se) in enumerate(zip(axes[1], first, strict=False)):
            ax.imshow(se, cmap="coolwarm", vmin=-lim, vmax=lim)
            for (i, j), v in np.ndenumerate(se):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
            ax.set_title(f"learned SE, channel {c}", fontsize=9)
    fig.suptitle(
        "Conv is (+, x) with learned weights; max pooling is (max, +) with zero weights; "
        + ("below: the 2x2 structuring elements a max-plus layer learned on MNIST" if len(first) else ""),
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, path)


def describe(facts: dict[str, Any]) -> list[str]:
    """The answer in sentences, every number from ``facts``."""
    mp = facts["maxplus"]
    w = mp["window"]
    lines = [
        f"Max pooling IS a convolution - in the (max, +) algebra: add a structuring element w to the window and "
        f"take the max, where conv multiplies by w and sums. With w = 0 (flat) it is max pooling: on the centre "
        f"window max(x + 0) = {w['max']:g} (the pool's value), where conv's sum(x * w) = {w['sum']:g}. On a random "
        f"{tuple(mp['shape'])} input, max-plus convolution with zero weights vs max_pool2d(3, stride 2, padding 1): "
        f"max |difference| = {mp['max_abs_diff']:.1e}; min-plus vs min pooling: {mp['min_abs_diff']:.1e}.",
    ]
    le = facts.get("learned")
    if le:
        acc = ", ".join(f"{k} {v:.4f}" for k, v in le["test_acc"].items())
        gem, mix = le["gem_p"], le["mixed_alpha"]
        se = [np.asarray(s) for s in le["maxplus_se"]]
        lines.append(
            f"Pooling can have parameters: LeNet-5 trained on {le['n_train']:,} MNIST images for {le['epochs']} "
            f"epochs learned GeM p = {', '.join(f'{v:.3f}' for v in gem['learned'])} (from "
            f"{gem['start'][0]:g}), mixed pooling alpha = {', '.join(f'{v:.3f}' for v in mix['learned'])} (from "
            f"{mix['start'][0]:g}; 1 = max, 0 = mean), and max-plus structuring elements with values in "
            f"[{min(float(s.min()) for s in se):.3f}, {max(float(s.max()) for s in se):.3f}] (from 0). "
            f"Test accuracy: {acc}."
        )
    return lines


def save(facts: dict[str, Any], out: str) -> str:
    return figure(facts, os.path.join(out, "explain_algebra.png"))
