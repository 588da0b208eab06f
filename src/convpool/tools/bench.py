"""``convpool bench``: convpool against PyTorch, timed in one process.

For each case: forward (training mode) and backward (input and weight
gradients), median of repeats after warm-up, both libraries at the same
thread count.  Prints times, the ratio convpool/torch, achieved GFLOP/s (conv)
or GB/s (pooling) and the share of the machine's measured matmul peak or copy
bandwidth; writes JSON.  These machines are shared: quote ratios, not times.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import functional as F


@dataclass
class Case:
    name: str
    kind: str  # "conv" or "pool" against PyTorch; "maxplus" against convpool's conv2d
    ours_fwd: Callable[[], Any]
    ours_bwd: Callable[[], Any] | None
    torch_fwd: Callable[[], Any] | None
    torch_bwd: Callable[[], Any] | None
    flops: float = 0.0  # forward multiply-adds * 2 (conv)
    bytes: float = 0.0  # forward bytes read + written (pool)


def _timeit(fn: Callable[[], Any], min_repeats: int = 5, budget: float = 1.0) -> float:
    fn()  # warm-up (and numba compilation)
    fn()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < min_repeats or (time.perf_counter() - start < budget and len(samples) < 200):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


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
    return Case(
        name,
        "conv",
        lambda: F.conv_forward(x, w, b, stride, padding, 1, groups, nd=nd),
        lambda: F.conv_backward(dy, ctx),
        lambda: tfn(xt, wt, bt, stride, padding, 1, groups),
        lambda: torch.autograd.grad(yt, (xt, wt, bt), dyt, retain_graph=True),
        flops=2.0 * macs,
    )


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
    return Case(
        name,
        "conv",
        lambda: CT.conv_transpose_forward(x, w, b, stride, padding),
        lambda: CT.conv_transpose_backward(dy, ctx),
        lambda: tfn(xt, wt, bt, stride, padding),
        lambda: torch.autograd.grad(yt, (xt, wt, bt), dyt, retain_graph=True),
        flops=2.0 * x.size * math.prod(w_shape[1:]),  # every input element times a (C_out, *kernel) slice
    )


def _pool_case(name: str, op: str, x_shape: tuple, **kw: Any) -> Case:
    import torch

    tf = torch.nn.functional
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape, dtype=np.float32)
    nd = len(x_shape) - 2
    fwd: Callable[[], Any]
    bwd_of: Callable[..., Any]
    if op == "max":
        fwd = lambda: F.reduce_window_forward(x, "max", nd, **kw)  # noqa: E731
        tmax = {1: tf.max_pool1d, 2: tf.max_pool2d}[nd]
        tfwd = lambda t: tmax(t, **kw)  # noqa: E731
        bwd_of = F.reduce_window_backward
    elif op == "avg":
        fwd = lambda: F.avg_pool_forward(x, nd, **kw)  # noqa: E731
        tfwd = lambda t: tf.avg_pool2d(t, **kw)  # noqa: E731
        bwd_of = F.reduce_window_backward
    elif op == "adaptive_avg":
        fwd = lambda: F.adaptive_avg_pool_forward(x, nd, kw["output_size"])  # noqa: E731
        tfwd = lambda t: tf.adaptive_avg_pool2d(t, kw["output_size"])  # noqa: E731
        bwd_of = F.adaptive_avg_pool_backward
    elif op == "median":
        k, s, p = kw["kernel_size"], kw["stride"], kw["padding"]

        def tfwd(t: Any) -> Any:  # PyTorch has no median pool: unfold + median is its idiom
            tp = tf.pad(t, (p, p, p, p), mode="replicate")
            return (
                tp.unfold(2, k, s)
                .unfold(3, k, s)
                .reshape(*tp.shape[:2], -1, k * k)
                .median(-1)
                .values.reshape(t.shape[0], t.shape[1], (t.shape[2] + 2 * p - k) // s + 1, -1)
            )

        kw = {**kw, "padding_mode": "replicate"}
        fwd = lambda: F.reduce_window_forward(x, "median", nd, **kw)  # noqa: E731
        bwd_of = F.reduce_window_backward
    else:
        raise ValueError(op)
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
    )


def _maxplus_case(name: str, x_shape: tuple, w_shape: tuple, padding: int = 1) -> Case:
    """Max-plus convolution, float32.  PyTorch has none: the baseline ("torch" columns)
    is convpool's own conv2d on the same shapes, so the ratio reads "max-plus / conv";
    kind "maxplus" keeps it out of the geometric means against PyTorch."""
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
    )


def suite(quick: bool = False) -> list[Callable[[], Case]]:
    n = 4 if quick else 1  # quick: smaller batches for tests and smoke runs
    return [
        lambda: _conv_case("conv2d LeNet 64x1x28x28 1->6 k5", 2, (64 // n, 1, 28, 28), (6, 1, 5, 5)),
        lambda: _conv_case("conv2d CIFAR 128x3x32x32 3->32 k3 p1", 2, (128 // n, 3, 32, 32), (32, 3, 3, 3), 1, 1),
        lambda: _conv_case("conv2d ResNet 32x64x56x56 k3 p1", 2, (32 // n, 64, 56, 56), (64, 64, 3, 3), 1, 1),
        lambda: _conv_case("conv2d strided 64->128 k3 s2 p1", 2, (32 // n, 64, 56, 56), (128, 64, 3, 3), 2, 1),
        lambda: _conv_case("conv2d depthwise 128ch k3 p1", 2, (32 // n, 128, 56, 56), (128, 1, 3, 3), 1, 1, 128),
        lambda: _conv_case("conv2d 1x1 256->64 28x28", 2, (32 // n, 256, 28, 28), (64, 256, 1, 1)),
        lambda: _conv_case("conv1d 512x32x40 32->64 k5 p2", 1, (512 // n, 32, 40), (64, 32, 5), 1, 2),
        lambda: _conv_case("conv3d 8x4x16^3 4->8 k3 p1", 3, (8 // n, 4, 16, 16, 16), (8, 4, 3, 3, 3), 1, 1),
        lambda: _conv_transpose_case(
            "conv_transpose2d 64->32 k4 s2 p1 28x28", (32 // n, 64, 28, 28), (64, 32, 4, 4), 2, 1
        ),
        lambda: _conv_transpose_case(
            "conv_transpose2d 64->32 k3 s1 p1 28x28", (32 // n, 64, 28, 28), (64, 32, 3, 3), 1, 1
        ),
        lambda: _pool_case("max_pool2d 2x2 s2 64x64x56x56", "max", (64 // n, 64, 56, 56), kernel_size=2, stride=2),
        lambda: _pool_case(
            "max_pool2d 3x3 s2 p1 32x64x112x112", "max", (32 // n, 64, 112, 112), kernel_size=3, stride=2, padding=1
        ),
        lambda: _pool_case("avg_pool2d 2x2 s2 64x64x56x56", "avg", (64 // n, 64, 56, 56), kernel_size=2, stride=2),
        lambda: _pool_case(
            "avg_pool2d 3x3 s1 p1 32x64x56x56", "avg", (32 // n, 64, 56, 56), kernel_size=3, stride=1, padding=1
        ),
        lambda: _pool_case("adaptive_avg 64x512x7x7 -> 1", "adaptive_avg", (64 // n, 512, 7, 7), output_size=1),
        lambda: _pool_case("max_pool1d k2 s2 256x64x256", "max", (256 // n, 64, 256), kernel_size=2, stride=2),
        lambda: _pool_case(
            "median_pool2d 3x3 s1 p1 16x32x56x56", "median", (16 // n, 32, 56, 56), kernel_size=3, stride=1, padding=1
        ),
        lambda: _maxplus_case(
            "maxplus conv 64->64 k3 28x28 (vs convpool conv2d)", (32 // n, 64, 28, 28), (64, 64, 3, 3)
        ),
    ]


def lenet_step(batch: int = 64) -> tuple[float, float]:
    """One training step (forward, loss, backward, AdamW) of the LeNet-style model on 28x28 inputs."""
    import torch

    from .. import _random, interop, models, nn, optim

    _random.manual_seed(0)
    model = models.lenet(1, 10, 28)
    tmodel = interop.to_torch(model)
    rng = np.random.default_rng(0)
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    opt, crit = optim.AdamW(model.parameters(), lr=1e-3), nn.CrossEntropyLoss()
    topt, tcrit = torch.optim.AdamW(tmodel.parameters(), lr=1e-3), torch.nn.CrossEntropyLoss()
    xt, yt = torch.tensor(x), torch.tensor(y)

    def ours() -> None:
        opt.zero_grad()
        crit(model(x), y)
        model.backward_params(crit.backward())  # like PyTorch: no gradient for the data
        opt.step()

    def theirs() -> None:
        topt.zero_grad()
        tcrit(tmodel(xt), yt).backward()
        topt.step()

    return _timeit(ours), _timeit(theirs)


def machine_limits() -> dict[str, float]:
    """Measured float32 matmul peak (NumPy's BLAS) and copy bandwidth."""
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    t = _timeit(lambda: a @ a, budget=0.5)
    big = np.ones(64 * 2**20 // 4, dtype=np.float32)
    out = np.empty_like(big)
    c = _timeit(lambda: np.copyto(out, big), budget=0.5)
    return {"matmul_gflops": 2 * 2048**3 / t / 1e9, "copy_gbs": 2 * big.nbytes / c / 1e9}


def peak_memory(lib: str) -> float:
    """Peak extra memory (MiB) of the ResNet-block conv forward+backward, in a fresh process."""
    code = f"""
import numpy as np
lib = {lib!r}
rng = np.random.default_rng(0)
x = rng.standard_normal((32, 64, 56, 56), dtype=np.float32)
w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
dy = rng.standard_normal((32, 64, 56, 56), dtype=np.float32)
if lib == "torch":
    import torch
    xt, wt, dyt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True), torch.tensor(dy)
    run = lambda: torch.autograd.grad(torch.nn.functional.conv2d(xt, wt, None, 1, 1), (xt, wt), dyt)
else:
    import convpool.functional as F
    run = lambda: F.conv_backward(dy, F.conv_forward(x, w, None, 1, 1)[1])
import os, threading, time
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
peak, done = [0], [False]
def watch():
    while not done[0]:
        peak[0] = max(peak[0], rss())
        time.sleep(0.0005)
base = rss()
t = threading.Thread(target=watch)
t.start()
run()
done[0] = True
t.join()
print((max(peak[0], rss()) - base) / 2**20)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _geomean(v: list[float]) -> float:
    return float(math.exp(sum(math.log(x) for x in v) / len(v))) if v else float("nan")


def run(quick: bool = False, only: str | None = None, memory: bool = True) -> dict[str, Any]:
    try:
        import torch
    except ImportError as exc:
        raise ImportError("convpool bench compares with PyTorch: pip install torch") from exc
    threads = int(os.environ.get("CONVPOOL_BENCH_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(threads)
    limits = machine_limits()
    rows = []
    for make in suite(quick):
        case = make()
        if only and only not in case.name:
            continue
        r: dict[str, Any] = {"case": case.name, "kind": case.kind}
        r["ours_fwd"], r["torch_fwd"] = _timeit(case.ours_fwd), _timeit(case.torch_fwd) if case.torch_fwd else None
        r["ours_bwd"] = _timeit(case.ours_bwd) if case.ours_bwd else None
        r["torch_bwd"] = _timeit(case.torch_bwd) if case.torch_bwd else None
        for part in ("fwd", "bwd"):
            if r[f"ours_{part}"] and r[f"torch_{part}"]:
                r[f"ratio_{part}"] = r[f"ours_{part}"] / r[f"torch_{part}"]
        if case.flops:
            r["gflops_fwd"] = case.flops / r["ours_fwd"] / 1e9
            r["peak_share_fwd"] = r["gflops_fwd"] / limits["matmul_gflops"]
        if case.bytes:
            r["gbs_fwd"] = case.bytes / r["ours_fwd"] / 1e9
            r["peak_share_fwd"] = r["gbs_fwd"] / limits["copy_gbs"]
        rows.append(r)
        print(_format_row(r), flush=True)
    res: dict[str, Any] = {"rows": rows, "limits": limits, "threads": threads, "quick": quick}
    for kind in ("conv", "pool"):
        ratios = [r[f"ratio_{p}"] for r in rows if r["kind"] == kind for p in ("fwd", "bwd") if f"ratio_{p}" in r]
        res[f"geomean_{kind}"] = _geomean(ratios)
        res[f"max_{kind}"] = max(ratios) if ratios else float("nan")
    if not only:
        a, b = lenet_step(16 if quick else 64)
        res["lenet_step"] = {"ours": a, "torch": b, "ratio": a / b}
        if memory and not quick:
            mo, mt = peak_memory("convpool"), peak_memory("torch")
            res["resnet_peak_mib"] = {"ours": mo, "torch": mt, "ratio": mo / mt}
    res["environment"] = _environment()
    return res


def _environment() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
    }
    try:
        import threadpoolctl

        info["blas"] = [
            (i.get("internal_api"), i.get("architecture"), i.get("num_threads"))
            for i in threadpoolctl.threadpool_info()
            if i.get("user_api") == "blas"
        ]
    except ImportError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1e3:8.2f}"


def _format_row(r: dict[str, Any]) -> str:
    perf = f"{r['gflops_fwd']:6.1f} GFLOP/s" if "gflops_fwd" in r else f"{r.get('gbs_fwd', 0):6.1f} GB/s    "
    share = f"{r.get('peak_share_fwd', 0):5.0%}"
    return (
        f"{r['case']:<40} fwd {_ms(r['ours_fwd'])} / {_ms(r['torch_fwd'])} ms = {r.get('ratio_fwd', float('nan')):5.2f}"
        f"   bwd {_ms(r['ours_bwd'])} / {_ms(r['torch_bwd'])} ms = {r.get('ratio_bwd', float('nan')):5.2f}"
        f"   {perf} {share}"
    )


def main(quick: bool = False, only: str | None = None, out: str | None = None) -> dict[str, Any]:
    print(
        f"{'case':<40} forward convpool / torch = ratio      backward convpool / torch = ratio   "
        "achieved (share of peak)",
        flush=True,
    )
    res = run(quick, only)
    lim = res["limits"]
    print(
        f"\nmachine: matmul {lim['matmul_gflops']:.0f} GFLOP/s (NumPy BLAS, float32), copy {lim['copy_gbs']:.1f} GB/s; "
        f"{res['threads']} threads; BLAS {res['environment'].get('blas')}"
    )
    means = [
        f"{label} {res['geomean_' + kind]:.2f} (max {res['max_' + kind]:.2f})"
        for kind, label in (("conv", "conv"), ("pool", "pooling"))
        if not math.isnan(res["geomean_" + kind])  # no case of that kind ran (--only)
    ]
    if means:
        print(f"geometric mean ratio convpool/torch: {', '.join(means)}")
    if "lenet_step" in res:
        s = res["lenet_step"]
        print(f"LeNet training step: {s['ours'] * 1e3:.2f} / {s['torch'] * 1e3:.2f} ms = {s['ratio']:.2f}")
    if "resnet_peak_mib" in res:
        m = res["resnet_peak_mib"]
        print(f"ResNet-block conv fwd+bwd peak memory: {m['ours']:.0f} / {m['torch']:.0f} MiB = {m['ratio']:.2f}")
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
        with open(out, "w") as f:
            json.dump(res, f, indent=1)
        print(f"results: {out}")
    return res
