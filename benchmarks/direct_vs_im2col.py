"""The direct SIMD convolution against convpool's own im2col + BLAS path, same process.

    python benchmarks/direct_vs_im2col.py

For each case: forward and backward time (median of 7 / 5 calls after one warm-up) with
the direct kernels on and off (``_kernels.DIRECT``), and PyTorch's for scale.  Name the
CPU (``convpool info``) beside the numbers: the direct kernel's register tile was tuned
for AVX-512 and the right choice differs between CPUs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

import convpool.functional as F
from convpool.backends.compiled import kernels as _kernels
from convpool.config import info

CASES = [  # name, input shape, weight shape, padding, groups, stride
    ("32x32x28x28 32->64 k3", (32, 32, 28, 28), (64, 32, 3, 3), 1, 1, 1),
    ("32x64x56x56 64->64 k3", (32, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1),
    ("32x64x56x56 64->128 k3 s2", (32, 64, 56, 56), (128, 64, 3, 3), 1, 1, 2),
    ("32x128x14x14 128->32 1x1", (32, 128, 14, 14), (32, 128, 1, 1), 0, 1, 1),
    ("depthwise 32x64x56x56 k3", (32, 64, 56, 56), (64, 1, 3, 3), 1, 64, 1),
    ("conv1d 256x16x64 16->32 k5", (256, 16, 64), (32, 16, 5), 2, 1, 1),
    ("conv3d 8x16x16^3 16->16 k3", (8, 16, 16, 16, 16), (16, 16, 3, 3, 3), 1, 1, 1),
]


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run_case(name: str, xs: tuple[int, ...], ws: tuple[int, ...], padding: int, groups: int, stride: int) -> None:
    rng = np.random.default_rng(0)
    x, w = rng.random(xs, dtype=np.float32), rng.random(ws, dtype=np.float32)
    nd = len(xs) - 2
    fwd, bwd = {}, {}
    for direct in (True, False):
        _kernels.DIRECT = direct
        fwd[direct] = median_time(lambda: F.conv_forward(x, w, None, stride, padding, 1, groups, nd=nd), 7)
        y, ctx = F.conv_forward(x, w, None, stride, padding, 1, groups, nd=nd)
        dy = np.ones_like(y)
        bwd[direct] = median_time(lambda: F.conv_backward(dy, ctx), 5)  # noqa: B023 - called right here
    _kernels.DIRECT = True
    conv = (torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d)[nd - 1]
    xt, wt = torch.tensor(x), torch.tensor(w)
    tt = median_time(lambda: conv(xt, wt, None, stride, padding, 1, groups), 7)
    print(
        f"{name:30s} fwd direct {fwd[True] * 1e3:7.1f}  im2col {fwd[False] * 1e3:7.1f}  torch {tt * 1e3:7.1f} ms"
        f" | bwd direct {bwd[True] * 1e3:7.1f}  im2col {bwd[False] * 1e3:7.1f} ms",
        flush=True,
    )


def main() -> None:
    torch.set_num_threads(_kernels.num_threads())
    about = info()
    print(f"cpu: {about['cpu']}, {about['vector ISA']}, numba: {about.get('numba', 'not installed')}")
    for case in CASES:
        run_case(*case)


if __name__ == "__main__":
    main()
