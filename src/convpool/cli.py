"""The ``convpool`` command: a thin argparse layer over the library and lab."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _explain(args: argparse.Namespace) -> int:
    from .examples import KERNELS, format_worked_example

    if args.kernel not in KERNELS:
        raise SystemExit(f"convpool explain: --kernel must be one of {sorted(KERNELS)}, got {args.kernel!r}")
    print(format_worked_example(args.kernel, args.pool))
    return 0


def _demo(args: argparse.Namespace) -> int:
    print("convpool demo: the worked example (conv = products and sum, max pool = the maximum)\n")
    args.kernel, args.pool = "vertical-edge", "max"
    return _explain(args)


def _train(args: argparse.Namespace) -> int:
    import os

    from . import _random, data, models, train

    _random.manual_seed(args.seed)
    split = data.load_dataset(args.data)
    c, h = split.train.x.shape[1], split.train.x.shape[2]
    model = models.build(args.model, c, split.train.num_classes, h)
    print(
        f"convpool train: {args.model} on {split.name} ({len(split.train)} train / {len(split.test)} test images "
        f"of {c}x{h}x{split.train.x.shape[3]}), {args.epochs} epochs, seed {args.seed}"
    )
    print(models.summary(model, split.train.x.shape[1:]))
    if args.out:
        os.makedirs(args.out, exist_ok=True)

    def report(e: dict) -> None:
        print(
            f"epoch {e['epoch']:3d}  loss {e['train_loss']:.4f}  train acc {e['train_acc']:.4f}  "
            f"test acc {e.get('val_acc', float('nan')):.4f}  ({e['time']:.2f}s)",
            flush=True,
        )

    try:
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
    except (train.TrainingDiverged, train.CheckpointError) as exc:
        print(f"convpool train: {exc}", file=sys.stderr)
        return 2
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convpool",
        description="Convolution versus pooling: a library and a lab that explains and measures them.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("explain", help="the 5x5 / 3x3 worked example with real numbers")
    p.add_argument("--kernel", default="vertical-edge", help="conv kernel preset")
    p.add_argument("--pool", default="max", choices=["max", "min", "median"], help="pooling reduction")
    p.set_defaults(func=_explain)
    p = sub.add_parser("train", help="train a model from the zoo on a dataset")
    p.add_argument("--model", default="lenet", choices=["lenet", "allconv", "mlp"])
    p.add_argument("--data", default="digits", help="digits, lines, idx:FOLDER or npz:FILE")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "adam", "sgd"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patience", type=int, default=None, help="stop after this many epochs without improvement")
    p.add_argument("--out", default=None, help="folder for checkpoint.npz and history.json")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)
    p = sub.add_parser("demo", help="the main job (what `make demo` runs)")
    p.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
