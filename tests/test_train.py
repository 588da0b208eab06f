"""Training: it learns, checkpoints are safe, resuming is exact, divergence is caught."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import convpool
from convpool import data, models, optim, train


def _digits_acc(name: str, epochs: int) -> float:
    convpool.manual_seed(0)
    split = data.load_digits()
    _, final = train.train_classifier(
        models.build(name, 1, 10, 8), split.train, split.test, epochs=epochs, progress=False
    )
    return final["test_acc"]


def test_lenet_learns_digits_better_than_mlp():
    cnn, mlp = _digits_acc("lenet", 12), _digits_acc("mlp", 12)
    assert cnn >= 0.965, cnn
    assert cnn >= mlp + 0.008, (cnn, mlp)


def test_cnn_beats_mlp_by_far_on_translated_noisy_lines():
    split = data.load_lines(n_train=1500, n_test=500, noise=0.3)
    accs = {}
    for name in ("lenet", "mlp"):
        convpool.manual_seed(0)
        _, final = train.train_classifier(
            models.build(name, 1, 6, 16), split.train, split.test, epochs=8, progress=False
        )
        accs[name] = final["test_acc"]
    assert accs["lenet"] >= accs["mlp"] + 0.3, accs


def _tiny_setup(seed: int = 0):  # type: ignore[no-untyped-def]
    convpool.manual_seed(seed)
    split = data.load_lines(n_train=200, n_test=50)
    model = models.lenet(1, 6, 16, width=4)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    return split, model, opt


def test_checkpoint_round_trip_and_resume_in_process(tmp_path):  # type: ignore[no-untyped-def]
    ckpt = str(tmp_path / "c.npz")
    split, model, opt = _tiny_setup()
    full = train.fit(model, split.train, epochs=3, optimizer=opt, progress=False)
    expected = model.state_dict()
    split, model, opt = _tiny_setup()
    train.fit(model, split.train, epochs=1, optimizer=opt, checkpoint=ckpt, progress=False)
    split, model, opt = _tiny_setup(seed=99)  # different init: everything must come from the file
    hist = train.fit(model, split.train, epochs=3, optimizer=opt, checkpoint=ckpt, resume=True, progress=False)
    assert hist.resumed_from == 1 and len(hist.epochs) == 3
    for k, v in expected.items():
        np.testing.assert_array_equal(model.state_dict()[k], v, err_msg=k)
    assert [e["train_loss"] for e in hist.epochs] == [e["train_loss"] for e in full.epochs]
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]  # no temp files left


def _train_cmd(out: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "convpool.tools.cli",
        "train",
        "--model",
        "lenet",
        "--data",
        "lines",
        "--epochs",
        "4",
        "--seed",
        "3",
        "--out",
        out,
        "--no-progress",
        *extra,
    ]


def test_killed_training_resumes_to_the_same_weights(tmp_path):  # type: ignore[no-untyped-def]
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    subprocess.run(_train_cmd(a), check=True, capture_output=True)
    proc = subprocess.Popen(_train_cmd(b), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = os.path.join(b, "checkpoint.npz")
    deadline = time.time() + 120
    while not os.path.exists(ckpt) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.2)  # well inside the next epoch
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "training finished before it could be killed"
    _, meta = train.read_checkpoint(ckpt)  # the file on disk is whole
    assert 1 <= meta["epoch"] < 4
    done = subprocess.run(_train_cmd(b, "--resume"), check=True, capture_output=True, text=True)
    assert f"resumed after epoch {meta['epoch']}" in done.stdout
    wa, _ = train.read_checkpoint(os.path.join(a, "checkpoint.npz"))
    wb, _ = train.read_checkpoint(ckpt)
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


def test_truncated_pickled_and_mismatched_checkpoints_are_refused(tmp_path):  # type: ignore[no-untyped-def]
    split, model, opt = _tiny_setup()
    good = str(tmp_path / "good.npz")
    train.save_checkpoint(good, model, opt, meta={"epoch": 1})
    raw = open(good, "rb").read()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(train.CheckpointError, match="corrupt or truncated"):
        train.load_checkpoint(str(bad), model)
    evil = tmp_path / "pickled.npz"
    np.savez(evil, meta=np.array([{"run": "code"}], dtype=object))
    with pytest.raises(train.CheckpointError, match="pickled Python objects"):
        train.load_checkpoint(str(evil), model)
    raw_pickle = tmp_path / "raw.npz"
    raw_pickle.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(train.CheckpointError, match=r"pickled|corrupt"):
        train.load_checkpoint(str(raw_pickle), model)
    other = models.lenet(1, 6, 16, width=8)
    with pytest.raises(train.CheckpointError, match=r"does not fit this model.*shape"):
        train.load_checkpoint(good, other)
    with pytest.raises(train.CheckpointError, match="was written with Adam, not SGD"):
        train.load_checkpoint(good, model, optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(train.CheckpointError, match="no checkpoint at"):
        train.load_checkpoint(str(tmp_path / "missing.npz"), model)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):  # type: ignore[no-untyped-def]
    ckpt = str(tmp_path / "c.npz")
    split, model, opt = _tiny_setup()
    train.fit(model, split.train, epochs=1, optimizer=opt, checkpoint=ckpt, progress=False)
    before = open(ckpt, "rb").read()
    poisoned = data.Dataset(split.train.x.copy(), split.train.y)
    poisoned.x[:] = np.nan
    with pytest.raises(train.TrainingDiverged, match=r"loss became nan at epoch 2.*epoch 1\) is kept"):
        train.fit(model, poisoned, epochs=3, optimizer=opt, checkpoint=ckpt, resume=True, progress=False)
    assert open(ckpt, "rb").read() == before
    train.load_checkpoint(ckpt, model, opt)


def test_patience_stops_when_validation_loss_stops_improving():
    split, model, opt = _tiny_setup()
    opt.lr = 1.0  # far too large: the validation loss cannot keep improving
    hist = train.fit(model, split.train, val=split.test, epochs=30, optimizer=opt, patience=2, progress=False)
    losses = [e["val_loss"] for e in hist.epochs]
    assert hist.stopped_early and len(losses) < 30
    assert len(losses) - 1 - int(np.argmin(losses)) == 2


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    """history.json and checkpoints go through atomic_write: a write that fails half-way
    leaves the previous file whole and no temporary file."""
    from convpool.checkpoint import atomic_write

    path = tmp_path / "history.json"
    atomic_write(str(path), lambda f: f.write(b'{"old": 1}'), ".json")

    def half(f):
        f.write(b'{"new": ')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(str(path), half, ".json")
    assert path.read_bytes() == b'{"old": 1}'
    assert os.listdir(tmp_path) == ["history.json"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would make it, not mkstemp's 0o600
