"""The ablation's model family: LeNet-5 with one thing changed, what each costs, and
the shifted test images of the robustness measurement.

Every variant keeps LeNet-5's two 5x5 convolutions (6 and 16 maps) and its
120-84-classes head, so a difference in accuracy is due to the one thing changed:
the downsampling layer (a fixed pool, a learned pool, a strided conv, none), or
the learned first conv (frozen hand-made filters), or the convs (an MLP on pixels).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import models, nn

# key -> (label, description); the keys are what ``--variants`` takes
VARIANTS: dict[str, tuple[str, str]] = {
    "max": ("conv + max pool", "LeNet-5: conv 5x5 - ReLU - 2x2 max pool, twice, then 120-84-10"),
    "avg": ("conv + avg pool", "the same with 2x2 average pooling (a conv with fixed weights 1/4)"),
    "median": ("conv + median pool", "the same with 2x2 median pooling"),
    "lp": ("conv + LP pool (p=2)", "the same with 2x2 power-average pooling, p = 2"),
    "maxplus": (
        "conv + max-plus conv (learned)",
        "pooling replaced by a depthwise 2x2 stride-2 max-plus convolution whose structuring element "
        "is learned (zero at the start: max pooling)",
    ),
    "gem": ("conv + GeM pool (learned p)", "2x2 generalised-mean pooling with a learned power p (3 at the start)"),
    "mixed": ("conv + mixed pool (learned alpha)", "alpha * max + (1 - alpha) * avg, alpha learned (0.5 at the start)"),
    "blur": ("conv + MaxBlurPool", "anti-aliased max pooling: 2x2 max at stride 1, then a [1 2 1] blur at stride 2"),
    "stochastic": ("conv + stochastic pool", "stochastic pooling: a random element of each window in training"),
    "strided": ("strided conv, no pool", "no pooling: both convs take stride 2 (same parameters as LeNet-5)"),
    "nodown": ("conv, no downsampling", "no pooling and no stride: full-size maps into the head"),
    "fixed": ("fixed filters + max pool", "the first conv frozen at 6 hand-made 3x3 filters (edges, Laplacian, box)"),
    "mlp": ("MLP (no conv, no pool)", "the pixels straight into LeNet-5's 120-84-10 head"),
}

# the downsampling choices of the training-set-size sweep
SWEEP_VARIANTS = ("max", "avg", "strided", "nodown")

# relative training cost per example (measured on 28x28 MNIST): orders the parallel tasks
COST = {"blur": 2.0, "nodown": 3.0, "mlp": 0.3, "strided": 0.5}

# hand-made first-layer filters of the "fixed" variant (3x3, centred in LeNet-5's 5x5 kernels)
FIXED_BANK = (
    np.array(
        [
            [[1, 0, -1], [2, 0, -2], [1, 0, -1]],  # vertical edge (Sobel x)
            [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],  # horizontal edge (Sobel y)
            [[2, 1, 0], [1, 0, -1], [0, -1, -2]],  # diagonal edge
            [[0, 1, 2], [-1, 0, 1], [-2, -1, 0]],  # the other diagonal
            [[0, 1, 0], [1, -4, 1], [0, 1, 0]],  # Laplacian (blobs, line ends)
            [[1, 1, 1], [1, 1, 1], [1, 1, 1]],  # box blur (ink)
        ],
        dtype=np.float32,
    )
    / 4.0
)


def label(key: str) -> str:
    return VARIANTS[key][0]


def check_variants(keys: tuple[str, ...], name: str = "variants") -> tuple[str, ...]:
    """``keys`` if every one names a variant; a ValueError naming the bad ones otherwise."""
    bad = [k for k in keys if k not in VARIANTS]
    if bad or not keys:
        raise ValueError(f"{name} must be a non-empty list of {list(VARIANTS)}, got {list(keys)}")
    return keys


def _head(features: nn.Sequential, in_channels: int, image_size: int, num_classes: int) -> nn.Sequential:
    """``features`` followed by LeNet-5's head, sized by one forward pass on zeros."""
    n = int(features(np.zeros((1, in_channels, image_size, image_size), dtype=np.float32)).size)
    layers = list(features) + [
        nn.Flatten(),
        nn.Linear(n, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, num_classes),
    ]
    return nn.Sequential(*layers)


def build(key: str, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Sequential:
    """The variant ``key`` of :data:`VARIANTS` for ``image_size`` x ``image_size`` images."""
    check_variants((key,), "variant")
    if key in models.POOLS:
        return models.lenet5(in_channels, num_classes, image_size, pool=key)
    c, k, s = in_channels, num_classes, image_size
    if key == "median":
        layers = list(models.lenet5(c, k, s, pool="max"))
        layers[2], layers[5] = nn.MedianPool2d(2), nn.MedianPool2d(2)
        return nn.Sequential(*layers)
    if key == "fixed":
        model = models.lenet5(c, k, s, pool="max")
        conv = model[0]
        assert isinstance(conv, nn.Conv2d) and conv.bias is not None
        w = np.zeros_like(conv.weight.data)
        w[:, :, 1:4, 1:4] = FIXED_BANK[:, None] / c
        conv.weight.data, conv.bias.data = w, np.zeros_like(conv.bias.data)
        conv.weight.requires_grad = conv.bias.requires_grad = False
        return model
    if key == "strided":
        feats = nn.Sequential(
            nn.Conv2d(c, 6, 5, stride=2, padding=2), nn.ReLU(), nn.Conv2d(6, 16, 5, stride=2), nn.ReLU()
        )
        return _head(feats, c, s, k)
    if key == "nodown":
        return _head(nn.Sequential(nn.Conv2d(c, 6, 5, padding=2), nn.ReLU(), nn.Conv2d(6, 16, 5), nn.ReLU()), c, s, k)
    # "mlp": LeNet-5's head on the pixels
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(c * s * s, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, k),
    )


def _first(v: Any) -> int:
    return int(np.atleast_1d(v)[0])


def _steps(m: nn.Module) -> list[tuple[int, int, int]]:
    """The (kernel, stride, dilation) sliding-window steps of a layer along one axis."""
    if isinstance(m, nn.MaxBlurPool2d):  # max at stride 1, then the blur at the stride
        return [(_first(m.kernel_size), 1, 1), (m.filt_size, m.stride, 1)]
    if hasattr(m, "kernel_size") and getattr(m, "kernel_size", None) is not None and hasattr(m, "stride"):
        return [(_first(m.kernel_size), _first(m.stride), _first(getattr(m, "dilation", 1)))]
    return []


def costs(model: nn.Sequential, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """Per example: trainable and frozen parameters, multiply-adds (conv and linear
    layers, and the blur of MaxBlurPool), window operations of the downsampling
    layers (elements read by a pool's windows; for max-plus, one add and one max
    each), activation memory (float32) and the receptive field (pixels, one side;
    None when the head sees the whole image)."""
    rows = models.summary_rows(model, input_shape)
    was = model.training
    model.eval()
    x = np.zeros((1, *input_shape), dtype=np.float32)
    window_ops = blur_macs = 0
    for (_, m), row in zip(model.named_children(), rows, strict=True):
        y = m(x)
        if isinstance(m, nn.MaxBlurPool2d):
            k = _first(m.kernel_size)
            window_ops += int(np.prod([x.shape[1], *(n - k + 1 for n in x.shape[2:])])) * k * k
            blur_macs += int(y.size) * m.filt_size**2
        elif not isinstance(m, (nn.Conv2d, nn.Linear)) and _steps(m):
            k = _steps(m)[0][0]
            fan_in = m.in_channels // m.groups if isinstance(m, nn.MaxPlusConv2d) else 1
            window_ops += int(y.size) * k * k * fan_in
        assert y.shape[1:] == row.output_shape
        x = y
    model.train(was)
    params = model.parameters()
    return {
        "params": int(sum(p.size for p in params if p.requires_grad)),
        "fixed_params": int(sum(p.size for p in params if not p.requires_grad)),
        "mult_adds": int(sum(r.mult_adds for r in rows)) + blur_macs,
        "window_ops": window_ops,
        "activation_bytes": int(sum(int(np.prod(r.output_shape)) for r in rows) * 4),
        "receptive_field": receptive_field(model),
    }


def receptive_field(model: nn.Sequential) -> int | None:
    """Pixels (one side) that one output of the layers before the head sees
    (``rf += (k - 1) * dilation * jump; jump *= stride``); None for a model without
    sliding-window layers (an MLP sees the whole image)."""
    rf, jump, seen = 1, 1, False
    for m in model:
        if isinstance(m, nn.Flatten):
            break
        for k, s, d in _steps(m):
            rf, jump, seen = rf + (k - 1) * d * jump, jump * s, True
    return rf if seen else None


def shift_images(x: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Image ``i`` moved down by ``dy[i]`` and right by ``dx[i]`` pixels (negative: up /
    left), zero-filled: what leaves the frame is lost."""
    n, c, h, w = x.shape
    d = int(max(np.abs(dy).max(initial=0), np.abs(dx).max(initial=0)))
    if d == 0:
        return x.copy()
    xp = np.pad(x, ((0, 0), (0, 0), (d, d), (d, d)))
    rows = (d - np.asarray(dy))[:, None] + np.arange(h)  # output row r reads input row r - dy
    cols = (d - np.asarray(dx))[:, None] + np.arange(w)
    return xp[
        np.arange(n)[:, None, None, None],
        np.arange(c)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


def random_shifts(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` offsets (dy, dx), each uniform in ``-d..d``."""
    rng = np.random.default_rng(seed)
    return rng.integers(-d, d + 1, n), rng.integers(-d, d + 1, n)


def shift_robustness(
    predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray, max_shift: int
) -> dict[str, list[float]]:
    """Accuracy and consistency under shifts of up to ``d = 0..max_shift`` pixels, as Zhang
    (ICML 2019) measures them: each test image is shifted twice, by two independent
    random offsets in ``-d..d`` per axis (zero fill); ``consistency[d]`` is the fraction
    of images whose predicted class is the same for both, ``accuracy[d]`` the accuracy
    over both.  The offsets depend on ``d`` only, so every model sees the same images."""
    acc, cons = [], []
    for d in range(max_shift + 1):
        if d == 0:
            p = predict(x)
            acc.append(float((p == y).mean()))
            cons.append(1.0)
            continue
        p1 = predict(shift_images(x, *random_shifts(len(x), d, seed=1000 + d)))
        p2 = predict(shift_images(x, *random_shifts(len(x), d, seed=2000 + d)))
        acc.append(float(((p1 == y).mean() + (p2 == y).mean()) / 2))
        cons.append(float((p1 == p2).mean()))
    return {"accuracy": acc, "consistency": cons}


def learned_values(model: nn.Sequential) -> dict[str, Any]:
    """The learned parameters of a learned pool: GeM's p, mixed pooling's alpha, the
    max-plus structuring elements, per layer (keyed by the layer's index)."""
    out: dict[str, Any] = {}
    for name, m in model.named_children():
        if isinstance(m, nn.GeMPool2d) and isinstance(m.p, nn.Parameter):
            out[name] = {"p": float(m.p.data[0])}
        elif isinstance(m, nn.MixedPool2d) and isinstance(m.alpha, nn.Parameter):
            out[name] = {"alpha": float(np.clip(m.alpha.data[0], 0.0, 1.0))}
        elif isinstance(m, nn.MaxPlusConv2d):
            w = m.weight.data
            out[name] = {"se": w[:, 0].tolist(), "se_min": float(w.min()), "se_max": float(w.max())}
    return out
