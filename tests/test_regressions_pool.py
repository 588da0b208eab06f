"""Regression tests for the pooling defects of the red-team issue (17), one or more per
defect, named after it.  Each runs on the backend the suite runs on (the pure-NumPy leg
of `make test` runs this file again with CONVPOOL_PURE_NUMPY=1); tests that compare the
two backends switch to the NumPy one themselves and are skipped without numba."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import convpool
import convpool.functional as F
from convpool import nn
from convpool.backends.compiled import kernels as _kernels
from convpool.functional import _reduce
from oracle import assert_close, check_against_torch


def cut_every_geometry() -> Any:
    """The pool trim's thresholds at their extreme: every geometry is cut."""
    return convpool.config.tuning(pool_trim_ratio=0, pool_trim_slack=-1)


@pytest.fixture
def cut_everything() -> Any:
    with cut_every_geometry():
        yield


G = 10**9
MODES = [None, "zeros", "reflect", "replicate", "circular"]
NP_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
TORCH_AAVG = {1: TF.adaptive_avg_pool1d, 2: TF.adaptive_avg_pool2d, 3: TF.adaptive_avg_pool3d}
TORCH_LP = {1: TF.lp_pool1d, 2: TF.lp_pool2d, 3: TF.lp_pool3d}
TORCH_MAX = {1: TF.max_pool1d, 2: TF.max_pool2d, 3: TF.max_pool3d}
TORCH_AVG = {1: TF.avg_pool1d, 2: TF.avg_pool2d, 3: TF.avg_pool3d}

needs_numba = pytest.mark.skipif(not _kernels.enabled(), reason="numba not installed or disabled")


def _forward_backward(x: np.ndarray, reduction: str, *args: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Output, input gradient (of a fixed random dy) and, for selections, the indices."""
    y, ctx = F.reduce_window_forward(x, reduction, *args)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(x.dtype)
    gx = F.reduce_window_backward(dy, ctx)
    return y, gx, (_reduce.flat_indices(ctx) if reduction != "sum" else None)


def _peak_bytes(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _max_against_torch(x: np.ndarray, nd: int, *args: Any) -> None:
    check_against_torch(
        lambda x: F.reduce_window_forward(x, "max", nd, *args),
        F.reduce_window_backward,
        lambda xt: TORCH_MAX[nd](xt, *args),
        [x],
    )


def _avg_against_torch(x: np.ndarray, nd: int, *args: Any) -> None:
    check_against_torch(
        lambda x: F.avg_pool_forward(x, nd, *args),
        F.reduce_window_backward,
        lambda xt: TORCH_AVG[nd](xt, *args),
        [x],
    )


def _lp_against_torch(x: np.ndarray, p: float, nd: int, kernel: Any, ceil: bool) -> None:
    check_against_torch(
        lambda x: F.lp_pool_forward(x, p, nd, kernel, None, ceil),
        F.lp_pool_backward,
        lambda xt: TORCH_LP[nd](xt, float(p), kernel, None, ceil),
        [x],
    )


# --- defect 3: memory and time follow the input and the output ---------------------------


def test_defect3_avg_pool_huge_kernel_and_padding_is_bounded() -> None:
    """The issue's call asked for 7.45 GiB (compiled) or 3.47 EiB (NumPy).  Run it in a
    subprocess capped at 4 GiB of address space, so that a regression fails the test
    instead of the machine."""
    code = """
        import json, resource, time, tracemalloc
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        import numpy as np
        import convpool.functional as F
        x = np.random.default_rng(0).random((1, 1, 5, 5)).astype(np.float32)
        F.avg_pool2d(x, 3)  # load the kernels before measuring
        tracemalloc.start()
        t = time.perf_counter()
        y = F.avg_pool2d(x, 10**9, padding=5 * 10**8)
        seconds = time.perf_counter() - t
        expected = x.sum(dtype=np.float64) / 1e18  # count_include_pad: 10**9 x 10**9 elements
        print(json.dumps({"shape": y.shape, "y": float(y.ravel()[0]), "expected": expected,
                          "seconds": seconds, "peak": tracemalloc.get_traced_memory()[1]}))
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout)
    assert r["shape"] == [1, 1, 1, 1]
    assert r["y"] == pytest.approx(r["expected"], rel=1e-6)
    assert r["peak"] < 1 << 20, f"peak {r['peak']} bytes"
    assert r["seconds"] < 2.0


HUGE_CASES = {  # name: (reduction, nd, kernel, stride, padding, dilation, ceil_mode[, padding_mode])
    "kernel 1e9, padding 5e8": ("max", 2, G, None, G // 2, 1, False),
    "kernel 1e9, stride 1, padding 5e8": ("min", 2, G, 1, G // 2, 1, True),
    "median, kernel 1e9, padding 5e8": ("median", 2, G, 1, G // 2, 1, False),
    "sum, kernel 1e9, padding 5e8, 3-d": ("sum", 3, G, 1, G // 2, 1, True),
    "stride 1e9, ceil_mode": ("max", 2, 3, G, 1, 1, True),
    "dilation 5e8": ("max", 2, 3, 1, G // 2, G // 2, False),
    "sum of padding only, dilation 1e9": ("sum", 1, 2, 1, G // 2, G, False),
    "ceil_mode window 1e9 away": ("max", 1, 2 * G + 1, G + 2, G, 1, True),
    "median, ceil_mode window 1e9 away": ("median", 1, 2 * G + 1, G + 2, G, 1, True),
    "reflect, ceil_mode window overhanging by 1e9": ("max", 1, G, G, 2, 1, True, "reflect"),
    "replicate sum, ceil_mode window overhanging by 1e9": ("sum", 2, G, G, 1, 1, True, "replicate"),
}


@pytest.mark.parametrize("case", HUGE_CASES.values(), ids=HUGE_CASES.keys())
def test_defect3_every_pool_is_bounded_by_input_and_output(case: tuple[Any, ...]) -> None:
    """Forward, backward and indices of pools whose kernel, stride, padding or dilation
    reach 10**9 take memory like a pool of the input's size (the window copies of the
    NumPy path: at most about 2 MiB here), not gigabytes.  Their values are checked
    against PyTorch below and by the equivalence of cut and uncut windows."""
    red, nd, *args = case
    x = np.random.default_rng(0).standard_normal((2, 3) + (5, 4, 3)[:nd])
    _forward_backward(x, red, nd, *args)  # first call: the kernels load
    peak = _peak_bytes(lambda: _forward_backward(x, red, nd, *args))
    assert peak < 8 << 20, f"peak {peak} bytes"


def test_defect3_huge_windows_match_torch() -> None:
    """Values, gradients and indices of far-reaching windows against PyTorch (the cases
    PyTorch answers quickly), and the windows as seen by the closed-form divisors."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 5))
    for ceil, include_pad in [(False, True), (True, True), (True, False)]:
        _avg_against_torch(x, 1, 2 * G + 1, G + 2, G, ceil, include_pad)
    x2 = rng.standard_normal((1, 2, 5, 4))
    check_against_torch(
        lambda x: F.avg_pool_forward(x, 2, G, None, G // 2, True, False),
        F.reduce_window_backward,
        lambda xt: TF.avg_pool2d(xt, G, None, G // 2, True, False),
        [x2],
    )
    check_against_torch(
        lambda x: F.reduce_window_forward(x, "max", 2, 3, G, 1, 1, True),
        F.reduce_window_backward,
        lambda xt: TF.max_pool2d(xt, 3, G, 1, 1, True),
        [x2],
    )
    y, idx = F.max_pool1d(x, 2 * G + 1, G + 2, G, 1, True, return_indices=True)  # two windows 1e9 apart
    assert_close(y, np.stack([x.max(axis=-1), x[..., 2:].max(axis=-1)], axis=-1), "far ceil_mode window")
    np.testing.assert_array_equal(idx, np.stack([x.argmax(axis=-1), 2 + x[..., 2:].argmax(axis=-1)], axis=-1))


@pytest.mark.parametrize(
    "nd, kernel, stride, padding, ceil",
    [(1, 2001, 1002, 1000, True), (1, 2001, 1, 1000, False), (2, (201, 3), (1, 2), (100, 1), True)],
)
def test_defect3_cut_windows_match_torch_at_moderate_scale(
    nd: int, kernel: Any, stride: Any, padding: Any, ceil: bool, cut_everything: None
) -> None:
    """Windows reaching far enough past the input to be cut (the first case is the
    unfolded pair of ceil_mode windows): max with indices, average, against PyTorch."""
    x = np.random.default_rng(3).standard_normal((2, 2) + (5, 6)[:nd])
    y, ctx = F.reduce_window_forward(x, "max", nd, kernel, stride, padding, 1, ceil)
    assert ctx.trim is not None
    _max_against_torch(x, nd, kernel, stride, padding, 1, ceil)
    _, idx_t = TORCH_MAX[nd](torch.tensor(x), kernel, stride, padding, 1, ceil, return_indices=True)
    np.testing.assert_array_equal(_reduce.flat_indices(ctx), idx_t.numpy())
    for include_pad in (True, False):
        _avg_against_torch(x, nd, kernel, stride, padding, ceil, include_pad)


@st.composite
def far_windows(draw):  # type: ignore[no-untyped-def]
    """Geometries with kernels, strides and padding up to several times the input."""
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 12)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 14)) for _ in range(nd))
    pads = tuple(draw(st.integers(0, (d * (k - 1) + 1) // 2)) for k, d in zip(kernel, dilation, strict=True))
    size = tuple(draw(st.integers(1, 5)) for _ in range(nd))
    return nd, size, kernel, stride, pads, dilation, draw(st.booleans())


def _with_infinities(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Small integers (ties), with inf, -inf and sometimes NaN."""
    x = rng.integers(-2, 3, shape).astype(np.float64)
    for value, p in ((np.inf, 0.1), (-np.inf, 0.1), (np.nan, 0.03 * rng.integers(0, 2))):
        x.ravel()[rng.random(x.size) < p] = value
    return x


@given(far_windows(), st.sampled_from(["max", "min", "median", "sum"]), st.sampled_from(MODES), st.integers(0, 2**16))
def test_defect3_cut_windows_equal_the_uncut_ones(case, reduction, mode, seed):  # type: ignore[no-untyped-def]
    """Cutting the windows to what they read changes nothing: values and indices exactly
    (ties and infinities included), gradients up to the order of summation; with a
    border mode the cut keeps the border (and drops the ceil_mode room)."""
    nd, size, kernel, stride, pads, dilation, ceil = case
    x = _with_infinities(np.random.default_rng(seed), (2, 2, *size))
    args = (nd, kernel, stride, pads, dilation, ceil, mode)
    try:
        whole = _forward_backward(x, reduction, *args)
    except ValueError as e:  # a window lying entirely in the padding: refused either way
        with cut_every_geometry(), pytest.raises(ValueError, match=str(e)[:30]):
            _forward_backward(x, reduction, *args)
        return
    with cut_every_geometry():  # cut every geometry
        y, ctx = F.reduce_window_forward(x, reduction, *args)
        assert ctx.trim is not None
        cut = _forward_backward(x, reduction, *args)
    np.testing.assert_array_equal(cut[0], whole[0]) if reduction != "sum" else assert_close(cut[0], whole[0], "sum")
    assert_close(cut[1], whole[1], "gradient", rtol=1e-12, atol=1e-12)
    if reduction != "sum":
        np.testing.assert_array_equal(cut[2], whole[2])


def test_defect3_border_padding_beyond_the_input_is_refused() -> None:
    """A border mode copies input values into the padding: pools allow at most the input
    size (reflect: less), so the padded input stays within three input sizes."""
    x = np.ones((1, 1, 3))
    for mode in ("replicate", "zeros", "circular"):
        with pytest.raises(ValueError, match="at most the input size"):
            F.max_pool1d(x, 9, 1, 4, padding_mode=mode)
    with pytest.raises(ValueError, match="reflect padding must be smaller"):
        F.max_pool1d(x, 7, 1, 3, padding_mode="reflect")
    # zeros add nothing to a sum: the average with zeros padding is count_include_pad=True
    assert_close(F.avg_pool1d(x, 9, 1, 4, padding_mode="zeros"), F.avg_pool1d(x, 9, 1, 4), "zeros-padded average")


# --- defect 4: adaptive average pooling keeps a NaN in its windows -----------------------


@pytest.mark.parametrize(
    "nd, shape, out", [(2, (4, 4), 2), (1, (7,), 3), (2, (5, 7), (3, 4)), (3, (4, 5, 3), (2, 3, 2))]
)
def test_defect4_adaptive_avg_pool_nan_and_inf_stay_in_their_windows(nd: int, shape: tuple[int, ...], out: Any) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, *shape))
    x[0, 0].flat[0] = np.nan
    x[0, 1].flat[-1] = np.inf
    x[1, 2].flat[0], x[1, 2].flat[-1] = np.inf, -np.inf
    y, ctx = F.adaptive_avg_pool_forward(x, nd, out)
    xt = torch.tensor(x, requires_grad=True)
    yt = TORCH_AAVG[nd](xt, out)
    dy = np.where(np.isfinite(y), rng.standard_normal(y.shape), np.nan)  # as a loss of y**2 would give
    yt.backward(torch.tensor(dy))
    gx = F.adaptive_avg_pool_backward(dy, ctx)
    assert 0 < np.isnan(y).sum() < y.size and 0 < np.isnan(gx).sum() < gx.size
    np.testing.assert_array_equal(np.isnan(y), torch.isnan(yt).numpy())
    np.testing.assert_array_equal(np.isnan(gx), torch.isnan(xt.grad).numpy())
    assert_close(y, yt.detach().numpy(), "forward")
    assert_close(gx, xt.grad.numpy(), "gradient")


def test_defect4_the_issues_example() -> None:
    x = np.ones((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 0] = np.nan
    y, ctx = F.adaptive_avg_pool_forward(x, 2, 2)
    assert np.isnan(y).sum() == 1 and np.isnan(y[0, 0, 0, 0])
    gx = F.adaptive_avg_pool_backward(np.where(np.isnan(y), np.nan, 1.0).astype(np.float32), ctx)
    assert np.isnan(gx).sum() == 4 and np.isnan(gx[0, 0, :2, :2]).all()


# --- defect 5: Lp pooling with p = inf, and p validated ----------------------------------


def test_defect5_lp_pool_inf_is_the_window_max_of_abs_as_torch() -> None:
    assert F.lp_pool2d(np.full((1, 1, 2, 2), 0.5, np.float32), float("inf"), 2).tolist() == [[[[0.5]]]]
    rng = np.random.default_rng(0)
    for nd, kernel in [(1, 3), (2, (2, 3)), (3, 2)]:
        _lp_against_torch(rng.standard_normal((2, 2) + (7, 6, 5)[:nd]), np.inf, nd, kernel, True)
    m = nn.LPPool2d(float("inf"), 2)
    assert_close(m(np.arange(16.0).reshape(1, 1, 4, 4) - 8), np.array([[[[8.0, 6.0], [5.0, 7.0]]]]), "module")


@pytest.mark.parametrize(
    "p, exc",
    [
        (0, ValueError),
        (-1, ValueError),
        (float("nan"), ValueError),
        (-np.inf, ValueError),
        ("2", TypeError),
        (True, TypeError),
    ],
)
def test_defect5_lp_pool_rejects_norm_types_that_are_not_positive_numbers(p: Any, exc: type) -> None:
    x = np.ones((1, 1, 4, 4))
    with pytest.raises(exc, match="norm_type must be a positive number"):
        F.lp_pool2d(x, p, 2)
    with pytest.raises(exc, match="norm_type must be a positive number"):
        nn.LPPool2d(p, 2)


def test_defect5_lp_pool_gradient_of_an_all_zero_window_is_zero_as_torch() -> None:
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, :2, :2] = [[1.0, 2.0], [0.5, 3.0]]
    for p in (2, 3, 1.5):
        _lp_against_torch(x, p, 2, 2, False)


# --- defect 6: empty inputs --------------------------------------------------------------


def _pools(nd: int) -> dict[str, tuple[Callable[..., Any], Callable[..., Any]]]:
    """Every pool as ``forward(x) -> (y, ctx)`` and its backward."""
    rw, rwb = F.reduce_window_forward, F.reduce_window_backward
    return {
        "max": (lambda x: rw(x, "max", nd, 2), rwb),
        "min (reflect, ceil_mode)": (lambda x: rw(x, "min", nd, 3, 2, 1, 1, True, "reflect"), rwb),
        "median (padding)": (lambda x: rw(x, "median", nd, 3, 1, 1), rwb),
        "sum (dilation)": (lambda x: rw(x, "sum", nd, 2, 1, 1, 2), rwb),
        "avg": (lambda x: F.avg_pool_forward(x, nd, 3, 2, 1, True, False), rwb),
        "lp": (lambda x: F.lp_pool_forward(x, 2, nd, 2), F.lp_pool_backward),
        "lp inf": (lambda x: F.lp_pool_forward(x, np.inf, nd, 2), F.lp_pool_backward),
        "adaptive avg": (lambda x: F.adaptive_avg_pool_forward(x, nd, 3), F.adaptive_avg_pool_backward),
        "global avg": (lambda x: F.adaptive_avg_pool_forward(x, nd, 1), F.adaptive_avg_pool_backward),
        "adaptive max": (lambda x: F.adaptive_max_pool_forward(x, nd, 3)[::2], F.adaptive_max_pool_backward),
    }


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("lead", [(0, 3), (2, 0), (0, 0)])
def test_defect6_empty_batch_or_channels_give_empty_outputs(nd: int, lead: tuple[int, int]) -> None:
    """As PyTorch for an empty batch (PyTorch refuses zero channels for some pools;
    convpool gives the empty output every time), forward and backward."""
    x = np.zeros(lead + (6,) * nd, np.float32)
    for name, (forward, backward) in _pools(nd).items():
        y, ctx = forward(x)
        full = forward(np.ones((1, 1) + (6,) * nd, np.float32))[0]
        assert y.shape == lead + full.shape[2:] and y.dtype == np.float32, name
        gx = backward(np.zeros_like(y), ctx)
        assert gx.shape == x.shape and gx.dtype == np.float32, name
    for mode in ("constant", "reflect", "replicate", "circular"):
        y = F.pad(x, (1, 2) * nd, mode)
        assert y.shape == lead + (9,) * nd
        assert F.pad_grad(y, (1, 2) * nd, mode).shape == x.shape


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_defect6_empty_spatial_dim_is_refused_naming_the_shape_and_dim(nd: int) -> None:
    for dim in range(nd):
        spatial = tuple(0 if i == dim else 4 for i in range(nd))
        x = np.zeros((1, 2) + spatial)
        for forward, _ in _pools(nd).values():
            with pytest.raises(ValueError, match=rf"shape \(1, 2, .*\) has an empty spatial dim {dim}"):
                forward(x)
        with pytest.raises(ValueError, match=rf"shape \(2, .*\) has an empty spatial dim {dim}"):
            F.reduce_window(x[0], "max", (1,) * nd)  # unbatched: its own shape is named
        for mode in ("reflect", "replicate", "circular"):
            with pytest.raises(ValueError, match=rf"dim {2 + dim} of the input of shape \(1, 2, .*\) is empty"):
                F.pad(x, (1, 1) * nd, mode)
        # a constant fills an empty dimension, as PyTorch
        expected = TF.pad(torch.tensor(x), (1, 1) * nd, value=3.0).numpy()
        np.testing.assert_array_equal(F.pad(x, (1, 1) * nd, value=3.0), expected)


def test_defect6_the_issues_examples() -> None:
    with pytest.raises(ValueError, match=r"input of shape \(1, 1, 0, 4\) has an empty spatial dim 0"):
        F.adaptive_avg_pool2d(np.zeros((1, 1, 0, 4), np.float32), 1)
    with pytest.raises(ValueError, match=r"input of shape \(1, 1, 0, 4\) has an empty spatial dim 0"):
        F.adaptive_max_pool2d(np.zeros((1, 1, 0, 4), np.float32), 2)
    with pytest.raises(ValueError, match=r"mode='replicate' copies values from the input, but dim 2"):
        F.pad(np.zeros((1, 1, 0), np.float32), (1, 1), mode="replicate")
    with pytest.raises(ValueError, match="empty spatial dim"):
        nn.MaxPool2d(2)(np.zeros((1, 1, 0, 4)))


# --- defect 7: indices through border padding, and infinite ties with padding ----------


def test_defect7_the_issues_example() -> None:
    x = np.array([[[1.0, 2.0, 3.0, 9.0]]])
    _, idx = F.max_pool1d(x, 3, 1, 1, return_indices=True, padding_mode="circular")
    assert idx.tolist() == [[[3, 2, 3, 3]]]


def _expected_indices(x: np.ndarray, nd: int, kernel: Any, stride: Any, pads: Any, mode: str) -> np.ndarray:
    """An independent oracle for max pooling's indices with a border mode: pad the array
    of flat indices the way the values are padded (np.pad; -1 for zeros), and take each
    window's first maximum in scan order."""
    flat = np.arange(int(np.prod(x.shape[2:]))).reshape(x.shape[2:])
    widths = [(p, p) for p in pads]
    vp = np.pad(x, [(0, 0), (0, 0), *widths], mode=NP_MODES[mode])  # type: ignore[call-overload]
    ip = np.pad(flat, widths, mode=NP_MODES[mode], **({"constant_values": -1} if mode == "zeros" else {}))  # type: ignore[call-overload]
    out = tuple((n - k) // s + 1 for n, k, s in zip(ip.shape, kernel, stride, strict=True))
    idx = np.zeros(x.shape[:2] + out, dtype=np.int64)
    for o in np.ndindex(*out):
        window = tuple(slice(i * s, i * s + k) for i, s, k in zip(o, stride, kernel, strict=True))
        v = vp[(Ellipsis, *window)].reshape(x.shape[:2] + (-1,))
        idx[(Ellipsis, *o)] = ip[window].ravel()[np.argmax(v, axis=-1)]
    return idx


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_defect7_indices_with_every_padding_mode_match_an_oracle(mode: str, nd: int) -> None:
    rng = np.random.default_rng(nd)
    for _ in range(8):
        kernel = tuple(int(k) for k in rng.integers(1, 4, nd))
        stride = tuple(int(s) for s in rng.integers(1, 3, nd))
        pads = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
        x = rng.integers(-3, 4, (2, 2) + tuple(int(n) for n in rng.integers(3, 6, nd))).astype(np.float64)
        if mode == "zeros":
            x -= 5  # all negative: the padding's zeros win where they are read
        _, idx = getattr(F, f"max_pool{nd}d")(x, kernel, stride, pads, return_indices=True, padding_mode=mode)
        np.testing.assert_array_equal(idx, _expected_indices(x, nd, kernel, stride, pads, mode))


@needs_numba
@given(st.integers(1, 3), st.sampled_from(MODES), st.sampled_from(["max", "min", "median"]), st.integers(0, 2**16))
def test_defect7_both_backends_agree_on_indices_for_every_padding_mode(nd, mode, reduction, seed):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    kernel = tuple(int(k) for k in rng.integers(1, 4, nd))
    dilation = tuple(int(d) for d in rng.integers(1, 3, nd))
    stride = tuple(int(s) for s in rng.integers(1, 3, nd))
    pads = tuple(int(rng.integers(0, (d * (k - 1) + 1) // 2 + 1)) for k, d in zip(kernel, dilation, strict=True))
    size = tuple(
        int(rng.integers(max(p + 1, d * (k - 1) + 1 - 2 * p, 1), 6)) for k, d, p in zip(kernel, dilation, pads)
    )
    x = _with_infinities(rng, (2, 2, *size))
    args = (nd, kernel, stride, pads, dilation, bool(rng.integers(0, 2)), mode)
    try:
        fast = _forward_backward(x, reduction, *args)
    except ValueError:
        return
    with convpool.backend("numpy"):
        slow = _forward_backward(x, reduction, *args)
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[2], slow[2])
    assert_close(fast[1], slow[1], "gradient", rtol=1e-12, atol=1e-12)


def test_defect7_infinite_ties_never_select_the_padding() -> None:
    """-inf padding tied with -inf input: the input element is selected (PyTorch's index,
    and the gradient reaches the input), in both backends; likewise +inf for the median."""
    x = np.full((1, 1, 4), -np.inf)
    for kernel, dilation in [(3, 1), (2, 2)]:
        _max_against_torch(x, 1, kernel, 1, 1, dilation, False)
        _, idx = F.max_pool1d(x, kernel, 1, 1, dilation, return_indices=True)
        _, idx_t = TF.max_pool1d(torch.tensor(x), kernel, 1, 1, dilation, return_indices=True)
        np.testing.assert_array_equal(idx, idx_t.numpy())
    # median of [pad, inf, inf, inf, pad]: the lower median of the three real infs is the second
    _, idx = F.median_pool1d(np.full((1, 1, 3), np.inf), 5, 1, 2, return_indices=True)
    assert idx.tolist() == [[[1, 1, 1]]]


# --- defect 10: argument types -----------------------------------------------------------


@pytest.mark.parametrize(
    "call, exc, message",
    [
        (lambda: F.pad(np.zeros((1, 1, 3)), (1, 1), value="abc"), TypeError, "value must be a real number.*'abc'"),
        (lambda: F.pad(np.zeros((1, 1, 3)), (1, 1), value=1j), TypeError, "value must be a real number"),
        (
            lambda: F.avg_pool2d(np.zeros((1, 1, 4, 4)), 2, count_include_pad="no"),
            TypeError,
            "count_include_pad must be a bool, got 'no'",
        ),
        (
            lambda: F.avg_pool2d(np.zeros((1, 1, 4, 4)), 2, count_include_pad=1),
            TypeError,
            "count_include_pad must be a bool, got 1",
        ),
        (
            lambda: F.avg_pool2d(np.zeros((1, 1, 4, 4)), 2, ceil_mode="no"),
            TypeError,
            "ceil_mode must be a bool, got 'no'",
        ),
        (
            lambda: F.avg_pool2d(np.zeros((1, 1, 4, 4)), 2, divisor_override=True),
            TypeError,
            "divisor_override must be a positive int or None, got True",
        ),
        (
            lambda: F.avg_pool2d(np.zeros((1, 1, 4, 4)), 2, divisor_override=2.0),
            TypeError,
            "divisor_override must be a positive int or None, got 2.0",
        ),
        (
            lambda: F.avg_pool2d(np.zeros((1, 1, 4, 4)), 2, divisor_override=-2),
            ValueError,
            "divisor_override must be a positive int",
        ),
        (
            lambda: F.max_pool2d(np.zeros((1, 1, 4, 4)), 2, return_indices="yes"),
            TypeError,
            "return_indices must be a bool, got 'yes'",
        ),
        (
            lambda: F.median_pool1d(np.zeros((1, 1, 4)), 2, return_indices=1),
            TypeError,
            "return_indices must be a bool, got 1",
        ),
        (lambda: F.adaptive_max_pool2d(np.zeros((1, 1, 4, 4)), 2, "yes"), TypeError, "return_indices must be a bool"),
        (lambda: nn.AvgPool2d(2, count_include_pad="no"), TypeError, "count_include_pad must be a bool"),
        (lambda: nn.AvgPool2d(2, divisor_override=1.5), TypeError, "divisor_override must be a positive int"),
        (lambda: nn.MaxPool2d(2, ceil_mode="no"), TypeError, "ceil_mode must be a bool"),
        (lambda: nn.MaxPool2d(2, return_indices="yes"), TypeError, "return_indices must be a bool"),
        (lambda: nn.AdaptiveMaxPool2d(2, return_indices=0), TypeError, "return_indices must be a bool"),
        (lambda: nn.LPPool2d(2, 2, ceil_mode=None), TypeError, "ceil_mode must be a bool"),
    ],
)
def test_defect10_argument_types_are_checked(call: Callable[[], object], exc: type, message: str) -> None:
    with pytest.raises(exc, match=message):
        call()


def test_defect10_accepted_values_as_torch() -> None:
    x = np.random.default_rng(0).standard_normal((1, 1, 4, 4))
    for value in (2, 2.5, np.float32(2.5), np.int64(-1), True):
        np.testing.assert_array_equal(
            F.pad(x, (1, 1), value=value), TF.pad(torch.tensor(x), (1, 1), value=float(value)).numpy()
        )
    assert_close(
        F.avg_pool2d(x, 3, 1, 1, divisor_override=np.int64(4)),
        TF.avg_pool2d(torch.tensor(x), 3, 1, 1, divisor_override=4).numpy(),
        "np.int64 divisor",
    )
    assert F.max_pool2d(x, 2, ceil_mode=np.bool_(True)).shape == (1, 1, 2, 2)


@pytest.mark.parametrize("kernel, stride, padding", [(1, 1, 0), (2, 2, 0), (3, 1, 1)])
def test_avg_pool_divides_its_own_sums_in_place_never_the_input(kernel: int, stride: int, padding: int) -> None:
    """avg_pool's forward divides the window sums in place (no second output array);
    the input, even where a window of one is the input itself, is never written."""
    x = np.arange(1, 25, dtype=np.float32).reshape(1, 2, 12)
    x0 = x.copy()
    y = F.avg_pool1d(x, kernel, stride, padding)
    np.testing.assert_array_equal(x, x0)
    assert not np.shares_memory(y, x)
    want = torch.nn.functional.avg_pool1d(torch.from_numpy(x0), kernel, stride, padding).numpy()
    np.testing.assert_allclose(y, want, rtol=1e-6)
