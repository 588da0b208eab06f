"""The one random generator behind initialisation, dropout and shuffling."""

from __future__ import annotations

import reprlib
from typing import Any

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


def _check_uint(name: str, value: Any, bits: int) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2**bits:
        raise ValueError(f"random-generator state{name} is {reprlib.repr(value)}, expected an int in [0, 2**{bits})")


def check_state(state: Any) -> None:
    """ValueError naming what is wrong unless ``state`` is a state of convpool's generator
    (as :func:`get_state` returns it, also after a JSON round trip).  Changes nothing."""
    kind = type(_rng.bit_generator)
    if not isinstance(state, dict):
        raise ValueError(f"a random-generator state must be a dict, got {type(state).__name__}")
    if state.get("bit_generator") != kind.__name__:
        found = reprlib.repr(state.get("bit_generator", "missing"))
        raise ValueError(f"random-generator state is for bit_generator {found}, expected {kind.__name__!r}")
    if kind is np.random.PCG64:
        inner = state.get("state")
        if not isinstance(inner, dict):
            raise ValueError(
                f"random-generator state['state'] is {reprlib.repr(inner)}, expected a dict of state and inc"
            )
        _check_uint("['state']['state']", inner.get("state"), 128)
        _check_uint("['state']['inc']", inner.get("inc"), 128)
        if inner["inc"] % 2 == 0:
            raise ValueError(
                f"random-generator state['state']['inc'] is {inner['inc']}, even: a PCG64 increment is odd"
            )
        _check_uint("['has_uint32']", state.get("has_uint32"), 1)
        _check_uint("['uinteger']", state.get("uinteger"), 32)
    try:  # the bit generator's own checks, on a spare one
        kind(0).state = state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ValueError(f"invalid {kind.__name__} random-generator state ({exc!r})") from exc


def set_state(state: dict) -> None:
    """Restore a state from :func:`get_state`; a ValueError (and no change) if it is not one."""
    check_state(state)
    _rng.bit_generator.state = state
