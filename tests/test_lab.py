"""The lab's commands on small settings: every fact they claim is checked in their JSON."""

from __future__ import annotations

import json
import os
import re
import time

import numpy as np
import pytest

from convpool.lab import _variants as V
from convpool.lab import ablate, explain, filters, invariance, report
from convpool.tools import cli


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
    assert "compilation excluded" in f["timing"]
    for fig in f["figures"]:
        assert os.path.exists(fig)


def test_filters_timing_excludes_the_first_run():
    """The first call (numba's compilation) is a warm-up; the time is the median of the rest."""
    calls = []

    def op() -> np.ndarray:
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.3)  # what compiling costs on a first call
        return np.zeros(2)

    y, seconds = filters.timed(op)
    assert len(calls) == 4 and y.shape == (2,) and seconds < 0.1
    # and what `convpool filters` prints for a 2x2 max pool on the 200x171 photo is warm
    img, _ = filters.load_image()
    pools = filters.apply_pools(img)
    assert pools["max 2x2"]["seconds"] < 0.25


# --- the ablation's model family ------------------------------------------------------------


def test_variants_build_costs_and_receptive_fields():
    x = np.zeros((2, 1, 28, 28), dtype=np.float32)
    c = {k: V.costs(V.build(k), (1, 28, 28)) for k in V.VARIANTS}
    for k in V.VARIANTS:
        assert V.build(k)(x).shape == (2, 10), k
    lenet5 = 6 * 25 + 6 + 16 * 6 * 25 + 16 + 400 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10
    assert c["max"]["params"] == lenet5 == 61706
    for k in ("avg", "median", "lp", "blur", "stochastic", "strided"):  # only the downsampling changes
        assert c[k]["params"] == lenet5, k
    assert c["gem"]["params"] == c["mixed"]["params"] == lenet5 + 2  # one p / alpha per pooling layer
    assert c["maxplus"]["params"] == lenet5 + (6 + 16) * 4  # a 2x2 structuring element per channel
    assert c["fixed"]["fixed_params"] == 6 * 25 + 6 and c["fixed"]["params"] == lenet5 - 156
    assert c["nodown"]["params"] == lenet5 - 400 * 120 + 16 * 24 * 24 * 120
    # multiply-adds: conv1 28x28x6 outputs x 25, conv2 10x10x16 x 150, the three linear layers
    assert c["max"]["mult_adds"] == 28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 + 84 * 10
    assert c["strided"]["mult_adds"] == 14 * 14 * 6 * 25 + 5 * 5 * 16 * 150 + 400 * 120 + 120 * 84 + 84 * 10
    assert c["max"]["window_ops"] == (14 * 14 * 6 + 5 * 5 * 16) * 4
    assert {k: c[k]["receptive_field"] for k in ("max", "strided", "nodown", "blur", "mlp")} == {
        "max": 16,  # 5, +1 (pool), +4x2 (conv at jump 2), +1x2 (pool)
        "strided": 13,
        "nodown": 9,
        "blur": 22,
        "mlp": None,
    }
    with pytest.raises(ValueError, match=r"variant must be a non-empty list of \[.*'max'.*\], got \['cnn'\]"):
        V.build("cnn")


def test_maxplus_with_zero_weights_equals_max_pooling():
    x = np.random.default_rng(0).random((8, 1, 28, 28)).astype(np.float32)
    assert ablate.maxplus_equals_max(x, 10) == 0.0


def _shift_loop(x: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    h, w = x.shape[2:]
    for i in range(len(x)):
        for r in range(h):
            for c in range(w):
                if 0 <= r - dy[i] < h and 0 <= c - dx[i] < w:
                    out[i, :, r, c] = x[i, :, r - dy[i], c - dx[i]]
    return out


def test_shift_images_against_a_loop_and_robustness_measure():
    rng = np.random.default_rng(1)
    x = rng.random((6, 2, 7, 5))
    dy, dx = V.random_shifts(6, 3, seed=4)
    assert np.abs(dy).max() <= 3 and np.abs(dx).max() <= 3
    np.testing.assert_array_equal(V.shift_images(x, dy, dx), _shift_loop(x, dy, dx))
    y = np.arange(6) % 3
    constant = V.shift_robustness(lambda v: np.zeros(len(v), dtype=int), x, y, 2)
    assert constant["consistency"] == [1.0, 1.0, 1.0] and constant["accuracy"] == [2 / 6] * 3
    # a prediction that reads the brightest pixel's column changes when the image moves
    pred = V.shift_robustness(lambda v: v.reshape(len(v), -1).argmax(1) % 5, x, y, 3)
    assert pred["consistency"][0] == 1.0 and min(pred["consistency"][1:]) < 1.0


# --- the ablation and the size sweep on MNIST ---------------------------------------------------


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("ablate")
    res = ablate.main(
        out=str(out),
        variants=("max", "maxplus", "gem", "mlp"),
        seeds=2,
        epochs=1,
        n_train=256,
        n_test=200,
        max_shift=2,
        sizes=(128, 256),
        sweep_variants=("max", "nodown"),
        sweep_seeds=1,
        sweep_min_examples=256,
        workers=2,
        quiet=True,
    )
    return res, json.loads((out / "ablation.json").read_text())


def test_ablation_facts(ablation):  # type: ignore[no-untyped-def]
    res, saved = ablation
    per = saved["ablation"]
    assert list(per) == ["max", "maxplus", "gem", "mlp"] and saved["config"]["n_train"] == 256
    for v, r in per.items():
        assert r["params"] == sum(p.size for p in V.build(v).parameters() if p.requires_grad)
        assert r["seeds"] == [0, 1] and len(r["test_acc"]) == 2
        assert r["acc_mean"] == pytest.approx(np.mean(r["test_acc"])) and r["acc_std"] >= 0
        assert len(r["shift_acc"]) == 3 and r["shift_consistency"][0] == 1.0
        assert r["shift_acc"][0] == pytest.approx(r["acc_mean"])  # shift 0 is the plain test set
        assert r["train_time_mean"] > 0
    assert per["max"]["acc_mean"] > 0.15  # 4 AdamW steps on 256 images: above chance (0.1)
    # max-plus with zero weights is max pooling; learned, its weights move away from zero
    assert saved["maxplus_zero_vs_max_pool"]["max_abs_diff"] == 0.0
    assert all(d["se_mean_abs"] > 0 for d in per["maxplus"]["learned"].values())
    # a learned GeM p differs from its start (3)
    ps = [d["p"] for d in per["gem"]["learned"].values()]
    assert len(ps) == 2 and all(abs(p - 3.0) > 1e-4 for p in ps)
    assert per["mlp"]["receptive_field"] is None and per["mlp"]["first_filters"] is None
    assert np.asarray(per["max"]["first_filters"]).shape == (6, 5, 5)
    assert res["findings"] and all(os.path.exists(p) for p in res["figures"])


def test_size_sweep_has_one_entry_per_size_and_variant(ablation):  # type: ignore[no-untyped-def]
    _, saved = ablation
    sw = saved["sweep"]
    assert sw["sizes"] == [128, 256] and sw["variants"] == ["max", "nodown"]
    pairs = [(e["variant"], e["n_train"]) for e in sw["entries"]]
    assert sorted(pairs) == sorted((v, n) for v in ("max", "nodown") for n in (128, 256))
    for e in sw["entries"]:
        assert e["epochs"] == ablate.sweep_epochs(e["n_train"], 1, 256) == 256 // e["n_train"]
        assert len(e["test_acc"]) == 1 and 0 <= e["acc_mean"] <= 1


def test_ablation_bad_settings():
    with pytest.raises(ValueError, match=r"variants must be a non-empty list of .*got \['pool'\]"):
        ablate.run(variants=("pool",), progress=False)
    with pytest.raises(ValueError, match=r"training-set sizes must be at most 60,000 .*got 70,000"):
        ablate.run(sizes=(500, 70000), progress=False)
    with pytest.raises(ValueError, match="at least 12x12; 'digits' has shape"):
        ablate.run(data="digits", progress=False)
    with pytest.raises(ValueError, match="seeds must be a positive int, got 0"):
        ablate.run(seeds=0, progress=False)


# --- the report ----------------------------------------------------------------------------------

SECTION_IDS = ("answers", "explain", "algebra", "learned", "filters", "ablation", "sweep", "invariance", "reproduce")


def test_report_references_only_existing_files_and_renders_every_section(tmp_path):  # type: ignore[no-untyped-def]
    out = str(tmp_path / "rep")
    path = report.main(
        out=out,
        quick=True,
        variants=("max", "maxplus", "gem", "mixed", "strided", "nodown", "mlp"),
        seeds=2,
        epochs=1,
        n_train=128,
        n_test=100,
        sizes=(64, 128),
        sweep_min_examples=128,
        workers=1,
    )
    page = open(path, encoding="utf-8").read()
    refs = re.findall(r'(?:src|href)="([^"#][^"]*)"', page)
    assert len(refs) >= 12
    for ref in refs:
        assert os.path.isfile(os.path.join(out, ref)), ref
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in page and f'href="#{sid}"' in page, sid
    for question in (
        "How do they compute?",
        "Is pooling a convolution?",
        "Does only the convolution have parameters?",
        "What is each for?",
        "What happens without each?",
        "Does pooling matter more when data are scarce?",
    ):
        assert f"<h3>{question}</h3>" in page
    assert "To explore interactively, run <code>convpool serve</code>." in page
    assert "(max, +) algebra" in page and "GeM pooling learns its power p" in page
    assert "A short run" in page  # the demo's settings say so
    assert "{{" not in page and "{%" not in page
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert set(saved["timings"]) == {"explain", "filters", "invariance", "ablate"}


def test_report_escapes_and_tolerates_missing_parts(tmp_path):  # type: ignore[no-untyped-def]
    out = str(tmp_path)
    ex = explain.main(out=out, quiet=True)
    ex["kernel_name"] = "<script>alert(1)</script>"
    ex.pop("maxplus", None)
    ex.pop("learned", None)
    inv = invariance.main(max_shift=2, out=out, n=2, quiet=True)
    page = open(
        report.build_html(out, ex, None, None, inv, {"explain": 0.1}, "convpool <test>"), encoding="utf-8"
    ).read()
    assert "<script>" not in page and "&lt;script&gt;" in page and "convpool &lt;test&gt;" in page
    assert '<section id="ablation">' not in page and 'href="#ablation"' not in page
    assert "The ablation did not run" in page and "<code>convpool explain</code> computes the check" in page
    for ref in re.findall(r'(?:src|href)="([^"#][^"]*)"', page):
        assert os.path.isfile(os.path.join(out, ref)), ref


def test_cli_runs_and_reports_errors(tmp_path, capsys):  # type: ignore[no-untyped-def]
    assert cli.main(["explain", "--kernel", "blur", "--pool", "avg", "--learn", "0", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "explain.json").exists()
    with pytest.raises(SystemExit) as exc:
        cli.main(["explain", "--kernel", "nonsense"])
    assert exc.value.code == 2
    assert "kernel must be one of" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["ablate", "--variants", "max,cnn"])
    assert exc.value.code == 2 and "variants must be a non-empty list of" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["ablate", "--sizes", "500,many"])
    assert exc.value.code == 2 and "expected sizes like '500,1000,60000'" in capsys.readouterr().err


def test_cli_ablation_flags_override_full_or_quick_settings():
    parser = cli.build_parser()
    args = parser.parse_args(["ablate", "--quick", "--seeds", "4", "--sizes", "none"])
    assert cli._ablation_settings(args) == {"seeds": 4, "sizes": ()}
    args = parser.parse_args(["report", "--epochs", "3", "--sizes", "100,1_000"])
    assert cli._ablation_settings(args) == {"epochs": 3, "sizes": (100, 1000)}
    args = parser.parse_args(["ablate"])
    assert cli._keys(args.variants) == tuple(V.VARIANTS) and cli._keys(args.sweep_variants) == V.SWEEP_VARIANTS
