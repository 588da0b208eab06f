"""safetensors weights: convpool round trip, exchange with PyTorch both ways, errors."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

pytest.importorskip("safetensors", reason="safetensors files need the safetensors package (test extra)")

import convpool
from convpool import models, nn
from convpool.interop._safetensors import load_safetensors, save_safetensors


def _model(seed: int = 0) -> nn.Sequential:
    """Conv, batch norm (with its integer counter), a learned pool and linear layers."""
    convpool.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 10),
    )


def _train_a_step(model: nn.Module) -> None:
    """Moves the running statistics and the counter away from their initial values."""
    x = np.random.default_rng(0).random((8, 1, 8, 8)).astype(np.float32)
    model.train()
    model(x)


def test_round_trip(tmp_path):  # type: ignore[no-untyped-def]
    model, other = _model(0), _model(1)
    _train_a_step(model)
    path = str(tmp_path / "w.safetensors")
    save_safetensors(model, path, metadata={"note": "test"})
    load_safetensors(other, path)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[key], value)
        assert other.state_dict()[key].dtype == value.dtype
    # the format: 8-byte header length, a JSON header, raw bytes (nothing to unpickle)
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert header["__metadata__"]["format"] == "pt" and header["__metadata__"]["note"] == "test"
    assert header["1.num_batches_tracked"]["dtype"] == "I64" and header["1.num_batches_tracked"]["shape"] == []


def test_exchange_with_pytorch(tmp_path):  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch", reason="the exchange test needs PyTorch")
    import safetensors.torch

    from convpool import interop

    model = _model(0)
    _train_a_step(model)
    model.eval()
    x = np.random.default_rng(1).random((3, 1, 8, 8)).astype(np.float32)
    # convpool -> file -> PyTorch: load_state_dict on the equivalent model from to_torch
    path = str(tmp_path / "convpool.safetensors")
    save_safetensors(model, path)
    torch_model = interop.to_torch(_model(5)).eval()
    torch_model.load_state_dict(safetensors.torch.load_file(path))
    with torch.no_grad():
        np.testing.assert_allclose(torch_model(torch.from_numpy(x)).numpy(), model(x), rtol=1e-5, atol=1e-6)
    assert int(torch_model[1].num_batches_tracked) == 1
    # PyTorch -> file -> convpool
    with torch.no_grad():
        for p in torch_model.parameters():
            p.add_(0.5)
    path = str(tmp_path / "torch.safetensors")
    safetensors.torch.save_file(torch_model.state_dict(), path)
    back = _model(7).eval()
    load_safetensors(back, path)
    with torch.no_grad():
        np.testing.assert_allclose(back(x), torch_model(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)


def test_zoo_round_trip(tmp_path):  # type: ignore[no-untyped-def]
    for pool in models.POOLS:
        convpool.manual_seed(0)
        model = models.lenet5(pool=pool)
        path = str(tmp_path / f"{pool}.safetensors")
        save_safetensors(model, path)
        convpool.manual_seed(1)
        other = models.lenet5(pool=pool)
        load_safetensors(other, path)
        assert all(np.array_equal(other.state_dict()[k], v) for k, v in model.state_dict().items())


def test_errors(tmp_path):  # type: ignore[no-untyped-def]
    from safetensors.numpy import save_file

    model = _model()
    path = str(tmp_path / "w.safetensors")
    state = model.state_dict()
    save_file({k: v for k, v in state.items() if k != "0.bias"} | {"extra": np.zeros(2, np.float32)}, path)
    with pytest.raises(ValueError, match=r"missing keys \['0.bias'\], unexpected keys \['extra'\]"):
        load_safetensors(model, path)
    before = model.state_dict()
    load_safetensors(model, path, strict=False)  # the keys both have are loaded
    np.testing.assert_array_equal(model.state_dict()["0.bias"], before["0.bias"])
    save_file({**state, "5.weight": np.zeros((10, 63), np.float32)}, path)
    with pytest.raises(ValueError, match=r"'5.weight' has shape \(10, 63\), the model expects \(10, 64\)"):
        load_safetensors(model, path)
    save_file({**state, "0.weight": state["0.weight"].astype(np.int32)}, path)
    with pytest.raises(ValueError, match=r"'0.weight' has dtype int32, the model holds float32"):
        load_safetensors(model, path)
    save_file({**state, "0.weight": state["0.weight"].astype(np.float64)}, path)
    load_safetensors(model, path)  # another float precision: converted, as in PyTorch
    assert model.state_dict()["0.weight"].dtype == np.float32
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    with pytest.raises(ValueError, match=r"is not a safetensors file convpool can read"):
        load_safetensors(model, str(tmp_path / "junk.safetensors"))
    with pytest.raises(FileNotFoundError, match=r"no safetensors file at"):
        load_safetensors(model, str(tmp_path / "none.safetensors"))
    with pytest.raises(TypeError, match=r"model must be a convpool Module, got dict"):
        save_safetensors({}, path)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"metadata must map str to str"):
        save_safetensors(model, path, metadata={"epoch": 3})  # type: ignore[dict-item]
