"""The web app of ``convpool serve``: the page at ``/``, the JSON API under ``/api``.

FastAPI on uvicorn (the ``lab`` extra).  Bad input of any kind is a 4xx answer
``{"error": ..., "field": ..., "detail": [...]}`` naming the request field and
what was expected; no input produces a 5xx (the tests fuzz the API from its
OpenAPI description).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import webbrowser
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import TypeAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from .api import router
from .layer import LayerError, compute_layer
from .network import NetworkService
from .schemas import OPS, LayerRequest, ShiftRequest
from .shift import compute_shift

MAX_BODY = 1 << 20  # bytes: a 64 x 64 map of long numbers is ~100 kB


def static_dir() -> str:
    return str(resources.files("convpool.serve") / "static")


def _field(loc: tuple | list) -> str:
    """A pydantic error location as the request field, e.g. ``input[2][1]``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path"):
        parts = parts[1:]
    if parts and parts[0] in OPS:  # the discriminated union's tag
        parts = parts[1:]
    text = ""
    for p in parts:
        if isinstance(p, int):
            text += f"[{p}]"
        elif str(p).isidentifier() and str(p) not in ("int", "float", "str", "bool", "list"):  # not a union tag
            text += ("." if text else "") + str(p)
    return text or "body"


# int-or-pair arguments: one message for the union's several errors
EXPECTED = {
    "kernel_size": "an int from 1 to 9 or a pair [rows, columns] of them",
    "stride": "an int from 1 to 8 or a pair [rows, columns] of them",
    "dilation": "an int from 1 to 4 or a pair [rows, columns] of them",
    "padding": "an int from 0 to 16, a pair [rows, columns] of them, 'same' or 'valid'",
}


def _message(err: dict) -> tuple[str, str]:
    """(field, one-line message) for one pydantic error."""
    kind, msg = err.get("type", ""), err.get("msg", "invalid")
    field = _field(err.get("loc", ()))
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        got = err.get("ctx", {}).get("tag")
        return "op", f"op must be one of {', '.join(OPS)}" + (f", got {got!r}" if got is not None else " (missing)")
    if kind == "json_invalid":
        return "body", f"body: not valid JSON ({err.get('ctx', {}).get('error', msg)})"
    name = field.split("[")[0].split(".")[0]
    loc = [str(p) for p in err.get("loc", ())]
    if name in EXPECTED and loc.index(name) + 1 < len(loc):  # an error inside the int-or-pair union
        return name, f"{name} must be {EXPECTED[name]}, got {err.get('input')!r}"
    if kind in ("model_attributes_type", "dict_type", "model_type"):
        return field, f"{field}: a JSON object was expected, got {err.get('input')!r}"
    if kind == "extra_forbidden":
        return field, f"{field} is not an argument of this op (or request); leave it out"
    if kind == "missing":
        return field, f"{field} is required"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) else f", got {got!r}"
    return field, f"{field}: {msg[0].lower() + msg[1:]}{shown}"


def warm_up() -> None:
    """Run every op once on a tiny map, so that the compiled kernels are loaded (or compiled, the
    first time) before the page asks: the first answers come in milliseconds, not seconds."""
    x = [[float((3 * i + 5 * j) % 7) for j in range(6)] for i in range(6)]
    k = [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]
    try:
        for op in OPS:
            body: dict[str, Any] = {"op": op, "input": x}
            body.update({"kernel": k} if op in ("conv", "maxplus", "minplus") else {"kernel_size": 3, "stride": 1})
            compute_layer(TypeAdapter(LayerRequest).validate_python(body))
        compute_shift(ShiftRequest.model_validate({"input": x, "shift": 1}))
    except Exception as exc:  # pragma: no cover - a warm-up problem shows again on the first request
        print(f"convpool serve: warm-up failed: {exc}", file=sys.stderr)


def _error(status: int, field: str, message: str, detail: list | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field, "detail": detail or []}, status_code=status)


def create_app(network: NetworkService | None = None) -> FastAPI:
    """The app; ``network`` serves the network view (None: a service on the default cache folder)."""
    service = network if network is not None else NetworkService()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()  # load or train the network view's models in the background
        threading.Thread(target=warm_up, name="convpool-serve-warm-up", daemon=True).start()
        yield

    app = FastAPI(
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load from a CDN: the explorer works offline
        redoc_url=None,
        title="convpool explorer",
        version=__version__,
        description="Every window, every number and every gradient of convolution and pooling, computed by convpool.",
    )
    app.state.network = service

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [dict(e) for e in exc.errors()]
        for e in errors:  # JSON-safe: the input may be anything, the context an exception
            e.pop("url", None)
            e["input"] = repr(e.get("input"))[:200]
            if "ctx" in e:
                e["ctx"] = {k: str(v) for k, v in e["ctx"].items()}
        field, message = _message(exc.errors()[0]) if errors else ("body", "invalid request")
        others = {_message(e)[0] for e in exc.errors()} - {field}
        if others:
            message += f" (also: {', '.join(sorted(others))}; see detail)"
        return _error(422, field, message, errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        field = {400: "body", 404: "path", 405: "method"}.get(exc.status_code, "request")
        return _error(exc.status_code, field, f"{field}: {exc.detail}")

    @app.exception_handler(LayerError)
    async def _layer_error(request: Request, exc: LayerError) -> JSONResponse:
        return _error(422, exc.field, f"{exc.field}: {exc}")

    @app.middleware("http")
    async def _limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return _error(413, "body", f"body: at most {MAX_BODY:,} bytes are accepted, got {length}")
        return await call_next(request)

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(os.path.join(static_dir(), "index.html"))

    return app


# --- the server ------------------------------------------------------------------------------------


def _bind(host: str, port: int) -> socket.socket:
    """Bind first, so that a port in use is a one-line error (OSError) before anything starts."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port") from exc
    sock.listen(128)
    return sock


def _open_when_up(server: Any, url: str) -> None:
    for _ in range(200):
        if server.started:
            webbrowser.open(url)
            return
        time.sleep(0.05)


def run(host: str = "127.0.0.1", port: int = 8765, open_browser: bool = True, cache_dir: str | None = None) -> None:
    """Serve until Ctrl-C: print the URL, open the browser (unless told not to)."""
    import uvicorn

    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/"
    network = NetworkService(cache_dir)
    print(f"convpool serve: the explorer is at {url}  (Ctrl-C stops it)", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"convpool serve: listening on {host}, not only this machine: others on the network can reach it")
    print(f"convpool serve: network checkpoints in {os.path.join(network.cache_dir, 'serve')}", flush=True)
    server = uvicorn.Server(uvicorn.Config(create_app(network), log_level="warning", access_log=False))
    if open_browser:
        threading.Thread(target=_open_when_up, args=(server, url), daemon=True).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        pass
    finally:
        sock.close()
    print("convpool serve: stopped", file=sys.stderr, flush=True)
