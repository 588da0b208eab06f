"""Argument types and the parser class of the ``convpool`` command: each refuses a bad
value with a one-line message that names what was expected."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from typing import NoReturn


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``convpool CMD: error: ...`` on stderr, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an int >= {low}, got {value}")
        return value

    return parse


_positive, _count = _int_at_least(1), _int_at_least(0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (0 < value < math.inf):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def _folder(text: str) -> str:
    """An output folder: may not exist yet, but must not be something else."""
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} exists and is not a folder; give a folder for the outputs")
    return text


def _keys(spec: str) -> tuple[str, ...]:
    """A comma list ('max,avg') as a tuple; '' or 'none' for an empty one."""
    return () if spec.strip().lower() in ("", "none") else tuple(k.strip() for k in spec.split(",") if k.strip())


def _sizes(text: str) -> tuple[int, ...]:
    """Training-set sizes for the sweep: '500,1000,60000'; '' or 'none' for no sweep."""
    try:
        sizes = tuple(int(k.replace("_", "")) for k in _keys(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like '500,1000,60000' (or 'none'), got {text!r}") from None
    if any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"expected positive sizes, got {text!r}")
    return sizes


def _port(text: str) -> int:
    port = _count(text)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {port}")
    return port
