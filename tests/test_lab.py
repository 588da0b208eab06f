"""The lab's commands on small settings: every fact they claim is checked in their JSON."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from convpool import cli
from convpool.lab import ablate, explain, filters, invariance, report


def test_explain_facts(tmp_path):  # type: ignore[no-untyped-def]
    f = explain.main(out=str(tmp_path), quiet=True)
    saved = json.loads((tmp_path / "explain.json").read_text())
    assert os.path.exists(tmp_path / "explain.png")
    assert saved["centre"]["conv"] == 4.0 and saved["centre"]["pool_value"] == 5.0
    assert saved["avg_is_conv"]["max_abs_diff"] < 1e-12
    ml = saved["max_not_linear"]
    assert ml["max(a+b)"] != ml["max(a)+max(b)"]
    p = saved["parameters"]["conv"]
    assert p["count"] == p["c_out"] * p["c_in"] * p["k"] ** 2 + p["c_out"]
    assert saved["parameters"]["pool"] == 0 and saved["parameters"]["training_step"]["conv_weight_change"] > 0
    for m in f["maps"].values():  # pooling output size matches the formula
        n, k, s, pad = m["size"]["n"], m["size"]["k"], m["size"]["s"], m["size"]["p"]
        assert m["pool"].shape == m["conv"].shape == ((n + 2 * pad - k) // s + 1,) * 2
    flow = saved["gradient_flow"]
    assert flow["max"]["positions"] == 1 and flow["median"]["positions"] == 1 and flow["avg"]["positions"] == 9


def test_explain_custom_kernel_and_bad_kernel():
    f = explain.run("0,1,0;1,-4,1;0,1,0", pool="median")
    assert f["kernel_name"] == "custom" and f["centre"]["conv"] == 1 + 1 + 0 + 0 - 20.0
    with pytest.raises(ValueError, match="square 1x1, 3x3 or 5x5"):
        explain.parse_kernel("1,2;3,4")
    with pytest.raises(ValueError, match="numbers like"):
        explain.parse_kernel("sobel")


def test_invariance_facts(tmp_path):  # type: ignore[no-untyped-def]
    f = invariance.main(max_shift=3, out=str(tmp_path), n=6, quiet=True)
    saved = json.loads((tmp_path / "invariance.json").read_text())
    noise = saved["results"]["random noise"]
    assert max(e for e in noise["conv 3x3"]["equivariance_error"] if e is not None) < 1e-12
    # a 1-pixel shift changes a max pool's output less than a conv's
    assert noise["max pool 2x2/2"]["relative_change"][1] < noise["conv 3x3"]["relative_change"][1]
    assert noise["anti-aliased max pool (blur)"]["relative_change"][1] < noise["max pool 2x2/2"]["relative_change"][1]
    assert all(r["relative_change"][0] == 0 for per in saved["results"].values() for r in per.values())
    ce = f["counterexample"]
    assert ce["changed_outputs"] == 2 and ce["blurpool_relative_change"] < ce["relative_change"]


def test_filters_facts(tmp_path):  # type: ignore[no-untyped-def]
    f = filters.main(out=str(tmp_path), learn=("digits",), epochs=1, quiet=True)
    h, w = f["image_shape"]
    assert tuple(f["conv"]["output_shape"]) == (h, w)
    for name, p in f["pool"].items():
        k = int(name.split()[1][0])
        assert tuple(p["shape"]) == (h // k, w // k) and p["parameters"] == 0
    assert f["learned"]["digits"]["filters"].shape == (32, 3, 3)
    for fig in f["figures"]:
        assert os.path.exists(fig)


def test_ablation_facts(tmp_path):  # type: ignore[no-untyped-def]
    variants = ("conv + max pool", "fixed filters + max pool", "MLP (no conv, no pool)")
    res = ablate.main(
        out=str(tmp_path), datasets=("digits",), variants=variants, seeds=2, epochs=1, workers=2, quiet=True
    )
    saved = json.loads((tmp_path / "results.json").read_text())
    per = saved["datasets"]["digits"]
    assert list(per) == list(variants)
    for v, r in per.items():
        model = ablate.build_variant(v, 1, 8, 10)
        assert r["params"] == sum(p.size for p in model.parameters() if p.requires_grad)
        assert len(r["test_acc"]) == 2 and 0 <= r["acc_mean"] <= 1
        assert len(r["shift_acc"]) == 3 and r["shift_consistency"][0] == 1.0
        assert r["shift_acc"][0] == pytest.approx(r["acc_mean"])  # shift 0 is the plain test set
    assert per["fixed filters + max pool"]["fixed_params"] == 8 * 9
    assert per["MLP (no conv, no pool)"]["receptive_field"] is None
    assert res["findings"] and all(os.path.exists(p) for p in res["figures"])


def test_shift_images_moves_pixels():
    x = np.zeros((4, 1, 5, 5))
    x[:, 0, 2, 2] = 1
    y = ablate.shift_images(x, 1, seed=0)
    assert y.sum() == 4 and not (y[:, 0, 2, 2] == 1).any()


def test_report_references_only_existing_files(tmp_path):  # type: ignore[no-untyped-def]
    out = str(tmp_path / "rep")
    path = report.main(
        out=out,
        quick=True,
        seeds=2,
        epochs=1,
        datasets=("digits",),
        workers=1,
        variants=("conv + max pool", "MLP (no conv, no pool)"),
        learn_epochs=1,
    )
    page = open(path, encoding="utf-8").read()
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(refs) >= 8
    for ref in refs:
        assert os.path.exists(os.path.join(out, ref)), ref
    assert "Average pooling: yes" in page and "Max pooling: no" in page


def test_cli_runs_and_reports_errors(tmp_path, capsys):  # type: ignore[no-untyped-def]
    assert cli.main(["explain", "--kernel", "blur", "--pool", "avg", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "explain.json").exists()
    with pytest.raises(SystemExit) as exc:
        cli.main(["explain", "--kernel", "nonsense"])
    assert exc.value.code == 2
    assert "kernel must be one of" in capsys.readouterr().err
