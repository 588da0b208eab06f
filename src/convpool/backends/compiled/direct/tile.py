"""The register tile of the direct convolution's micro-kernels."""

from __future__ import annotations

BLOCK_OC = 4  # output channels per micro-kernel block
BLOCK_Q = 64  # positions per block: 4 vectors of 16 lanes
DW_OC = 5  # output channels per weight-gradient block
DW_TAPS = 3  # kernel taps per weight-gradient block
DW_CHUNK = 512  # positions per weight-gradient pass (keeps the sources in L2)
