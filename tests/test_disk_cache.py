"""Every compiled kernel loads from numba's disk cache in a later process.

numba keys a cached closure on its cells, pickled: a kernel closing over an object that
pickles differently in each process (an intrinsic, a dispatcher) misses the cache every
time and compiles again in every process - the 2x2 pool's vector kernel did, 0.3-0.4 s
of CPU in each of the demo's three processes.  Two fresh processes share an empty cache
directory; the second may compile nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from convpool.backends.compiled import kernels as _kernels

WORKLOAD = r"""
from numba.core import event
compiled = []
class Log(event.Listener):
    def on_start(self, ev):
        pass
    def on_end(self, ev):
        fn = ev.data["dispatcher"].py_func
        compiled.append(f"{fn.__module__}.{fn.__qualname__}")
event.register("numba:compile", Log())
import numpy as np
import convpool.functional as F
from convpool import models
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
w = np.ones((6, 4, 3, 3), np.float32)
def conv(*a):
    y, c = F.conv_forward(x, *a)
    F.conv_backward(np.ones_like(y), c)
def pool(*a, data=None, **k):
    y, c = F.reduce_window_forward(x if data is None else data, *a, **k)
    F.reduce_window_backward(np.ones_like(y), c)
conv(w, None, 1, 1)
conv(w, np.ones(6, np.float32), 2, 1)
conv(w[:, :, :1, :1])
conv(np.ones((4, 1, 3, 3), np.float32), None, 1, 1, 1, 4)
pool("max", 2, 2, 2)
pool("min", 2, 2, 2)
pool("max", 2, 3, 2, 1)
pool("median", 2, 3, 1, 1, padding_mode="replicate")
pool("max", 1, 2, 2, data=x.reshape(2, 4, 81))
y, c = F.avg_pool_forward(x, 2, 3, 1, 1)
F.reduce_window_backward(np.ones_like(y), c)
m = models.lenet(1, 10, 28)
xb = rng.random((8, 1, 28, 28), dtype=np.float32)
out = m(xb)
m.backward_params(np.ones_like(out))
m.eval()
m(xb[:1])
print("COMPILED", sorted(set(compiled)))
"""


@pytest.mark.skipif(not _kernels.enabled(), reason="the compiled backend is off")
def test_a_second_process_compiles_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("NUMBA_DISABLE_JIT", None)
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", WORKLOAD], env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        runs.append(next(line for line in out.stdout.splitlines() if line.startswith("COMPILED")))
    assert runs[0] != "COMPILED []", "the first process compiled nothing: the workload reaches no kernel"
    assert runs[1] == "COMPILED []", f"recompiled in a second process (not loaded from the cache): {runs[1]}"
