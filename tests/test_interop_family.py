"""to_torch / from_torch for the rest of the family: same outputs, same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convpool import interop, models, nn

CASES = [
    (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, dilation=1), (2, 4, 5, 5)),
    (lambda: nn.ConvTranspose1d(3, 2, 4, stride=2, bias=False), (2, 3, 7)),
    (lambda: nn.ConvTranspose3d(2, 2, 2, stride=2), (1, 2, 3, 3, 3)),
    (lambda: nn.Sequential(nn.Unfold(3, padding=1), nn.Fold((5, 5), 3, padding=1)), (2, 3, 5, 5)),
    (lambda: nn.ZeroPad2d((1, 2, 0, 1)), (2, 3, 4, 4)),
    (lambda: nn.ConstantPad1d(2, 3.5), (2, 3, 4)),
    (lambda: nn.ReflectionPad2d(1), (2, 3, 4, 4)),
    (lambda: nn.ReplicationPad3d(1), (1, 2, 3, 3, 3)),
    (lambda: nn.CircularPad2d((1, 0, 2, 1)), (2, 3, 4, 4)),
    (lambda: nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), (2, 3, 4, 5)),
    (lambda: nn.Upsample(size=(7,), mode="linear", align_corners=True), (2, 3, 4)),
    (lambda: nn.UpsamplingNearest2d(scale_factor=3), (2, 3, 4, 4)),
    (lambda: nn.Sequential(nn.PixelShuffle(2), nn.PixelUnshuffle(2)), (2, 8, 3, 3)),
    (
        lambda: nn.FractionalMaxPool2d(2, output_size=3, _random_samples=np.full((2, 3, 2), 0.4, np.float32)),
        (2, 3, 7, 7),
    ),
]


@pytest.mark.parametrize("make,shape", CASES)
def test_round_trip_through_torch(make, shape):
    model = make()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    tm = interop.to_torch(model)
    with torch.no_grad():
        expected = tm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), expected, rtol=1e-5, atol=1e-5)
    back = interop.from_torch(tm)
    assert repr(back) == repr(model)
    np.testing.assert_allclose(back(x), expected, rtol=1e-5, atol=1e-5)
    for (k, v), (k2, v2) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert k == k2
        np.testing.assert_array_equal(v, v2)


def test_maxunpool_round_trip():
    m = nn.MaxUnpool2d(2, stride=2)
    tm = interop.to_torch(m)
    assert (tm.kernel_size, tm.stride, tm.padding) == ((2, 2), (2, 2), (0, 0))
    assert repr(interop.from_torch(tm)) == repr(m)


def test_summary_counts_transposed_conv():
    model = nn.Sequential(nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2), nn.Upsample(scale_factor=2))
    rows = models.summary_rows(model, (4, 5, 5))
    assert rows[0].output_shape == (6, 9, 9)
    assert rows[0].params == 4 * 3 * 9 + 6
    # every input position scatters into C_out/groups * k*k outputs per input channel
    assert rows[0].mult_adds == 4 * 5 * 5 * 3 * 9
    assert rows[1].output_shape == (6, 18, 18) and rows[1].params == 0


def test_summary_stops_the_receptive_field_at_resampling_layers():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Upsample(scale_factor=2), nn.Conv2d(2, 2, 3), nn.Flatten())
    rfs = [r.receptive_field for r in models.summary_rows(model, (1, 8, 8))]
    assert rfs == [3, 0, 0, None]
    assert "n/a" in models.summary(model, (1, 8, 8))
