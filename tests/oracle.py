"""The torch oracle: feed the same float64 inputs to convpool and PyTorch and
compare the output and every gradient."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

RTOL, ATOL = 1e-9, 1e-10


def assert_close(ours: np.ndarray, theirs: np.ndarray, what: str, rtol: float = RTOL, atol: float = ATOL) -> None:
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != torch {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=what)


def check_against_torch(
    ours_forward: Callable[..., tuple[np.ndarray, object]],
    ours_backward: Callable[[np.ndarray, object], Sequence[np.ndarray | None] | np.ndarray],
    torch_fn: Callable[..., torch.Tensor],
    inputs: Sequence[np.ndarray | None],
    seed: int = 0,
) -> None:
    """``ours_forward(*inputs) -> (y, ctx)``; ``ours_backward(dy, ctx)`` -> gradients
    for each non-None input, in order; ``torch_fn(*tensors) -> y``."""
    tensors = [None if a is None else torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in inputs]
    y_t = torch_fn(*tensors)
    y, ctx = ours_forward(*inputs)
    assert y.dtype == np.float64
    assert_close(y, y_t.detach().numpy(), "forward")
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    y_t.backward(torch.tensor(dy))
    grads = ours_backward(dy, ctx)
    if isinstance(grads, np.ndarray):
        grads = [grads]
    present = [t for t in tensors if t is not None]
    assert len([g for g in grads if g is not None]) == len(present)
    for i, (g, t) in enumerate(zip([g for g in grads if g is not None], present, strict=True)):
        assert t.grad is not None
        assert_close(g, t.grad.numpy(), f"gradient of input {i}")


def numerical_grad(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dy: np.ndarray, eps: float = 1e-6
) -> np.ndarray:
    """Central differences of ``sum(f(x) * dy)`` with respect to ``x`` (float64)."""
    g = np.zeros_like(x)
    flat = x.reshape(-1)
    gflat = g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = float((f(x) * dy).sum())
        flat[i] = old - eps
        down = float((f(x) * dy).sum())
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return g


def tie_free(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Distinct values far enough apart that a small nudge never changes an order."""
    n = int(np.prod(shape))
    # offset 0.0137: never equal to a zero-padding value
    return (rng.permutation(n).astype(np.float64) * 0.1 + 0.0137).reshape(shape) - 0.05 * n
