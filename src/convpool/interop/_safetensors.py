"""Weights as safetensors files: ``save_safetensors(model, path)`` and
``load_safetensors(model, path)``.

The keys are the state_dict keys, which are PyTorch's (``"0.weight"``,
``"3.running_mean"``, ``"3.num_batches_tracked"``), so a file written here loads into
the equivalent PyTorch model with
``torch_model.load_state_dict(safetensors.torch.load_file(path))`` and a file
PyTorch wrote (``safetensors.torch.save_file(torch_model.state_dict(), path)``)
loads here.  The format holds raw arrays and a JSON header: nothing is unpickled.
Only the ``safetensors`` package's NumPy API is used; it is imported when called.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .. import __version__
from ..checkpoint import atomic_write
from ..nn.module import Module


def _safetensors_numpy() -> Any:
    try:
        import safetensors.numpy
    except ImportError as exc:
        raise ImportError("safetensors files need the safetensors package: pip install safetensors") from exc
    return safetensors.numpy


def save_safetensors(model: Module, path: str, metadata: dict[str, str] | None = None) -> None:
    """Write ``model.state_dict()`` to ``path`` (atomically: a temporary file renamed).

    ``metadata`` (str to str) goes into the file's header with ``format: pt`` (the
    tag PyTorch-side readers such as transformers look for).

    Example::

        >>> save_safetensors(model, "lenet.safetensors")
        >>> torch_model.load_state_dict(safetensors.torch.load_file("lenet.safetensors"))
    """
    st = _safetensors_numpy()
    if not isinstance(model, Module):
        raise TypeError(f"model must be a convpool Module, got {type(model).__name__}")
    if metadata is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError(f"metadata must map str to str, got {metadata!r}")
    tensors = {k: np.array(v, order="C") for k, v in model.state_dict().items()}  # 0-d stays 0-d
    header = {"format": "pt", "producer": f"convpool {__version__}", **(metadata or {})}
    data = st.save(tensors, metadata=header)
    atomic_write(path, lambda f: f.write(data), ".safetensors")


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """The arrays of a safetensors file, by key; ValueError for a file that is not one."""
    st = _safetensors_numpy()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no safetensors file at {path!r}")
    try:
        return dict(st.load_file(path))
    except Exception as exc:  # SafetensorError, or a dtype NumPy lacks (bfloat16)
        hint = " (bfloat16 has no NumPy dtype: convert it to float32 first)" if "bf16" in str(exc).lower() else ""
        raise ValueError(f"{path!r} is not a safetensors file convpool can read: {exc}{hint}") from exc


def load_safetensors(model: Module, path: str, strict: bool = True) -> None:
    """Load the weights at ``path`` into ``model``, by state_dict key.

    Every entry is checked before anything is assigned: with ``strict`` (default)
    a missing or unexpected key is a ValueError listing them; a shape that differs,
    or a dtype of another kind (an integer count where the model holds floats, say),
    is a ValueError naming the key.  Floats of another precision are converted to the
    model's (as PyTorch's ``load_state_dict`` does).
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a convpool Module, got {type(model).__name__}")
    arrays = read_safetensors(path)
    own = model.state_dict()
    missing = [k for k in own if k not in arrays]
    unexpected = [k for k in arrays if k not in own]
    if strict and (missing or unexpected):
        raise ValueError(
            f"{path!r} does not fit {type(model).__name__}: missing keys {missing}, unexpected keys {unexpected}"
        )
    for key, value in arrays.items():
        if key not in own:
            continue
        want = own[key]
        if value.shape != want.shape:
            raise ValueError(f"{path!r}: {key!r} has shape {value.shape}, the model expects {want.shape}")
        if value.dtype.kind != want.dtype.kind:
            raise ValueError(f"{path!r}: {key!r} has dtype {value.dtype}, the model holds {want.dtype}")
    model.load_state_dict({k: v for k, v in arrays.items() if k in own}, strict=strict)
