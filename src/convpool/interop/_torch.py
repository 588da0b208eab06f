"""Weight exchange with PyTorch: ``to_torch(model)`` and ``from_torch(module)``.

Both build the equivalent model layer by layer and copy every parameter and
buffer, so outputs agree to float precision.  PyTorch stays optional: it is
imported only here, when these functions are called.  MedianPool and MinPool
have no PyTorch layer and are refused with a TypeError naming the layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import nn


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ImportError("convpool.interop needs PyTorch: pip install torch") from exc
    return torch


_SIMPLE = ("ReLU", "Tanh", "Sigmoid", "Identity")

# layers without parameters whose constructor arguments are attributes of the same name
# on both sides: built from those attributes, in either direction
_BY_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "Unfold": ("kernel_size", "dilation", "padding", "stride"),
    "Fold": ("output_size", "kernel_size", "dilation", "padding", "stride"),
    "PixelShuffle": ("upscale_factor",),
    "PixelUnshuffle": ("downscale_factor",),
    "Upsample": ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor"),
    "UpsamplingNearest2d": ("size", "scale_factor"),
    "UpsamplingBilinear2d": ("size", "scale_factor"),
    **{f"MaxUnpool{d}d": ("kernel_size", "stride", "padding") for d in (1, 2, 3)},
    **{f"{kind}Pad{d}d": ("padding",) for d in (1, 2, 3) for kind in ("Zero", "Reflection", "Replication", "Circular")},
    **{f"ConstantPad{d}d": ("padding", "value") for d in (1, 2, 3)},
    **{f"FractionalMaxPool{d}d": ("kernel_size", "output_size", "output_ratio", "return_indices") for d in (2, 3)},
}


def _by_attributes(src: Any, target: Any) -> Any:
    """``target`` (a class) built from the same-named attributes of ``src``."""
    kwargs = {a: getattr(src, a) for a in _BY_ATTRIBUTES[type(src).__name__]}
    samples = getattr(src, "_random_samples", None)
    if samples is not None:  # a fractional pool's fixed samples: a buffer on both sides
        to_torch = isinstance(samples, np.ndarray)
        kwargs["_random_samples"] = _torch().from_numpy(samples.copy()) if to_torch else samples.detach().cpu().numpy()
    return target(**kwargs)


def _pad_arg(m: Any) -> Any:
    if isinstance(m.padding, str):
        return m.padding
    if any(lo != hi for lo, hi in m.padding):
        raise TypeError(f"{m!r}: PyTorch layers take symmetric padding only, got {m.padding}")
    return tuple(lo for lo, _ in m.padding)


def _conv_args(m: Any, padding: Any, transposed: bool) -> tuple:
    """The positional arguments of a convolution's (or transposed convolution's)
    constructor, the same in convpool and PyTorch, read off either library's layer."""
    head = (m.in_channels, m.out_channels, m.kernel_size, m.stride, padding)
    if transposed:
        return (*head, m.output_padding, m.groups, m.bias is not None, m.dilation, m.padding_mode)
    return (*head, m.dilation, m.groups, m.bias is not None, m.padding_mode)


def _layer_to_torch(m: nn.Module) -> Any:
    torch = _torch()
    tnn = torch.nn
    name = type(m).__name__
    if isinstance(m, nn.Sequential):
        return tnn.Sequential(*(_layer_to_torch(c) for c in m))
    if isinstance(m, nn.conv._ConvNd):
        return getattr(tnn, name)(*_conv_args(m, _pad_arg(m), False), dtype=_dtype(m.weight.dtype))
    if isinstance(m, nn.conv_transpose._ConvTransposeNd):
        return getattr(tnn, name)(*_conv_args(m, m.padding, True), dtype=_dtype(m.weight.dtype))
    if isinstance(m, nn.Linear):
        return tnn.Linear(m.in_features, m.out_features, m.bias is not None, dtype=_dtype(m.weight.dtype))
    if name in _SIMPLE:
        return getattr(tnn, name)()
    if name in _BY_ATTRIBUTES:
        return _by_attributes(m, getattr(tnn, name))
    if isinstance(m, nn.LeakyReLU):
        return tnn.LeakyReLU(m.negative_slope)
    if isinstance(m, nn.Flatten):
        return tnn.Flatten(m.start_dim, m.end_dim)
    if isinstance(m, nn.Dropout):
        return tnn.Dropout(m.p)
    if isinstance(m, nn.layers._BatchNorm):
        return getattr(tnn, name)(
            m.num_features, m.eps, m.momentum, m.weight is not None, dtype=_dtype(m.running_mean.dtype)
        )
    if isinstance(m, nn.pool._MaxPoolNd) and m.padding_mode is None:
        return getattr(tnn, name)(m.kernel_size, m.stride, _pad_arg(m), m.dilation, m.return_indices, m.ceil_mode)
    if isinstance(m, nn.pool._AvgPoolNd) and m.padding_mode is None:
        return getattr(tnn, name)(
            m.kernel_size,
            m.stride,
            _pad_arg(m),
            m.ceil_mode,
            m.count_include_pad,
            *(() if m.nd == 1 else (m.divisor_override,)),
        )
    if isinstance(m, nn.pool._LPPoolNd):
        return getattr(tnn, name)(m.norm_type, m.kernel_size[0] if m.nd == 1 else m.kernel_size, m.stride, m.ceil_mode)
    if isinstance(m, nn.pool._AdaptiveAvgPoolNd):
        return getattr(tnn, name)(m.output_size)
    if isinstance(m, nn.pool._AdaptiveMaxPoolNd):
        return getattr(tnn, name)(m.output_size, m.return_indices)
    raise TypeError(f"{name} has no PyTorch equivalent (layer {m!r})")


def _dtype(dt: np.dtype) -> Any:
    torch = _torch()
    return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}.get(np.dtype(dt), torch.float32)


def to_torch(model: nn.Module) -> Any:
    """The equivalent ``torch.nn`` module with the same weights and buffers."""
    torch = _torch()
    tm = _layer_to_torch(model)
    sd = {k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()}
    tm.load_state_dict(sd)
    tm.train(model.training)
    return tm


def _layer_from_torch(t: Any) -> nn.Module:
    torch = _torch()
    tnn = torch.nn
    name = type(t).__name__
    dtype = None
    for p in t.parameters(recurse=False):
        dtype = {torch.float64: np.float64}.get(p.dtype, np.float32)
    dtype = dtype or np.float32
    if isinstance(t, tnn.Sequential):
        return nn.Sequential(*(_layer_from_torch(c) for c in t))
    if isinstance(t, (tnn.Conv1d, tnn.Conv2d, tnn.Conv3d)):
        return getattr(nn, name)(*_conv_args(t, t.padding, False), dtype=dtype)
    if isinstance(t, (tnn.ConvTranspose1d, tnn.ConvTranspose2d, tnn.ConvTranspose3d)):
        return getattr(nn, name)(*_conv_args(t, t.padding, True), dtype=dtype)
    if isinstance(t, tnn.Linear):
        return nn.Linear(t.in_features, t.out_features, t.bias is not None, dtype=dtype)
    if name in _SIMPLE:
        return getattr(nn, name)()
    if name in _BY_ATTRIBUTES:
        return _by_attributes(t, getattr(nn, name))
    if isinstance(t, tnn.LeakyReLU):
        return nn.LeakyReLU(t.negative_slope)
    if isinstance(t, tnn.Flatten):
        return nn.Flatten(t.start_dim, t.end_dim)
    if isinstance(t, tnn.Dropout):
        return nn.Dropout(t.p)
    if isinstance(t, (tnn.BatchNorm1d, tnn.BatchNorm2d)):
        bn_dtype = {torch.float64: np.float64}.get(t.running_mean.dtype, np.float32)
        return getattr(nn, name)(t.num_features, t.eps, t.momentum, t.affine, dtype=bn_dtype)
    if isinstance(t, (tnn.MaxPool1d, tnn.MaxPool2d, tnn.MaxPool3d)):
        return getattr(nn, name)(t.kernel_size, t.stride, t.padding, t.dilation, t.return_indices, t.ceil_mode)
    if isinstance(t, (tnn.AvgPool1d, tnn.AvgPool2d, tnn.AvgPool3d)):
        return getattr(nn, name)(
            t.kernel_size,
            t.stride,
            t.padding,
            t.ceil_mode,
            t.count_include_pad,
            getattr(t, "divisor_override", None),
        )
    if isinstance(t, (tnn.LPPool1d, tnn.LPPool2d, tnn.LPPool3d)):
        return getattr(nn, name)(t.norm_type, t.kernel_size, t.stride, t.ceil_mode)
    if isinstance(t, (tnn.AdaptiveAvgPool1d, tnn.AdaptiveAvgPool2d, tnn.AdaptiveAvgPool3d)):
        return getattr(nn, name)(t.output_size)
    if isinstance(t, (tnn.AdaptiveMaxPool1d, tnn.AdaptiveMaxPool2d, tnn.AdaptiveMaxPool3d)):
        return getattr(nn, name)(t.output_size, t.return_indices)
    raise TypeError(f"{name} has no convpool equivalent (layer {t!r})")


def from_torch(module: Any) -> nn.Module:
    """The equivalent convpool module with the same weights and buffers."""
    m = _layer_from_torch(module)
    m.load_state_dict({k: v.detach().cpu().numpy() for k, v in module.state_dict().items()})
    m.train(module.training)
    return m
