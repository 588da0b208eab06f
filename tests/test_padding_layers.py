"""Padding layers (ZeroPad, ConstantPad, ReflectionPad, ReplicationPad, CircularPad;
1-d to 3-d) against torch.nn, forward and backward, negative (cropping) padding too."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from convpool.nn import padding as P
from oracle import assert_close, check_against_torch

KINDS = ("ZeroPad", "ConstantPad", "ReflectionPad", "ReplicationPad", "CircularPad")


def fits(kind: str, n: int, lo: int, hi: int) -> bool:
    """Whether convpool (and PyTorch, sanely) pads a dim of size ``n`` by ``(lo, hi)``."""
    cut = max(-lo, 0) + max(-hi, 0)
    if kind in ("ZeroPad", "ConstantPad"):  # cut first, then pad
        return cut <= n
    if kind == "CircularPad":  # cut first, then wrap around what is left
        return cut <= n and max(lo, hi) <= n - cut
    if kind == "ReflectionPad" and max(lo, hi) >= n:
        return False
    return n + lo + hi >= 1  # pad, then cut: something must be left


def make(kind: str, nd: int, padding: object, value: float = 0.0) -> tuple[P._PadNd, torch.nn.Module]:
    ours, theirs = getattr(P, f"{kind}{nd}d"), getattr(torch.nn, f"{kind}{nd}d")
    if kind == "ConstantPad":
        return ours(padding, value), theirs(padding, value)
    return ours(padding), theirs(padding)


@st.composite
def pad_case(draw, kinds=KINDS):  # type: ignore[no-untyped-def]
    kind = draw(st.sampled_from(kinds))
    nd = draw(st.integers(1, 3))
    size = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    pads: list[int] = []
    for n in reversed(size):  # PyTorch's order: last dim first
        lo, hi = draw(st.tuples(st.integers(-n, 3), st.integers(-n, 3)).filter(lambda p, n=n: fits(kind, n, *p)))
        pads += [lo, hi]
    lead = draw(st.sampled_from([(1,), (2,), (2, 1), (1, 3)]))  # unbatched (C,) or (N, C)
    padding: object = pads[0] if len(set(pads)) == 1 and draw(st.booleans()) else tuple(pads)
    return kind, nd, lead + size, padding


@given(pad_case(), st.floats(-3, 3), st.integers(0, 2**16))
def test_matches_torch(case, value, seed):  # type: ignore[no-untyped-def]
    kind, nd, shape, padding = case
    ours, theirs = make(kind, nd, padding, value)
    assert repr(ours) == repr(theirs)
    assert ours.padding == tuple(theirs.padding)
    x = np.random.default_rng(seed).standard_normal(shape)
    check_against_torch(lambda x: (ours(x), None), lambda dy, _: ours.backward(dy), theirs, [x], seed)


@settings(max_examples=60)
@given(pad_case(), st.integers(0, 2**16))
def test_float32_matches_torch(case, seed):  # type: ignore[no-untyped-def]
    kind, nd, shape, padding = case
    ours, theirs = make(kind, nd, padding, 1.5)
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    y = ours(x)
    assert y.dtype == np.float32
    assert_close(y, yt.detach().numpy(), "float32 forward", rtol=1e-6, atol=1e-6)
    dy = np.random.default_rng(seed).standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.tensor(dy))
    g = ours.backward(dy)
    assert g.dtype == np.float32 and xt.grad is not None
    assert_close(g, xt.grad.numpy(), "float32 backward", rtol=1e-5, atol=1e-5)


@given(pad_case(kinds=("ZeroPad", "ConstantPad")), st.integers(0, 2**16))
def test_constant_pads_any_rank(case, seed):  # type: ignore[no-untyped-def]
    """Like PyTorch, the constant layers pad the last nd dims of an array of any rank >= nd."""
    kind, nd, shape, padding = case
    ours, theirs = make(kind, nd, padding, 2.0)
    for extra in (shape[-nd:], (2, 1, 1) + shape[-nd:]):
        x = np.random.default_rng(seed).standard_normal(extra)
        check_against_torch(lambda x: (ours(x), None), lambda dy, _: ours.backward(dy), theirs, [x], seed)


def test_hand_computed_examples() -> None:
    x = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(P.ReflectionPad1d(2)(x), [[3, 2, 1, 2, 3, 2, 1]])
    np.testing.assert_array_equal(P.ReplicationPad1d(2)(x), [[1, 1, 1, 2, 3, 3, 3]])
    np.testing.assert_array_equal(P.CircularPad1d(2)(x), [[2, 3, 1, 2, 3, 1, 2]])
    np.testing.assert_array_equal(P.ConstantPad1d((1, 0), -1.0)(x), [[-1, 1, 2, 3]])
    np.testing.assert_array_equal(P.ZeroPad1d((-1, 1))(x), [[2, 3, 0]])  # crop left, pad right
    np.testing.assert_array_equal(P.CircularPad1d((-1, 1))(x), [[2, 3, 2]])  # crop, then wrap what is left
    np.testing.assert_array_equal(P.ReflectionPad1d((1, -1))(x), [[2, 1, 2]])  # pad, then crop
    m = P.ZeroPad2d(-1)
    y = m(np.arange(16.0).reshape(1, 1, 4, 4))
    np.testing.assert_array_equal(y, [[[[5, 6], [9, 10]]]])
    np.testing.assert_array_equal(m.backward(np.ones((1, 1, 2, 2)))[0, 0], np.pad(np.ones((2, 2)), 1))


def test_reflection_pad_gradient_adds_mirrored_elements() -> None:
    m = P.ReflectionPad1d(2)
    m(np.array([[1.0, 2.0, 3.0]]))
    # [3, 2, 1, 2, 3, 2, 1]: 1 and 3 twice each, 2 three times
    np.testing.assert_array_equal(m.backward(np.ones((1, 7))), [[2.0, 3.0, 2.0]])


def test_attributes_and_no_state() -> None:
    m = P.ZeroPad3d(1)
    assert m.padding == (1,) * 6 and m.value == 0.0
    assert m.state_dict() == {} and m.parameters() == []
    assert P.ConstantPad2d([1, 2, 3, 4], 5).padding == (1, 2, 3, 4)
    assert P.ReflectionPad2d.__doc__ is not None and P.ReflectionPad2d.__doc__.startswith("2-d version")


# --- errors ------------------------------------------------------------------------------

X = np.zeros((1, 1, 3, 3))


@pytest.mark.parametrize(
    ("call", "exc", "message"),
    [
        (lambda: P.ZeroPad2d((1, 2)), ValueError, r"int or a tuple of 4 ints \(last dim first: left, right, top"),
        (lambda: P.ReflectionPad3d((1,) * 5), ValueError, r"tuple of 6 ints.*front, back\), got \(1, 1, 1, 1, 1\)"),
        (lambda: P.CircularPad1d(1.5), TypeError, "padding must be an int or a tuple of 2 ints, got 1.5"),
        (lambda: P.ConstantPad1d(1, "a"), TypeError, "value must be a real number, got 'a'"),
        (lambda: P.ConstantPad1d(1, True), TypeError, "value must be a real number, got True"),
        (lambda: P.ReflectionPad2d(3)(X), ValueError, "reflect padding must be smaller than the input size"),
        (lambda: P.CircularPad2d(4)(X), ValueError, "circular padding must be at most the input size"),
        (lambda: P.CircularPad1d((2, -2))(np.zeros((1, 3))), ValueError, "circular padding must be at most"),
        (lambda: P.ZeroPad2d((-2, -2, 0, 0))(X), ValueError, r"padding \(-2, -2\) of dim 3 crops too much.*4 of 3"),
        (lambda: P.ReplicationPad1d((-2, -1))(np.zeros((1, 3))), ValueError, "the output needs at least one"),
        (
            lambda: P.ReflectionPad2d(1)(np.zeros((3, 3))),
            ValueError,
            r"ReflectionPad2d expects a 3-d \(C, \*spatial\) or 4-d \(N, C, \*spatial\) input, got shape \(3, 3\)",
        ),
        (lambda: P.CircularPad2d(1)(np.zeros((1, 1, 1, 3, 3))), ValueError, "CircularPad2d expects a 3-d"),
        (lambda: P.ZeroPad3d(1)(np.zeros((3, 3))), ValueError, r"ZeroPad3d pads 3 dims: .*got shape \(3, 3\)"),
        (lambda: P.ZeroPad2d(1)(X.astype(np.int32)), TypeError, "floating-point array"),
        (lambda: P.ZeroPad2d(1).backward(np.zeros((1, 1, 5, 5))), ValueError, "backward called before forward"),
        (
            lambda: (lambda m: (m(X), m.backward(np.zeros((1, 1, 3, 3)))))(P.ZeroPad2d(1)),
            ValueError,
            r"grad_output must have the output's shape \(1, 1, 5, 5\), got \(1, 1, 3, 3\)",
        ),
    ],
)
def test_bad_input(call, exc, message):  # type: ignore[no-untyped-def]
    with pytest.raises(exc, match=message):
        call()
