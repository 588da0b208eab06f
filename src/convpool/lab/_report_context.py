"""The numbers the report's templates print, derived from the lab's facts.

The templates hold the prose; this module only picks, combines and formats what
the run computed (comparisons, ratios, table rows), so that every number on the
page comes from the facts passed in.  Parts that did not run are None.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._ablate_show import BASE, learned_summary, sweep_table

HOW = {
    "max": "the largest element",
    "min": "the smallest element",
    "median": "the middle element (sorted)",
    "avg": "the mean of the elements",
}


def _f(v: Any, spec: str) -> str:
    return format(float(v), spec)


def _values(v: Any) -> list[float]:
    """A learned scalar per layer: a float or a list of them, as a list."""
    return [float(x) for x in np.ravel(np.asarray(v, dtype=float))]


def _epochs(n: int) -> str:
    return f"{n} epoch{'' if n == 1 else 's'}"


def worked_example(ex: dict[str, Any]) -> dict[str, Any]:
    """The centre window: the products, the sum, the pool's choice, the window mask."""
    kernel = np.asarray(ex["kernel"])
    x = np.asarray(ex["input"])
    k, c = kernel.shape[0], x.shape[0] // 2
    mask = np.zeros(x.shape, dtype=bool)
    mask[c - k // 2 : c + k // 2 + 1, c - k // 2 : c + k // 2 + 1] = True
    cen = ex["centre"]
    terms = " + ".join(
        f"({_f(w, 'g')})({_f(v, '.3g')})" for w, v in zip(np.ravel(cen["window"]), np.ravel(kernel), strict=True)
    )
    first_map = next(iter(ex["maps"].values()))
    return {
        "mask": mask.tolist(),
        "terms": terms,
        "how": HOW.get(ex["pool"], ex["pool"]),
        "formula": first_map["size"]["formula"],
        "maps": [
            {"title": t, "formula": m["size"]["formula"], "conv": np.asarray(m["conv"]), "pool": np.asarray(m["pool"])}
            for t, m in ex["maps"].items()
        ],
    }


def learned_pooling(ex: dict[str, Any], ab: dict[str, Any] | None) -> dict[str, Any] | None:
    """GeM's p, mixed pooling's alpha and the max-plus structuring elements: from
    ``convpool explain --learn`` when it ran, else from the ablation's trainings."""
    le = ex.get("learned")
    if le:
        se = [np.asarray(s, dtype=float) for s in le.get("maxplus_se", [])]
        acc = le.get("test_acc", {})
        return {
            "source": f"LeNet-5 trained on {le.get('n_train', 0):,} MNIST images for {_epochs(le.get('epochs', 0))} "
            "(convpool explain)",
            "gem": {"start": _values(le["gem_p"]["start"]), "learned": _values(le["gem_p"]["learned"])},
            "mixed": {"start": _values(le["mixed_alpha"]["start"]), "learned": _values(le["mixed_alpha"]["learned"])},
            "se_range": [min(float(s.min()) for s in se), max(float(s.max()) for s in se)] if se else None,
            "se_first": se[0].tolist() if se else None,
            "acc": {k: float(v) for k, v in acc.items()},
        }
    if not ab:
        return None
    per = ab["ablation"]
    if not any(v in per for v in ("gem", "mixed", "maxplus")):
        return None

    def layers(v: str, name: str) -> list[float]:
        return [float(d[name]) for d in per[v]["learned"].values() if name in d] if v in per else []

    se = [np.asarray(d["se_first_seed"]) for d in per["maxplus"]["learned"].values()] if "maxplus" in per else []
    cfg = ab["config"]
    return {
        "source": f"the ablation's LeNet-5 trainings ({cfg['n_train']:,} {cfg.get('data_label', cfg['data'])} images, {_epochs(cfg['epochs'])}; "
        f"p and alpha are means over {cfg['seeds']} seeds, the structuring elements those of seed 0)",
        "gem": {"start": [3.0] * len(layers("gem", "p")), "learned": layers("gem", "p")} if "gem" in per else None,
        "mixed": {"start": [0.5] * len(layers("mixed", "alpha")), "learned": layers("mixed", "alpha")}
        if "mixed" in per
        else None,
        "se_range": [min(float(s.min()) for s in se), max(float(s.max()) for s in se)] if se else None,
        "se_first": se[0].tolist() if se else None,
        "acc": {v: per[v]["acc_mean"] for v in ("gem", "mixed", "maxplus") if v in per},
    }


def invariance(inv: dict[str, Any]) -> dict[str, Any]:
    """Table rows per input kind, and the numbers the answers quote (random noise)."""
    tables = []
    for in_name, per in inv["results"].items():
        rows = []
        for name, r in per.items():
            errs = [e for e in r["equivariance_error"] if e is not None]
            rows.append([name, *(_f(c, ".3f") for c in r["relative_change"][1:]), _f(max(errs), ".1e")])
        tables.append({"name": in_name, "rows": rows})
    noise = inv["results"].get("random noise", {})
    quote = None
    if {"conv 3x3", "max pool 2x2/2"} <= set(noise):
        blur = noise.get("anti-aliased max pool (blur)")
        quote = {
            "equi": max(e for e in noise["conv 3x3"]["equivariance_error"] if e is not None),
            "conv": noise["conv 3x3"]["relative_change"][1],
            "max": noise["max pool 2x2/2"]["relative_change"][1],
            "blur": blur["relative_change"][1] if blur else None,
        }
    header = ["layer", *(f"shift {s}" for s in range(1, inv["max_shift"] + 1)), "equivariance error"]
    return {"tables": tables, "quote": quote, "header": header}


def ablation(ab: dict[str, Any]) -> dict[str, Any]:
    """The ablation's table rows and the comparisons the answers quote."""
    per, cfg = ab["ablation"], ab["config"]
    base = per.get(BASE)
    rows, shift_rows = [], []
    for r in per.values():
        rows.append(
            [
                r["label"],
                f"{r['acc_mean']:.4f} ± {r['acc_std']:.4f}",
                f"{r['params']:,}" + (f" (+{r['fixed_params']:,} fixed)" if r["fixed_params"] else ""),
                f"{r['mult_adds']:,}",
                f"{r['window_ops']:,}",
                f"{r['train_time_mean']:.1f}",
                "whole image" if r["receptive_field"] is None else f"{r['receptive_field']}x{r['receptive_field']}",
            ]
        )
        shift_rows.append(
            [r["label"], *(f"{a:.3f}" for a in r["shift_acc"]), *(f"{c:.3f}" for c in r["shift_consistency"][1:])]
        )
    k = cfg["max_shift"]
    shift_header = ["variant", *(f"acc. d={d}" for d in range(k + 1)), *(f"cons. d={d}" for d in range(1, k + 1))]
    compare = {}
    for v, r in per.items():
        compare[v] = {
            "label": r["label"],
            "acc": r["acc_mean"],
            "std": r["acc_std"],
            "delta": (r["acc_mean"] - base["acc_mean"]) * 100 if base else None,
            "params": r["params"],
            "params_x": r["params"] / base["params"] if base else None,
            "macs_x": r["mult_adds"] / max(base["mult_adds"], 1) if base else None,
            "consistency": r["shift_consistency"][-1],
            "shift_acc": r["shift_acc"][-1],
            "learned": learned_summary(r),
        }
    best = max(per.values(), key=lambda r: r["acc_mean"]) if per else None
    most_consistent = max(per.values(), key=lambda r: r["shift_consistency"][-1]) if per else None
    return {
        "cfg": cfg,
        "rows": rows,
        "shift_rows": shift_rows,
        "shift_header": shift_header,
        "v": compare,
        "base": compare.get(BASE),
        "best": best["label"] if best else None,
        "most_consistent": most_consistent["label"] if most_consistent else None,
        "k": cfg["max_shift"],
        "descriptions": [(r["label"], r["description"]) for r in per.values()],
    }


def sweep(ab: dict[str, Any]) -> dict[str, Any] | None:
    """The sweep as a table (variants x sizes) and the gap to max pooling at the
    smallest and the largest size."""
    table = sweep_table(ab)
    sizes = ab["sweep"]["sizes"]
    if not table or not sizes:
        return None
    one = ab["config"]["sweep_seeds"] == 1

    def cell(e: dict[str, Any]) -> str:
        return f"{e['acc_mean']:.4f}" if one else f"{e['acc_mean']:.4f} ± {e['acc_std']:.4f}"

    rows = [[next(iter(per.values()))["label"], *(cell(per[n]) for n in sizes)] for per in table.values()]
    epochs = [next(iter(table.values()))[n]["epochs"] for n in sizes]
    gaps = None
    if BASE in table and len(table) > 1:
        small, large = sizes[0], sizes[-1]
        gaps = []
        for v, per in table.items():
            if v == BASE:
                continue
            g_small = (table[BASE][small]["acc_mean"] - per[small]["acc_mean"]) * 100
            g_large = (table[BASE][large]["acc_mean"] - per[large]["acc_mean"]) * 100
            gaps.append({"label": per[small]["label"], "small": g_small, "large": g_large})
    mean_small = float(np.mean([g["small"] for g in gaps])) if gaps else 0.0
    mean_large = float(np.mean([g["large"] for g in gaps])) if gaps else 0.0
    return {
        "mean_small": mean_small,
        "mean_large": mean_large,
        "verdict": _verdict(mean_small, mean_large),
        "sizes": sizes,
        "header": ["variant", *(f"{n:,} ({e} epochs)" for n, e in zip(sizes, epochs, strict=True))],
        "rows": rows,
        "gaps": gaps,
        "small": sizes[0],
        "large": sizes[-1],
        "base_small": table[BASE][sizes[0]]["acc_mean"] if BASE in table else None,
        "base_large": table[BASE][sizes[-1]]["acc_mean"] if BASE in table else None,
        "seeds": ab["config"]["sweep_seeds"],
        "min_examples": ab["config"]["sweep_min_examples"],
    }


def _verdict(small: float, large: float, tolerance: float = 0.5) -> str:
    """Whether max pooling's advantage (accuracy points) was larger with few examples
    than with many."""
    if small > large + tolerance:
        return "max pooling's advantage was larger when data were scarce"
    if small < large - tolerance:
        return "max pooling's advantage was smaller when data were scarce"
    return f"max pooling's advantage was about the same (within {tolerance:g} points) with few and with many examples"


# the variants the answer "what happens without each?" quotes, and how it names them
WITHOUT = (
    ("strided", "without pooling (strided convolutions downsample instead)"),
    ("nodown", "without any downsampling"),
    ("fixed", "without learned first-layer filters (frozen hand-made ones)"),
    ("mlp", "without convolution and pooling (an MLP on the pixels)"),
)


def filters(fi: dict[str, Any]) -> dict[str, Any]:
    rows = [
        [
            k,
            f"{v['shape'][0]}x{v['shape'][1]}",
            f"{v['kept_fraction']:.1%}",
            f"{v['window_ops']:,}",
            "0",
            f"{v['seconds'] * 1e3:.3g}",
        ]
        for k, v in fi["pool"].items()
    ]
    return {"rows": rows, "conv_ms": fi["conv"]["seconds"] * 1e3}
