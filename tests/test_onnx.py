"""ONNX export: onnxruntime runs every exportable layer (hypothesis over shapes and
options) and every zoo model equal to convpool, float32 tolerance; the refusals.

Each example builds the graph (checked by ``onnx.checker.check_model(full_check=True)``
inside ``build_onnx``), runs it in onnxruntime and compares with the convpool layer in
eval mode; it then imports the graph back (``from_onnx``) and compares again.
``ONNX_EXAMPLES=200`` runs more hypothesis examples per test (default 25)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

pytest.importorskip("onnx", reason="ONNX export needs the onnx package (test extra)")
ort = pytest.importorskip("onnxruntime", reason="running exported models needs onnxruntime (test extra)")

import convpool  # noqa: E402
from convpool import models, nn  # noqa: E402
from convpool.interop._onnx import build_onnx, from_onnx, to_onnx  # noqa: E402
from convpool.nn.conv_transpose import ConvTranspose1d, ConvTranspose2d, ConvTranspose3d  # noqa: E402
from convpool.nn.fold import Fold, Unfold  # noqa: E402
from convpool.nn.fractional import FractionalMaxPool2d  # noqa: E402
from convpool.nn.padding import (  # noqa: E402
    CircularPad1d,
    CircularPad2d,
    ConstantPad2d,
    ReflectionPad2d,
    ReplicationPad3d,
    ZeroPad2d,
)
from convpool.nn.unpool import MaxUnpool2d  # noqa: E402
from convpool.nn.upsample import PixelShuffle, PixelUnshuffle, Upsample  # noqa: E402

SETTINGS = settings(
    max_examples=int(os.environ.get("ONNX_EXAMPLES", "25")), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
RTOL, ATOL = 1e-4, 1e-5  # float32


def _session(proto):  # type: ignore[no-untyped-def]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def check(model, x, *, import_back=True):  # type: ignore[no-untyped-def]
    """onnxruntime's output equals convpool's (eval mode); so does the imported model's."""
    model.eval()
    x = np.asarray(x, dtype=np.float32)
    try:
        want = model(x)
    except ValueError:  # a geometry the layer refuses: not an example
        reject()
    proto = build_onnx(model, x.shape[1:])
    got = _session(proto).run(None, {"input": x})[0]
    scale = max(1.0, float(np.nanmax(np.abs(want))) if np.isfinite(want).any() else 1.0)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL * scale, equal_nan=True)
    if import_back:
        back = from_onnx(proto)
        np.testing.assert_allclose(back(x), want, rtol=RTOL, atol=ATOL * scale, equal_nan=True)
    return proto


def _x(rng, shape, low=-1.0, high=1.0):  # type: ignore[no-untyped-def]
    return rng.uniform(low, high, shape).astype(np.float32)


nds = st.integers(1, 3)
seeds = st.integers(0, 2**16)


def _size(draw, nd, low=3, high=7):  # type: ignore[no-untyped-def]
    return tuple(draw(st.integers(low, high)) for _ in range(nd))


@SETTINGS
@given(st.data(), nds, seeds)
def test_conv(data, nd, seed):  # type: ignore[no-untyped-def]
    g = data.draw(st.sampled_from([1, 2]))
    k = data.draw(st.integers(1, 3))
    mode = data.draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    padding = data.draw(st.sampled_from([0, 1, "same", "valid", ((1, 0),) * nd]))
    stride = data.draw(st.integers(1, 2)) if padding != "same" else 1
    m = nn.Conv1d if nd == 1 else nn.Conv2d if nd == 2 else nn.Conv3d
    layer = m(2 * g, 2 * g, k, stride, padding, data.draw(st.integers(1, 2)), g, data.draw(st.booleans()), mode)
    check(nn.Sequential(layer), _x(np.random.default_rng(seed), (2, 2 * g, *_size(data.draw, nd, 4, 6))))


@SETTINGS
@given(st.data(), nds, seeds)
def test_conv_transpose(data, nd, seed):  # type: ignore[no-untyped-def]
    stride, dilation = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 2))
    out_pad = data.draw(st.integers(0, max(stride, dilation) - 1))
    cls = (ConvTranspose1d, ConvTranspose2d, ConvTranspose3d)[nd - 1]
    layer = cls(2, 4, data.draw(st.integers(1, 3)), stride, data.draw(st.integers(0, 1)), out_pad, 2, True, dilation)
    check(nn.Sequential(layer), _x(np.random.default_rng(seed), (2, 2, *_size(data.draw, nd, 2, 4))))


def _pool_window(data, nd):  # type: ignore[no-untyped-def]
    k = data.draw(st.integers(1, 3))
    dilation = data.draw(st.integers(1, 2))
    padding = data.draw(st.integers(0, (dilation * (k - 1) + 1) // 2))
    stride = data.draw(st.integers(1, 3))
    return k, stride, padding, dilation, data.draw(st.booleans())


@SETTINGS
@given(st.data(), nds, seeds, st.sampled_from(["Max", "Min", "Median"]))
def test_select_pools(data, nd, seed, kind):  # type: ignore[no-untyped-def]
    k, stride, padding, dilation, ceil = _pool_window(data, nd)
    mode = data.draw(st.sampled_from([None, "zeros", "reflect", "replicate", "circular"]))
    layer = getattr(nn, f"{kind}Pool{nd}d")(k, stride, padding, dilation, False, ceil, padding_mode=mode)
    check(nn.Sequential(layer), _x(np.random.default_rng(seed), (2, 3, *_size(data.draw, nd))))


@pytest.mark.parametrize("padding_mode", [None, "reflect"])
def test_median_pool_even_and_cut_windows(padding_mode):  # type: ignore[no-untyped-def]
    """Windows of 2 and 4 elements, and windows the padding or ceil_mode cuts: the lower
    median of the real elements."""
    layer = nn.MedianPool2d((2, 3), 2, 1, 1, False, True, padding_mode=padding_mode)
    check(nn.Sequential(layer), _x(np.random.default_rng(0), (2, 3, 5, 6)))
    check(nn.Sequential(nn.MedianPool1d(2, 1)), _x(np.random.default_rng(1), (2, 3, 5)))


@SETTINGS
@given(st.data(), nds, seeds)
def test_avg_pool(data, nd, seed):  # type: ignore[no-untyped-def]
    k, stride, padding, _, ceil = _pool_window(data, nd)
    padding = min(padding, k // 2)
    mode = data.draw(st.sampled_from([None, None, "reflect", "replicate"]))
    divisor = data.draw(st.sampled_from([None, None, 3]))
    layer = getattr(nn, f"AvgPool{nd}d")(k, stride, padding, ceil, data.draw(st.booleans()), divisor, padding_mode=mode)
    check(nn.Sequential(layer), _x(np.random.default_rng(seed), (2, 3, *_size(data.draw, nd))))


@SETTINGS
@given(st.data(), nds, seeds, st.sampled_from([1.0, 2.0, 3.0, 4, 1.5, math.inf]))
def test_lp_pool(data, nd, seed, p):  # type: ignore[no-untyped-def]
    k, stride = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    layer = getattr(nn, f"LPPool{nd}d")(p, k, stride, data.draw(st.booleans()))
    low = -1.0 if p in (2.0, 4, math.inf) else 0.05  # x**p of a negative x: NaN for a fractional p
    check(nn.Sequential(layer), _x(np.random.default_rng(seed), (2, 3, *_size(data.draw, nd)), low))


@SETTINGS
@given(st.data(), nds, seeds, st.sampled_from(["Avg", "Max"]))
def test_adaptive_pools(data, nd, seed, kind):  # type: ignore[no-untyped-def]
    size = _size(data.draw, nd, 2, 9)
    out = tuple(data.draw(st.integers(1, n)) for n in size)
    layer = getattr(nn, f"Adaptive{kind}Pool{nd}d")(out)
    check(nn.Sequential(layer), _x(np.random.default_rng(seed), (2, 3, *size)))


@SETTINGS
@given(st.data(), nds, seeds, st.sampled_from(["GeM", "LSE", "Mixed", "Gated"]))
def test_learned_pools(data, nd, seed, kind):  # type: ignore[no-untyped-def]
    k, stride = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    padding = data.draw(st.integers(0, k // 2))
    learn = data.draw(st.booleans())
    if kind == "GeM":
        glob = data.draw(st.booleans())
        p = data.draw(st.sampled_from([1.0, 2.5, 3.0]))
        cls = getattr(nn, f"GeMPool{nd}d")
        layer = cls(p=p, learn_p=learn) if glob else cls(k, stride, padding, p, learn)
    elif kind == "LSE":
        beta = data.draw(st.sampled_from([0.5, 3.0, 50.0]))
        layer = getattr(nn, f"LSEPool{nd}d")(k, stride, padding, beta, learn)
    elif kind == "Mixed":
        layer = getattr(nn, f"MixedPool{nd}d")(k, stride, padding, 0.3, learn)
        if learn:
            layer.alpha.data[...] = data.draw(st.sampled_from([0.7, 1.4, -0.2]))  # clipped to [0, 1] in use
    else:
        layer = getattr(nn, f"GatedPool{nd}d")(3, k, stride, padding)
    check(nn.Sequential(layer), _x(np.random.default_rng(seed), (2, 3, *_size(data.draw, nd))))


@SETTINGS
@given(st.data(), nds, seeds, st.sampled_from(["Soft", "Stochastic", "Blur", "MaxBlur", "SPP"]))
def test_published_pools(data, nd, seed, kind):  # type: ignore[no-untyped-def]
    k, stride = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    mode = data.draw(st.sampled_from(["reflect", "replicate", "zeros", "circular"]))
    filt = data.draw(st.integers(1, 4))
    layer = {
        "Soft": lambda: getattr(nn, f"SoftPool{nd}d")(k, stride),
        "Stochastic": lambda: getattr(nn, f"StochasticPool{nd}d")(k, stride),
        "Blur": lambda: getattr(nn, f"BlurPool{nd}d")(3, filt, stride, mode),
        "MaxBlur": lambda: getattr(nn, f"MaxBlurPool{nd}d")(3, k, stride, filt, mode),
        "SPP": lambda: getattr(nn, f"SpatialPyramidPool{nd}d")((1, 2, 3), data.draw(st.sampled_from(["max", "avg"]))),
    }[kind]()
    x = _x(np.random.default_rng(seed), (2, 3, *_size(data.draw, nd)), 0.0)  # stochastic pooling: x >= 0
    if kind == "Stochastic":
        x[0, 0] = 0.0  # windows of zeros give 0
    check(nn.Sequential(layer), x)


@SETTINGS
@given(st.data(), nds, seeds, st.sampled_from(["Max", "Min"]))
def test_maxplus_conv(data, nd, seed, kind):  # type: ignore[no-untyped-def]
    g = data.draw(st.sampled_from([1, 2]))
    padding = data.draw(st.sampled_from([0, 1, "same"]))
    mode = data.draw(st.sampled_from([None, "zeros", "reflect"]))
    layer = getattr(nn, f"{kind}PlusConv{nd}d")(
        2 * g,
        2 * g,
        data.draw(st.integers(1, 3)),
        data.draw(st.integers(1, 2)) if padding != "same" else 1,
        padding,
        data.draw(st.integers(1, 2)),
        g,
        data.draw(st.booleans()),
        mode,
    )
    rng = np.random.default_rng(seed)
    layer.weight.data[...] = _x(rng, layer.weight.shape)
    if layer.bias is not None:
        layer.bias.data[...] = _x(rng, layer.bias.shape)
    check(nn.Sequential(layer), _x(rng, (2, 2 * g, *_size(data.draw, nd, 4, 6))))


@SETTINGS
@given(st.data(), seeds)
def test_padding_layers(data, seed):  # type: ignore[no-untyped-def]
    pads4 = tuple(data.draw(st.integers(-1, 2)) for _ in range(4))
    layer = data.draw(
        st.sampled_from(
            [
                ZeroPad2d(pads4),
                ConstantPad2d(pads4, 2.5),
                ReflectionPad2d(tuple(data.draw(st.integers(-1, 2)) for _ in range(4))),
                CircularPad2d(pads4),
                CircularPad1d((data.draw(st.integers(0, 3)), 1)),
                ReplicationPad3d(tuple(data.draw(st.integers(-1, 2)) for _ in range(6))),
            ]
        )
    )
    shape = (2, 3, 4, 5, 4) if layer.nd == 3 else (2, 3, 4, 5) if layer.nd == 2 else (2, 3, 5)
    check(nn.Sequential(layer), _x(np.random.default_rng(seed), shape))


@SETTINGS
@given(st.data(), nds, seeds)
def test_upsample(data, nd, seed):  # type: ignore[no-untyped-def]
    mode = data.draw(st.sampled_from(["nearest", "nearest-exact", "linear", "area"]))
    if mode == "linear":
        mode = ("linear", "bilinear", "trilinear")[nd - 1]
    corners = data.draw(st.sampled_from([None, True, False])) if mode.endswith("linear") else None
    size = _size(data.draw, nd, 2, 6)
    if data.draw(st.booleans()):
        layer = Upsample(size=tuple(data.draw(st.integers(1, 12)) for _ in range(nd)), mode=mode, align_corners=corners)
    else:
        factor = data.draw(st.sampled_from([2, 3, 0.5, 1.5, 1.1, 2.7]))
        layer = Upsample(
            scale_factor=factor,
            mode=mode,
            align_corners=corners,
            recompute_scale_factor=data.draw(st.sampled_from([None, True])),
        )
    check(nn.Sequential(layer), _x(np.random.default_rng(seed), (2, 3, *size)))


@pytest.mark.parametrize(
    ("kw", "size", "resize"),
    [
        ({"scale_factor": 2, "mode": "bilinear"}, (4, 4), True),
        ({"scale_factor": 3, "mode": "trilinear", "align_corners": True}, (3, 2, 4), True),
        ({"size": (7, 9), "mode": "nearest"}, (4, 5), True),
        ({"scale_factor": 2, "mode": "nearest-exact"}, (3, 5), True),
        # PyTorch's special cases Resize cannot express: convpool's indices instead
        ({"scale_factor": 1.1, "mode": "nearest"}, (7,), False),  # an unchanged size, yet not a copy
        ({"scale_factor": 1.1, "mode": "nearest-exact"}, (7, 1), False),  # onnxruntime would copy
        ({"scale_factor": (2.0, 1.1), "mode": "bilinear"}, (3, 7), False),  # PyTorch copies one axis
    ],
)
def test_upsample_resize_or_exact_indices(kw, size, resize):  # type: ignore[no-untyped-def]
    proto = check(nn.Sequential(Upsample(**kw)), _x(np.random.default_rng(0), (2, 3, *size)))
    assert any(n.op_type == "Resize" for n in proto.graph.node) == resize


@SETTINGS
@given(st.data(), seeds)
def test_shuffle_fold_unfold(data, seed):  # type: ignore[no-untyped-def]
    r = data.draw(st.integers(1, 3))
    c = data.draw(st.integers(1, 3))
    rng = np.random.default_rng(seed)
    kind = data.draw(st.sampled_from(["shuffle", "unshuffle", "unfold", "fold"]))
    if kind == "shuffle":
        check(nn.Sequential(PixelShuffle(r)), _x(rng, (2, c * r * r, 3, 2)))
    elif kind == "unshuffle":
        check(nn.Sequential(PixelUnshuffle(r)), _x(rng, (2, c, 2 * r, 3 * r)))
    else:
        k, s, p, d = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 2)), data.draw(st.integers(0, 1)), 1
        if kind == "unfold":
            check(nn.Sequential(Unfold(k, d, p, s)), _x(rng, (2, c, 5, 4)))
        else:
            out = (5, 4)
            blocks = math.prod((n + 2 * p - d * (k - 1) - 1) // s + 1 for n in out)
            check(nn.Sequential(Fold(out, k, d, p, s)), _x(rng, (2, c * k * k, blocks)))


def test_dense_layers_and_activations():  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    bn = nn.BatchNorm2d(3)
    bn.running_mean[...] = _x(rng, 3)
    bn.running_var[...] = _x(rng, 3, 0.5, 2.0)
    bn.weight.data[...] = _x(rng, 3)
    model = nn.Sequential(
        bn,
        nn.LeakyReLU(0.2),
        nn.Tanh(),
        nn.Dropout(0.3),
        nn.Flatten(2),
        nn.Linear(20, 6),
        nn.Sigmoid(),
        nn.Flatten(),
        nn.BatchNorm1d(18, affine=False),
        nn.Linear(18, 4),
        nn.ReLU(),
        nn.Identity(),
    )
    check(model, _x(rng, (5, 3, 4, 5)))
    check(nn.Sequential(nn.Flatten(0)), _x(rng, (3, 2, 2)))


@pytest.mark.parametrize("name", ["lenet", "allconv", "mlp", *(f"lenet5-{p}" for p in models.POOLS)])
def test_zoo_models(name, tmp_path):  # type: ignore[no-untyped-def]
    """Every model of the zoo (LeNet-5 with every pool) writes a file onnxruntime runs
    equal to convpool, and reads back equal."""
    convpool.manual_seed(0)
    if name.startswith("lenet5"):
        model, shape = models.lenet5(pool=name.split("-")[1]), (1, 28, 28)
    else:
        model, shape = models.build(name, 1, 10, 8), (1, 8, 8)
    path = str(tmp_path / "model.onnx")
    to_onnx(model, shape, path)
    x = np.random.default_rng(1).random((4, *shape)).astype(np.float32)
    model.eval()
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model(x), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(from_onnx(path)(x), model(x), rtol=RTOL, atol=ATOL)


def test_export_keeps_training_mode_and_names_initializers_by_state_dict_keys():  # type: ignore[no-untyped-def]
    model = models.lenet()
    proto = build_onnx(model, (1, 8, 8))
    assert model.training  # exported in eval mode, restored
    names = {i.name for i in proto.graph.initializer}
    assert set(model.state_dict()) <= names
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"


def test_refusals(tmp_path):  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError, match=r"FractionalMaxPool2d.*no exact ONNX form.*pseudo-random"):
        build_onnx(nn.Sequential(FractionalMaxPool2d(2, output_size=3)), (1, 8, 8))
    with pytest.raises(TypeError, match=r"MaxUnpool2d.*needs the indices of a MaxPool"):
        build_onnx(nn.Sequential(MaxUnpool2d(2)), (1, 8, 8))
    with pytest.raises(TypeError, match=r"return_indices=True"):
        build_onnx(nn.Sequential(nn.MaxPool2d(2, return_indices=True)), (1, 8, 8))
    with pytest.raises(ValueError, match=r"input_shape must be positive ints.*got \(1, 0, 8\)"):
        build_onnx(models.lenet(), (1, 0, 8))
    with pytest.raises(TypeError, match=r"input_shape must be a tuple"):
        build_onnx(models.lenet(), 8)
    with pytest.raises(ValueError, match=r"layer 0 \(Conv2d\) does not accept the shape \(N, 3, 8, 8\)"):
        build_onnx(models.lenet(), (3, 8, 8))
    with pytest.raises(ValueError, match=r"opset must be an int from 19 to \d+ .*, got 12"):
        build_onnx(models.lenet(), (1, 8, 8), opset=12)
    with pytest.raises(TypeError, match=r"model must be a convpool Module, got str"):
        build_onnx("lenet", (1, 8, 8))  # type: ignore[arg-type]
    proto = build_onnx(models.lenet(), (1, 8, 8), opset=21)
    assert proto.opset_import[0].version == 21
