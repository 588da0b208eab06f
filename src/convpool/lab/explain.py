"""``convpool explain``: how a conv layer and a pooling layer compute, with numbers.

The classic worked example (a 5x5 input, a 3x3 kernel and a 3x3 pooling window
on the centre pixel), the full output maps with borders discarded or padded and
stride 1 or 2, then the usual questions answered numerically:

1. average pooling *is* a (depthwise) convolution with fixed weights 1/9;
2. max pooling is not a *linear* convolution (it is not linear) - but it *is* a
   convolution in the (max, +) algebra with zero weights, and pooling can learn
   parameters (:mod:`.algebra`, trained on MNIST when ``learn`` is set);
3. a conv layer has ``C_out*C_in*k*k + C_out`` parameters that a training step
   changes, a pooling layer has none;
4. gradient flow: which inputs receive gradient through each layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from .. import nn, optim
from ..config import backend
from ..examples import INPUT, KERNELS, centre_pixel
from . import algebra
from ._common import grid_table, pyplot, save_figure, write_json

POOLS = ("max", "avg", "median", "min")


def parse_kernel(spec: str) -> tuple[str, np.ndarray]:
    """A preset name or typed numbers, rows split by ';' and values by ',' or spaces."""
    if spec in KERNELS:
        return spec, KERNELS[spec]
    try:
        rows = [[float(v) for v in row.replace(",", " ").split()] for row in spec.split(";") if row.strip()]
        k = np.array(rows, dtype=np.float64)
    except ValueError as exc:
        raise ValueError(
            f"kernel must be one of {sorted(KERNELS)} or numbers like '1,0,-1;1,0,-1;1,0,-1', got {spec!r}"
        ) from exc
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0 or k.shape[0] > 5:
        raise ValueError(f"kernel must be a square 1x1, 3x3 or 5x5 grid, got shape {k.shape} from {spec!r}")
    return "custom", k


def _pool(x: np.ndarray, pool: str, k: int, stride: int, padding: int, mode: str | None = None) -> np.ndarray:
    x4 = x[None, None]
    if pool == "avg":
        return F.avg_pool2d(x4, k, stride, padding, padding_mode=mode)[0, 0]
    return F.reduce_window(x4, pool, (k, k), (stride, stride), (padding, padding), 1, False, mode)[0, 0]


def _conv(x: np.ndarray, kernel: np.ndarray, stride: int, padding: int, mode: str = "zeros") -> np.ndarray:
    return F.conv2d(x[None, None], kernel[None, None], None, stride, padding, padding_mode=mode)[0, 0]


def _out_size(n: int, k: int, s: int, p: int) -> dict[str, Any]:
    out = (n + 2 * p - k) // s + 1
    return {"n": n, "k": k, "s": s, "p": p, "out": out, "formula": f"floor(({n} + 2*{p} - {k}) / {s}) + 1 = {out}"}


def _gradient_flow(x: np.ndarray, kernel: np.ndarray, k: int) -> dict[str, Any]:
    """Input gradients when only the centre output receives gradient 1."""
    x4 = x[None, None]
    flows: dict[str, Any] = {}
    centre = x.shape[0] // 2 - k // 2
    for name in ("max", "avg", "median", "conv"):
        ctx: Any
        if name == "conv":
            y, ctx = F.conv_forward(x4, kernel[None, None], None, 1, 0)
        elif name == "avg":
            y, ctx = F.avg_pool_forward(x4, 2, k, 1, 0)
        else:
            y, ctx = F.reduce_window_forward(x4, name, 2, k, 1, 0)
        dy = np.zeros_like(y)
        dy[0, 0, centre, centre] = 1.0
        g = (F.conv_backward(dy, ctx)[0] if name == "conv" else F.reduce_window_backward(dy, ctx))[0, 0]
        flows[name] = {"grad": g, "positions": int((g != 0).sum())}
    return flows


def _training_step(seed: int = 0) -> dict[str, Any]:
    """One SGD step of conv -> max pool: the conv weights move, the pool has nothing to move."""
    from .. import _random

    _random.manual_seed(seed)
    conv, pool = nn.Conv2d(1, 1, 3, padding=1, dtype=np.float64), nn.MaxPool2d(2)
    model = nn.Sequential(conv, pool)
    rng = np.random.default_rng(seed)
    x, target = rng.standard_normal((4, 1, 6, 6)), rng.standard_normal((4, 1, 3, 3))
    before = conv.weight.data.copy()
    opt, crit = optim.SGD(model.parameters(), lr=0.1), nn.MSELoss()
    crit(model(x), target)
    model.backward(crit.backward())
    opt.step()
    return {
        "conv_parameters": conv.num_parameters(),
        "pool_parameters": pool.num_parameters(),
        "conv_weight_change": float(np.abs(conv.weight.data - before).max()),
    }


def run(
    kernel: str = "vertical-edge",
    pool: str = "max",
    padding: int = 1,
    stride: int = 2,
    learn: int = 0,
    learn_epochs: int = 3,
) -> dict[str, Any]:
    """Compute every number of the explanation; returns a JSON-able dict.  With
    ``learn`` > 0, LeNet-5 is trained on that many MNIST images with each learned
    pooling layer (GeM, mixed, max-plus) and their learned parameters are reported.

    The examples are tiny float64 arrays (exact numbers to print), so they run on the
    NumPy backend: compiling float64 kernels for them would take longer than computing
    them (both backends pass the same PyTorch oracles).  The switch is
    process-wide while they run: the lab runs one section at a time."""
    with backend("numpy"):
        facts = _examples(kernel, pool, padding, stride)
    if learn:
        facts["learned"] = algebra.learned_pooling(n_train=learn, epochs=learn_epochs)
    return facts


def _examples(kernel: str, pool: str, padding: int, stride: int) -> dict[str, Any]:
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    if padding < 0 or stride < 1:
        raise ValueError(f"padding must be >= 0 and stride >= 1, got padding={padding}, stride={stride}")
    name, K = parse_kernel(kernel)
    x = INPUT
    k = K.shape[0]
    c, h = x.shape[0] // 2, k // 2
    centre = centre_pixel(x, K)
    window = centre["window"]
    pool_value = float(_pool(window, pool, k, 1, 0)[0, 0])
    sel = None
    if pool in ("max", "min", "median"):  # the element the pool picked (first in scan order)
        cands = np.argwhere(window == pool_value)[0]
        sel = (int(cands[0]) + c - h, int(cands[1]) + c - h)
    facts: dict[str, Any] = {
        "input": x,
        "kernel_name": name,
        "kernel": K,
        "pool": pool,
        "centre": {
            "window": window,
            "products": centre["products"],
            "conv": centre["conv"],
            "pool_value": pool_value,
            "selected": sel,
        },
    }
    cases = [
        ("valid (borders discarded), stride 1", 1, 0, "zeros", None),
        (f"valid, stride {stride}", stride, 0, "zeros", None),
        (f"zero padding {padding}, stride 1", 1, padding, "zeros", None),
        (f"reflect padding {padding}, stride 1", 1, padding, "reflect", "reflect"),
        (f"replicate padding {padding}, stride 1", 1, padding, "replicate", "replicate"),
        (f"zero padding {padding}, stride {stride}", stride, padding, "zeros", None),
    ]
    maps = {}
    for title, s, p, cmode, pmode in cases:
        if 2 * p + x.shape[0] < k or (pmode is None and p > k // 2):
            continue
        maps[title] = {
            "stride": s,
            "padding": p,
            "conv": _conv(x, K, s, p, cmode),
            "pool": _pool(x, pool, k, s, p, pmode),
            "size": _out_size(x.shape[0], k, s, p),
        }
    facts["maps"] = maps
    # 1. average pooling is a depthwise convolution with constant weights 1/k^2
    rng = np.random.default_rng(0)
    xr = rng.standard_normal((2, 3, 9, 9))
    as_pool = F.avg_pool2d(xr, 3, 1, 1)
    as_conv = F.conv2d(xr, np.full((3, 1, 3, 3), 1 / 9), None, 1, 1, 1, 3)
    facts["avg_is_conv"] = {"weight": 1 / 9, "max_abs_diff": float(np.abs(as_pool - as_conv).max()), "shape": xr.shape}
    # 2. max pooling is not linear: max(a + b) != max(a) + max(b)
    a, b = np.array([3.0, -1.0, 0.0, 1.0]), np.array([-3.0, 2.0, 0.0, 0.0])
    mp = lambda v: float(F.max_pool1d(v[None, None], 4)[0, 0, 0])  # noqa: E731
    facts["max_not_linear"] = {
        "a": a,
        "b": b,
        "max(a+b)": mp(a + b),
        "max(a)+max(b)": mp(a) + mp(b),
        "max(2a)": mp(2 * a),
        "2max(a)": 2 * mp(a),
        "max(-a)": mp(-a),
        "-max(a)": -mp(a),
    }
    # avg pooling *is* linear (checked on the same numbers)
    ap = lambda v: float(F.avg_pool1d(v[None, None], 4)[0, 0, 0])  # noqa: E731
    facts["avg_linear"] = {"avg(a+b)": ap(a + b), "avg(a)+avg(b)": ap(a) + ap(b)}
    # 2b. ... but it is a convolution in the (max, +) algebra, with zero weights
    facts["maxplus"] = algebra.maxplus_facts(window, K)
    # 3. parameters
    c_in, c_out = 3, 16
    layer = nn.Conv2d(c_in, c_out, k)
    facts["parameters"] = {
        "conv": {
            "c_in": c_in,
            "c_out": c_out,
            "k": k,
            "count": layer.num_parameters(),
            "formula": f"{c_out}*{c_in}*{k}*{k} + {c_out} = {c_out * c_in * k * k + c_out}",
        },
        "pool": nn.MaxPool2d(k).num_parameters(),
        "training_step": _training_step(),
    }
    # 4. gradient flow
    facts["gradient_flow"] = _gradient_flow(x, K, k)
    return facts


def render(facts: dict[str, Any]) -> None:
    """Print the explanation to the terminal with rich."""
    from rich.panel import Panel

    from ._common import console

    con = console()
    cen = facts["centre"]
    k = facts["kernel"].shape[0]
    c = facts["input"].shape[0] // 2
    win = {(i, j) for i in range(c - k // 2, c + k // 2 + 1) for j in range(c - k // 2, c + k // 2 + 1)}
    con.rule("[bold]How they compute: the centre pixel of a 5x5 input")
    con.print("input (the centre window in yellow):")
    con.print(grid_table(facts["input"], mark=win))
    con.print(f"conv kernel '{facts['kernel_name']}' (in a real network these coefficients are learned):")
    con.print(grid_table(facts["kernel"], fmt="{:.3g}"))
    terms = " + ".join(f"({w:g})({v:.3g})" for w, v in zip(cen["window"].ravel(), facts["kernel"].ravel(), strict=True))
    con.print(
        Panel(
            f"[bold]convolution[/] = sum of element-wise products\n  = {terms}\n  = [bold]{cen['conv']:.4g}[/]",
            expand=False,
        )
    )
    pool = facts["pool"]
    how = {
        "max": "the largest element",
        "min": "the smallest element",
        "median": "the middle element (sorted)",
        "avg": "the mean of the elements",
    }[pool]
    where = f" at (row {cen['selected'][0]}, col {cen['selected'][1]})" if cen["selected"] else ""
    con.print(
        Panel(
            f"[bold]{pool} pooling[/] = {how} = [bold]{cen['pool_value']:.4g}[/]{where}\n"
            "  no coefficients: nothing to learn",
            expand=False,
        )
    )
    con.rule("[bold]Borders and stride: the full output maps")
    for title, m in facts["maps"].items():
        con.print(f"[bold]{title}[/]: out = {m['size']['formula']}")
        from rich.columns import Columns

        con.print(
            Columns([grid_table(m["conv"], "conv", fmt="{:.3g}"), grid_table(m["pool"], f"{pool} pool", fmt="{:.3g}")])
        )
    con.rule("[bold]The questions, answered with numbers")
    ai = facts["avg_is_conv"]
    con.print(
        f"1. Average pooling IS a convolution with fixed weights: avg_pool(3x3) vs depthwise conv with every "
        f"weight 1/9 on a random {tuple(ai['shape'])} input: max |difference| = {ai['max_abs_diff']:.2e}"
    )
    ml = facts["max_not_linear"]
    con.print(
        f"2. Max pooling is NOT a convolution (not linear): a={ml['a'].tolist()}, b={ml['b'].tolist()}: "
        f"max(a+b) = {ml['max(a+b)']:g} but max(a)+max(b) = {ml['max(a)+max(b)']:g}; "
        f"max(-a) = {ml['max(-a)']:g} but -max(a) = {ml['-max(a)']:g}. "
        f"(avg: {facts['avg_linear']['avg(a+b)']:g} = {facts['avg_linear']['avg(a)+avg(b)']:g}.) "
        "So it is no convolution of the usual, linear kind..."
    )
    for line in algebra.describe(facts):
        con.print("   " + line)
    p = facts["parameters"]
    ts = p["training_step"]
    con.print(
        f"3. Parameters: Conv2d({p['conv']['c_in']}, {p['conv']['c_out']}, {p['conv']['k']}) has "
        f"{p['conv']['formula']}; MaxPool2d has {p['pool']}. One SGD step of conv -> max pool moved the conv "
        f"weights by up to {ts['conv_weight_change']:.3g}; the pool had {ts['pool_parameters']} to move."
    )
    gf = facts["gradient_flow"]
    con.print(
        "4. Gradient flow (gradient 1 on the centre output only) - input positions that receive gradient: "
        + ", ".join(f"{n}: {v['positions']}" for n, v in gf.items())
        + ". Max and median route it to one chosen input; average spreads it evenly; conv weights it by the kernel "
        "(a zero coefficient passes nothing)."
    )


def figure(facts: dict[str, Any], path: str) -> str:
    """The worked example as one picture."""
    plt = pyplot()
    x, K = facts["input"], facts["kernel"]
    first = next(iter(facts["maps"].values()))
    gf = facts["gradient_flow"]
    panels = [
        ("input 5x5", x),
        (f"kernel ({facts['kernel_name']})", K),
        ("products (centre window)", facts["centre"]["products"]),
        ("conv output (valid)", first["conv"]),
        (f"{facts['pool']} pool output (valid)", first["pool"]),
        ("grad via max pool", gf["max"]["grad"]),
        ("grad via avg pool", gf["avg"]["grad"]),
        ("grad via median pool", gf["median"]["grad"]),
        ("grad via conv", gf["conv"]["grad"]),
    ]
    fig, axes = plt.subplots(2, 5, figsize=(15, 6.2))
    for ax, (title, a) in zip(axes.ravel(), panels, strict=False):
        ax.imshow(a, cmap="coolwarm" if a.min() < 0 else "viridis")
        for (i, j), v in np.ndenumerate(a):
            ax.text(
                j,
                i,
                f"{v:.2g}",
                ha="center",
                va="center",
                fontsize=8,
                color="black",
                bbox=dict(boxstyle="round,pad=0.1", fc="white", alpha=0.6, lw=0),
            )
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes.ravel()[-1].axis("off")
    fig.suptitle("Convolution (products then sum, learned coefficients) versus pooling (a fixed reduction)")
    return save_figure(fig, path)


def main(
    kernel: str = "vertical-edge",
    pool: str = "max",
    padding: int = 1,
    stride: int = 2,
    out: str | None = None,
    quiet: bool = False,
    learn: int = 0,
    learn_epochs: int = 3,
) -> dict[str, Any]:
    import os

    facts = run(kernel, pool, padding, stride, learn, learn_epochs)
    if not quiet:
        render(facts)
    if out:
        facts["figure"] = figure(facts, os.path.join(out, "explain.png"))
        facts["algebra_figure"] = algebra.save(facts, out)
        write_json(os.path.join(out, "explain.json"), facts)
    return facts
