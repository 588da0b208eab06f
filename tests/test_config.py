"""`convpool info` and the backend description."""

from __future__ import annotations

import subprocess
import sys

import convpool
from convpool.config import info


def test_info_names_backend_cpu_and_isa() -> None:
    got = info()
    assert got["convpool"] == convpool.__version__
    assert got["backend"].startswith(convpool.get_backend())
    assert got["vector ISA"] and got["cpu"]
    if "compiled" in convpool.available_backends():
        assert "target CPU" in got["numba"]


def test_info_command_prints_one_line_per_item() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "convpool.tools.cli", "info"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["convpool:", convpool.__version__]
    assert any(line.startswith("backend:") for line in lines)
