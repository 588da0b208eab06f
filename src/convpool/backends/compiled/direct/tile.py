"""The register tile of the direct convolution's micro-kernels, chosen for the CPU that
numba compiles for.

The kernels keep a block of sums in vector registers; how wide a vector is and how many
registers there are depends on the instruction set, so the block does too:

=========  =====  ===========================  ========================  ===========================  =========
ISA        lanes  convolution (:mod:`.wide`)    weight gradient (wide)    weight gradient (outer)      registers
=========  =====  ===========================  ========================  ===========================  =========
avx512     16     4 oc x 4 vectors (16 sums)   5 oc x 3 taps (15 sums)   <= 4 oc vectors, 24 sums     32 zmm
avx2       8      4 oc x 3 vectors (12 sums)   4 oc x 3 taps (12 sums)   <= 2 oc vectors, 12 sums     16 ymm
generic    4      4 oc x 3 vectors (12 sums)   3 oc x 3 taps (9 sums)    <= 2 oc vectors, 12 sums     16 / 32
=========  =====  ===========================  ========================  ===========================  =========

The weight gradient's outer-product tile (ungrouped convolutions whose output channels
fill its vectors) holds ``wg_sums`` vectors: ``wg_sums / v`` entries x ``v`` vectors of
output channels, v the most (up to ``wg_vecs``) that wastes at most a fifth of the
lanes.  Measured on AVX-512 (Intel Xeon "rocketlake", one thread, 64 output channels,
useful GFLOP/s, interleaved medians): 4 x 6 98-104, 2 x 12 98-103, 3 x 8 (48 channels
a block: a third wasted) 62-72; positions per pass 64 / 96 / 128 / 256: 95-101 / 97-103
/ 98-104 / 84-88 (:data:`.outer.CHUNK`).  On AVX2 (numba for Haswell, same CPU, 64
channels): 2 x 6 55-60, 1 x 12 52-58, 3 x 4 50-54, 4 x 3 36-38; against the wide
kernel's 4 x 3 taps, 2 x 6 is 9-27% faster from 160 entries up (62-73 vs 54-62).

"avx512" needs AVX-512F, "avx2" AVX2 and FMA; "generic" is anything else (x86 without
AVX2, ARM, ...): vectors of 4, which LLVM lowers to SSE or NEON registers.  The depthwise
stencil keeps one channel's 64 positions (32 on "generic") in 4 zmm / 8 ymm / 8 xmm.

The AVX2 shapes were measured (numba for Haswell on an Intel Xeon "rocketlake", one
thread, 8x64x56x56 and 32x32x28x28 3x3 convolutions, best of 7, GFLOP/s forward | weight
gradient): 4 x 3 vectors | 4 x 3 taps 49-58 | 46-52; 6 x 2 | 3 x 4 39-54 | 31-36;
4 x 2 | 3 x 3 40-50 | 39-43; 8 x 1 | 4 x 2 32-40 | 35-42; 3 x 4 | 5 x 2 22-26 | 30-42.
The AVX-512 tile's 4 x 4 against 5 x 4 and 6 x 4 (with 6 x 4 and 5 x 4 taps): within
the noise of that shared machine, so it stays.

The CPU is the one numba compiles for: ``NUMBA_CPU_NAME`` and ``NUMBA_CPU_FEATURES``
when set (numba's own rules: with only the name set, numba keeps the *host's* features,
so ``NUMBA_CPU_NAME=haswell`` alone still compiles AVX-512 on an AVX-512 host - add
``NUMBA_CPU_FEATURES=`` (empty: the named CPU's own features) to target a Haswell),
else llvmlite's host CPU name and features.  ``CONVPOOL_TILE=avx512|avx2|generic`` picks
a tile explicitly (tests, benchmarks); another value raises ValueError at import.  The
choice is read once, at import: :data:`TILE`, :func:`tile_info`.  The kernels close over
the tile's numbers, which numba's disk cache keys them on: each tile has its own entries.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ENV = "CONVPOOL_TILE"


@dataclass(frozen=True)
class Tile:
    """One register-tile configuration."""

    isa: str  # "avx512" | "avx2" | "generic"
    lanes: int  # float32 lanes per vector (one register of the ISA)
    block_oc: int  # convolution: output channels per register block
    block_vecs: int  # convolution: vectors of positions per register block
    dw_oc: int  # weight gradient: output channels per block
    dw_taps: int  # weight gradient: (channel, tap) entries per block
    stencil_vecs: int  # depthwise stencil: vectors of positions per block (one channel)
    wg_vecs: int  # weight gradient, outer-product form: at most this many vectors of output channels
    wg_sums: int  # ... and this many vector sums (vectors x entries)

    @property
    def block_q(self) -> int:
        """Positions per convolution block."""
        return self.lanes * self.block_vecs


TILES = {
    "avx512": Tile("avx512", 16, 4, 4, 5, 3, 4, 4, 24),
    "avx2": Tile("avx2", 8, 4, 3, 4, 3, 8, 2, 12),
    "generic": Tile("generic", 4, 4, 3, 3, 3, 8, 2, 12),
}


def parse_features(features: str) -> frozenset[str]:
    """The enabled features of an LLVM feature string (``"+avx2,+fma,-avx512f"``)."""
    return frozenset(f[1:] for f in features.split(",") if f.startswith("+"))


def cpu_features(cpu: str) -> frozenset[str]:
    """The features LLVM gives the CPU named ``cpu`` by default (an empty feature string),
    found by compiling a 16-lane multiply-add for it and reading the registers used
    (llvmlite cannot list a named CPU's features)."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    module = llvm.parse_assembly(
        "define void @f(<16 x float>* %p) {\n"
        "  %a = load <16 x float>, <16 x float>* %p\n"
        "  %b = call <16 x float> @llvm.fmuladd.v16f32(<16 x float> %a, <16 x float> %a, <16 x float> %a)\n"
        "  store <16 x float> %b, <16 x float>* %p\n"
        "  ret void\n"
        "}\n"
        "declare <16 x float> @llvm.fmuladd.v16f32(<16 x float>, <16 x float>, <16 x float>)\n"
    )
    machine = llvm.Target.from_default_triple().create_target_machine(cpu=cpu, features="", opt=2)
    asm = machine.emit_assembly(module)
    found = set()
    if "zmm" in asm:
        found |= {"avx512f", "avx2", "fma"}
    elif "ymm" in asm and "vfmadd" in asm:
        found |= {"avx2", "fma"}
    return frozenset(found)


def select(cpu: str, features: frozenset[str]) -> tuple[Tile, str]:
    """The tile for a CPU with these enabled features, and why."""
    if "avx512f" in features:
        return TILES["avx512"], f"cpu {cpu} has avx512f"
    if "avx2" in features and "fma" in features:
        return TILES["avx2"], f"cpu {cpu} has avx2 and fma, no avx512f"
    return TILES["generic"], f"cpu {cpu} has neither avx512f nor avx2+fma"


def numba_target() -> tuple[str, frozenset[str], str]:
    """The CPU name numba compiles for, its enabled features, and where they come from."""
    import llvmlite.binding as llvm
    from numba.core import config
    from numba.core.codegen import get_host_cpu_features

    cpu = config.CPU_NAME or llvm.get_host_cpu_name()
    named = "NUMBA_CPU_NAME" if config.CPU_NAME else "host"
    if config.CPU_FEATURES is None:
        return cpu, parse_features(get_host_cpu_features()), f"{named} cpu, host features"
    if config.CPU_FEATURES:
        return cpu, parse_features(config.CPU_FEATURES), f"{named} cpu, NUMBA_CPU_FEATURES"
    return cpu, cpu_features(cpu), f"{named} cpu, its default features"


def choose(override: str | None = None) -> tuple[Tile, str]:
    """The tile: ``override`` (the value of ``CONVPOOL_TILE``) when given, else the one
    for numba's target CPU; and why."""
    if not override:
        cpu, features, source = numba_target()
        tile, why = select(cpu, features)
        return tile, f"{why} ({source})"
    if override not in TILES:
        raise ValueError(f"{ENV}={override!r}: expected one of {', '.join(TILES)} (or unset: the CPU's own)")
    return TILES[override], f"{ENV}={override}"


TILE, REASON = choose(os.environ.get(ENV) or None)
LANES = TILE.lanes
BLOCK_OC = TILE.block_oc  # output channels per micro-kernel block
BLOCK_Q = TILE.block_q  # positions per block
DW_OC = TILE.dw_oc  # output channels per weight-gradient block
DW_TAPS = TILE.dw_taps  # kernel taps per weight-gradient block
DW_CHUNK = 512  # positions per weight-gradient pass (keeps the sources in L2)
STENCIL_Q = TILE.lanes * TILE.stencil_vecs  # positions per depthwise block


def tile_info() -> dict[str, object]:
    """The selected tile: ISA name, lanes, the blocks' shapes, and why it was chosen."""
    return {
        "isa": TILE.isa,
        "lanes": TILE.lanes,
        "conv tile": f"{TILE.block_oc} oc x {TILE.block_q} positions ({TILE.block_vecs} vectors)",
        "weight-grad tile": f"{TILE.dw_oc} oc x {TILE.dw_taps} taps",
        "stencil block": f"{STENCIL_Q} positions",
        "reason": REASON,
    }
