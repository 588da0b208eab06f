"""The layers' documentation: every public class of ``convpool.nn`` is written out as a
``class`` statement with a PyTorch-style docstring of its own (summary, Args, Shape,
Example), every ``>>>`` example in ``convpool.nn`` runs as shown, and ``convpool.nn``
builds on public names only (no private functional module, no backend)."""

from __future__ import annotations

import ast
import doctest
import importlib
import inspect
import pathlib
import pkgutil
import re
import textwrap

import numpy as np
import pytest

import convpool
import convpool.functional as F
from convpool import nn

MODULES = [importlib.import_module(f"{nn.__name__}.{info.name}") for info in pkgutil.iter_modules(nn.__path__)]
NN_DIR = pathlib.Path(nn.__file__).parent
# public layer classes defined in convpool.nn (the losses live elsewhere)
LAYERS = sorted(
    (
        cls
        for name in nn.__all__
        if isinstance(cls := getattr(nn, name), type)
        and issubclass(cls, nn.Module)
        and cls.__module__.startswith("convpool.nn.")
        and cls is not nn.Module
    ),
    key=lambda c: c.__name__,
)
# containers and pass-throughs: no shape formula to state
NO_SHAPE = {"Sequential", "Identity"}


def _doctests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = []
    for module in MODULES:
        found += [t for t in finder.find(module, module.__name__, globs={}) if t.examples]
    return sorted(found, key=lambda t: t.name)


DOCTESTS = _doctests()


@pytest.mark.parametrize("test", DOCTESTS, ids=[t.name.removeprefix("convpool.nn.") for t in DOCTESTS])
def test_docstring_example_runs(test: doctest.DocTest) -> None:
    np.random.seed(0)  # noqa: NPY002  (the examples draw with np.random.rand, as PyTorch's use torch.randn)
    convpool.manual_seed(0)
    test.globs.update(np=np, nn=nn, F=F)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    report: list[str] = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def test_every_layer_has_an_example_that_runs() -> None:
    documented = {t.name.rsplit(".", 1)[-1] for t in DOCTESTS}
    missing = [cls.__name__ for cls in LAYERS if cls.__name__ not in documented]
    assert not missing, f"no >>> example in the docstring of {missing}"


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
def test_layer_is_written_out_with_its_own_docstring(cls: type) -> None:
    source = inspect.getsource(cls)
    assert source.startswith(f"class {cls.__name__}("), f"{cls.__name__} is not a class statement"
    written = ast.get_docstring(ast.parse(textwrap.dedent(source)).body[0])
    doc = cls.__dict__.get("__doc__")
    assert written and doc and written == inspect.cleandoc(doc), f"{cls.__name__} has no docstring of its own"
    assert "{" not in doc.split("Example")[0].replace("{}", ""), f"placeholder left in {cls.__name__}'s docstring"
    summary = doc.strip().splitlines()[0]
    assert summary.endswith((".", ":")), f"{cls.__name__}: the first line is not a one-line summary: {summary!r}"
    params = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self",)]
    if params:
        assert "Args:" in doc, f"{cls.__name__} has no Args section"
        args_block = doc.split("Args:")[1].split("Shape:")[0]
        listed = re.findall(r"^\s+(\w+(?:,\s*\w+)*):", args_block, re.M)
        names = {n.strip() for entry in listed for n in entry.split(",")}
        absent = [p for p in params if p not in names]
        assert not absent, f"{cls.__name__}'s Args section does not list {absent}"
    if cls.__name__ not in NO_SHAPE:
        assert "Shape:" in doc, f"{cls.__name__} has no Shape section"
    assert "Example" in doc


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
def test_window_layers_state_the_padded_output_size(cls: type) -> None:
    """Where a layer takes ``padding`` for a sliding window, its Shape section gives the
    output size with ``pad_lo + pad_hi`` and says which padding forms it takes."""
    params = inspect.signature(cls.__init__).parameters
    doc = cls.__doc__ or ""
    if "padding" not in params or "kernel_size" not in params:
        return
    shape = doc.split("Shape:")[1].split("Example")[0]
    assert "pad_lo + pad_hi" in shape, f"{cls.__name__}: Shape formula without pad_lo + pad_hi"
    assert "(lo, hi)" in doc or "symmetric" in doc, f"{cls.__name__}: padding forms not stated"


PRIVATE_IMPORT = re.compile(r"from \.\.(functional\._\w+|functional\.\w+ import .*\b_\w+|backends)\b")


@pytest.mark.parametrize("path", sorted(NN_DIR.glob("*.py")), ids=lambda p: p.name)
def test_nn_uses_public_names_only(path: pathlib.Path) -> None:
    """``convpool.nn`` imports the public functional API and geometry: no private
    functional module or name, no backend, no ``F.module._private`` attribute."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            assert parts[0] != "backends", f"{path.name}:{node.lineno} imports a backend"
            if parts[0] in ("functional", "geometry", "windows", "config"):
                assert not any(p.startswith("_") for p in parts), f"{path.name}:{node.lineno} imports {node.module}"
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name}:{node.lineno} imports private {private} from {node.module}"
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            if isinstance(base, ast.Name) and base.id in ("F", "geometry", "LP", "PP", "FR", "U", "PS", "MP", "CT"):
                raise AssertionError(f"{path.name}:{node.lineno} uses private {base.id}.{node.attr}")
            if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id == "F":
                raise AssertionError(f"{path.name}:{node.lineno} uses private F.{base.attr}.{node.attr}")
    assert not PRIVATE_IMPORT.search(path.read_text())


@pytest.mark.parametrize("path", sorted(NN_DIR.glob("*.py")), ids=lambda p: p.name)
def test_nn_files_stay_short(path: pathlib.Path) -> None:
    assert len(path.read_text().splitlines()) <= 400


def test_pool_classes_keep_their_module_and_names() -> None:
    """The written-out pools are the classes ``convpool.nn.pool`` always held (the
    adaptive ones now live in ``convpool.nn.adaptive`` and are importable from both), with
    the base classes that interop and the model summaries test for."""
    from convpool.nn import adaptive, pool

    for stem in ("Max", "Min", "Median", "Avg", "LP", "AdaptiveAvg", "AdaptiveMax"):
        for d in (1, 2, 3):
            cls = getattr(nn, f"{stem}Pool{d}d")
            assert getattr(pool, f"{stem}Pool{d}d") is cls and cls.nd == d
            home = adaptive if stem.startswith("Adaptive") else pool
            assert cls.__module__ == home.__name__ and cls.__qualname__ == f"{stem}Pool{d}d"
    for base in ("_SelectPoolNd", "_MaxPoolNd", "_AvgPoolNd", "_LPPoolNd", "_AdaptiveAvgPoolNd", "_AdaptiveMaxPoolNd"):
        assert isinstance(getattr(pool, base), type)
    assert issubclass(nn.MaxPool2d, pool._SelectPoolNd) and not issubclass(nn.AvgPool2d, pool._SelectPoolNd)
    assert repr(nn.MaxPool2d(3, 2, 1)) == (
        "MaxPool2d(kernel_size=(3, 3), stride=(2, 2), padding=((1, 1), (1, 1)), dilation=(1, 1), ceil_mode=False)"
    )
