"""The torch.nn / torch.nn.functional names convpool promises, with PyTorch's argument
names, order and defaults (where PyTorch's own signature can be read)."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as TF

import convpool.functional as F
from convpool import nn

FAMILY_LAYERS = [
    *(f"{base}{d}d" for d in (1, 2, 3) for base in ("Conv", "ConvTranspose", "MaxUnpool")),
    *(f"{base}{d}d" for d in (1, 2, 3) for base in ("ZeroPad", "ConstantPad", "ReflectionPad", "ReplicationPad")),
    *(f"CircularPad{d}d" for d in (1, 2, 3)),
    "Fold",
    "Unfold",
    "FractionalMaxPool2d",
    "FractionalMaxPool3d",
    "Upsample",
    "UpsamplingNearest2d",
    "UpsamplingBilinear2d",
    "PixelShuffle",
    "PixelUnshuffle",
]
FAMILY_FUNCTIONS = [
    *(f"conv_transpose{d}d" for d in (1, 2, 3)),
    *(f"max_unpool{d}d" for d in (1, 2, 3)),
    "fold",
    "unfold",
    "fractional_max_pool2d",
    "fractional_max_pool3d",
    "interpolate",
    "pixel_shuffle",
    "pixel_unshuffle",
]
SKIP = {"self", "device", "dtype", "args", "kwargs"}
_EMPTY = inspect.Parameter.empty
# C builtins with no readable signature: their arguments as PyTorch documents them
DOCUMENTED = {
    **{
        f"conv_transpose{d}d": [
            ("input", _EMPTY),
            ("weight", _EMPTY),
            ("bias", None),
            ("stride", 1),
            ("padding", 0),
            ("output_padding", 0),
            ("groups", 1),
            ("dilation", 1),
        ]
        for d in (1, 2, 3)
    },
    "pixel_shuffle": [("input", _EMPTY), ("upscale_factor", _EMPTY)],
    "pixel_unshuffle": [("input", _EMPTY), ("downscale_factor", _EMPTY)],
}


def _params(fn) -> list[tuple[str, object]]:  # type: ignore[no-untyped-def]
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values() if p.name not in SKIP]


@pytest.mark.parametrize("name", FAMILY_LAYERS)
def test_layer_has_torchs_constructor(name):
    ours, theirs = getattr(nn, name), getattr(torch.nn, name)
    assert name in nn.__all__
    expected = _params(theirs.__init__)
    assert _params(ours.__init__)[: len(expected)] == expected


@pytest.mark.parametrize("name", FAMILY_FUNCTIONS)
def test_function_has_torchs_signature(name):
    ours, theirs = getattr(F, name), getattr(TF, name)
    assert name in F.__all__
    try:
        expected = _params(theirs)
    except (ValueError, TypeError):
        expected = DOCUMENTED[name]
    assert _params(ours)[: len(expected)] == expected
