"""``convpool ablate``: what the downsampling layer is worth, measured on MNIST.

Two experiments, every training run in a worker process (in parallel) with the
same recipe (AdamW lr 3e-3, weight decay 1e-2, cosine schedule, batch 64):

* **the ablation**: LeNet-5 with each downsampling layer of
  :data:`~convpool.lab._variants.VARIANTS` (fixed pools, learned pools, a strided
  conv, none) and without learned filters or without convs, over several seeds:
  test accuracy (mean +- std), trainable parameters, multiply-adds, training
  time (compilation excluded: each worker warms the model up first), and shift
  robustness (accuracy and consistency under random shifts of 0..4 pixels, zero
  fill, as Zhang 2019 measures it);
* **the training-set-size sweep**: max pool, average pool, strided conv and no
  downsampling trained on 500 ... 60,000 examples - does pooling matter more
  when data are scarce?  A small set is trained for more epochs, so that every
  run sees at least ``sweep_min_examples`` examples.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np

from .. import nn
from . import _variants as V
from ._common import write_json

RECIPE = "AdamW lr 3e-3, weight decay 1e-2, cosine schedule over the epochs, batch 64"

# the full run (``convpool ablate --data mnist``) and the demo's short one
FULL: dict[str, Any] = {
    "n_train": None,
    "n_test": None,
    "seeds": 3,
    "epochs": 10,
    "batch_size": 64,
    "sizes": (500, 1000, 2000, 5000, 60000),
    "sweep_seeds": 3,
    "sweep_min_examples": 60000,
}
# the demo's short run: `make demo` (install included) fits in about three minutes on 2 cores
DEMO: dict[str, Any] = {
    "n_train": 2000,
    "n_test": 500,
    "seeds": 2,
    "epochs": 2,
    "batch_size": 32,
    "sizes": (250, 1000, 2000),
    "sweep_seeds": 1,
    "sweep_min_examples": 3000,
}

_SPLITS: dict[tuple[str, int | None], Any] = {}  # per process: the dataset, loaded once
_WARM: set[str] = set()  # per process: the variants already warmed up


def load(data: str, n_test: int | None) -> Any:
    """The whole training set and the first ``n_test`` test images of ``data`` (cached)."""
    from .. import data as D

    key = (data, n_test)
    if key not in _SPLITS:
        split = D.load_dataset(data)
        if n_test is not None:
            if (
                isinstance(n_test, bool)
                or not isinstance(n_test, (int, np.integer))
                or not 1 <= n_test <= len(split.test)
            ):
                raise ValueError(f"n_test must be an int in [1, {len(split.test)}] or None, got {n_test!r}")
            test = D.Dataset(split.test.x[:n_test], split.test.y[:n_test], split.test.classes)
            split = D.Split(split.train, test, split.name)
        _SPLITS[key] = split
    return _SPLITS[key]


def _subset(train: Any, n: int | None, seed: int | None) -> Any:
    """The first ``n`` training examples (``seed`` None) or a random ``n`` drawn with ``seed``."""
    from ..data import Dataset

    if n is None or n >= len(train):
        return train
    idx = np.arange(n) if seed is None else np.sort(np.random.default_rng(seed).permutation(len(train))[:n])
    return Dataset(train.x[idx], train.y[idx], train.classes)


def _warm_up(key: str, x: np.ndarray, num_classes: int, batch_size: int) -> float:
    """One training step (the optimiser's update included) and one evaluation batch on a
    throwaway model, so that numba's compilation (or loading from its cache) is not
    counted in the training time; once per variant and process (0.0 when already warm).
    Run in the parent before the workers start, it leaves every kernel in the cache."""
    from .. import train

    if key in _WARM:
        return 0.0
    _WARM.add(key)
    t = time.perf_counter()
    model = V.build(key, x.shape[1], num_classes, x.shape[2])
    out = model(x[:batch_size])
    model.backward_params(np.ones_like(out) / len(out))
    train.make_optimizer("adamw", model.parameters(), 1e-3, 1e-2).step()
    model.eval()
    model(x[:512])
    return time.perf_counter() - t


def run_one(task: dict[str, Any]) -> dict[str, Any]:
    """Train one variant with one seed and measure it (runs in a worker process)."""
    from .. import _random, optim, train

    split = load(task["data"], task["n_test"])
    sweep = task["kind"] == "sweep"
    data = _subset(split.train, task["n_train"], task["seed"] if sweep else None)
    c, s, k = data.x.shape[1], data.x.shape[2], split.train.num_classes
    warm = _warm_up(task["variant"], data.x, k, task["batch_size"])
    _random.manual_seed(task["seed"])
    model = V.build(task["variant"], c, k, s)
    opt = train.make_optimizer("adamw", model.parameters(), task["lr"], 1e-2)
    hist = train.fit(
        model,
        data,
        epochs=task["epochs"],
        optimizer=opt,
        batch_size=task["batch_size"],
        scheduler=optim.CosineAnnealingLR(opt, task["epochs"]),
        progress=False,
    )
    x, y = split.test.x, split.test.y
    shift = V.shift_robustness(lambda v: train.predict(model, v), x, y, 0 if sweep else task["max_shift"])
    first = model[0]
    return {
        **task,
        "n_examples": len(data),
        "test_acc": shift["accuracy"][0],
        "train_time": float(sum(e["time"] for e in hist.epochs)),
        "warmup_time": warm,
        "final_train_loss": hist.last["train_loss"],
        "shift_acc": shift["accuracy"],
        "shift_consistency": shift["consistency"],
        "learned": V.learned_values(model),
        # the learned first-layer filters (the report draws those of seed 0)
        "first_filters": first.weight.data[:, 0].tolist() if isinstance(first, nn.Conv2d) and not sweep else None,
    }


def _cost(t: dict[str, Any]) -> float:
    return t["epochs"] * (t["n_train"] or 60000) * V.COST.get(t["variant"], 1.0)


def _execute(tasks: list[dict[str, Any]], workers: int, progress: bool) -> list[dict[str, Any]]:
    """Run ``tasks`` (longest first), in ``workers`` processes; a progress bar on stderr."""
    tasks = sorted(tasks, key=_cost, reverse=True)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks), desc="trainings", unit="run", dynamic_ncols=True)

    def finished(r: dict[str, Any]) -> None:
        done.append(r)
        if bar is not None:
            n = f", n={r['n_examples']:,}" if r["kind"] == "sweep" else ""
            bar.set_postfix_str(f"{r['kind']}: {V.label(r['variant'])}{n}, seed {r['seed']}: {r['test_acc']:.3f}")
            bar.update(1)

    done: list[dict[str, Any]] = []
    workers = min(workers, len(tasks))
    if workers <= 1:
        for t in tasks:
            finished(run_one(t))
    else:
        import multiprocessing as mp

        # One BLAS and numba thread per worker: the workers already use every core, and
        # oversubscribed threads (OpenMP and OpenBLAS poll while idle) slow everything.
        threads = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
        saved = {k: os.environ.get(k) for k in threads}
        os.environ.update({k: "1" for k in saved})
        try:
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                for f in as_completed([pool.submit(run_one, t) for t in tasks]):
                    finished(f.result())
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    if bar is not None:
        bar.close()
    return done


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def _aggregate(key: str, runs: list[dict[str, Any]], shape: tuple[int, ...], num_classes: int) -> dict[str, Any]:
    runs = sorted(runs, key=lambda r: r["seed"])
    mean, std = _mean_std([r["test_acc"] for r in runs])
    learned: dict[str, dict[str, float]] = {}
    for layer in runs[0]["learned"]:
        for name in ("p", "alpha"):
            if name in runs[0]["learned"][layer]:
                learned.setdefault(layer, {})[name] = float(np.mean([r["learned"][layer][name] for r in runs]))
        if "se" in runs[0]["learned"][layer]:
            se = np.array([r["learned"][layer]["se"] for r in runs])
            learned.setdefault(layer, {}).update(
                {"se_first_seed": se[0].tolist(), "se_mean_abs": float(np.abs(se).mean())}
            )
    return {
        "label": V.label(key),
        "description": V.VARIANTS[key][1],
        "seeds": [r["seed"] for r in runs],
        "test_acc": [r["test_acc"] for r in runs],
        "acc_mean": mean,
        "acc_std": std,
        **V.costs(V.build(key, shape[0], num_classes, shape[1]), shape),
        "train_time_mean": float(np.mean([r["train_time"] for r in runs])),
        "warmup_time_mean": float(np.mean([r["warmup_time"] for r in runs])),
        "shift_acc": np.mean([r["shift_acc"] for r in runs], axis=0).tolist(),
        "shift_consistency": np.mean([r["shift_consistency"] for r in runs], axis=0).tolist(),
        "learned": learned,
        "first_filters": runs[0]["first_filters"],  # seed 0's first conv kernels (None without a conv)
    }


def maxplus_equals_max(x: np.ndarray, num_classes: int, seed: int = 0) -> float:
    """Max |difference| between the outputs of the untrained max-plus variant (zero
    structuring elements) and LeNet-5 with max pooling, built from the same seed (the
    max-plus layers draw no random numbers, so every other weight is the same)."""
    from .. import _random

    outs = []
    for key in ("max", "maxplus"):
        _random.manual_seed(seed)
        model = V.build(key, x.shape[1], num_classes, x.shape[2])
        model.eval()
        outs.append(model(x))
    return float(np.abs(outs[0] - outs[1]).max())


def sweep_epochs(n: int, epochs: int, min_examples: int) -> int:
    """Epochs for ``n`` training examples: ``epochs``, or more so that the run sees at
    least ``min_examples`` examples (a small set gets the optimiser steps to converge)."""
    return max(epochs, math.ceil(min_examples / n))


def _positive(name: str, v: Any, allow_none: bool = False) -> None:
    if allow_none and v is None:
        return
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive int{' or None' if allow_none else ''}, got {v!r}")


def run(
    data: str = "mnist",
    variants: tuple[str, ...] = tuple(V.VARIANTS),
    seeds: int = 3,
    epochs: int = 10,
    n_train: int | None = None,
    n_test: int | None = None,
    max_shift: int = 4,
    sizes: tuple[int, ...] = FULL["sizes"],
    sweep_variants: tuple[str, ...] = V.SWEEP_VARIANTS,
    sweep_seeds: int | None = None,
    sweep_min_examples: int = 60000,
    batch_size: int = 64,
    lr: float = 3e-3,
    workers: int = 2,
    progress: bool = True,
) -> dict[str, Any]:
    """Train every (variant, seed) of the ablation and every (variant, size, seed) of the
    sweep (``sizes`` empty: no sweep; ``variants`` empty: no ablation); aggregate."""
    if variants:
        V.check_variants(variants)
    if sizes:
        V.check_variants(sweep_variants, "sweep_variants")
    for name, v in (("seeds", seeds), ("epochs", epochs), ("batch_size", batch_size), ("workers", workers)):
        _positive(name, v)
    _positive("n_train", n_train, allow_none=True)
    _positive("sweep_seeds", sweep_seeds, allow_none=True)
    _positive("sweep_min_examples", sweep_min_examples)
    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or not 0 <= max_shift <= 8:
        raise ValueError(f"max_shift must be an int from 0 to 8, got {max_shift!r}")
    split = load(data, n_test)
    shape = tuple(split.train.x.shape[1:])
    if len(shape) != 3 or shape[1] < 12:
        raise ValueError(f"the ablation trains LeNet-5 on images of at least 12x12; {data!r} has shape {shape}")
    train_len = len(split.train)
    for n in (*sizes, *([n_train] if n_train else [])):
        _positive("sizes", n)
        if n > train_len:
            raise ValueError(f"training-set sizes must be at most {train_len:,} ({split.name}'s), got {n:,}")
    common = {"data": data, "n_test": n_test, "batch_size": batch_size, "lr": lr, "max_shift": max_shift}
    tasks = [
        {**common, "kind": "ablation", "variant": v, "seed": s, "epochs": epochs, "n_train": n_train}
        for v in variants
        for s in range(seeds)
    ]
    sweep_seeds = sweep_seeds or seeds
    tasks += [
        {
            **common,
            "kind": "sweep",
            "variant": v,
            "seed": s,
            "n_train": n,
            "epochs": sweep_epochs(n, epochs, sweep_min_examples),
        }
        for v in sweep_variants
        if sizes
        for n in sizes
        for s in range(sweep_seeds)
    ]
    t0 = time.perf_counter()
    # compile (or load from numba's cache) every variant's kernels once, here, before the
    # workers start: they then load them from the cache instead of each compiling them
    keys = [v for v in V.VARIANTS if v in variants or (sizes and v in sweep_variants)]
    warm = {v: _warm_up(v, split.train.x, split.train.num_classes, batch_size) for v in keys} if workers > 1 else {}
    done = _execute(tasks, workers, progress)
    k = split.train.num_classes
    out: dict[str, Any] = {
        "config": {
            "data": split.name,
            "data_label": "MNIST" if split.name == "mnist" else split.name,
            "image_shape": list(shape),
            "n_train": n_train or train_len,
            "train_size": train_len,
            "n_test": len(split.test),
            "seeds": seeds,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "max_shift": max_shift,
            "workers": workers,
            "recipe": RECIPE.replace("batch 64", f"batch {batch_size}").replace("3e-3", f"{lr:g}"),
            "variants": list(variants),
            "sizes": list(sizes),
            "sweep_variants": list(sweep_variants) if sizes else [],
            "sweep_seeds": sweep_seeds if sizes else 0,
            "sweep_min_examples": sweep_min_examples,
            "timing": "training time excludes compilation (each process warms each model up first) and "
            "evaluation; runs share the cores with each other (one worker per core)",
        },
        "ablation": {
            v: _aggregate(v, [r for r in done if r["kind"] == "ablation" and r["variant"] == v], shape, k)
            for v in variants
        },
        "sweep": {"sizes": list(sizes), "variants": list(sweep_variants) if sizes else [], "entries": []},
    }
    for v in out["sweep"]["variants"]:
        for n in sizes:
            runs = sorted(
                (r for r in done if r["kind"] == "sweep" and r["variant"] == v and r["n_train"] == n),
                key=lambda r: r["seed"],
            )
            mean, std = _mean_std([r["test_acc"] for r in runs])
            out["sweep"]["entries"].append(
                {
                    "variant": v,
                    "label": V.label(v),
                    "n_train": n,
                    "epochs": runs[0]["epochs"],
                    "seeds": [r["seed"] for r in runs],
                    "test_acc": [r["test_acc"] for r in runs],
                    "acc_mean": mean,
                    "acc_std": std,
                    "train_time_mean": float(np.mean([r["train_time"] for r in runs])),
                }
            )
    out["wall_time"] = time.perf_counter() - t0
    out["parent_warmup_time"] = float(sum(warm.values()))
    out["maxplus_zero_vs_max_pool"] = {
        "images": min(256, len(split.test)),
        "max_abs_diff": maxplus_equals_max(split.test.x[:256], k),
    }
    return out


def main(out: str | None = None, quiet: bool = False, **kw: Any) -> dict[str, Any]:
    """Run, print the tables and findings, write ``OUT/ablation.json`` and the figures."""
    from . import _ablate_show as show

    res = run(progress=not quiet, **kw)
    res["findings"] = show.findings(res)
    if not quiet:
        show.render(res)
    if out:
        res["figures"] = show.figures(res, out)
        res["json"] = write_json(os.path.join(out, "ablation.json"), res)
    return res
