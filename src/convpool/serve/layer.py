"""``POST /api/layer``: one op on one 2-D map, forward and backward, every window written out.

Every number the page shows comes from convpool: the output from the op's
``*_forward``, the gradients (input, kernel, ``p`` / ``beta``) from its
``*_backward``, the winners from the pools' ``return_indices`` and max-plus
convolution's recorded winners, and the window geometry from the engine's own
geometry (the one output-size formula) and :mod:`convpool.windows`
(``source_index`` for the padding, ``window_view`` for the windows).  The
per-slot terms are the op's combine step (``x * w``, ``x + w``, ``x ** p``, ...)
applied to those windows, so that the page can write the arithmetic out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import functional as F
from ..functional._common import Geometry, make_geometry
from ..windows import source_index, window_view
from .schemas import AnyLayerRequest, AvgPoolRequest, ConvRequest, LpPoolRequest, SelectPoolRequest

MAX_SLOTS = 40_000  # window slots written out per answer (out_h * out_w * kernel elements)
GEM_EPS = 1e-6


class LayerError(ValueError):
    """Bad input found while computing: ``field`` names the request field at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class OpInfo:
    description: str
    combine: str
    reduce: str
    identity: str | None  # what identity padding holds; None: the op has none
    window_field: str  # the request field that sets the window's size


INFO: dict[str, OpInfo] = {
    "conv": OpInfo(
        "Convolution: multiply every window element by its kernel weight and add the products up.",
        "x * w", "sum", None, "kernel",
    ),
    "maxplus": OpInfo(
        "Max-plus convolution (morphological dilation): add each kernel weight to its window element "
        "and keep the largest sum; all-zero weights make it max pooling.",
        "x + w", "max", "-inf", "kernel",
    ),
    "minplus": OpInfo(
        "Min-plus convolution (morphological erosion): add each kernel weight to its window element "
        "and keep the smallest sum.",
        "x + w", "min", "+inf", "kernel",
    ),
    "max": OpInfo("Max pooling: each window's largest element; nothing is learned.", "x", "max", "-inf", "kernel_size"),
    "min": OpInfo("Min pooling: each window's smallest element.", "x", "min", "+inf", "kernel_size"),
    "median": OpInfo(
        "Median pooling: each window's middle element (the lower middle for an even count).",
        "x", "median", "left out", "kernel_size",
    ),
    "avg": OpInfo("Average pooling: each window's sum divided by its divisor.", "x", "sum / divisor", None, "kernel_size"),
    "lp": OpInfo(
        "Power-average (Lp) pooling: (sum of x**p) ** (1/p); p = 1 is the sum, a large p nears the max.",
        "x ** p", "sum ** (1/p)", None, "kernel_size",
    ),
    "gem": OpInfo(
        "Generalised-mean (GeM) pooling: (mean of max(x, 1e-6) ** p) ** (1/p); p = 1 is the average, "
        "a large p nears the max.",
        "max(x, 1e-6) ** p", "mean ** (1/p)", "left out", "kernel_size",
    ),
    "lse": OpInfo(
        "Log-mean-exp pooling, a smooth maximum: (1/beta) log(mean exp(beta x)), computed as "
        "max + log(mean exp(beta (x - max))) / beta.",
        "exp(beta * (x - max))", "max + log(mean) / beta", "-inf", "kernel_size",
    ),
}  # fmt: skip


@dataclass
class Run:
    """One forward pass: the output, how to run the backward pass, and the windows."""

    y: np.ndarray  # (out_h, out_w)
    backward: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None, dict[str, float]]]
    geom: Geometry
    mode: str | None  # the windows' padding: None identity, 'constant' zeros, or a border mode
    winner: np.ndarray | None = None  # (out_h, out_w) slot of the winning element
    winner_flat: np.ndarray | None = None  # (out_h, out_w) flat input index of the winner (-1: a padding zero)
    divisor: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def _geometry(x: np.ndarray, kernel: Any, stride: Any, padding: Any, dilation: Any, ceil: bool, pool: bool) -> Geometry:
    """The engine's own geometry for these windows (after the op accepted them)."""
    return make_geometry(x.shape, 2, kernel, stride, padding, dilation, ceil, pool=pool)


def _pair(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _run_conv(req: ConvRequest, x4: np.ndarray) -> Run:
    w = np.asarray(req.kernel, dtype=np.float64)[None, None]
    stride, padding, dilation = _pair(req.stride), _pair(req.padding), _pair(req.dilation)
    ctx: Any
    if req.op == "conv":
        mode = req.padding_mode or "zeros"
        y, ctx = F.conv_forward(x4, w, None, stride, padding, dilation, 1, mode)
        back: Callable[..., Any] = F.conv_backward
        winner = None
    else:
        forward = F.maxplus_conv_forward if req.op == "maxplus" else F.minplus_conv_forward
        y, ctx = forward(x4, w, None, stride, padding, dilation, 1, req.padding_mode)
        back = F.maxplus_conv_backward if req.op == "maxplus" else F.minplus_conv_backward
        winner = np.asarray(ctx.state.win[0, 0], dtype=np.int64)  # entry c*K + k; one input channel: k

    def backward(dy: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, dict[str, float]]:
        gx, gw, _ = back(dy[None, None], ctx)
        return gx[0, 0], gw[0, 0], {}

    g = _geometry(x4[0, 0], w.shape[2:], stride, padding, dilation, False, False)
    identity = req.op != "conv" and req.padding_mode is None
    windows_mode = None if identity else _engine_mode(req.padding_mode or "zeros")
    return Run(y[0, 0], backward, g, windows_mode, winner=winner)


def _engine_mode(padding_mode: str) -> str:
    return "constant" if padding_mode == "zeros" else padding_mode


def _run_select(req: SelectPoolRequest, x4: np.ndarray) -> Run:
    k, s, p, d = _pair(req.kernel_size), _pair(req.stride), _pair(req.padding), _pair(req.dilation)
    y, ctx = F.reduce_window_forward(x4, req.op, 2, k, s, p, d, req.ceil_mode, req.padding_mode)
    pool = {"max": F.max_pool2d, "min": F.min_pool2d, "median": F.median_pool2d}[req.op]
    _, flat = pool(x4, k, s, p, d, req.ceil_mode, True, padding_mode=req.padding_mode)

    def backward(dy: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, dict[str, float]]:
        return F.reduce_window_backward(dy[None, None], ctx)[0, 0], None, {}

    g = _geometry(x4[0, 0], k, s, p, d, req.ceil_mode, True)
    mode = None if req.padding_mode is None else _engine_mode(req.padding_mode)
    notes = []
    if req.op == "max" and req.padding_mode == "zeros" and g.padded != g.in_size:
        notes.append(
            "padding_mode 'zeros' puts real zeros in the border, and a zero beats a negative window: "
            "max pooling's own padding is -inf (leave padding_mode unset), which never wins."
        )
    return Run(y[0, 0], backward, g, mode, winner_flat=np.asarray(flat[0, 0]), notes=notes)


def _run_avg(req: AvgPoolRequest, x4: np.ndarray) -> Run:
    k, s, p = _pair(req.kernel_size), _pair(req.stride), _pair(req.padding)
    y, ctx = F.avg_pool_forward(x4, 2, k, s, p, req.ceil_mode, req.count_include_pad, None, req.padding_mode)

    def backward(dy: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, dict[str, float]]:
        return F.reduce_window_backward(dy[None, None], ctx)[0, 0], None, {}

    g = _geometry(x4[0, 0], k, s, p, 1, req.ceil_mode, True)
    mode = "constant" if req.padding_mode is None else _engine_mode(req.padding_mode)  # zeros, counted or not
    assert ctx.scale is not None
    divisor = np.broadcast_to(ctx.scale, g.out).astype(np.float64)
    return Run(y[0, 0], backward, g, mode, divisor=divisor)


def _run_lp(req: LpPoolRequest, x4: np.ndarray) -> Run:
    k, s = _pair(req.kernel_size), _pair(req.stride)
    y, ctx = F.lp_pool_forward(x4, req.p, 2, k, s, req.ceil_mode)

    def backward(dy: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, dict[str, float]]:
        return F.lp_pool_backward(dy[None, None], ctx)[0, 0], None, {}

    g = _geometry(x4[0, 0], k, s, 0, 1, req.ceil_mode, True)
    notes = []
    if (x4 < 0).any() and not float(req.p).is_integer():
        notes.append("x ** p of a negative x with a fractional p is NaN (PyTorch's formula has no abs): shown empty.")
    return Run(y[0, 0], backward, g, None, notes=notes)


def _run_gem_lse(req: Any, x4: np.ndarray) -> Run:
    k, s, p = _pair(req.kernel_size), _pair(req.stride), _pair(req.padding)
    ctx: Any
    back: Callable[..., Any]
    if req.op == "gem":
        y, ctx = F.gem_pool_forward(x4, req.p, 2, k, s, p, GEM_EPS)
        back, name = F.gem_pool_backward, "p"
    else:
        y, ctx = F.lse_pool_forward(x4, req.beta, 2, k, s, p)
        back, name = F.lse_pool_backward, "beta"

    def backward(dy: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, dict[str, float]]:
        gx, gparam = back(dy[None, None], ctx)
        return gx[0, 0], None, {name: float(gparam)}

    g = _geometry(x4[0, 0], k, s, p, 1, False, True)
    return Run(y[0, 0], backward, g, None)


RUNNERS: dict[str, Callable[[Any, np.ndarray], Run]] = {
    "conv": _run_conv,
    "maxplus": _run_conv,
    "minplus": _run_conv,
    "max": _run_select,
    "min": _run_select,
    "median": _run_select,
    "avg": _run_avg,
    "lp": _run_lp,
    "gem": _run_gem_lse,
    "lse": _run_gem_lse,
}

FIELDS = ("kernel_size", "kernel", "stride", "padding_mode", "padding", "dilation", "ceil_mode", "grad_output", "input")
ALIASES = {"norm_type": "p", "weight": "kernel", "p": "p", "beta": "beta", "reflect": "padding", "circular": "padding"}


def field_of(message: str, op: str) -> str:
    """The request field a convpool error message is about (messages name the argument first)."""
    first = message.split(" ", 1)[0].rstrip(":,")
    if first in FIELDS:
        return first
    if first in ALIASES:
        return ALIASES[first]
    if "does not fit" in message:
        return INFO[op].window_field
    if "padding" in message:
        return "padding"
    return "input"


# --- the windows, written out --------------------------------------------------------------------


def padded_index(g: Geometry, mode: str | None) -> np.ndarray:
    """For every cell of the padded input (plus ceil_mode's room): the flat input index it
    reads, -1 for a zero of zero padding, -2 for identity padding or the room."""
    (h, w), (ph, pw), (eh, ew) = g.in_size, g.pads, g.extra
    rows = source_index(h, ph[0], ph[1], mode, eh)[:, None]
    cols = source_index(w, pw[0], pw[1], mode, ew)[None, :]
    inside = (rows >= 0) & (cols >= 0)
    nothing = (rows == -2) | (cols == -2)
    return np.where(inside, rows * w + cols, np.where(nothing, -2, -1))


def _terms(op: str, req: Any, values: np.ndarray, real: np.ndarray, kernel: np.ndarray | None) -> np.ndarray:
    """The combine step on every slot; NaN where a slot takes no part."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if op == "conv":
            t = values * kernel
        elif op in ("maxplus", "minplus"):
            t = values + kernel
        elif op == "lp":
            t = values**req.p
        elif op == "gem":
            t = np.maximum(values, GEM_EPS) ** req.p
        elif op == "lse":
            top = np.where(real, values, -np.inf).max(axis=-1, keepdims=True)
            t = np.exp(req.beta * (values - top))
        else:
            t = values.copy()
    return np.where(real, t, np.nan)


def padded_values(x: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The padded input as the windows read it: NaN for identity padding (it takes no part)."""
    return np.where(index >= 0, x.ravel()[np.maximum(index, 0)], np.where(index == -1, 0.0, np.nan))


def window_details(req: Any, run: Run, index: np.ndarray, values_p: np.ndarray) -> dict[str, Any]:
    """Every window's slots: input index, padded row/column, value and term; the winner."""
    g = run.geom
    rows = np.repeat(np.arange(index.shape[0])[:, None], index.shape[1], axis=1)
    cols = np.repeat(np.arange(index.shape[1])[None, :], index.shape[0], axis=0)
    out, k = g.out, math.prod(g.kernel)

    def windows(a: np.ndarray) -> np.ndarray:
        return window_view(a, g.kernel, g.stride, g.dilation, g.out).reshape(out + (k,))

    idx, vals = windows(index), windows(values_p)
    kernel = np.asarray(req.kernel, dtype=np.float64).ravel() if req.op in ("conv", "maxplus", "minplus") else None
    real = idx != -2
    terms = _terms(req.op, req, vals, real, kernel)
    winner = run.winner
    if run.winner_flat is not None:  # the first slot reading the chosen element (padding zero: -1)
        winner = np.argmax(idx == run.winner_flat[..., None], axis=-1)
    return {
        "index": idx.tolist(),
        "row": windows(rows).tolist(),
        "col": windows(cols).tolist(),
        "values": cells(vals),
        "terms": cells(terms),
        "winner": [[None] * out[1]] * out[0] if winner is None else winner.tolist(),
        "divisor": None if run.divisor is None else run.divisor.tolist(),
    }


def cells(a: np.ndarray) -> list:
    """Nested lists of floats, None where a value is not finite (JSON has no NaN or inf)."""
    a = np.asarray(a, dtype=np.float64)
    finite = np.isfinite(a)
    if finite.all():
        return a.tolist()
    obj = a.astype(object)
    obj[~finite] = None
    return obj.tolist()


def formulas(g: Geometry, ceil_mode: bool, padding: Any) -> list[str]:
    """The output-size formula per dim, with these numbers."""
    lines = []
    rnd = "ceil" if ceil_mode else "floor"
    for name, n, k, s, d, (lo, hi), o in zip(("H", "W"), g.in_size, g.kernel, g.stride, g.dilation, g.pads, g.out):
        room = n + lo + hi - d * (k - 1) - 1
        first = (-(-room // s) if ceil_mode else room // s) + 1
        text = (
            f"{name}_out = {rnd}(({name}_in + pad_lo + pad_hi - dilation*(kernel-1) - 1) / stride) + 1 "
            f"= {rnd}(({n} + {lo} + {hi} - {d}*({k}-1) - 1) / {s}) + 1 = {first}"
        )
        if first != o:
            text += f" - 1 = {o} (the last window would start in the padding: dropped)"
        if isinstance(padding, str):
            text += f"  [padding '{padding}' = ({lo}, {hi})]"
        lines.append(text)
    return lines


def compute_layer(req: AnyLayerRequest) -> dict[str, Any]:
    """Everything ``POST /api/layer`` answers (see :class:`~.schemas.LayerResponse`)."""
    x = np.asarray(req.input, dtype=np.float64)
    info = INFO[req.op]
    try:
        run = RUNNERS[req.op](req, x[None, None])
    except (ValueError, TypeError) as exc:
        raise LayerError(field_of(str(exc), req.op), str(exc)) from exc
    dy = np.ones_like(run.y) if req.grad_output is None else np.asarray(req.grad_output, dtype=np.float64)
    if dy.shape != run.y.shape:
        raise LayerError(
            "grad_output",
            f"grad_output must have the output's shape {list(run.y.shape)} (rows, columns), got {list(dy.shape)}",
        )
    gx, gk, gparams = run.backward(dy)
    g = run.geom
    assert g.out == run.y.shape, (g.out, run.y.shape)
    notes = list(run.notes)
    slots = math.prod(g.out) * math.prod(g.kernel)
    index = padded_index(g, run.mode)
    values_p = padded_values(x, index)
    windows = None
    if slots <= MAX_SLOTS:
        windows = window_details(req, run, index, values_p)
    else:
        notes.append(f"{slots:,} window slots are too many to list (at most {MAX_SLOTS:,}): use a smaller map.")
    padding_mode = getattr(req, "padding_mode", None)
    if padding_mode is None:
        padding_mode = {"conv": "zeros", "avg": "zeros", "lp": "none"}.get(req.op, "identity")
    return {
        "op": req.op,
        "description": info.description,
        "combine": info.combine,
        "reduce": info.reduce,
        "input_shape": list(x.shape),
        "output": cells(run.y),
        "output_shape": list(run.y.shape),
        "formula": "; ".join(formulas(g, getattr(req, "ceil_mode", False), getattr(req, "padding", 0))),
        "formulas": formulas(g, getattr(req, "ceil_mode", False), getattr(req, "padding", 0)),
        "kernel_size": list(g.kernel),
        "stride": list(g.stride),
        "dilation": list(g.dilation),
        "padding": [list(p) for p in g.pads],
        "padding_mode": padding_mode,
        "identity": info.identity if padding_mode == "identity" else None,
        "padded_input": cells(values_p),
        "padded_index": index.tolist(),
        "grad_output": dy.tolist(),
        "grad_input": cells(gx),
        "grad_kernel": None if gk is None else cells(gk),
        "grad_params": gparams,
        "windows": windows,
        "notes": notes,
    }
