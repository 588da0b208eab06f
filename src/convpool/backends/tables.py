"""The tables that choose an implementation: one ordered table per op family.

An implementation is a module (one file) with::

    why_not(problem) -> str | None        # None: it applies; else the reason it does not
    declines(problem) -> str | None       # optional: it could, but was measured slower here
    forward(problem) -> (y, state)        # y: (N, C_out, *out)
    backward(dy, state, ...) -> ...       # the family's gradients, from the state
    FUSES_BIAS = True                     # optional, conv: forward adds problem.bias itself

(conv: ``backward(dy, state, input_grad) -> (dx, dw)``; pool: ``backward(dy, state)`` and
``flat_indices(state)``; max-plus: ``backward(dy, state, input_grad) -> (dx, dw, db)``;
conv_transpose rows have ``forward(problem) -> y`` only: their backward is one conv,
whichever row ran.)

A table lists the implementations in order of preference with the backend each
belongs to; the first whose backend is active and which applies runs.  This is the
only place that decides: the functional ops call :meth:`Table.choose` and keep the
implementation with the state, so backward is ``impl.backward(dy, state, ...)``.
Adding an implementation is one new module and one row here.  Modules are imported
on first use (compiled rows only while the compiled backend runs; numba itself is
loaded at import unless ``CONVPOOL_PURE_NUMPY`` is set).

The conv and pool tables remember their choice per problem key (:func:`conv_key`,
:func:`pool_key`: shapes, dtypes, windows - all their rules read), with the switch's
generation (:func:`convpool.backends.switch.generation`: the backend and
``config.use``) and the thresholds of :mod:`convpool.settings` in the key, so a change
of any of them decides afresh; at most :data:`CHOICES_MAX` entries per table.
Autotuning keeps its own choices (:mod:`.autotune`).

``convpool.config.describe()`` prints each table's verdicts for given shapes, and
``convpool.config.use(family, name)`` holds a family to one implementation where it
applies (for benchmarks and tests).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from ..geometry import Geometry
from ..settings import TUNING
from . import autotune, switch

_LOADED: dict[str, ModuleType] = {}  # row module -> the imported implementation
CHOICES_MAX = 256  # choices a table keeps (per problem key); past it the table starts over


@dataclass(eq=False, slots=True)
class ConvProblem:
    """A convolution as the implementations see it: the batched input ``(N, C, *in)``,
    the weight ``(C_out, C_in/groups, *kernel)``, the windows, the groups, the
    padding mode (``'constant'`` for zeros, else a border mode) and the bias (or None;
    not part of :func:`conv_key`: no row's choice depends on it).  Not frozen: a frozen
    dataclass sets each field through ``object.__setattr__``, 5x the time of plain
    assignments (about 2 us a call, in every convolution); the rows only read it."""

    x: np.ndarray
    weight: np.ndarray
    g: Geometry
    groups: int
    mode: str
    # the bias (C_out,), in the input's dtype, or None: an implementation whose module sets
    # FUSES_BIAS = True returns its output with the bias added; for the others the caller adds it
    bias: np.ndarray | None = None
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # rows share findings

    @property
    def cg(self) -> int:
        """Input channels per group."""
        return int(self.weight.shape[1])


def conv_key(p: ConvProblem) -> tuple[Any, ...]:
    return (p.x.shape, p.x.dtype, p.weight.shape, p.weight.dtype, p.g, p.groups, p.mode)


@dataclass(eq=False, slots=True)  # not frozen: see ConvProblem
class PoolProblem:
    """A window reduction: the batched input, the reduction (a
    :class:`convpool.functional.reductions.Reduction`), the windows, and the padding
    (a border mode, or None for the reduction's identity).  ``builtin`` names a
    built-in reduction the compiled kernels know ("max", "min", "median", "sum"; None
    for a user's own), ``selects_one`` says the reduction picks one element per window."""

    x: np.ndarray
    reduction: Any
    g: Geometry
    mode: str | None
    builtin: str | None
    selects_one: bool


def pool_key(p: PoolProblem) -> tuple[Any, ...]:
    return (p.x.shape, p.x.dtype, type(p.reduction), p.g, p.mode, p.builtin, p.selects_one)


@dataclass(frozen=True)
class MaxPlusProblem:
    """A max-plus (``sign`` 1) or min-plus (``sign`` -1) convolution: the batched input,
    the weight and bias in the input's dtype, the windows, the groups and the padding
    (None: the reduction's identity; else a border mode, 'constant' for zeros)."""

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray
    g: Geometry
    groups: int
    mode: str | None
    sign: float


@dataclass(frozen=True)
class ConvTransposeProblem:
    """A transposed convolution: the batched input ``(N, C_in, *in)``, the weight
    ``(C_in, C_out/groups, *kernel)`` and bias, the batched output shape, and the
    per-dim stride, padding (symmetric) and dilation."""

    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    y_shape: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int

    @property
    def work(self) -> int:
        """Multiply-adds: every input element times a kernel per output channel of its group."""
        return int(np.prod(self.x.shape)) * int(self.weight.shape[1]) * int(np.prod(self.weight.shape[2:]))

    @property
    def phases(self) -> int:
        return int(np.prod(self.stride))


@dataclass(frozen=True)
class Row:
    name: str
    backend: str  # "numpy", "compiled", or "any" (composed of ops that run on either)
    module: str  # dotted path, relative to convpool.backends (or absolute: "convpool....")
    summary: str

    def load(self) -> ModuleType:
        impl = _LOADED.get(self.module)
        if impl is None:
            name = self.module if self.module.startswith("convpool.") else f"{__package__}.{self.module}"
            impl = _LOADED[self.module] = importlib.import_module(name)
        return impl

    def reason(self, problem: Any, held: bool) -> str | None:
        """Why this row does not take ``problem``: ``why_not`` (it cannot), then, unless
        the family is held to it, ``declines`` (it could, but was measured slower there)."""
        impl = self.load()
        reason = impl.why_not(problem)
        if reason is None and not held and hasattr(impl, "declines"):
            reason = impl.declines(problem)
        return reason


@dataclass(frozen=True)
class Verdict:
    name: str
    backend: str
    summary: str
    reason: str | None  # None: it applies
    chosen: bool


class Table:
    """An ordered list of implementations of one op family."""

    def __init__(
        self, family: str, rows: list[Row], problem_key: Callable[[Any], tuple[Any, ...]] | None = None
    ) -> None:
        assert rows and rows[-1].backend in ("numpy", "any"), "the last row runs everywhere: it always applies"
        self.family = family
        self.rows = rows
        # the choice depends on nothing but this key (None: on more, e.g. values: not cached)
        self.problem_key = problem_key
        self._chosen: dict[tuple[Any, ...], Row] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.rows)

    def _active(self, row: Row) -> str | None:
        """Why ``row``'s backend cannot run now, or None."""
        if row.backend in ("numpy", "any"):
            return None
        if switch.get_backend() != "compiled":
            return f"the backend is {switch.get_backend()!r}"
        return None

    def verdicts(self, problem: Any) -> list[Verdict]:
        """Every row's verdict on ``problem``, the chosen one marked."""
        out, chosen = [], self._decide(problem)
        held = switch.held(self.family)
        for row in self.rows:
            reason = self._active(row)
            if reason is None:
                reason = row.reason(problem, row.name == held)
            out.append(Verdict(row.name, row.backend, row.summary, reason, row is chosen))
        return out

    def _choose_row(self, problem: Any) -> Row:
        key = self._key(problem)
        if key is None:
            return self._decide(problem)
        row = self._chosen.get(key)
        if row is None:
            row = self._decide(problem)
            if len(self._chosen) >= CHOICES_MAX:
                self._chosen.clear()
            self._chosen[key] = row
        return row

    def _key(self, problem: Any) -> tuple[Any, ...] | None:
        """What the choice for ``problem`` is cached under, or None (not cached): the
        problem's own key (its shapes, dtypes, windows: everything the rows' rules read)
        with the switch's generation (backend, held implementations) and the thresholds.
        Not while autotuning: the measurement keeps its own choices."""
        if self.problem_key is None or autotune.enabled():
            return None
        return (self.problem_key(problem), switch.generation(), tuple(vars(TUNING).values()))

    def forget(self) -> None:
        """Drop the cached choices (after changing a rule's inputs by hand, e.g. in a test)."""
        self._chosen.clear()

    def _decide(self, problem: Any) -> Row:
        held = switch.held(self.family)
        rows = self.rows
        if held is not None:  # the held implementation first, the table's order after it
            rows = sorted(rows, key=lambda r: r.name != held)
        elif autotune.enabled() and self.family in autotune.KEYS:  # measured: the fastest compiled row
            compiled = [r for r in rows if r.backend == "compiled" and self._active(r) is None]
            fit = [(r.name, impl) for r in compiled if (impl := r.load()).why_not(problem) is None]
            name = autotune.pick(self.family, problem, fit)
            if name is not None:
                return next(r for r in rows if r.name == name)
        for row in rows:
            if self._active(row) is None and row.reason(problem, row.name == held) is None:
                return row
        raise AssertionError(f"no {self.family} implementation applies")  # the reference always does

    def choose(self, problem: Any) -> ModuleType:
        """The implementation (module) that runs ``problem``."""
        return self._choose_row(problem).load()

    def name_of(self, impl: ModuleType) -> str:
        """The row name of an implementation module."""
        for row in self.rows:
            if impl.__name__ in (row.module, f"{__package__}.{row.module}"):
                return row.name
        raise KeyError(impl.__name__)

    def check_name(self, name: str) -> None:
        if name not in self.names:
            raise ValueError(f"{self.family} has no implementation {name!r}; it has {', '.join(self.names)}")


CONV = Table(
    "conv",
    [
        Row("direct-stencil", "compiled", "compiled.conv_stencil", "float32 depthwise, stride 1: SIMD plane stencil"),
        Row("direct-wide", "compiled", "compiled.conv_wide", "float32 windows > 1: SIMD shifted runs, any stride"),
        Row("depthwise-loop", "compiled", "compiled.conv_depthwise", "one input channel per group: a compiled loop"),
        Row("pointwise", "compiled", "compiled.conv_pointwise", "1x1, stride 1, no padding: in place (SIMD or BLAS)"),
        Row("im2col", "compiled", "compiled.conv_im2col", "compiled im2col into a workspace + BLAS, chunked"),
        Row("reference", "numpy", "numpy.conv", "NumPy: window view, one copy into columns, one matmul"),
    ],
    conv_key,
)

POOL = Table(
    "pool",
    [
        Row("tiles-2x2", "compiled", "compiled.pool_2x2", "2x2 windows with stride 2: kernels of their own"),
        Row("tiles", "compiled", "compiled.pool_tiles", "windows that tile the input: whole-row loops"),
        Row("separable", "compiled", "compiled.pool_separable", "max/min, any windows: rows, then columns (2k reads)"),
        Row("index-tables", "compiled", "compiled.pool_tables", "any windows: one index table per dimension"),
        Row("reference", "numpy", "numpy.pool", "NumPy: pad, window view, reduce; scatter-add back"),
    ],
    pool_key,
)

MAXPLUS = Table(
    "maxplus",
    [
        Row("wide-runs", "compiled", "compiled.maxplus_conv", "finite weights: phase layout, add + max in runs"),
        Row("reference", "numpy", "numpy.maxplus", "NumPy: one vectorised update per (channel, tap)"),
    ],
)

CONV_TRANSPOSE = Table(
    "conv_transpose",
    [
        Row(
            "subpixel",
            "any",
            "convpool.functional._conv_transpose_subpixel",
            "kernel a multiple of the stride: one conv, then depth-to-space",
        ),
        Row(
            "phases",
            "any",
            "convpool.functional._conv_transpose_phases",
            "one stride-1 conv per output phase (stride 1: one conv)",
        ),
        Row(
            "col2im", "any", "convpool.functional._conv_transpose_adjoint", "conv's input gradient: W^T x, then col2im"
        ),
    ],
)

TABLES = {"conv": CONV, "pool": POOL, "maxplus": MAXPLUS, "conv_transpose": CONV_TRANSPOSE}
