"""The lab's complete answer to "is pooling a convolution?" (convpool.lab.algebra)."""

from __future__ import annotations

import json

import numpy as np

from convpool.lab import algebra, explain


def test_max_pooling_is_maxplus_convolution_with_zero_weights():
    window = np.arange(9.0).reshape(3, 3) - 4
    kernel = np.array([[1.0, 0, -1]] * 3)
    f = algebra.maxplus_facts(window, kernel)
    assert f["max_abs_diff"] == 0.0 and f["min_abs_diff"] == 0.0
    assert f["window"]["max"] == window.max() and f["window"]["sum"] == float((window * kernel).sum())


def test_explain_learns_pooling_parameters_on_mnist(tmp_path):
    facts = explain.main(out=str(tmp_path), quiet=True, learn=2000, learn_epochs=2)
    le = facts["learned"]
    assert set(le["test_acc"]) == {"gem", "mixed", "maxplus"}
    assert all(0.7 < a <= 1 for a in le["test_acc"].values()), le["test_acc"]
    assert le["gem_p"]["start"] == [3.0, 3.0] and all(abs(p - 3.0) > 1e-4 for p in le["gem_p"]["learned"])
    assert all(abs(a - 0.5) > 1e-4 for a in le["mixed_alpha"]["learned"])
    ses = [np.asarray(s) for s in le["maxplus_se"]]
    assert [s.shape for s in ses] == [(6, 2, 2), (16, 2, 2)] and all(np.abs(s).max() > 0 for s in ses)
    saved = json.loads((tmp_path / "explain.json").read_text())
    assert saved["maxplus"]["max_abs_diff"] == 0.0
    assert (tmp_path / "explain_algebra.png").stat().st_size > 10_000
    text = " ".join(algebra.describe(facts))
    assert "max |difference| = 0.0e+00" in text and "GeM p =" in text
