"""The pooling kernels compile at LLVM -O2 and leave numba's level as they found it.

:data:`convpool.backends.compiled.threads.KERNEL_O2` compiles through a numba compiler
that lowers ``numba.core.config.OPT`` to 2 for the length of one compilation (numba reads
the level there when it builds LLVM's pass pipelines).  Every kernel of the pooling
modules and the layout copies uses it, the convolution kernels do not, and the level
comes back afterwards - also when a compilation fails - so a user's own numba functions
compile as they would without convpool."""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest
from numba import njit
from numba.core import config, errors
from numba.core.compiler import CompilerBase
from numba.core.registry import CPUDispatcher

from convpool.backends.compiled import threads

O2_MODULES = [  # the pooling kernels and the convolution's layout copies
    "direct.relayout",
    "median_rank",
    "pool_kernels",
    "pool_route",
    "pool_simd",
    "rowsum",
    "separable_kernels",
    "tiled_kernels",
    "tiled_pairs",
    "tiled_sum",
]


@pytest.fixture
def levels(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The LLVM level in force while each compilation in the test runs its pipeline."""
    seen: list[int] = []
    core = CompilerBase._compile_core

    def record(self):  # type: ignore[no-untyped-def]
        seen.append(int(config.OPT))
        return core(self)

    monkeypatch.setattr(CompilerBase, "_compile_core", record)
    return seen


def _add(a, b):  # type: ignore[no-untyped-def]
    return a + b


def test_o2_kernels_compile_at_level_2_and_restore_it(levels: list[int]) -> None:
    before = config.OPT
    assert njit(**{**threads.KERNEL_O2, "cache": False})(_add)(1, 2) == 3
    assert levels == [min(2, int(before))]
    assert config.OPT is before
    njit(**{**threads.KERNEL, "cache": False})(_add)(1.0, 2.0)
    assert levels[-1] == int(before)  # the convolution kernels' options: numba's level


def test_failed_compilation_restores_the_level() -> None:
    before = config.OPT

    def bad(a):  # type: ignore[no-untyped-def]
        return a.no_such_attribute

    with pytest.raises(errors.TypingError):
        njit(**{**threads.KERNEL_O2, "cache": False})(bad)(np.zeros(2))
    assert config.OPT is before


@pytest.mark.parametrize("user", ["0", "1", "max"])
def test_a_users_lower_or_max_level_is_kept(levels: list[int], monkeypatch: pytest.MonkeyPatch, user: str) -> None:
    setting = config._process_opt_level(user)
    monkeypatch.setattr(config, "OPT", setting)
    njit(**{**threads.KERNEL_O2, "cache": False})(_add)(1, 2)
    assert levels == [int(setting)]  # "max" is level 3 with extra passes: not lowered
    assert config.OPT is setting


@pytest.mark.parametrize("name", O2_MODULES)
def test_every_pooling_and_layout_kernel_compiles_at_level_2(name: str) -> None:
    module = importlib.import_module(f"convpool.backends.compiled.{name}")
    decorators = [line.strip() for line in inspect.getsource(module).splitlines() if line.strip().startswith("@njit(")]
    kernels = [d for d in decorators if 'inline="always"' not in d]  # helpers compile into their callers
    assert kernels, f"no kernels in {name}"
    assert all(d.startswith("@njit(**KERNEL_O2") for d in kernels), kernels
    for d in vars(module).values():  # and those built at import went through the -O2 compiler
        if isinstance(d, CPUDispatcher) and d.targetoptions.get("cache"):
            assert d._compiler.pipeline_class is threads._Level2Compiler, f"{name}.{d.py_func.__name__}"


def test_the_convolution_kernels_keep_numbas_level() -> None:
    from convpool.backends.compiled.direct import depthwise, wide

    for module in (wide, depthwise):
        assert "KERNEL_O2" not in inspect.getsource(module)


def _seventh_extent(a):  # type: ignore[no-untyped-def]
    return a.shape[6]  # a tuple index by a constant


@pytest.mark.parametrize("options", ["KERNEL", "KERNEL_O2"])
def test_kernels_skip_the_array_expression_rewrites_and_keep_static_indexing(options: str) -> None:
    """No pass looking for whole-array expressions runs, and ``a.shape[6]`` becomes a
    static index - compiles one function, not also numba's tuple-indexing overload (what
    numba's ``no_rewrites`` leads to: 0.06 s for each index of each tuple type)."""
    from numba.core import event

    compiled: list[str] = []

    class Listener(event.Listener):
        def on_start(self, ev: event.Event) -> None:
            pass

        def on_end(self, ev: event.Event) -> None:
            compiled.append(ev.data["dispatcher"].py_func.__qualname__)

    kernel = njit(**{**getattr(threads, options), "cache": False})(_seventh_extent)
    with event.install_listener("numba:compile", Listener()):
        assert kernel(np.zeros((1, 1, 1, 1, 1, 1, 9))) == 9
    assert compiled == ["_seventh_extent"]
    (times,) = kernel.get_metadata(kernel.signatures[0])["pipeline_times"].values()
    passes = {name.split("_", 1)[1] for name in times}
    assert "nopython_type_inference" in passes and "generic_rewrites" in passes
    assert "nopython_rewrites" not in passes
