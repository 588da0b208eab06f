"""The benchmark runs and reports what it claims (no timing assertions): the command end to
end on one small case, the grouping and geometric means on made-up timings, the path
check, the ``--isa`` settings and their validation, and the cases' fairness (the same
network, weights and loss in both libraries)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from convpool.tools import bench, bench_cases, bench_isa, bench_report, bench_steps, cli

torch = pytest.importorskip("torch", reason="the benchmark compares with PyTorch (test extra)")


def test_bench_quick_only_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b.json"
    assert cli.main(["bench", "--quick", "--only", "max_pool1d k2", "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    (row,) = saved["rows"]
    assert row["case"].startswith("max_pool1d k2") and row["group"] == "pool"
    for key in ("ours_fwd", "torch_fwd", "ours_bwd", "torch_bwd", "ratio_fwd", "ratio_bwd", "gbs_fwd"):
        assert row[key] > 0
    assert saved["limits"]["matmul_gflops"] > 0 and saved["limits"]["copy_gbs"] > 0
    assert saved["isa"] == "native" and saved["quick"] and saved["only"] == "max_pool1d k2"
    assert saved["groups"]["pool"]["n"] == 2 and saved["geomean_pool"] > 0
    assert math.isnan(saved["geomean_conv"]) and "resnet_peak_mib" not in saved  # --only: no memory probe
    assert saved["environment"]["cpu"] and "numba_target_cpu" in saved["environment"]
    text = capsys.readouterr().out
    assert "pooling (fwd, bwd)" in text and "--isa native: CPU" in text and "GEMM" in text and "GB/s" in text


def test_bench_only_matching_nothing_names_the_cases(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--quick", "--only", "no such case"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--only 'no such case' matches no case" in err and "conv2d ResNet" in err


def test_suite_cases_have_unique_names_and_known_groups() -> None:
    for quick in (False, True):
        specs = bench_cases.suite(quick)
        names = [s.name for s in specs]
        assert len(set(names)) == len(names)
        assert {s.group for s in specs} == set(bench_report.GROUPS)
    names = " ".join(s.name for s in bench_cases.suite())
    for wanted in ("32->64 k3 p1", "64->64 k3 p1", "1x1 128->32", "avg_pool1d", "max_pool1d", "CIFAR-style", "batch 1"):
        assert wanted in names


def test_conv_case_times_the_im2col_path_too() -> None:
    case = bench_cases._conv_case("tiny", 2, (2, 3, 8, 8), (4, 3, 3, 3), 1, 1)
    row = bench.time_case(case, {"matmul_gflops": 1.0, "copy_gbs": 1.0}, budget=0.0)
    if bench_cases.im2col_only() is None:  # the numpy backend: nothing to compare with
        assert "path_fwd" not in row
    else:
        assert row["path_fwd"] > 0 and row["path_bwd"] > 0 and row["im2col_fwd"] > 0
    assert row["ratio_fwd"] > 0 and row["gflops_fwd"] > 0
    from convpool import config

    assert row["impl"] in config.describe()  # the name of the implementation that ran, as describe() lists it


def test_im2col_context_restores_the_choice() -> None:
    held = bench_cases.im2col_only()
    if held is None:
        pytest.skip("the numpy backend has no im2col implementation to hold")
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32)
    from convpool.functional.conv import conv_forward

    before, _ = conv_forward(x, w, None, 1, 1)
    with held:
        inside, _ = conv_forward(x, w, None, 1, 1)
    after, _ = conv_forward(x, w, None, 1, 1)
    np.testing.assert_allclose(inside, before, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(after, before)


def _row(case: str, group: str, fwd: float | None, bwd: float | None, **extra: Any) -> dict[str, Any]:
    return {"case": case, "group": group, "ratio_fwd": fwd, "ratio_bwd": bwd, **extra}


def test_groups_geomeans_and_ceilings_on_made_up_timings() -> None:
    rows = [
        _row("a", "conv", 0.5, 2.0),
        _row("b", "conv", 1.6, 0.4, path_fwd=1.3, path_bwd=0.9),
        _row("p", "pool", 0.1, 1.2),
        _row("step", "lenet_step", 0.9, None),
        _row("mp", "maxplus", 3.0, 3.0),
    ]
    groups = bench_report.summarize(rows)
    assert set(groups) == {"conv", "pool", "lenet_step", "maxplus"}
    conv = groups["conv"]
    assert conv["n"] == 4 and conv["max"] == 2.0
    assert conv["geomean"] == pytest.approx((0.5 * 2.0 * 1.6 * 0.4) ** 0.25)
    assert conv["meets_target"] is False  # 0.8 target, geomean 0.8946
    assert conv["over_ceiling"] == ["a bwd 2.00", "b fwd 1.60"]
    assert groups["pool"]["geomean"] == pytest.approx(math.sqrt(0.12)) and groups["pool"]["over_ceiling"] == [
        "p bwd 1.20"
    ]
    assert groups["lenet_step"]["meets_target"] is False and groups["lenet_step"]["n"] == 1
    assert groups["maxplus"]["meets_target"] is None and groups["maxplus"]["over_ceiling"] == []
    check = bench_report.path_check(rows)
    assert check["cases"] == 1 and check["slower"] == ["b fwd 1.30"]
    assert check["geomean"] == pytest.approx(math.sqrt(1.3 * 0.9))


def _fake_result(isa: str, ratio: float) -> dict[str, Any]:
    rows = [_row("conv2d x", "conv", ratio, ratio, path_fwd=1.0, path_bwd=1.0)]
    return {
        "isa": isa,
        "rows": rows,
        "groups": bench_report.summarize(rows),
        "path_check": bench_report.path_check(rows),
        "limits": {"matmul_gflops": 100.0, "copy_gbs": 10.0},
        "threads": 2,
        "environment": {
            "cpu": "Test CPU",
            "numba_target_cpu": "haswell",
            "blas_core": "Haswell",
            "convpool": {"SIMD tile": f"{isa}, tile of the test"},
        },
    }


def test_report_puts_settings_side_by_side() -> None:
    text = "\n".join(
        bench_report.report_lines({"native": _fake_result("native", 0.5), "avx2": _fake_result("avx2", 1.6)})
    )
    assert "--isa native: CPU Test CPU" in text and "--isa avx2: CPU Test CPU; numba target haswell" in text
    assert "GEMM 100 GFLOP/s" in text and "copy 10.0 GB/s" in text
    assert "convpool SIMD tile: native, tile of the test" in text and "SIMD tile: avx2, tile of the test" in text
    assert "--isa avx2: above the per-case ceiling: conv2d x fwd 1.60; conv2d x bwd 1.60" in text
    assert "never slower than im2col+BLAS" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("convolution (fwd, bwd)"))
    assert "0.50" in line and "1.60" in line and line.rstrip().endswith("*")  # avx2 misses the target
    assert any(ln.startswith("conv2d x") and "0.50" in ln and "1.60" in ln for ln in text.splitlines())


def test_isa_settings_are_validated() -> None:
    avx2_only = {"avx", "avx2", "fma", "sse4_2"}
    assert bench_isa.parse_isa("native", set()) == ("native",)
    assert bench_isa.parse_isa(" Native , AVX2 ", avx2_only) == ("native", "avx2")
    with pytest.raises(ValueError, match=r"--isa avx512: Zen 3 cannot run AVX512 code \(no avx512bw"):
        bench_isa.parse_isa("native,avx512", avx2_only, "Zen 3")
    with pytest.raises(ValueError, match="--isa avx2: this CPU cannot run AVX2 code"):
        bench_isa.parse_isa("avx2", {"neon", "asimd"})
    with pytest.raises(ValueError, match="unknown setting 'sse' in 'native,sse'; expected some of native, avx2"):
        bench_isa.parse_isa("native,sse", avx2_only)
    with pytest.raises(ValueError, match="each setting once, got 'avx2,avx2'"):
        bench_isa.parse_isa("avx2,avx2", avx2_only)
    with pytest.raises(ValueError, match="expected a comma list"):
        bench_isa.parse_isa(" , ", avx2_only)


def test_isa_argument_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--isa", "native,sse"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --isa: unknown setting 'sse'" in err


def test_isa_environment_holds_every_library() -> None:
    base = {"PATH": "/bin", "NUMBA_CACHE_DIR": "/cache", "OPENBLAS_CORETYPE": "SkylakeX"}
    env = bench_isa.isa_environment("avx2", base)
    assert env["NUMBA_CPU_NAME"] == "haswell" and env["NUMBA_CPU_FEATURES"] == ""  # haswell's features only
    assert env["ATEN_CPU_CAPABILITY"] == "avx2"
    assert env["ONEDNN_MAX_CPU_ISA"] == "AVX2" and env["OPENBLAS_CORETYPE"] == "Haswell"
    assert env["CONVPOOL_TILE"] == "avx2" and env["NUMBA_CACHE_DIR"] == "/cache/haswell" and env["PATH"] == "/bin"
    assert bench_isa.current_isa(env) == "avx2" and bench_isa.current_isa(base) == "native"
    native = bench_isa.isa_environment("native", env)  # from a held process back to the host
    held = {"NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "ATEN_CPU_CAPABILITY", "OPENBLAS_CORETYPE", "CONVPOOL_TILE"}
    assert not held & set(native)
    assert bench_isa.current_isa(native) == "native"
    assert bench_isa.current_isa({"NUMBA_CPU_NAME": "znver3"}) is None  # held, but to no setting of ours
    assert bench_isa.numba_cache_dir("avx2", {"CONVPOOL_CACHE_DIR": "/c"}) == "/c/numba/haswell"


def test_cifar_step_network_matches_pytorch() -> None:
    from convpool import _random, interop, nn

    _random.manual_seed(0)
    model = bench_steps.cifar_net()
    assert [type(m).__name__ for m in model][:4] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    assert [m.out_channels for m in model if isinstance(m, nn.Conv2d)] == [32, 64, 128]
    tmodel = interop.to_torch(model)
    x = np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32)
    y = model(x)
    assert y.shape == (4, 10)
    np.testing.assert_allclose(y, tmodel(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("builder", ["lenet_step_case", "cifar_step_case"])
def test_training_steps_run_in_both_libraries(builder: str) -> None:
    case = getattr(bench_steps, builder)("step", 4)
    assert case.ours_bwd is None and case.torch_bwd is None
    case.ours_fwd()
    case.torch_fwd()


def test_batch_one_forward_agrees_with_pytorch() -> None:
    case = bench_steps.lenet_latency_case("b1")
    np.testing.assert_allclose(case.ours_fwd(), case.torch_fwd().numpy(), rtol=1e-4, atol=1e-5)
