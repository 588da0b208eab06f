"""The direct convolution's weight rows (direct/pack.py): the weights as the kernel reads
them - one row per output channel, zero rows to a whole block - for any output-channel
count, groups, dtype, layout and writability, no copy where none is needed; and read on
every call, so weights changed in place are used as they are now."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convpool.backends.compiled import kernels

pytestmark = pytest.mark.skipif(not kernels.DIRECT, reason="needs the SIMD kernels")


@settings(max_examples=60)
@given(
    groups=st.integers(1, 3),
    co=st.integers(1, 13),
    n_ent=st.integers(1, 20),
    dtype=st.sampled_from([np.float32, np.float64]),
    layout=st.sampled_from(["c", "reversed", "readonly"]),
    seed=st.integers(0, 2**16),
)
def test_weight_rows_pad_to_whole_blocks(groups: int, co: int, n_ent: int, dtype: type, layout: str, seed: int) -> None:
    from convpool.backends.compiled.direct.pack import BLOCK_OC, weight_rows

    w: np.ndarray = np.random.default_rng(seed).standard_normal((groups, co, n_ent)).astype(dtype)
    if layout == "reversed":
        w = w[:, :, ::-1]  # a non-contiguous view (the backward pass flips taps)
    elif layout == "readonly":
        w.flags.writeable = False
    got = weight_rows(w)
    padded = -(-co // BLOCK_OC) * BLOCK_OC
    assert got.dtype == np.float32 and got.flags.c_contiguous and not got.flags.writeable
    want = np.zeros((groups, padded, n_ent), dtype=np.float32)
    want[:, :co] = w
    np.testing.assert_array_equal(got, want.ravel())
    if padded == co and dtype == np.float32 and layout != "reversed":
        assert np.shares_memory(got, w)  # whole blocks in place: no copy


def test_a_conv_after_an_in_place_weight_change_uses_the_new_weights() -> None:
    from convpool.functional.conv import conv2d

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    for c_out in (8, 6):  # the weights read in place, and a padded copy
        w = rng.standard_normal((c_out, 3, 3, 3)).astype(np.float32)
        y0 = conv2d(x, w, padding=1)
        w *= 2  # as an optimiser's step would
        np.testing.assert_allclose(conv2d(x, w, padding=1), 2 * y0, rtol=1e-6, atol=1e-6)
