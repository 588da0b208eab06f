"""``convpool ablate``'s output: the terminal tables, the findings and the figures."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ._common import pyplot, save_figure

BASE = "max"  # the reference variant: LeNet-5 with max pooling


def _rf(r: dict[str, Any]) -> str:
    return "whole image" if r["receptive_field"] is None else f"{r['receptive_field']}x{r['receptive_field']}"


def sweep_table(res: dict[str, Any]) -> dict[str, dict[int, dict[str, Any]]]:
    """The sweep's entries as ``{variant: {n_train: entry}}``."""
    table: dict[str, dict[int, dict[str, Any]]] = {}
    for e in res["sweep"]["entries"]:
        table.setdefault(e["variant"], {})[e["n_train"]] = e
    return table


def learned_summary(r: dict[str, Any]) -> str:
    """'p 2.41 / 2.87' for GeM, 'alpha ...' for mixed, '|SE| ...' for max-plus; '' otherwise."""
    parts = []
    for layer, v in r.get("learned", {}).items():
        if "p" in v:
            parts.append(f"layer {layer}: p {v['p']:.2f}")
        if "alpha" in v:
            parts.append(f"layer {layer}: alpha {v['alpha']:.2f}")
        if "se_mean_abs" in v:
            parts.append(f"layer {layer}: mean |SE| {v['se_mean_abs']:.3f}")
    return "; ".join(parts)


def findings(res: dict[str, Any]) -> list[str]:
    """Plain-language conclusions, every number taken from ``res``."""
    out: list[str] = []
    ab, cfg = res["ablation"], res["config"]
    k = cfg["max_shift"]
    base = ab.get(BASE)
    if base is not None:
        out.append(
            f"{base['label']}: test accuracy {base['acc_mean']:.4f} ± {base['acc_std']:.4f} over "
            f"{len(base['seeds'])} seeds; under shifts of up to {k} pixels accuracy {base['shift_acc'][-1]:.4f}, "
            f"consistency {base['shift_consistency'][-1]:.4f}."
        )
        for v, r in ab.items():
            if v == BASE:
                continue
            delta = (r["acc_mean"] - base["acc_mean"]) * 100
            learned = learned_summary(r)
            out.append(
                f"{r['label']}: {r['acc_mean']:.4f} ({delta:+.2f} points), {r['params'] / base['params']:.2f}x the "
                f"parameters, {r['mult_adds'] / max(base['mult_adds'], 1):.2f}x the multiply-adds; "
                f"consistency at {k} px {r['shift_consistency'][-1]:.4f} "
                f"({(r['shift_consistency'][-1] - base['shift_consistency'][-1]) * 100:+.2f} points)"
                + (f"; learned: {learned}" if learned else "")
                + "."
            )
    check = res.get("maxplus_zero_vs_max_pool")
    if check is not None and "maxplus" in ab:
        out.append(
            f"Before training, the max-plus variant (zero structuring elements) and max pooling built from the same "
            f"seed give outputs that differ by at most {check['max_abs_diff']:.1e} on {check['images']} test images: "
            "max pooling is max-plus convolution with a flat structuring element."
        )
    table = sweep_table(res)
    sizes = res["sweep"]["sizes"]
    if BASE in table and sizes:
        for n in (sizes[0], sizes[-1]):
            gaps = [
                f"{table[v][n]['label']} {table[v][n]['acc_mean']:.4f} "
                f"({(table[v][n]['acc_mean'] - table[BASE][n]['acc_mean']) * 100:+.2f})"
                for v in table
                if v != BASE
            ]
            out.append(
                f"Size sweep, {n:,} training examples ({table[BASE][n]['epochs']} epochs): conv + max pool "
                f"{table[BASE][n]['acc_mean']:.4f}; " + ", ".join(gaps) + " (points versus max pool)."
            )
    return out


def render(res: dict[str, Any]) -> None:
    """The ablation and sweep tables, and the findings, on the terminal."""
    from rich.table import Table

    from ._common import console

    con = console()
    cfg = res["config"]
    k = cfg["max_shift"]
    if res["ablation"]:
        t = Table(
            title=f"{cfg.get('data_label', cfg['data'])}: {cfg['n_train']:,} training / {cfg['n_test']:,} test images, {cfg['seeds']} seeds "
            f"x {cfg['epochs']} epochs ({cfg['recipe']})",
            title_justify="left",
        )
        for col in (
            "variant",
            "test acc",
            "params",
            "mult-adds",
            "pool ops",
            "train s",
            "RF",
            f"acc @{k}px",
            "consist.",
        ):
            t.add_column(col, justify="left" if col == "variant" else "right")
        for r in res["ablation"].values():
            t.add_row(
                r["label"],
                f"{r['acc_mean']:.4f}±{r['acc_std']:.4f}",
                f"{r['params']:,}",
                f"{r['mult_adds']:,}",
                f"{r['window_ops']:,}",
                f"{r['train_time_mean']:.2f}",
                _rf(r),
                f"{r['shift_acc'][-1]:.4f}",
                f"{r['shift_consistency'][-1]:.4f}",
            )
        con.print(t)
        con.print(f"[dim]{cfg['timing']}; consistency: same class for two random shifts of up to {k} px[/]")
    table = sweep_table(res)
    if table:
        sizes = res["sweep"]["sizes"]
        t = Table(
            title=f"Training-set-size sweep: test accuracy, {cfg['sweep_seeds']} seed{'s' if cfg['sweep_seeds'] > 1 else ''}",
            title_justify="left",
        )
        t.add_column("variant")
        for n in sizes:
            t.add_column(f"{n:,} ({next(iter(table.values()))[n]['epochs']} ep.)", justify="right")
        for per in table.values():
            first = next(iter(per.values()))
            t.add_row(first["label"], *(f"{per[n]['acc_mean']:.4f}±{per[n]['acc_std']:.4f}" for n in sizes))
        con.print(t)
    for line in res.get("findings", []):
        con.print("- " + line)
    con.print(f"wall time {res['wall_time']:.1f} s on {cfg['workers']} worker processes")


# bar colours by what the variant changes
GROUPS = {
    "fixed pool": ("tab:blue", ("max", "avg", "median", "lp", "blur", "stochastic")),
    "learned pool": ("tab:green", ("maxplus", "gem", "mixed")),
    "no pooling": ("tab:orange", ("strided", "nodown")),
    "no learned conv / no conv": ("tab:gray", ("fixed", "mlp")),
}


def _group_colour(key: str) -> str:
    return next((c for c, keys in GROUPS.values() if key in keys), "tab:purple")


def _line_styles(n: int) -> list[dict[str, Any]]:
    """Distinct colour, marker and line style for up to ~20 lines."""
    cmap = pyplot().get_cmap("tab10")
    markers = "osD^v<>phX*P8"
    return [
        {"color": cmap(i % 10), "marker": markers[i % len(markers)], "ls": "-" if i < 10 else "--"} for i in range(n)
    ]


def figure_ablation(res: dict[str, Any], path: str) -> str:
    """Four panels sharing the variant axis: accuracy, consistency, parameters, time."""
    plt = pyplot()
    per = res["ablation"]
    k = res["config"]["max_shift"]
    keys = list(per)
    rows = [per[v] for v in keys]
    y = np.arange(len(rows))
    fig, axes = plt.subplots(2, 2, figsize=(11, 1.6 + 0.62 * len(rows)), sharey=True, layout="constrained")
    panels = [
        (axes[0, 0], [r["acc_mean"] for r in rows], [r["acc_std"] for r in rows], "test accuracy (mean ± std)", ".4f"),
        (axes[0, 1], [r["shift_consistency"][-1] for r in rows], None, f"consistency, shifts up to {k} px", ".3f"),
        (axes[1, 0], [r["params"] for r in rows], None, "trainable parameters (log scale)", ",.0f"),
        (axes[1, 1], [r["train_time_mean"] for r in rows], None, "training time, s (compilation excluded)", ".1f"),
    ]
    colours = [_group_colour(v) for v in keys]
    for ax, vals, err, title, spec in panels:
        ax.barh(y, vals, xerr=err, color=colours, alpha=0.85, capsize=2, error_kw={"lw": 1})
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ends = np.asarray(vals, dtype=float) + (np.asarray(err) if err else 0.0)
        if "parameters" in title:
            ax.set_xscale("log")
            ax.set_xlim(min(vals) / 2, max(vals) * 12)
        elif "accuracy" in title:
            lo = float(np.min(np.asarray(vals) - (np.asarray(err) if err else 0.0)))
            ax.set_xlim(max(0.0, lo - (1 - lo) * 0.3), 1.0 + (1 - lo) * 0.25)
        else:
            ax.set_xlim(0, max(ends) * 1.3)
        for yi, v, end in zip(y, vals, ends, strict=True):
            ax.text(end, yi, " " + format(v, spec), va="center", fontsize=7.5, clip_on=True)
    axes[0, 0].set_yticks(y, [r["label"] for r in rows], fontsize=9)
    axes[0, 0].invert_yaxis()
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.85) for c, _ in GROUPS.values()]
    fig.legend(handles, list(GROUPS), loc="outside lower center", ncol=len(GROUPS), fontsize=8, frameon=False)
    d = res["config"]
    fig.suptitle(
        f"LeNet-5 variants on {d.get('data_label', d['data'])} ({d['n_train']:,} training images, {d['seeds']} seeds)"
    )
    return save_figure(fig, path)


def figure_learned_se(res: dict[str, Any], path: str) -> str:
    """The 2x2 structuring elements the max-plus variant learned (seed 0), one row per layer."""
    plt = pyplot()
    layers = res["ablation"]["maxplus"]["learned"]
    ses = [np.asarray(v["se_first_seed"]) for v in layers.values()]
    cols = max(len(s) for s in ses)
    lim = max(max(float(np.abs(s).max()) for s in ses), 1e-6)
    fig, axes = plt.subplots(len(ses), cols, figsize=(0.85 * cols + 1.2, 1.05 * len(ses) + 0.7), squeeze=False)
    for r, (name, se) in enumerate(zip(layers, ses, strict=True)):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(se):
                ax.axis("off")
                continue
            ax.imshow(se[c], cmap="RdBu_r", vmin=-lim, vmax=lim)
            for (i, j), v in np.ndenumerate(se[c]):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6)
        axes[r, 0].set_ylabel(f"layer {name}\n({len(se)} ch.)", fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle("Learned max-plus structuring elements (0 everywhere = max pooling; red +, blue -)", fontsize=10)
    return save_figure(fig, path)


def figure_shift(res: dict[str, Any], path: str) -> str:
    """Accuracy and consistency against the largest shift, one line per variant."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharex=True, layout="constrained")
    for r, style in zip(res["ablation"].values(), _line_styles(len(res["ablation"])), strict=True):
        d = range(len(r["shift_acc"]))
        kw = {**style, "ms": 4, "lw": 1.3, "label": r["label"]}
        axes[0].plot(d, r["shift_acc"], **kw)
        axes[1].plot(d, r["shift_consistency"], **kw)
    axes[0].set_title("accuracy on shifted test images")
    axes[1].set_title("consistency: same class for two random shifts")
    for ax in axes:
        ax.set_xlabel("largest shift per axis (pixels, zero fill)")
        ax.grid(alpha=0.3)
        ax.set_xticks(range(res["config"]["max_shift"] + 1))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    return save_figure(fig, path)


def figure_sweep(res: dict[str, Any], path: str) -> str:
    """Accuracy against the training-set size, and the gap to max pooling."""
    plt = pyplot()
    table = sweep_table(res)
    sizes = res["sweep"]["sizes"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharex=True, layout="constrained")
    for per, style in zip(table.values(), _line_styles(len(table)), strict=True):
        c = style["color"]
        mean = np.array([per[n]["acc_mean"] for n in sizes])
        std = np.array([per[n]["acc_std"] for n in sizes])
        lab = next(iter(per.values()))["label"]
        axes[0].errorbar(sizes, mean, yerr=std, marker="o", ms=4, capsize=3, color=c, label=lab)
        if BASE in table:
            base = np.array([table[BASE][n]["acc_mean"] for n in sizes])
            axes[1].plot(sizes, (mean - base) * 100, marker="o", ms=4, color=c, label=lab)
    n_seeds = res["config"]["sweep_seeds"]
    axes[0].set_title(f"test accuracy (mean ± std over {n_seeds} seeds)" if n_seeds > 1 else "test accuracy (1 seed)")
    axes[0].set_ylabel("test accuracy")
    axes[1].set_title("difference to conv + max pool")
    axes[1].set_ylabel("accuracy points")
    axes[1].axhline(0, color="black", lw=0.8)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("training examples")
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes], fontsize=8)
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return save_figure(fig, path)


def figures(res: dict[str, Any], out: str) -> list[str]:
    paths = []
    if res["ablation"]:
        paths.append(figure_ablation(res, os.path.join(out, "ablation.png")))
        paths.append(figure_shift(res, os.path.join(out, "ablation_shift.png")))
    if res["sweep"]["entries"]:
        paths.append(figure_sweep(res, os.path.join(out, "size_sweep.png")))
    return paths
