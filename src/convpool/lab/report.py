"""``convpool report``: every part of the lab in one self-contained HTML page.

Writes ``DIR/index.html`` with the PNG figures and JSON results beside it. The
page is rendered from Jinja2 templates (``lab/templates/``, autoescaping on);
its first section answers the questions in one paragraph each, and every
number on the page is produced by the run that wrote it.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

import numpy as np

from ..checkpoint import atomic_write
from . import _report_context as C
from ._common import write_json

SECTIONS = (
    ("answers", "The answers"),
    ("explain", "How they compute: the worked example"),
    ("algebra", "Is pooling a convolution? The two algebras"),
    ("learned", "Pooling with parameters"),
    ("filters", "What filters and pools do to a real image"),
    ("ablation", "What each layer contributes (MNIST ablation)"),
    ("sweep", "Does pooling matter more when data are scarce?"),
    ("invariance", "Translation: equivariance and invariance"),
    ("reproduce", "Reproduce"),
)


def _fmt(value: Any, spec: str = "g") -> str:
    """``format(value, spec)``; numbers only (a NumPy scalar or 0-d array too)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and not spec.endswith(("e", "f", "g", "%")):
        return format(int(value), spec)
    return format(float(value) + 0.0, spec)  # + 0.0: no "-0"


def _fmtlist(values: Any, spec: str = "g", sep: str = " / ", brackets: str = "") -> str:
    """Numbers formatted with ``spec`` and joined by ``sep``, optionally in brackets."""
    text = sep.join(_fmt(v, spec) for v in np.ravel(np.asarray(values)))
    return f"{brackets[0]}{text}{brackets[1]}" if brackets else text


def environment() -> Any:
    """The Jinja2 environment: the package's templates, autoescaping on, undefined names an error."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("convpool.lab", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    env.filters["fmtlist"] = _fmtlist
    return env


def _meta(command: str, timings: dict[str, float]) -> dict[str, Any]:
    from .. import __version__, config

    info = config.info()
    return {
        "command": command,
        "version": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpu": info.get("cpu", platform.machine()),
        "cpus": os.cpu_count(),
        "backend": info.get("backend", "?"),
        "timings": list(timings.items()),
    }


def _short_run(ab: dict[str, Any] | None) -> str | None:
    """A warning when the ablation ran on a subset or for few epochs (the demo)."""
    if not ab:
        return None
    c = ab["config"]
    full = c.get("train_size", 60000)
    if c["n_train"] >= full and c["epochs"] >= 10:
        return None
    sizes = ", ".join(f"{n:,}" for n in c["sizes"])
    return (
        f"A short run: the ablation trained on {c['n_train']:,} of {c.get('data_label', c['data'])}'s {full:,} "
        f"training images for {c['epochs']} "
        f"epochs (batch {c['batch_size']}) and tested on {c['n_test']:,} images"
        + (f"; the size sweep went up to {c['sizes'][-1]:,} examples ({sizes})" if c["sizes"] else "")
        + ". The numbers show the method, not converged accuracies (LeNet-5 reaches about 99% with 10 epochs on "
        "all 60,000 images): run `convpool report` (or `convpool ablate --data mnist`) for the full experiment."
    )


def context(
    out: str,
    ex: dict[str, Any],
    fi: dict[str, Any] | None,
    ab: dict[str, Any] | None,
    inv: dict[str, Any],
    timings: dict[str, float],
    command: str,
    files: list[str],
) -> dict[str, Any]:
    """Everything the templates print."""

    def rel(path: Any) -> str | None:
        if not path or not os.path.isfile(path):
            return None
        return os.path.relpath(path, out).replace(os.sep, "/")

    figs: dict[str, str | None] = {"learned_filters": None, "filters": None}
    for p in (fi or {}).get("figures", []):
        figs[os.path.splitext(os.path.basename(p))[0]] = rel(p)
    for p in (ab or {}).get("figures", []):
        figs[os.path.splitext(os.path.basename(p))[0]] = rel(p)
    for name in ("ablation", "ablation_shift", "size_sweep", "mnist_filters", "learned_se"):
        figs.setdefault(name, rel(os.path.join(out, f"{name}.png")))
    learned = ex.get("learned") or {}
    figs["explain"] = rel(ex.get("figure"))
    figs["algebra"] = rel(ex.get("algebra_figure") or learned.get("figure"))
    figs["invariance"] = rel(inv.get("figure"))
    lp = C.learned_pooling(ex, ab)
    if lp and not ex.get("learned"):
        figs["learned_se"] = rel(os.path.join(out, "learned_se.png"))
    elif lp:
        figs["learned_se"] = None  # the algebra figure draws them
    abc = C.ablation(ab) if ab and ab["ablation"] else None
    sw = C.sweep(ab) if ab else None
    shown = {
        "learned": lp is not None,
        "filters": fi is not None,
        "ablation": abc is not None,
        "sweep": sw is not None,
        "algebra": True,
    }
    return {
        "ex": ex,
        "we": C.worked_example(ex),
        "mp": ex.get("maxplus"),
        "lp": lp,
        "fi": fi,
        "fic": C.filters(fi) if fi else None,
        "ab": ab,
        "abc": abc,
        "sw": sw,
        "inv": inv,
        "invc": C.invariance(inv),
        "without": C.WITHOUT,
        "fig": figs,
        "files": files,
        "meta": _meta(command, timings),
        "short_run": _short_run(ab),
        "sections": [(i, t) for i, t in SECTIONS if shown.get(i, True)],
    }


def build_html(
    out: str,
    ex: dict[str, Any],
    fi: dict[str, Any] | None,
    ab: dict[str, Any] | None,
    inv: dict[str, Any],
    timings: dict[str, float],
    command: str,
    since: float | None = None,
) -> str:
    """Render ``OUT/index.html``; it links the files in ``out`` written since ``since``
    (a time.time() value; None: every JSON and PNG file there)."""
    files = sorted(
        f
        for f in os.listdir(out)
        if f.endswith((".json", ".png"))
        and os.path.isfile(os.path.join(out, f))
        and (since is None or os.path.getmtime(os.path.join(out, f)) >= since)
    )
    page = environment().get_template("report.html").render(**context(out, ex, fi, ab, inv, timings, command, files))
    path = os.path.join(out, "index.html")
    text = page.encode("utf-8")
    atomic_write(path, lambda f: f.write(text), ".html")
    return path


def _extra_figures(out: str, ex: dict[str, Any], ab: dict[str, Any]) -> None:
    """From the ablation: LeNet-5's learned first-layer filters, and the max-plus
    structuring elements when ``explain`` did not train its own."""
    from . import _ablate_show, filters

    per = ab["ablation"]
    if "max" in per and per["max"].get("first_filters"):
        f = np.asarray(per["max"]["first_filters"])
        name = f"LeNet-5, {ab['config']['data']}"
        filters.figure_learned({name: (f, per["max"]["test_acc"][0])}, os.path.join(out, "mnist_filters.png"))
    if "maxplus" in per and not ex.get("learned"):
        _ablate_show.figure_learned_se(ab, os.path.join(out, "learned_se.png"))


def main(
    out: str = "convpool-report",
    quick: bool = False,
    data: str = "mnist",
    skip_ablation: bool = False,
    workers: int = 2,
    command: str = "convpool report",
    explain_learn: int = 0,
    learn: tuple[str, ...] = (),
    learn_epochs: int = 2,
    **ablation: Any,
) -> str:
    """Run the lab's parts and write ``OUT/index.html``.  ``quick``: the demo's short
    ablation (:data:`ablate.DEMO`) instead of the full one (:data:`ablate.FULL`);
    ``ablation`` overrides single settings (seeds, epochs, n_train, sizes, ...).
    ``learn``: datasets the filters part trains a CNN on (default none: the
    ablation's LeNet-5 supplies the learned filters; with ``skip_ablation``, MNIST)."""
    from . import ablate, explain, filters, invariance
    from ._common import console

    con = console()
    os.makedirs(out, exist_ok=True)
    since = time.time() - 1.0
    settings = {**(ablate.DEMO if quick else ablate.FULL), **{k: v for k, v in ablation.items() if v is not None}}
    if skip_ablation and not learn:
        learn = ("mnist",)
    timings: dict[str, float] = {}
    steps = 3 if skip_ablation else 4

    def step(i: int, name: str) -> float:
        sys.stdout.flush()
        con.rule(f"[bold cyan][{i}/{steps}] {name}")
        sys.stdout.flush()
        return time.perf_counter()

    t = step(1, "explain: the worked example, the two algebras")
    ex = explain.main(out=out, learn=explain_learn) if explain_learn else explain.main(out=out)
    timings["explain"] = time.perf_counter() - t
    t = step(2, "filters: a real image, hand-made filters and pools")
    fi = filters.main(out=out, learn=learn, epochs=learn_epochs)
    timings["filters"] = time.perf_counter() - t
    t = step(3, "invariance: shifts, layer by layer")
    inv = invariance.main(out=out)
    timings["invariance"] = time.perf_counter() - t
    ab = None
    if not skip_ablation:
        t = step(4, f"ablate: LeNet-5 variants and the size sweep on {data} (parallel workers)")
        ab = ablate.main(out=out, data=data, workers=workers, **settings)
        _extra_figures(out, ex, ab)
        timings["ablate"] = time.perf_counter() - t
    write_json(os.path.join(out, "report.json"), {"timings": timings, "command": command})
    path = build_html(out, ex, fi, ab, inv, timings, command, since)
    con.print(f"\n[bold green]report written:[/] {os.path.abspath(path)}")
    return path
