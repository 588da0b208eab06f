"""Training on PyTorch's engine (``convpool train --engine torch``): DDP with 2 processes
on localhost equals one process on the same global batches, one process equals
convpool's NumPy trainer, a killed run resumes, and the errors.

Tolerances (measured: float64 weights differ by at most 2.2e-16):
in float64, after 2 epochs of digits (44 AdamW steps each; only the order of the
gradient sums differs), 2 processes, 1 process and the NumPy trainer agree to
``rtol=1e-12, atol=1e-14``; a run resumed after a kill equals an uninterrupted one
with the same number of processes exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch engine needs PyTorch (test extra)")

import convpool  # noqa: E402
from convpool import data, nn, train  # noqa: E402
from convpool.checkpoint import load_checkpoint  # noqa: E402
from convpool.interop._ddp import train_torch  # noqa: E402
from convpool.tools import cli  # noqa: E402

RTOL64, ATOL64 = 1e-12, 1e-14
BATCH = 33  # the last batch of an epoch splits unevenly between 2 processes


def _model() -> nn.Sequential:
    convpool.manual_seed(0)
    dt = np.float64
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, dtype=dt),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 10, dtype=dt),
    )


@pytest.fixture(scope="module")
def digits64():  # type: ignore[no-untyped-def]
    split = data.load_digits()
    for part in (split.train, split.test):
        part.x = part.x.astype(np.float64)
    return split


def _weights(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in model.state_dict().items()}


def _close(a: dict[str, np.ndarray], b: dict[str, np.ndarray], rtol: float, atol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=atol, err_msg=k)


@pytest.fixture(scope="module")
def one_process(digits64):  # type: ignore[no-untyped-def]
    model = _model()
    hist, final = train_torch(model, digits64.train, digits64.test, epochs=2, batch_size=BATCH, nproc=1)
    return _weights(model), hist, final


def test_two_processes_equal_one_on_the_same_global_batches(digits64, one_process, tmp_path):  # type: ignore[no-untyped-def]
    """1438 images in batches of 33: 44 steps an epoch, the last batch (19) split 10/9."""
    model = _model()
    hist, final = train_torch(
        model, digits64.train, digits64.test, epochs=2, batch_size=BATCH, nproc=2, out_dir=str(tmp_path)
    )
    want, want_hist, want_final = one_process
    _close(_weights(model), want, RTOL64, ATOL64)
    assert [e["epoch"] for e in hist.epochs] == [1, 2]
    for e, w in zip(hist.epochs, want_hist.epochs, strict=True):
        assert e["train_loss"] == pytest.approx(w["train_loss"], rel=1e-12)
        assert e["val_acc"] == w["val_acc"]
    assert final["test_acc"] == want_final["test_acc"] > 0.5
    saved = _model()
    load_checkpoint(str(tmp_path / "checkpoint.npz"), saved)  # the usual convpool checkpoint
    _close(_weights(saved), want, RTOL64, ATOL64)
    assert (tmp_path / "history.json").exists()


def test_one_process_equals_the_numpy_trainer(digits64, one_process):  # type: ignore[no-untyped-def]
    """Same batches, AdamW, cosine schedule and seed handling as convpool's own trainer."""
    model = _model()
    hist, final = train.train_classifier(
        model, digits64.train, digits64.test, epochs=2, batch_size=BATCH, progress=False
    )
    _close(_weights(model), one_process[0], RTOL64, ATOL64)
    assert final["test_acc"] == one_process[2]["test_acc"]


def test_a_numpy_checkpoint_resumes_on_torch(digits64, one_process, tmp_path):  # type: ignore[no-untyped-def]
    """Interrupted after epoch 1 by the NumPy trainer, finished by the torch engine."""
    model = _model()

    def stop(record):  # type: ignore[no-untyped-def]
        if record["epoch"] == 2:  # fit writes epoch 2's checkpoint after this: the file keeps epoch 1
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.train_classifier(
            model,
            digits64.train,
            digits64.test,
            epochs=2,
            batch_size=BATCH,
            out_dir=str(tmp_path),
            progress=False,
            on_epoch=stop,
        )
    model = _model()
    hist, _ = train_torch(
        model, digits64.train, digits64.test, epochs=2, batch_size=BATCH, out_dir=str(tmp_path), resume=True
    )
    assert hist.resumed_from == 1 and [e["epoch"] for e in hist.epochs] == [1, 2]
    _close(_weights(model), one_process[0], RTOL64, ATOL64)


def test_killed_run_resumes(tmp_path):  # type: ignore[no-untyped-def]
    """`convpool train --engine torch --nproc 2` killed (SIGKILL, every process) after
    its first checkpoint, then run again with --resume, ends with the weights of a run
    that was not interrupted (bit for bit: the optimiser state and generator are restored
    exactly, and gloo sums in a fixed order)."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "convpool.tools.cli", "train", "--engine", "torch", "--nproc", "2", "--epochs", "2"]
    cmd += ["--out", str(out), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (out / "checkpoint.npz").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the run's own process group: the launcher and its workers
        proc.wait()
    assert (out / "checkpoint.npz").exists() and not (out / "history.json").exists(), "killed before the end"
    done = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(resumed after epoch 1)" in done.stdout
    resumed = convpool.models.lenet(1, 10, 8)
    meta = load_checkpoint(str(out / "checkpoint.npz"), resumed)
    assert [e["epoch"] for e in meta["history"]] == [1, 2]
    convpool.manual_seed(0)  # what the CLI does: its default seed, the data, the model
    split = data.load_digits()
    model = convpool.models.lenet(1, 10, 8)
    train_torch(model, split.train, split.test, epochs=2, nproc=2)
    _close(_weights(resumed), _weights(model), 0.0, 0.0)


def test_errors(digits64, monkeypatch, capsys):  # type: ignore[no-untyped-def]
    split = digits64
    with pytest.raises(TypeError, match=r"GeMPool2d has no PyTorch equivalent"):
        train_torch(nn.Sequential(nn.GeMPool2d(2)), split.train, split.test, epochs=1)
    with pytest.raises(ValueError, match=r"node_rank must be below nnodes=2, got 2"):
        train_torch(_model(), split.train, split.test, nnodes=2, node_rank=2)
    with pytest.raises(ValueError, match=r"nproc must be an int >= 1, got 0"):
        train_torch(_model(), split.train, split.test, nproc=0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"backend 'nccl' needs a GPU per process: 1 processes, 0 GPUs"):
            train_torch(_model(), split.train, split.test, backend="nccl")
    # without PyTorch, --engine torch says how to install it
    monkeypatch.setitem(sys.modules, "torch", None)
    code = cli.main(["train", "--engine", "torch", "--epochs", "1", "--no-progress"])
    assert code == 2
    assert "needs PyTorch: pip install torch" in capsys.readouterr().err
