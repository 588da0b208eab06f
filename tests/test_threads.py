"""The kernel threads (:mod:`convpool.backends.compiled.threads`): every job runs exactly once, errors
reach the caller, calls from several threads and after a fork work; the compiled
kernels give the same results split over threads in small chunks as in one call;
each kernel compiles one signature however its callers pass the tables."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convpool.functional as F
from convpool import config
from convpool.backends.compiled import kernels as _kernels
from convpool.backends.compiled import threads as _threads
from convpool.settings import TUNING


@pytest.fixture
def threads3() -> Iterator[None]:
    """Three threads and no minimum work: every call is cut into chunks on workers
    (the test runs may set NUMBA_NUM_THREADS=1, and their arrays are small)."""
    with config.tuning(threads=3, thread_min_work=0):
        yield


def _count(j0: int, j1: int, hits: np.ndarray, who: list[str]) -> None:
    hits[j0:j1] += 1
    who.append(threading.current_thread().name)


@pytest.mark.parametrize("n_jobs", [1, 2, 3, 7, 12, 100])
def test_every_job_runs_once(threads3: None, n_jobs: int) -> None:
    hits = np.zeros(n_jobs, dtype=np.int64)
    who: list[str] = []
    _threads.parallel_for(_count, n_jobs, hits, who)
    assert (hits == 1).all()
    assert len(who) == min(n_jobs, _threads.CHUNKS_PER_THREAD * 3)  # one call per chunk


def test_small_work_runs_in_one_call_on_the_calling_thread() -> None:
    hits = np.zeros(50, dtype=np.int64)
    who: list[str] = []
    with config.tuning(threads=3):
        _threads.parallel_for(_count, 50, hits, who, work=TUNING.thread_min_work - 1)
        assert (hits == 1).all() and who == [threading.current_thread().name]
        _threads.parallel_for(_count, 0, hits, who)  # no jobs: no call
    assert len(who) == 1


def test_an_error_in_any_chunk_reaches_the_caller(threads3: None) -> None:
    def kernel(j0: int, j1: int) -> None:
        if j0 <= 9 < j1:
            raise ValueError(f"job 9 failed on {threading.current_thread().name}")
        time.sleep(0.001)

    for _ in range(5):  # the failing chunk lands on the caller or on a worker
        with pytest.raises(ValueError, match="job 9 failed"):
            _threads.parallel_for(kernel, 12)
    hits = np.zeros(12, dtype=np.int64)  # the workers still serve later calls
    _threads.parallel_for(_count, 12, hits, [])
    assert (hits == 1).all()


def test_a_late_worker_costs_no_more_than_a_chunk(threads3: None) -> None:
    """The caller takes every chunk it finds: with the workers busy on a long call from
    another thread, a second call still finishes, on its own thread."""
    release = threading.Event()

    def slow(j0: int, j1: int) -> None:
        release.wait(5)

    blocker = threading.Thread(target=_threads.parallel_for, args=(slow, 12))
    blocker.start()
    time.sleep(0.05)
    hits = np.zeros(40, dtype=np.int64)
    who: list[str] = []
    _threads.parallel_for(_count, 40, hits, who)  # would hang if it waited for the busy workers
    release.set()
    blocker.join()
    assert (hits == 1).all()


def test_calls_from_several_threads(threads3: None) -> None:
    results: list[bool] = []

    def caller(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(30):
            n = int(rng.integers(1, 50))
            hits = np.zeros(n, dtype=np.int64)
            _threads.parallel_for(_count, n, hits, [])
            results.append(bool((hits == 1).all()))

    callers = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert len(results) == 120 and all(results)


def _in_child(out: mp.SimpleQueue) -> None:  # type: ignore[type-arg]
    TUNING.threads, TUNING.thread_min_work = 3, 0  # a child process of its own
    hits = np.zeros(20, dtype=np.int64)
    _threads.parallel_for(_count, 20, hits, [])
    out.put(int(hits.sum()))


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="no fork on this platform")
def test_a_forked_child_starts_its_own_workers(threads3: None) -> None:
    hits = np.zeros(20, dtype=np.int64)
    _threads.parallel_for(_count, 20, hits, [])  # the parent's workers exist before the fork
    ctx = mp.get_context("fork")
    out = ctx.SimpleQueue()
    child = ctx.Process(target=_in_child, args=(out,))
    child.start()
    child.join(30)
    assert child.exitcode == 0 and out.get() == 20


# --- the compiled kernels, cut into chunks on three threads ---------------------------

compiled = pytest.mark.skipif(not _kernels.enabled(), reason="numba not installed or disabled")


def _conv(x, w, stride, pad, groups):  # type: ignore[no-untyped-def]
    y, ctx = F.conv_forward(x, w, None, stride, pad, 1, groups)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(x.dtype)
    dx, dw, _ = F.conv_backward(dy, ctx)
    return y, dx, dw


def _pool(x, red, k, s, p):  # type: ignore[no-untyped-def]
    y, ctx = F.reduce_window_forward(x, red, x.ndim - 2, k, s, p)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(x.dtype)
    return y, F.reduce_window_backward(dy, ctx)


def _split_vs_whole(fn, monkeypatch: pytest.MonkeyPatch | None = None):  # type: ignore[no-untyped-def]
    """fn() on one thread in one call, then cut into chunks on three threads."""
    with config.tuning(threads=1):
        whole = fn()
    with config.tuning(threads=3, thread_min_work=0):
        split = fn()
    return whole, split


@compiled
@settings(max_examples=30)
@given(
    st.sampled_from(["wide", "strided", "depthwise", "pointwise", "float64", "float64 depthwise"]),
    st.integers(1, 3),
    st.integers(0, 2**16),
)
def test_conv_kernels_split_over_threads_equal_one_call(kind: str, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    dtype = np.float64 if kind.startswith("float64") else np.float32
    c, groups = (4, 4) if "depthwise" in kind else (4, 1)
    k = 1 if kind == "pointwise" else 3
    x = rng.standard_normal((n, c, 11, 13)).astype(dtype)
    w = rng.standard_normal((8, c // groups, k, k)).astype(dtype)
    stride, pad = (2 if kind == "strided" or kind == "float64 depthwise" else 1), (0 if k == 1 else 1)
    mp_ = pytest.MonkeyPatch()
    whole, split = _split_vs_whole(lambda: _conv(x, w, stride, pad, groups), mp_)
    for a, b in zip(whole, split, strict=True):  # the weight gradient's partial sums differ in order
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@compiled
@settings(max_examples=30)
@given(
    st.sampled_from(
        [("max", 2, 2, 0), ("min", 2, 2, 0), ("max", 3, 3, 0), ("max", 3, 2, 1), ("min", 3, 2, 1), ("sum", 2, 2, 0)]
        + [("sum", 3, 1, 1), ("median", 3, 1, 1)]
    ),
    st.sampled_from([1, 2]),
    st.sampled_from([np.float32, np.float64]),
    st.integers(0, 2**16),
)
def test_pool_kernels_split_over_threads_equal_one_call(red_k_s_p, nd: int, dtype, seed: int) -> None:  # type: ignore[no-untyped-def]
    red, k, s, p = red_k_s_p
    x = np.random.default_rng(seed).standard_normal((2, 3) + (9,) * nd).astype(dtype)
    whole, split = _split_vs_whole(lambda: _pool(x, red, k, s, p), pytest.MonkeyPatch())
    for a, b in zip(whole, split, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@compiled
def test_elementwise_and_plane_kernels_split_over_threads_equal_numpy(threads3: None) -> None:
    x = np.random.default_rng(0).standard_normal((5, 7, 100)).astype(np.float32)
    y = np.empty(x.size, dtype=np.float32)
    _kernels.relu_forward(x.ravel(), y)
    np.testing.assert_array_equal(y, np.maximum(x.ravel(), 0))
    dx = np.empty_like(y)
    _kernels.relu_backward(np.ones_like(y), y, dx)
    np.testing.assert_array_equal(dx, (x.ravel() > 0).astype(np.float32))
    sums = np.empty(35, dtype=np.float32)
    _kernels.plane_sum(x.reshape(35, 100), sums)
    np.testing.assert_allclose(sums, x.reshape(35, 100).sum(axis=1), rtol=1e-5, atol=1e-5)


@compiled
def test_elementwise_kernels_over_several_blocks(threads3: None) -> None:
    """More elements than one job's block (RELU_BLOCK), split over three threads: every
    job indexes its own slice from 0."""
    from convpool.backends.compiled.im2col import RELU_BLOCK

    x = np.random.default_rng(1).standard_normal(3 * RELU_BLOCK + 77).astype(np.float32)
    y = np.empty_like(x)
    _kernels.relu_forward(x, y)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    dx = np.empty_like(y)
    g = np.random.default_rng(2).standard_normal(x.size).astype(np.float32)
    _kernels.relu_backward(g, y, dx)
    np.testing.assert_array_equal(dx, np.where(x > 0, g, 0))


@compiled
def test_each_kernel_compiles_one_signature() -> None:
    """Callers pass the cached (read-only) tables and fresh (writable) ones alike: the
    kernels see them all read-only, so a geometry change or another caller compiles nothing."""
    from convpool.backends.compiled import direct as _direct

    rng = np.random.default_rng(0)
    for shape, pad, n in (((6, 4, 3, 3), 1, 2), ((5, 4, 3, 3), 0, 1), ((6, 4, 1, 1), 0, 3)):
        x = rng.standard_normal((n, 4, 9, 10)).astype(np.float32)
        y, ctx = F.conv_forward(x, rng.standard_normal(shape).astype(np.float32), None, 1, pad)
        F.conv_backward(np.ones_like(y), ctx)
    assert len(_direct._conv_wide.signatures) == 1


@compiled
def test_im2col_chunks_of_the_batch_on_the_kernel_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """float64 conv with over 8 MB of columns: each thread takes chunks of the batch
    (serial im2col, one BLAS thread), the chunks smaller than the batch's share."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 16, 32, 32))
    w = rng.standard_normal((8, 16, 3, 3))
    assert x.shape[0] * 16 * 9 * 32 * 32 * 8 >= 8 * 2**20  # the threaded branch of _over_batch
    calls: list[int] = []
    real = _kernels.im2col_serial

    def counted(x5, *args):  # type: ignore[no-untyped-def]
        calls.append(x5.shape[0])
        real(x5, *args)

    monkeypatch.setattr(_kernels, "im2col_serial", counted)
    with config.tuning(cols_budget=2 * 16 * 9 * 32 * 32 * 8):  # 2 images a chunk
        whole, split = _split_vs_whole(lambda: _conv(x, w, 1, 1, 1))
    assert calls and max(calls) <= 2 and sum(calls) == 2 * x.shape[0]  # forward and backward, every image once
    for a, b in zip(whole, split, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
