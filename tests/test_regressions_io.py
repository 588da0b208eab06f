"""Regressions of issue 17, items 9 and 10: checkpoints, data files, BatchNorm and CLI messages.

Every test is named after the defect it pins down; each failed on the code before its fix.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import convpool
from convpool import _random, data, interop, models, nn, optim, train
from convpool.lab import filters, invariance
from convpool.tools import cli

# --- helpers --------------------------------------------------------------------------------


def _tiny() -> tuple[data.Split, nn.Module, optim.Optimizer]:
    convpool.manual_seed(0)
    split = data.load_lines(n_train=64, n_test=16)
    model = models.lenet(1, 6, 16, width=4)
    return split, model, optim.Adam(model.parameters(), lr=1e-2)


def _good_checkpoint(tmp_path: Path) -> str:
    """A real checkpoint after one epoch of training (model, Adam state, schedule, history)."""
    split, model, opt = _tiny()
    path = str(tmp_path / "good.npz")
    train.fit(
        model, split.train, epochs=1, optimizer=opt, scheduler=optim.StepLR(opt, 1), checkpoint=path, progress=False
    )
    return path


def _arrays(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _with_meta(src: str, dst: Path, meta: Any = None, raw: bytes | None = None) -> str:
    """``src`` with its metadata replaced by ``meta`` (as JSON) or by ``raw`` bytes."""
    arrays = _arrays(src)
    payload = raw if raw is not None else json.dumps(meta).encode()
    arrays["meta"] = np.frombuffer(payload, dtype=np.uint8)
    np.savez(dst, **arrays)  # type: ignore[arg-type]
    return str(dst)


def _meta(path: str) -> dict[str, Any]:
    return dict(json.loads(_arrays(path)["meta"].tobytes()))


def _data_start(raw: bytes | bytearray, info: zipfile.ZipInfo) -> int:
    """Where a zip member's data begins: after its local header, name and extra field."""
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len


def _snapshot(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in model.state_dict().items()}


def _assert_unchanged(model: nn.Module, before: dict[str, np.ndarray]) -> None:
    after = model.state_dict()
    for k, v in before.items():
        np.testing.assert_array_equal(after[k], v, err_msg=f"{k} was changed by a failed load")


def _cli_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI in-process; it must exit non-zero with one line on stderr, no traceback."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code not in (0, None)
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("convpool"), err
    return err


# --- 9. checkpoints ---------------------------------------------------------------------


def test_checkpoint_without_rng_is_a_checkpoint_error_not_keyerror(tmp_path: Path) -> None:
    good = _good_checkpoint(tmp_path)
    meta = _meta(good)
    del meta["rng"]
    path = _with_meta(good, tmp_path / "no_rng.npz", meta)
    _, model, opt = _tiny()
    before = _snapshot(model)
    with pytest.raises(train.CheckpointError, match=r"no_rng\.npz.*rng"):
        train.load_checkpoint(path, model, opt)
    _assert_unchanged(model, before)


def test_checkpoint_that_does_not_fit_the_optimizer_changes_nothing(tmp_path: Path) -> None:
    good = _good_checkpoint(tmp_path)
    _, model, _ = _tiny()
    convpool.manual_seed(5)
    model = models.lenet(1, 6, 16, width=4)  # same architecture, other weights
    partial = optim.Adam(model.parameters()[:2], lr=1e-2)  # the model fits, the optimiser does not
    before, rng_before = _snapshot(model), _random.get_state()
    with pytest.raises(train.CheckpointError, match=r"good\.npz.*more parameters"):
        train.load_checkpoint(good, model, partial)
    _assert_unchanged(model, before)
    assert partial.steps == 0 and all(not st for st in partial.state)
    assert _random.get_state() == rng_before


def test_checkpoint_with_corrupt_deflate_stream_is_a_checkpoint_error(tmp_path: Path) -> None:
    good = _good_checkpoint(tmp_path)
    path = tmp_path / "deflate.npz"
    np.savez_compressed(path, **_arrays(good))  # type: ignore[arg-type]
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("model/0.weight.npy")
    start = _data_start(raw, info)
    raw[start] |= 0b110  # the first deflate block's type becomes 3, which is reserved: "invalid block type"
    path.write_bytes(bytes(raw))
    with pytest.raises(zlib.error), np.load(path) as f:  # what the old loader let through
        f["model/0.weight"]
    _, model, opt = _tiny()
    with pytest.raises(train.CheckpointError, match=r"deflate\.npz.*corrupt.*invalid block type"):
        train.load_checkpoint(str(path), model, opt)


def test_checkpoint_with_flipped_bytes_is_refused(tmp_path: Path) -> None:
    # a guard rather than a regression: the new reader must still reach the end of every member,
    # where zipfile checks its CRC
    good = _good_checkpoint(tmp_path)
    raw = bytearray(Path(good).read_bytes())
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo("model/0.weight.npy")
    end = _data_start(raw, info) + info.compress_size
    raw[end - 5] ^= 0x55  # inside the last weight
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(raw))
    _, model, opt = _tiny()
    with pytest.raises(train.CheckpointError, match=r"flipped\.npz.*CRC"):
        train.load_checkpoint(str(bad), model, opt)


def test_checkpoint_with_lying_npy_header_is_refused_before_allocating(tmp_path: Path) -> None:
    good = _good_checkpoint(tmp_path)
    path = tmp_path / "lying.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "model/0.weight.npy":  # claims 2**40 float64 (8 TiB), holds 16 bytes
                header = io.BytesIO()
                np.lib.format.write_array_header_1_0(
                    header, {"descr": "<f8", "fortran_order": False, "shape": (2**20,) * 2}
                )
                body = header.getvalue() + bytes(16)
            dst.writestr(info.filename, body)
    _, model, opt = _tiny()
    with pytest.raises(train.CheckpointError, match=r"lying\.npz.*0\.weight.*declares shape \(1048576, 1048576\)"):
        train.load_checkpoint(str(path), model, opt)


@pytest.mark.parametrize(
    ("label", "change"),
    [
        ("not_json", b"\xff\xfe not json"),
        ("list", [1, 2, 3]),
        ("epoch_str", {"epoch": "3"}),
        ("lr_str", {"optimizer": {"type": "Adam", "lr": "fast", "steps": 1}}),
        ("no_steps", {"optimizer": {"type": "Adam", "lr": 0.01}}),
        ("optimizer_list", {"optimizer": ["Adam"]}),
        ("last_epoch_negative", {"scheduler": {"base_lr": 0.01, "last_epoch": -1}}),
        ("history_str", {"history": "long"}),
        ("rng_garbage", {"rng": {"bit_generator": "PCG64", "state": "x"}}),
        ("version", {"version": 99}),
    ],
)
def test_checkpoint_with_odd_metadata_is_a_checkpoint_error(tmp_path: Path, label: str, change: Any) -> None:
    good = _good_checkpoint(tmp_path)
    dst = tmp_path / f"{label}.npz"
    if isinstance(change, bytes):
        path = _with_meta(good, dst, raw=change)
    elif isinstance(change, dict):
        path = _with_meta(good, dst, {**_meta(good), **change})
    else:
        path = _with_meta(good, dst, change)
    split, model, opt = _tiny()
    before = _snapshot(model)
    with pytest.raises(train.CheckpointError, match=rf"{label}\.npz"):
        train.load_checkpoint(path, model, opt, optim.StepLR(opt, 1))
    with pytest.raises(train.CheckpointError, match=rf"{label}\.npz"):
        train.fit(model, split.train, epochs=3, optimizer=opt, checkpoint=path, resume=True, progress=False)
    _assert_unchanged(model, before)


def test_checkpoint_with_negative_epoch_is_refused_not_trained_longer(tmp_path: Path) -> None:
    good = _good_checkpoint(tmp_path)
    path = _with_meta(good, tmp_path / "minus5.npz", {**_meta(good), "epoch": -5})
    split, model, opt = _tiny()
    with pytest.raises(train.CheckpointError, match=r"minus5\.npz.*epoch is -5, expected an int >= 0"):
        train.fit(model, split.train, epochs=3, optimizer=opt, checkpoint=path, resume=True, progress=False)
    past = _with_meta(good, tmp_path / "past.npz", {**_meta(good), "epoch": 10})
    with pytest.raises(train.CheckpointError, match=r"past\.npz.*epoch 10, past epochs=3"):
        train.fit(model, split.train, epochs=3, optimizer=opt, checkpoint=past, resume=True, progress=False)


def test_random_bytes_are_not_reported_as_pickled(tmp_path: Path) -> None:
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(0).integers(1, 256, 4096, dtype=np.uint8).tobytes())
    _, model, _ = _tiny()
    with pytest.raises(train.CheckpointError, match=r"noise\.npz.*not a valid checkpoint \.npz file") as exc:
        train.load_checkpoint(str(path), model)
    assert "pickle" not in str(exc.value)


def test_resume_from_corrupt_checkpoint_is_one_line_from_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.npz").write_bytes(b"PK\x03\x04 definitely not a zip")
    cmd = [sys.executable, "-m", "convpool.tools.cli", "train", "--model", "mlp", "--data", "digits"]
    done = subprocess.run(
        [*cmd, "--epochs", "1", "--out", str(out), "--resume", "--no-progress"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "checkpoint.npz" in done.stderr and "not a valid checkpoint .npz file" in done.stderr


def _stepped_adam() -> optim.Adam:
    """An Adam optimiser after one step: every parameter has exp_avg, exp_avg_sq and step."""
    _, model, _ = _tiny()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    for p in opt.params:
        p.grad = np.ones_like(p.data)
    opt.step()
    return opt


@pytest.mark.parametrize(
    ("label", "change", "message"),
    [
        ("missing", lambda st: st.pop("exp_avg_sq"), r"parameter 0 .*missing \['exp_avg_sq'\]"),
        ("extra", lambda st: st.update(momentum_buffer=st["exp_avg"]), r"unexpected \['momentum_buffer'\]"),
        ("shape", lambda st: st.update(exp_avg=st["exp_avg"][:1]), r"'exp_avg' of parameter 0 has shape"),
        (
            "step_shape",
            lambda st: st.update(step=np.zeros(2)),
            r"'step' of parameter 0 has shape \(2,\), expected \(\)",
        ),
        (
            "int",
            lambda st: st.update(exp_avg=st["exp_avg"].astype(np.int64)),
            r"'exp_avg' .*dtype int64, expected floats",
        ),
        ("nan", lambda st: st["exp_avg_sq"].fill(np.nan), r"'exp_avg_sq' of parameter 0 holds non-finite"),
        ("negative_step", lambda st: st.update(step=np.array(-1.0)), r"'step' of parameter 0 is -1\.0"),
    ],
)
def test_optimizer_load_state_dict_checks_keys_shapes_and_values_before_assigning(
    label: str, change: Any, message: str
) -> None:
    opt = _stepped_adam()
    assert set(opt.state[0]) == set(optim.Adam.state_keys or ()) == {"exp_avg", "exp_avg_sq", "step"}
    sd = opt.state_dict()
    before = opt.state_dict()
    change(sd["state"][0])
    with pytest.raises(ValueError, match=message):
        opt.load_state_dict(sd)
    for st, was in zip(opt.state, before["state"], strict=True):  # nothing was assigned
        assert st.keys() == was.keys() and all(np.array_equal(st[k], was[k]) for k in st)
    with pytest.raises(ValueError, match=r"'steps' must be an int >= 0"):
        opt.load_state_dict({**before, "steps": -1})
    opt.load_state_dict(before)  # a state it wrote itself, and none at all for a parameter, still load
    opt.load_state_dict({**before, "state": [{} for _ in opt.params]})


def test_checkpoint_with_incomplete_optimizer_state_names_the_key(tmp_path: Path) -> None:
    good = _good_checkpoint(tmp_path)
    arrays = _arrays(good)
    del arrays["optim/1/exp_avg_sq"]
    path = tmp_path / "no_exp_avg_sq.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    _, model, opt = _tiny()
    before, rng_before = _snapshot(model), _random.get_state()
    with pytest.raises(train.CheckpointError, match=r"no_exp_avg_sq\.npz.*parameter 1 .*missing \['exp_avg_sq'\]"):
        train.load_checkpoint(str(path), model, opt)
    _assert_unchanged(model, before)
    assert opt.steps == 0 and all(not st for st in opt.state)
    assert _random.get_state() == rng_before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda good: [1, 2], r"must be a dict, got list"),
        (lambda good: {**good, "bit_generator": "MT19937"}, r"bit_generator 'MT19937', expected 'PCG64'"),
        (lambda good: {**good, "state": "x"}, r"state\['state'\] is 'x'"),
        (
            lambda good: {**good, "state": {**good["state"], "state": -1}},
            r"\['state'\]\['state'\] is -1, expected an int in \[0, 2\*\*128\)",
        ),
        (lambda good: {**good, "state": {**good["state"], "inc": 2}}, r"\['inc'\] is 2, even"),
        (lambda good: {**good, "has_uint32": 5}, r"\['has_uint32'\] is 5"),
        (lambda good: {**good, "uinteger": 1.5}, r"\['uinteger'\] is 1\.5"),
    ],
)
def test_random_set_state_checks_its_input_before_changing_anything(change: Any, message: str) -> None:
    convpool.manual_seed(3)
    good = json.loads(json.dumps(_random.get_state()))  # as a checkpoint holds it
    _random.generator().random(3)  # move on, so that a restore would show
    before = _random.get_state()
    with pytest.raises(ValueError, match=message):
        _random.set_state(change(good))
    assert _random.get_state() == before
    _random.set_state(good)
    assert _random.get_state() == good


# --- 10. BatchNorm, data files and CLI messages ------------------------------------------


def test_batchnorm_momentum_none_is_a_cumulative_average_like_torch() -> None:
    ours = nn.BatchNorm2d(3, momentum=None, dtype=np.float64)
    theirs = torch.nn.BatchNorm2d(3, momentum=None, dtype=torch.float64)
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((4, 3, 5, 5)) * (i + 1) + i for i in range(5)]
    for x in batches:
        np.testing.assert_allclose(ours(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-12, atol=1e-12)
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[k], v.numpy(), rtol=1e-12, atol=1e-12, err_msg=k)
    converted = next(iter(interop.from_torch(torch.nn.Sequential(theirs)).children()))  # None used to fail here
    assert isinstance(converted, nn.BatchNorm2d) and converted.momentum is None
    assert int(converted.num_batches_tracked) == len(batches)
    means = np.stack([x.mean(axis=(0, 2, 3)) for x in batches])
    np.testing.assert_allclose(ours.running_mean, means.mean(axis=0), rtol=1e-12)  # the plain average
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((2, 3, 5, 5))
    np.testing.assert_allclose(ours(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eps": 0}, r"eps must be a positive finite number.*got 0"),
        ({"eps": -1e-5}, r"eps must be .*got -1e-05"),
        ({"eps": float("nan")}, r"eps must be .*got nan"),
        ({"momentum": 1.5}, r"momentum must be a number in \[0, 1\].*got 1\.5"),
        ({"momentum": -0.1}, r"momentum must be .*got -0\.1"),
        ({"momentum": "0.1"}, r"momentum must be .*got '0\.1'"),
    ],
)
def test_batchnorm_eps_zero_and_bad_momentum_are_value_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        nn.BatchNorm2d(3, **kwargs)


def _idx_header(dims: tuple[int, ...]) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)


def test_idx_header_claiming_huge_shape_is_checked_against_the_file(tmp_path: Path) -> None:
    # 2**31 * 2**31 * 4 overflowed NumPy's int64 product to 0 bytes: the check passed and reshape failed
    path = tmp_path / "huge-idx3-ubyte"
    path.write_bytes(_idx_header((2**31, 2**31, 4)))
    with pytest.raises(ValueError, match=rf"huge-idx3-ubyte: header says .*\({2**64} bytes\) but 0 bytes follow"):
        data.read_idx(str(path))
    path.write_bytes(_idx_header((2, 2)) + bytes(5))
    with pytest.raises(ValueError, match=r"huge-idx3-ubyte: .*more than 4 bytes follow"):
        data.read_idx(str(path))


@pytest.mark.parametrize("damage", ["truncated", "flipped", "not_gzip"])
def test_corrupt_gz_idx_file_is_a_value_error_naming_it(tmp_path: Path, damage: str) -> None:
    payload = gzip.compress(_idx_header((50, 20)) + np.random.default_rng(0).bytes(1000))
    if damage == "truncated":
        payload = payload[: len(payload) // 2]
    elif damage == "flipped":
        payload = payload[:30] + bytes(b ^ 0xFF for b in payload[30:60]) + payload[60:]
    else:
        payload = b"\x1f\x8bjunk" + payload[6:]
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=r"labels-idx1-ubyte\.gz"):
        data.read_idx(str(path))


def test_npz_dataset_with_pickles_or_corruption_is_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((2, 4, 4)), y_train=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"d\.npz.*y_train.*pickled"):
        data.load_dataset(f"npz:{path}")


def test_cli_train_out_existing_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "taken"
    file.write_text("mine")
    err = _cli_error(capsys, ["train", "--out", str(file)])
    assert "--out" in err and "taken" in err and "not a folder" in err
    assert file.read_text() == "mine"


def test_cli_filters_image_that_is_not_an_image_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "notanimage.png"
    image.write_text("hello")
    err = _cli_error(capsys, ["filters", "--image", str(image), "--learn", ""])
    assert "notanimage.png" in err and "not a readable image" in err
    err = _cli_error(capsys, ["filters", "--image", str(tmp_path / "missing.png"), "--learn", ""])
    assert "missing.png" in err and "does not exist" in err


def test_cli_invariance_negative_max_shift_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    err = _cli_error(capsys, ["invariance", "--max-shift", "-5"])
    assert "--max-shift" in err and "-5" in err and "int >= 1" in err
    with pytest.raises(ValueError, match=r"max_shift must be an int from 0 to 31, got -5"):
        invariance.measure(max_shift=-5)
    with pytest.raises(ValueError, match=r"learn must name datasets from .*'mnist'.*got \['cifar10'\]"):
        filters.main(learn=("cifar10",), quiet=True)


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--epochs", "0"],
        ["train", "--epochs", "three"],
        ["train", "--batch-size", "-4"],
        ["train", "--seed", "-1"],
        ["train", "--lr", "-0.1"],
        ["train", "--lr", "nan"],
        ["train", "--patience", "0"],
        ["filters", "--epochs", "-2"],
        ["invariance", "--seed", "-3"],
        ["ablate", "--seeds", "0"],
        ["report", "--workers", "0"],
        ["train", "--resume"],
    ],
)
def test_cli_numeric_arguments_are_validated_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    err = _cli_error(capsys, argv)
    if argv[1:] == ["--resume"]:  # nothing to resume from without the run's folder
        assert "--resume" in err and "--out" in err
    else:
        assert f"argument {argv[1]}" in err and argv[2] in err and "expected" in err
