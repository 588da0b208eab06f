"""The direct convolution's weight packing (direct/pack.py): the compiled pass gives the
NumPy reference's array bit for bit, for any output-channel count (whole blocks or a
zero-filled last one), groups, dtype, layout and writability; and it is computed on
every call, so weights changed in place are packed as they are now."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convpool.backends.compiled import kernels

pytestmark = pytest.mark.skipif(not kernels.DIRECT, reason="needs the SIMD kernels")


def pack_weights_numpy(w: np.ndarray) -> np.ndarray:
    """pack_weights in NumPy: the reference the compiled pass is held to."""
    from convpool.backends.compiled.direct.pack import BLOCK_OC

    groups, co, n_ent = w.shape
    nb = -(-co // BLOCK_OC)
    packed = np.zeros((groups, nb * BLOCK_OC, n_ent), dtype=np.float32)
    packed[:, :co] = w
    return np.ascontiguousarray(packed.reshape(groups, nb, BLOCK_OC, n_ent).transpose(0, 1, 3, 2)).ravel()


@settings(max_examples=60)
@given(
    groups=st.integers(1, 3),
    co=st.integers(1, 13),
    n_ent=st.integers(1, 20),
    dtype=st.sampled_from([np.float32, np.float64]),
    layout=st.sampled_from(["c", "reversed", "readonly"]),
    seed=st.integers(0, 2**16),
)
def test_pack_weights_matches_the_numpy_reference(
    groups: int, co: int, n_ent: int, dtype: type, layout: str, seed: int
) -> None:
    from convpool.backends.compiled.direct.pack import BLOCK_OC, pack_weights

    w: np.ndarray = np.random.default_rng(seed).standard_normal((groups, co, n_ent)).astype(dtype)
    if layout == "reversed":
        w = w[:, :, ::-1]  # a non-contiguous view (the backward pass packs flipped taps)
    elif layout == "readonly":
        w.flags.writeable = False
    got = pack_weights(w)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert got.shape == (groups * -(-co // BLOCK_OC) * n_ent * BLOCK_OC,)
    np.testing.assert_array_equal(got, pack_weights_numpy(w))


def test_weights_changed_in_place_are_packed_as_they_are_now() -> None:
    from convpool.backends.compiled.direct.pack import pack_weights

    w = np.ones((1, 6, 9), dtype=np.float32)
    first = pack_weights(w)
    w[0, 5, 8] = 7.0  # as an optimiser's step would
    second = pack_weights(w)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(second, pack_weights_numpy(w))


def test_a_conv_after_an_in_place_weight_change_uses_the_new_weights() -> None:
    from convpool.functional.conv import conv2d

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    y0 = conv2d(x, w, padding=1)
    w *= 2
    np.testing.assert_allclose(conv2d(x, w, padding=1), 2 * y0, rtol=1e-6, atol=1e-6)
