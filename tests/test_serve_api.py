"""``convpool serve``'s JSON API, in process (FastAPI's TestClient).

* every op: the answer's output and gradients equal convpool's functional ops called
  directly (and PyTorch's on the worked example); every window written out reduces to
  the engine's output, its winner is the engine's;
* bad input: a 4xx JSON answer naming the field and what was expected, never a 5xx;
* a schemathesis run over ``/openapi.json`` (no 5xx, answers as described);
* the network view: a small LeNet-5 trained into a temporary cache, then loaded back.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("fastapi", reason="convpool serve needs the lab extra (fastapi, uvicorn)")
schemathesis = pytest.importorskip("schemathesis")

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2 over httpx for its test client
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import convpool.functional as F  # noqa: E402
from convpool.examples import INPUT, KERNELS  # noqa: E402
from convpool.serve.app import create_app  # noqa: E402
from convpool.serve.network import NetworkService  # noqa: E402
from convpool.serve.schemas import OPS  # noqa: E402
from convpool.windows import pad  # noqa: E402

APP = create_app(NetworkService("/nonexistent-convpool-cache", variants=()))
CLIENT = TestClient(APP)
CONVS = ("conv", "maxplus", "minplus")
SELECT = ("max", "min", "median")


def post(body: dict, path: str = "/api/layer") -> dict:
    r = CLIENT.post(path, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def arr(grid: list) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in grid], dtype=np.float64)


def pair(v: object) -> object:
    return tuple(v) if isinstance(v, list) else v


def direct(body: dict, dy: np.ndarray | None = None) -> dict:
    """The same op computed with convpool.functional directly: output, gradients, winners."""
    op, x = body["op"], np.array(body["input"], dtype=np.float64)[None, None]
    stride, padding = pair(body.get("stride", 1 if op in CONVS else None)), pair(body.get("padding", 0))
    dilation, ceil = pair(body.get("dilation", 1)), body.get("ceil_mode", False)
    mode, out = body.get("padding_mode"), {}
    if op in CONVS:
        w = np.array(body["kernel"], dtype=np.float64)[None, None]
        if op == "conv":
            out["y"] = F.conv2d(x, w, None, stride, padding, dilation, padding_mode=mode or "zeros")
            fwd, back = F.conv_forward(x, w, None, stride, padding, dilation, 1, mode or "zeros"), F.conv_backward
        else:
            f2d = F.maxplus_conv2d if op == "maxplus" else F.minplus_conv2d
            out["y"] = f2d(x, w, None, stride, padding, dilation, padding_mode=mode)
            f = F.maxplus_conv_forward if op == "maxplus" else F.minplus_conv_forward
            fwd, back = f(x, w, None, stride, padding, dilation, 1, mode), F.maxplus_conv_backward
    else:
        k = pair(body["kernel_size"])
        if op in SELECT:
            pool = {"max": F.max_pool2d, "min": F.min_pool2d, "median": F.median_pool2d}[op]
            out["y"], out["flat"] = pool(x, k, stride, padding, dilation, ceil, True, padding_mode=mode)
            fwd, back = F.reduce_window_forward(x, op, 2, k, stride, padding, dilation, ceil, mode), None
        elif op == "avg":
            cip = body.get("count_include_pad", True)
            out["y"] = F.avg_pool2d(x, k, stride, padding, ceil, cip, padding_mode=mode)
            fwd, back = F.avg_pool_forward(x, 2, k, stride, padding, ceil, cip, None, mode), None
        elif op == "lp":
            out["y"] = F.lp_pool2d(x, body.get("p", 2.0), k, stride, ceil)
            fwd, back = F.lp_pool_forward(x, body.get("p", 2.0), 2, k, stride, ceil), F.lp_pool_backward
        elif op == "gem":
            out["y"] = F.gem_pool2d(x, k, stride, padding, body.get("p", 3.0))
            fwd, back = F.gem_pool_forward(x, body.get("p", 3.0), 2, k, stride, padding), F.gem_pool_backward
        else:
            out["y"] = F.lse_pool2d(x, k, stride, padding, body.get("beta", 1.0))
            fwd, back = F.lse_pool_forward(x, body.get("beta", 1.0), 2, k, stride, padding), F.lse_pool_backward
    y, ctx = fwd
    np.testing.assert_array_equal(y, out["y"])  # the *_forward and the public op agree
    dy4 = np.ones_like(y) if dy is None else dy[None, None]
    grads = back(dy4, ctx) if back is not None else F.reduce_window_backward(dy4, ctx)
    grads = grads if isinstance(grads, tuple) else (grads,)
    out["gx"] = grads[0][0, 0]
    out["y"] = out["y"][0, 0]
    if op in CONVS:
        out["gk"] = grads[1][0, 0]
    if op in ("gem", "lse"):
        out["gparam"] = float(grads[1])
    return out


def assert_same(api_grid: list, ours: np.ndarray, what: str) -> None:
    np.testing.assert_array_equal(arr(api_grid), np.where(np.isfinite(ours), ours, np.nan), err_msg=what)


def check_windows(res: dict, ours: dict, body: dict) -> None:
    """Each window as written out reduces to the engine's output; the winner is the engine's."""
    w, op = res["windows"], res["op"]
    y = arr(res["output"])
    idx, vals, terms = np.array(w["index"]), arr_3d(w["values"]), arr_3d(w["terms"])
    real = idx != -2
    for (i, j), out in np.ndenumerate(y):
        v, t, r = vals[i, j][real[i, j]], terms[i, j][real[i, j]], real[i, j]
        win = w["winner"][i][j]
        if op == "conv":
            assert math.isclose(t.sum(), out, rel_tol=1e-9, abs_tol=1e-9)
        elif op in ("maxplus", "minplus", "max", "min"):
            reduce = np.max if op in ("maxplus", "max") else np.min
            assert reduce(t) == out and terms[i, j][win] == out and r[win]
        elif op == "median":
            assert np.sort(v)[(len(v) - 1) // 2] == out and vals[i, j][win] == out
        elif op == "avg":
            assert math.isclose(v.sum() / w["divisor"][i][j], out, rel_tol=1e-9, abs_tol=1e-12)
        elif op == "lp" and np.isfinite(out):
            assert math.isclose(t.sum() ** (1 / body.get("p", 2.0)), out, rel_tol=1e-9, abs_tol=1e-12)
        elif op == "gem":
            assert math.isclose(t.mean() ** (1 / body.get("p", 3.0)), out, rel_tol=1e-9, abs_tol=1e-12)
        elif op == "lse":
            got = v.max() + math.log(t.mean()) / body.get("beta", 1.0)
            assert math.isclose(got, out, rel_tol=1e-9, abs_tol=1e-9)
        if op in SELECT:  # the winner reads the element the pool's return_indices names
            assert idx[i, j][win] == ours["flat"][0, 0][i, j]


def arr_3d(grid: list) -> np.ndarray:
    return np.array([[[np.nan if v is None else v for v in s] for s in row] for row in grid], dtype=np.float64)


@st.composite
def bodies(draw: st.DrawFn, op: str) -> dict:
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    cells = st.floats(-4, 4, allow_nan=False).map(lambda v: round(v, 3))
    if op in ("lp", "gem"):
        cells = st.floats(0, 4).map(lambda v: round(v, 3))  # lp: x ** p of a negative x is NaN
    body: dict = {"op": op, "input": [[draw(cells) for _ in range(w)] for _ in range(h)]}
    size = st.integers(1, 3) | st.lists(st.integers(1, 3), min_size=2, max_size=2)
    if op in CONVS:
        kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        body["kernel"] = [[draw(cells) for _ in range(kw)] for _ in range(kh)]
    else:
        body["kernel_size"] = draw(size)
    if draw(st.booleans()):
        body["stride"] = draw(st.integers(1, 3) | st.lists(st.integers(1, 3), min_size=2, max_size=2))
    if op != "lp" and draw(st.booleans()):
        body["padding"] = draw(st.integers(0, 2) | st.sampled_from(["same", "valid"]) | size)
    if op in CONVS + SELECT + ("avg",):
        mode = draw(st.sampled_from([None, "zeros", "reflect", "replicate", "circular"]))
        if mode is not None:
            body["padding_mode"] = mode
    if op in CONVS + SELECT:
        body["dilation"] = draw(st.integers(1, 2))
    if op in SELECT + ("avg", "lp"):
        body["ceil_mode"] = draw(st.booleans())
    if op == "avg":
        body["count_include_pad"] = draw(st.booleans())
    if op == "lp":
        body["p"] = draw(st.sampled_from([1.0, 2.0, 3.0, 1.5]))
    if op == "gem":
        body["p"] = draw(st.floats(0.5, 6).map(lambda v: round(v, 2)))
    if op == "lse":
        body["beta"] = draw(st.floats(0.01, 20).map(lambda v: round(v, 3)))
    return body


@pytest.mark.parametrize("op", OPS)
@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_op_equals_convpool(op: str, data: st.DataObject) -> None:
    body = data.draw(bodies(op))
    r = CLIENT.post("/api/layer", json=body)
    try:
        ours = direct(body)
    except (ValueError, TypeError) as exc:  # convpool refuses: so does the API, naming a field
        assert r.status_code == 422, r.text
        assert str(exc) in r.json()["error"] and r.json()["field"]
        return
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["output_shape"] == list(ours["y"].shape)
    assert_same(res["output"], ours["y"], "output")
    assert_same(res["grad_input"], ours["gx"], "grad_input")
    if "gk" in ours:
        assert_same(res["grad_kernel"], ours["gk"], "grad_kernel")
    if "gparam" in ours:
        assert res["grad_params"] == {"p" if op == "gem" else "beta": ours["gparam"]}
    check_windows(res, ours, body)
    if body.get("padding_mode") in ("reflect", "replicate", "circular"):  # the border the windows read
        x = np.array(body["input"], dtype=np.float64)
        border = pad(x, tuple(map(tuple, res["padding"])), body["padding_mode"])
        got = arr(res["padded_input"])[: border.shape[0], : border.shape[1]]
        np.testing.assert_array_equal(got, border)
    assert all(
        f.endswith(f"= {n}") or f"= {n} " in f for f, n in zip(res["formulas"], res["output_shape"], strict=True)
    )


@pytest.mark.parametrize("op", ["conv", "max", "avg", "maxplus", "gem", "lse"])
@settings(max_examples=25)
@given(seed=st.integers(0, 2**16))
def test_grad_output_is_used(op: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((5, 6)).round(3).tolist()
    body: dict = {"op": op, "input": x, "padding": 1}
    body.update({"kernel": rng.standard_normal((3, 2)).round(3).tolist()} if op in CONVS else {"kernel_size": 3})
    shape = post(body)["output_shape"]
    dy = rng.standard_normal(shape).round(3)
    res = post({**body, "grad_output": dy.tolist()})
    ours = direct(body, dy)
    assert_same(res["grad_input"], ours["gx"], "grad_input")
    assert res["grad_output"] == dy.tolist()


def test_worked_example_against_torch() -> None:
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x, k = INPUT.tolist(), KERNELS["vertical-edge"].tolist()
    xt = torch.tensor(INPUT[None, None], requires_grad=True)
    cases = [
        ({"op": "conv", "kernel": k, "padding": 1}, lambda t: tf.conv2d(t, torch.tensor(KERNELS["vertical-edge"])[None, None], padding=1)),
        ({"op": "max", "kernel_size": 3, "stride": 2, "padding": 1}, lambda t: tf.max_pool2d(t, 3, 2, 1)),
        ({"op": "avg", "kernel_size": 2}, lambda t: tf.avg_pool2d(t, 2)),
        ({"op": "lp", "kernel_size": 2, "stride": 1, "p": 3.0}, lambda t: tf.lp_pool2d(t, 3.0, 2, 1)),
    ]  # fmt: skip
    for body, f in cases:
        xt.grad = None
        yt = f(xt)
        yt.sum().backward()
        res = post({**body, "input": x})
        np.testing.assert_allclose(arr(res["output"]), yt.detach().numpy()[0, 0], rtol=1e-12, err_msg=body["op"])
        np.testing.assert_allclose(arr(res["grad_input"]), xt.grad.numpy()[0, 0], rtol=1e-12, err_msg=body["op"])
    centre = post({"op": "conv", "input": x, "kernel": k})
    assert centre["output"][1][1] == F.conv2d(INPUT[None, None], KERNELS["vertical-edge"][None, None])[0, 0, 1, 1]
    assert post({"op": "max", "input": x, "kernel_size": 3, "stride": 1})["output"][1][1] == 5.0


def test_max_pool_pads_with_minus_infinity_and_says_so() -> None:
    res = post({"op": "max", "input": [[-1.0, -2.0], [-3.0, -4.0]], "kernel_size": 2, "stride": 1, "padding": 1})
    assert res["identity"] == "-inf" and res["padding_mode"] == "identity"
    assert res["padded_input"][0] == [None] * 4 and res["padded_index"][0] == [-2] * 4
    assert res["output"][0][0] == -1.0  # the padding never wins
    zeros = post({"op": "max", "input": [[-1.0, -2.0], [-3.0, -4.0]], "kernel_size": 2, "stride": 1, "padding": 1,
                  "padding_mode": "zeros"})  # fmt: skip
    assert zeros["output"][0][0] == 0.0 and zeros["notes"]  # a zero wins, and a note says why


BAD = [
    ({"op": "conv", "input": [[1, "a"], [2, 3]], "kernel": [[1]]}, 422, "input[0][1]", "valid number"),
    ({"op": "conv", "input": [[1, 2], [3]], "kernel": [[1]]}, 422, "input", "rectangular.*row 1 has 1"),
    ({"op": "conv", "input": [[1, 2], [3, 4]], "kernel": [[1, 2, 3]] * 3}, 422, "kernel", "does not fit"),
    ({"op": "max", "input": [[1, 2], [3, 4]], "kernel_size": 3}, 422, "kernel_size", "does not fit"),
    ({"op": "conv", "input": [[1]], "kernel": [[1]], "stride": -1}, 422, "stride", "stride must be an int from 1"),
    ({"op": "conv", "input": [[1]], "kernel": [[1]], "stride": [1, 0]}, 422, "stride", r"got \[1, 0\]"),
    ({"op": "fft", "input": [[1]]}, 422, "op", "op must be one of conv, max.*got 'fft'"),
    ({"input": [[1]]}, 422, "op", "op must be one of"),
    ({"op": "max", "input": [[0.0] * 65] * 65, "kernel_size": 2}, 422, "input", "at most 64"),
    ({"op": "max", "input": [[0.0] * 65], "kernel_size": 2}, 422, "input[0]", "at most 64"),
    ({"op": "conv", "input": [[1]], "kernel": [[0.0] * 10]}, 422, "kernel[0]", "at most 9"),
    ({"op": "max", "input": [[1]], "kernel": [[1]]}, 422, "kernel_size", "required.*also: kernel"),
    ({"op": "lp", "input": [[1, 2]], "kernel_size": 1, "padding": 1}, 422, "padding", "not an argument"),
    ({"op": "max", "input": [[1, 2], [3, 4]], "kernel_size": 2, "padding": 2}, 422, "padding", "at most half"),
    ({"op": "conv", "input": [[1, 2]], "kernel": [[1]], "padding": 1, "padding_mode": "reflect"}, 422, "padding",
     "reflect padding must be smaller"),
    ({"op": "conv", "input": [[1, 2]], "kernel": [[1]], "padding": "full"}, 422, "padding", "'same' or 'valid'"),
    ({"op": "conv", "input": [[1, 2]], "kernel": [[1]], "padding_mode": "mirror"}, 422, "padding_mode", "reflect"),
    ({"op": "conv", "input": [[1, 2]], "kernel": [[1]], "grad_output": [[1]]}, 422, "grad_output", r"shape \[1, 2\]"),
    ({"op": "conv", "input": [[True, 2]], "kernel": [[1]]}, 422, "input[0][0]", "valid number"),
    ({"op": "conv", "input": [[1e7]], "kernel": [[1]]}, 422, "input[0][0]", "less than or equal to 1000000"),
    ({"op": "conv", "input": [], "kernel": [[1]]}, 422, "input", "at least 1"),
    ({"op": "conv", "input": [[]], "kernel": [[1]]}, 422, "input[0]", "at least 1"),
    ({"op": "lp", "input": [[1]], "kernel_size": 1, "p": 0}, 422, "p", "greater than or equal to 0.1"),
    ({"op": "lse", "input": [[1]], "kernel_size": 1, "beta": "big"}, 422, "beta", "valid number"),
    ({"op": "max", "input": [[1]], "kernel_size": 1, "ceil_mode": "yes"}, 422, "ceil_mode", "valid boolean"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "field", "message"), BAD)
def test_bad_input_names_the_field(body: dict, status: int, field: str, message: str) -> None:
    r = CLIENT.post("/api/layer", json=body)
    assert r.status_code == status, r.text
    err = r.json()
    assert err["field"] == field, err
    with pytest.raises(AssertionError, match=message):  # the message says what was expected
        raise AssertionError(err["error"])


@pytest.mark.parametrize(
    ("content", "field", "message"),
    [
        (b'{"op": "max", "input": [[NaN]], "kernel_size": 1}', "input[0][0]", "finite number"),
        (b'{"op": "max", "input": [[Infinity]], "kernel_size": 1}', "input[0][0]", "finite number"),
        (b'{"op": "max", "input": [[1]', "body", "not valid JSON"),
        (b"[1, 2]", "body", "a JSON object was expected"),
    ],
)
def test_bad_json(content: bytes, field: str, message: str) -> None:
    r = CLIENT.post("/api/layer", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["field"] == field and message in r.json()["error"], r.text


def test_body_size_limit_and_shift_errors() -> None:
    r = CLIENT.post("/api/layer", content=b" " * (2 << 20), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["field"] == "body"
    r = CLIENT.post("/api/shift", json={"input": [[1, 2, 3]], "kernel": [[1] * 9] * 9})
    assert r.status_code == 422 and r.json()["field"] == "kernel", r.text
    r = CLIENT.post("/api/shift", json={"input": [[1, 2, 3]], "axis": "diagonal"})
    assert r.status_code == 422 and r.json()["field"] == "axis", r.text


def test_shift_measures_equivariance_and_invariance() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 12))
    res = post({"input": x.round(3).tolist(), "shift": 2}, "/api/shift")
    layers = {layer["name"]: layer for layer in res["layers"]}
    conv = layers["conv, stride 1"]
    assert conv["equivariance_error"] < 1e-12 and conv["relative_change"] > 0.1  # moves along, changes
    assert all(layer["equivariance_error"] is not None for layer in res["layers"])  # 2 is a multiple of every stride
    y = F.conv2d(np.roll(x.round(3), 2, axis=1)[None, None], KERNELS["vertical-edge"][None, None], None, 1, "same",
                 padding_mode="circular")  # fmt: skip
    assert_same(conv["shifted_output"], y[0, 0], "shifted conv output")
    odd = post({"input": x.round(3).tolist(), "shift": 1}, "/api/shift")
    assert [layer["equivariance_error"] is None for layer in odd["layers"]] == [False] + [True] * 5
    assert len(res["shifts"]) == 12 and all(len(layer["curve"]) == 12 for layer in res["layers"])


def test_presets_and_ops() -> None:
    presets = CLIENT.get("/api/presets").json()
    assert presets["inputs"]["worked"]["grid"] == INPUT.tolist()
    assert {"vertical-edge", "blur", "sharpen", "laplacian", "flat"} <= set(presets["kernels"])
    ops = CLIENT.get("/api/ops").json()
    assert list(ops) == list(OPS)
    assert "ceil_mode" in ops["max"]["fields"] and "kernel" in ops["conv"]["fields"]
    assert "padding" not in ops["lp"]["fields"]
    assert CLIENT.get("/").status_code == 200 and "convpool explorer" in CLIENT.get("/").text
    assert CLIENT.get("/static/js/main.js").status_code == 200


# --- schemathesis: the API fuzzed from its OpenAPI description ------------------------------------

SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP)


@SCHEMA.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_no_server_errors(case: schemathesis.Case) -> None:
    from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

    case.call_and_validate(checks=[not_a_server_error, status_code_conformance, response_schema_conformance])


# --- the network view -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> NetworkService:
    from convpool import data

    try:
        data.mnist_folder()
    except FileNotFoundError as exc:
        pytest.skip(f"MNIST is not installed: {exc}")
    service = NetworkService(str(tmp_path_factory.mktemp("cache")), train_images=300, variants=("max",), log=print)
    service.start()
    assert service.wait(300) and service.status()["state"] == "ready", service.status()
    return service


def test_network_view(network: NetworkService, capsys: pytest.CaptureFixture) -> None:
    from convpool import checkpoint, models

    client = TestClient(create_app(network))
    image = client.get("/api/network/sample", params={"index": 3}).json()
    assert len(image["image"]) == 28 and image["label"] == 0  # MNIST's test image 3 is a 0
    res = client.post("/api/network", json={"image": image["image"], "pool": "max"}).json()
    assert math.isclose(sum(res["probabilities"]), 1.0) and res["prediction"] == int(np.argmax(res["probabilities"]))
    assert [layer["shape"] for layer in res["layers"]][:3] == [[6, 28, 28], [6, 28, 28], [6, 14, 14]]
    model = models.lenet5(pool="max")  # the same checkpoint, loaded directly, gives the same logits
    checkpoint.load_checkpoint(os.path.join(network.cache_dir, "serve", "lenet5-max-mnist.npz"), model)
    model.eval()
    logits = model(np.array(image["image"], dtype=np.float32)[None, None])[0]
    np.testing.assert_allclose(res["layers"][-1]["values"], logits, rtol=1e-6)
    r = client.post("/api/network", json={"image": image["image"], "pool": "avg"})
    assert r.status_code == 409 and r.json()["field"] == "pool"  # not trained in this test
    r = client.post("/api/network", json={"image": [[2.0] * 28] * 28})
    assert r.status_code == 422 and r.json()["field"] == "image[0][0]"
    again = NetworkService(network.cache_dir, variants=("max",), log=print)  # the checkpoint is reused
    again.start()
    assert again.wait(60) and again.status()["variants"]["max"]["state"] == "ready"
    assert "loaded from" in capsys.readouterr().out


def test_network_retrains_a_corrupt_checkpoint(network: NetworkService, tmp_path: object, capsys: object) -> None:
    import shutil

    folder = os.path.join(str(tmp_path), "serve")
    os.makedirs(folder)
    shutil.copy(os.path.join(network.cache_dir, "serve", "lenet5-max-mnist.npz"), folder)
    path = os.path.join(folder, "lenet5-max-mnist.npz")
    with open(path, "r+b") as f:  # flip bytes in the middle: zip's CRC catches it
        f.seek(os.path.getsize(path) // 2)
        f.write(b"\xff" * 16)
    logs: list[str] = []
    service = NetworkService(str(tmp_path), train_images=200, variants=("max",), log=logs.append)
    service.start()
    assert service.wait(300) and service.status()["state"] == "ready"
    assert any("training it again" in line for line in logs), logs
