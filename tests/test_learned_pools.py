"""Pools with learned parameters (GeM, LSE, mixed, gated) and published parameter-free
pools (SoftPool, stochastic, BlurPool, MaxBlurPool, spatial pyramid): numerical
gradients for the input and every parameter, relations to max/avg pooling, modules
in a network, state dicts and errors - on every backend."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch

import convpool
import convpool.functional as F
from convpool import losses, nn, optim
from oracle import numerical_grad


@pytest.fixture(params=convpool.available_backends())
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    with convpool.backend(request.param):
        yield request.param


def unit_tie_free(rng: np.random.Generator, shape: tuple[int, ...], low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Distinct values spread evenly over [low, high], shuffled (tie-free, unit scale)."""
    n = int(np.prod(shape))
    return (low + (high - low) * (rng.permutation(n) + 0.5) / n).reshape(shape)


def assert_grad(
    f: Callable[[np.ndarray], np.ndarray], a: np.ndarray, dy: np.ndarray, ours: np.ndarray, what: str
) -> None:
    num = numerical_grad(f, a, dy)
    assert np.shape(ours) == a.shape, f"{what}: gradient shape {np.shape(ours)} != {a.shape}"
    np.testing.assert_allclose(ours, num, rtol=1e-6, atol=1e-8, err_msg=what)


# --- module gradients: the input and every parameter, numerically -----------------------------

RNG_SEED = 5


def _pos(shape: tuple[int, ...]) -> np.ndarray:  # tie-free, positive
    return unit_tie_free(np.random.default_rng(RNG_SEED), shape, 0.1, 2.0)


def _signed(shape: tuple[int, ...]) -> np.ndarray:  # tie-free, both signs
    return unit_tie_free(np.random.default_rng(RNG_SEED), shape, -1.5, 1.5)


F64 = np.float64
MODULE_CASES: list[tuple[str, Callable[[], nn.Module], Callable[[], np.ndarray]]] = [
    ("gem2d", lambda: nn.GeMPool2d(3, 2, 1, p=2.5, dtype=F64), lambda: _signed((2, 2, 5, 6)) + 0.8),
    ("gem2d-global", lambda: nn.GeMPool2d(dtype=F64), lambda: _pos((2, 3, 4, 5))),
    ("gem1d", lambda: nn.GeMPool1d(2, dtype=F64), lambda: _pos((2, 2, 7))),
    ("gem3d-fixed-p", lambda: nn.GeMPool3d(2, 1, p=4.0, learn_p=False, dtype=F64), lambda: _pos((1, 2, 3, 3, 4))),
    ("lse2d", lambda: nn.LSEPool2d(3, 2, 1, beta=1.7, learn_beta=True, dtype=F64), lambda: _signed((2, 2, 5, 6))),
    ("lse1d-fixed", lambda: nn.LSEPool1d(3, 1, beta=0.5), lambda: _signed((2, 3, 6))),
    ("lse3d", lambda: nn.LSEPool3d(2, learn_beta=True, dtype=F64), lambda: _signed((1, 2, 4, 3, 4))),
    ("mixed2d", lambda: nn.MixedPool2d(3, 2, 1, alpha=0.3, dtype=F64), lambda: _signed((2, 2, 5, 6))),
    ("mixed1d", lambda: nn.MixedPool1d(2, dtype=F64), lambda: _signed((2, 2, 7))),
    ("mixed3d-fixed", lambda: nn.MixedPool3d(2, alpha=0.8, learn_alpha=False), lambda: _signed((1, 2, 4, 4, 2))),
    ("gated2d", lambda: nn.GatedPool2d(2, 3, 2, 1, dtype=F64), lambda: _signed((2, 2, 5, 6))),
    ("gated1d", lambda: nn.GatedPool1d(3, 2, dtype=F64), lambda: _signed((2, 3, 6))),
    ("gated3d", lambda: nn.GatedPool3d(2, 2, dtype=F64), lambda: _signed((1, 2, 4, 2, 4))),
    ("soft2d", lambda: nn.SoftPool2d(3, 2), lambda: _signed((2, 2, 5, 6))),
    ("soft1d", lambda: nn.SoftPool1d(2), lambda: _signed((2, 2, 7)) * 3),
    ("soft3d", lambda: nn.SoftPool3d(2, 1), lambda: _signed((1, 2, 3, 3, 3))),
    ("stochastic2d-eval", lambda: nn.StochasticPool2d(2).eval(), lambda: _pos((2, 2, 4, 6))),
    ("stochastic2d-train", lambda: nn.StochasticPool2d(3, 2), lambda: _pos((2, 2, 5, 5))),
    ("stochastic1d-train", lambda: nn.StochasticPool1d(2), lambda: _pos((2, 2, 6))),
    ("stochastic3d-eval", lambda: nn.StochasticPool3d(2).eval(), lambda: _pos((1, 2, 4, 2, 4))),
    ("blur2d", lambda: nn.BlurPool2d(2), lambda: _signed((2, 2, 6, 5))),
    ("blur2d-f4-zeros", lambda: nn.BlurPool2d(2, 4, 2, "zeros"), lambda: _signed((1, 2, 6, 7))),
    ("blur1d-f5-replicate", lambda: nn.BlurPool1d(3, 5, 3, "replicate"), lambda: _signed((2, 3, 8))),
    ("blur3d-circular", lambda: nn.BlurPool3d(2, 3, 2, "circular"), lambda: _signed((1, 2, 3, 4, 4))),
    ("maxblur2d", lambda: nn.MaxBlurPool2d(2), lambda: _signed((2, 2, 6, 5))),
    ("maxblur1d", lambda: nn.MaxBlurPool1d(2, 3, filt_size=4), lambda: _signed((2, 2, 9))),
    ("spp2d-max", lambda: nn.SpatialPyramidPool2d((1, 2, 3)), lambda: _signed((2, 2, 5, 7))),
    ("spp2d-avg", lambda: nn.SpatialPyramidPool2d((1, 2, 4), mode="avg"), lambda: _signed((2, 2, 4, 6))),
    ("spp1d", lambda: nn.SpatialPyramidPool1d((1, 3)), lambda: _signed((2, 2, 7))),
    ("spp3d", lambda: nn.SpatialPyramidPool3d((1, 2)), lambda: _signed((1, 2, 3, 2, 4))),
]


@pytest.mark.parametrize("name, make, data", MODULE_CASES, ids=[c[0] for c in MODULE_CASES])
def test_module_gradients(backend: str, name: str, make: Callable[[], nn.Module], data: Callable[[], np.ndarray]):
    """``m.backward`` against central differences of the forward pass, for the input and
    every parameter, in float64 on tie-free inputs."""
    m = make()
    x = data()
    stochastic = "train" in name

    def run(a: np.ndarray) -> np.ndarray:
        if stochastic:  # the same draws each time: the selection is piecewise constant
            convpool.manual_seed(11)
        return m(a)

    y = run(x)
    assert y.dtype == np.float64 and np.isfinite(y).all()
    dy = np.random.default_rng(1).standard_normal(y.shape)
    m.zero_grad()
    gx = m.backward(dy)
    assert_grad(run, x, dy, gx, f"{name}: input")
    for pname, p in m.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert_grad(lambda _: run(x), p.data, dy, p.grad, f"{name}: parameter {pname}")
    learned = {"gem2d": ["p"], "lse2d": ["beta"], "mixed2d": ["alpha"], "gated2d": ["weight", "bias"]}
    if name in learned:
        assert [k for k, _ in m.named_parameters()] == learned[name]


@pytest.mark.parametrize("padding", [0, 1])
def test_functional_gradients_with_float_params(backend: str, padding: int):
    """The functional backward passes give parameter gradients shaped like the
    parameter given (a float: shape ()), checked numerically through the parameter."""
    x = _signed((2, 3, 5, 4)) + 1.0
    dy = np.random.default_rng(2).standard_normal(F.gem_pool2d(x, 3, 1, padding).shape)
    for fwd, bwd, value in (
        (F.gem_pool_forward, F.gem_pool_backward, 2.2),
        (F.lse_pool_forward, F.lse_pool_backward, 1.3),
        (F.mixed_pool_forward, F.mixed_pool_backward, 0.4),
    ):
        _, ctx = fwd(x, value, 2, 3, 1, padding)
        gx, gp = bwd(dy, ctx)
        assert gp.shape == ()
        arr = np.array([value])
        assert_grad(lambda a, f=fwd: f(x, a, 2, 3, 1, padding)[0], arr, dy, gp.reshape(1), fwd.__name__)
        assert_grad(lambda a, f=fwd, v=value: f(a, v, 2, 3, 1, padding)[0], x.copy(), dy, gx, fwd.__name__ + " x")


def test_gated_functional_gradients(backend: str):
    rng = np.random.default_rng(3)
    x = _signed((2, 3, 6, 5))
    w, b = rng.standard_normal((3, 2, 3)), rng.standard_normal(3)
    y, ctx = F.gated_pool_forward(x, w, b, 2, (2, 1), (0, 1))
    dy = rng.standard_normal(y.shape)
    gx, gw, gb = F.gated_pool_backward(dy, ctx)
    assert_grad(lambda a: F.gated_pool2d(a, w, b, (2, 1), (0, 1)), x, dy, gx, "input")
    assert_grad(lambda a: F.gated_pool2d(x, a, b, (2, 1), (0, 1)), w, dy, gw, "weight")
    assert_grad(lambda a: F.gated_pool2d(x, w, a, (2, 1), (0, 1)), b, dy, gb, "bias")
    assert F.gated_pool_backward(dy, F.gated_pool_forward(x, w, None, 2, (2, 1), (0, 1))[1])[2] is None


# --- relations to max and average pooling ------------------------------------------------------


def test_gem_p1_is_average_pooling(backend: str):
    x = np.random.default_rng(0).random((2, 3, 7, 6)) + 0.05
    np.testing.assert_allclose(
        F.gem_pool2d(x, 3, 2, 1, p=1.0), F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), rtol=1e-13
    )
    np.testing.assert_allclose(F.gem_pool2d(x, p=1.0), x.mean(axis=(2, 3), keepdims=True), rtol=1e-13)
    x3 = np.random.default_rng(1).random((1, 2, 4, 5, 6)) + 0.05
    np.testing.assert_allclose(F.gem_pool3d(x3, 2, p=1.0), F.avg_pool3d(x3, 2), rtol=1e-13)
    # and tends to max pooling as p grows
    np.testing.assert_allclose(F.gem_pool2d(x, 2, p=200.0), F.max_pool2d(x, 2), rtol=0.01)


def _geometric_mean_2x2(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    windows = np.log(x).reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5)
    return np.exp(windows.reshape(n, c, h // 2, w // 2, 4).mean(axis=-1))


@pytest.mark.parametrize("p", [1e-300, 1e-20, 1e-9])
def test_gem_tiny_p_is_the_geometric_mean(p: float):
    """(mean z**p)**(1/p) -> the geometric mean as p -> 0; computed directly, 1 + p log z
    rounds to 1 and the result was 1.0 for every window."""
    x = np.random.default_rng(0).random((2, 3, 4, 6)) + 0.05
    np.testing.assert_allclose(F.gem_pool2d(x, 2, p=p), _geometric_mean_2x2(x), rtol=1e-8)
    np.testing.assert_allclose(
        F.gem_pool2d(x.astype(np.float32), 2, p=p), _geometric_mean_2x2(x).astype(np.float32), rtol=1e-5
    )


@pytest.mark.parametrize("p", [1e3, 1e300])
def test_gem_huge_p_is_max_pooling(p: float):
    """As p -> inf the max; computed directly, z**p underflowed to 0 (or overflowed) in
    whole windows and the result was 0 (or inf)."""
    x = np.random.default_rng(1).random((2, 3, 4, 6)) * 0.9 + 0.05
    np.testing.assert_allclose(F.gem_pool2d(x, 2, p=p), F.max_pool2d(x, 2), rtol=2e-3 if p < 1e4 else 1e-12)
    big = x * 1e3  # z**p overflows the dtype
    np.testing.assert_allclose(F.gem_pool2d(big, 2, p=p), F.max_pool2d(big, 2), rtol=2e-3 if p < 1e4 else 1e-12)


def test_gem_float32_out_of_range_matches_float64():
    """float32 values of 50-150 at p = 20: z**p leaves float32's range; the log form
    gives float64's answer to float32 rounding, and gradients to match."""
    rng = np.random.default_rng(2)
    x = (rng.random((2, 2, 6, 4)) * 100 + 50).astype(np.float32)
    y32, ctx32 = F.gem_pool_forward(x, 20.0, 2, 2)
    y64, ctx64 = F.gem_pool_forward(x.astype(np.float64), 20.0, 2, 2)
    assert ctx32.lse is not None and ctx64.lse is None  # one log form, one direct form
    np.testing.assert_allclose(y32, y64, rtol=1e-5)
    dy = rng.standard_normal(y64.shape)
    g32, p32 = F.gem_pool_backward(dy.astype(np.float32), ctx32)
    g64, p64 = F.gem_pool_backward(dy, ctx64)
    np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(p32, p64, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("padding", [0, 1])
def test_gem_log_form_gradients(padding: int):
    """Gradients of the log form (p = 60 with a window of clamped values, whose z**p
    underflows directly), numerically, for x and p."""
    rng = np.random.default_rng(3)
    x = rng.random((1, 2, 5, 4)) + 0.5
    x[0, 0, :2, :2] = -1.0  # a window of clamped values: (1e-6)**60 underflows
    y, ctx = F.gem_pool_forward(x, 60.0, 2, 2, 1, padding)
    assert ctx.lse is not None
    dy = rng.standard_normal(y.shape)
    gx, gp = F.gem_pool_backward(dy, ctx)
    assert_grad(lambda a: F.gem_pool_forward(a, 60.0, 2, 2, 1, padding)[0], x.copy(), dy, gx, "x")
    assert_grad(lambda a: F.gem_pool_forward(x, a, 2, 2, 1, padding)[0], np.array([60.0]), dy, gp.reshape(1), "p")


def test_gem_inf_stays_in_its_window_and_keeps_the_direct_form():
    x = np.random.default_rng(4).random((1, 2, 4, 4)) + 0.5
    x[0, 0, 0, 0] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, ctx = F.gem_pool_forward(x, 3.0, 2, 2)
    assert ctx.lse is None  # one infinite input does not send the whole call to the log form
    assert y[0, 0, 0, 0] == np.inf and np.isfinite(np.delete(y.ravel(), 0)).all()
    finite = x.copy()
    finite[0, 0, 0, 0] = 1.0
    np.testing.assert_allclose(np.delete(y.ravel(), 0), np.delete(F.gem_pool2d(finite, 2).ravel(), 0), rtol=1e-14)
    # and in the log form (p so small that it is taken): inf too, not NaN
    y_log, ctx_log = F.gem_pool_forward(x, 1e-9, 2, 2)
    assert ctx_log.lse is not None and y_log[0, 0, 0, 0] == np.inf


def test_gem_overflow_where_no_window_reads_gives_finite_gradients():
    """z**p overflows at elements no window reads (stride 3 over 7): the gradients are
    finite (they were NaN: 0 * inf), and grad_p is shaped like p."""
    x = np.array([[[1.0, 2.0, 1e13, 3.0, 4.0, 1e13, 1e13]]], dtype=np.float32)
    p = np.array([3.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, ctx = F.gem_pool_forward(x, p, 1, 2, 3)
        gx, gp = F.gem_pool_backward(np.ones_like(y), ctx)
    assert np.isfinite(gx).all() and np.isfinite(gp).all() and gp.shape == (1,)
    np.testing.assert_allclose(y, F.gem_pool1d(x.astype(np.float64), 2, 3, p=3.0), rtol=1e-6)
    np.testing.assert_array_equal(gx[0, 0, [2, 5, 6]], 0)


@pytest.mark.parametrize("p", [0.3, 0.05, 2e-3])
def test_gem_float32_small_p_matches_float64(p: float):
    """Below p = 0.5 float32 GeM goes through the log form in float64: float32 rounding,
    where the direct form lost digits in proportion to 1/p."""
    x = np.random.default_rng(5).random((2, 3, 6, 4)) + 0.05
    np.testing.assert_allclose(F.gem_pool2d(x.astype(np.float32), 2, p=p), F.gem_pool2d(x, 2, p=p), rtol=3e-7)


def test_gem_and_lse_refuse_subnormal_exponents():
    with pytest.raises(ValueError, match=r"p must be at least 2.2250738585072014e-308 \(a normal float\), got 5e-324"):
        F.gem_pool2d(np.ones((1, 1, 2, 2)), p=5e-324)
    with pytest.raises(ValueError, match=r"beta must be at least .* got 5e-324"):
        F.lse_pool2d(np.ones((1, 1, 2, 2)), 2, beta=5e-324)


def test_gem_clamps_at_eps():
    x = np.array([[[-1.0, 0.0, -3.0, -2.0]]])
    np.testing.assert_allclose(F.gem_pool1d(x, 2, p=3.0, eps=1e-3), [[[1e-3, 1e-3]]], rtol=1e-12)


def test_mixed_alpha_one_and_zero_are_max_and_average(backend: str):
    x = _signed((2, 3, 7, 6))
    np.testing.assert_array_equal(F.mixed_pool2d(x, 3, 2, 1, alpha=1.0), F.max_pool2d(x, 3, 2, 1))
    np.testing.assert_allclose(
        F.mixed_pool2d(x, 3, 2, 1, alpha=0.0), F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), rtol=1e-14
    )
    mid = F.mixed_pool2d(x, 2, alpha=0.25)
    np.testing.assert_allclose(mid, 0.25 * F.max_pool2d(x, 2) + 0.75 * F.avg_pool2d(x, 2), rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lse_limits(backend: str, dtype: Any):
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 8, 7)).astype(dtype)
    big = F.lse_pool2d(x, 3, 1, 1, beta=1e4)
    assert big.dtype == dtype and np.isfinite(big).all()
    mx = F.max_pool2d(x, 3, 1, 1)
    # log(mean exp(beta x)) / beta lies in [max - log(K)/beta, max]
    assert np.all(big <= mx + 1e-6) and np.all(big >= mx - np.log(9) / 1e4 - 1e-6)
    small = F.lse_pool2d(x, 3, 1, 1, beta=1e-6)
    np.testing.assert_allclose(small, F.avg_pool2d(x, 3, 1, 1, count_include_pad=False), atol=1e-5)
    # gradients stay finite at both ends
    for beta in (1e4, 1e-6):
        y, ctx = F.lse_pool_forward(x, beta, 2, 3, 1, 1)
        gx, gb = F.lse_pool_backward(np.ones_like(y), ctx)
        assert np.isfinite(gx).all() and np.isfinite(gb).all()


def test_lse_exact_formula(backend: str):
    x = _signed((2, 2, 6, 6))
    beta = 2.5
    ref = np.log(F.avg_pool2d(np.exp(beta * x), 2)) / beta
    np.testing.assert_allclose(F.lse_pool2d(x, 2, beta=beta), ref, rtol=1e-13)
    # padding is left out of the mean
    ref_pad = np.log(F.avg_pool2d(np.exp(beta * x), 3, 2, 1, count_include_pad=False)) / beta
    np.testing.assert_allclose(F.lse_pool2d(x, 3, 2, 1, beta=beta), ref_pad, rtol=1e-13)


@pytest.mark.parametrize("beta", [0.05, 3.0])  # the expm1 path (beta * spread < 1/4) and the exp path
def test_lse_both_paths_padding_and_minus_inf(backend: str, beta: float):
    x = _signed((2, 2, 6, 5))
    ref = np.log(F.avg_pool2d(np.exp(beta * x), 3, 2, 1, count_include_pad=False)) / beta
    np.testing.assert_allclose(F.lse_pool2d(x, 3, 2, 1, beta=beta), ref, rtol=1e-12)
    y, ctx = F.lse_pool_forward(x, np.array([beta]), 2, 3, 2, 1)
    dy = np.random.default_rng(0).standard_normal(y.shape)
    gx, gb = F.lse_pool_backward(dy, ctx)
    assert_grad(lambda a: F.lse_pool2d(a, 3, 2, 1, beta=beta), x.copy(), dy, gx, "input")
    assert_grad(lambda a: F.lse_pool2d(x, 3, 2, 1, beta=a), np.array([beta]), dy, gb, "beta")
    # an input -inf counts in the mean with exp(-inf) = 0 (padding does not count)
    xi = x.copy()
    xi[0, 0, 0, 0] = -np.inf
    with np.errstate(divide="ignore"):
        ref_inf = np.log(F.avg_pool2d(np.exp(beta * xi), 3, 2, 1, count_include_pad=False)) / beta
    np.testing.assert_allclose(F.lse_pool2d(xi, 3, 2, 1, beta=beta), ref_inf, rtol=1e-12)


def test_gated_gate_saturated_is_max_or_average(backend: str):
    x = _signed((2, 3, 6, 7))
    w = np.zeros((3, 2, 2))
    np.testing.assert_allclose(F.gated_pool2d(x, w, np.full(3, 60.0)), F.max_pool2d(x, 2), atol=1e-20)
    np.testing.assert_allclose(F.gated_pool2d(x, w, np.full(3, -60.0)), F.avg_pool2d(x, 2), atol=1e-20)
    m = nn.GatedPool2d(3, 3, 2, 1, dtype=np.float64)
    m.weight.data[...] = 0.0
    m.bias.data[...] = 60.0
    np.testing.assert_allclose(m(x), F.max_pool2d(x, 3, 2, 1), atol=1e-20)
    m.bias.data[...] = -60.0
    np.testing.assert_allclose(m(x), F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), atol=1e-20)


def test_gated_gate_is_a_depthwise_conv(backend: str):
    rng = np.random.default_rng(4)
    x, w, b = _signed((2, 3, 6, 7)), rng.standard_normal((3, 3, 3)), rng.standard_normal(3)
    g = 1.0 / (1.0 + np.exp(-F.conv2d(x, w[:, None], b, 2, 1, groups=3)))
    mx, av = F.max_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
    np.testing.assert_allclose(F.gated_pool2d(x, w, b, 2, 1), g * mx + (1 - g) * av, rtol=1e-13)


def _windows(x: np.ndarray, k: int, s: int) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
    """Every 2-d window of (N, C, H, W): ((i, j), x[..., window]) - a plain loop."""
    for i, j in itertools.product(range((x.shape[2] - k) // s + 1), range((x.shape[3] - k) // s + 1)):
        yield (i, j), x[:, :, i * s : i * s + k, j * s : j * s + k].reshape(x.shape[0], x.shape[1], -1)


def test_softpool_against_a_loop(backend: str):
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 8)) * 2
    y = F.soft_pool2d(x, 3, 2)
    for (i, j), w in _windows(x, 3, 2):
        e = np.exp(w)
        np.testing.assert_allclose(y[:, :, i, j], (e * w).sum(-1) / e.sum(-1), rtol=1e-13)
    # stable: huge inputs give the (nearly) max, not NaN
    big = F.soft_pool2d(x * 1000, 2)
    assert np.isfinite(big).all()
    mx = F.max_pool2d(x * 1000, 2)  # each other element weighs e**-d: it lowers y by at most d e**-d <= 1/e
    assert np.all(big <= mx + 1e-9) and np.all(big >= mx - 3 / np.e)


def test_stochastic_eval_is_the_probability_weighted_sum(backend: str):
    x = np.random.default_rng(0).random((2, 3, 7, 8))
    x[0, 0, :3, :3] = 0.0  # a window of zeros: 0
    y = F.stochastic_pool2d(x, 3, 2, training=False)
    for (i, j), w in _windows(x, 3, 2):
        s = w.sum(-1)
        expect = np.where(s > 0, (w * w).sum(-1) / np.where(s > 0, s, 1), 0.0)
        np.testing.assert_allclose(y[:, :, i, j], expect, rtol=1e-13)
    assert y[0, 0, 0, 0] == 0.0
    m = nn.StochasticPool2d(3, 2).eval()
    np.testing.assert_array_equal(m(x), y)


def test_stochastic_train_samples_window_elements_reproducibly(backend: str):
    x = np.random.default_rng(0).random((2, 3, 9, 8))
    x[1, 2, :3, :3] = 0.0
    x[0, 1] *= np.random.default_rng(1).random(x.shape[2:]) > 0.5  # many zeros: never drawn
    convpool.manual_seed(7)
    y1 = F.stochastic_pool2d(x, 3, 2)
    convpool.manual_seed(7)
    y2 = nn.StochasticPool2d(3, 2)(x)
    np.testing.assert_array_equal(y1, y2)
    for (i, j), w in _windows(x, 3, 2):
        member = (w == y1[:, :, i, j][..., None]).any(-1)
        assert member.all(), "an output is not an element of its window"
        positive = w.max(-1) > 0
        assert (y1[:, :, i, j][positive] > 0).all(), "a zero was drawn from a window with positive elements"
    assert not np.array_equal(y1, F.stochastic_pool2d(x, 3, 2)), "the draws do not change between calls"


def test_stochastic_train_draws_proportionally(backend: str):
    x = np.tile(np.array([1.0, 3.0, 0.0, 4.0]), (1, 1, 20000))  # windows [1, 3, 0, 4] of size 4
    convpool.manual_seed(0)
    y = F.stochastic_pool1d(x, 4)
    freq = [(y == v).mean() for v in (1.0, 3.0, 0.0, 4.0)]
    np.testing.assert_allclose(freq, [1 / 8, 3 / 8, 0.0, 4 / 8], atol=0.015)
    z = F.stochastic_pool1d(np.zeros((1, 1, 8)), 4)  # windows of zeros: 0, gradient to one element
    y0, ctx = F.stochastic_pool_forward(np.zeros((1, 1, 8)), 1, 4)
    assert (z == 0).all() and F.stochastic_pool_backward(np.ones_like(y0), ctx).sum() == 2.0


@pytest.mark.parametrize("nd, stride", [(1, 2), (2, 2), (2, 3), (3, 2)])
def test_blur_filt1_is_subsampling(backend: str, nd: int, stride: int):
    x = np.random.default_rng(0).standard_normal((2, 3) + (7, 6, 5)[:nd])
    pool = {1: F.blur_pool1d, 2: F.blur_pool2d, 3: F.blur_pool3d}[nd]
    expect = x[(Ellipsis,) + (slice(None, None, stride),) * nd]
    np.testing.assert_array_equal(pool(x, 1, stride), expect)


def test_blur_filter_rows_of_pascals_triangle():
    np.testing.assert_allclose(F.published_pools.binomial_filter(3, 1), [0.25, 0.5, 0.25])
    np.testing.assert_allclose(F.published_pools.binomial_filter(5, 1), np.array([1, 4, 6, 4, 1]) / 16)
    f2 = F.published_pools.binomial_filter(4, 2)
    np.testing.assert_allclose(f2, np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64)
    assert F.published_pools.binomial_filter(3, 3).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("filt_size, mode", [(3, "reflect"), (4, "reflect"), (2, "replicate"), (5, "zeros")])
def test_blur_against_zhangs_construction_in_torch(backend: str, filt_size: int, mode: str):
    """Zhang's BlurPool: pad (f-1)//2 before and f//2 after, depthwise conv at stride 2."""
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 8))
    row = F.published_pools.binomial_filter(filt_size, 1)
    filt = torch.tensor(np.outer(row, row))[None, None].repeat(3, 1, 1, 1)
    lo, hi = (filt_size - 1) // 2, filt_size // 2
    torch_mode = {"reflect": "reflect", "replicate": "replicate", "zeros": "constant"}[mode]
    xp = torch.nn.functional.pad(torch.tensor(x), (lo, hi, lo, hi), mode=torch_mode)
    expect = torch.nn.functional.conv2d(xp, filt, stride=2, groups=3).numpy()
    np.testing.assert_allclose(nn.BlurPool2d(3, filt_size, 2, mode)(x), expect, rtol=1e-12, atol=1e-14)


def test_max_blur_is_max_then_blur(backend: str):
    x = _signed((2, 3, 8, 9))
    expect = F.blur_pool2d(F.max_pool2d(x, 2, 1), 3, 2)
    np.testing.assert_array_equal(nn.MaxBlurPool2d(3)(x), expect)
    assert nn.MaxBlurPool2d(3)(x).shape == (2, 3, 4, 4)


def test_spp_against_torch_adaptive_pools(backend: str):
    x = np.random.default_rng(0).standard_normal((2, 3, 13, 9))
    levels = (1, 2, 4)
    y = nn.SpatialPyramidPool2d(levels)(x)
    assert y.shape == (2, 3 * 21)
    xt = torch.tensor(x)
    expect = torch.cat([torch.nn.functional.adaptive_max_pool2d(xt, lv).reshape(2, -1) for lv in levels], dim=1).numpy()
    np.testing.assert_array_equal(y, expect)
    np.testing.assert_array_equal(y[:, :3], x.max(axis=(2, 3)))  # level 1 is global max pooling
    avg = nn.SpatialPyramidPool2d((1, 3), mode="avg")(x)
    np.testing.assert_allclose(avg[:, :3], x.mean(axis=(2, 3)), rtol=1e-13)
    # any input size: the same length
    assert nn.SpatialPyramidPool2d(levels)(np.zeros((2, 3, 4, 31))).shape == (2, 63)


# --- shapes, dtypes, unbatched input ------------------------------------------------------


def test_float32_and_unbatched(backend: str):
    x = np.random.default_rng(0).random((3, 8, 6)).astype(np.float32)
    for m in (
        nn.GeMPool2d(2),
        nn.GeMPool2d(),
        nn.LSEPool2d(2),
        nn.MixedPool2d(2),
        nn.GatedPool2d(3, 2),
        nn.SoftPool2d(2),
        nn.StochasticPool2d(2).eval(),
        nn.BlurPool2d(3),
        nn.MaxBlurPool2d(3),
        nn.SpatialPyramidPool2d((1, 2)),
    ):
        yb = m(x[None])
        y = m(x)
        assert y.dtype == np.float32, m
        np.testing.assert_allclose(y, yb[0], rtol=1e-6, err_msg=repr(m))
        gx = m.backward(np.ones_like(y))
        assert gx.shape == x.shape and gx.dtype == np.float32, m


def test_backends_agree():
    if len(convpool.available_backends()) < 2:
        pytest.skip("one backend only")
    x = _signed((2, 3, 9, 8))
    for make in (
        lambda: nn.GatedPool2d(3, 3, 2, 1, dtype=F64),
        lambda: nn.GeMPool2d(3, 1, 1, dtype=F64),
        lambda: nn.LSEPool2d(3, 2, 1, learn_beta=True, dtype=F64),
        lambda: nn.BlurPool2d(3, 4),
    ):
        convpool.manual_seed(0)
        m = make()
        results = []
        for name in ("numpy", "compiled"):
            m.zero_grad()
            with convpool.backend(name):
                y = m(np.abs(x) if isinstance(m, nn.GeMPool2d) else x)
                gx = m.backward(np.cos(y))
            results.append((y, gx, [p.grad for p in m.parameters()]))
        (ya, ga, pa), (yb, gb, pb) = results
        np.testing.assert_allclose(ya, yb, rtol=1e-12)
        np.testing.assert_allclose(ga, gb, rtol=1e-10, atol=1e-12)
        for u, v in zip(pa, pb):
            np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)


# --- modules in a network ----------------------------------------------------------------------

NETWORK_CASES: list[tuple[str, Callable[[], nn.Module], list[str]]] = [
    ("GeMPool2d", lambda: nn.GeMPool2d(2), ["1.p"]),
    ("GeMPool2d-global", lambda: nn.GeMPool2d(), ["1.p"]),
    ("LSEPool2d", lambda: nn.LSEPool2d(2, beta=2.0, learn_beta=True), ["1.beta"]),
    ("MixedPool2d", lambda: nn.MixedPool2d(2), ["1.alpha"]),
    ("GatedPool2d", lambda: nn.GatedPool2d(4, 2), ["1.weight", "1.bias"]),
    ("SoftPool2d", lambda: nn.SoftPool2d(2), []),
    ("StochasticPool2d", lambda: nn.StochasticPool2d(2), []),
    ("BlurPool2d", lambda: nn.BlurPool2d(4), []),
    ("MaxBlurPool2d", lambda: nn.MaxBlurPool2d(4), []),
    ("SpatialPyramidPool2d", lambda: nn.SpatialPyramidPool2d((1, 2)), []),
]


@pytest.mark.parametrize("name, make, keys", NETWORK_CASES, ids=[c[0] for c in NETWORK_CASES])
def test_in_a_network(backend: str, name: str, make: Callable[[], nn.Module], keys: list[str]):
    """Conv2d -> ReLU-ish -> pool -> Flatten -> Linear: a training step moves the pool's
    parameters; the state dict has PyTorch-style keys and round-trips."""
    features = 4 * (5 if "Pyramid" in name else 1 if "global" in name else 9)

    def build(seed: int) -> nn.Module:
        convpool.manual_seed(seed)
        conv, pool = nn.Conv2d(3, 4, 3, padding=1), make()
        if "Stochastic" in name or "GeM" in name:  # a non-negative input for the pool
            pool = nn.Sequential(nn.ReLU(), pool)
        return nn.Sequential(conv, pool, nn.Flatten(), nn.Linear(features, 2))

    model = build(0)
    if "Stochastic" in name or "GeM" in name:
        keys = [k.replace("1.", "1.1.") for k in keys]
    sd = model.state_dict()
    assert [k for k in sd if k.startswith("1.")] == keys
    x = np.random.default_rng(0).random((4, 3, 6, 6)).astype(np.float32)
    target = np.random.default_rng(1).standard_normal((4, 2)).astype(np.float32)
    crit = losses.MSELoss()
    opt = optim.SGD(model.parameters(), lr=0.5)
    opt.zero_grad()
    loss = crit(model(x), target)
    assert np.isfinite(loss)
    model.backward(crit.backward())
    opt.step()
    after = model.state_dict()
    for k in keys:
        assert not np.array_equal(sd[k], after[k]), f"{k} did not move"
    # save / load round trip into a model built with other random weights
    fresh = build(1)
    fresh.load_state_dict(after)
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v, after[k])
    model.eval()
    fresh.eval()
    np.testing.assert_array_equal(model(x), fresh(x))


def test_state_dict_round_trip_between_instances():
    convpool.manual_seed(0)
    a = nn.Sequential(nn.Conv2d(2, 3, 3), nn.GatedPool2d(3, 2), nn.GeMPool2d(), nn.MixedPool2d(1, alpha=0.2))
    convpool.manual_seed(1)
    b = nn.Sequential(nn.Conv2d(2, 3, 3), nn.GatedPool2d(3, 2), nn.GeMPool2d(p=5.0), nn.MixedPool2d(1))
    sd = a.state_dict()
    assert set(sd) == {"0.weight", "0.bias", "1.weight", "1.bias", "2.p", "3.alpha"}
    assert sd["1.weight"].shape == (3, 2, 2) and sd["2.p"].shape == (1,)
    b.load_state_dict(sd)
    x = np.random.default_rng(0).random((2, 2, 9, 9)).astype(np.float32)
    np.testing.assert_array_equal(a(x), b(x))
    assert nn.GeMPool2d(learn_p=False).state_dict() == {}
    assert nn.LSEPool2d(2).state_dict() == {} and list(nn.LSEPool2d(2, learn_beta=True).state_dict()) == ["beta"]
    assert nn.BlurPool2d(3).state_dict() == {}


def test_learned_alpha_is_clipped_when_used():
    m = nn.MixedPool2d(2, dtype=F64)
    x = _signed((1, 2, 4, 4))
    m.alpha.data[...] = 1.7  # an optimiser pushed it past the bound
    np.testing.assert_array_equal(m(x), F.max_pool2d(x, 2))
    m.backward(np.ones((1, 2, 2, 2)))
    assert m.alpha.grad is not None and m.alpha.grad[0] != 0  # it can come back


def test_repr():
    assert "p=3" in repr(nn.GeMPool2d()) and "global" in repr(nn.GeMPool2d())
    assert "beta=2" in repr(nn.LSEPool1d(2, beta=2.0))
    assert "levels=(1, 2, 4)" in repr(nn.SpatialPyramidPool2d())
    assert nn.GeMPool2d.__doc__ and "Example" in nn.GeMPool2d.__doc__ and "Radenovic" in nn.GeMPool2d.__doc__


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: nn.LSEPool2d(2, beta=0.0), ValueError, "beta must be > 0, got 0.0"),
        (lambda: nn.LSEPool2d(2, beta=-1.0, learn_beta=True), ValueError, "beta must be > 0"),
        (lambda: F.lse_pool2d(np.ones((1, 1, 4, 4)), 2, beta=-2.0), ValueError, "beta must be > 0, got -2.0"),
        (lambda: F.lse_pool2d(np.ones((1, 1, 4, 4)), 2, beta=float("inf")), ValueError, "beta must be finite"),
        (lambda: nn.GeMPool2d(p=0.0, learn_p=False), ValueError, "p must be > 0, got 0.0"),
        (lambda: nn.GeMPool2d(p=-3.0), ValueError, "p must be > 0"),
        (lambda: F.gem_pool2d(np.ones((1, 1, 4, 4)), p="3"), TypeError, "p must be a real number"),
        (lambda: nn.GeMPool2d(eps=0.0), ValueError, "eps must be > 0"),
        (lambda: nn.GeMPool2d(padding=1), ValueError, "kernel_size=None pools globally"),
        (lambda: F.gem_pool2d(np.ones((1, 1, 4, 4)), stride=2), ValueError, "kernel_size=None pools globally"),
        (lambda: nn.MixedPool2d(2, alpha=1.5), ValueError, r"alpha must be in \[0, 1\], got 1.5"),
        (lambda: nn.MixedPool2d(2, alpha=-0.1, learn_alpha=False), ValueError, r"alpha must be in \[0, 1\]"),
        (lambda: F.mixed_pool2d(np.ones((1, 1, 4, 4)), 2, alpha=2), ValueError, r"alpha must be in \[0, 1\]"),
        (lambda: nn.MixedPool2d(2, learn_alpha=1), TypeError, "learn_alpha must be a bool"),
        (lambda: F.stochastic_pool2d(-np.ones((1, 1, 4, 4)), 2), ValueError, "non-negative input"),
        (
            lambda: nn.StochasticPool2d(2).eval()(np.full((1, 1, 4, 4), -0.5)),
            ValueError,
            "stochastic pooling expects non-negative",
        ),
        (lambda: nn.SpatialPyramidPool2d((1, 2, 8))(np.ones((1, 1, 9, 7))), ValueError, "level 8 does not fit"),
        (lambda: nn.SpatialPyramidPool2d(()), TypeError, "levels must be a non-empty tuple"),
        (lambda: nn.SpatialPyramidPool2d((1, 0)), ValueError, "levels must be positive ints"),
        (lambda: nn.SpatialPyramidPool2d(mode="sum"), ValueError, "mode must be 'max' or 'avg'"),
        (lambda: nn.GeMPool2d(0), ValueError, "kernel_size must be positive"),
        (lambda: nn.LSEPool2d((2, 2, 2)), ValueError, "kernel_size must be an int or a tuple of 2"),
        (lambda: nn.MixedPool2d(2.5), TypeError, "kernel_size must be an int"),
        (lambda: nn.SoftPool1d(-1), ValueError, "kernel_size must be positive"),
        (lambda: nn.StochasticPool3d((2, 0, 2)), ValueError, "kernel_size must be positive"),
        (lambda: nn.GatedPool2d(3, 0), ValueError, "kernel_size must be positive"),
        (lambda: nn.GatedPool2d(0, 2), ValueError, "in_channels must be a positive int"),
        (lambda: nn.MixedPool2d(2, padding=2), ValueError, "padding must be at most half"),
        (lambda: F.soft_pool2d(np.ones((1, 1, 3, 3)), 4), ValueError, "the window does not fit"),
        (lambda: nn.BlurPool2d(3, filt_size=0), ValueError, "filt_size must be a positive int"),
        (lambda: nn.BlurPool2d(3, pad_mode="refl"), ValueError, "pad_mode must be one of"),
        (lambda: nn.BlurPool2d(3, stride=0), ValueError, "stride must be a positive int"),
        (lambda: nn.BlurPool2d(3)(np.ones((1, 4, 8, 8))), ValueError, "built for channels=3, got an input with 4"),
        (
            lambda: F.gated_pool2d(np.ones((1, 3, 4, 4)), np.ones((2, 2, 2))),
            ValueError,
            r"weight of a 2-d gated pool must have shape \(C, \*kernel\)",
        ),
        (lambda: nn.GeMPool2d(2)(np.ones((4, 4))), ValueError, "must have 4 dims"),
    ],
)
def test_errors(call: Callable[[], Any], exc: type[Exception], match: str):
    with pytest.raises(exc, match=match):
        call()


def test_learned_parameter_leaving_its_range_is_reported():
    m = nn.GeMPool2d()
    m.p.data[...] = -0.5
    with pytest.raises(ValueError, match="a learned p must stay positive"):
        m(np.ones((1, 1, 4, 4), dtype=np.float32))


def test_backward_before_forward():
    for m in (nn.GeMPool2d(), nn.SoftPool2d(2), nn.SpatialPyramidPool2d()):
        with pytest.raises(ValueError, match="backward called before forward"):
            m.backward(np.ones((1, 1, 1, 1)))
