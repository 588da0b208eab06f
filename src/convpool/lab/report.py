"""``convpool report``: every part of the lab in one self-contained HTML page.

Writes ``DIR/index.html`` with the PNG figures and JSON results beside it;
every number on the page is produced by the run that wrote it.
"""

from __future__ import annotations

import html
import os
import platform
import sys
import time
from typing import Any

import numpy as np

from ._common import write_json


def _e(s: Any) -> str:
    return html.escape(str(s))


def _grid(a: Any, mark: set[tuple[int, int]] | None = None, fmt: str = "{:.3g}") -> str:
    a = np.asarray(a, dtype=float)
    rows = []
    for i, row in enumerate(a):
        cells = "".join(
            f'<td class="{"mark" if mark and (i, j) in mark else ""}">{_e(fmt.format(v))}</td>'
            for j, v in enumerate(row)
        )
        rows.append(f"<tr>{cells}</tr>")
    return f'<table class="grid">{"".join(rows)}</table>'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(path: str, out: str, alt: str) -> str:
    rel = os.path.relpath(path, out)
    return f'<figure><img src="{_e(rel)}" alt="{_e(alt)}"><figcaption>{_e(alt)}</figcaption></figure>'


CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45;color:#222}
h1{font-size:1.7em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table.grid{border-collapse:collapse;display:inline-table;margin:.3em 1em .3em 0;vertical-align:top}
table.grid td{border:1px solid #bbb;width:2.6em;text-align:center;font-family:monospace}
td.mark{background:#ffe680;font-weight:bold}
table.data{border-collapse:collapse;margin:.6em 0;font-size:.92em}
table.data th,table.data td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
table.data td:first-child,table.data th:first-child{text-align:left}
figure{margin:1em 0}img{max-width:100%}figcaption{font-size:.85em;color:#555}
.answer{background:#f3f7ff;border-left:4px solid #4a7bd0;padding:.5em 1em;margin:.8em 0}
code{background:#f4f4f4;padding:0 .25em}
"""


def _explain_section(ex: dict[str, Any], out: str) -> str:
    k = np.asarray(ex["kernel"]).shape[0]
    c = np.asarray(ex["input"]).shape[0] // 2
    win = {(i, j) for i in range(c - k // 2, c + k // 2 + 1) for j in range(c - k // 2, c + k // 2 + 1)}
    cen = ex["centre"]
    sel = cen["selected"]
    terms = " + ".join(
        f"({w:g})({v:.3g})" for w, v in zip(np.ravel(cen["window"]), np.ravel(ex["kernel"]), strict=True)
    )
    parts = [
        "<h2>1. How they compute: the centre pixel of a 5x5 input</h2>",
        "<p>Input (the 3x3 window around the centre in yellow), the conv kernel "
        f"<code>{_e(ex['kernel_name'])}</code>, and the element-wise products:</p>",
        _grid(ex["input"], win),
        _grid(ex["kernel"]),
        _grid(cen["products"]),
        f'<div class="answer"><b>Convolution</b>: multiply element-wise, then sum: {_e(terms)} = '
        f"<b>{cen['conv']:.4g}</b>. In a network the 9 coefficients are learned.<br>"
        f"<b>{_e(ex['pool'])} pooling</b>: no coefficients, reduce the window: <b>{cen['pool_value']:.4g}</b>"
        + (f" (the element at row {sel[0]}, column {sel[1]})" if sel else "")
        + ".</div>",
        "<h3>Borders and stride</h3><p>Borders discarded (valid) or padded; stride 1 or 2 (jumping). "
        "Output size <code>out = floor((n + 2p - k) / s) + 1</code>:</p>",
    ]
    for title, m in ex["maps"].items():
        parts.append(f"<p><b>{_e(title)}</b>: {_e(m['size']['formula'])}</p>")
        parts.append(_grid(m["conv"]) + _grid(m["pool"]))
    if "figure" in ex:
        parts.append(_img(ex["figure"], out, "The worked example and where each layer sends its gradient"))
    return "\n".join(parts)


def _answers_section(ex: dict[str, Any]) -> str:
    ai, ml, p = ex["avg_is_conv"], ex["max_not_linear"], ex["parameters"]
    ts, gf = p["training_step"], ex["gradient_flow"]
    return "\n".join(
        [
            "<h2>2. Is pooling a convolution with fixed weights?</h2>",
            f'<div class="answer"><b>Average pooling: yes.</b> A 3x3 average pool equals a depthwise convolution whose '
            f"weights are all 1/9: on a random input of shape {tuple(ai['shape'])} the largest difference was "
            f"<b>{ai['max_abs_diff']:.2e}</b> (float64 rounding).</div>",
            f'<div class="answer"><b>Max pooling: no.</b> A convolution is linear; max pooling is not. With '
            f"a = {np.asarray(ml['a']).tolist()} and b = {np.asarray(ml['b']).tolist()}: max(a+b) = <b>{ml['max(a+b)']:g}</b> "
            f"but max(a) + max(b) = <b>{ml['max(a)+max(b)']:g}</b>; max(-a) = {ml['max(-a)']:g} but -max(a) = "
            f"{ml['-max(a)']:g}. It is the same sliding window with the sum replaced by a max and no coefficients "
            f"(average pooling passes the same test: {ex['avg_linear']['avg(a+b)']:g} = {ex['avg_linear']['avg(a)+avg(b)']:g}).</div>",
            "<h2>3. Parameters: conv learns, pooling does not</h2>",
            f'<div class="answer">Conv2d({p["conv"]["c_in"]}, {p["conv"]["c_out"]}, kernel {p["conv"]["k"]}) has '
            f"{_e(p['conv']['formula'])} parameters; a pooling layer has <b>{p['pool']}</b>. In one SGD step of "
            f"conv → max pool the conv weights moved by up to <b>{ts['conv_weight_change']:.3g}</b>; the pool had "
            f"{ts['pool_parameters']} parameters to move.</div>",
            "<h2>4. Gradient flow</h2>",
            "<p>With gradient 1 on the centre output only, the input positions that receive gradient: "
            + ", ".join(f"<b>{_e(n)}</b>: {v['positions']}" for n, v in gf.items())
            + ". Max and median pooling send all of it to the one selected input, average pooling spreads it "
            "evenly (1/9 each), convolution weights it by the kernel (zero coefficients pass nothing).</p>",
        ]
    )


def _filters_section(fi: dict[str, Any], out: str) -> str:
    rows = [
        [
            k,
            f"{v['shape'][0]}x{v['shape'][1]}",
            f"{v['kept_fraction']:.1%}",
            f"{v['window_ops']:,}",
            0,
            f"{v['seconds'] * 1e3:.2f}",
        ]
        for k, v in fi["pool"].items()
    ]
    parts = [
        "<h2>5. What filters and pools do to a real image</h2>",
        f"<p>{_e(fi['image'])}, {fi['image_shape'][0]}x{fi['image_shape'][1]} grayscale. Five 3x3 kernels in one "
        f"Conv2d: {fi['conv']['mult_adds']:,} multiply-adds, {fi['conv']['parameters']} coefficients (hand-made "
        "here, learned in a CNN). Convolution extracts patterns: vertical edges, horizontal edges, blobs. "
        "Pooling the rectified vertical-edge map shrinks it and keeps a summary:</p>",
        _table(["pool", "output", "values kept", "window ops", "parameters", "ms"], rows),
    ]
    for f in fi.get("figures", []):
        parts.append(_img(f, out, os.path.basename(f).replace("_", " ").replace(".png", "")))
    accs = ", ".join(f"{d}: test accuracy {v['test_acc']:.3f}" for d, v in fi["learned"].items())
    parts.append(
        f"<p>The learned first-layer filters come from short trainings of the LeNet-style CNN ({_e(accs)}).</p>"
    )
    return "\n".join(parts)


def _ablation_section(ab: dict[str, Any], out: str) -> str:
    cfg = ab["config"]
    k = cfg["max_shift"]
    parts = [
        "<h2>6. What each layer contributes, and what happens without it</h2>",
        f"<p>Every variant trained with the same recipe ({_e(cfg['recipe'])}, {cfg['epochs']} epochs) over "
        f"{cfg['seeds']} seeds; {ab['wall_time']:.0f} s wall time on {cfg['workers']} worker processes. "
        "Translation robustness: test images shifted by k pixels in a random direction (zero fill); "
        "'same prediction' is the share of predictions unchanged by the shift.</p>",
    ]
    for d, per in ab["datasets"].items():
        rows = []
        for v, r in per.items():
            rows.append(
                [
                    v,
                    f"{r['acc_mean']:.3f} ± {r['acc_std']:.3f}",
                    f"{r['params']:,}",
                    f"{r['mult_adds']:,}",
                    f"{r['activation_bytes'] / 1024:.1f}",
                    f"{r['train_time_mean']:.2f}",
                    "whole image" if r["receptive_field"] is None else f"{r['receptive_field']}x{r['receptive_field']}",
                    " / ".join(f"{a:.3f}" for a in r["shift_acc"]),
                    f"{r['shift_consistency'][-1]:.3f}",
                ]
            )
        parts.append(f"<h3>{_e(d)}</h3>")
        parts.append(
            _table(
                [
                    "variant",
                    "test accuracy",
                    "params",
                    "mult-adds",
                    "activations KB",
                    "train s",
                    "receptive field",
                    f"accuracy at shift 0..{k}",
                    f"same prediction @{k}px",
                ],
                rows,
            )
        )
    parts.append("<ul>" + "".join(f"<li>{_e(line)}</li>" for line in ab["findings"]) + "</ul>")
    for f in ab.get("figures", []):
        parts.append(_img(f, out, os.path.basename(f).replace("_", " ").replace(".png", "")))
    return "\n".join(parts)


def _invariance_section(inv: dict[str, Any], out: str) -> str:
    parts = [
        "<h2>7. Translation: conv is equivariant, pooling buys partial invariance</h2>",
        "<p>Relative change of each layer's output when its input is shifted circularly by 1.."
        f"{inv['max_shift']} pixels (0 = invariant); the last column is the largest error after shifting the "
        "output back (0 = equivariant, checked at shifts the stride divides).</p>",
    ]
    for in_name, per in inv["results"].items():
        rows = []
        for name, r in per.items():
            errs = [e for e in r["equivariance_error"] if e is not None]
            rows.append([name, *(f"{c:.3f}" for c in r["relative_change"][1:]), f"{max(errs):.1e}"])
        parts.append(f"<h3>{_e(in_name)}</h3>")
        parts.append(
            _table(["layer", *(f"shift {s}" for s in range(1, inv["max_shift"] + 1)), "equivariance error"], rows)
        )
    ce = inv["counterexample"]
    parts.append(
        f'<div class="answer">1-D counterexample: x = {np.asarray(ce["x"]).astype(int).tolist()} gives a 2-wide, '
        f"stride-2 max pool of {np.asarray(ce['max_pool']).astype(int).tolist()}; shifted by one pixel, "
        f"{np.asarray(ce['x_shifted']).astype(int).tolist()} gives {np.asarray(ce['max_pool_shifted']).astype(int).tolist()}: "
        f"{ce['changed_outputs']} of {ce['outputs']} outputs change (relative change {ce['relative_change']:.2f}). "
        f"Blurring before subsampling cuts that to {ce['blurpool_relative_change']:.2f}.</div>"
    )
    if "figure" in inv:
        parts.append(_img(inv["figure"], out, "Relative output change under input shifts"))
    return "\n".join(parts)


def _summary_section(ex: dict[str, Any], ab: dict[str, Any] | None, inv: dict[str, Any]) -> str:
    p = ex["parameters"]
    lines = [
        f"Convolution multiplies each window by learned coefficients and sums ({p['conv']['formula']} parameters "
        f"for Conv2d({p['conv']['c_in']}, {p['conv']['c_out']}, {p['conv']['k']})); pooling reduces each window "
        "with a fixed function and has no parameters.",
        f"Average pooling is a convolution with fixed weights (difference {ex['avg_is_conv']['max_abs_diff']:.1e}); "
        f"max pooling is not a convolution at all - it is not linear (max(a+b) = {ex['max_not_linear']['max(a+b)']:g}, "
        f"max(a)+max(b) = {ex['max_not_linear']['max(a)+max(b)']:g}).",
    ]
    noise = inv["results"].get("random noise", {})
    if "conv 3x3" in noise and "max pool 2x2/2" in noise:
        lines.append(
            f"Aims: conv extracts patterns and moves with the input (equivariance error "
            f"{max(e for e in noise['conv 3x3']['equivariance_error'] if e is not None):.0e}); max pooling shrinks "
            f"the map and changes less under a 1-pixel shift ({noise['max pool 2x2/2']['relative_change'][1]:.2f} "
            f"versus {noise['conv 3x3']['relative_change'][1]:.2f} for the conv on random inputs)."
        )
    if ab:
        for d, per in ab["datasets"].items():
            base = per.get("conv + max pool")
            parts = []
            for v in ("conv, no downsampling", "fixed filters + max pool", "MLP (no conv, no pool)"):
                if base and v in per:
                    parts.append(
                        f"{v}: {per[v]['acc_mean']:.3f} with {per[v]['params'] / base['params']:.1f}x the parameters"
                    )
            if base and parts:
                lines.append(
                    f"Without a layer, on {d} (conv + max pool: {base['acc_mean']:.3f}): " + "; ".join(parts) + "."
                )
    return "<h2>Summary</h2><ul>" + "".join(f"<li>{_e(x)}</li>" for x in lines) + "</ul>"


def build_html(
    out: str,
    ex: dict[str, Any],
    fi: dict[str, Any] | None,
    ab: dict[str, Any] | None,
    inv: dict[str, Any],
    timings: dict[str, float],
    command: str,
) -> str:
    from .. import __version__

    body = [
        "<h1>convpool report: convolution versus pooling</h1>",
        "<p>What is the difference between a convolution layer and a pooling layer? Is pooling a convolution with "
        "fixed weights? Does only conv have parameters? What is each for, and what happens to a network that drops "
        "one of them? Every number below was computed by the run that wrote this page.</p>",
        _summary_section(ex, ab, inv),
        _explain_section(ex, out),
        _answers_section(ex),
    ]
    if fi:
        body.append(_filters_section(fi, out))
    if ab:
        body.append(_ablation_section(ab, out))
    body.append(_invariance_section(inv, out))
    files = sorted(f for f in os.listdir(out) if f.endswith((".json", ".png")))
    body.append(
        "<h2>Reproduce</h2>"
        f"<p><code>{_e(command)}</code> - convpool {__version__}, Python {platform.python_version()}, "
        f"NumPy {np.__version__}, {_e(platform.machine())}, {os.cpu_count()} CPUs. Time per part: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
        + ". Files: "
        + ", ".join(f'<a href="{_e(f)}">{_e(f)}</a>' for f in files)
        + ".</p>"
    )
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>convpool report</title>'
        f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>"
    )
    path = os.path.join(out, "index.html")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, path)
    return path


def main(
    out: str = "convpool-report",
    quick: bool = False,
    seeds: int = 3,
    epochs: int | None = None,
    datasets: tuple[str, ...] = ("digits", "lines"),
    skip_ablation: bool = False,
    workers: int = 2,
    command: str = "convpool report",
    variants: tuple[str, ...] | None = None,
    learn_epochs: int | None = None,
) -> str:
    from . import ablate, explain, filters, invariance
    from ._common import console

    con = console()
    os.makedirs(out, exist_ok=True)
    timings: dict[str, float] = {}
    steps = 4 if not skip_ablation else 3

    def step(i: int, name: str) -> float:
        sys.stdout.flush()
        con.rule(f"[bold cyan][{i}/{steps}] {name}")
        sys.stdout.flush()
        return time.perf_counter()

    t = step(1, "explain: the worked example")
    ex = explain.main(out=out)
    timings["explain"] = time.perf_counter() - t
    t = step(2, "filters: a real image, hand-made and learned filters")
    fi = filters.main(out=out, epochs=learn_epochs or (4 if quick else 8))
    timings["filters"] = time.perf_counter() - t
    t = step(3, "invariance: shifts, layer by layer")
    inv = invariance.main(out=out)
    timings["invariance"] = time.perf_counter() - t
    ab = None
    if not skip_ablation:
        t = step(4, "ablate: train every variant over several seeds (parallel)")
        ab = ablate.main(
            out=out,
            datasets=datasets,
            seeds=seeds,
            epochs=epochs or (8 if quick else 15),
            quick=quick,
            workers=workers,
            variants=variants or tuple(ablate.VARIANTS),
        )
        timings["ablate"] = time.perf_counter() - t
    path = build_html(out, ex, fi, ab, inv, timings, command)
    write_json(
        os.path.join(out, "report.json"), {"timings": timings, "command": command, "files": sorted(os.listdir(out))}
    )
    con.print(f"\n[bold green]report written:[/] {os.path.abspath(path)}")
    return path
