"""Configuration: the backend switch, the implementation tables, what this machine runs.

* ``"compiled"`` - numba kernels where they apply (the default when numba is
  installed), the NumPy code elsewhere;
* ``"numpy"`` - the readable NumPy reference only.

``CONVPOOL_PURE_NUMPY=1`` in the environment makes ``"numpy"`` the default (and
skips importing numba at all).  In code::

    convpool.set_backend("numpy")          # from now on
    with convpool.backend("numpy"):         # for a block
        y = F.conv2d(x, w)
    with convpool.config.use("conv", "im2col"):   # one implementation, where it applies
        y = F.conv2d(x, w)
    print(convpool.config.describe("conv2d", input=(32, 64, 56, 56), weight=(64, 64, 3, 3), padding=1))

The switch is process-wide (not per thread): set it before starting threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from . import settings
from .backends import autotune, switch
from .backends.switch import BACKENDS, available_backends, backend, get_backend, set_backend
from .backends.tables import TABLES, ConvProblem, Verdict

__all__ = [
    "BACKENDS",
    "available_backends",
    "backend",
    "describe",
    "get_backend",
    "info",
    "set_autotune",
    "set_backend",
    "tables_text",
    "tuning",
    "use",
    "verdicts",
]


@contextmanager
def use(family: str, name: str) -> Iterator[None]:
    """Within the block, the ops of ``family`` (``"conv"``, ``"pool"``, ``"maxplus"`` or
    ``"conv_transpose"``) run the
    implementation ``name`` wherever it applies, the table's usual choice elsewhere.
    For benchmarks and tests: e.g. ``use("conv", "im2col")`` times the im2col+BLAS
    path against the default choice.  Names: ``describe()`` lists them."""
    if family not in TABLES:
        raise ValueError(f"family must be one of {sorted(TABLES)}, got {family!r}")
    TABLES[family].check_name(name)
    with switch.hold(family, name):
        yield


@contextmanager
def tuning(**values: Any) -> Iterator[settings.Tuning]:
    """Within the block, the engine's thresholds (:class:`convpool.settings.Tuning`: chunk
    sizes, when to trim, when to use threads, ...) take ``values``; results do not depend
    on them, only time and memory.  E.g. ``tuning(cols_budget=4096)`` cuts im2col into
    many chunks, ``tuning(threads=3, thread_min_work=0)`` splits every kernel call."""
    t = settings.TUNING
    for name, value in values.items():
        if name not in settings.NAMES:
            raise ValueError(f"tuning has no setting {name!r}; it has {', '.join(settings.NAMES)}")
        kind = float if isinstance(getattr(t, name), float) else int
        number = isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)
        if not (number or (name == "threads" and value is None)):
            raise TypeError(f"tuning {name} must be {'a number' if kind is float else 'an int'}, got {value!r}")
        if name == "threads" and value < 1:
            raise ValueError(f"tuning threads must be at least 1, got {value}")
    previous = {name: getattr(t, name) for name in values}
    for name, value in values.items():
        setattr(t, name, value)
    try:
        yield t
    finally:
        for name, value in previous.items():
            setattr(t, name, value)


def set_autotune(on: bool | None) -> None:
    """Measure instead of following the rules: with ``True``, the first call of each
    convolution shape times every compiled implementation that applies (forward and
    backward) and keeps the fastest (:mod:`convpool.backends.autotune`); ``False``: the
    tables' rules (deterministic, the default); ``None``: as ``CONVPOOL_AUTOTUNE`` says."""
    if on is not None and not isinstance(on, bool):
        raise TypeError(f"set_autotune takes True, False or None, got {on!r}")
    autotune.set_enabled(on)


def _shape(value: Any, name: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and v >= 0 for v in value):
        raise TypeError(f"{name} must be a shape (a tuple of non-negative ints), got {value!r}")
    return tuple(value)


def verdicts(op: str, **kw: Any) -> list[Verdict]:
    """Each implementation's verdict on one call of ``op``, as :func:`describe` prints it.

    ``op`` is a conv (``"conv1d"``, ``"conv2d"``, ``"conv3d"``; keywords ``input`` and
    ``weight`` shapes, ``stride``, ``padding``, ``dilation``, ``groups``,
    ``padding_mode``, ``dtype``) or a pool (``"max_pool2d"``, ``"avg_pool1d"``, ...;
    keywords ``input``, ``kernel_size``, ``stride``, ``padding``, ``dilation``,
    ``ceil_mode``, ``dtype``) or a transposed conv (``"conv_transpose2d"``, ...) or a
    max-plus / min-plus conv (``"maxplus_conv2d"``, ...; the conv's keywords, and
    ``padding_mode`` None for the identity padding; the weights taken finite).  No data
    is touched: the arrays are never filled.  The problem is the call's as given: a
    zero-padded call whose padding reaches far past its input runs as a trimmed
    sub-problem (``functional/_trim.py``), whose verdict can differ; an empty call (a 0 in
    the batch or the channels) computes nothing, whatever row the verdicts name."""
    from .functional import _common, _reduce
    from .functional.reductions import get_reduction

    dtype = np.dtype(kw.pop("dtype", "float32"))
    x_shape = _shape(kw.pop("input", None), "input")
    if op in ("conv1d", "conv2d", "conv3d"):
        nd = int(op[4])
        w_shape = _shape(kw.pop("weight", None), "weight")
        groups = kw.pop("groups", 1)
        mode = geometry_mode(kw.pop("padding_mode", "zeros"))
        x = np.empty(x_shape, dtype=dtype)
        w = np.empty(w_shape, dtype=dtype)
        _common.check_weight(x, w, None, nd, groups)
        g = _common.make_geometry(
            x_shape[2:], nd, w_shape[2:], kw.pop("stride", 1), kw.pop("padding", 0), kw.pop("dilation", 1)
        )
        _no_more(kw, op)
        return TABLES["conv"].verdicts(ConvProblem(x, w, g, groups, mode))
    if op in ("conv_transpose1d", "conv_transpose2d", "conv_transpose3d"):
        from .backends.tables import ConvTransposeProblem
        from .functional import conv_transpose as CT

        nd = int(op[-2])
        w_shape = _shape(kw.pop("weight", None), "weight")
        x, w = np.empty(x_shape, dtype=dtype), np.empty(w_shape, dtype=dtype)
        groups = kw.pop("groups", 1)
        stride = geometry_tuple(kw.pop("stride", 1), nd, "stride")
        dilation = geometry_tuple(kw.pop("dilation", 1), nd, "dilation")
        padding = CT.check_padding(kw.pop("padding", 0), nd)
        op_pad = CT.check_output_padding(kw.pop("output_padding", 0), stride, dilation)
        _no_more(kw, op)
        out = CT.min_output_size(x_shape[2:], w_shape[2:], stride, padding, dilation)
        y_shape = (x_shape[0], w_shape[1] * groups) + tuple(o + q for o, q in zip(out, op_pad, strict=True))
        problem = ConvTransposeProblem(x, w, None, y_shape, stride, padding, dilation, groups)
        return TABLES["conv_transpose"].verdicts(problem)
    for stem, sign in (("maxplus_conv", 1.0), ("minplus_conv", -1.0)):
        if op.startswith(stem) and op[len(stem) :] in ("1d", "2d", "3d"):
            from .functional import maxplus

            w_shape = _shape(kw.pop("weight", None), "weight")
            x, w = np.empty(x_shape, dtype=dtype), np.zeros(w_shape, dtype=dtype)  # finite weights
            stride, padding, dilation = kw.pop("stride", 1), kw.pop("padding", 0), kw.pop("dilation", 1)
            groups, mode = kw.pop("groups", 1), kw.pop("padding_mode", None)
            _no_more(kw, op)
            mp, _ = maxplus.problem(x, w, None, stride, padding, dilation, groups, mode, int(op[-2]), sign)
            return TABLES["maxplus"].verdicts(mp)
    for stem, reduction in (("max_pool", "max"), ("avg_pool", "sum"), ("min_pool", "min"), ("median_pool", "median")):
        if op.startswith(stem) and op[len(stem) :] in ("1d", "2d", "3d"):
            nd = int(op[-2])
            g = _common.make_geometry(
                x_shape[2:],
                nd,
                kw.pop("kernel_size"),
                kw.pop("stride", None),
                kw.pop("padding", 0),
                kw.pop("dilation", 1),
                kw.pop("ceil_mode", False),
                pool=True,
            )
            _no_more(kw, op)
            x = np.empty(x_shape, dtype=dtype)
            return TABLES["pool"].verdicts(_reduce.pool_problem(x, get_reduction(reduction), g, None))
    raise ValueError(
        "op must be conv1d/2d/3d, conv_transpose1d/2d/3d, maxplus_conv/minplus_conv 1d/2d/3d or "
        f"max_pool/avg_pool/min_pool/median_pool 1d/2d/3d, got {op!r}"
    )


def geometry_tuple(value: Any, nd: int, name: str) -> tuple[int, ...]:
    from .geometry import ntuple

    return ntuple(value, nd, name)


def geometry_mode(padding_mode: str) -> str:
    from .geometry import check_padding_mode

    return check_padding_mode(padding_mode)


def _no_more(kw: dict[str, Any], op: str) -> None:
    if kw:
        raise TypeError(f"describe({op!r}) got unexpected keywords {sorted(kw)}")


def tables_text() -> str:
    """Every family's implementations in order of preference, one line each: backend and
    what it does (the README's table is this text)."""
    lines = []
    for family, table in TABLES.items():
        lines.append(f"{family}:")
        held = switch.held(family)
        for row in table.rows:
            mark = " (held by config.use)" if row.name == held else ""
            lines.append(f"  {row.name:<15} {row.backend:<9} {row.summary}{mark}")
    return "\n".join(lines)


def describe(op: str | None = None, **kw: Any) -> str:
    """The implementation tables as text.  Without arguments: the backend, then every
    family's rows in order of preference (:func:`tables_text`).  With ``op`` and shapes
    (see :func:`verdicts`): which implementation that call would use on the current
    backend, and why each row does or does not apply."""
    lines = [f"backend: {get_backend()} (available: {', '.join(available_backends())})"]
    if op is None:
        return "\n".join([*lines, tables_text()])
    lines.append(f"{op}({', '.join(f'{k}={v!r}' for k, v in kw.items())}):")
    for v in verdicts(op, **kw):
        status = "CHOSEN" if v.chosen else ("applies" if v.reason is None else f"no: {v.reason}")
        lines.append(f"  {v.name:<15} {v.backend:<9} {status}")
    return "\n".join(lines)


def info() -> dict[str, str]:
    """What this installation runs on: version, backend, CPU and its vector ISA, numba's
    threads, NumPy's BLAS (what ``convpool info`` prints).  Name the CPU beside any
    timing: kernels and BLAS differ between AVX2 and AVX-512 machines."""
    import platform

    import numpy as np

    from . import _blas
    from ._version import __version__
    from .backends.compiled import kernels as _kernels

    flags = _blas.cpu_flags()
    isa = "AVX-512" if "avx512f" in flags else "AVX2/FMA" if {"avx2", "fma"} <= flags else platform.machine()
    out = {
        "convpool": __version__,
        "backend": f"{get_backend()} (available: {', '.join(available_backends())})",
        "cpu": _cpu_model() or platform.processor() or platform.machine(),
        "vector ISA": isa,
        "numpy": np.__version__,
    }
    if _kernels.AVAILABLE:
        import llvmlite.binding as llvm
        import numba

        target = numba.config.CPU_NAME or llvm.get_host_cpu_name()
        out["numba"] = f"{numba.__version__}, {_kernels.num_threads()} threads, target CPU {target}"
        if _kernels.DIRECT:
            from .backends.compiled.direct import tile_info

            tile = tile_info()
            out["SIMD tile"] = f"{tile['isa']}, {tile['lanes']} lanes, conv {tile['conv tile']} ({tile['reason']})"
        else:
            out["SIMD tile"] = "off (CONVPOOL_NO_DIRECT or no llvmlite): im2col + BLAS"
    limiter = _kernels.blas_limiter()
    if limiter is not None:
        for lib in limiter.info():
            if lib.get("user_api") == "blas":
                core = lib.get("architecture") or "?"
                out["blas"] = (
                    f"{lib.get('internal_api')} {lib.get('version')} ({core}, {lib.get('num_threads')} threads)"
                )
                break
    return out


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None
