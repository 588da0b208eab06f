"""Import and first-call (compile) times of the compiled kernels, cold and cached.

    python benchmarks/compile_time.py

Runs the same small script twice in fresh processes that share an empty numba cache
directory (``NUMBA_CACHE_DIR``): the first run compiles every kernel it touches, the
second loads them from that cache.  Your own cache is left alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

PROBE = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import convpool.functional as F
times = {"import": time.perf_counter() - t0}
x = np.random.default_rng(0).standard_normal((2, 4, 9, 9)).astype(np.float32)
w = np.ones((6, 4, 3, 3), np.float32)

def timed(name, fn):
    t = time.perf_counter()
    fn()
    times[name] = time.perf_counter() - t

def conv(*args):
    y, ctx = F.conv_forward(x, *args)
    F.conv_backward(np.ones_like(y), ctx)

def pool(*args):
    y, ctx = F.reduce_window_forward(x, *args)
    F.reduce_window_backward(np.ones_like(y), ctx)

timed("conv fwd+bwd", lambda: conv(w, None, 1, 1))
timed("strided conv fwd+bwd", lambda: conv(w, None, 2, 1))
timed("1x1 conv fwd+bwd", lambda: conv(w[:, :, :1, :1]))
timed("depthwise conv fwd+bwd", lambda: conv(np.ones((4, 1, 3, 3), np.float32), None, 1, 1, 1, 4))
timed("2x2 max pool fwd+bwd", lambda: pool("max", 2, 2, 2))
timed("3x3 avg (sum) pool fwd+bwd", lambda: pool("sum", 2, 3, 1, 1))
print(json.dumps(times))
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        runs = []
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'':28s} {'cold s':>8s} {'cached s':>9s}")
    for name in runs[0]:
        print(f"{name:28s} {runs[0][name]:8.2f} {runs[1][name]:9.2f}")


if __name__ == "__main__":
    main()
