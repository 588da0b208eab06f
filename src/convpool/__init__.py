"""convpool: convolution and pooling from first principles, on one window engine."""

from ._blas import prefer_fast_blas

prefer_fast_blas()  # before NumPy loads: AVX-512 BLAS kernels where OpenBLAS misses them

# ruff: noqa: E402
from . import functional, nn
from ._random import manual_seed

__version__ = "0.1.0"
__all__ = ["__version__", "functional", "manual_seed", "nn"]
