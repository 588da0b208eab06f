"""Every bad input gets a ValueError/TypeError naming the argument and value."""

from __future__ import annotations

import numpy as np
import pytest

import convpool.functional as F
from convpool import nn

X = np.zeros((1, 2, 5, 5))
W = np.zeros((3, 2, 3, 3))


@pytest.mark.parametrize(
    ("call", "exc", "message"),
    [
        (lambda: F.conv2d(np.zeros((1, 3, 5, 5)), W), ValueError, "input has 3 channels"),
        (
            lambda: F.conv2d(X, np.zeros((3, 2, 7, 7))),
            ValueError,
            r"floor\(\(5 \+ 0 \+ 0 - 1\*\(7-1\) - 1\) / 1\) \+ 1",
        ),
        (lambda: F.max_pool2d(X, 6), ValueError, "does not fit"),
        (lambda: F.conv2d(X, W, stride=0), ValueError, "stride must be positive, got 0"),
        (lambda: F.conv2d(X, W, dilation=-1), ValueError, "dilation must be positive, got -1"),
        (lambda: F.max_pool2d(X, 0), ValueError, "kernel_size must be positive, got 0"),
        (lambda: F.conv2d(X, W, padding=-1), ValueError, "padding must be >= 0, got -1"),
        (
            lambda: F.conv2d(X, W, padding="full"),
            ValueError,
            "padding must be 'valid', 'same' or ints, got 'full'",
        ),
        (lambda: F.conv2d(X, W, padding=1, padding_mode="mirror"), ValueError, "padding_mode must be one of"),
        (lambda: F.conv2d(X, np.zeros((3, 1, 3, 3)), groups=2), ValueError, "groups=2 must divide"),
        (
            lambda: F.conv2d(X, np.zeros((4, 1, 3, 3)), groups=0),
            ValueError,
            "groups must be a positive int, got 0",
        ),
        (
            lambda: F.max_pool2d(X, (2, 2, 2)),
            ValueError,
            r"kernel_size must be an int or a tuple of 2 ints.*\(2, 2, 2\)",
        ),
        (lambda: F.max_pool2d(np.zeros((5, 5)), 2), ValueError, r"must have 4 dims.*got shape \(5, 5\)"),
        (lambda: F.conv2d(X, np.zeros((3, 2, 3))), ValueError, "weight of a 2-d conv must have 4 dims"),
        (lambda: F.conv2d(X.astype(np.int64), W), TypeError, "floating-point array.*int64"),
        (lambda: F.max_pool2d(np.array([["a"]]), 1), TypeError, "floating-point"),
        (lambda: F.conv2d(X, W, bias=np.zeros(4)), ValueError, r"bias must have shape \(3,\)"),
        (lambda: F.max_pool2d(X, 2, padding=2), ValueError, "at most half the effective kernel size"),
        (lambda: F.max_pool2d(X, 2, ceil_mode="yes"), TypeError, "ceil_mode must be a bool"),
        (
            lambda: F.conv2d(X, W, padding=5, padding_mode="reflect"),
            ValueError,
            "reflect padding must be smaller",
        ),
        (
            lambda: F.avg_pool2d(X, 2, divisor_override=0),
            ValueError,
            "divisor_override must be a positive int",
        ),
        (lambda: F.lp_pool2d(X, -1, 2), ValueError, "norm_type must be a positive number"),
        (lambda: F.adaptive_avg_pool2d(X, 0), ValueError, "output_size must be positive"),
        (lambda: F.reduce_window(X, "mode", 2), ValueError, "reduction must be one of"),
        (lambda: F.pad(X, (1, 2, 3)), ValueError, "even length"),
        (lambda: F.pad(X, (-1, 1)), ValueError, "non-negative"),
        (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, "groups=2 must divide"),
        (lambda: nn.Conv2d(0, 4, 3), ValueError, "in_channels must be a positive int, got 0"),
        (lambda: nn.Conv2d(2, 4, 3, dtype=np.int32), TypeError, "dtype must be a floating-point type"),
        (lambda: nn.MaxPool2d(3, padding=2), ValueError, "at most half"),
        (lambda: nn.AvgPool1d(2, stride=(1, 1)), ValueError, "tuple of 1 ints"),
        (lambda: nn.Conv2d(2, 4, 3)(np.zeros((1, 3, 5, 5), np.float32)), ValueError, "input has 3 channels"),
    ],
)
def test_bad_input_message(call, exc, message):  # type: ignore[no-untyped-def]
    with pytest.raises(exc, match=message):
        call()


def test_window_entirely_in_padding_is_refused():
    with pytest.raises(ValueError, match="lies entirely in the padding"):
        F.max_pool1d(np.zeros((1, 1, 1)), 2, 1, 1, 2)


def test_backward_before_forward():
    for m in (nn.Conv2d(2, 3, 3), nn.MaxPool2d(2), nn.AvgPool2d(2), nn.AdaptiveMaxPool2d(1)):
        with pytest.raises(ValueError, match="backward called before forward"):
            m.backward(np.zeros((1, 3, 3, 3)))


def test_gradient_of_wrong_shape():
    m = nn.MaxPool2d(2)
    m(np.zeros((1, 2, 4, 4)))
    with pytest.raises(
        ValueError, match=r"grad_output must have the output's shape \(1, 2, 2, 2\), got \(1, 2, 4, 4\)"
    ):
        m.backward(np.zeros((1, 2, 4, 4)))
    c = nn.Conv2d(2, 3, 3)
    c(np.zeros((1, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="grad_output must have the output's shape"):
        c.backward(np.zeros((1, 3, 4, 4)))


def test_load_state_dict_errors_and_atomicity():
    m = nn.Conv2d(2, 3, 3)
    sd = m.state_dict()
    with pytest.raises(ValueError, match=r"missing keys \['bias'\]"):
        m.load_state_dict({"weight": sd["weight"]})
    with pytest.raises(ValueError, match=r"unexpected keys \['extra'\]"):
        m.load_state_dict({**sd, "extra": np.zeros(1)})
    before = m.weight.data.copy()
    with pytest.raises(ValueError, match=r"'bias' has shape \(4,\), the model expects \(3,\)"):
        m.load_state_dict({"weight": before + 1, "bias": np.zeros(4)})
    np.testing.assert_array_equal(m.weight.data, before)  # nothing half-loaded
