"""Every tunable threshold of the engine, in one place (no imports: every layer reads it).

The values are measured break-even points, not semantics: results are the same
whatever they are (the tests set extreme values to exercise every path), only the
time and memory change.  Change them for a block with ``convpool.config.tuning(...)``;
read them as ``settings.TUNING.<name>``, at call time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Tuning:
    # bytes of im2col columns per chunk of the batch: memory stays bounded
    cols_budget: int = 32 * 2**20
    # elements below which a compiled elementwise/per-plane pass costs more than NumPy's
    parallel_min: int = 1 << 14
    # elements (or multiply-adds) below which a kernel runs on the calling thread in one
    # call: handing a chunk to a worker costs ~25-35 us here
    thread_min_work: int = 1 << 15
    # threads the compiled kernels split work over; None: numba's setting
    threads: int | None = None
    # trim a zero-padded conv when the padded plane exceeds RATIO x the trimmed one plus
    # SLACK elements (below that, the copies cost more than the padding they save)
    conv_trim_ratio: int = 2
    conv_trim_slack: int = 4096
    # cut a pool when the padded input exceeds RATIO x the input plus SLACK elements
    pool_trim_ratio: int = 2
    pool_trim_slack: int = 4096


TUNING = Tuning()
NAMES = tuple(f.name for f in fields(Tuning))
