"""convpool: convolution and pooling from first principles, on one window engine."""

from ._blas import prefer_fast_blas

prefer_fast_blas()  # before NumPy loads: AVX-512 BLAS kernels where OpenBLAS misses them

# ruff: noqa: E402
from . import functional, nn
from ._random import manual_seed
from ._version import __version__
from .config import available_backends, backend, get_backend, set_backend

__all__ = [
    "__version__",
    "available_backends",
    "backend",
    "functional",
    "get_backend",
    "manual_seed",
    "nn",
    "set_backend",
]
