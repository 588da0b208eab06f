"""ONNX import: graphs without convpool's metadata (read operator by operator),
PyTorch's own export, and the errors naming the first node that cannot be imported."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX import needs the onnx package (test extra)")
ort = pytest.importorskip("onnxruntime", reason="running exported models needs onnxruntime (test extra)")

import convpool  # noqa: E402
from convpool import models, nn  # noqa: E402
from convpool.interop._onnx import build_onnx, from_onnx  # noqa: E402
from convpool.nn.conv_transpose import ConvTranspose2d  # noqa: E402
from convpool.nn.fold import Fold  # noqa: E402
from convpool.nn.padding import CircularPad2d, ConstantPad2d, ReflectionPad2d, ReplicationPad2d  # noqa: E402
from convpool.nn.upsample import (  # noqa: E402
    PixelShuffle,
    PixelUnshuffle,
    Upsample,
    UpsamplingBilinear2d,
    UpsamplingNearest2d,
)

RTOL, ATOL = 1e-4, 1e-5


def _strip(proto):  # type: ignore[no-untyped-def]
    """The graph as another exporter would write it: no convpool metadata."""
    del proto.metadata_props[:]
    return proto


def _ort(proto, x):  # type: ignore[no-untyped-def]
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[
        0
    ]


def _random_bn(bn, rng):  # type: ignore[no-untyped-def]
    bn.running_mean[...] = rng.uniform(-1, 1, bn.num_features)
    bn.running_var[...] = rng.uniform(0.5, 2, bn.num_features)
    return bn


def test_standard_operators_import_without_metadata():  # type: ignore[no-untyped-def]
    """A graph of standard operators only (no convpool metadata) imports operator by
    operator into layers that compute the same: each onnxruntime output is matched."""
    convpool.manual_seed(0)
    rng = np.random.default_rng(0)
    chains = {
        (2, 6, 6): nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=((1, 0), (0, 1)), dilation=1, groups=2),
            _random_bn(nn.BatchNorm2d(4), rng),
            nn.LeakyReLU(0.1),
            nn.MaxPool2d(2, 1, 1, 2, ceil_mode=True),
            nn.AvgPool2d(2, 1, 1, count_include_pad=False),
            nn.LPPool2d(2, 2, 1),
            ReflectionPad2d(1),
            ReplicationPad2d((1, 0, 0, 1)),
            CircularPad2d(1),
            ConstantPad2d((1, -1, 0, 2), 0.5),
            ConvTranspose2d(4, 4, 3, 2, 1, 1),
            PixelUnshuffle(2),
            PixelShuffle(2),
            Upsample(scale_factor=2, mode="nearest"),
            Upsample(size=(9, 7), mode="bilinear"),
            Upsample(scale_factor=1.5, mode="bilinear", align_corners=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(0.2),
            nn.Linear(4, 3),
            nn.Tanh(),
            nn.Sigmoid(),
            nn.ReLU(),
        ),
        (8, 3, 4): nn.Sequential(
            nn.Flatten(2), Fold((5, 4), 2), nn.AdaptiveMaxPool2d(1), nn.Flatten(2), nn.Linear(1, 4)
        ),
        (2, 8): nn.Sequential(nn.Conv1d(2, 2, 3, padding="same"), nn.Flatten(), _random_bn(nn.BatchNorm1d(16), rng)),
    }
    for shape, model in chains.items():
        model.eval()
        x = rng.uniform(-1, 1, (3, *shape)).astype(np.float32)
        proto = _strip(build_onnx(model, shape))
        np.testing.assert_allclose(_ort(proto, x), model(x), rtol=RTOL, atol=ATOL)
        back = from_onnx(proto)
        np.testing.assert_allclose(back(x), model(x), rtol=RTOL, atol=ATOL)
        assert not any(type(m).__name__ in ("GeMPool2d", "MedianPool2d") for m in back)


def test_metadata_round_trip_keeps_layers_names_and_nesting(tmp_path):  # type: ignore[no-untyped-def]
    convpool.manual_seed(0)
    model = nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.GeMPool2d(2)),
        UpsamplingBilinear2d(scale_factor=2),
        UpsamplingNearest2d(size=(8, 7)),
        nn.MedianPool2d(2),
        nn.Flatten(),
    )
    path = str(tmp_path / "m.onnx")
    convpool.interop._onnx.to_onnx(model, (1, 9, 9), path)
    back = from_onnx(path)
    assert repr(back) == repr(model.eval())
    assert set(back.state_dict()) == set(model.state_dict())
    x = np.random.default_rng(0).random((2, 1, 9, 9)).astype(np.float32)
    np.testing.assert_allclose(back(x), model(x), rtol=RTOL, atol=ATOL)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_pytorch_export_imports():  # type: ignore[no-untyped-def]
    """A LeNet exported by PyTorch itself reads back equal to the PyTorch model."""
    torch = pytest.importorskip("torch", reason="needs PyTorch")
    import io

    model = convpool.interop.to_torch(models.lenet()).eval()
    buf = io.BytesIO()
    try:
        torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), buf, input_names=["input"], dynamo=False)
    except Exception as exc:  # the exporter needs packages the test extra does not pin
        pytest.skip(f"torch.onnx.export is not available here: {exc}")
    back = from_onnx(onnx.load_from_string(buf.getvalue()))
    x = np.random.default_rng(0).random((1, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(back(x), want, rtol=RTOL, atol=ATOL)


def _append(proto, op, inputs, **attrs):  # type: ignore[no-untyped-def]
    out = proto.graph.output[0]
    node = onnx.helper.make_node(op, inputs, ["extra"], name="extra_node", **attrs)
    proto.graph.node.append(node)
    out.name = "extra"
    return proto


def test_unsupported_nodes_are_named():  # type: ignore[no-untyped-def]
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    proto = _append(build_onnx(model, (1, 2, 2)), "Softmax", ["output"], axis=1)
    with pytest.raises(ValueError, match=r"node 2 'extra_node' \(Softmax\) is not supported: .*no Softmax layer"):
        from_onnx(proto)
    proto = _append(build_onnx(model, (1, 2, 2)), "Add", ["output", "output"])
    with pytest.raises(ValueError, match=r"node 2 'extra_node' \(Add\) is not supported: .*residual connection"):
        from_onnx(proto)
    proto = _append(build_onnx(model, (1, 2, 2)), "Mul", ["1.weight", "output"])
    with pytest.raises(ValueError, match=r"node 2 'extra_node' \(Mul\) does not read the chain's tensor 'output'"):
        from_onnx(proto)
    proto = _strip(build_onnx(nn.Sequential(nn.GeMPool2d(2)), (1, 4, 4)))  # a composition, without its record
    with pytest.raises(ValueError, match=r"node 0 '0/Max_node' \(Max\) is not supported"):
        from_onnx(proto)
    proto = _strip(build_onnx(nn.Sequential(nn.AvgPool2d(2)), (1, 4, 4)))
    proto.graph.node[0].op_type = "LpPool"
    proto.graph.node[0].attribute.append(onnx.helper.make_attribute("p", 3))
    with pytest.raises(ValueError, match=r"\(LpPool\) is not supported: p=3 .*\|x\|\*\*p"):
        from_onnx(proto)


def test_import_errors_for_bad_files(tmp_path):  # type: ignore[no-untyped-def]
    proto = build_onnx(models.mlp(), (1, 8, 8))
    proto.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    with pytest.raises(ValueError, match=r"needs the input's shape, fixed but for the batch axis"):
        from_onnx(proto)
    proto = build_onnx(nn.Sequential(nn.GeMPool2d(2)), (1, 4, 4))
    proto.metadata_props[0].value = proto.metadata_props[0].value.replace("GeMPool2d", "os.system")
    with pytest.raises(ValueError, match=r"layer '0': 'os.system' is not a convpool layer"):
        from_onnx(proto)
    proto = build_onnx(nn.Sequential(nn.Conv2d(1, 2, 3)), (1, 4, 4))
    for init in proto.graph.initializer:
        if init.name == "0.weight":
            init.name = "renamed"
    with pytest.raises(ValueError, match=r"layer '0': no initializer '0.weight'"):
        from_onnx(proto)
