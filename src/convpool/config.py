"""The backend switch: which implementation the ops run.

* ``"compiled"`` - numba kernels where they apply (the default when numba is
  installed), the NumPy code elsewhere;
* ``"numpy"`` - the readable NumPy reference only.

``CONVPOOL_PURE_NUMPY=1`` in the environment makes ``"numpy"`` the default (and
skips importing numba at all).  In code::

    convpool.set_backend("numpy")          # from now on
    with convpool.backend("numpy"):         # for a block
        y = F.conv2d(x, w)

The switch is process-wide (not per thread): set it before starting threads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

BACKENDS = ("numpy", "compiled")

_chosen: str | None = None  # None: decided by the environment


def _compiled_available() -> bool:
    from .backends.compiled import kernels as _kernels  # the kernels read this module, so not at import time

    return _kernels.AVAILABLE


def get_backend() -> str:
    """The backend the ops use now: ``"compiled"`` or ``"numpy"``."""
    if _chosen is not None:
        return _chosen
    if os.environ.get("CONVPOOL_PURE_NUMPY") or not _compiled_available():
        return "numpy"
    return "compiled"


def set_backend(name: str) -> None:
    """Use ``name`` (``"numpy"`` or ``"compiled"``) from now on."""
    global _chosen
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "compiled" and not _compiled_available():
        why = (
            "CONVPOOL_PURE_NUMPY is set, so numba was not loaded"
            if os.environ.get("CONVPOOL_PURE_NUMPY")
            else "numba is not installed (pip install numba)"
        )
        raise ValueError(f"backend 'compiled' is not available: {why}")
    _chosen = name


def available_backends() -> tuple[str, ...]:
    """The backends this installation can run."""
    return BACKENDS if _compiled_available() else ("numpy",)


@contextmanager
def backend(name: str) -> Iterator[None]:
    """Run a block on backend ``name``, then restore the previous choice."""
    global _chosen
    previous = _chosen
    set_backend(name)
    try:
        yield
    finally:
        _chosen = previous


def info() -> dict[str, str]:
    """What this installation runs on: version, backend, CPU and its vector ISA, numba's
    threads, NumPy's BLAS (what ``convpool info`` prints).  Name the CPU beside any
    timing: kernels and BLAS differ between AVX2 and AVX-512 machines."""
    import platform

    import numpy as np

    from . import __version__, _blas
    from .backends.compiled import kernels as _kernels

    flags = _blas.cpu_flags()
    isa = "AVX-512" if "avx512f" in flags else "AVX2/FMA" if {"avx2", "fma"} <= flags else platform.machine()
    out = {
        "convpool": __version__,
        "backend": f"{get_backend()} (available: {', '.join(available_backends())})",
        "cpu": _cpu_model() or platform.processor() or platform.machine(),
        "vector ISA": isa,
        "numpy": np.__version__,
    }
    if _kernels.AVAILABLE:
        import llvmlite.binding as llvm
        import numba

        out["numba"] = f"{numba.__version__}, {_kernels.num_threads()} threads, target CPU {llvm.get_host_cpu_name()}"
        out["direct SIMD convolution"] = "on" if _kernels.DIRECT else "off"
    limiter = _kernels.blas_limiter()
    if limiter is not None:
        for lib in limiter.info():
            if lib.get("user_api") == "blas":
                core = lib.get("architecture") or "?"
                out["blas"] = (
                    f"{lib.get('internal_api')} {lib.get('version')} ({core}, {lib.get('num_threads')} threads)"
                )
                break
    return out


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None
