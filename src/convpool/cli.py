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
    p = sub.add_parser("demo", help="the main job (what `make demo` runs)")
    p.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
