"""Safe checkpoints: ``save_checkpoint`` / ``read_checkpoint`` / ``load_checkpoint``.

Checkpoints are ``.npz`` files loaded with ``allow_pickle=False`` (a checkpoint
from a stranger cannot run code), written atomically (temp file, fsync,
rename, fsync of the folder) so a crash or kill never leaves a half-written
file.  They hold the model, optimiser, schedule and random-generator state.
Nothing read back is trusted: every array and metadata field is checked, and
everything is checked before anything is assigned.
"""

from __future__ import annotations

import json
import math
import os
import reprlib
import secrets
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from . import _random
from .data import read_npz
from .nn.module import Module
from .optim import Optimizer, _Schedule

FORMAT = "convpool-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, unsafe or does not fit the model."""


def save_checkpoint(
    path: str,
    model: Module,
    optimizer: Optimizer | None = None,
    scheduler: _Schedule | None = None,
    meta: dict[str, Any] | None = None,
) -> None:
    """Write model (+ optimiser, schedule, RNG) state to ``path`` atomically."""
    arrays: dict[str, np.ndarray] = {f"model/{k}": v for k, v in model.state_dict().items()}
    info: dict[str, Any] = {"format": FORMAT, "version": VERSION, "rng": _random.get_state(), **(meta or {})}
    if optimizer is not None:
        sd = optimizer.state_dict()
        for i, st in enumerate(sd["state"]):
            for k, v in st.items():
                arrays[f"optim/{i}/{k}"] = v
        info["optimizer"] = {"type": type(optimizer).__name__, "lr": sd["lr"], "steps": sd["steps"]}
    if scheduler is not None:
        info["scheduler"] = scheduler.state_dict()
    arrays["meta"] = np.frombuffer(json.dumps(info).encode(), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays), ".npz")  # type: ignore[arg-type]


def atomic_write(path: str, write: Callable[[IO[bytes]], Any], suffix: str = "") -> None:
    """``write(f)`` into a temporary file beside ``path``, flushed to disk, then renamed
    over ``path`` (and the folder synced): a crash leaves the old file or the new one,
    never half of either, and no temporary file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # os.open with mode 0o666, not mkstemp (0o600): the file gets the permissions the
    # umask gives any new file, as open() would
    tmp = os.path.join(folder, f".tmp-{secrets.token_hex(8)}{suffix}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _count(v: Any) -> bool:
    return _is_int(v) and v >= 0


def _rate(v: Any) -> bool:
    return (_is_int(v) or (isinstance(v, float) and math.isfinite(v))) and v >= 0


def _records(v: Any) -> bool:
    numbers = (int, float)
    return isinstance(v, list) and all(
        isinstance(e, dict) and all(isinstance(x, numbers) and not isinstance(x, bool) for x in e.values()) for e in v
    )


# Metadata fields a loader uses: "group.key" is checked when the group is present.
_META_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epoch": (_count, "an int >= 0"),
    "history": (_records, "a list of records of numbers"),
    "optimizer.type": (lambda v: isinstance(v, str), "the optimizer's class name"),
    "optimizer.lr": (_rate, "a finite number >= 0"),
    "optimizer.steps": (_count, "an int >= 0"),
    "scheduler.base_lr": (_rate, "a finite number >= 0"),
    "scheduler.last_epoch": (_count, "an int >= 0"),
}


def _check_meta(path: str, meta: dict[str, Any]) -> None:
    """Types and ranges of every metadata field a loader uses."""
    for name, (ok, expected) in _META_FIELDS.items():
        group, _, key = name.rpartition(".")
        if group and group not in meta:
            continue  # optional groups: each loader asks for the ones it needs
        holder = meta[group] if group else meta
        if not isinstance(holder, dict):
            raise CheckpointError(f"{path!r} has invalid metadata: {group} is {reprlib.repr(holder)}, not a record")
        if (key in holder and not ok(holder[key])) or (group and key not in holder):
            value = reprlib.repr(holder[key]) if key in holder else "missing"
            raise CheckpointError(f"{path!r} has invalid metadata: {name} is {value}, expected {expected}")
    if "rng" not in meta:
        raise CheckpointError(f"{path!r} has no random-generator state ('rng' is missing from its metadata)")
    try:  # checked only: the generator is set once everything has been checked
        _random.check_state(meta["rng"])
    except ValueError as exc:
        raise CheckpointError(f"{path!r} has invalid metadata: rng is {reprlib.repr(meta['rng'])} ({exc})") from exc


def read_checkpoint(path: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays and metadata of a checkpoint; CheckpointError if it is not a valid one.

    Nothing in the file is trusted: the arrays are read by :func:`data.read_npz`
    (no pickles, numeric arrays only, every header checked against the bytes
    really there before allocating) and every metadata field is type-checked.
    """
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint at {path!r}")
    try:
        arrays = read_npz(path, "checkpoint .npz")
    except ValueError as exc:
        raise CheckpointError(str(exc)) from exc
    raw = arrays.pop("meta", None)
    if raw is None:
        raise CheckpointError(f"{path!r} has no metadata: not a convpool checkpoint")
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError(f"an array of {raw.dtype} with shape {raw.shape}, not JSON bytes")
        meta = json.loads(raw.tobytes().decode())
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CheckpointError(f"{path!r} has corrupt metadata ({exc})") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path!r} has corrupt metadata: a JSON {type(meta).__name__}, not an object")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not a convpool checkpoint (format {reprlib.repr(meta.get('format'))})")
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"{path!r} has checkpoint version {reprlib.repr(meta.get('version'))}; this convpool reads version {VERSION}"
        )
    other = [k for k in arrays if not k.startswith(("model/", "optim/"))]
    if other:
        raise CheckpointError(f"{path!r} has unexpected arrays {other}: not a convpool checkpoint")
    _check_meta(path, meta)
    return arrays, meta


def _check_values(path: str, state: dict[str, np.ndarray], model: Module) -> None:
    """The model's arrays hold values its parameters and buffers can take: finite
    floats, counts >= 0 (keys and shapes are checked by ``load_state_dict``)."""
    own = model.state_dict()
    for key, value in state.items():
        want = own.get(key, value).dtype
        with np.errstate(over="ignore"):
            cast = value.astype(want)
        fits = np.can_cast(value.dtype, want, "same_kind") and bool(np.isfinite(cast).all())
        if not fits or (want.kind in "iu" and (cast < 0).any()):
            raise CheckpointError(
                f"{path!r}: model/{key} holds values of {value.dtype} that do not fit its {want} "
                "(non-finite, fractional or negative counts)"
            )


def _optimizer_state(path: str, arrays: dict[str, np.ndarray], meta: dict[str, Any], opt: Optimizer) -> dict:
    """The optimiser's state dict, checked against ``opt``: its type and parameter count here,
    keys (its ``state_keys``), shapes, dtypes and values by ``opt.check_state_dict``."""
    info = meta.get("optimizer")
    if info is None:
        raise CheckpointError(f"{path!r} holds no optimizer state")
    if info["type"] != type(opt).__name__:
        raise CheckpointError(f"{path!r} was written with {info['type']}, not {type(opt).__name__}")
    per: list[dict[str, np.ndarray]] = [{} for _ in opt.params]
    for key, value in arrays.items():
        if not key.startswith("optim/"):
            continue
        index, _, name = key[len("optim/") :].partition("/")
        if not (index.isascii() and index.isdigit() and name):
            raise CheckpointError(f"{path!r} has a malformed optimizer array name {key!r}")
        i = int(index)
        if i >= len(per):
            raise CheckpointError(
                f"{path!r} has optimizer state for more parameters than this model ({key!r}, {len(per)} parameters)"
            )
        per[i][name] = value
    state = {"lr": info["lr"], "steps": info["steps"], "state": per}
    try:
        opt.check_state_dict(state)
    except ValueError as exc:
        raise CheckpointError(f"{path!r} has invalid optimizer state: {exc}") from exc
    return state


def _restore(
    path: str,
    arrays: dict[str, np.ndarray],
    meta: dict[str, Any],
    model: Module,
    optimizer: Optimizer | None,
    scheduler: _Schedule | None,
) -> None:
    """Check that everything fits first, then assign it: nothing changes on an error."""
    state = {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
    _check_values(path, state, model)
    optim_state = _optimizer_state(path, arrays, meta, optimizer) if optimizer is not None else None
    if scheduler is not None and "scheduler" not in meta:
        raise CheckpointError(f"{path!r} holds no learning-rate schedule state")
    try:  # the first change; load_state_dict checks keys and shapes before it assigns anything
        model.load_state_dict(state)
    except ValueError as exc:
        raise CheckpointError(f"{path!r} does not fit this model: {exc}") from exc
    if optimizer is not None and optim_state is not None:
        optimizer.load_state_dict(optim_state)
    if scheduler is not None:
        scheduler.load_state_dict(meta["scheduler"])
    _random.set_state(meta["rng"])


def load_checkpoint(
    path: str, model: Module, optimizer: Optimizer | None = None, scheduler: _Schedule | None = None
) -> dict[str, Any]:
    """Restore what :func:`save_checkpoint` wrote; returns the metadata.

    The model must have the same architecture: a missing or extra key or a
    shape mismatch is a CheckpointError naming it.  The RNG state is restored.
    Everything is checked before anything is assigned, so on an error the
    model, optimiser, schedule and generator are left as they were.
    """
    arrays, meta = read_checkpoint(path)
    _restore(path, arrays, meta, model, optimizer, scheduler)
    return meta


def _resume_point(path: str, meta: dict[str, Any], epochs: int, need_val_loss: bool) -> int:
    """The epoch a run resumes after, checked against its history and ``epochs``."""
    if "epoch" not in meta:
        raise CheckpointError(f"{path!r} records no epoch: it was not written by fit, so training cannot resume")
    start: int = meta["epoch"]
    if start > epochs:
        raise CheckpointError(
            f"{path!r} is at epoch {start}, past epochs={epochs}: ask for at least {start} epochs or start a new run"
        )
    history = meta.get("history", [])
    if [e.get("epoch") for e in history] != list(range(1, start + 1)):
        raise CheckpointError(f"{path!r} has invalid metadata: its history does not list epochs 1..{start}")
    if need_val_loss and not all("val_loss" in e for e in history):
        raise CheckpointError(f"{path!r} has a history without validation losses: patience cannot resume from it")
    return start
