"""The benchmark runs and reports what it claims (no timing assertions)."""

from __future__ import annotations

import json

from convpool.tools import bench


def test_bench_smoke(tmp_path):  # type: ignore[no-untyped-def]
    out = tmp_path / "b.json"
    res = bench.main(quick=True, only="max_pool1d", out=str(out))
    saved = json.loads(out.read_text())
    (row,) = saved["rows"]
    assert row["case"].startswith("max_pool1d")
    for key in ("ours_fwd", "torch_fwd", "ours_bwd", "torch_bwd", "ratio_fwd", "ratio_bwd", "gbs_fwd"):
        assert row[key] > 0
    assert saved["limits"]["matmul_gflops"] > 0 and saved["limits"]["copy_gbs"] > 0
    assert res["geomean_pool"] > 0
