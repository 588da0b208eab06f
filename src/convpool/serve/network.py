"""The network view: LeNet-5 (:func:`convpool.models.lenet5`) on MNIST, one model per pooling variant.

Each variant (max, average, max-plus pooling) is loaded from a checkpoint in
the cache folder (:mod:`convpool.checkpoint`: checked before use).  A missing or
unusable one is trained on first start, in a background thread, with
convpool's own training loop (:func:`convpool.train.fit`): a few thousand MNIST
images, one epoch, seconds per variant, progress printed.  The cache folder is
``--cache-dir``, else ``$CONVPOOL_CACHE_DIR``, else ``$XDG_CACHE_HOME/convpool``
(``~/.cache/convpool``), with the checkpoints under ``serve/``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import numpy as np

VARIANTS = ("max", "avg", "maxplus")
TRAIN_IMAGES = 5000
TEST_IMAGES = 1000
EPOCHS = 1
BATCH_SIZE = 32
LR = 3e-3


class NotReady(Exception):
    """The variant asked for has no trained model yet (training, or MNIST missing)."""


def default_cache_dir() -> str:
    """``$CONVPOOL_CACHE_DIR``, else ``$XDG_CACHE_HOME/convpool``, else ``~/.cache/convpool``."""
    if os.environ.get("CONVPOOL_CACHE_DIR"):
        return os.environ["CONVPOOL_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "convpool")


def checkpoint_path(cache_dir: str, pool: str) -> str:
    return os.path.join(cache_dir, "serve", f"lenet5-{pool}-mnist.npz")


def build(pool: str) -> Any:
    from .. import models

    return models.lenet5(1, 10, 28, pool=pool)


class NetworkService:
    """The models of the network view: loading, training on first start, forward passes."""

    def __init__(
        self,
        cache_dir: str | None = None,
        *,
        train_images: int = TRAIN_IMAGES,
        variants: tuple[str, ...] = VARIANTS,
        log: Any = print,
    ):
        self.cache_dir = os.path.abspath(cache_dir or default_cache_dir())
        self.train_images = train_images
        self.variants = variants
        self.log = log
        self.models: dict[str, Any] = {}
        self.info: dict[str, dict[str, Any]] = {v: {"state": "waiting"} for v in variants}
        self.message = "not started"
        self.unavailable = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # --- loading and training ----------------------------------------------------------------

    def start(self) -> None:
        """Load (or train) every variant in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._prepare, name="convpool-serve-network", daemon=True)
            self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every variant is loaded or trained (tests); True when done."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is not None and not self._thread.is_alive()

    def _set(self, pool: str, **info: Any) -> None:
        with self._lock:
            self.info[pool] = {**self.info[pool], **info}

    def _prepare(self) -> None:
        try:
            missing = [v for v in self.variants if not self._load(v)]
            if missing:
                self._train(missing)
            self.message = "ready"
        except Exception as exc:  # reported on the page and the console, never a crash of the server
            self.message = f"the network view is unavailable: {exc}"
            self.unavailable = True
            self.log(f"convpool serve: {self.message}")
            for v in self.variants:
                if v not in self.models:
                    self._set(v, state="unavailable")

    def _load(self, pool: str) -> bool:
        from ..checkpoint import CheckpointError, load_checkpoint

        path = checkpoint_path(self.cache_dir, pool)
        if not os.path.exists(path):
            return False
        model = build(pool)
        try:
            meta = load_checkpoint(path, model)
        except CheckpointError as exc:
            self.log(f"convpool serve: {exc}; training it again")
            return False
        history = meta.get("history") or [{}]
        model.eval()
        with self._lock:
            self.models[pool] = model
        self._set(pool, state="ready", checkpoint=path, test_accuracy=history[-1].get("val_acc"))
        self.log(f"convpool serve: LeNet-5 with {pool} pooling loaded from {path}")
        return True

    def _train(self, pools: list[str]) -> None:
        from .. import _random, data, optim, train

        self.message = "loading MNIST"
        split = data.load_mnist(n_train=self.train_images, n_test=TEST_IMAGES)
        for i, pool in enumerate(pools):
            self.message = f"training {i + 1} of {len(pools)}: LeNet-5 with {pool} pooling"
            self._set(pool, state="training")
            self.log(
                f"convpool serve: no checkpoint for LeNet-5 with {pool} pooling: training it on "
                f"{len(split.train):,} MNIST images, {EPOCHS} epoch ({i + 1} of {len(pools)})",
            )
            _random.manual_seed(0)
            model = build(pool)
            path = checkpoint_path(self.cache_dir, pool)
            t0 = time.perf_counter()
            hist = train.fit(
                model,
                split.train,
                val=split.test,
                epochs=EPOCHS,
                optimizer=optim.AdamW(model.parameters(), lr=LR),
                batch_size=BATCH_SIZE,
                checkpoint=path,
                progress=True,
            )
            acc = hist.last.get("val_acc")
            model.eval()
            with self._lock:
                self.models[pool] = model
            self._set(pool, state="ready", checkpoint=path, test_accuracy=acc)
            self.log(
                f"convpool serve: trained in {time.perf_counter() - t0:.1f} s, test accuracy {acc:.3f} "
                f"({TEST_IMAGES:,} MNIST test images); saved {path}"
            )

    # --- the view --------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self._lock:
            variants = {k: dict(v) for k, v in self.info.items()}
        if self.unavailable:
            state = "unavailable"
        elif all(v["state"] == "ready" for v in variants.values()):
            state = "ready"
        else:
            state = "training"
        return {"state": state, "message": self.message, "variants": variants, "cache_dir": self.cache_dir}

    def forward(self, image: list[list[float]], pool: str) -> dict[str, Any]:
        """Every layer's output for one 28x28 image, and the class probabilities."""
        with self._lock:
            model = self.models.get(pool)
        if model is None:
            raise NotReady(f"LeNet-5 with {pool} pooling is not ready: {self.message}")
        x = np.asarray(image, dtype=np.float32)[None, None]
        layers = []
        for name, m in model.named_children():
            x = m(x)
            y = np.asarray(x[0], dtype=np.float64)
            layer: dict[str, Any] = {
                "name": f"{name}: {type(m).__name__}",
                "shape": list(y.shape),
                "min": float(y.min()),
                "max": float(y.max()),
            }
            layer["maps" if y.ndim == 3 else "values"] = y.tolist()
            layers.append(layer)
        logits = np.asarray(x[0], dtype=np.float64)
        e = np.exp(logits - logits.max())
        probs = e / e.sum()
        with self._lock:
            acc = self.info[pool].get("test_accuracy")
        return {
            "pool": pool,
            "prediction": int(np.argmax(probs)),
            "probabilities": probs.tolist(),
            "layers": layers,
            "test_accuracy": acc,
        }
