"""A layer's constructor arguments as JSON (``config_of``) and the layer back from them
(``build_layer``): how :func:`~._onnx.to_onnx` records each layer in the ONNX model's
metadata and :func:`~._onnx_import.from_onnx` rebuilds the composed ones.

Only classes defined in ``convpool.nn`` are ever built, looked up by name.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

import numpy as np

from ..nn.module import Module, Parameter


def plain(v: Any) -> Any:
    """``v`` as JSON: tuples to lists, NumPy scalars to Python numbers."""
    if isinstance(v, (tuple, list)):
        return [plain(e) for e in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _tuples(v: Any) -> Any:
    """JSON's lists back as tuples (what the layers hold)."""
    return tuple(_tuples(e) for e in v) if isinstance(v, list) else v


def _value(v: Any, unit: bool = False) -> float:
    """A fixed scalar, or a learned one's value (a Parameter of shape (1,)) made valid
    for the constructor (the state_dict then sets it): a learned alpha may stray outside
    [0, 1] (it is clipped when used), a learned p or beta below 0 (the layer refuses to
    run then)."""
    if not isinstance(v, Parameter):
        return float(v)
    value = float(v.data.reshape(-1)[0])
    if unit:
        return min(max(value, 0.0), 1.0)
    return value if value > 0 else 1.0


def _window(m: Any) -> dict[str, Any]:
    return {"kernel_size": m.kernel_size, "stride": m.stride, "padding": m.padding}


_CONFIG: dict[str, Callable[[Any], dict[str, Any]]] = {
    "_ConvNd": lambda m: {
        "in_channels": m.in_channels,
        "out_channels": m.out_channels,
        "kernel_size": m.kernel_size,
        "stride": m.stride,
        "padding": m.padding,
        "dilation": m.dilation,
        "groups": m.groups,
        "bias": m.bias is not None,
        "padding_mode": m.padding_mode,
    },
    "_ConvTransposeNd": lambda m: {
        "in_channels": m.in_channels,
        "out_channels": m.out_channels,
        "kernel_size": m.kernel_size,
        "stride": m.stride,
        "padding": m.padding,
        "output_padding": m.output_padding,
        "groups": m.groups,
        "bias": m.bias is not None,
        "dilation": m.dilation,
    },
    "_SelectPoolNd": lambda m: {
        **_window(m),
        "dilation": m.dilation,
        "ceil_mode": m.ceil_mode,
        "padding_mode": m.padding_mode,
    },
    "_AvgPoolNd": lambda m: {
        **_window(m),
        "ceil_mode": m.ceil_mode,
        "count_include_pad": m.count_include_pad,
        "divisor_override": m.divisor_override,
        "padding_mode": m.padding_mode,
    },
    "_LPPoolNd": lambda m: {
        "norm_type": m.norm_type,
        "kernel_size": m.kernel_size,
        "stride": m.stride,
        "ceil_mode": m.ceil_mode,
    },
    "_AdaptiveAvgPoolNd": lambda m: {"output_size": m.output_size},
    "_AdaptiveMaxPoolNd": lambda m: {"output_size": m.output_size},
    "Linear": lambda m: {"in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None},
    "LeakyReLU": lambda m: {"negative_slope": m.negative_slope},
    "ReLU": lambda m: {},
    "Tanh": lambda m: {},
    "Sigmoid": lambda m: {},
    "Identity": lambda m: {},
    "Flatten": lambda m: {"start_dim": m.start_dim, "end_dim": m.end_dim},
    "Dropout": lambda m: {"p": m.p},
    "_BatchNorm": lambda m: {
        "num_features": m.num_features,
        "eps": m.eps,
        "momentum": m.momentum,
        "affine": m.weight is not None,
    },
    "_ConstantPadNd": lambda m: {"padding": m.padding, "value": m.value},
    "_ZeroPadNd": lambda m: {"padding": m.padding},
    "_PadNd": lambda m: {"padding": m.padding},
    "UpsamplingNearest2d": lambda m: {"size": m.size, "scale_factor": m.scale_factor},
    "UpsamplingBilinear2d": lambda m: {"size": m.size, "scale_factor": m.scale_factor},
    "Upsample": lambda m: {
        "size": m.size,
        "scale_factor": m.scale_factor,
        "mode": m.mode,
        "align_corners": m.align_corners,
        "recompute_scale_factor": m.recompute_scale_factor,
    },
    "PixelShuffle": lambda m: {"upscale_factor": m.upscale_factor},
    "PixelUnshuffle": lambda m: {"downscale_factor": m.downscale_factor},
    "Unfold": lambda m: {
        "kernel_size": m.kernel_size,
        "dilation": m.dilation,
        "padding": m.padding,
        "stride": m.stride,
    },
    "Fold": lambda m: {
        "output_size": m.output_size,
        "kernel_size": m.kernel_size,
        "dilation": m.dilation,
        "padding": m.padding,
        "stride": m.stride,
    },
    "_MaxPlusConvNd": lambda m: {
        "in_channels": m.in_channels,
        "out_channels": m.out_channels,
        "kernel_size": m.kernel_size,
        "stride": m.stride,
        "padding": m.padding,
        "dilation": m.dilation,
        "groups": m.groups,
        "bias": m.bias is not None,
        "padding_mode": m.padding_mode,
    },
    "_GeMPoolNd": lambda m: {
        **(_window(m) if m.kernel_size is not None else {}),
        "p": _value(m.p),
        "learn_p": m.learn_p,
        "eps": m.eps,
    },
    "_LSEPoolNd": lambda m: {**_window(m), "beta": _value(m.beta), "learn_beta": m.learn_beta},
    "_MixedPoolNd": lambda m: {**_window(m), "alpha": _value(m.alpha, unit=True), "learn_alpha": m.learn_alpha},
    "_GatedPoolNd": lambda m: {"in_channels": m.in_channels, **_window(m)},
    "_WindowPoolNd": lambda m: {"kernel_size": m.kernel_size, "stride": m.stride},
    "_BlurPoolNd": lambda m: {
        "channels": m.channels,
        "filt_size": m.filt_size,
        "stride": m.stride,
        "pad_mode": m.pad_mode,
    },
    "_MaxBlurPoolNd": lambda m: {
        "channels": m.channels,
        "kernel_size": m.kernel_size,
        "stride": m.stride,
        "filt_size": m.filt_size,
        "pad_mode": m.pad_mode,
    },
    "_SpatialPyramidPoolNd": lambda m: {"levels": m.levels, "mode": m.mode},
}


def config_of(m: Module) -> dict[str, Any] | None:
    """The constructor arguments that rebuild ``m`` (its parameters aside), or None."""
    for cls in type(m).__mro__:
        if cls.__name__ in _CONFIG and cls.__module__.startswith("convpool.nn"):
            return {k: plain(v) for k, v in _CONFIG[cls.__name__](m).items()}
    return None


@functools.cache
def _nn_classes() -> dict[str, type]:
    """Every public layer class defined in a ``convpool.nn`` module, by name."""
    from .. import nn

    found: dict[str, type] = {}
    for info in pkgutil.iter_modules(nn.__path__):
        module = importlib.import_module(f"{nn.__name__}.{info.name}")
        for name, obj in vars(module).items():
            if (
                isinstance(obj, type)
                and issubclass(obj, Module)
                and not name.startswith("_")
                and obj.__module__.startswith("convpool.nn")
            ):
                found[name] = obj
    return found


def build_layer(type_name: str, config: Any, where: str) -> Module:
    """The convpool layer ``type_name`` built from ``config``; ValueError naming ``where``."""
    classes = _nn_classes()
    if not isinstance(type_name, str) or type_name not in classes:
        raise ValueError(f"{where}: {type_name!r} is not a convpool layer")
    if not isinstance(config, dict):
        raise ValueError(f"{where}: the constructor arguments of {type_name} are {config!r}, not a record")
    try:
        return classes[type_name](**{k: _tuples(v) for k, v in config.items()})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {type_name}(**{config}) fails: {exc}") from exc
