"""The pool's per-call-site memo of its checked windows (functional._reduce._windows): a
layer's repeated calls skip the checks, and nothing else ever gets a remembered answer -
an equal but different argument (True for 1), a list changed in place, another input
size, other trim thresholds, a reduction of the user's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convpool.config import tuning
from convpool.functional import _reduce
from convpool.functional.pool import max_pool2d
from convpool.functional.reductions import Max
from convpool.nn.pool import MaxPool2d


@pytest.fixture
def geometries(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """The input sizes for which make_geometry ran (a miss of the memo)."""
    seen: list[tuple[int, ...]] = []
    real = _reduce.make_geometry

    def spy(in_size: tuple[int, ...], *args: object, **kw: object) -> object:
        seen.append(in_size)
        return real(in_size, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(_reduce, "make_geometry", spy)
    _reduce._WINDOWS.clear()
    return seen


def test_a_layer_checks_once_per_input_size(geometries: list[tuple[int, ...]]) -> None:
    pool = MaxPool2d(2)
    rng = np.random.default_rng(0)
    for shape in ((1, 3, 8, 8), (1, 3, 8, 8), (2, 3, 8, 8), (1, 3, 6, 10), (1, 3, 8, 8)):
        x = rng.standard_normal(shape).astype(np.float32)
        want = torch.nn.functional.max_pool2d(torch.tensor(x), 2).numpy()
        np.testing.assert_array_equal(pool(x), want)
    assert geometries == [(8, 8), (6, 10)]


def test_equal_but_other_arguments_are_checked(geometries: list[tuple[int, ...]]) -> None:
    x = np.random.default_rng(1).standard_normal((1, 2, 6, 6)).astype(np.float32)
    stride = (1, 1)
    max_pool2d(x, (2, 2), stride)
    max_pool2d(x, (2, 2), stride)
    with pytest.raises(TypeError, match="stride"):
        max_pool2d(x, (2, 2), (True, 1))
    kernel = [2, 2]  # a list: never remembered, read afresh
    assert max_pool2d(x, kernel).shape == (1, 2, 3, 3)
    kernel[0] = 3
    assert max_pool2d(x, kernel, 1).shape == (1, 2, 4, 5)
    with pytest.raises(ValueError, match="padding"):
        max_pool2d(x, 2, 2, 5)


def test_thresholds_and_user_reductions_are_keys(geometries: list[tuple[int, ...]]) -> None:
    x = np.random.default_rng(2).standard_normal((1, 2, 5, 5))
    k, s, p = (3, 3), (1, 1), ((1, 1), (1, 1))
    y, _ = _reduce.reduce_window_forward(x, "max", 2, k, s, p)
    with tuning(pool_trim_ratio=1, pool_trim_slack=0):
        y2, _ = _reduce.reduce_window_forward(x, "max", 2, k, s, p)
    np.testing.assert_array_equal(y, y2)
    assert len(geometries) == 2
    other = Max()  # another instance of a built-in reduction: another key
    for _ in range(2):
        np.testing.assert_array_equal(_reduce.reduce_window_forward(x, other, 2, k, s, p)[0], y)
    assert len(geometries) == 3

    class Mine(Max):  # a reduction of the user's: never remembered
        pass

    mine = Mine()
    for _ in range(2):
        np.testing.assert_array_equal(_reduce.reduce_window_forward(x, mine, 2, k, s, p)[0], y)
    assert len(geometries) == 5
