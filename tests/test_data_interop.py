"""Datasets (IDX, npz, lines, digits), batching, summary and PyTorch interop."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

import convpool
from convpool import data, interop, models, nn


def _write_idx(path, arr, gz=False):  # type: ignore[no-untyped-def]
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    payload = header + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(payload)


def test_idx_folder_loads(tmp_path):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, 256, (5, 4, 3)), rng.integers(0, 10, 5)
    _write_idx(tmp_path / "train-images-idx3-ubyte", xs)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", ys)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", xs[:2], gz=True)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", ys[:2], gz=True)
    split = data.load_dataset(f"idx:{tmp_path}")
    assert split.train.x.shape == (5, 1, 4, 3) and split.train.x.dtype == np.float32
    np.testing.assert_allclose(split.train.x[:, 0] * 255, xs, atol=1e-4)
    np.testing.assert_array_equal(split.test.y, ys[:2])


def test_idx_errors(tmp_path):  # type: ignore[no-untyped-def]
    with pytest.raises(FileNotFoundError, match=r"no such folder"):
        data.load_dataset(f"idx:{tmp_path / 'nope'}")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        data.load_dataset(f"idx:{tmp_path}")
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(str(tmp_path / "bad"))
    _write_idx(tmp_path / "short", np.zeros((3, 2)))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(ValueError, match="bytes follow"):
        data.read_idx(str(tmp_path / "short"))
    with pytest.raises(ValueError, match="data must be"):
        data.load_dataset("cifar10")


def test_npz_loads(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((4, 6, 6)), y_train=np.arange(4), x_test=np.zeros((2, 6, 6)), y_test=np.arange(2))
    split = data.load_dataset(f"npz:{path}")
    assert split.train.x.shape == (4, 1, 6, 6) and split.test.y.tolist() == [0, 1]
    with pytest.raises(FileNotFoundError, match=r"expected an \.npz"):
        data.load_dataset(f"npz:{tmp_path / 'none.npz'}")


def test_lines_and_digits():
    d = data.make_lines(60, size=12, pattern=5, max_shift=0, noise=0.0, seed=1)
    assert d.x.shape == (60, 1, 12, 12) and set(d.y) <= set(range(6))
    # with no shift and no noise every vertical stroke sits in the same central column
    vert = d.x[d.y == 0][:, 0]
    assert (vert[:, :, 12 // 2 - 1 : 12 // 2 + 1].sum(axis=(1, 2)) > 0).all()
    digits = data.load_digits()
    assert len(digits.train) + len(digits.test) == 1797 and digits.train.x.shape[1:] == (1, 8, 8)


def test_dataloader_seeded_shuffle_and_drop_last():
    ds = data.Dataset(np.arange(10.0)[:, None], np.arange(10))
    convpool.manual_seed(5)
    a = [y.tolist() for _, y in data.DataLoader(ds, 3, shuffle=True)]
    convpool.manual_seed(5)
    b = [y.tolist() for _, y in data.DataLoader(ds, 3, shuffle=True)]
    assert a == b and sorted(v for batch in a for v in batch) == list(range(10)) and len(a) == 4
    assert len(list(data.DataLoader(ds, 3, drop_last=True))) == 3


def test_summary_counts_match_torch_and_receptive_field():
    model = models.lenet(1, 10, 8)
    rows = models.summary_rows(model, (1, 8, 8))
    assert sum(r.params for r in rows) == sum(p.numel() for p in interop.to_torch(model).parameters())
    # conv3 (3) -> pool2 (4) -> conv3 at jump 2 (8) -> pool2 (10)
    assert [r.receptive_field for r in rows[:6]] == [3, 3, 4, 8, 8, 10]
    assert rows[0].mult_adds == 32 * 8 * 8 * 9
    assert "total:" in models.summary(model, (1, 8, 8))


def test_interop_round_trip_identical_outputs():
    convpool.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, padding_mode="reflect"),
        nn.BatchNorm2d(4),
        nn.LeakyReLU(0.1),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, groups=2),
        nn.AvgPool2d(2, ceil_mode=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(4, 3),
        nn.Tanh(),
    )
    x = np.random.default_rng(0).standard_normal((5, 1, 12, 12)).astype(np.float32)
    m(x)  # update BatchNorm's running statistics
    m.eval()
    t = interop.to_torch(m)
    assert not t.training
    np.testing.assert_allclose(t(torch.tensor(x)).detach().numpy(), m(x), rtol=1e-5, atol=1e-6)
    back = interop.from_torch(t)
    np.testing.assert_array_equal(back(x), m(x))
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k], v)


def test_interop_refuses_layers_without_equivalent():
    with pytest.raises(TypeError, match="MedianPool2d has no PyTorch equivalent"):
        interop.to_torch(nn.Sequential(nn.MedianPool2d(3)))
    with pytest.raises(TypeError, match="GELU has no convpool equivalent"):
        interop.from_torch(torch.nn.GELU())
