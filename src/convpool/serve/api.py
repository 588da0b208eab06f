"""The JSON API's routes: ``/api/layer``, ``/api/shift``, ``/api/network``, ``/api/presets``, ``/api/ops``.

The handlers are plain ``def`` functions: FastAPI runs them in its thread pool,
so NumPy work never blocks the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from . import layer, presets, shift
from .network import NotReady
from .schemas import (
    OPS,
    ApiError,
    AvgPoolRequest,
    ConvRequest,
    GemPoolRequest,
    LayerRequest,
    LayerResponse,
    LpPoolRequest,
    LsePoolRequest,
    NetworkRequest,
    NetworkResponse,
    NetworkStatus,
    SelectPoolRequest,
    ShiftRequest,
    ShiftResponse,
)

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ApiError, "description": "a body that cannot be read (not UTF-8 JSON)"},
    422: {"model": ApiError, "description": "bad input: the field at fault and what was expected"},
    413: {"model": ApiError, "description": "the body is too large"},
}

router = APIRouter(prefix="/api")

EXAMPLE = {
    "op": "conv",
    "input": [[1, 2, 0, 1, 6], [0, 4, 1, 2, 1], [2, 1, 5, 0, 2], [1, 3, 0, 2, 4], [7, 1, 2, 1, 0]],
    "kernel": [[1, 0, -1], [1, 0, -1], [1, 0, -1]],
    "stride": 1,
    "padding": 0,
}


@router.post("/layer", response_model=LayerResponse, responses=ERRORS)
def post_layer(req: Annotated[LayerRequest, Body(openapi_examples={"worked": {"value": EXAMPLE}})]) -> Any:
    """One op on one 2-D map: the output, the output-size formula with these numbers, every window
    (input positions, terms, winner) and the input gradient for ``grad_output`` (default all ones)."""
    return layer.compute_layer(req)


@router.post("/shift", response_model=ShiftResponse, responses=ERRORS)
def post_shift(req: ShiftRequest) -> Any:
    """Shift the input circularly: each layer's output before and after, its relative change and
    equivariance error, and the relative change for every shift."""
    return shift.compute_shift(req)


@router.get("/network", response_model=NetworkStatus)
def get_network(request: Request) -> Any:
    """Whether the network view's models are ready, training or unavailable."""
    return request.app.state.network.status()


@router.post(
    "/network",
    response_model=NetworkResponse,
    responses={**ERRORS, 409: {"model": ApiError, "description": "the model is not ready yet (training)"}},
)
def post_network(req: NetworkRequest, request: Request) -> Any:
    """LeNet-5 on one 28x28 digit: every layer's maps and the class probabilities."""
    try:
        return request.app.state.network.forward(req.image, req.pool)
    except NotReady as exc:
        return JSONResponse({"error": f"pool: {exc}", "field": "pool", "detail": []}, status_code=409)


@router.get("/network/sample", responses={**ERRORS, 404: {"model": ApiError}})
def get_sample(index: Annotated[int, Query(ge=0, le=9999)] = 0) -> Any:
    """An MNIST test digit (28x28 in [0, 1]) and its label."""
    test = presets.mnist_test()
    if test is None:
        return JSONResponse({"error": "MNIST is not installed", "field": "index", "detail": []}, status_code=404)
    x, y = test
    i = index % len(y)
    return {"index": i, "label": int(y[i]), "image": x[i].astype(float).round(3).tolist()}


@router.get("/presets")
def get_presets() -> Any:
    """The page's input maps and kernels."""
    return presets.presets()


@router.get("/ops")
def get_ops() -> Any:
    """Per op: what it computes and which request fields it takes (with their defaults)."""
    models: dict[str, type[BaseModel]] = {
        "conv": ConvRequest,
        "maxplus": ConvRequest,
        "minplus": ConvRequest,
        "max": SelectPoolRequest,
        "min": SelectPoolRequest,
        "median": SelectPoolRequest,
        "avg": AvgPoolRequest,
        "lp": LpPoolRequest,
        "gem": GemPoolRequest,
        "lse": LsePoolRequest,
    }
    out = {}
    for op in OPS:
        info, model = layer.INFO[op], models[op]
        fields = {
            name: (None if f.is_required() else f.default)
            for name, f in model.model_fields.items()
            if name not in ("op", "input", "grad_output")
        }
        out[op] = {"description": info.description, "combine": info.combine, "reduce": info.reduce, "fields": fields}
    return out
