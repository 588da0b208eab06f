"""The backend switch: which backend runs, and which implementation a family is held to.

* ``"compiled"`` - numba kernels where they apply (the default when numba is
  installed), the NumPy code elsewhere;
* ``"numpy"`` - the readable NumPy reference only.

``CONVPOOL_PURE_NUMPY=1`` in the environment makes ``"numpy"`` the default (and
skips importing numba at all).  Users reach this through :mod:`convpool.config`
(``convpool.set_backend``, ``convpool.backend``, ``convpool.config.use``).

The state is process-wide (not per thread): set it before starting threads.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager

BACKENDS = ("numpy", "compiled")

_chosen: str | None = None  # None: decided by the environment
_held: dict[str, str] = {}  # family -> implementation name (config.use)
_generation = 0  # counts every change of the two: what the tables' cached choices are keyed on


def generation() -> int:
    """A number that changes whenever the backend or a held implementation changes (the
    tables cache their choices under it, :meth:`convpool.backends.tables.Table.choose`)."""
    return _generation


def _changed() -> None:
    global _generation
    _generation += 1


@functools.cache
def compiled_available() -> bool:
    """numba is installed and ``CONVPOOL_PURE_NUMPY`` is not set (nothing is imported;
    read once: the compiled runtime decides at import too)."""
    return not os.environ.get("CONVPOOL_PURE_NUMPY") and importlib.util.find_spec("numba") is not None


def _why_compiled_unavailable() -> str:
    if os.environ.get("CONVPOOL_PURE_NUMPY"):
        return "CONVPOOL_PURE_NUMPY is set, so numba was not loaded"
    return "numba is not installed (pip install numba)"


def get_backend() -> str:
    """The backend the ops use now: ``"compiled"`` or ``"numpy"``."""
    if _chosen is not None:
        return _chosen
    return "compiled" if compiled_available() else "numpy"


def set_backend(name: str) -> None:
    """Use ``name`` (``"numpy"`` or ``"compiled"``) from now on."""
    global _chosen
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "compiled" and not compiled_available():
        raise ValueError(f"backend 'compiled' is not available: {_why_compiled_unavailable()}")
    _chosen = name
    _changed()


def available_backends() -> tuple[str, ...]:
    """The backends this installation can run."""
    return BACKENDS if compiled_available() else ("numpy",)


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
        _changed()


def held(family: str) -> str | None:
    """The implementation ``family`` is held to by :func:`hold`, or None."""
    return _held.get(family)


@contextmanager
def hold(family: str, name: str) -> Iterator[None]:
    """Within the block, ``family``'s ops run implementation ``name`` wherever it
    applies (the rest of the table where it does not).  Validated by the caller."""
    previous = _held.get(family)
    _held[family] = name
    _changed()
    try:
        yield
    finally:
        if previous is None:
            _held.pop(family, None)
        else:
            _held[family] = previous
        _changed()
