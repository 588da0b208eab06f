"""The separable max/min pool against the index-tables kernels and PyTorch.

    python benchmarks/pool_separable.py                 # every case, 5 rounds
    python benchmarks/pool_separable.py --only 2d --rounds 7
    python benchmarks/pool_separable.py --probe         # the issue's probe (max_pool2d only)
    python benchmarks/pool_separable.py --compile       # first-call times, empty numba cache

For each case, forward and backward of three implementations, interleaved call by call
over ``--rounds`` rounds after a warm-up: the table's own choice ("default", named per
case), "separable" and "index-tables" (each held with ``convpool.config.use("pool", ...)``,
which also overrides a row's ``declines``) and PyTorch, both libraries on ``--threads``
threads.  The forward is a training forward (PyTorch's input requires grad, so it
computes its indices; convpool always records each winner's position); the backward is
timed by calling it repeatedly on one forward's context (``torch.autograd.grad`` with
the graph retained).  PyTorch has no min pool: a min case is timed against PyTorch's max
pool of the same geometry.  Printed: medians in ms and the ratios to PyTorch; name the
CPU (printed first) beside every figure.

``--compile``: a fresh process with an empty ``NUMBA_CACHE_DIR`` times the first call
(forward + backward, small input) of each case's op, in CPU seconds of the process
(compiling is single-threaded; on a shared machine wall time grows with the load), then
a second process with that cache warm.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

CASES = [  # name, reduction, input shape, kernel, stride, padding
    ("max_pool2d k3 s2 p1 32x64x112x112", "max", (32, 64, 112, 112), 3, 2, 1),
    ("max_pool2d k3 s1 p1 32x64x112x112", "max", (32, 64, 112, 112), 3, 1, 1),
    ("max_pool2d k2 s2 p0 32x64x112x112", "max", (32, 64, 112, 112), 2, 2, 0),
    ("min_pool2d k3 s2 p1 16x64x112x112", "min", (16, 64, 112, 112), 3, 2, 1),
    ("max_pool2d k5 s1 p2 16x64x56x56", "max", (16, 64, 56, 56), 5, 1, 2),
    ("min_pool2d k5 s1 p2 16x64x56x56", "min", (16, 64, 56, 56), 5, 1, 2),
    ("max_pool1d k3 s1 p1 64x64x2048", "max", (64, 64, 2048), 3, 1, 1),
    ("min_pool1d k3 s1 p1 64x64x2048", "min", (64, 64, 2048), 3, 1, 1),
    ("max_pool1d k2 s1 p0 64x64x2048", "max", (64, 64, 2048), 2, 1, 0),
    ("max_pool3d k3 s2 p1 8x32x32x56x56", "max", (8, 32, 32, 56, 56), 3, 2, 1),
    ("min_pool3d k3 s1 p1 4x32x16x28x28", "min", (4, 32, 16, 28, 28), 3, 1, 1),
    ("max_pool2d k3 s2 p1 256x64x14x14", "max", (256, 64, 14, 14), 3, 2, 1),  # short rows: declined
    ("max_pool2d k3 s1 p1 256x64x7x7", "max", (256, 64, 7, 7), 3, 1, 1),
    ("max_pool1d k3 s1 p1 1024x64x8", "max", (1024, 64, 8), 3, 1, 1),
]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        model = "?"
    import llvmlite.binding as llvm

    target = os.environ.get("NUMBA_CPU_NAME") or "host"
    held = ", ".join(f"{k}={os.environ[k]}" for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if k in os.environ)
    return f"{model}; llvmlite host CPU {llvm.get_host_cpu_name()}; numba target {target}" + (
        f"; {held}" if held else ""
    )


def median_times(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median ms of each function, called in turn (interleaved) ``rounds`` times after a warm-up."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: float(np.median(v)) * 1e3 for k, v in times.items()}


def run_case(case: tuple, rounds: int, impls: list[str]) -> dict[str, float]:
    import torch
    import torch.nn.functional as TF

    import convpool
    import convpool.functional as F

    _, red, shape, k, s, p = case
    nd = len(shape) - 2
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    tpool = {1: TF.max_pool1d, 2: TF.max_pool2d, 3: TF.max_pool3d}[nd]
    fns: dict[str, Callable[[], object]] = {}
    chosen = "?"
    for name in impls:

        def fwd(name: str = name) -> tuple:
            if name == "default":  # the table's own choice
                return F.reduce_window_forward(x, red, nd, k, s, p)
            with convpool.config.use("pool", name):
                return F.reduce_window_forward(x, red, nd, k, s, p)

        y, ctx = fwd()
        assert name == "default" or ctx.name == name, (ctx.name, name)
        chosen = ctx.name if name == "default" else chosen
        dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
        fns[f"{name} fwd"] = fwd
        fns[f"{name} bwd"] = lambda dy=dy, ctx=ctx: F.reduce_window_backward(dy, ctx)
    yt = tpool(xt, k, s, p)
    dyt = torch.from_numpy(np.random.default_rng(1).standard_normal(tuple(yt.shape)).astype(np.float32))
    fns["torch fwd"] = lambda: tpool(xt, k, s, p)
    fns["torch bwd"] = lambda: torch.autograd.grad(yt, xt, dyt, retain_graph=True)
    print(f"  ({case[0]}: the table chooses {chosen})")
    return median_times(fns, rounds)


def bench(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    import numba

    numba.set_num_threads(args.threads)
    print(f"CPU: {cpu_name()}; {args.threads} threads, float32, medians of {args.rounds} interleaved rounds (ms)")
    impls = ["default", "separable", "index-tables"]
    head = f"{'case':<36} {'dir':<4}" + "".join(f"{n:>13}" for n in [*impls, "torch"])
    print(head + "".join(f"{n + '/torch':>20}" for n in impls))
    ratios: dict[str, list[float]] = {n: [] for n in impls}
    for case in CASES:
        if args.only and args.only not in case[0]:
            continue
        if args.probe and not case[0].startswith("max_pool2d"):
            continue
        t = run_case(case, args.rounds, impls)
        for d in ("fwd", "bwd"):
            row = [t[f"{n} {d}"] for n in [*impls, "torch"]]
            r = [t[f"{n} {d}"] / t[f"torch {d}"] for n in impls]
            for n, v in zip(impls, r, strict=True):
                ratios[n].append(v)
            print(f"{case[0]:<36} {d:<4}" + "".join(f"{v:13.1f}" for v in row) + "".join(f"{v:20.2f}" for v in r))
    for n in impls:
        if ratios[n]:
            v = np.array(ratios[n])
            gm = float(np.exp(np.log(v).mean()))
            print(f"{n}: geometric mean of ratios to torch {gm:.2f}, worst {v.max():.2f}")


FIRST_CALL = r"""
import json, sys, time
t, c = time.perf_counter(), time.process_time()
import numpy as np
import convpool
import convpool.functional as F
out = {"import": [time.perf_counter() - t, time.process_time() - c]}
impl = sys.argv[1]
for name, red, shape, k, s, p in json.loads(sys.argv[2]):
    nd = len(shape) - 2
    x = np.random.default_rng(0).standard_normal((2, 3) + (9,) * nd).astype(np.float32)
    t, c = time.perf_counter(), time.process_time()
    with convpool.config.use("pool", impl):
        y, ctx = F.reduce_window_forward(x, red, nd, k, s, p)
    F.reduce_window_backward(np.ones_like(y), ctx)
    out[name.rsplit(" ", 1)[0]] = [time.perf_counter() - t, time.process_time() - c]
print(json.dumps(out))
"""


def compile_times(args: argparse.Namespace) -> None:
    """First calls in fresh processes: an empty numba cache, then the same cache warm."""
    print(f"CPU: {cpu_name()}; first call forward+backward, CPU s (wall s) of the process")
    cases = [c for c in CASES if not args.only or args.only in c[0]]
    seen, todo = set(), []
    for c in cases:  # one entry per op and geometry (the input size does not matter here)
        key = c[0].rsplit(" ", 1)[0]
        if key not in seen:
            seen.add(key)
            todo.append(c)
    for impl in ("separable", "index-tables"):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache, "NUMBA_NUM_THREADS": "1"}
            runs = []
            for _ in ("cold", "cached"):
                res = subprocess.run(
                    [sys.executable, "-c", FIRST_CALL, impl, json.dumps(todo)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(f"{impl}:")
        for key in runs[0]:
            cold, warm = runs[0][key], runs[1][key]
            print(f"  {key:<32} cold {cold[1]:6.2f} ({cold[0]:5.2f})   cached {warm[1]:6.2f} ({warm[0]:5.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", help="cases whose name contains this")
    parser.add_argument("--probe", action="store_true", help="the max_pool2d cases only (the issue's probe)")
    parser.add_argument("--compile", action="store_true", help="first-call (compile) times instead")
    args = parser.parse_args()
    if args.compile:
        compile_times(args)
    else:
        bench(args)


if __name__ == "__main__":
    main()
