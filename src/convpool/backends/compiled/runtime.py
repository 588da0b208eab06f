"""The compiled backend's runtime: whether numba is loaded, threads, BLAS, scratch memory.

The NumPy code in :mod:`convpool.windows` and :mod:`convpool.functional` is the
readable reference; these kernels compute the same thing in one pass over
memory, parallel over (batch x channel) planes, without materialising padded
copies or window copies.  They are used when numba is installed and
``CONVPOOL_PURE_NUMPY`` is not set; the tests check both paths give the same
results.  This module holds the runtime (whether the compiled backend runs - the
switch itself is :mod:`convpool.backends.switch` - threads, BLAS, scratch memory,
index tables); :mod:`.kernels` re-exports it with the kernels, which live by family in
:mod:`.im2col`, :mod:`.pool_kernels`, :mod:`.tiled_kernels`, :mod:`.separable_kernels`
(the SIMD convolution in :mod:`.direct`).  Each kernel is a serial loop over a range of jobs
that :func:`convpool.backends.compiled.threads.parallel_for` spreads over threads: compiled without
numba's ``parallel=True``, a first call compiles in about a second per kernel.

Every kernel sees 3 spatial dimensions: 1-D and 2-D inputs get leading
size-1 dimensions.  Pooling kernels read through one small index table per
dimension (:func:`index_table`), which resolves padding once per call:
identity padding (skipped), zeros (a value 0 with no gradient) or a border
mode (reflect, replicate, circular: an input element).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Any

import numpy as np

from ...settings import TUNING
from .. import switch
from . import threads as _threads

try:  # numba is optional: without it everything runs on the NumPy reference path
    if os.environ.get("CONVPOOL_PURE_NUMPY"):
        raise ImportError
    import numba

    if "NUMBA_THREADING_LAYER" not in os.environ and "NUMBA_THREADING_LAYER_PRIORITY" not in os.environ:
        # OpenMP starts a parallel loop in ~1 us here, numba's own work queue in 73-127 us,
        # which is more than many small kernels take (measured: an empty prange).  The
        # work queue remains the fallback where no OpenMP runtime is installed.
        numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]
    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised by the pure-NumPy CI leg
    AVAILABLE = False


def _start_threads() -> None:
    """Start numba's worker threads now, with OpenMP's idle workers sleeping rather
    than spinning (``OMP_WAIT_POLICY=PASSIVE``, set only while numba loads its OpenMP
    runtime, and only if the user has not chosen a policy).

    Spinning workers keep a core busy for a while after every parallel loop; work on
    other threads that follows - a matrix product per core, as in the 1x1 conv's
    backward pass - then runs on half the machine (measured: that backward pass took
    11.6 ms with spinning workers, 7.6 ms with sleeping ones; the LeNet step was
    unchanged at 12.2-13.0 ms).  A runtime another library loaded first keeps its own
    settings."""
    if os.environ.get("OMP_WAIT_POLICY"):
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        from numba.np.ufunc import parallel

        parallel._launch_threads()  # numba-internal; without it the threads start on first use
    except (ImportError, AttributeError):  # pragma: no cover - another numba version
        pass
    finally:
        del os.environ["OMP_WAIT_POLICY"]


if AVAILABLE:
    _start_threads()


def enabled() -> bool:
    """Whether the compiled kernels run (numba loaded and the backend is "compiled")."""
    return AVAILABLE and switch.get_backend() == "compiled"


def worth_parallel(x: np.ndarray) -> bool:
    """Whether an elementwise or per-plane pass over ``x`` should run compiled: kernels
    on, a float dtype they are built for, and enough elements to pay for the threads."""
    return enabled() and x.dtype in (np.float32, np.float64) and x.size >= TUNING.parallel_min


def num_threads() -> int:
    """Threads the compiled kernels use (see :mod:`convpool.backends.compiled.threads`)."""
    return _threads.num_threads() if AVAILABLE else 1


_limiter: object = None


def blas_limiter():
    """A threadpoolctl controller for the BLAS thread count, or None without threadpoolctl."""
    global _limiter
    if _limiter is None:
        try:
            from threadpoolctl import ThreadpoolController

            _limiter = ThreadpoolController()
        except ImportError:
            _limiter = False
    return _limiter or None


_blas_libs: list[Any] | None = None


def _blas_controllers() -> list[Any]:
    """threadpoolctl's controllers of the BLAS libraries NumPy's products may run on
    (found once, as :func:`blas_limiter`): NumPy's own where it can be told apart (a
    wheel's bundled library lies under ``numpy.libs``/``numpy``; another library's
    threads - SciPy's, PyTorch's - are not ours to set: each costs a get and two sets
    per block, 1-3 us), else every BLAS loaded."""
    global _blas_libs
    if _blas_libs is None:
        limiter = blas_limiter()
        libs = list(limiter.select(user_api="blas").lib_controllers) if limiter is not None else []
        numpys = [lib for lib in libs if "numpy" in os.path.dirname(str(getattr(lib, "filepath", "")))]
        _blas_libs = numpys or libs
    return _blas_libs


class _OneBlasThread:
    """``threadpoolctl``'s ``limit(limits=1, user_api="blas")`` without its bookkeeping:
    a library already on one thread is left alone, the others are set to one and put
    back on exit (through the same controllers, so threadpoolctl's rule for OpenBLAS -
    one controlling Python thread - still holds).  ``limit()`` re-reads every library's
    information on entry and on exit: 20-50 us, more than a small product takes."""

    __slots__ = ("_restore",)

    def __enter__(self) -> None:
        restore = []
        for lib in _blas_controllers():
            n = lib.get_num_threads()
            if n is not None and n != 1:
                lib.set_num_threads(1)
                restore.append((lib, n))
        self._restore = restore

    def __exit__(self, *exc: object) -> None:
        for lib, n in self._restore:
            lib.set_num_threads(n)


def one_blas_thread() -> Any:
    """A context in which BLAS runs on the calling thread only.

    OpenBLAS's idle worker threads keep polling the cores for a while after every
    multi-threaded call; the compiled kernels that follow then run at a fraction of
    their speed (measured: the LeNet training step took 53-59 ms with 2 BLAS threads
    between the kernels, 22 ms with 1).  Small products lose little by running on one
    core; large ones are split across cores by the caller instead."""
    return _OneBlasThread() if _blas_controllers() else contextlib.nullcontext()


# Outputs are allocated by NumPy and passed in: NumPy asks the kernel for huge pages on
# large arrays, and first-touch page faults on fresh memory otherwise cost more than
# the kernels themselves (measured here: 4 GB/s writing fresh memory, 28 GB/s reused).
_workspace = threading.local()


def aligned_empty(size: int, dtype: Any) -> np.ndarray:
    """A fresh flat array whose data starts on a 64-byte (cache line) boundary."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.empty(size + 64 // itemsize, dtype=dtype)
    start = (-raw.ctypes.data % 64) // itemsize
    return raw[start : start + size]


# recycled_empty's buffers, per thread: (size, dtype) -> [(owner, offset)]
_recycled = threading.local()
RECYCLE_BYTES = 1 << 20  # the largest buffer kept: beside a larger one's pass, a fresh allocation costs little
RECYCLE_SLOTS = 4  # buffers kept per (size, dtype)
RECYCLE_KEYS = 32  # sizes kept; past it the pool starts over
RECYCLE_TOTAL = 16 << 20  # bytes kept per thread, all sizes together


def _first_free(slots: list[tuple[np.ndarray, int]], free_refs: int) -> int | None:
    """The index of the first buffer in ``slots`` whose reference count is at most
    ``free_refs`` (nothing but the pool holds it), or None."""
    for k, (owner, _) in enumerate(slots):
        if sys.getrefcount(owner) <= free_refs:
            return k
    return None


def _measure_free_refs() -> int:
    """The count :func:`_first_free` sees for a buffer only the pool holds, measured
    through that same function (it depends on the interpreter: 3.14 borrows a loop
    variable's reference), or -1 - never recycle - where one live view does not raise
    it, or where counts are not exact (free-threaded builds defer and bias them)."""
    if not getattr(sys, "_is_gil_enabled", lambda: True)():
        return -1
    slots = [(np.empty(4, dtype=np.float32), 0)]
    free = next((t for t in range(1, 16) if _first_free(slots, t) == 0), -1)
    view = slots[0][0][1:3]
    if free < 0 or _first_free(slots, free) is not None:  # the view did not show
        return -1
    del view
    return free


_FREE_REFS = _measure_free_refs()


def recycled_empty(size: int, dtype: Any) -> np.ndarray:
    """:func:`aligned_empty`, taking a buffer of the same size and dtype back from this
    thread's earlier calls once nothing references it any more.

    For the small layouts a batch-1 convolution keeps for its backward pass: a fresh
    aligned array costs an allocation and ``ndarray.ctypes`` (2-6 us, as long as the
    layout copy itself), a recycled one a reference count and a slice.  A buffer is free
    when only the pool refers to its memory: every view of an array (a layout's rows,
    a reshape, a user's slice) holds a reference to the array that owns the memory, so
    ``sys.getrefcount`` of the owner counts them all (the free count is measured at
    import; where views do not show in it, or counts are not exact, nothing is
    recycled).  Bounded: buffers up to :data:`RECYCLE_BYTES`, :data:`RECYCLE_SLOTS` per
    size, :data:`RECYCLE_KEYS` sizes, :data:`RECYCLE_TOTAL` bytes; per thread, so no two
    threads can take the same buffer.  Contents undefined."""
    dtype = np.dtype(dtype)
    nbytes = size * dtype.itemsize
    if nbytes > RECYCLE_BYTES or _FREE_REFS < 0:
        return aligned_empty(size, dtype)
    pool: dict[tuple[int, str], list[tuple[np.ndarray, int]]] | None = getattr(_recycled, "pool", None)
    if pool is None:
        pool = _recycled.pool = {}
        _recycled.bytes = 0
    key = (size, dtype.str)
    slots = pool.get(key)
    if slots is None:
        if len(pool) >= RECYCLE_KEYS:
            pool.clear()
            _recycled.bytes = 0
        slots = pool[key] = []
    k = _first_free(slots, _FREE_REFS)
    if k is not None:
        owner, start = slots[k]
        return owner[start : start + size]
    a = aligned_empty(size, dtype)
    if len(slots) < RECYCLE_SLOTS and _recycled.bytes + nbytes <= RECYCLE_TOTAL:
        raw = a.base
        assert isinstance(raw, np.ndarray) and raw.base is None
        slots.append((raw, (a.ctypes.data - raw.ctypes.data) // dtype.itemsize))
        _recycled.bytes += raw.nbytes
    return a


def workspace(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A scratch array reused across calls (per thread, per dtype), 64-byte aligned;
    contents undefined."""
    size = int(np.prod(shape))
    key = np.dtype(dtype).str
    buf = getattr(_workspace, key, None)
    if buf is None or buf.size < size:
        buf = aligned_empty(size, dtype)
        setattr(_workspace, key, buf)
    return buf[:size].reshape(shape)


_TABLES: dict[tuple[Any, ...], np.ndarray] = {}  # index_table's arguments -> the table (never handed out)
_TABLES_MAX = 256  # entries kept; past it the dict starts over
_TABLE_CACHED = 1 << 14  # the largest table kept (elements): building a larger one costs little beside its pool


def index_table(n: int, k: int, s: int, d: int, lo: int, hi: int, out: int, mode: str | None) -> np.ndarray:
    """For output ``o`` and window element ``t`` along one dimension, the input index read:
    ``>= 0`` an input element, -1 a zero value (zero padding), -2 nothing (identity padding
    or the room beyond the padding).  The kernels only look up.

    Built with NumPy once per argument tuple (tables up to :data:`_TABLE_CACHED` entries,
    in a dict emptied when it reaches :data:`_TABLES_MAX`: bounded, and safe with threads);
    each call returns
    a fresh copy, writable like a new table (the kernels' signatures stay those of
    writable arrays), so no caller can alter the cached one.  The table depends on the
    arguments only, so nothing invalidates it."""
    key = (n, k, s, d, lo, hi, out, mode)
    table = _TABLES.get(key)
    if table is None:
        table = _build_index_table(n, k, s, d, lo, hi, out, mode)
        if table.size > _TABLE_CACHED:
            return table
        if len(_TABLES) >= _TABLES_MAX:
            _TABLES.clear()
        _TABLES[key] = table
    return table.copy()


def _build_index_table(n: int, k: int, s: int, d: int, lo: int, hi: int, out: int, mode: str | None) -> np.ndarray:
    from ...windows import _border_index

    c = np.arange(out)[:, None] * s + np.arange(k)[None, :] * d  # padded coordinate
    i = c - lo
    table = np.full(c.shape, -2, dtype=np.int64)
    inside = (i >= 0) & (i < n)
    table[inside] = i[inside]
    border = ~inside & (i >= -lo) & (i < n + hi)
    if mode in ("constant", "zeros"):
        table[border] = -1
    elif mode is not None:
        table[border] = _border_index(n, lo, hi, mode)[c[border]]
    return table
