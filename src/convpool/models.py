"""A small model zoo and ``summary``: output shape, parameters, multiply-adds and
receptive field per layer."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import nn


def _spatial_after_pools(size: int, pools: int) -> int:
    for _ in range(pools):
        size //= 2
    return size


def lenet(in_channels: int = 1, num_classes: int = 10, image_size: int = 8, width: int = 32) -> nn.Sequential:
    """LeNet-style conv-pool-conv-pool-MLP (3x3 'same' convs, 2x2 max pools)."""
    s = _spatial_after_pools(image_size, 2)
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * s * s, 64),
        nn.ReLU(),
        nn.Linear(64, num_classes),
    )


def allconv(in_channels: int = 1, num_classes: int = 10, image_size: int = 8, width: int = 32) -> nn.Sequential:
    """All-convolutional variant: strided 3x3 convs downsample instead of pooling."""
    s = image_size
    for _ in range(2):  # two stride-2, padding-1, 3x3 convs
        s = (s + 2 - 3) // 2 + 1
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(2 * width * s * s, 64),
        nn.ReLU(),
        nn.Linear(64, num_classes),
    )


def mlp(in_channels: int = 1, num_classes: int = 10, image_size: int = 8, hidden: int = 128) -> nn.Sequential:
    """No convolution, no pooling: flatten the pixels, two hidden layers."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * image_size * image_size, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


# 2x2, stride-2 downsampling layers for ``lenet5(pool=...)``: name -> layer for ``channels``
POOLS: dict[str, Callable[[int], nn.Module]] = {
    "max": lambda c: nn.MaxPool2d(2),
    "avg": lambda c: nn.AvgPool2d(2),
    "lp": lambda c: nn.LPPool2d(2, 2),
    "maxplus": lambda c: nn.MaxPlusConv2d(c, c, 2, stride=2, groups=c),  # learned structuring element, 0 at start
    "gem": lambda c: nn.GeMPool2d(2),
    "mixed": lambda c: nn.MixedPool2d(2),
    "blur": lambda c: nn.MaxBlurPool2d(c),
    "stochastic": lambda c: nn.StochasticPool2d(2),
}


def lenet5(in_channels: int = 1, num_classes: int = 10, image_size: int = 28, pool: str = "max") -> nn.Sequential:
    """LeCun et al.'s LeNet-5 (1998) with today's ReLU: conv 5x5 (6 maps, padded by 2 so a
    28x28 digit is treated as the original 32x32) -> pool -> conv 5x5 (16 maps) -> pool ->
    120 -> 84 -> classes.  ``pool`` picks the 2x2 stride-2 downsampling layer: one of
    :data:`POOLS` ('max', 'avg', 'lp', 'maxplus', 'gem', 'mixed', 'blur', 'stochastic').
    61,706 parameters for 28x28 MNIST with max pooling."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {sorted(POOLS)}, got {pool!r}")
    s = (image_size // 2 - 4) // 2  # after pool, valid 5x5 conv, pool
    if s < 1:
        raise ValueError(f"lenet5 needs images of at least 12x12 (two 2x2 pools and a 5x5 conv), got {image_size}")
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2),
        nn.ReLU(),
        POOLS[pool](6),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        POOLS[pool](16),
        nn.Flatten(),
        nn.Linear(16 * s * s, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, num_classes),
    )


MODELS: dict[str, Callable[..., nn.Sequential]] = {"lenet": lenet, "lenet5": lenet5, "allconv": allconv, "mlp": mlp}


def build(name: str, in_channels: int, num_classes: int, image_size: int) -> nn.Sequential:
    if name not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {name!r}")
    return MODELS[name](in_channels=in_channels, num_classes=num_classes, image_size=image_size)


@dataclass
class LayerInfo:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    mult_adds: int
    receptive_field: int | None  # pixels (one side); None once flattened: the whole input; 0: not tracked


def _window(m: nn.Module) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None:
    """Kernel, stride and dilation of a sliding-window layer, else None."""
    if isinstance(m, (nn.conv._ConvNd, nn.pool._SelectPoolNd)):
        return m.kernel_size, m.stride, m.dilation
    if isinstance(m, (nn.pool._AvgPoolNd, nn.pool._LPPoolNd)):
        return m.kernel_size, m.stride, (1,) * len(m.kernel_size)
    return None


def summary_rows(model: nn.Sequential, input_shape: tuple[int, ...]) -> list[LayerInfo]:
    """Per top-level layer of a Sequential, for one input of ``input_shape`` (C, *spatial).

    Runs one forward pass on zeros to get exact shapes.  Multiply-adds count
    conv and linear layers (per example); pooling has none (it compares or adds).
    The receptive field follows ``rf += (k-1)*dilation*jump; jump *= stride`` through
    conv and pooling layers; a layer that resamples otherwise (transposed conv,
    upsampling, pixel shuffle, unpooling, fold...) ends the tracking (0: not tracked).
    """
    was_training = model.training
    model.eval()
    x = np.zeros((1, *input_shape), dtype=np.float32)
    rows = []
    rf: int | None = 1
    jump = 1
    for name, m in model.named_children():
        x_in, x = x, m(x)
        params = sum(p.size for p in m.parameters())
        macs = 0
        if isinstance(m, nn.conv._ConvNd):
            macs = int(np.prod(x.shape[1:])) * (m.in_channels // m.groups) * math.prod(m.kernel_size)
        elif isinstance(m, nn.conv_transpose._ConvTransposeNd):  # each input scatters into C_out/g * K outputs
            macs = int(np.prod(x_in.shape[1:])) * (m.out_channels // m.groups) * math.prod(m.kernel_size)
        elif isinstance(m, nn.Linear):
            macs = m.in_features * m.out_features
        win = _window(m)
        if win is not None and rf:
            k, s, d = win
            rf += (k[0] - 1) * d[0] * jump
            jump *= s[0]
        elif win is None and rf and x.ndim > 2 and x.shape[2:] != x_in.shape[2:]:
            rf = 0  # resampled by a layer the formula does not cover
        if isinstance(m, nn.Flatten):
            rf = None
        rows.append(LayerInfo(name, type(m).__name__, tuple(x.shape[1:]), params, macs, rf))
    model.train(was_training)
    return rows


def summary(model: nn.Sequential, input_shape: tuple[int, ...]) -> str:
    """A Keras-style table (plus the receptive field) as text."""
    rows = summary_rows(model, input_shape)
    lines = [f"{'layer':<6}{'type':<16}{'output shape':<18}{'params':>10}{'mult-adds':>12}{'recept. field':>15}"]
    lines.append("-" * len(lines[0]))
    for r in rows:
        rf = {None: "whole input", 0: "n/a"}.get(r.receptive_field, f"{r.receptive_field}x{r.receptive_field}")
        lines.append(
            f"{r.name:<6}{r.kind:<16}{'x'.join(map(str, r.output_shape)):<18}{r.params:>10,}{r.mult_adds:>12,}{rf:>15}"
        )
    lines.append("-" * len(lines[0]))
    total_p = sum(r.params for r in rows)
    total_m = sum(r.mult_adds for r in rows)
    lines.append(f"total: {total_p:,} parameters, {total_m:,} multiply-adds per example")
    return "\n".join(lines)
