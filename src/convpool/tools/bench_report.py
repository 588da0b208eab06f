"""The report of ``convpool bench``: geometric means per group against the issue's
targets, the cases above their group's per-case ceiling, the path check (the chosen
convolution path against im2col + BLAS), and the tables, one column per ISA setting."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Group:
    label: str
    target: float | None  # the geometric mean to reach (None: informational)
    ceiling: float | None  # no case above this


GROUPS: dict[str, Group] = {
    "conv": Group("convolution (fwd, bwd)", 0.8, 1.5),
    "pool": Group("pooling (fwd, bwd)", 0.3, 1.0),
    "lenet_step": Group("LeNet training step", 0.8, None),
    "cifar_step": Group("CIFAR-style training step", 1.0, None),
    "lenet_b1": Group("LeNet batch-1 forward", 1.0, None),
    "maxplus": Group("max-plus / convpool conv2d", None, None),
}
PATH_NOISE = 1.10  # chosen / im2col above this: the chosen path is slower by more than noise


def geomean(values: list[float]) -> float:
    return float(math.exp(sum(math.log(v) for v in values) / len(values))) if values else float("nan")


def _ratios(row: dict[str, Any]) -> list[tuple[str, float]]:
    return [(p, row[f"ratio_{p}"]) for p in ("fwd", "bwd") if row.get(f"ratio_{p}") is not None]


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per group that has cases: the geometric mean of its ratios (forward and backward
    alike), the largest, the target, and the cases above the per-case ceiling."""
    out: dict[str, dict[str, Any]] = {}
    for key, group in GROUPS.items():
        members = [r for r in rows if r["group"] == key]
        ratios = [(r["case"], part, v) for r in members for part, v in _ratios(r)]
        if not ratios:
            continue
        values = [v for _, _, v in ratios]
        mean = geomean(values)
        over = [f"{case} {part} {v:.2f}" for case, part, v in ratios if group.ceiling and v > group.ceiling]
        out[key] = {
            "label": group.label,
            "geomean": mean,
            "max": max(values),
            "n": len(values),
            "target": group.target,
            "ceiling": group.ceiling,
            "meets_target": None if group.target is None else mean <= group.target,
            "over_ceiling": over,
        }
    return out


def path_check(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Conv cases whose chosen path is slower than im2col + BLAS by more than noise."""
    checked = [r for r in rows if r.get("path_fwd") is not None or r.get("path_bwd") is not None]
    slower = [
        f"{r['case']} {p} {r[f'path_{p}']:.2f}"
        for r in checked
        for p in ("fwd", "bwd")
        if r.get(f"path_{p}") is not None and r[f"path_{p}"] > PATH_NOISE
    ]
    values = [r[f"path_{p}"] for r in checked for p in ("fwd", "bwd") if r.get(f"path_{p}") is not None]
    return {"cases": len(checked), "slower": slower, "geomean": geomean(values), "noise": PATH_NOISE}


def _ms(v: float | None) -> str:
    return "       -" if v is None else f"{v * 1e3:8.2f}"


def _r(v: float | None) -> str:
    return "    -" if v is None else f"{v:5.2f}"


HEADER = (
    f"{'case':<46} {'forward convpool / torch ms = ratio':>36}   {'backward convpool / torch ms = ratio':>36}"
    "   chosen/im2col fwd  bwd   achieved (share of peak) implementation"
)


def format_row(r: dict[str, Any]) -> str:
    """One case as it is timed: times, ratios, the path check, GFLOP/s or GB/s."""
    if "gflops_fwd" in r:
        perf = f"{r['gflops_fwd']:6.1f} GFLOP/s {r.get('peak_share_fwd', 0):5.0%}"
    elif "gbs_fwd" in r:
        perf = f"{r['gbs_fwd']:6.1f} GB/s    {r.get('peak_share_fwd', 0):5.0%}"
    else:
        perf = ""
    path = f"{_r(r.get('path_fwd'))} {_r(r.get('path_bwd'))}" if "path_fwd" in r else " " * 11
    return (
        f"{r['case']:<46} {_ms(r['ours_fwd'])} / {_ms(r['torch_fwd'])} ms = {_r(r.get('ratio_fwd'))}"
        f"   {_ms(r['ours_bwd'])} / {_ms(r['torch_bwd'])} ms = {_r(r.get('ratio_bwd'))}"
        f"   {'':10}{path}   {perf:24} {r.get('impl') or ''}"
    ).rstrip()


def _machine_lines(name: str, res: dict[str, Any]) -> list[str]:
    env, lim = res["environment"], res["limits"]
    return [
        f"--isa {name}: CPU {env.get('cpu')}; numba target {env.get('numba_target_cpu')} "
        f"(llvm host {env.get('llvm_host_cpu')}); BLAS core {env.get('blas_core')}; "
        f"PyTorch {env.get('torch')} capability {env.get('torch_cpu_capability')}",
        f"  GEMM {lim['matmul_gflops']:.0f} GFLOP/s (NumPy BLAS, float32 2048^3), copy {lim['copy_gbs']:.1f} GB/s; "
        f"{res['threads']} threads; BLAS {env.get('blas')}",
        *([f"  convpool SIMD tile: {tile}"] if (tile := (env.get("convpool") or {}).get("SIMD tile")) else []),
    ]


def _group_cell(g: dict[str, Any] | None) -> str:
    if g is None:
        return f"{'-':>22}"
    flag = "" if g["meets_target"] in (None, True) else " *"
    return f"{g['geomean']:6.2f} (max {g['max']:5.2f}){flag:2}"


def report_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """The summary of one or more settings (``{isa: run results}``): the machine under
    each, the target table, the cases over a ceiling, the path check, the extras."""
    names = list(results)
    lines = [""]
    for name in names:
        lines += _machine_lines(name, results[name])
    lines += ["", f"{'group (geometric mean of convpool/torch)':<42} {'target':>6} {'ceiling':>7}  "]
    lines[-1] += "".join(f"{'--isa ' + n:>24}" for n in names)
    for key, group in GROUPS.items():
        cells = [results[n]["groups"].get(key) for n in names]
        if all(c is None for c in cells):
            continue
        target = "-" if group.target is None else f"{group.target:.2f}"
        ceiling = "-" if group.ceiling is None else f"{group.ceiling:.2f}"
        lines.append(f"{group.label:<42} {target:>6} {ceiling:>7}  " + "".join(f"{_group_cell(c):>24}" for c in cells))
    if any(g["meets_target"] is False for n in names for g in results[n]["groups"].values()):
        lines.append("(* above its target)")
    for name in names:
        res = results[name]
        over = [c for g in res["groups"].values() for c in g["over_ceiling"]]
        if over:
            lines.append(f"--isa {name}: above the per-case ceiling: " + "; ".join(over))
        pc = res.get("path_check")
        if pc and pc["cases"]:
            verdict = (
                f"slower than im2col+BLAS by more than {pc['noise'] - 1:.0%}: " + "; ".join(pc["slower"])
                if pc["slower"]
                else f"never slower than im2col+BLAS by more than {pc['noise'] - 1:.0%}"
            )
            lines.append(
                f"--isa {name}: path check on {pc['cases']} conv cases: chosen/im2col geometric mean "
                f"{pc['geomean']:.2f}; {verdict}"
            )
        if "resnet_peak_mib" in res:
            m = res["resnet_peak_mib"]
            lines.append(
                f"--isa {name}: ResNet-block conv fwd+bwd peak memory: {m['ours']:.0f} / {m['torch']:.0f} MiB "
                f"= {m['ratio']:.2f}"
            )
    if len(names) > 1:
        lines += ["", f"{'case: ratio convpool/torch fwd bwd':<46}" + "".join(f"{'--isa ' + n:>16}" for n in names)]
        cases = dict.fromkeys(r["case"] for n in names for r in results[n]["rows"])
        for case in cases:
            cells = []
            for n in names:
                row = next((r for r in results[n]["rows"] if r["case"] == case), None)
                cells.append("-" if row is None else f"{_r(row.get('ratio_fwd'))} {_r(row.get('ratio_bwd'))}")
            lines.append(f"{case:<46}" + "".join(f"{c:>16}" for c in cells))
    return lines
