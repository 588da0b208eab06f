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
    # elements from which an optimiser's step on a parameter runs as one compiled pass (the
    # same values as NumPy's dozen whole-array operations, which cost 30-40 us per parameter)
    fused_step_min: int = 0
    # threads the compiled kernels split work over; None: numba's setting
    threads: int | None = None
    # trim a zero-padded conv when the padded plane exceeds conv_trim_ratio x the trimmed one
    # plus conv_trim_slack elements (below that, the copies cost more than the padding they save)
    conv_trim_ratio: int = 2
    conv_trim_slack: int = 4096
    # cut a pool when the padded input exceeds pool_trim_ratio x the input plus pool_trim_slack
    pool_trim_ratio: int = 2
    pool_trim_slack: int = 4096
    # transposed convolution's forward (from timings of its three implementations: Xeon,
    # AVX-512, one thread, float32/float64, 1-3 dims): W^T x + col2im wins where windows
    # overlap little (under transpose_min_overlap taps per output, prod(kernel) / prod(stride))
    # and on problems under transpose_min_work multiply-adds (per phase for one conv per
    # phase); the one-conv sub-pixel form may do at most transpose_max_waste x the multiply-adds
    transpose_min_overlap: float = 3.5
    transpose_min_work: int = 1 << 22
    transpose_max_waste: float = 1.25


TUNING = Tuning()
NAMES = tuple(f.name for f in fields(Tuning))
