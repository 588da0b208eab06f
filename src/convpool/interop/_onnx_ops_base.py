"""What the ONNX operator importers share: the chain's state and attribute/constant access."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..nn.module import Module
from ._onnx_graph import _onnx


@dataclass
class ImportState:
    consts: dict[str, np.ndarray]
    example: np.ndarray  # one example through the layers so far: shapes for what follows
    current: str  # the chain's tensor so far

    def advance(self, layer: Module, output: str, where: str) -> None:
        layer.eval()
        try:
            self.example = layer(self.example)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"from_onnx: {where} ({layer!r}) does not fit its input: {exc}") from exc
        self.current = output


class _Unsupported(ValueError):
    pass


def _attrs(node: Any) -> dict[str, Any]:
    onnx = _onnx()
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _const(state: ImportState, node: Any, k: int, what: str) -> np.ndarray | None:
    """Input ``k`` of ``node``: a constant, None if absent; the chain's tensor is refused."""
    if k >= len(node.input) or not node.input[k]:
        return None
    name = node.input[k]
    if name not in state.consts:
        raise _Unsupported(f"its {what} ({name!r}) is not a constant: a branch, which a convpool chain cannot hold")
    return np.asarray(state.consts[name])


def _pairs(pads: list[int] | None, nd: int) -> tuple[tuple[int, int], ...]:
    pads = list(pads or [0] * (2 * nd))
    return tuple((pads[i], pads[i + nd]) for i in range(nd))


def _check_auto_pad(a: dict[str, Any]) -> None:
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto not in ("NOTSET", "VALID"):
        raise _Unsupported(f"auto_pad={auto!r}: give explicit pads")


def _nd(state: ImportState) -> int:
    nd = state.example.ndim - 2
    if not 1 <= nd <= 3:
        raise _Unsupported(f"an input of {state.example.ndim} dims (convpool layers take 1 to 3 spatial dims)")
    return nd
