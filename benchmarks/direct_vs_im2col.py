"""The direct SIMD convolution against convpool's own im2col + BLAS path and PyTorch, per ISA.

    python benchmarks/direct_vs_im2col.py                      # the host as it is
    python benchmarks/direct_vs_im2col.py --isa avx2           # numba, PyTorch, OpenBLAS held to AVX2
    python benchmarks/direct_vs_im2col.py --isa native,avx2,generic --rounds 5

Each ISA setting runs in a subprocess with the environment that holds every library to
it (``ISA_ENV``: numba's target CPU and its own features - ``NUMBA_CPU_NAME`` alone would
keep the host's AVX-512 -, its own numba cache directory, PyTorch's ``ATEN_CPU_CAPABILITY``
and ``ONEDNN_MAX_CPU_ISA``, ``OPENBLAS_CORETYPE``); the register tile of the direct kernels
follows numba's target (``convpool.backends.compiled.direct.tile``).  In it, for each case,
forward and backward (input and weight gradients) of three implementations, interleaved
call by call over ``--rounds`` rounds after a warm-up: the direct kernels, convpool's
im2col + BLAS path (the direct kernels switched off, as ``CONVPOOL_NO_DIRECT=1`` does) and
PyTorch, both libraries on the same threads.  Printed: medians in ms and the ratios
direct / im2col and each / PyTorch; the last line names the cases where direct is slower
than im2col + BLAS by more than ``--margin``.  Name the CPU (printed first) beside every
figure: tiles, GEMM kernels and the winner differ between CPUs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

CASES = [  # name, input shape, weight shape, padding, groups, stride
    ("conv2d 32x32x28x28 32->64 k3", (32, 32, 28, 28), (64, 32, 3, 3), 1, 1, 1),
    ("conv2d 32x64x56x56 64->64 k3", (32, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1),
    ("conv2d 32x128x14x14 128->32 1x1", (32, 128, 14, 14), (32, 128, 1, 1), 0, 1, 1),
    ("conv1d 256x16x64 16->32 k5", (256, 16, 64), (32, 16, 5), 2, 1, 1),
    ("conv2d 32x64x56x56 64->128 k3 s2", (32, 64, 56, 56), (128, 64, 3, 3), 1, 1, 2),
    ("depthwise 32x64x56x56 k3", (32, 64, 56, 56), (64, 1, 3, 3), 1, 64, 1),
    ("conv3d 8x16x16^3 16->16 k3", (8, 16, 16, 16, 16), (16, 16, 3, 3, 3), 1, 1, 1),
]

# the environment of each ISA setting ("native" sets nothing)
ISA_ENV: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {
        "NUMBA_CPU_NAME": "haswell",
        "NUMBA_CPU_FEATURES": "",  # the named CPU's own features (unset: the host's, AVX-512 included)
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "OPENBLAS_CORETYPE": "Haswell",
    },
    "generic": {  # baseline x86-64 (SSE2) code from numba; PyTorch and OpenBLAS without AVX
        "NUMBA_CPU_NAME": "generic",
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "OPENBLAS_CORETYPE": "Nehalem",
    },
}
CHILD = "CONVPOOL_DIRECT_BENCH_CHILD"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_case(
    name: str, xs: tuple[int, ...], ws: tuple[int, ...], padding: int, groups: int, stride: int, rounds: int
) -> dict[str, float]:
    import torch

    import convpool.functional as F
    from convpool.backends.compiled import kernels as _kernels

    rng = np.random.default_rng(0)
    x, w = rng.random(xs, dtype=np.float32), rng.random(ws, dtype=np.float32)
    nd = len(xs) - 2
    conv = (torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d)[nd - 1]
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)

    def ours(direct: bool) -> tuple[Callable[[], object], Callable[[], object]]:
        _kernels.DIRECT = direct
        y, ctx = F.conv_forward(x, w, None, stride, padding, 1, groups, nd=nd)
        dy = np.ones_like(y)

        def fwd() -> object:
            _kernels.DIRECT = direct
            return F.conv_forward(x, w, None, stride, padding, 1, groups, nd=nd)

        def bwd() -> object:
            _kernels.DIRECT = direct
            return F.conv_backward(dy, ctx)

        return fwd, bwd

    yt = conv(xt, wt, None, stride, padding, 1, groups)
    dyt = torch.ones_like(yt)
    fns = {
        "direct": ours(True),
        "im2col": ours(False),
        "torch": (
            lambda: conv(xt.detach(), wt.detach(), None, stride, padding, 1, groups),
            lambda: torch.autograd.grad(yt, (xt, wt), dyt, retain_graph=True),
        ),
    }
    _kernels.DIRECT = True
    times: dict[str, list[float]] = {f"{k} {p}": [] for k in fns for p in ("fwd", "bwd")}
    for fwd, bwd in fns.values():  # warm-up: compiles, workspaces, BLAS threads
        fwd()
        bwd()
    for _ in range(rounds):  # interleaved, call by call
        for pass_, i in (("fwd", 0), ("bwd", 1)):
            for impl, pair in fns.items():
                times[f"{impl} {pass_}"].append(timed(pair[i]))
    _kernels.DIRECT = True
    return {k: float(np.median(v)) for k, v in times.items()}


def child(rounds: int, margin: float) -> None:
    import torch

    from convpool.backends.compiled import kernels as _kernels
    from convpool.backends.compiled.direct import tile_info
    from convpool.config import info

    torch.set_num_threads(_kernels.num_threads())
    about, tile = info(), tile_info()
    print(f"cpu: {about['cpu']}; numba tile: {tile['isa']} ({tile['reason']}); {tile['conv tile']}")
    print(
        f"torch: {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads; kernels: "
        f"{_kernels.num_threads()} threads; blas: {about.get('blas', '?')}"
    )
    head = f"{'case':34s} {'pass':4s} {'direct':>8s} {'im2col':>8s} {'torch':>8s} ms  {'dir/i2c':>7s} {'dir/t':>6s} {'i2c/t':>6s}"
    print(head)
    losses = []
    for case in CASES:
        m = run_case(*case, rounds=rounds)
        for p in ("fwd", "bwd"):
            d, i, t = m[f"direct {p}"], m[f"im2col {p}"], m[f"torch {p}"]
            flag = " *" if d > i * (1 + margin) else ""
            print(
                f"{case[0]:34s} {p:4s} {d * 1e3:8.1f} {i * 1e3:8.1f} {t * 1e3:8.1f}     "
                f"{d / i:7.2f} {d / t:6.2f} {i / t:6.2f}{flag}",
                flush=True,
            )
            if flag:
                losses.append(f"{case[0]} {p} ({d / i:.2f})")
    print("direct slower than im2col + BLAS:", "; ".join(losses) if losses else "none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--isa", default="native", help="comma list of " + ", ".join(ISA_ENV))
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per case (median)")
    parser.add_argument("--margin", type=float, default=0.05, help="direct/im2col above 1 + margin: a loss")
    args = parser.parse_args()
    if os.environ.get(CHILD):
        child(args.rounds, args.margin)
        return
    for isa in (s.strip() for s in args.isa.split(",") if s.strip()):
        if isa not in ISA_ENV:
            parser.error(f"--isa: {isa!r} is not one of {', '.join(ISA_ENV)}")
        env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")}
        env.update(ISA_ENV[isa], **{CHILD: "1"})
        if isa != "native":  # its own numba cache: the native one stays as it is
            env.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"nc-{isa}"))
        print(f"== {isa}", flush=True)
        cmd = [sys.executable, __file__, "--rounds", str(args.rounds), "--margin", str(args.margin)]
        subprocess.run(cmd, env=env, check=True)


if __name__ == "__main__":
    main()
