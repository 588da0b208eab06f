"""Measured path choice (opt-in, as cuDNN's benchmark mode): on the first call of a
convolution shape, time every compiled implementation that applies - forward and
backward, each once to compile and warm up, then twice - and keep the fastest for that
shape, dtype and geometry for the rest of the process.

Off by default: the tables' rules decide, deterministically.  Turn it on with
``CONVPOOL_AUTOTUNE=1`` or ``convpool.config.set_autotune(True)``; where the rules were
tuned on another CPU, the measurement keeps every shape on its fastest path.  The
first call of each shape then costs a few calls more.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

_enabled: bool | None = None  # None: the environment decides
_winners: dict[tuple[Any, ...], str] = {}


_FROM_ENV = os.environ.get("CONVPOOL_AUTOTUNE", "") not in ("", "0")


def enabled() -> bool:
    return _FROM_ENV if _enabled is None else _enabled


def set_enabled(on: bool | None) -> None:
    """True/False: measure or not; None: as ``CONVPOOL_AUTOTUNE`` says."""
    global _enabled
    _enabled = on


def winners() -> dict[tuple[Any, ...], str]:
    """The measured choices so far: problem key -> implementation name (a copy)."""
    return dict(_winners)


def forget() -> None:
    _winners.clear()


def _conv_key(p: Any) -> tuple[Any, ...]:
    return ("conv", p.x.shape, p.weight.shape, p.x.dtype.str, p.g, p.groups, p.mode)


def _conv_run(impl: Any, p: Any, dy: list[np.ndarray]) -> None:
    y, state = impl.forward(p)
    if p.bias is not None and not getattr(impl, "FUSES_BIAS", False):  # timed like its caller's separate pass
        y += p.bias.reshape((-1,) + (1,) * (y.ndim - 2))
    if not dy:
        dy.append(np.ones_like(y))
    impl.backward(dy[0], state, True)


KEYS: dict[str, Callable[[Any], tuple[Any, ...]]] = {"conv": _conv_key}
RUNS: dict[str, Callable[[Any, Any, list[np.ndarray]], None]] = {"conv": _conv_run}


def pick(family: str, problem: Any, candidates: list[tuple[str, Any]]) -> str | None:
    """The fastest of ``candidates`` (name, module) on ``problem``, measured once per key;
    None where the family is not measured or there is nothing to choose."""
    if family not in KEYS or len(candidates) < 2:
        return None
    key = KEYS[family](problem)
    if key not in _winners:
        run, best = RUNS[family], (float("inf"), candidates[0][0])
        dy: list[np.ndarray] = []
        for name, impl in candidates:
            run(impl, problem, dy)  # compiles and warms up; not timed
            times = []
            for _ in range(2):
                t0 = time.perf_counter()
                run(impl, problem, dy)
                times.append(time.perf_counter() - t0)
            best = min(best, (min(times), name))
        _winners[key] = best[1]
    return _winners[key]
