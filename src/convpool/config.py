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
    from . import _kernels  # the kernels read this module, so not at import time

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
