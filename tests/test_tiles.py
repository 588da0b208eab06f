"""The direct convolution's register tiles (convpool.backends.compiled.direct.tile).

* The choice: which tile a CPU's features select, how numba's CPU settings are read,
  the ``CONVPOOL_TILE`` override and its error, and that every tile fits its ISA's
  register file.
* The kernels under every tile this machine can run: a check script in a fresh
  process per configuration (the tile is fixed at import), against a float64 NumPy
  reference - forward, input and weight gradients of dense, strided, dilated, grouped,
  depthwise, 1x1, 1-D and 3-D convolutions, and a seeded sweep of small geometries.
  The configurations: each tile forced with ``CONVPOOL_TILE`` on the host's code,
  and, where the host can run them, the code numba emits for a Haswell (AVX2) and for
  a generic CPU (SSE2 / baseline), each with its own numba cache directory.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from convpool.backends.compiled import kernels as _kernels

pytest.importorskip("numba")
from convpool.backends.compiled.direct import tile  # after the skip: needs numba

X86 = platform.machine().lower() in ("x86_64", "amd64")


# --- the choice ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("features", "isa"),
    [
        ({"avx512f", "avx2", "fma", "sse4.2"}, "avx512"),
        ({"avx512f"}, "avx512"),
        ({"avx2", "fma", "avx", "sse4.2"}, "avx2"),
        ({"avx2"}, "generic"),  # AVX2 without FMA: no fused multiply-add to build on
        ({"avx", "sse4.2"}, "generic"),
        ({"neon", "fp-armv8"}, "generic"),
        (set(), "generic"),
    ],
)
def test_select_picks_the_tile_from_the_features(features: set[str], isa: str) -> None:
    chosen, why = tile.select("somecpu", frozenset(features))
    assert chosen is tile.TILES[isa]
    assert "somecpu" in why


def test_parse_features_keeps_the_enabled_ones() -> None:
    assert tile.parse_features("+avx2,-avx512f,+fma,+sse4.2") == {"avx2", "fma", "sse4.2"}
    assert tile.parse_features("") == frozenset()


@pytest.mark.skipif(not X86, reason="x86 CPU names")
@pytest.mark.parametrize(
    ("cpu", "isa"), [("haswell", "avx2"), ("znver3", "avx2"), ("skylake-avx512", "avx512"), ("generic", "generic")]
)
def test_a_named_cpu_gets_its_own_features(cpu: str, isa: str) -> None:
    """With NUMBA_CPU_FEATURES empty numba compiles for the named CPU's own features,
    which LLVM knows and llvmlite does not list: found by compiling for it."""
    assert tile.select(cpu, tile.cpu_features(cpu))[0].isa == isa


def test_numba_target_reads_numbas_cpu_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from numba.core import config

    monkeypatch.setattr(config, "CPU_NAME", "mycpu")
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,+fma")
    assert tile.numba_target()[:2] == ("mycpu", {"avx2", "fma"})
    if X86:
        monkeypatch.setattr(config, "CPU_NAME", "haswell")
        monkeypatch.setattr(config, "CPU_FEATURES", "")  # the CPU's own features
        cpu, features, source = tile.numba_target()
        assert tile.select(cpu, features)[0].isa == "avx2" and "default features" in source
    # a name without features: numba keeps the host's features, and so does the choice
    from numba.core.codegen import get_host_cpu_features

    monkeypatch.setattr(config, "CPU_FEATURES", None)
    _, features, source = tile.numba_target()
    assert features == tile.parse_features(get_host_cpu_features()) and "host features" in source


def test_override_picks_a_tile_and_rejects_unknown_names() -> None:
    for name, expected in tile.TILES.items():
        chosen, why = tile.choose(name)
        assert chosen is expected and tile.ENV in why
    with pytest.raises(ValueError, match=r"CONVPOOL_TILE='avx3': expected one of avx512, avx2, generic"):
        tile.choose("avx3")


@pytest.mark.parametrize("name", list(tile.TILES))
def test_each_tile_fits_its_register_file(name: str) -> None:
    """Sums + the inputs of one step (the conv: a row of vectors and one broadcast; the
    weight gradient: one vector of dy per channel, x read from memory; its outer-product
    form: the vectors of dy and one broadcast) in the ISA's
    registers: 32 for AVX-512, 16 for AVX2 and SSE (NEON's 32 leave room)."""
    t = tile.TILES[name]
    registers = 32 if t.isa == "avx512" else 16
    assert t.block_oc * t.block_vecs + t.block_vecs + 1 <= registers
    assert t.dw_oc * t.dw_taps + t.dw_oc <= registers
    assert t.wg_sums + t.wg_vecs + 1 <= registers and t.wg_sums % t.wg_vecs == 0  # + one broadcast
    assert t.stencil_vecs * 2 <= registers
    assert t.block_q == t.lanes * t.block_vecs


def test_tile_info_says_what_and_why() -> None:
    info = tile.tile_info()
    assert info["isa"] == tile.TILE.isa and info["lanes"] == tile.TILE.lanes
    assert set(info) == {"isa", "lanes", "conv tile", "weight-grad tile", "stencil block", "reason"}
    assert str(info["reason"])


def test_kind_leaves_the_wide_layout_to_blas_where_it_does_not_pay(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the generic tile the wide kernels lose to im2col + BLAS (conv_direct.WIDE_ISAS):
    kind() declines them there; the depthwise stencil stays."""
    import numpy as np

    from convpool.backends.compiled import conv_direct
    from convpool.backends.compiled import direct as _direct
    from convpool.geometry import make_geometry

    if not _kernels.DIRECT:
        pytest.skip("direct kernels need numba")
    x = np.zeros((2, 4, 9, 9), dtype=np.float32)
    g = make_geometry(x.shape[2:], 2, (3, 3), 1, 1, 1)
    for isa, wide in (("avx512", "wide"), ("avx2", "wide"), ("generic", None)):
        monkeypatch.setattr(_direct, "TILE", tile.TILES[isa])
        assert conv_direct.kind(x, g, 4, 1) == wide
        assert conv_direct.kind(x, g, 1, 4) == "stencil"


def test_a_bad_override_fails_at_import() -> None:
    env = {**os.environ, tile.ENV: "avx1024"}
    code = "import convpool.backends.compiled.direct"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "CONVPOOL_TILE='avx1024'" in out.stderr


# --- the kernels under each tile --------------------------------------------------------

CHECK = r'''
import sys

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from convpool.backends.compiled import conv_direct, direct, kernels
from convpool.functional.conv import conv_backward, conv_forward

assert kernels.DIRECT
conv_direct.WIDE_ISAS = frozenset(direct.tile.TILES)  # the wide kernels on every tile, paying or not
print("tile", direct.tile_info()["isa"])


def windows(xp, kernel, dilation, stride, out):
    """(N, C, *out, *kernel) windows of the padded input."""
    nd = len(kernel)
    spans = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    v = sliding_window_view(xp, spans, axis=tuple(range(2, 2 + nd)))
    v = v[(...,) + tuple(slice(None, None, d) for d in dilation)]
    return v[(slice(None), slice(None)) + tuple(slice(0, s * (o - 1) + 1, s) for s, o in zip(stride, out))]


def reference(x, w, dy, stride, pad, dilation, groups):
    """y, dx, dw in float64 (zero padding)."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    nd, (n, c), (co, cg) = w.ndim - 2, x.shape[:2], w.shape[:2]
    kernel = w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple((p, p) for p in pad))
    out = tuple((s - d * (k - 1) - 1) // st + 1 for s, k, d, st in zip(xp.shape[2:], kernel, dilation, stride))
    win = windows(xp, kernel, dilation, stride, out).reshape(n, groups, cg, -1, int(np.prod(kernel)))
    wg = w.reshape(groups, co // groups, cg, -1)
    y = np.einsum("ngcpt,goct->ngop", win, wg).reshape((n, co) + out)
    if dy is None:
        return y, None, None
    dyg = dy.astype(np.float64).reshape(n, groups, co // groups, -1)
    dw = np.einsum("ngop,ngcpt->goct", dyg, win).reshape(w.shape)
    dxp = np.zeros_like(xp)
    for t, tap in enumerate(np.ndindex(*kernel)):
        contrib = np.einsum("ngop,goc->ngcp", dyg, wg[..., t]).reshape((n, c) + out)
        at = tuple(slice(k * d, k * d + s * (o - 1) + 1, s) for k, d, s, o in zip(tap, dilation, stride, out))
        dxp[(slice(None), slice(None)) + at] += contrib
    dx = dxp[(slice(None), slice(None)) + tuple(slice(p, p + s) for p, s in zip(pad, x.shape[2:]))]
    return y, dx, dw


def check(rng, xs, ws, stride=1, pad=0, dilation=1, groups=1):
    nd = len(xs) - 2
    stride, pad, dilation = ((v,) * nd if isinstance(v, int) else v for v in (stride, pad, dilation))
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32) if rng.random() < 0.75 else None  # the kernels' sums start from it
    y, ctx = conv_forward(x, w, b, stride, pad, dilation, groups, nd=nd)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw, _ = conv_backward(dy, ctx)
    ry, rdx, rdw = reference(x, w, dy, stride, pad, dilation, groups)
    if b is not None:
        ry = ry + b.reshape((-1,) + (1,) * nd)
    terms = ws[1] * int(np.prod(ws[2:]))
    for name, got, want, tol in (
        ("y", y, ry, 3e-6 * terms),
        ("dx", dx, rdx, 3e-6 * (ws[0] // groups) * int(np.prod(ws[2:]))),
        ("dw", dw, rdw, 3e-6 * int(np.prod(y.shape[2:])) * xs[0]),
    ):
        assert got.dtype == np.float32 and got.shape == want.shape, (name, xs, ws)
        err = float(np.abs(got - want).max())
        assert err <= tol, f"{name} of {xs} * {ws} stride {stride} pad {pad} dil {dilation} groups {groups}: {err}"


rng = np.random.default_rng(0)
check(rng, (2, 5, 20, 21), (7, 5, 3, 3), 1, 1)  # 'same': the shared input-gradient layout
check(rng, (2, 5, 20, 21), (9, 5, 3, 3), 2, 1)  # strided: phases, input gradient phase by phase
check(rng, (2, 4, 17, 19), (6, 2, 3, 3), 1, 0, 2, 2)  # dilated, grouped, no padding
check(rng, (3, 4, 70), (9, 4, 5), 1, 2)  # 1-D over several blocks
check(rng, (2, 3, 7, 8, 9), (5, 3, 3, 3, 3), 1, 1)  # 3-D
check(rng, (2, 3, 6, 7, 5), (4, 3, 2, 3, 2), (1, 2, 2), (1, 0, 1))  # 3-D, mixed strides
check(rng, (2, 4, 15, 16), (8, 1, 3, 3), 1, 1, 1, 4)  # depthwise x2: the stencil
check(rng, (1, 3, 33, 9), (3, 1, 5, 3), 1, (2, 1), (1, 2), 3)  # depthwise, dilated
check(rng, (2, 6, 9, 10), (5, 6, 1, 1))  # 1x1: read in place
check(rng, (1, 2, 64), (3, 2, 1), 1, 0)  # 1x1, one image of exactly one 64-block
lanes = direct.LANES  # output channels that fill vectors: the outer-product weight gradient
check(rng, (2, 16, 13, 12), (4 * lanes, 16, 3, 3), 1, 1)  # 'same', the tile's widest block
check(rng, (2, 8, 13, 14), (2 * lanes, 8, 4, 4), 2, 1)  # strided (a transposed conv's weight gradient)
check(rng, (3, 30, 150), (2 * lanes - 1, 30, 5), 1, 2)  # 1-D over chunks, a vector not full
check(rng, (2, 6, 5, 6, 4), (3 * lanes, 6, 3, 3, 3), 1, 1)  # 3-D
for _ in range(24):  # small geometries around the block sizes
    nd = int(rng.integers(1, 4))
    kernel = tuple(int(rng.integers(1, 4)) for _ in range(nd))
    dil = tuple(int(rng.integers(1, 3)) for _ in range(nd))
    size = tuple(d * (k - 1) + int(rng.integers(1, 40 if nd == 1 else 9)) for k, d in zip(kernel, dil))
    pad = tuple(int(rng.integers(0, k)) for k in kernel)
    stride = tuple(int(rng.choice([1, 1, 2, 3])) for _ in range(nd))
    groups = int(rng.choice([1, 1, 2]))
    cin, cout = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 8))
    check(rng, (int(rng.integers(1, 4)), cin) + size, (cout, cin // groups) + kernel, stride, pad, dil, groups)
stencil = sys.modules["convpool.backends.compiled.direct.depthwise"]._depthwise_planes
outer = sys.modules["convpool.backends.compiled.direct.outer"]
shapes = [outer.shape(c, 1, 200) for c in (4 * lanes, 2 * lanes, 2 * lanes - 1, 3 * lanes)]
for kernel in (direct._conv_wide, direct._weight_grad_wide, stencil, *(outer._kernel(*s, lanes) for s in shapes)):
    assert kernel.signatures, "a direct kernel never ran"
print("ok")
'''


def configurations() -> list[tuple[str, dict[str, str], str]]:
    """(name, environment, the tile expected) for every configuration this host runs:
    each tile forced on the host's code; the Haswell code where the host has AVX2 and
    FMA; the generic x86-64 code on x86."""
    configs = [(f"tile-{name}", {tile.ENV: name}, name) for name in tile.TILES]
    _, host, _ = tile.numba_target()
    if X86 and {"avx2", "fma"} <= host:
        configs.append(("cpu-haswell", {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": ""}, "avx2"))
    if X86:
        configs.append(("cpu-generic", {"NUMBA_CPU_NAME": "generic"}, "generic"))
    return configs


@pytest.mark.skipif(not _kernels.DIRECT, reason="direct kernels need numba")
@pytest.mark.parametrize(("name", "env", "isa"), configurations(), ids=[c[0] for c in configurations()])
def test_direct_kernels_under_each_tile(name: str, env: dict[str, str], isa: str) -> None:
    base = {k: v for k, v in os.environ.items() if k not in (tile.ENV, "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")}
    # one numba cache per configuration, kept between runs (entries key on the target CPU
    # and the tile, so sharing would be safe; separate ones keep each run's compiles apart)
    cache = Path(tempfile.gettempdir()) / f"convpool-test-tiles-{os.getuid() if hasattr(os, 'getuid') else 0}" / name
    out = subprocess.run(
        [sys.executable, "-c", CHECK],
        env={**base, **env, "NUMBA_CACHE_DIR": str(cache)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert out.stdout.split() == ["tile", isa, "ok"]
