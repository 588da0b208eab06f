"""Training on PyTorch's engine: ``train_torch`` (``convpool train --engine torch``).

The convpool model becomes its PyTorch twin (:func:`~._torch.to_torch`) and trains with
``torch.distributed`` DistributedDataParallel in ``nproc`` processes per machine
(``torch.multiprocessing.spawn``), on ``nnodes`` machines with torchrun's conventions
(``node_rank``, ``master_addr``, ``master_port``): gloo on CPUs, NCCL where every
process has a GPU.  Everything else is convpool's recipe (:func:`convpool.train.
train_classifier`), so the two engines are interchangeable:

* the same global batches: each epoch's order is a permutation from convpool's
  generator, as :class:`convpool.data.DataLoader` draws it; each process takes a
  contiguous share of every batch, and its summed loss is scaled by
  ``world_size / global_batch`` so that DDP's gradient average is the gradient of the
  global batch's mean loss (shares of unequal size included);
* the same optimiser (AdamW, Adam or SGD with PyTorch's arithmetic, which convpool's
  follows), cosine schedule per epoch (convpool's formula), seed handling and
  ``patience``;
* the usual convpool checkpoint after every epoch (model, optimiser state converted
  to convpool's, schedule, convpool's generator) and ``history.json``: a run resumes
  from either engine's checkpoint, on either engine.

The weights come back into the convpool model by state_dict key (what
:func:`~._torch.from_torch` copies), so the model keeps its own layer classes.
PyTorch stays optional: it is imported only here.
"""

from __future__ import annotations

import math
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _random
from ..checkpoint import _restore, _resume_point, load_checkpoint, read_checkpoint, save_checkpoint
from ..data import Dataset
from ..nn.module import Module
from ..train import History, _epochs_since_best, _final, _recipe


def _torch() -> Any:
    try:
        import torch
        import torch.distributed
    except ImportError as exc:
        raise ImportError(
            "training with --engine torch needs PyTorch: pip install torch "
            "(CPU only: pip install torch --index-url https://download.pytorch.org/whl/cpu)"
        ) from exc
    return torch


@dataclass
class _Run:
    """What every process needs (pickled to each by spawn)."""

    model: Module
    train: Dataset
    test: Dataset
    epochs: int
    lr: float
    batch_size: int
    optimizer: str
    weight_decay: float
    patience: int | None
    checkpoint: str | None  # written by global rank 0
    nproc: int
    nnodes: int
    node_rank: int
    master_addr: str
    master_port: int
    backend: str
    log: bool
    # the starting point (rank 0's is broadcast to every process)
    start: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    optim_state: dict[str, Any] | None = None
    rng_state: dict[str, Any] | None = None


def _cosine(base_lr: float, epoch: int, epochs: int) -> float:
    """convpool's CosineAnnealingLR (eta_min 0) after ``epoch`` epochs."""
    return base_lr * (1 + math.cos(math.pi * epoch / epochs)) / 2


def _torch_optimizer(torch: Any, name: str, params: list, lr: float, weight_decay: float) -> Any:
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)


def _load_optim_state(torch: Any, opt: Any, params: list, state: dict[str, Any] | None, device: Any) -> None:
    """convpool's optimiser state (per parameter, in order) into the torch optimiser."""
    if state is None:
        return
    for p, st in zip(params, state["state"], strict=True):
        if not st:
            continue
        moved = {}
        for k, v in st.items():
            if k == "step":  # PyTorch keeps the count as a float32 tensor on the CPU
                moved[k] = torch.tensor(float(np.asarray(v)), dtype=torch.float32)
            else:
                moved[k] = torch.as_tensor(np.asarray(v), dtype=p.dtype).to(device)
        opt.state[p] = moved


def _convpool_optim_state(opt: Any, params: list, lr: float, steps: int) -> dict[str, Any]:
    """The torch optimiser's state as convpool's optimiser state dict."""
    per: list[dict[str, np.ndarray]] = []
    for p in params:
        st = {k: np.asarray(v.detach().cpu().numpy()) for k, v in opt.state[p].items()} if p in opt.state else {}
        if "step" in st:
            st["step"] = np.asarray(float(st["step"]))
        per.append(st)
    return {"lr": lr, "steps": steps, "state": per}


def _save(run: _Run, model: Module, tmodel: Any, opt: Any, params: list, epoch: int, steps: int) -> None:
    """The usual convpool checkpoint (atomic), written by global rank 0."""
    assert run.checkpoint is not None
    model.load_state_dict({k: v.detach().cpu().numpy() for k, v in tmodel.state_dict().items()})
    cp_opt, sched = _recipe(model, run.optimizer, run.lr, run.weight_decay, run.epochs)
    cp_opt.load_state_dict(_convpool_optim_state(opt, params, _cosine(run.lr, epoch, run.epochs), steps))
    sched.load_state_dict({"base_lr": run.lr, "last_epoch": epoch})
    save_checkpoint(run.checkpoint, model, cp_opt, sched, {"epoch": epoch, "history": run.history})


def _worker(local_rank: int, run: _Run) -> None:
    """One process: set up the group, take rank 0's starting point, train, checkpoint."""
    torch = _torch()
    if "OMP_NUM_THREADS" not in os.environ:  # the cores shared among this machine's processes
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // run.nproc))
    dist = torch.distributed
    rank, world = run.node_rank * run.nproc + local_rank, run.nnodes * run.nproc
    if world > 1:
        dist.init_process_group(
            run.backend, init_method=f"tcp://{run.master_addr}:{run.master_port}", rank=rank, world_size=world
        )
    try:
        _train(torch, run, rank, world, local_rank)
    finally:
        if world > 1:
            dist.destroy_process_group()


def _train(torch: Any, run: _Run, rank: int, world: int, local_rank: int) -> None:
    from ._torch import to_torch

    dist = torch.distributed
    device = torch.device(f"cuda:{local_rank}" if run.backend == "nccl" else "cpu")
    start: list[Any] = [run.model.state_dict(), run.optim_state, run.rng_state, run.start, run.history]
    if world > 1:  # every process starts where global rank 0 does (weights, optimiser, generator)
        dist.broadcast_object_list(start, src=0)
    state, optim_state, rng_state, first, history = start
    run.model.load_state_dict(state)
    if rng_state is not None:
        _random.set_state(rng_state)
    run.history = list(history)
    tmodel = to_torch(run.model).to(device)
    tmodel.train()
    dtype = next(tmodel.parameters()).dtype
    net = torch.nn.parallel.DistributedDataParallel(tmodel) if world > 1 else tmodel
    params = list(tmodel.parameters())
    opt = _torch_optimizer(torch, run.optimizer, params, run.lr, run.weight_decay)
    _load_optim_state(torch, opt, params, optim_state, device)
    n, b = len(run.train), run.batch_size
    batches = -(-n // b)
    steps = first * batches
    for epoch in range(first + 1, run.epochs + 1):
        t0 = time.perf_counter()
        lr = _cosine(run.lr, epoch - 1, run.epochs)
        for group in opt.param_groups:
            group["lr"] = lr
        order = _random.generator().permutation(n)  # convpool's DataLoader(shuffle=True)
        totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, seen
        for i in range(batches):
            batch = order[i * b : (i + 1) * b]
            share = np.array_split(batch, world)[rank]
            x, y = run.train[share]
            xt = torch.from_numpy(np.ascontiguousarray(x)).to(device=device, dtype=dtype)
            yt = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
            out = net(xt)
            loss_sum = torch.nn.functional.cross_entropy(out, yt, reduction="sum")
            (loss_sum * (world / len(batch))).backward()  # DDP averages: the global batch's mean
            opt.step()
            opt.zero_grad(set_to_none=True)
            steps += 1
            with torch.no_grad():
                totals += torch.stack(
                    [loss_sum.double(), (out.argmax(1) == yt).sum().double(), torch.tensor(len(share), device=device)]
                )
        if not math.isfinite(float(totals[0])):
            raise RuntimeError(f"loss became {float(totals[0])} at epoch {epoch}. Try a lower learning rate.")
        record = {"epoch": epoch, "lr": lr, "time": 0.0}
        record.update(_epoch_stats(torch, world, totals))
        record.update(_evaluate(torch, run, net, tmodel, rank, world, device, dtype))
        record["time"] = time.perf_counter() - t0  # the epoch, its evaluation included, as convpool's fit
        run.history.append(record)
        if rank == 0 and run.checkpoint:
            _save(run, run.model, tmodel, opt, params, epoch, steps)
        if rank == 0 and run.log:
            print(_line(record), flush=True)
        if run.patience is not None and _epochs_since_best(run.history) >= run.patience:
            break


def _epoch_stats(torch: Any, world: int, totals: Any) -> dict[str, float]:
    if world > 1:
        torch.distributed.all_reduce(totals)
    loss, correct, seen = (float(v) for v in totals)
    return {"train_loss": loss / max(seen, 1), "train_acc": correct / max(seen, 1)}


def _evaluate(torch: Any, run: _Run, net: Any, tmodel: Any, rank: int, world: int, device: Any, dtype: Any) -> dict:
    """Test loss and accuracy, each process on its share of the test set (batches of 512)."""
    tmodel.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)
    share = np.array_split(np.arange(len(run.test)), world)[rank]
    with torch.no_grad():
        for i in range(0, len(share), 512):
            x, y = run.test[share[i : i + 512]]
            out = tmodel(torch.from_numpy(np.ascontiguousarray(x)).to(device=device, dtype=dtype))
            yt = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
            loss = torch.nn.functional.cross_entropy(out, yt, reduction="sum").double()
            totals += torch.stack([loss, (out.argmax(1) == yt).sum().double(), torch.tensor(len(y), device=device)])
    tmodel.train()
    if world > 1:
        torch.distributed.all_reduce(totals)
    loss, correct, seen = (float(v) for v in totals)
    return {"val_loss": loss / max(seen, 1), "val_acc": correct / max(seen, 1)}


def _line(e: dict[str, float]) -> str:
    return (
        f"epoch {int(e['epoch']):3d}  loss {e['train_loss']:.4f}  train acc {e['train_acc']:.4f}  "
        f"test acc {e['val_acc']:.4f}  ({e['time']:.2f}s)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _backend(torch: Any, backend: str | None, nproc: int) -> str:
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if backend is None:
        return "nccl" if gpus >= nproc else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo', 'nccl' or None (NCCL where GPUs exist), got {backend!r}")
    if backend == "nccl" and gpus < nproc:
        raise ValueError(f"backend 'nccl' needs a GPU per process: {nproc} processes, {gpus} GPUs here")
    return backend


def train_torch(
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
    nproc: int = 1,
    nnodes: int = 1,
    node_rank: int = 0,
    master_addr: str = "127.0.0.1",
    master_port: int | None = None,
    backend: str | None = None,
    log: bool = False,
) -> tuple[History, dict[str, float]]:
    """:func:`convpool.train.train_classifier` on PyTorch: DDP over ``nproc`` processes
    per machine on ``nnodes`` machines.

    Args:
        model, train, test, epochs, lr, batch_size, optimizer, weight_decay, out_dir,
            resume, patience: as :func:`~convpool.train.train_classifier`
            (``OUT/checkpoint.npz`` and ``OUT/history.json``; a checkpoint of either
            engine resumes).
        nproc: processes on this machine (one per GPU with NCCL).
        nnodes, node_rank, master_addr, master_port: torchrun's conventions; run the
            same command on every machine with its own ``node_rank``.  The port defaults
            to a free one on a single machine, else 29500.
        backend: 'gloo', 'nccl', or None: NCCL where every process has a GPU, else gloo.
        log: global rank 0 prints a line per epoch.

    Returns the history and the final test metrics, as ``train_classifier``; the
    trained weights are in ``model``.  On a machine other than node 0 (which holds the
    checkpoint) the history is empty and the metrics are ``{}``.
    """
    torch = _torch()
    from ._torch import to_torch

    epochs, batch_size = _check_int("epochs", epochs, 1), _check_int("batch_size", batch_size, 1)
    nproc, nnodes = _check_int("nproc", nproc, 1), _check_int("nnodes", nnodes, 1)
    node_rank = _check_int("node_rank", node_rank, 0)
    if node_rank >= nnodes:
        raise ValueError(f"node_rank must be below nnodes={nnodes}, got {node_rank}")
    if optimizer not in ("adamw", "adam", "sgd"):
        raise ValueError(f"optimizer must be 'adamw', 'adam' or 'sgd', got {optimizer!r}")
    if master_port is None:
        master_port = 29500 if nnodes > 1 else _free_port()
    to_torch(model)  # a layer PyTorch lacks: the TypeError naming it, before any process starts
    temp = None if out_dir or node_rank else tempfile.TemporaryDirectory(prefix="convpool-ddp-")
    folder = out_dir or (temp.name if temp else None)
    checkpoint = os.path.join(folder, "checkpoint.npz") if folder and node_rank == 0 else None
    run = _Run(
        model,
        train,
        test,
        epochs,
        float(lr),
        batch_size,
        optimizer,
        float(weight_decay),
        patience,
        checkpoint,
        nproc,
        nnodes,
        node_rank,
        master_addr,
        int(master_port),
        _backend(torch, backend, nproc),
        log,
    )
    if resume and checkpoint and os.path.exists(checkpoint):
        cp_opt, sched = _recipe(model, optimizer, run.lr, run.weight_decay, epochs)
        arrays, meta = read_checkpoint(checkpoint)
        run.start = _resume_point(checkpoint, meta, epochs, patience is not None)
        _restore(checkpoint, arrays, meta, model, cp_opt, sched)
        run.history, run.optim_state = list(meta.get("history", [])), cp_opt.state_dict()
    run.rng_state = _random.get_state()
    t0 = time.perf_counter()
    try:
        if nproc == 1 and nnodes == 1:
            _worker(0, run)
        else:
            torch.multiprocessing.spawn(_worker, args=(run,), nprocs=nproc, join=True)
        if checkpoint is None:
            return History(), {}
        meta = load_checkpoint(checkpoint, model)  # the trained weights (and generator) into the model
        history = History(list(meta.get("history", [])), False, run.start)
        history.stopped_early = patience is not None and len(history.epochs) < epochs
        info = {"engine": "torch", "processes": nproc * nnodes, "backend": run.backend}
        return history, _final(model, test, history, t0, out_dir, info)
    finally:
        if temp is not None:
            temp.cleanup()
