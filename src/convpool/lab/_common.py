"""Shared helpers of the lab: output files, figures, console."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from ..checkpoint import atomic_write


def to_jsonable(obj: Any) -> Any:
    """NumPy arrays and scalars as lists and floats, recursively."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None if np.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def write_json(path: str, data: Any) -> str:
    """Write ``data`` as JSON atomically (:func:`convpool.checkpoint.atomic_write`)."""
    text = json.dumps(to_jsonable(data), indent=1).encode()
    atomic_write(path, lambda f: f.write(text), ".json")
    return path


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return path


def console() -> Any:
    """A rich console; wide enough for the tables when output goes to a file or pipe."""
    import sys

    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 132)


def grid_table(a: np.ndarray, title: str = "", mark: set[tuple[int, int]] | None = None, fmt: str = "{:g}") -> Any:
    """A 2-D array as a rich table; ``mark`` cells are highlighted."""
    from rich.table import Table

    t = Table(title=title, show_header=False, box=None, padding=(0, 1))
    for _ in range(a.shape[1]):
        t.add_column(justify="right")
    for i, row in enumerate(a):
        cells = []
        for j, v in enumerate(row):
            s = fmt.format(v) if np.isfinite(v) else str(v)
            cells.append(f"[bold yellow]{s}[/]" if mark and (i, j) in mark else s)
        t.add_row(*cells)
    return t
