"""convpool: convolution and pooling from first principles, on one window engine."""

from . import functional

__version__ = "0.1.0"
__all__ = ["functional", "__version__"]
