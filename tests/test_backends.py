"""The implementation tables, the backend switch and describe(): the public ways to see
and steer which implementation runs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import convpool
import convpool.functional as F
from convpool import config
from convpool.backends.tables import CONV, POOL

COMPILED = "compiled" in convpool.available_backends()


def test_readme_table_is_describe() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = re.search(r"<!-- describe -->\n```\n(.*?)\n```\n<!-- /describe -->", readme, re.S)
    assert block is not None, "README.md lost its describe block"
    assert block.group(1) == config.tables_text(), "README's table is stale: paste config.tables_text()"


def test_every_row_loads_and_has_the_protocol() -> None:
    for table in (CONV, POOL):
        assert table.rows[-1].name == "reference" and table.rows[-1].backend == "numpy"
        for row in table.rows:
            if row.backend == "compiled" and not COMPILED:
                continue
            impl = row.load()
            for fn in ("why_not", "forward", "backward"):
                assert callable(getattr(impl, fn)), f"{row.name} lacks {fn}"
            if table is POOL:
                assert callable(impl.flat_indices)


@pytest.mark.skipif(not COMPILED, reason="numba not installed")
@pytest.mark.parametrize(
    ("kw", "chosen"),
    [
        ({"input": (2, 8, 16, 16), "weight": (4, 8, 3, 3), "padding": 1}, "direct-wide"),
        ({"input": (2, 8, 16, 16), "weight": (4, 8, 3, 3), "padding": 1, "dtype": "float64"}, "im2col"),
        ({"input": (2, 8, 16, 16), "weight": (8, 1, 3, 3), "groups": 8}, "direct-stencil"),
        ({"input": (2, 8, 16, 16), "weight": (8, 1, 3, 3), "groups": 8, "stride": 2}, "depthwise-loop"),
        ({"input": (2, 8, 16, 16), "weight": (4, 8, 1, 1)}, "pointwise"),
    ],
)
def test_describe_names_the_implementation_that_runs(kw: dict, chosen: str) -> None:
    verdicts = config.verdicts("conv2d", **kw)
    assert [v.name for v in verdicts if v.chosen] == [chosen]
    assert all(v.reason for v in verdicts[: [v.name for v in verdicts].index(chosen)])  # each earlier row says why not
    x = np.random.default_rng(0).standard_normal(kw["input"]).astype(kw.get("dtype", "float32"))
    w = np.random.default_rng(1).standard_normal(kw["weight"]).astype(x.dtype)
    _, ctx = F.conv_forward(x, w, None, kw.get("stride", 1), kw.get("padding", 0), 1, kw.get("groups", 1))
    assert ctx.name == chosen
    assert chosen in config.describe("conv2d", **kw).split("CHOSEN")[0].splitlines()[-1]


@pytest.mark.skipif(not COMPILED, reason="numba not installed")
def test_pool_table_choices() -> None:
    x = np.random.default_rng(0).standard_normal((2, 3, 12, 12)).astype(np.float32)
    for kw, name in (
        ({"kernel_size": 2}, "tiles-2x2"),
        ({"kernel_size": 3}, "tiles"),
        ({"kernel_size": 3, "stride": 1}, "separable"),
    ):
        assert [v.name for v in config.verdicts("max_pool2d", input=x.shape, **kw) if v.chosen] == [name]
        _, ctx = F.reduce_window_forward(x, "max", 2, kw["kernel_size"], kw.get("stride"))
        assert ctx.name == name
    assert [v.name for v in config.verdicts("median_pool2d", input=x.shape, kernel_size=2) if v.chosen] == [
        "index-tables"
    ]


def test_numpy_backend_chooses_the_reference() -> None:
    with convpool.backend("numpy"):
        assert [v.name for v in config.verdicts("conv1d", input=(1, 2, 9), weight=(3, 2, 3)) if v.chosen] == [
            "reference"
        ]
        verdict = config.verdicts("conv1d", input=(1, 2, 9), weight=(3, 2, 3))[0]
        assert verdict.reason == "the backend is 'numpy'"
        x = np.ones((1, 2, 9), np.float32)
        assert F.conv_forward(x, np.ones((3, 2, 3), np.float32))[1].name == "reference"


@pytest.mark.skipif(not COMPILED, reason="numba not installed")
def test_use_holds_a_family_where_it_applies_and_restores() -> None:
    x = np.random.default_rng(0).standard_normal((2, 4, 10, 10)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((6, 4, 3, 3)).astype(np.float32)
    y0, ctx0 = F.conv_forward(x, w, None, 1, 1)
    with config.use("conv", "im2col"):
        y1, ctx1 = F.conv_forward(x, w, None, 1, 1)
        assert "(held by config.use)" in config.describe()
        with config.use("conv", "pointwise"):  # does not apply to 3x3: the table's order after it
            assert F.conv_forward(x, w, None, 1, 1)[1].name == "direct-wide"
        assert F.conv_forward(x, w, None, 1, 1)[1].name == "im2col"
    assert (ctx0.name, ctx1.name) == ("direct-wide", "im2col")
    assert F.conv_forward(x, w, None, 1, 1)[1].name == "direct-wide"
    np.testing.assert_allclose(y0, y1, rtol=1e-4, atol=1e-4)
    dy = np.ones_like(y0)
    for a, b in zip(F.conv_backward(dy, ctx0)[:2], F.conv_backward(dy, ctx1)[:2]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


@pytest.mark.skipif(not COMPILED, reason="numba not installed")
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_describe_maxplus_names_the_implementation_that_runs(sign: float) -> None:
    op = "maxplus_conv1d" if sign > 0 else "minplus_conv1d"
    kw = {"input": (2, 4, 20), "weight": (6, 2, 3), "groups": 2, "padding": 1}
    verdicts = config.verdicts(op, **kw)
    x = np.random.default_rng(0).standard_normal(kw["input"]).astype(np.float32)
    w = np.random.default_rng(1).standard_normal(kw["weight"]).astype(np.float32)
    forward = F.maxplus_conv_forward if sign > 0 else F.minplus_conv_forward
    _, ctx = forward(x, w, None, 1, 1, 1, 2)
    assert [v.name for v in verdicts if v.chosen] == [ctx.name] == ["wide-runs"]
    with convpool.backend("numpy"):
        assert [v.name for v in config.verdicts(op, **kw) if v.chosen] == ["reference"]
        assert forward(x, w, None, 1, 1, 1, 2)[1].name == "reference"
    assert "wide-runs" in config.describe(op, **kw).split("CHOSEN")[0].splitlines()[-1]
    with pytest.raises(TypeError, match="unexpected keywords \\['ceil_mode'\\]"):
        config.describe(op, **kw, ceil_mode=True)


def test_bad_arguments_name_themselves() -> None:
    with pytest.raises(
        ValueError, match="family must be one of \\['conv', 'conv_transpose', 'maxplus', 'pool'\\], got 'pooling'"
    ):
        with config.use("pooling", "tiles"):
            pass
    with pytest.raises(ValueError, match="conv has no implementation 'blas'; it has direct-stencil"):
        with config.use("conv", "blas"):
            pass
    with pytest.raises(ValueError, match="op must be conv1d/2d/3d, conv_transpose1d/2d/3d, maxplus_conv/minplus_conv"):
        config.describe("linear", input=(1, 2))
    with pytest.raises(TypeError, match="input must be a shape"):
        config.describe("conv2d", input="big", weight=(1, 1, 1, 1))
    with pytest.raises(TypeError, match="unexpected keywords \\['bias'\\]"):
        config.describe("conv2d", input=(1, 1, 4, 4), weight=(1, 1, 3, 3), bias=True)
    with pytest.raises(ValueError, match="backend must be one of"):
        convpool.set_backend("gpu")


def test_info_names_the_tile() -> None:
    info = config.info()
    if COMPILED:
        assert "SIMD tile" in info and "target CPU" in info["numba"]


def test_tuning_sets_and_restores_thresholds() -> None:
    from convpool.settings import TUNING

    before = TUNING.cols_budget
    with config.tuning(cols_budget=4096, threads=2) as t:
        assert t.cols_budget == 4096 and TUNING.threads == 2
    assert TUNING.cols_budget == before and TUNING.threads is None
    with pytest.raises(ValueError, match="tuning has no setting 'budget'; it has cols_budget"):
        with config.tuning(budget=1):
            pass
    with pytest.raises(TypeError, match="tuning cols_budget must be an int, got '4k'"):
        with config.tuning(cols_budget="4k"):
            pass
    with pytest.raises(ValueError, match="tuning threads must be at least 1, got 0"):
        with config.tuning(threads=0):
            pass
    assert TUNING.cols_budget == before


@pytest.mark.skipif(not COMPILED, reason="numba not installed")
def test_autotune_measures_once_per_shape_and_keeps_a_fit_winner() -> None:
    from convpool.backends import autotune

    x = np.random.default_rng(0).standard_normal((2, 4, 12, 12)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((6, 4, 3, 3)).astype(np.float32)
    y0, ctx0 = F.conv_forward(x, w, None, 1, 1)
    autotune.forget()
    config.set_autotune(True)
    try:
        y1, ctx1 = F.conv_forward(x, w, None, 1, 1)
        assert len(autotune.winners()) == 1
        assert ctx1.name in ("direct-wide", "im2col")  # the two compiled rows that apply
        y2, ctx2 = F.conv_forward(x + 1, w, None, 1, 1)  # same shape: no new measurement
        assert len(autotune.winners()) == 1 and ctx2.name == ctx1.name
        with config.use("conv", "im2col"):  # a held family is not measured
            assert F.conv_forward(x, w, None, 1, 1)[1].name == "im2col"
        F.conv_forward(x[:1], w, None, 1, 1)
        assert len(autotune.winners()) == 2
    finally:
        config.set_autotune(None)
        autotune.forget()
    np.testing.assert_allclose(y0, y1, rtol=1e-4, atol=1e-4)
    assert F.conv_forward(x, w, None, 1, 1)[1].name == "direct-wide"  # the rules again
    with pytest.raises(TypeError, match="set_autotune takes True, False or None, got 'yes'"):
        config.set_autotune("yes")  # type: ignore[arg-type]


def test_conv_transpose_table_choices() -> None:
    big = {"input": (32, 64, 28, 28), "weight": (64, 32, 4, 4), "stride": 2, "padding": 1}
    assert [v.name for v in config.verdicts("conv_transpose2d", **big) if v.chosen] == ["subpixel"]
    small = {"input": (2, 8, 7, 7), "weight": (8, 4, 4, 4), "stride": 2}
    verdicts = config.verdicts("conv_transpose2d", **small)
    assert [v.name for v in verdicts if v.chosen] == ["col2im"]
    assert verdicts[0].reason == "a small problem: W^T x + col2im was measured faster"
    with config.use("conv_transpose", "subpixel"):  # held: what it declines on speed, it runs
        assert [v.name for v in config.verdicts("conv_transpose2d", **small) if v.chosen] == ["subpixel"]
