"""The explorer's JSON API, as pydantic models: what ``/openapi.json`` describes.

Requests are checked here before any number is computed: every grid is a
rectangle of finite numbers within the size limits, every argument has its type
and range, and each op takes exactly its own arguments (``op`` picks the model;
an argument the op does not take is refused by name).  What the engine still
refuses (a window that does not fit the padded input, padding larger than half a
pool's window, ...) comes back from :mod:`convpool.serve.layer` as a 422 with
convpool's own message.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

MAX_MAP = 64  # one input map: at most 64 x 64
MAX_KERNEL = 9  # kernels and pooling windows: at most 9 x 9
MAX_VALUE = 1e6  # |value| of every cell: products and powers stay finite in float64

Number = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-MAX_VALUE, le=MAX_VALUE)]


def _rectangular(grid: list[list[float]]) -> list[list[float]]:
    widths = {len(row) for row in grid}
    if len(widths) > 1:
        first = len(grid[0])
        bad = next(i for i, row in enumerate(grid) if len(row) != first)
        raise ValueError(
            f"a rectangular grid was expected (every row as long as row 0, {first} values), "
            f"but row {bad} has {len(grid[bad])}"
        )
    return grid


_MapRow = Annotated[list[Number], Field(min_length=1, max_length=MAX_MAP)]
_KernelRow = Annotated[list[Number], Field(min_length=1, max_length=MAX_KERNEL)]
Map = Annotated[
    list[_MapRow],
    Field(min_length=1, max_length=MAX_MAP, description="rows of numbers, at most 64 x 64, all rows the same length"),
    AfterValidator(_rectangular),
]
Kernel = Annotated[
    list[_KernelRow],
    Field(min_length=1, max_length=MAX_KERNEL, description="rows of numbers, at most 9 x 9, all rows the same length"),
    AfterValidator(_rectangular),
]

Size = Annotated[int, Field(strict=True, ge=1, le=MAX_KERNEL)]
Step = Annotated[int, Field(strict=True, ge=1, le=8)]
Dil = Annotated[int, Field(strict=True, ge=1, le=4)]
Pad = Annotated[int, Field(strict=True, ge=0, le=16)]

KernelSize = Size | Annotated[list[Size], Field(min_length=2, max_length=2)]
Stride = Step | Annotated[list[Step], Field(min_length=2, max_length=2)]
Dilation = Dil | Annotated[list[Dil], Field(min_length=2, max_length=2)]
Padding = Pad | Annotated[list[Pad], Field(min_length=2, max_length=2)] | Literal["same", "valid"]
PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]

_forbid = ConfigDict(extra="forbid")


class _Base(BaseModel):
    model_config = _forbid

    input: Map = Field(description="the input map (one channel), at most 64 x 64")
    grad_output: Map | None = Field(
        None, description="the gradient arriving at the output (output's shape); default: all ones"
    )


class ConvRequest(_Base):
    """Convolution (``x * w``, summed) or max-plus / min-plus convolution (``x + w``, max or min)."""

    op: Literal["conv", "maxplus", "minplus"]
    kernel: Kernel = Field(description="the kernel's weights, at most 9 x 9")
    stride: Stride = 1
    padding: Padding = 0
    padding_mode: PaddingMode | None = Field(
        None, description="border values; default: zeros for conv, the identity (-inf / +inf) for max-/min-plus"
    )
    dilation: Dilation = 1


class SelectPoolRequest(_Base):
    """Max, min or median pooling: the window's largest, smallest or middle element."""

    op: Literal["max", "min", "median"]
    kernel_size: KernelSize
    stride: Stride | None = Field(None, description="default: kernel_size")
    padding: Padding = 0
    padding_mode: PaddingMode | None = Field(None, description="default: the identity (-inf, +inf, left out)")
    dilation: Dilation = 1
    ceil_mode: StrictBool = False


class AvgPoolRequest(_Base):
    """Average pooling: the window's mean."""

    op: Literal["avg"]
    kernel_size: KernelSize
    stride: Stride | None = Field(None, description="default: kernel_size")
    padding: Padding = 0
    padding_mode: PaddingMode | None = Field(None, description="default: zeros, counted per count_include_pad")
    ceil_mode: StrictBool = False
    count_include_pad: StrictBool = True


class LpPoolRequest(_Base):
    """Power-average pooling ``(sum x**p) ** (1/p)`` (PyTorch's ``lp_pool2d``: no padding)."""

    op: Literal["lp"]
    kernel_size: KernelSize
    stride: Stride | None = Field(None, description="default: kernel_size")
    ceil_mode: StrictBool = False
    p: float = Field(2.0, strict=True, ge=0.1, le=64, allow_inf_nan=False, description="the norm type")


class GemPoolRequest(_Base):
    """Generalised-mean pooling ``(mean clamp(x, 1e-6)**p) ** (1/p)``."""

    op: Literal["gem"]
    kernel_size: KernelSize
    stride: Stride | None = Field(None, description="default: kernel_size")
    padding: Padding = 0
    p: float = Field(3.0, strict=True, ge=0.1, le=64, allow_inf_nan=False, description="1: average, large: max")


class LsePoolRequest(_Base):
    """Log-mean-exp pooling ``(1/beta) log(mean exp(beta x))``: a smooth maximum."""

    op: Literal["lse"]
    kernel_size: KernelSize
    stride: Stride | None = Field(None, description="default: kernel_size")
    padding: Padding = 0
    beta: float = Field(1.0, strict=True, ge=1e-3, le=1e3, allow_inf_nan=False, description="small: mean, large: max")


LayerRequest = Annotated[
    ConvRequest | SelectPoolRequest | AvgPoolRequest | LpPoolRequest | GemPoolRequest | LsePoolRequest,
    Field(discriminator="op"),
]
AnyLayerRequest = ConvRequest | SelectPoolRequest | AvgPoolRequest | LpPoolRequest | GemPoolRequest | LsePoolRequest

OPS = ("conv", "max", "avg", "median", "min", "lp", "gem", "lse", "maxplus", "minplus")

Cell = float | None  # None: not a finite number (NaN or +-inf), or identity padding
Grid = list[list[Cell]]


class Windows(BaseModel):
    """Every output position's window, slots in scan order (row by row of the kernel)."""

    index: list[list[list[int]]] = Field(
        description="(out_h, out_w, K): the flat input index (row * W + col) each slot reads; "
        "-1 a zero of zero padding, -2 identity padding or ceil_mode's room (takes no part)"
    )
    row: list[list[list[int]]] = Field(description="(out_h, out_w, K): the slot's row in the padded input")
    col: list[list[list[int]]] = Field(description="(out_h, out_w, K): the slot's column in the padded input")
    values: list[list[list[Cell]]] = Field(description="(out_h, out_w, K): the value each slot reads")
    terms: list[list[list[Cell]]] = Field(
        description="(out_h, out_w, K): the combined terms the reduction sees (products x*w, sums x+w, x**p, ...)"
    )
    winner: list[list[int | None]] = Field(description="(out_h, out_w): the slot whose element wins (max, min, ...)")
    divisor: list[list[float]] | None = Field(None, description="average pooling: each window's divisor")


class LayerResponse(BaseModel):
    op: str
    description: str = Field(description="what the op computes, in one sentence")
    combine: str = Field(description="how a window element and its weight combine, e.g. 'x * w'")
    reduce: str = Field(description="how a window's terms reduce, e.g. 'sum'")
    input_shape: list[int]
    output: Grid
    output_shape: list[int]
    formula: str = Field(description="the output-size formula with these numbers, both dims")
    formulas: list[str] = Field(description="the formula per dim (height, width)")
    kernel_size: list[int]
    stride: list[int]
    dilation: list[int]
    padding: list[list[int]] = Field(description="the padding as (lo, hi) per dim, 'same' resolved")
    padding_mode: str = Field(description="zeros, reflect, replicate, circular, or identity")
    identity: str | None = Field(description="what identity padding holds: '-inf', '+inf' or 'left out'")
    padded_input: Grid = Field(description="the input as the windows see it, padding included (None: identity)")
    padded_index: list[list[int]] = Field(description="flat input index of each padded cell; -1 zero, -2 identity")
    grad_output: list[list[float]]
    grad_input: Grid
    grad_kernel: Grid | None = Field(None, description="conv, maxplus, minplus: the kernel's gradient")
    grad_params: dict[str, float] = Field(default_factory=dict, description="gem: p, lse: beta")
    windows: Windows | None = Field(None, description="every window written out (None above 40,000 slots)")
    notes: list[str] = Field(default_factory=list)


class ApiError(BaseModel):
    error: str = Field(description="what went wrong, naming the field and what was expected")
    field: str = Field(description="the request field at fault, e.g. 'input[2][1]' or 'stride'")
    detail: list[dict] = Field(default_factory=list, description="every problem found (validation errors)")


# --- the shift experiment ---------------------------------------------------------------------


class ShiftRequest(BaseModel):
    model_config = _forbid

    input: Map = Field(description="the map to shift (circularly: borders take no part)")
    kernel: Kernel | None = Field(None, description="the convolution's kernel; default a vertical edge")
    shift: int = Field(1, strict=True, ge=-MAX_MAP, le=MAX_MAP, description="pixels; positive: right or down")
    axis: Literal["horizontal", "vertical"] = "horizontal"


class ShiftLayer(BaseModel):
    name: str
    stride: int
    output: Grid = Field(description="the layer's output on the unshifted input")
    shifted_output: Grid = Field(description="the layer's output on the shifted input")
    relative_change: float | None = Field(description="||f(shift(x)) - f(x)|| / ||f(x)||: 0 is invariant")
    equivariance_error: float | None = Field(
        description="||f(shift(x)) - shift'(f(x))|| / ||f(x)|| with shift' = shift/stride (None if not whole)"
    )
    curve: list[float | None] = Field(description="relative change for shifts 0, 1, 2, ...")


class ShiftResponse(BaseModel):
    shift: int
    axis: str
    input: Grid
    shifted_input: Grid
    layers: list[ShiftLayer]
    shifts: list[int] = Field(description="the shifts of each layer's curve")


# --- the network view ---------------------------------------------------------------------------

Pixel = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1.0)]
Digit = Annotated[
    list[Annotated[list[Pixel], Field(min_length=28, max_length=28)]],
    Field(min_length=28, max_length=28, description="28 x 28 pixels in [0, 1], white digit on black (MNIST's way)"),
]


class NetworkRequest(BaseModel):
    model_config = _forbid

    image: Digit
    pool: Literal["max", "avg", "maxplus"] = "max"


class NetworkLayer(BaseModel):
    name: str = Field(description="the layer's index in the Sequential and its type")
    shape: list[int]
    maps: list[list[list[float]]] | None = Field(None, description="(C, H, W) feature maps of a spatial layer")
    values: list[float] | None = Field(None, description="a flat layer's values")
    min: float
    max: float


class NetworkResponse(BaseModel):
    pool: str
    prediction: int
    probabilities: list[float]
    layers: list[NetworkLayer]
    test_accuracy: float | None = None


class NetworkStatus(BaseModel):
    state: Literal["ready", "training", "unavailable"]
    message: str
    variants: dict[str, dict] = Field(description="per pool variant: state, test accuracy, checkpoint path")
    cache_dir: str
