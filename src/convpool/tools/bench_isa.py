"""The instruction-set settings of ``convpool bench --isa`` and what the report says
about the machine under each.

``native`` is the host as it is.  ``avx2`` (and ``avx512``) hold every library to that
vector ISA, in a subprocess, through the environment each library reads at start-up:
numba compiles for ``NUMBA_CPU_NAME`` (with its own ``NUMBA_CACHE_DIR``, so the native
cache is left alone), PyTorch takes ``ATEN_CPU_CAPABILITY`` and ``ONEDNN_MAX_CPU_ISA``,
OpenBLAS (NumPy's BLAS) ``OPENBLAS_CORETYPE``, convpool's kernels ``CONVPOOL_TILE``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np

# the environment of each setting; "native" sets nothing
ISA_ENV: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {
        "NUMBA_CPU_NAME": "haswell",
        "NUMBA_CPU_FEATURES": "",  # the named CPU's own features (unset: the host's, AVX-512 included)
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "OPENBLAS_CORETYPE": "Haswell",
        "CONVPOOL_TILE": "avx2",
    },
    "avx512": {
        "NUMBA_CPU_NAME": "skylake-avx512",
        "NUMBA_CPU_FEATURES": "",
        "ATEN_CPU_CAPABILITY": "avx512",
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
        "OPENBLAS_CORETYPE": "SkylakeX",
        "CONVPOOL_TILE": "avx512",
    },
}
# the CPU flags (/proc/cpuinfo) each setting needs
ISA_FLAGS: dict[str, frozenset[str]] = {
    "native": frozenset(),
    "avx2": frozenset({"avx2", "fma"}),
    "avx512": frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq"}),
}
# variables that mark a process as held to some ISA (OPENBLAS_CORETYPE is not one:
# convpool sets it itself on AVX-512 machines, see convpool._blas)
CHILD = "CONVPOOL_BENCH_CHILD"  # set in the subprocess of a setting: it prints its rows, the parent the report
_HOLDING = ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "CONVPOOL_TILE")


def parse_isa(text: str, flags: set[str] | frozenset[str], cpu: str = "this CPU") -> tuple[str, ...]:
    """``--isa``: a comma list of settings (``native,avx2``), each once, each one the CPU
    (``flags``, as /proc/cpuinfo lists them) can run.  ValueError names what is wrong."""
    names = tuple(k.strip().lower() for k in text.split(",") if k.strip())
    if not names:
        raise ValueError(f"--isa: expected a comma list of {', '.join(ISA_ENV)}, got {text!r}")
    for name in names:
        if name not in ISA_ENV:
            raise ValueError(f"--isa: unknown setting {name!r} in {text!r}; expected some of {', '.join(ISA_ENV)}")
        missing = ISA_FLAGS[name] - set(flags)
        if missing:
            raise ValueError(
                f"--isa {name}: {cpu} cannot run {name.upper()} code (no {', '.join(sorted(missing))} among its "
                "CPU flags); choose settings this CPU supports, e.g. --isa native"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"--isa: each setting once, got {text!r}")
    return names


def cpu_name() -> str:
    from ..config import _cpu_model

    return _cpu_model() or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    from .._blas import cpu_flags as flags

    return flags()


def current_isa(environ: Mapping[str, str] | None = None) -> str | None:
    """The setting a process with ``environ`` (default: this one's) runs under: ``native``
    when no variable holds it to an ISA, the setting whose variables are all set as it
    sets them, else None."""
    environ = os.environ if environ is None else environ
    if not any(environ.get(k) for k in _HOLDING):
        return "native"
    for name, env in ISA_ENV.items():
        if env and all(environ.get(k) == v for k, v in env.items() if k != "OPENBLAS_CORETYPE"):
            return name
    return None


def numba_cache_dir(name: str, environ: Mapping[str, str] | None = None) -> str:
    """Numba's cache for a non-native setting, named by its target CPU (``<cache>/haswell``)
    under ``NUMBA_CACHE_DIR`` when set, else under ``$CONVPOOL_CACHE_DIR/numba`` (default
    ``~/.cache/convpool/numba``): code compiled for one target never loads under another."""
    environ = os.environ if environ is None else environ
    base = environ.get("NUMBA_CACHE_DIR")
    if not base:
        root = environ.get("CONVPOOL_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "convpool")
        base = os.path.join(root, "numba")
    return os.path.join(base, ISA_ENV[name].get("NUMBA_CPU_NAME", name))


def isa_environment(name: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a subprocess under setting ``name``, from ``environ``
    (default: this process's)."""
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items() if k not in _HOLDING}
    env[CHILD] = "1"  # the parent prints the report
    if name == "native":
        env.pop("OPENBLAS_CORETYPE", None)  # convpool chooses it again
        return env
    return {**env, **ISA_ENV[name], "NUMBA_CACHE_DIR": numba_cache_dir(name, environ)}


def run_in_subprocess(name: str, args: list[str]) -> dict[str, Any]:
    """``convpool bench ARGS --isa NAME`` in a subprocess under that setting's
    environment (its table prints as it runs); returns its JSON results."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        cmd = [sys.executable, "-m", "convpool.tools.cli", "bench", *args, "--isa", name, "--out", out]
        print(f"\n--- --isa {name}: {' '.join(f'{k}={v}' for k, v in ISA_ENV[name].items())} ---", flush=True)
        code = subprocess.run(cmd, env=isa_environment(name)).returncode
        if code != 0:
            raise OSError(f"the --isa {name} run failed with exit status {code}")
        with open(out) as f:
            res: dict[str, Any] = json.load(f)
    return res


def machine_limits(budget: float = 0.5) -> dict[str, float]:
    """Measured float32 GEMM rate (NumPy's BLAS, 2048^3) and copy bandwidth (64 MiB)."""
    from .bench import measure

    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    (t,) = measure([lambda: a @ a], budget=budget)
    big = np.ones(64 * 2**20 // 4, dtype=np.float32)
    out = np.empty_like(big)
    (c,) = measure([lambda: np.copyto(out, big)], budget=budget)
    return {"matmul_gflops": 2 * 2048**3 / t / 1e9, "copy_gbs": 2 * big.nbytes / c / 1e9}


def environment() -> dict[str, Any]:
    """The CPU and what each library targets on it (named beside every figure)."""
    info: dict[str, Any] = {
        "cpu": cpu_name(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        **{k: os.environ.get(k) for k in sorted({k for env in ISA_ENV.values() for k in env})},
    }
    try:
        import llvmlite.binding as llvm
        import numba

        info["llvm_host_cpu"] = llvm.get_host_cpu_name()
        info["numba_target_cpu"] = numba.config.CPU_NAME or info["llvm_host_cpu"]
    except ImportError:
        info["numba_target_cpu"] = None
    try:
        import threadpoolctl

        blas = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
        info["blas"] = [(i.get("internal_api"), i.get("architecture"), i.get("num_threads")) for i in blas]
        info["blas_core"] = ", ".join(str(i.get("architecture")) for i in blas) or None
    except ImportError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except ImportError:
        pass
    try:
        from ..config import info as convpool_info

        info["convpool"] = convpool_info()
    except Exception as exc:  # a report line, never a reason to lose the run
        info["convpool"] = {"error": repr(exc)}
    return info
