"""The ``convpool`` commands that train: ``train`` (the zoo on a dataset, NumPy or PyTorch
DDP), ``ablate``, ``report`` and ``demo`` (the lab's trainings); each ``add_*`` adds its
sub-command to the parser."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from ..lab._variants import SWEEP_VARIANTS, VARIANTS
from ..models import POOLS
from ._argtypes import _count, _folder, _keys, _port, _positive, _positive_float, _sizes

if TYPE_CHECKING:
    from ..data import Split
    from ..nn.module import Module

# `convpool train --data mnist` defaults: LeNet-5 reaches 99% test accuracy with them
MNIST_RECIPE = {"epochs": 10, "batch_size": 64}


def _ablation_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given on the command line (the others keep the full or --quick settings)."""
    names = ("seeds", "epochs", "n_train", "n_test", "batch_size", "sizes", "sweep_seeds", "sweep_min_examples")
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


def _ablate(args: argparse.Namespace) -> int:
    from ..lab import ablate

    settings = {**(ablate.DEMO if args.quick else ablate.FULL), **_ablation_settings(args)}
    ablate.main(
        out=args.out,
        data=args.data,
        variants=_keys(args.variants),
        sweep_variants=_keys(args.sweep_variants),
        max_shift=args.max_shift,
        workers=args.workers,
        **settings,
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    from ..lab import report

    report.main(
        out=args.out,
        quick=args.quick,
        data=args.data,
        skip_ablation=args.no_ablation,
        workers=args.workers,
        explain_learn=args.explain_learn,
        command="convpool " + " ".join(sys.argv[1:]),
        **_ablation_settings(args),
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ..lab import ablate, report

    d = ablate.DEMO
    print(
        "convpool demo: the whole lab - worked example, the two algebras, filters on a real image, shift "
        f"invariance, and a short MNIST ablation ({d['n_train']:,} training images, {d['epochs']} epochs, "
        f"{d['seeds']} seeds) with a training-set-size sweep - written to {args.out}/index.html\n",
        flush=True,
    )
    report.main(out=args.out, quick=True, workers=args.workers, command="convpool demo")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .. import _random, data, models, train

    if args.resume and not args.out:
        raise ValueError("--resume continues from OUT/checkpoint.npz: give the run's folder with --out")
    if args.pool is not None and args.model != "lenet5":
        raise ValueError(f"--pool chooses lenet5's pooling layer; it does not apply to --model {args.model}")
    if args.engine != "torch" and (args.nproc > 1 or args.nnodes > 1 or args.node_rank or args.master_port):
        raise ValueError("--nproc, --nnodes, --node-rank and --master-port apply to --engine torch")
    recipe = MNIST_RECIPE if args.data == "mnist" else {"epochs": 30, "batch_size": 32}
    args.epochs = args.epochs or recipe["epochs"]
    args.batch_size = args.batch_size or recipe["batch_size"]
    _random.manual_seed(args.seed)
    split = data.load_dataset(args.data)
    c, h = split.train.x.shape[1], split.train.x.shape[2]
    if args.model == "lenet5":
        model = models.lenet5(c, split.train.num_classes, h, pool=args.pool or "max")
    else:
        model = models.build(args.model, c, split.train.num_classes, h)
    print(
        f"convpool train: {args.model} on {split.name} ({len(split.train)} train / {len(split.test)} test images "
        f"of {c}x{h}x{split.train.x.shape[3]}), {args.epochs} epochs, seed {args.seed}"
    )
    print(models.summary(model, split.train.x.shape[1:]))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        if args.resume and not os.path.exists(os.path.join(args.out, "checkpoint.npz")):
            print(f"(no checkpoint in {args.out!r} yet: --resume starts from scratch)")

    def report(e: dict) -> None:
        print(
            f"epoch {e['epoch']:3d}  loss {e['train_loss']:.4f}  train acc {e['train_acc']:.4f}  "
            f"test acc {e.get('val_acc', float('nan')):.4f}  ({e['time']:.2f}s)",
            flush=True,
        )

    try:
        if args.engine == "torch":
            return _train_torch(args, model, split)
        hist, final = train.train_classifier(
            model,
            split.train,
            split.test,
            epochs=args.epochs,
            lr=args.lr,
            batch_size=args.batch_size,
            optimizer=args.optimizer,
            out_dir=args.out,
            resume=args.resume,
            patience=args.patience,
            progress=not args.no_progress,
            on_epoch=report,
        )
    except train.TrainingDiverged as exc:  # not a usage error: exit status 1
        print(f"convpool train: error: {exc}", file=sys.stderr)
        return 1
    if hist.resumed_from:
        print(f"(resumed after epoch {hist.resumed_from})")
    print(
        f"\nfinal: test accuracy {final['test_acc']:.4f}, test loss {final['test_loss']:.4f}, "
        f"training time {final['train_time']:.1f}s ({len(hist.epochs)} epochs)"
    )
    if args.out:
        print(
            f"checkpoint: {os.path.join(args.out, 'checkpoint.npz')}; history: {os.path.join(args.out, 'history.json')}"
        )
    return 0


def _ablation_flags(p: argparse.ArgumentParser) -> None:
    """The ablation's settings, shared by ``ablate`` and ``report``: unset ones take the
    full run's values (or, with --quick, the demo's)."""
    from ..lab.ablate import DEMO, FULL

    def default(key: str) -> str:
        full, demo = FULL[key], DEMO[key]
        show = lambda v: "all" if v is None else ",".join(map(str, v)) if isinstance(v, tuple) else v  # noqa: E731
        return f"default {show(full)}; --quick: {show(demo)}"

    p.add_argument("--data", default="mnist", help="mnist, idx:FOLDER or npz:FILE (images of at least 12x12)")
    p.add_argument("--quick", action="store_true", help="the demo's short settings: subsets, few epochs")
    p.add_argument("--seeds", type=_positive, default=None, help=default("seeds"))
    p.add_argument("--epochs", type=_positive, default=None, help=default("epochs"))
    p.add_argument("--n-train", type=_positive, default=None, help="training images (" + default("n_train") + ")")
    p.add_argument("--n-test", type=_positive, default=None, help="test images (" + default("n_test") + ")")
    p.add_argument("--batch-size", type=_positive, default=None, help=default("batch_size"))
    p.add_argument(
        "--sizes",
        type=_sizes,
        default=None,
        help="the size sweep's training-set sizes, 'none' for no sweep (" + default("sizes") + ")",
    )
    p.add_argument("--sweep-seeds", type=_positive, default=None, help=default("sweep_seeds"))
    p.add_argument(
        "--sweep-min-examples",
        type=_positive,
        default=None,
        help="a small training set trains for more epochs, until it has seen this many examples ("
        + default("sweep_min_examples")
        + ")",
    )
    p.add_argument("--workers", type=_positive, default=2, help="parallel training processes")


def _train_torch(args: argparse.Namespace, model: Module, split: Split) -> int:
    """``convpool train --engine torch``: the same recipe, trained by PyTorch DDP."""
    try:
        from ..interop._ddp import train_torch

        hist, final = train_torch(
            model,
            split.train,
            split.test,
            epochs=args.epochs,
            lr=args.lr,
            batch_size=args.batch_size,
            optimizer=args.optimizer,
            out_dir=args.out,
            resume=args.resume,
            patience=args.patience,
            nproc=args.nproc,
            nnodes=args.nnodes,
            node_rank=args.node_rank,
            master_addr=args.master_addr,
            master_port=args.master_port,
            log=True,
        )
    except ImportError as exc:  # PyTorch is optional: say how to install it
        print(f"convpool train: error: {exc}", file=sys.stderr)
        return 2
    processes = args.nproc * args.nnodes
    if not final:
        print(f"node {args.node_rank} done: node 0 holds the checkpoint and the history")
        return 0
    if hist.resumed_from:
        print(f"(resumed after epoch {hist.resumed_from})")
    print(
        f"\nfinal: test accuracy {final['test_acc']:.4f}, test loss {final['test_loss']:.4f}, "
        f"training time {final['train_time']:.1f}s ({len(hist.epochs)} epochs, PyTorch DDP, {processes} "
        f"process{'es' if processes > 1 else ''})"
    )
    if args.out:
        print(
            f"checkpoint: {os.path.join(args.out, 'checkpoint.npz')}; history: {os.path.join(args.out, 'history.json')}"
        )
    return 0


def add_ablate(sub: Any) -> None:
    """``convpool ablate``."""
    p = sub.add_parser("ablate", help="LeNet-5 without / with other downsampling on MNIST; a training-set-size sweep")
    _ablation_flags(p)
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    p.add_argument("--sweep-variants", default=",".join(SWEEP_VARIANTS), help="variants of the size sweep")
    p.add_argument("--max-shift", type=_count, default=4, help="shift robustness for shifts of up to N pixels")
    p.add_argument("--out", type=_folder, default="convpool-ablation")
    p.set_defaults(func=_ablate)


def add_report(sub: Any) -> None:
    """``convpool report``."""
    p = sub.add_parser(
        "report",
        help="everything above in DIR/index.html (the full MNIST ablation by default: over an hour on 2 cores; "
        "--quick: the demo's short one)",
    )
    _ablation_flags(p)
    p.add_argument("--no-ablation", action="store_true")
    p.add_argument(
        "--explain-learn",
        type=_count,
        default=0,
        help="train explain's learned pools on N MNIST images (default 0: the ablation's trainings supply them)",
    )
    p.add_argument("--out", type=_folder, default="convpool-report")
    p.set_defaults(func=_report)


def add_train(sub: Any) -> None:
    """``convpool train``."""
    p = sub.add_parser("train", help="train a model from the zoo on a dataset")
    p.add_argument("--model", default="lenet", choices=["lenet", "lenet5", "allconv", "mlp"])
    p.add_argument("--pool", default=None, choices=sorted(POOLS), help="lenet5's downsampling layer (default max)")
    p.add_argument("--data", default="digits", help="digits, lines, mnist, idx:FOLDER or npz:FILE")
    p.add_argument("--epochs", type=_positive, default=None, help=f"default: 30 (mnist: {MNIST_RECIPE['epochs']})")
    p.add_argument("--lr", type=_positive_float, default=3e-3)
    p.add_argument(
        "--batch-size", type=_positive, default=None, help=f"default: 32 (mnist: {MNIST_RECIPE['batch_size']})"
    )
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "adam", "sgd"])
    p.add_argument("--seed", type=_count, default=0)
    p.add_argument("--patience", type=_positive, default=None, help="stop after this many epochs without improvement")
    p.add_argument("--out", type=_folder, default=None, help="folder for checkpoint.npz and history.json")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--engine",
        default="numpy",
        choices=["numpy", "torch"],
        help="torch: PyTorch DDP (needs PyTorch; default numpy)",
    )
    p.add_argument("--nproc", type=_positive, default=1, help="--engine torch: processes on this machine (default 1)")
    p.add_argument("--nnodes", type=_positive, default=1, help="--engine torch: machines (default 1)")
    p.add_argument("--node-rank", type=_count, default=0, help="--engine torch: this machine's rank (default 0)")
    p.add_argument("--master-addr", default="127.0.0.1", help="--engine torch: node 0's address (default 127.0.0.1)")
    p.add_argument(
        "--master-port",
        type=_port,
        default=None,
        help="--engine torch: node 0's port (default: a free one; 29500 with --nnodes > 1)",
    )
    p.set_defaults(func=_train)


def add_demo(sub: Any) -> None:
    """``convpool demo``."""
    p = sub.add_parser("demo", help="the main job (what `make demo` runs): the report, shortened")
    p.add_argument("--out", type=_folder, default="convpool-report")
    p.add_argument("--workers", type=_positive, default=2, help="parallel training processes")
    p.set_defaults(func=_demo)
