"""The cases of ``convpool bench``: convolution and pooling, forward and backward, each
built from random float32 data with the same call in convpool and in PyTorch.

A case is listed as a :class:`Spec` (name, group, builder) so that ``--only`` picks
cases by name without building the others.  The groups are those of the report's
target table (:mod:`.bench_report`); the training steps and the batch-1 forward are in
:mod:`.bench_steps`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import config
from .. import functional as F


@dataclass
class Case:
    """What one case times.  ``ours_*`` is convpool as a user calls it, ``torch_*`` the
    same op in PyTorch (for the max-plus case: convpool's own conv2d), ``im2col_*``
    convpool with the convolution held to its im2col + BLAS implementation (conv cases
    only: the path check).  A training step or a batch-1 forward is timed as ``*_fwd``
    with no backward."""

    name: str
    group: str  # "conv", "pool", "lenet_step", "cifar_step", "lenet_b1" or "maxplus" (see bench_report.GROUPS)
    ours_fwd: Callable[[], Any]
    ours_bwd: Callable[[], Any] | None
    torch_fwd: Callable[[], Any] | None
    torch_bwd: Callable[[], Any] | None
    im2col_fwd: Callable[[], Any] | None = None
    im2col_bwd: Callable[[], Any] | None = None
    flops: float = 0.0  # forward multiply-adds * 2 (conv)
    bytes: float = 0.0  # forward bytes read + written (pool)
    impl: str | None = None  # the implementation convpool chose (its row in config.describe())


@dataclass(frozen=True)
class Spec:
    """A case before it is built: its name and group, and the function that builds it."""

    name: str
    group: str
    build: Callable[[], Case]


def impl_name(ctx: Any) -> str | None:
    """The name of the implementation that made ``ctx`` (None where it has none)."""
    try:
        return str(ctx.name)
    except (AttributeError, KeyError, ValueError, LookupError):
        return None


def im2col_only() -> AbstractContextManager[None] | None:
    """A context in which convolutions run convpool's im2col + BLAS implementation
    (``convpool.config.use``), or None on the numpy backend (nothing to compare with)."""
    if config.get_backend() != "compiled":
        return None
    return config.use("conv", "im2col")


def _with_im2col(
    case: Case, forward: Callable[[], tuple[Any, Any]], backward: Callable[[Any, Any], Any], dy: np.ndarray
) -> Case:
    """``case`` with its ``im2col_*`` timings: ``forward()`` and ``backward(dy, ctx)``
    run with the convolution held to im2col + BLAS (skipped on the numpy backend)."""
    held = im2col_only()
    if held is None:
        return case
    with held:
        _, ctx = forward()

    def fwd() -> Any:
        with config.use("conv", "im2col"):
            return forward()

    def bwd() -> Any:
        with config.use("conv", "im2col"):
            return backward(dy, ctx)

    case.im2col_fwd, case.im2col_bwd = fwd, bwd
    return case


def _conv_case(
    name: str, nd: int, x_shape: tuple, w_shape: tuple, stride: int = 1, padding: int = 0, groups: int = 1
) -> Case:
    import torch

    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32) * 0.1
    b = rng.standard_normal(w_shape[0], dtype=np.float32)
    y, ctx = F.conv_forward(x, w, b, stride, padding, 1, groups, nd=nd)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    tfn = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}[nd]
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = tfn(xt, wt, bt, stride, padding, 1, groups)
    dyt = torch.tensor(dy)
    macs = y.size * (w_shape[1] * math.prod(w_shape[2:]))
    case = Case(
        name,
        "conv",
        lambda: F.conv_forward(x, w, b, stride, padding, 1, groups, nd=nd),
        lambda: F.conv_backward(dy, ctx),
        lambda: tfn(xt, wt, bt, stride, padding, 1, groups),
        lambda: torch.autograd.grad(yt, (xt, wt, bt), dyt, retain_graph=True),
        flops=2.0 * macs,
        impl=impl_name(ctx),
    )
    return _with_im2col(case, lambda: F.conv_forward(x, w, b, stride, padding, 1, groups, nd=nd), F.conv_backward, dy)


def _conv_transpose_case(name: str, x_shape: tuple, w_shape: tuple, stride: int = 1, padding: int = 0) -> Case:
    """2-d transposed convolution (decoder upsampling), float32; weight (C_in, C_out, *kernel)."""
    import torch

    from ..functional import conv_transpose as CT

    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32) * 0.1
    b = rng.standard_normal(w_shape[1], dtype=np.float32)
    y, ctx = CT.conv_transpose_forward(x, w, b, stride, padding)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    tfn = torch.nn.functional.conv_transpose2d
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = tfn(xt, wt, bt, stride, padding)
    dyt = torch.tensor(dy)
    case = Case(
        name,
        "conv",
        lambda: CT.conv_transpose_forward(x, w, b, stride, padding),
        lambda: CT.conv_transpose_backward(dy, ctx),
        lambda: tfn(xt, wt, bt, stride, padding),
        lambda: torch.autograd.grad(yt, (xt, wt, bt), dyt, retain_graph=True),
        flops=2.0 * x.size * math.prod(w_shape[1:]),  # every input element times a (C_out, *kernel) slice
        impl=impl_name(ctx),
    )
    return _with_im2col(
        case, lambda: CT.conv_transpose_forward(x, w, b, stride, padding), CT.conv_transpose_backward, dy
    )


def _median_torch(k: int, s: int, p: int) -> Callable[[Any], Any]:
    """PyTorch has no median pool: replicate-pad, unfold and median is its idiom."""
    import torch

    tf = torch.nn.functional

    def median(t: Any) -> Any:
        tp = tf.pad(t, (p, p, p, p), mode="replicate")
        return (
            tp.unfold(2, k, s)
            .unfold(3, k, s)
            .reshape(*tp.shape[:2], -1, k * k)
            .median(-1)
            .values.reshape(t.shape[0], t.shape[1], (t.shape[2] + 2 * p - k) // s + 1, -1)
        )

    return median


def _pool_case(name: str, op: str, x_shape: tuple, **kw: Any) -> Case:
    import torch

    tf = torch.nn.functional
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape, dtype=np.float32)
    nd = len(x_shape) - 2
    fwd: Callable[[], Any]
    tfwd: Callable[[Any], Any]
    bwd_of: Callable[..., Any] = F.reduce_window_backward
    if op == "max":
        fwd = lambda: F.reduce_window_forward(x, "max", nd, **kw)  # noqa: E731
        tmax = {1: tf.max_pool1d, 2: tf.max_pool2d}[nd]
        tfwd = lambda t: tmax(t, **kw)  # noqa: E731
    elif op == "avg":
        fwd = lambda: F.avg_pool_forward(x, nd, **kw)  # noqa: E731
        tavg = {1: tf.avg_pool1d, 2: tf.avg_pool2d}[nd]
        tfwd = lambda t: tavg(t, **kw)  # noqa: E731
    elif op == "adaptive_avg":
        fwd = lambda: F.adaptive_avg_pool_forward(x, nd, kw["output_size"])  # noqa: E731
        tfwd = lambda t: tf.adaptive_avg_pool2d(t, kw["output_size"])  # noqa: E731
        bwd_of = F.adaptive_avg_pool_backward
    elif op == "median":
        tfwd = _median_torch(kw["kernel_size"], kw["stride"], kw["padding"])
        kw = {**kw, "padding_mode": "replicate"}
        fwd = lambda: F.reduce_window_forward(x, "median", nd, **kw)  # noqa: E731
    else:
        raise ValueError(f"op must be max, avg, adaptive_avg or median, got {op!r}")
    first: Any = fwd()
    y, ctx_any = first[0], first[-1]
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    xt = torch.tensor(x, requires_grad=True)
    yt = tfwd(xt)
    dyt = torch.tensor(dy)
    return Case(
        name,
        "pool",
        fwd,
        lambda: bwd_of(dy, ctx_any),
        lambda: tfwd(xt),
        lambda: torch.autograd.grad(yt, (xt,), dyt, retain_graph=True),
        bytes=4.0 * (x.size + y.size),
        impl=impl_name(ctx_any),
    )


def _maxplus_case(name: str, x_shape: tuple, w_shape: tuple, padding: int = 1) -> Case:
    """Max-plus convolution, float32.  PyTorch has none: the baseline ("torch" columns)
    is convpool's own conv2d on the same shapes, so the ratio reads "max-plus / conv";
    its group "maxplus" keeps it out of the geometric means against PyTorch."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32) * 0.1
    y, ctx = F.maxplus_conv_forward(x, w, None, 1, padding)
    _, conv_ctx = F.conv_forward(x, w, None, 1, padding)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    return Case(
        name,
        "maxplus",
        lambda: F.maxplus_conv_forward(x, w, None, 1, padding),
        lambda: F.maxplus_conv_backward(dy, ctx),
        lambda: F.conv_forward(x, w, None, 1, padding),
        lambda: F.conv_backward(dy, conv_ctx),
        flops=2.0 * y.size * math.prod(w_shape[1:]),  # an add and a max per (output, entry)
        impl=impl_name(ctx),
    )


def _conv(name: str, *args: Any) -> Spec:
    return Spec(name, "conv", lambda: _conv_case(name, *args))


def _convt(name: str, *args: Any) -> Spec:
    return Spec(name, "conv", lambda: _conv_transpose_case(name, *args))


def _pool(name: str, *args: Any, **kw: Any) -> Spec:
    return Spec(name, "pool", lambda: _pool_case(name, *args, **kw))


def suite(quick: bool = False) -> list[Spec]:
    """Every case, in report order; ``quick``: batches 4x smaller (tests, smoke runs)."""
    from . import bench_steps

    n = 4 if quick else 1
    mp = "maxplus 64->64 k3 28x28 (vs convpool conv2d)"
    return [
        _conv("conv2d LeNet 64x1x28x28 1->6 k5", 2, (64 // n, 1, 28, 28), (6, 1, 5, 5)),
        _conv("conv2d CIFAR 128x3x32x32 3->32 k3 p1", 2, (128 // n, 3, 32, 32), (32, 3, 3, 3), 1, 1),
        _conv("conv2d 32x32x28x28 32->64 k3 p1", 2, (32 // n, 32, 28, 28), (64, 32, 3, 3), 1, 1),
        _conv("conv2d 32x64x28x28 64->64 k3 p1", 2, (32 // n, 64, 28, 28), (64, 64, 3, 3), 1, 1),
        _conv("conv2d ResNet 32x64x56x56 k3 p1", 2, (32 // n, 64, 56, 56), (64, 64, 3, 3), 1, 1),
        _conv("conv2d strided 64->128 k3 s2 p1", 2, (32 // n, 64, 56, 56), (128, 64, 3, 3), 2, 1),
        _conv("conv2d depthwise 128ch k3 p1", 2, (32 // n, 128, 56, 56), (128, 1, 3, 3), 1, 1, 128),
        _conv("conv2d 1x1 256->64 28x28", 2, (32 // n, 256, 28, 28), (64, 256, 1, 1)),
        _conv("conv2d 1x1 128->32 14x14", 2, (32 // n, 128, 14, 14), (32, 128, 1, 1)),
        _conv("conv1d 512x32x40 32->64 k5 p2", 1, (512 // n, 32, 40), (64, 32, 5), 1, 2),
        _conv("conv1d 256x16x64 16->32 k5 p2", 1, (256 // n, 16, 64), (32, 16, 5), 1, 2),
        _conv("conv3d 8x4x16^3 4->8 k3 p1", 3, (8 // n, 4, 16, 16, 16), (8, 4, 3, 3, 3), 1, 1),
        _convt("conv_transpose2d 64->32 k4 s2 p1 28x28", (32 // n, 64, 28, 28), (64, 32, 4, 4), 2, 1),
        _convt("conv_transpose2d 64->32 k3 s1 p1 28x28", (32 // n, 64, 28, 28), (64, 32, 3, 3), 1, 1),
        _pool("max_pool2d 2x2 s2 64x64x56x56", "max", (64 // n, 64, 56, 56), kernel_size=2, stride=2),
        _pool("max_pool2d 3x3 s2 p1 32x64x112x112", "max", (32 // n, 64, 112, 112), kernel_size=3, stride=2, padding=1),
        _pool("avg_pool2d 2x2 s2 64x64x56x56", "avg", (64 // n, 64, 56, 56), kernel_size=2, stride=2),
        _pool("avg_pool2d 3x3 s1 p1 32x64x56x56", "avg", (32 // n, 64, 56, 56), kernel_size=3, stride=1, padding=1),
        _pool("adaptive_avg 64x512x7x7 -> 1", "adaptive_avg", (64 // n, 512, 7, 7), output_size=1),
        _pool("max_pool1d k2 s2 256x64x256", "max", (256 // n, 64, 256), kernel_size=2, stride=2),
        _pool("max_pool1d k3 s2 p1 256x64x256", "max", (256 // n, 64, 256), kernel_size=3, stride=2, padding=1),
        _pool("avg_pool1d k2 s2 256x64x256", "avg", (256 // n, 64, 256), kernel_size=2, stride=2),
        _pool(
            "median_pool2d 3x3 s1 p1 16x32x56x56", "median", (16 // n, 32, 56, 56), kernel_size=3, stride=1, padding=1
        ),
        Spec(mp, "maxplus", lambda: _maxplus_case(mp, (32 // n, 64, 28, 28), (64, 64, 3, 3))),
        *bench_steps.specs(quick),
    ]
