"""``convpool ablate``: what each layer contributes, measured by training without it.

Every variant is trained with the same recipe and budget (AdamW, cosine
schedule, same epochs and batch size) over several seeds, in parallel
processes, and measured on: test accuracy (mean +- std), trainable parameters,
multiply-adds and activation memory per example, training time, receptive
field, and robustness to translation (accuracy and prediction consistency when
the test images are shifted by 0..k pixels).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np

from .. import nn
from ._common import pyplot, save_figure, write_json

VARIANTS = {
    "conv + max pool": "the LeNet-style CNN: conv-ReLU-maxpool twice, then an MLP head",
    "conv + avg pool": "the same with average pooling",
    "conv + median pool": "the same with median pooling",
    "strided conv, no pool": "pooling replaced by stride-2 convolutions (all-convolutional)",
    "conv, no downsampling": "the two convs without any pooling or stride: full-size maps into the head",
    "fixed filters + max pool": "no learned conv: 8 hand-made edge/blob filters (frozen), ReLU, max pool, linear classifier",
    "MLP (no conv, no pool)": "pixels straight into a 2-hidden-layer MLP",
}

FIXED_BANK = (
    np.array(
        [
            [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
            [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
            [[2, 1, 0], [1, 0, -1], [0, -1, -2]],
            [[0, 1, 2], [-1, 0, 1], [-2, -1, 0]],
            [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
            [[1, 1, 1], [1, 1, 1], [1, 1, 1]],
            [[-1, 2, -1], [-1, 2, -1], [-1, 2, -1]],
            [[-1, -1, -1], [2, 2, 2], [-1, -1, -1]],
        ],
        dtype=np.float32,
    )
    / 4.0
)


def build_variant(name: str, c: int, s: int, k: int, width: int = 16) -> nn.Sequential:
    from .. import models

    def lenet_with(pool: type) -> nn.Sequential:
        q = s // 2 // 2
        return nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1),
            nn.ReLU(),
            pool(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            pool(2),
            nn.Flatten(),
            nn.Linear(2 * width * q * q, 64),
            nn.ReLU(),
            nn.Linear(64, k),
        )

    if name == "conv + max pool":
        return lenet_with(nn.MaxPool2d)
    if name == "conv + avg pool":
        return lenet_with(nn.AvgPool2d)
    if name == "conv + median pool":
        return lenet_with(nn.MedianPool2d)
    if name == "strided conv, no pool":
        return models.allconv(c, k, s, width=width)
    if name == "conv, no downsampling":
        return nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * width * s * s, 64),
            nn.ReLU(),
            nn.Linear(64, k),
        )
    if name == "fixed filters + max pool":
        conv = nn.Conv2d(c, len(FIXED_BANK) * c, 3, padding=1, groups=c, bias=False)
        conv.weight.data = np.tile(FIXED_BANK[:, None], (c, 1, 1, 1))
        conv.weight.requires_grad = False
        q = s // 2
        return nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(len(FIXED_BANK) * c * q * q, k))
    if name == "MLP (no conv, no pool)":
        return models.mlp(c, k, s)
    raise ValueError(f"variant must be one of {list(VARIANTS)}, got {name!r}")


def shift_images(x: np.ndarray, d: int, seed: int) -> np.ndarray:
    """Shift each image by ``d`` pixels in a random direction (right, left, down, up), zero-filled."""
    if d == 0:
        return x
    rng = np.random.default_rng(seed)
    out = np.zeros_like(x)
    direction = rng.integers(0, 4, len(x))
    out[direction == 0, :, :, d:] = x[direction == 0, :, :, :-d]
    out[direction == 1, :, :, :-d] = x[direction == 1, :, :, d:]
    out[direction == 2, :, d:, :] = x[direction == 2, :, :-d, :]
    out[direction == 3, :, :-d, :] = x[direction == 3, :, d:, :]
    return out


def _load(dataset: str, quick: bool) -> Any:
    from .. import data

    if dataset == "lines":
        return data.load_lines(n_train=1200 if quick else 3000, n_test=400 if quick else 1000, noise=0.25)
    return data.load_dataset(dataset)


def run_one(task: dict[str, Any]) -> dict[str, Any]:
    """Train one variant with one seed and measure it (runs in a worker process)."""
    from .. import _random, models, train

    split = _load(task["dataset"], task["quick"])
    c, s = split.train.x.shape[1], split.train.x.shape[2]
    _random.manual_seed(task["seed"])
    model = build_variant(task["variant"], c, s, split.train.num_classes)
    rows = models.summary_rows(model, split.train.x.shape[1:])
    _, final = train.train_classifier(model, split.train, split.test, epochs=task["epochs"], progress=False)
    base = train.predict(model, split.test.x)
    shift_acc, consistency = [], []
    for d in range(task["max_shift"] + 1):
        pred = train.predict(model, shift_images(split.test.x, d, seed=1000 + d))
        shift_acc.append(float((pred == split.test.y).mean()))
        consistency.append(float((pred == base).mean()))
    rfs = [r.receptive_field for r in rows if r.receptive_field is not None]
    return {
        **task,
        "test_acc": final["test_acc"],
        "train_time": final["train_time"],
        "params": int(sum(p.size for p in model.parameters() if p.requires_grad)),
        "fixed_params": int(sum(p.size for p in model.parameters() if not p.requires_grad)),
        "mult_adds": int(sum(r.mult_adds for r in rows)),
        "activation_bytes": int(sum(int(np.prod(r.output_shape)) for r in rows) * 4),
        "receptive_field": int(max(rfs)) if rfs else None,
        "shift_acc": shift_acc,
        "shift_consistency": consistency,
    }


def _aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    acc = np.array([r["test_acc"] for r in runs])
    first = runs[0]
    return {
        "description": VARIANTS[first["variant"]],
        "seeds": [r["seed"] for r in runs],
        "test_acc": acc.tolist(),
        "acc_mean": float(acc.mean()),
        "acc_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
        "params": first["params"],
        "fixed_params": first["fixed_params"],
        "mult_adds": first["mult_adds"],
        "activation_bytes": first["activation_bytes"],
        "receptive_field": first["receptive_field"],
        "train_time_mean": float(np.mean([r["train_time"] for r in runs])),
        "shift_acc": np.mean([r["shift_acc"] for r in runs], axis=0).tolist(),
        "shift_consistency": np.mean([r["shift_consistency"] for r in runs], axis=0).tolist(),
    }


def run(
    datasets: tuple[str, ...] = ("digits", "lines"),
    variants: tuple[str, ...] = tuple(VARIANTS),
    seeds: int = 3,
    epochs: int = 10,
    max_shift: int = 2,
    workers: int = 2,
    quick: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train every (dataset, variant, seed) and aggregate."""
    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"variant must be one of {list(VARIANTS)}, got {v!r}")
    if seeds < 1 or epochs < 1 or workers < 1:
        raise ValueError(f"seeds, epochs and workers must be positive, got {seeds}, {epochs}, {workers}")
    tasks = [
        {"dataset": d, "variant": v, "seed": s, "epochs": epochs, "max_shift": max_shift, "quick": quick}
        for d in datasets
        for v in variants
        for s in range(seeds)
    ]
    t0 = time.perf_counter()
    done = _execute(tasks, workers, progress)
    out: dict[str, Any] = {
        "config": {
            "datasets": list(datasets),
            "seeds": seeds,
            "epochs": epochs,
            "max_shift": max_shift,
            "workers": workers,
            "quick": quick,
            "recipe": "AdamW lr 3e-3, weight decay 1e-2, cosine schedule, batch 32",
        },
        "datasets": {},
        "wall_time": 0.0,
    }
    for d in datasets:
        out["datasets"][d] = {
            v: _aggregate(sorted([r for r in done if r["dataset"] == d and r["variant"] == v], key=lambda r: r["seed"]))
            for v in variants
        }
    out["wall_time"] = time.perf_counter() - t0
    return out


def _execute(tasks: list[dict[str, Any]], workers: int, progress: bool) -> list[dict[str, Any]]:
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks), desc="ablation trainings", unit="run", dynamic_ncols=True)
    done = []
    if workers == 1:
        for t in tasks:
            done.append(run_one(t))
            if bar is not None:
                bar.update(1)
    else:
        import multiprocessing as mp

        # One BLAS and numba thread per worker: the workers already use every core, and
        # oversubscribed threads (OpenMP and OpenBLAS poll while idle) slow everything.
        threads = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
        saved = {k: os.environ.get(k) for k in threads}
        os.environ.update({k: "1" for k in saved})
        try:
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(run_one, t) for t in tasks]
                for f in as_completed(futures):
                    done.append(f.result())
                    if bar is not None:
                        bar.update(1)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    if bar is not None:
        bar.close()
    return done


def findings(res: dict[str, Any]) -> list[str]:
    """Plain-language conclusions, every number taken from ``res``."""
    out = []
    for d, per in res["datasets"].items():
        base = per.get("conv + max pool")
        if base is None:
            continue
        for v, r in per.items():
            if v == "conv + max pool":
                continue
            delta = (r["acc_mean"] - base["acc_mean"]) * 100
            ratio_p = r["params"] / base["params"]
            ratio_m = r["mult_adds"] / max(base["mult_adds"], 1)
            k = len(r["shift_acc"]) - 1
            out.append(
                f"{d}: {v}: accuracy {r['acc_mean']:.3f} ({delta:+.1f} points vs conv + max pool), "
                f"{ratio_p:.2f}x the parameters, {ratio_m:.2f}x the multiply-adds; "
                f"accuracy at a {k}-pixel shift {r['shift_acc'][-1]:.3f} (conv + max pool: {base['shift_acc'][-1]:.3f})."
            )
    return out


def render(res: dict[str, Any]) -> None:
    from rich.table import Table

    from ._common import console

    con = console()
    for d, per in res["datasets"].items():
        k = res["config"]["max_shift"]
        t = Table(title=f"{d}: {res['config']['seeds']} seeds x {res['config']['epochs']} epochs", title_justify="left")
        for col in (
            "variant",
            "test acc",
            "params",
            "mult-adds",
            "act. KB",
            "time s",
            "RF",
            f"acc @{k}px",
            f"same pred @{k}px",
        ):
            t.add_column(col, justify="left" if col == "variant" else "right")
        for v, r in per.items():
            rf = "-" if r["receptive_field"] is None else f"{r['receptive_field']}"
            t.add_row(
                v,
                f"{r['acc_mean']:.3f}±{r['acc_std']:.3f}",
                f"{r['params']:,}",
                f"{r['mult_adds']:,}",
                f"{r['activation_bytes'] / 1024:.1f}",
                f"{r['train_time_mean']:.1f}",
                rf,
                f"{r['shift_acc'][-1]:.3f}",
                f"{r['shift_consistency'][-1]:.3f}",
            )
        con.print(t)
    for line in findings(res):
        con.print("- " + line)


def figures(res: dict[str, Any], out: str) -> list[str]:
    plt = pyplot()
    paths = []
    ds = list(res["datasets"])
    fig, axes = plt.subplots(1, len(ds), figsize=(6.5 * len(ds), 4.2), squeeze=False)
    for ax, d in zip(axes[0], ds, strict=True):
        per = res["datasets"][d]
        names = list(per)
        means = [per[v]["acc_mean"] for v in names]
        stds = [per[v]["acc_std"] for v in names]
        ax.barh(names, means, xerr=stds, color="tab:blue", alpha=0.8)
        ax.set_xlim(max(0.0, min(means) - 0.1), 1.0)
        ax.set_title(f"{d}: test accuracy (mean ± std)")
        ax.invert_yaxis()
    paths.append(save_figure(fig, os.path.join(out, "ablation_accuracy.png")))
    fig, axes = plt.subplots(1, len(ds), figsize=(6.5 * len(ds), 4.2), squeeze=False)
    for ax, d in zip(axes[0], ds, strict=True):
        for v, r in res["datasets"][d].items():
            ax.plot(range(len(r["shift_acc"])), r["shift_acc"], marker="o", label=v)
        ax.set_title(f"{d}: accuracy on shifted test images")
        ax.set_xlabel("shift (pixels)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    paths.append(save_figure(fig, os.path.join(out, "ablation_shift.png")))
    fig, axes = plt.subplots(1, len(ds), figsize=(6.5 * len(ds), 4.2), squeeze=False)
    for ax, d in zip(axes[0], ds, strict=True):
        for v, r in res["datasets"][d].items():
            ax.scatter(r["params"], r["acc_mean"], s=40)
            ax.annotate(v, (r["params"], r["acc_mean"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{d}: accuracy versus parameters")
        ax.grid(alpha=0.3)
    paths.append(save_figure(fig, os.path.join(out, "ablation_params.png")))
    return paths


def main(out: str | None = None, quiet: bool = False, **kw: Any) -> dict[str, Any]:
    res = run(progress=not quiet, **kw)
    res["findings"] = findings(res)
    if not quiet:
        render(res)
    if out:
        res["figures"] = figures(res, out)
        write_json(os.path.join(out, "results.json"), res)
    return res
