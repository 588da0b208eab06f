"""The ``convpool`` command: a thin argparse layer over the library and lab.

The training commands (train, ablate, report, demo) are in :mod:`.cli_train`, the
argument types in :mod:`._argtypes`, the benchmark in :mod:`.bench`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from . import cli_train
from ._argtypes import _count, _folder, _Parser, _port, _positive
from .cli_train import _ablation_settings, _keys  # noqa: F401  (re-exported: tests and scripts use them here)


def _explain(args: argparse.Namespace) -> int:
    from ..lab import explain

    explain.main(
        args.kernel,
        args.pool,
        args.padding,
        args.stride,
        out=args.out,
        learn=args.learn,
        learn_epochs=args.learn_epochs,
    )
    return 0


def _filters(args: argparse.Namespace) -> int:
    from ..lab import filters

    learn = tuple(d for d in args.learn.split(",") if d) if args.learn else ()
    filters.main(args.image, out=args.out, learn=learn, epochs=args.epochs)
    return 0


def _invariance(args: argparse.Namespace) -> int:
    from ..lab import invariance

    invariance.main(args.max_shift, out=args.out, seed=args.seed)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from . import bench

    bench.main(quick=args.quick, only=args.only, out=args.out, isa=args.isa, memory=not args.no_memory)
    return 0


def _isa(text: str) -> tuple[str, ...]:
    """``--isa native,avx2``: settings this CPU can run (see :mod:`.bench_isa`)."""
    from . import bench_isa

    try:
        return bench_isa.parse_isa(text, bench_isa.cpu_flags(), bench_isa.cpu_name())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--isa: ")) from None


def _info(args: argparse.Namespace) -> int:
    from ..config import info

    for key, value in info().items():
        print(f"{key + ':':26s}{value}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    try:
        from ..serve.app import run
    except ImportError as exc:  # fastapi / uvicorn come with the lab extra
        print(
            f"convpool serve: error: the explorer needs {exc.name or 'its web server'}: pip install 'convpool[lab]'",
            file=sys.stderr,
        )
        return 2
    run(args.host, args.port, open_browser=not args.no_browser, cache_dir=args.cache_dir)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="convpool",
        description="Convolution versus pooling: a library and a lab that explains and measures them.",
    )
    parser.add_argument("--version", action="version", version=f"convpool {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("explain", help="the 5x5 / 3x3 worked example and the four answers, with numbers")
    p.add_argument(
        "--kernel",
        default="vertical-edge",
        help="preset (vertical-edge, horizontal-edge, blur, sharpen, identity) or numbers '1,0,-1;1,0,-1;1,0,-1'",
    )
    p.add_argument("--pool", default="max", choices=["max", "avg", "median", "min"])
    p.add_argument("--padding", type=_count, default=1)
    p.add_argument("--stride", type=_positive, default=2)
    p.add_argument("--out", type=_folder, default=None, help="folder for explain.png and explain.json")
    p.add_argument(
        "--learn",
        type=_count,
        default=5000,
        help="train LeNet-5 with GeM, mixed and max-plus pooling on this many MNIST images and show what they "
        "learned (0: skip)",
    )
    p.add_argument("--learn-epochs", type=_positive, default=3)
    p.set_defaults(func=_explain)
    p = sub.add_parser("filters", help="filters and pools on a real photograph; learned first-layer filters")
    p.add_argument("--image", default=None, help="an image path (default: matplotlib's grace_hopper.jpg)")
    p.add_argument(
        "--learn", default="digits,lines", help="datasets to learn filters on: digits, lines, mnist ('' for none)"
    )
    p.add_argument("--epochs", type=_positive, default=8)
    p.add_argument("--out", type=_folder, default=None)
    p.set_defaults(func=_filters)
    p = sub.add_parser("invariance", help="shift equivariance and invariance, layer by layer")
    p.add_argument("--max-shift", type=_positive, default=4, help="measure shifts of 1..N pixels")
    p.add_argument("--seed", type=_count, default=0)
    p.add_argument("--out", type=_folder, default=None)
    p.set_defaults(func=_invariance)
    cli_train.add_ablate(sub)
    cli_train.add_report(sub)
    cli_train.add_train(sub)
    p = sub.add_parser("bench", help="time convpool against PyTorch (same process, ratios)")
    p.add_argument("--quick", action="store_true", help="smaller batches, shorter timing (a smoke test)")
    p.add_argument("--only", default=None, help="run the cases whose name contains this")
    p.add_argument("--out", "--json", dest="out", default="bench-results.json", help="the results as JSON")
    p.add_argument(
        "--isa",
        type=_isa,
        default=("native",),
        help="comma list of ISA settings to run and report side by side: native, avx2, avx512 (the others "
        "in a subprocess held to that vector ISA: numba, PyTorch, OpenBLAS and convpool's tiles); default native",
    )
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory probe")
    p.set_defaults(func=_bench)
    p = sub.add_parser("info", help="version, backend, CPU and vector ISA, threads, BLAS")
    p.set_defaults(func=_info)
    cli_train.add_demo(sub)
    p = sub.add_parser("serve", help="the interactive explorer in the browser: every window, number and gradient")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8765, help="port (default 8765; 0: any free port)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument(
        "--cache-dir",
        default=None,
        help="folder for the network view's checkpoints (default $CONVPOOL_CACHE_DIR, else ~/.cache/convpool)",
    )
    p.set_defaults(func=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, TypeError, OSError) as exc:  # the library's messages for bad input: one line, no traceback
        message = str(exc).replace("\n", " ") or type(exc).__name__
        parser.exit(2, f"convpool {args.command}: error: {message}\n")


if __name__ == "__main__":
    sys.exit(main())
