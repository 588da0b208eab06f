"""Running a compiled kernel over independent jobs on several threads.

The compiled kernels are serial loops over a range of jobs -
``kernel(j0, j1, *args)`` computes jobs ``j0 <= job < j1`` (an image, a plane, a
block of positions) - compiled with ``nogil=True``, so that several Python threads
run them truly in parallel.  :func:`parallel_for` cuts ``[0, n_jobs)`` into a few
contiguous chunks per thread; the calling thread and persistent worker threads take
chunks until none is left, and the call returns when every chunk is done.  A worker
that wakes late (on a busy machine the OS may not run it at once) finds fewer chunks
or none, so a call is never much slower than running all of it on the calling thread.

Why not numba's ``parallel=True`` (``prange``): its parallel-loop passes and the
extra function they generate made first calls compile 2-4 times as long (measured,
CPU seconds to compile one kernel with and without it: the 2x2 max pool's backward
3.9 and 0.9, the SIMD convolution 5.8 and 2.8), for the same speed on loops of
independent jobs.

Kernels are compiled with :data:`KERNEL` options (:data:`KERNEL_O2`: the same at LLVM -O2,
for the pooling kernels and layout copies; see there): ``nogil``, cached on disk, no cfunc
wrapper (nothing calls a kernel through a C pointer), without numba's rewrites after type
inference (they fuse whole-array expressions, which no kernel has; see
:class:`_KernelCompiler`), and without numba's reference counting (``_nrt=False``: a kernel
allocates nothing - its scratch arrays come from the caller).  With reference counting,
every array variable that an inlined helper copies gets an atomic increment and decrement
per call, in the inner loop: the wide layout copy ran 3x slower than without (0.57 vs
0.17 ms).

A hand-over to a worker costs some tens of microseconds (a queue and a lock; measured
on 2 busy cores: 25-33 us a call, numba's OpenMP prange 16-21 us), so work below
``settings.TUNING.thread_min_work`` runs on the calling thread in one call.

Thread-safe: each call waits only for its own chunks, which the calling thread also
works through itself, so calls from several threads (or from a kernel's Python
wrapper running on a worker) never wait on each other.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from numba.core import config
from numba.core.compiler import Compiler, DefaultPassBuilder
from numba.core.compiler_machinery import PassManager
from numba.core.typed_passes import NopythonRewrites

from ...settings import TUNING

CHUNKS_PER_THREAD = 4  # chunks a call is cut into, per thread: a late or slow thread costs at most a chunk


class _KernelCompiler(Compiler):
    """numba's nopython pipeline without its rewrites after type inference.

    Those rewrites look for whole-array expressions to fuse (``a + b * c`` on arrays), which
    no kernel has: the kernels compile to the same machine code without them, and the pass
    took 4% of the compilation of the median kernel of that time (0.07 of 1.7 s; the kernel
    has since been cut to about 1 s). The rewrites *before* type inference stay: they turn
    ``x.shape[2]`` into a static index, and without them (numba's ``no_rewrites``) each such
    index compiles a tuple-indexing function of its own, 0.06 s each."""

    def define_pipelines(self) -> list[PassManager]:
        state = self.state
        pm = PassManager("nopython")
        for part in (
            DefaultPassBuilder.define_untyped_pipeline(state),
            DefaultPassBuilder.define_typed_pipeline(state),
            DefaultPassBuilder.define_nopython_lowering_pipeline(state),
        ):
            pm.passes.extend(p for p in part.passes if p[0] is not NopythonRewrites)
        pm.finalize()
        return [pm]


# numba options of every job-range kernel
KERNEL = {"nogil": True, "cache": True, "_nrt": False, "no_cfunc_wrapper": True, "pipeline_class": _KernelCompiler}


class _Level2Compiler(_KernelCompiler):
    """numba's compiler with LLVM's optimisation level at most 2 while it compiles a kernel
    (numba's default, ``NUMBA_OPT``, is 3; a lower or ``max`` setting is left as it is).

    numba reads the level from ``numba.core.config.OPT`` when it builds LLVM's pass
    pipelines, which it does inside the compilation; the compilation runs under numba's
    global compiler lock, so setting the level for its duration affects no other one."""

    def _compile_core(self) -> Any:
        saved = config.OPT
        if int(saved) > 2 and not getattr(saved, "is_opt_max", False):
            config.OPT = type(saved)(2)
        try:
            return super()._compile_core()
        finally:
            config.OPT = saved


# The options of the pooling kernels and the convolution's layout copies: compiled at -O2.
# -O3 adds passes (non-trivial loop unswitching above all) that duplicate loops the
# vectoriser then works through again: LLVM's share of the one-pass max pool's compile
# 0.54-0.61 s at -O3, 0.24-0.29 s at -O2, and in `benchmarks/compile_time.py` (alone, cold,
# CPU s, Xeon rocketlake) 2x2 max pool 1.60 -> 1.16, max_pool3d 1.88 -> 1.27, 3x3 s2 max
# 1.55 -> 1.39.  Their speed is the same: each pooling op of the bench paired in one process
# with its kernels at -O2 and at -O3, time -O2/-O3 0.91-1.08 natively and 0.89-1.04 for
# Haswell; the layout copies 0.89-1.05 and 0.99-1.06, and a conv's first call 0.1-0.15 s
# shorter.  The convolution kernels keep -O3: at -O2 the depthwise stencil ran 1.1-1.6x and
# the 1x1 kernel 1.1-1.4x slower (`convpool bench`).
KERNEL_O2 = {**KERNEL, "pipeline_class": _Level2Compiler}


def num_threads() -> int:
    """Threads the compiled kernels use: ``settings.TUNING.threads`` if set, else numba's
    setting (``NUMBA_NUM_THREADS``, or ``numba.set_num_threads`` on the calling thread)."""
    if TUNING.threads is not None:
        return TUNING.threads
    import numba

    return int(numba.get_num_threads())


class _Call:
    """One :func:`parallel_for` call: its chunks, handed out in order, and its completion."""

    def __init__(self, kernel: Callable[..., Any], bounds: list[int], args: tuple[Any, ...]) -> None:
        self.kernel = kernel
        self.bounds = bounds
        self.args = args
        self.chunks = len(bounds) - 1
        self.claim = itertools.count()  # next(): atomic under the GIL
        self.finish = itertools.count(1)
        self.done = threading.Lock()
        self.done.acquire()  # released by whoever finishes the last chunk
        self.error: BaseException | None = None

    def work(self) -> None:
        """Run chunks until none is left to claim."""
        while (i := next(self.claim)) < self.chunks:
            try:
                self.kernel(self.bounds[i], self.bounds[i + 1], *self.args)
            except BaseException as e:  # re-raised by the caller
                self.error = e
            if next(self.finish) == self.chunks:
                self.done.release()


def _worker(calls: queue.SimpleQueue[_Call]) -> None:
    while True:
        calls.get().work()


_queues: list[queue.SimpleQueue[_Call]] = []
_start_lock = threading.Lock()


def _workers(count: int) -> list[queue.SimpleQueue[_Call]]:
    """The queues of ``count`` worker threads (started on first use)."""
    with _start_lock:
        while len(_queues) < count:
            q: queue.SimpleQueue[_Call] = queue.SimpleQueue()
            threading.Thread(target=_worker, args=(q,), name="convpool-kernel", daemon=True).start()
            _queues.append(q)
        return _queues[:count]


def _reset_after_fork() -> None:  # a forked child has the queues but not the threads
    global _start_lock
    _queues.clear()
    _start_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


_here = threading.local()  # .depth > 0: inside on_calling_thread() on this thread


class on_calling_thread:  # a context manager, named as the function it acts as
    """Within the block, :func:`parallel_for` runs every call on the calling thread in one
    call, whatever its ``work``: for a caller that knows its whole operation is too small
    to pay for a hand-off (a batch-1 convolution's kernels take tens of microseconds,
    about what waking a worker costs; on a busy machine the worker wakes later still).
    Per thread; nests."""

    __slots__ = ()

    def __enter__(self) -> None:
        _here.depth = getattr(_here, "depth", 0) + 1

    def __exit__(self, *exc: object) -> None:
        _here.depth -= 1


def parallel_for(kernel: Callable[..., Any], n_jobs: int, *args: Any, work: int | None = None) -> None:
    """``kernel(j0, j1, *args)`` over ``[0, n_jobs)`` in contiguous chunks, on up to
    :func:`num_threads` threads (the caller's among them); returns when all are done.

    ``work``: about how many elements (or multiply-adds) the whole call takes; below
    ``settings.TUNING.thread_min_work`` one call on this thread does it all, as does
    every call inside :class:`on_calling_thread`."""
    if n_jobs <= 0:
        return
    if (work is not None and work < TUNING.thread_min_work) or getattr(_here, "depth", 0) > 0:
        kernel(0, n_jobs, *args)  # decided before asking numba for its thread count (1-3 us)
        return
    threads = min(num_threads(), n_jobs)
    if threads <= 1:
        kernel(0, n_jobs, *args)
        return
    chunks = min(n_jobs, CHUNKS_PER_THREAD * threads)
    call = _Call(kernel, [n_jobs * i // chunks for i in range(chunks + 1)], args)
    for q in _workers(threads - 1):
        q.put(call)
    call.work()
    call.done.acquire()  # chunks that workers claimed may still be running
    if call.error is not None:
        raise call.error
