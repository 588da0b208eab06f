"""Time one LeNet-style training step (forward, loss, backward, AdamW step) in
convpool and in PyTorch on the same batch, in one process.

    python benchmarks/train_step.py [--batch 32] [--image 8] [--repeats 50]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import convpool
from convpool import interop, models, nn, optim


def _time(step, repeats: int) -> float:  # type: ignore[no-untyped-def]
    for _ in range(5):
        step()
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--image", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    convpool.manual_seed(0)
    model = models.lenet(1, 10, args.image)
    tmodel = interop.to_torch(model)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 1, args.image, args.image), dtype=np.float32)
    y = rng.integers(0, 10, args.batch)
    opt, crit = optim.AdamW(model.parameters(), lr=1e-3), nn.CrossEntropyLoss()
    topt, tcrit = torch.optim.AdamW(tmodel.parameters(), lr=1e-3), torch.nn.CrossEntropyLoss()
    xt, yt = torch.tensor(x), torch.tensor(y)

    def ours() -> None:
        opt.zero_grad()
        crit(model(x), y)
        model.backward(crit.backward())
        opt.step()

    def theirs() -> None:
        topt.zero_grad()
        tcrit(tmodel(xt), yt).backward()
        topt.step()

    a, b = _time(ours, args.repeats), _time(theirs, args.repeats)
    print(f"LeNet training step, batch {args.batch} of 1x{args.image}x{args.image}, torch threads {torch.get_num_threads()}")
    print(f"  convpool {a * 1e3:.3f} ms   torch {b * 1e3:.3f} ms   ratio convpool/torch {a / b:.2f}")


if __name__ == "__main__":
    main()
