"""Differential fuzzing: random public-API calls through both backends and PyTorch.

Each case is drawn from one integer seed (so every report is reproducible): an op
(convolution, max / min / average / Lp pooling, adaptive pooling, padding), 1-3
spatial dims, float32 or float64, and arguments that reach past the input -
padding and dilation beyond it, strides larger than it, empty batches and empty
spatial dims - on inputs with ties, NaN and inf, contiguous or not.  The case runs
forward and backward on every available backend and in PyTorch; any disagreement
in values, gradients or in whether the call is refused is reported with a one-line
reproducer.  An exception other than ValueError / TypeError counts as a crash.

    python tests/fuzz.py --seconds 600                # both backends, ten minutes
    python tests/fuzz.py --seconds 60 --backend numpy
    python tests/fuzz.py --replay 1234                # one case, verbosely

``tests/test_fuzz.py`` runs a fixed slice of seeds in ``make test``.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as TF

import convpool
import convpool.functional as F
from convpool import geometry, nn

OPS = (
    "conv",
    "maxplus_conv",
    "max_pool",
    "min_pool",
    "median_pool",
    "avg_pool",
    "lp_pool",
    "adaptive_avg",
    "adaptive_max",
    "pad",
)


class NoOracle(Exception):
    """PyTorch has no such op (median pooling, border-padded pooling): the backends are
    compared with each other only."""


REFUSALS = (ValueError, TypeError)  # how convpool may refuse an input


@dataclass
class Case:
    seed: int
    op: str
    nd: int
    dtype: type
    x: np.ndarray
    args: dict[str, Any] = field(default_factory=dict)
    w: np.ndarray | None = None
    b: np.ndarray | None = None

    def describe(self) -> str:
        extra = "" if self.w is None else f" w{self.w.shape}" + ("" if self.b is None else " +bias")
        layout = "" if self.x.flags.c_contiguous else " non-contiguous"
        return (
            f"seed {self.seed}: {self.op}{self.nd}d {np.dtype(self.dtype).name} x{self.x.shape}{layout}{extra} "
            f"{self.args}"
        )


# --- drawing cases -----------------------------------------------------------------------


def _values(rng: np.random.Generator, shape: tuple[int, ...], dtype: type, specials: bool) -> np.ndarray:
    kind = rng.integers(3)
    if kind == 0:
        x = rng.standard_normal(shape)
    elif kind == 1:  # ties
        x = rng.integers(-2, 3, shape).astype(np.float64)
    else:  # tie-free
        x = rng.permutation(int(np.prod(shape))).reshape(shape) * 0.37 - 1.5
    if specials and x.size and rng.random() < 0.3:
        flat = x.reshape(-1)
        # one NaN at most: with two in a window PyTorch routes the gradient to the last
        # (its CPU max loop takes every NaN it meets), convpool to the first in scan order
        flat[rng.integers(flat.size)] = rng.choice([np.nan, np.inf, -np.inf])
        if rng.random() < 0.5:
            flat[rng.integers(flat.size)] = rng.choice([np.inf, -np.inf])
    return x.astype(dtype)


def _non_contiguous(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """The same values as a strided view (every other element of a larger array)."""
    if x.ndim == 0 or x.size == 0 or rng.random() < 0.7:
        return x
    big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
    big[..., ::2] = x
    return big[..., ::2]


def _spatial(rng: np.random.Generator, nd: int) -> tuple[int, ...]:
    return tuple(
        int(rng.choice([0, 1, 1, 2, 3, 4, 5, 7])) if rng.random() < 0.05 else int(rng.integers(1, 8)) for _ in range(nd)
    )


def _small(rng: np.random.Generator, lo: int, hi: int, big: int, p_big: float = 0.1) -> int:
    """Mostly in [lo, hi]; sometimes ``big`` (beyond the input)."""
    return big if rng.random() < p_big else int(rng.integers(lo, hi + 1))


def draw_case(seed: int) -> Case:
    rng = np.random.default_rng(seed)
    op = OPS[int(rng.integers(len(OPS)))]
    nd = int(rng.integers(1, 4))
    dtype = np.float32 if rng.random() < 0.5 else np.float64
    n = 0 if rng.random() < 0.05 else int(rng.integers(1, 3))
    size = _spatial(rng, nd)
    args: dict[str, Any] = {}
    w = b = None
    if op in ("conv", "maxplus_conv"):
        groups = int(rng.choice([1, 1, 2]))
        cin, cout = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        kernel = tuple(int(rng.integers(1, 4)) for _ in range(nd))
        args["stride"] = tuple(_small(rng, 1, 3, 1000) for _ in range(nd))
        args["dilation"] = tuple(_small(rng, 1, 3, 50) for _ in range(nd))
        args["padding"] = tuple(_small(rng, 0, 3, 40) for _ in range(nd))
        args["groups"] = groups
        if rng.random() < 0.25:
            args["padding_mode"] = str(rng.choice(["reflect", "replicate", "circular"]))
        if op == "maxplus_conv":  # windows must reach the input: identity padding at most half
            args["padding"] = tuple(
                min(p, (d * (k - 1) + 1) // 2) for p, d, k in zip(args["padding"], args["dilation"], kernel)
            )
            args["minplus"] = bool(rng.random() < 0.5)
        c = cin
        w = _values(rng, (cout, cin // groups, *kernel), dtype, specials=False)
        b = _values(rng, (cout,), dtype, specials=False) if rng.random() < 0.5 else None
    elif op in ("max_pool", "min_pool", "median_pool", "avg_pool", "lp_pool"):
        c = int(rng.integers(1, 4))
        kernel = tuple(min(int(rng.integers(1, 5)), max(n, 1)) for n in size)
        args["kernel_size"] = kernel
        args["stride"] = tuple(_small(rng, 1, 3, 1000) for _ in range(nd))
        if op != "lp_pool":
            args["padding"] = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
            args["ceil_mode"] = bool(rng.random() < 0.4)
        if op in ("max_pool", "min_pool", "median_pool"):
            args["dilation"] = tuple(_small(rng, 1, 2, 20, p_big=0.05) for _ in range(nd))
        if op != "lp_pool" and rng.random() < 0.15:  # beyond PyTorch: a border mode
            args["padding_mode"] = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
        if op == "avg_pool":
            args["count_include_pad"] = bool(rng.random() < 0.5)
        if op == "lp_pool":
            args["norm_type"] = float(rng.choice([1.0, 2.0, 3.0]))
    elif op in ("adaptive_avg", "adaptive_max"):
        c = int(rng.integers(1, 4))
        args["output_size"] = tuple(int(rng.integers(1, 6)) for _ in range(nd))
    else:  # pad
        c = int(rng.integers(1, 3))
        mode = str(rng.choice(["constant", "reflect", "replicate", "circular"]))
        args["mode"] = mode
        args["pad"] = tuple(int(rng.integers(0, 4)) for _ in range(2 * nd))
        if mode == "constant" and rng.random() < 0.5:
            args["value"] = float(rng.choice([-1.5, 0.0, 2.0]))
    specials = op != "lp_pool"  # Lp pooling of inf / NaN: x**p overflows differently in float32
    x = _values(rng, (n, c, *size), dtype, specials)
    if op == "lp_pool":
        x = np.abs(x) + np.asarray(0.1, dtype)  # PyTorch's Lp pooling is only the p-norm for x >= 0
    if n == 1 and rng.random() < 0.2:
        x = x[0]  # unbatched (C, *spatial)
    return Case(seed, op, nd, dtype, _non_contiguous(rng, x), args, w, b)


# --- running it ----------------------------------------------------------------------------

_MODULES = {
    "max_pool": (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d),
    "min_pool": (nn.MinPool1d, nn.MinPool2d, nn.MinPool3d),
    "median_pool": (nn.MedianPool1d, nn.MedianPool2d, nn.MedianPool3d),
    "avg_pool": (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d),
    "lp_pool": (nn.LPPool1d, nn.LPPool2d, nn.LPPool3d),
    "adaptive_avg": (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d),
    "adaptive_max": (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d),
}

Result = tuple[np.ndarray, list[np.ndarray]]  # output, gradients (input, then weight, bias)


def _grad_out(case: Case, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(case.seed + 1).standard_normal(shape).astype(case.dtype)


def run_convpool(case: Case) -> Result:
    a = dict(case.args)
    if case.op == "conv":
        mode = a.pop("padding_mode", "zeros")
        y, ctx = F.conv_forward(case.x, case.w, case.b, padding_mode=mode, nd=case.nd, **a)
        dx, dw, db = F.conv_backward(_grad_out(case, y.shape), ctx)
        return y, [dx, dw] + ([] if db is None else [db])
    if case.op == "maxplus_conv":
        forward = F.minplus_conv_forward if a.pop("minplus") else F.maxplus_conv_forward
        y, ctx = forward(case.x, case.w, case.b, padding_mode=a.pop("padding_mode", None), nd=case.nd, **a)
        dx, dw, db = F.maxplus_conv_backward(_grad_out(case, y.shape), ctx)
        return y, [dx, dw] + ([] if db is None else [db])
    if case.op == "pad":
        y = F.pad(case.x, a["pad"], a["mode"], a.get("value"))
        return y, [F.pad_grad(_grad_out(case, y.shape), a["pad"], a["mode"])]
    cls = _MODULES[case.op][case.nd - 1]
    if case.op == "lp_pool":
        m = cls(a.pop("norm_type"), **a)
    else:
        m = cls(**a)
    y = m(case.x)
    return y, [m.backward(_grad_out(case, y.shape))]


_TORCH_POOL = {
    "max_pool": (TF.max_pool1d, TF.max_pool2d, TF.max_pool3d),
    "avg_pool": (TF.avg_pool1d, TF.avg_pool2d, TF.avg_pool3d),
    "lp_pool": (TF.lp_pool1d, TF.lp_pool2d, TF.lp_pool3d),
    "adaptive_avg": (TF.adaptive_avg_pool1d, TF.adaptive_avg_pool2d, TF.adaptive_avg_pool3d),
    "adaptive_max": (TF.adaptive_max_pool1d, TF.adaptive_max_pool2d, TF.adaptive_max_pool3d),
}


def _torch_pad_pairs(padding: tuple[int, ...]) -> tuple[int, ...]:
    """Per-dim symmetric padding as F.pad's (last dim first) tuple."""
    return tuple(p for v in reversed(padding) for p in (v, v))


def _window_in_padding(case: Case) -> bool:
    """Whether some pooling window reads no input element (only padding or the ceil_mode
    room past it)."""
    a = case.args
    nd, size = case.nd, case.x.shape[-case.nd :]
    pads = a.get("padding", (0,) * nd)
    dil = a.get("dilation", (1,) * nd)
    try:
        out = geometry.output_size(
            size, a["kernel_size"], a["stride"], tuple((p, p) for p in pads), dil, a.get("ceil_mode", False)
        )
    except ValueError:
        return False
    for n, k, s, p, d, o in zip(size, a["kernel_size"], a["stride"], pads, dil, out, strict=True):
        for start in range(0, o * s, s):
            if not any(p <= start + t * d < p + n for t in range(k)):
                return True
    return False


def run_torch(case: Case) -> Result:
    tensors = [
        torch.tensor(np.ascontiguousarray(a), requires_grad=True) for a in (case.x, case.w, case.b) if a is not None
    ]
    xt = tensors[0]
    a = dict(case.args)
    if case.op in ("median_pool", "maxplus_conv") or (case.op != "conv" and "padding_mode" in a):
        raise NoOracle(case.op)
    if case.op != "pad" and 0 in case.x.shape[-case.nd :]:
        # convpool refuses a window of nothing; PyTorch's adaptive average returns NaN
        raise NoOracle("an empty spatial dim")
    if case.op.endswith("_pool") and _window_in_padding(case):
        # convpool refuses it; PyTorch 2.13's max_pool3d backward writes out of bounds
        # on it ("corrupted size vs. prev_size", seed 144)
        raise NoOracle("a window lies wholly in the padding")
    if case.op == "conv":
        mode = a.pop("padding_mode", "zeros")
        if mode != "zeros":  # PyTorch's modules pad first, then convolve without padding
            xt = TF.pad(xt, _torch_pad_pairs(a["padding"]), mode)
            a["padding"] = 0
        bias = tensors[2] if case.b is not None else None
        y = (TF.conv1d, TF.conv2d, TF.conv3d)[case.nd - 1](xt, tensors[1], bias, **a)
    elif case.op == "pad":
        y = TF.pad(xt, a["pad"], a["mode"], a.get("value"))
    elif case.op == "min_pool":
        y = -TF.max_pool1d(-xt, **a) if case.nd == 1 else -_TORCH_POOL["max_pool"][case.nd - 1](-xt, **a)
    elif case.op == "lp_pool":
        fn = _TORCH_POOL["lp_pool"][case.nd - 1]
        kernel = a["kernel_size"][0] if case.nd == 1 else a["kernel_size"]  # lp_pool1d takes an int
        stride = a["stride"][0] if case.nd == 1 else a["stride"]
        y = fn(xt, a["norm_type"], kernel, stride)
    else:
        y = _TORCH_POOL[case.op][case.nd - 1](xt, **a)
    y.backward(torch.tensor(_grad_out(case, tuple(y.shape))))
    return y.detach().numpy(), [t.grad.numpy() if t.grad is not None else np.zeros(t.shape) for t in tensors]


# --- comparing --------------------------------------------------------------------------------


def _differ(ours: np.ndarray, theirs: np.ndarray, dtype: type) -> str | None:
    if ours.shape != theirs.shape:
        return f"shape {ours.shape} != {theirs.shape}"
    if ours.dtype != np.dtype(dtype):
        return f"dtype {ours.dtype}, expected {np.dtype(dtype)}"
    finite = np.isfinite(theirs)
    scale = float(np.abs(theirs[finite]).max()) if finite.any() else 1.0
    rtol, atol = (1e-4, 1e-5 * max(scale, 1.0)) if dtype == np.float32 else (1e-9, 1e-11 * max(scale, 1.0))
    if not np.allclose(ours, theirs.astype(ours.dtype), rtol=rtol, atol=atol, equal_nan=True):
        with np.errstate(invalid="ignore"):
            err = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
        bad = ~np.isclose(ours, theirs.astype(ours.dtype), rtol=rtol, atol=atol, equal_nan=True)
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        return f"differs at {where}: {ours[where]!r} vs {theirs[where]!r} (max abs err {np.nanmax(err):.3g})"
    return None


def _compare(a: Result, b: Result, dtype: type) -> str | None:
    names = ["output", "grad input", "grad weight", "grad bias"]
    if len(a[1]) != len(b[1]):
        return f"{len(a[1])} gradients vs {len(b[1])}"
    for name, u, v in zip(names, [a[0], *a[1]], [b[0], *b[1]], strict=False):
        problem = _differ(u, v, dtype)
        if problem:
            return f"{name} {problem}"
    return None


def _outcome(fn: Callable[[Case], Result], case: Case) -> Result | BaseException:
    try:
        return fn(case)
    except Exception as exc:  # kept and judged by the caller
        return exc


def _verdict(ours: list[Result | BaseException], theirs: Result | BaseException) -> str:
    """How a case was judged, for the tally: against PyTorch, backends only, or refused."""
    if all(isinstance(r, BaseException) for r in ours):
        return "refused" if isinstance(theirs, BaseException) else "refused (PyTorch computes it)"
    return "backends only" if isinstance(theirs, BaseException) else "vs PyTorch"


def check(case: Case, backends: tuple[str, ...], tally: Counter[str] | None = None) -> list[str]:
    """Every disagreement of this case, one line each (empty: all agree).  ``tally``
    counts how the case was judged, per op."""
    problems = []
    ours: dict[str, Result | BaseException] = {}
    for name in backends:
        with convpool.backend(name):
            ours[name] = _outcome(run_convpool, case)
    theirs = _outcome(run_torch, case)
    if tally is not None:
        tally[f"{case.op}: {_verdict(list(ours.values()), theirs)}"] += 1
    for name, got in ours.items():
        if isinstance(theirs, NoOracle) and not (isinstance(got, BaseException) and not isinstance(got, REFUSALS)):
            continue
        if isinstance(got, BaseException) and not isinstance(got, REFUSALS):
            problems.append(f"[{name}] crash: {type(got).__name__}: {got}")
        elif isinstance(got, BaseException) and not isinstance(theirs, BaseException):
            problems.append(f"[{name}] refused what PyTorch computes: {type(got).__name__}: {got}")
        elif not isinstance(got, BaseException) and not isinstance(theirs, BaseException):
            problem = _compare(got, theirs, case.dtype)
            if problem:
                problems.append(f"[{name}] vs PyTorch: {problem}")
    results = list(ours.values())
    if len(results) == 2:
        a, b = results
        if isinstance(a, BaseException) != isinstance(b, BaseException):
            problems.append(f"backends disagree on refusing: {a!r} vs {b!r}")
        elif not isinstance(a, BaseException) and not isinstance(b, BaseException):
            problem = _compare(a, b, case.dtype)
            if problem:
                problems.append(f"numpy vs compiled: {problem}")
    return problems


def fuzz(
    seeds: range, backends: tuple[str, ...], seconds: float | None = None, tally: Counter[str] | None = None
) -> tuple[int, list[str]]:
    """Run cases until ``seeds`` or ``seconds`` run out; returns (cases run, reports)."""
    reports, start, count = [], time.monotonic(), 0
    for seed in seeds:
        if seconds is not None and time.monotonic() - start > seconds:
            break
        case = draw_case(seed)
        count += 1
        for problem in check(case, backends, tally):
            reports.append(f"{case.describe()}: {problem}  [python tests/fuzz.py --replay {seed}]")
    return count, reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="first case seed (default 0)")
    parser.add_argument("--backend", choices=("both", "numpy", "compiled"), default="both")
    parser.add_argument("--replay", type=int, help="run one case and print it")
    args = parser.parse_args(argv)
    backends = convpool.available_backends() if args.backend == "both" else (args.backend,)
    if args.replay is not None:
        case = draw_case(args.replay)
        print(case.describe())
        problems = check(case, backends)
        for name in backends:
            with convpool.backend(name):
                got = _outcome(run_convpool, case)
            if isinstance(got, BaseException):
                traceback.print_exception(got)
        print("\n".join(problems) or "all agree")
        return 1 if problems else 0
    torch.set_num_threads(1)
    tally: Counter[str] = Counter()
    count, reports = fuzz(range(args.seed, sys.maxsize), backends, args.seconds, tally)
    for line in reports:
        print(line)
    for what, n in sorted(tally.items()):
        print(f"  {what}: {n}")
    print(f"fuzz: {count} cases on {', '.join(backends)} and PyTorch, {len(reports)} disagreements")
    return 1 if reports else 0


if __name__ == "__main__":
    sys.exit(main())
