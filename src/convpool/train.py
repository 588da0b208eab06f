"""Training: ``fit`` / ``evaluate`` and the standard recipe.

With ``checkpoint`` set, ``fit`` writes a checkpoint (:mod:`convpool.checkpoint`)
at the end of every epoch with the model, optimiser, schedule and
random-generator state, so resuming after an interruption gives the same
weights as an uninterrupted run with the same seed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .checkpoint import FORMAT as FORMAT
from .checkpoint import VERSION as VERSION
from .checkpoint import CheckpointError as CheckpointError
from .checkpoint import _is_int, _restore, _resume_point, atomic_write, read_checkpoint, save_checkpoint
from .checkpoint import load_checkpoint as load_checkpoint
from .data import DataLoader, Dataset
from .losses import CrossEntropyLoss, _Loss
from .nn.module import Module
from .optim import CosineAnnealingLR, Optimizer, _Schedule


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


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


def _recipe(model: Module, optimizer: str, lr: float, weight_decay: float, epochs: int) -> tuple[Optimizer, _Schedule]:
    """The standard recipe's optimiser on ``model`` and its cosine schedule over ``epochs``."""
    opt = make_optimizer(optimizer, model.parameters(), lr, weight_decay)
    return opt, CosineAnnealingLR(opt, epochs)


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
    opt, sched = _recipe(model, optimizer, lr, weight_decay, epochs)
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
    return hist, _final(model, test, hist, t0, out_dir)


def _final(
    model: Module, test: Dataset, hist: History, t0: float, out_dir: str | None, info: dict[str, Any] | None = None
) -> dict[str, float]:
    """The final test metrics and times (``t0``: the run's start); with ``out_dir``, the
    history, these and ``info`` into ``OUT/history.json``."""
    test_loss, test_acc = evaluate(model, test)
    final = {
        "test_loss": test_loss,
        "test_acc": test_acc,
        "train_time": sum(e["time"] for e in hist.epochs),
        "wall_time": time.perf_counter() - t0,
    }
    if out_dir:
        record = {"epochs": hist.epochs, "final": final, "resumed_from": hist.resumed_from, **(info or {})}
        text = json.dumps(record, indent=1).encode()
        atomic_write(os.path.join(out_dir, "history.json"), lambda f: f.write(text), ".json")
    return final
