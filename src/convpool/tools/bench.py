"""``convpool bench``: convpool against PyTorch, timed in one process.

For each case: forward (training mode) and backward (input and weight gradients), or a
whole training step, median of interleaved repeats after warm-up (convpool, PyTorch and,
for convolutions, convpool held to im2col + BLAS take turns, so a load change on a
shared machine hits all alike), both libraries at the same thread count.  Prints times,
the ratio convpool/torch, the ratio of the chosen convolution path to im2col + BLAS,
achieved GFLOP/s (conv) or GB/s (pooling) and the share of the machine's measured GEMM
rate or copy bandwidth; then the geometric mean per group against the targets
(:mod:`.bench_report`); writes JSON.  ``isa=("native", "avx2")`` runs the suite again in
a subprocess held to AVX2 (:mod:`.bench_isa`) and reports both side by side.  These
machines are shared: quote ratios, not times, and the CPU beside them.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import bench_isa, bench_report
from .bench_cases import Case, suite


def measure(
    fns: Sequence[Callable[[], Any]], min_repeats: int = 5, budget: float = 1.0, max_repeats: int = 200
) -> list[float]:
    """Median seconds per call of each of ``fns``, called in turn (interleaved) after two
    warm-up calls each (numba compiles there), for ``budget`` seconds per function and at
    least ``min_repeats`` rounds."""
    for fn in fns:
        fn()
        fn()
    samples: list[list[float]] = [[] for _ in fns]
    start = time.perf_counter()
    rounds = 0
    while rounds < min_repeats or (time.perf_counter() - start < budget * len(fns) and rounds < max_repeats):
        for fn, s in zip(fns, samples, strict=True):
            t = time.perf_counter()
            fn()
            s.append(time.perf_counter() - t)
        rounds += 1
    return [statistics.median(s) for s in samples]


def time_case(case: Case, limits: dict[str, float], budget: float = 1.0, min_repeats: int = 5) -> dict[str, Any]:
    """The row of one case: its times, ratios and achieved rates."""
    slots = {
        f"{who}_{part}": getattr(case, f"{who}_{part}")
        for part in ("fwd", "bwd")
        for who in ("ours", "torch", "im2col")
        if getattr(case, f"{who}_{part}") is not None
    }
    r: dict[str, Any] = {"case": case.name, "group": case.group, "kind": case.group, "impl": case.impl}
    r.update(dict(zip(slots, measure(list(slots.values()), min_repeats, budget), strict=True)))
    for part in ("fwd", "bwd"):
        r.setdefault(f"ours_{part}", None)
        r.setdefault(f"torch_{part}", None)
        if r[f"ours_{part}"] and r[f"torch_{part}"]:
            r[f"ratio_{part}"] = r[f"ours_{part}"] / r[f"torch_{part}"]
        if r[f"ours_{part}"] and r.get(f"im2col_{part}"):
            r[f"path_{part}"] = r[f"ours_{part}"] / r[f"im2col_{part}"]
    if case.flops:
        r["gflops_fwd"] = case.flops / r["ours_fwd"] / 1e9
        r["peak_share_fwd"] = r["gflops_fwd"] / limits["matmul_gflops"]
    if case.bytes:
        r["gbs_fwd"] = case.bytes / r["ours_fwd"] / 1e9
        r["peak_share_fwd"] = r["gbs_fwd"] / limits["copy_gbs"]
    return r


def run(quick: bool = False, only: str | None = None, memory: bool = True) -> dict[str, Any]:
    """The suite (or the cases whose name contains ``only``) in this process, as it is
    set up (its ISA setting is ``bench_isa.current_isa()``); returns the results."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError("convpool bench compares with PyTorch: pip install torch") from exc
    threads = int(os.environ.get("CONVPOOL_BENCH_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(threads)
    specs = [s for s in suite(quick) if not only or only in s.name]
    if not specs:
        names = ", ".join(s.name for s in suite(quick))
        raise ValueError(f"--only {only!r} matches no case; the cases are: {names}")
    budget, repeats = (0.05, 3) if quick else (1.0, 5)  # seconds per function and case; rounds at least
    limits = bench_isa.machine_limits(budget=0.2 if quick else 0.5)
    print(bench_report.HEADER, flush=True)
    rows = []
    for spec in specs:
        r = time_case(spec.build(), limits, budget, repeats)
        rows.append(r)
        print(bench_report.format_row(r), flush=True)
    res: dict[str, Any] = {
        "isa": bench_isa.current_isa() or "custom",
        "rows": rows,
        "limits": limits,
        "threads": threads,
        "quick": quick,
        "only": only,
        "groups": bench_report.summarize(rows),
        "path_check": bench_report.path_check(rows),
    }
    for kind in ("conv", "pool"):  # the keys of earlier versions
        g = res["groups"].get(kind)
        res[f"geomean_{kind}"], res[f"max_{kind}"] = (g["geomean"], g["max"]) if g else (float("nan"),) * 2
    step = next((r for r in rows if r["group"] == "lenet_step"), None)
    if step is not None:
        res["lenet_step"] = {"ours": step["ours_fwd"], "torch": step["torch_fwd"], "ratio": step["ratio_fwd"]}
    if memory and not quick and not only:
        from .bench_steps import peak_memory

        mo, mt = peak_memory("convpool"), peak_memory("torch")
        res["resnet_peak_mib"] = {"ours": mo, "torch": mt, "ratio": mo / mt}
    res["environment"] = bench_isa.environment()
    return res


def _child_args(quick: bool, only: str | None, memory: bool) -> list[str]:
    return [*(["--quick"] if quick else []), *(["--only", only] if only else []), *([] if memory else ["--no-memory"])]


def main(
    quick: bool = False,
    only: str | None = None,
    out: str | None = None,
    isa: Sequence[str] = ("native",),
    memory: bool = True,
) -> dict[str, Any]:
    """Run the suite under each ISA setting in ``isa`` (this process for the setting it
    runs under, a subprocess for the others), print the report, write ``out`` (JSON).
    Returns the results of the one setting, or ``{"isa": [...], "settings": {...}}``."""
    here = bench_isa.current_isa()
    results: dict[str, dict[str, Any]] = {}
    for name in isa:
        if name == here:
            results[name] = run(quick, only, memory)
        else:
            results[name] = bench_isa.run_in_subprocess(name, _child_args(quick, only, memory))
    child = bool(os.environ.get(bench_isa.CHILD))
    if not child:
        for line in bench_report.report_lines(results):
            print(line)
    res = results[isa[0]] if len(isa) == 1 else {"isa": list(isa), "settings": results}
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
        with open(out, "w") as f:
            json.dump(res, f, indent=1)
        if not child:
            print(f"results: {out}")
    return res
