"""convpool: convolution and pooling from first principles, on one window engine."""

from . import functional, nn
from ._random import manual_seed

__version__ = "0.1.0"
__all__ = ["__version__", "functional", "manual_seed", "nn"]
