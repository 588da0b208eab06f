"""Same as ``convpool bench``: ``python benchmarks/bench.py [--quick] [--only TEXT] [--out FILE]``."""

import sys

from convpool.tools.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
