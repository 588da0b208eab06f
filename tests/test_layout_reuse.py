"""Layouts in recycled memory (runtime.recycled_empty): a buffer comes back only once
nothing references its memory, the pool stays bounded, and a wide layout built over a
buffer full of garbage (NaN) is the layout built over fresh memory - every element is
written (rows' tails, rows no channel maps to, strided phase rows)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from convpool.backends.compiled import kernels, runtime

pytestmark = pytest.mark.skipif(not kernels.DIRECT, reason="needs the SIMD kernels")


def _address(a: np.ndarray) -> int:
    return int(a.ctypes.data)


def test_a_buffer_comes_back_only_when_nothing_references_it() -> None:
    a = runtime.recycled_empty(1000, np.float32)
    assert _address(a) % 64 == 0 and a.shape == (1000,) and a.dtype == np.float32
    where = _address(a)
    view = a[10:20].reshape(2, 5)
    del a
    b = runtime.recycled_empty(1000, np.float32)
    assert _address(b) != where  # a view of the first still lives
    del view
    c = runtime.recycled_empty(1000, np.float32)
    assert _address(c) == where
    assert runtime.recycled_empty(1000, np.float64).dtype == np.float64


def test_the_pool_is_bounded_and_large_buffers_are_fresh() -> None:
    held = [runtime.recycled_empty(777, np.float32) for _ in range(runtime.RECYCLE_SLOTS + 3)]
    assert len({_address(a) for a in held}) == len(held)
    assert len(runtime._recycled.pool[(777, "<f4")]) == runtime.RECYCLE_SLOTS
    big = runtime.RECYCLE_BYTES // 4 + 16
    first = runtime.recycled_empty(big, np.float32)
    assert (big, "<f4") not in runtime._recycled.pool
    del first
    for size in range(1, runtime.RECYCLE_KEYS + 5):
        runtime.recycled_empty(size, np.float32)
    assert len(runtime._recycled.pool) <= runtime.RECYCLE_KEYS


def test_each_thread_has_its_own_pool() -> None:
    a = runtime.recycled_empty(555, np.float32)
    where = _address(a)
    del a
    seen: list[int] = []
    t = threading.Thread(target=lambda: seen.append(_address(runtime.recycled_empty(555, np.float32))))
    t.start()
    t.join()
    assert len(seen) == 1
    assert _address(runtime.recycled_empty(555, np.float32)) == where


def _poison(total: int) -> None:
    """Fill every free recycled buffer of ``total`` floats with NaN."""
    held = [runtime.recycled_empty(total, np.float32) for _ in range(runtime.RECYCLE_SLOTS)]
    for a in held:
        a[:] = np.nan


@pytest.mark.parametrize(
    "shape, pads, stride",
    [
        ((1, 32, 14, 14), ((1, 1), (1, 1)), (1, 1)),
        ((2, 3, 9, 7), ((2, 0), (1, 3)), (1, 1)),
        ((2, 3, 11, 10), ((1, 1), (1, 1)), (2, 2)),
        ((3, 4, 17), ((2, 2),), (3,)),
    ],
)
def test_a_layout_over_garbage_is_the_layout_over_fresh_memory(
    shape: tuple[int, ...], pads: tuple[tuple[int, int], ...], stride: tuple[int, ...]
) -> None:
    from convpool.backends.compiled.direct import Wide

    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    first = Wide(x, pads, "constant", 40, stride=stride)
    expected, total = first.base.copy(), first.base.size
    del first
    _poison(total)
    again = Wide(x, pads, "constant", 40, stride=stride)
    assert again.base.size == total
    np.testing.assert_array_equal(again.base, expected)
    assert not np.isnan(again.base).any()
    listed = Wide(x, [list(p) for p in pads], "constant", 40, stride=stride)  # type: ignore[arg-type]
    np.testing.assert_array_equal(listed.base, expected)


def test_rows_no_channel_maps_to_are_zero() -> None:
    from convpool.backends.compiled.direct import Wide

    x = np.random.default_rng(1).standard_normal((2, 3, 5, 5)).astype(np.float32)
    ws = runtime.workspace((100_000,), np.float32)
    ws[:] = np.nan  # the scratch layout's memory
    row_of = np.array([0, 2, 5], dtype=np.int64)
    w = Wide(x, ((0, 1), (0, 1)), "constant", 20, row_of, 7, scratch=True)
    assert not np.isnan(w.buf).any()
    for r in (1, 3, 4, 6):
        assert not w.buf[r].any()
    for c, r in enumerate(row_of):
        planes = w.buf[r, : w.q_len].reshape(2, 6, 6)
        np.testing.assert_array_equal(planes[:, :5, :5], x[:, c])
        assert not planes[:, 5].any() and not planes[:, :, 5].any()
        assert not w.buf[r, w.q_len :].any()


def test_the_free_count_is_measured_and_a_view_keeps_a_buffer() -> None:
    from convpool.backends.compiled import runtime

    slots = [(np.empty(8, dtype=np.float32), 0)]
    assert runtime._FREE_REFS > 0 and runtime._first_free(slots, runtime._FREE_REFS) == 0
    held = slots[0][0][2:5]  # one live view: the buffer is not free
    assert runtime._first_free(slots, runtime._FREE_REFS) is None
    del held


def test_no_recycling_where_counts_cannot_tell(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from convpool.backends.compiled import runtime

    monkeypatch.setattr(runtime, "_FREE_REFS", -1)
    pools: list[object] = []

    def use() -> None:  # a fresh thread: a pool of its own, which must stay unmade
        for _ in range(3):
            runtime.recycled_empty(1000, np.float32)
        pools.append(getattr(runtime._recycled, "pool", None))

    t = threading.Thread(target=use)
    t.start()
    t.join()
    assert pools == [None]


def test_pooled_bytes_per_thread_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from convpool.backends.compiled import runtime

    monkeypatch.setattr(runtime, "RECYCLE_TOTAL", 3 * 4096 * 4 + 1024)
    sizes: list[int] = []

    def fill() -> None:  # a fresh thread: a pool of its own
        for n in range(20):
            runtime.recycled_empty(4096 + 16 * n, np.float32)
        sizes.append(runtime._recycled.bytes)

    t = threading.Thread(target=fill)
    t.start()
    t.join()
    assert 0 < sizes[0] <= runtime.RECYCLE_TOTAL
