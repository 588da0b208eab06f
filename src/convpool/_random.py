"""The one random generator behind initialisation, dropout and shuffling."""

from __future__ import annotations

import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed convpool's generator (initialisation, dropout, data shuffling)."""
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    _rng = np.random.default_rng(int(seed))
    return _rng


def generator() -> np.random.Generator:
    """The current generator (replaced by :func:`manual_seed`)."""
    return _rng


def get_state() -> dict:
    """The generator's state, for checkpoints (a JSON-able dict)."""
    return dict(_rng.bit_generator.state)


def set_state(state: dict) -> None:
    _rng.bit_generator.state = state
