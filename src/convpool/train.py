"""Training: ``fit`` / ``evaluate`` and safe checkpoints.

Checkpoints are ``.npz`` files loaded with ``allow_pickle=False`` (a checkpoint
from a stranger cannot run code), written atomically (temp file, fsync,
rename, fsync of the folder) so a crash or kill never leaves a half-written
file.  One is written at the end of every epoch with the model, optimiser,
schedule and random-generator state, so resuming after an interruption gives
the same weights as an uninterrupted run with the same seed.
"""

from __future__ import annotations

import json
import math
import os
import reprlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _random
from .data import DataLoader, Dataset, read_npz
from .losses import CrossEntropyLoss, _Loss
from .nn.module import Module
from .optim import Optimizer, _Schedule

FORMAT = "convpool-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, unsafe or does not fit the model."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


# --- checkpoints --------------------------------------------------------------------------


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
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
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
    bit_generator = type(_random.generator().bit_generator)
    if "rng" not in meta:
        raise CheckpointError(f"{path!r} has no random-generator state ('rng' is missing from its metadata)")
    try:  # on a spare generator: the real one is set only once everything has been checked
        bit_generator().state = meta["rng"]
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise CheckpointError(
            f"{path!r} has invalid metadata: rng is {reprlib.repr(meta['rng'])}, "
            f"expected the state of a {bit_generator.__name__} generator ({exc})"
        ) from exc


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


# Each optimiser's per-parameter state: all of these keys or none (before its first step).
_OPTIMIZER_STATE = {
    "SGD": {"momentum_buffer"},
    "Adam": {"exp_avg", "exp_avg_sq", "step"},
    "AdamW": {"exp_avg", "exp_avg_sq", "step"},
}


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
    """The optimiser's state dict, checked against ``opt`` (type, parameters, shapes, keys)."""
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
        shape = () if name == "step" else opt.params[i].shape
        if value.shape != shape:
            raise CheckpointError(f"{path!r}: optimizer array {key!r} has shape {value.shape}, expected {shape}")
        if value.dtype.kind != "f" or not np.isfinite(value).all() or (name == "step" and value < 0):
            raise CheckpointError(f"{path!r}: optimizer array {key!r} must hold finite floats (steps >= 0)")
        per[i][name] = value
    keys = _OPTIMIZER_STATE.get(info["type"])
    for i, st in enumerate(per):
        if keys is not None and st and set(st) != keys:
            raise CheckpointError(
                f"{path!r}: the {info['type']} state of parameter {i} has {sorted(st)}, expected {sorted(keys)}"
            )
    return {"lr": info["lr"], "steps": info["steps"], "state": per}


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


# --- evaluation and training ------------------------------------------------------------


def evaluate(model: Module, data: Dataset, batch_size: int = 512, loss_fn: _Loss | None = None) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` (in eval mode) on ``data``."""
    loss_fn = loss_fn or CrossEntropyLoss()
    was = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for x, y in DataLoader(data, batch_size):
        out = model(x)
        total_loss += loss_fn(out, y) * len(y)
        correct += int((out.argmax(axis=1) == y).sum())
    model.train(was)
    n = max(len(data), 1)
    return total_loss / n, correct / n


def predict(model: Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Class predictions of ``model`` in eval mode."""
    was = model.training
    model.eval()
    out = [model(x[i : i + batch_size]).argmax(axis=1) for i in range(0, len(x), batch_size)]
    model.train(was)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


@dataclass
class History:
    epochs: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    resumed_from: int = 0

    @property
    def last(self) -> dict[str, float]:
        return self.epochs[-1] if self.epochs else {}


def _progress(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with the lab extra
        return None
    return tqdm(total=total, desc=desc, leave=False, unit="batch", dynamic_ncols=True)


def fit(
    model: Module,
    train: Dataset,
    *,
    epochs: int,
    optimizer: Optimizer,
    val: Dataset | None = None,
    loss_fn: _Loss | None = None,
    batch_size: int = 64,
    scheduler: _Schedule | None = None,
    checkpoint: str | None = None,
    resume: bool = False,
    patience: int | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> History:
    """Train for ``epochs`` epochs; returns the per-epoch history.

    With ``checkpoint`` a checkpoint is written after every epoch; with
    ``resume`` training continues from it (if it exists).  ``patience``
    stops when the validation loss has not improved for that many epochs.
    A NaN/inf loss raises :class:`TrainingDiverged` and leaves the last good
    checkpoint untouched.
    """
    if not _is_int(epochs) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if patience is not None and not (_is_int(patience) and patience >= 1):
        raise ValueError(f"patience must be a positive int or None, got {patience!r}")
    loss_fn = loss_fn or CrossEntropyLoss()
    history = History()
    start = 0
    if resume and checkpoint and os.path.exists(checkpoint):
        arrays, meta = read_checkpoint(checkpoint)
        start = _resume_point(checkpoint, meta, epochs, patience is not None and val is not None)
        _restore(checkpoint, arrays, meta, model, optimizer, scheduler)
        history.epochs = list(meta.get("history", []))
        history.resumed_from = start
    loader = DataLoader(train, batch_size, shuffle=True)
    for epoch in range(start + 1, epochs + 1):
        model.train()
        t0 = time.perf_counter()
        bar = _progress(len(loader), f"epoch {epoch}/{epochs}", progress)
        total, correct, seen = 0.0, 0, 0
        for b, (x, y) in enumerate(loader):
            optimizer.zero_grad()
            out = model(x)
            loss = loss_fn(out, y)
            if not np.isfinite(loss):
                if bar is not None:
                    bar.close()
                if checkpoint and epoch > 1:
                    kept = f"the last good checkpoint (epoch {epoch - 1}) is kept at {checkpoint!r}"
                else:
                    kept = "no checkpoint was written"
                raise TrainingDiverged(
                    f"loss became {loss} at epoch {epoch}, batch {b}; {kept}. Try a lower learning rate."
                )
            model.backward_params(loss_fn.backward())  # the data need no gradient
            optimizer.step()
            total += loss * len(y)
            correct += int((out.argmax(axis=1) == y).sum())
            seen += len(y)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total / seen:.4f}", acc=f"{correct / seen:.3f}")
        if bar is not None:
            bar.close()
        record = {
            "epoch": epoch,
            "lr": optimizer.lr,
            "train_loss": total / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "time": time.perf_counter() - t0,
        }
        if scheduler is not None:
            scheduler.step()
        if val is not None:
            record["val_loss"], record["val_acc"] = evaluate(model, val, loss_fn=loss_fn)
        history.epochs.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if checkpoint:
            save_checkpoint(checkpoint, model, optimizer, scheduler, {"epoch": epoch, "history": history.epochs})
        if patience is not None and val is not None and _epochs_since_best(history.epochs) >= patience:
            history.stopped_early = True
            break
    return history


def _epochs_since_best(epochs: list[dict[str, float]]) -> int:
    """Epochs since the (first) lowest validation loss; derived from the history, so a
    resumed run stops exactly where an uninterrupted one would."""
    losses = [e["val_loss"] for e in epochs]
    return len(losses) - 1 - int(np.argmin(losses))


# --- the standard recipe ------------------------------------------------------------------


def make_optimizer(name: str, params: list, lr: float, weight_decay: float) -> Optimizer:
    from . import optim

    if name == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'adamw', 'adam' or 'sgd', got {name!r}")


def train_classifier(
    model: Module,
    train: Dataset,
    test: Dataset,
    *,
    epochs: int = 30,
    lr: float = 3e-3,
    batch_size: int = 32,
    optimizer: str = "adamw",
    weight_decay: float = 1e-2,
    out_dir: str | None = None,
    resume: bool = False,
    patience: int | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> tuple[History, dict[str, float]]:
    """convpool's default recipe: AdamW, cosine schedule, checkpoint per epoch.

    Returns the history and the final test metrics (loss, accuracy, time).
    """
    from .optim import CosineAnnealingLR

    opt = make_optimizer(optimizer, model.parameters(), lr, weight_decay)
    sched = CosineAnnealingLR(opt, epochs)
    ckpt = os.path.join(out_dir, "checkpoint.npz") if out_dir else None
    t0 = time.perf_counter()
    hist = fit(
        model,
        train,
        epochs=epochs,
        optimizer=opt,
        val=test,
        batch_size=batch_size,
        scheduler=sched,
        checkpoint=ckpt,
        resume=resume,
        patience=patience,
        progress=progress,
        on_epoch=on_epoch,
    )
    test_loss, test_acc = evaluate(model, test)
    final = {
        "test_loss": test_loss,
        "test_acc": test_acc,
        "train_time": sum(e["time"] for e in hist.epochs),
        "wall_time": time.perf_counter() - t0,
    }
    if out_dir:
        with open(os.path.join(out_dir, "history.json"), "w") as f:
            json.dump({"epochs": hist.epochs, "final": final, "resumed_from": hist.resumed_from}, f, indent=1)
    return hist, final
