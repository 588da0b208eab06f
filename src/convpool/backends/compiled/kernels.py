"""The compiled kernels (numba) in one namespace, with the runtime they run on.

The ops in :mod:`convpool.functional` reach the compiled backend through this module:
``kernels.enabled()`` says whether it runs, ``kernels.im2col(...)`` etc. are the
kernels, which live by family in :mod:`.im2col`, :mod:`.pool_kernels`, :mod:`.tiled_kernels`
:mod:`.norm_kernels` and :mod:`.optim_kernels`
(the SIMD convolution in :mod:`.direct`).  Importable without numba: then
``AVAILABLE`` and ``DIRECT`` are False and only the runtime helpers exist.
"""

from __future__ import annotations

import os

from .runtime import (  # noqa: F401
    AVAILABLE,
    aligned_empty,
    blas_limiter,
    enabled,
    index_table,
    num_threads,
    one_blas_thread,
    workspace,
    worth_parallel,
)

if AVAILABLE:  # the kernels, by family; each runs its jobs on the kernel threads (threads.py)
    from .im2col import (  # noqa: F401
        _span,
        col2im,
        col2im_serial,
        depthwise_backward,
        depthwise_forward,
        im2col,
        im2col_serial,
        plane_add,
        plane_fill,
        plane_sum,
        relu_backward,
        relu_forward,
    )
    from .median_rank import median_forward  # noqa: F401
    from .norm_kernels import affine as batch_norm_affine  # noqa: F401
    from .norm_kernels import grad_sums as batch_norm_grad_sums  # noqa: F401
    from .norm_kernels import input_grad as batch_norm_input_grad  # noqa: F401
    from .norm_kernels import stats as batch_norm_stats  # noqa: F401
    from .optim_kernels import adam as adam_step  # noqa: F401
    from .optim_kernels import sgd as sgd_step  # noqa: F401
    from .pool_kernels import (  # noqa: F401
        route,
        select_backward,
        select_where,
    )
    from .tiled_kernels import (  # noqa: F401
        route_tiled,
        select_2x2,
        select_tiled,
        spread_2x2,
        sum_2x2,
        sum_separable,
        sum_separable_backward,
    )
    from .tiled_pairs import route_2x2  # noqa: F401


try:  # the direct SIMD convolution needs numba's LLVM intrinsics (llvmlite)
    if not AVAILABLE or os.environ.get("CONVPOOL_NO_DIRECT"):
        raise ImportError
    from . import direct as _direct  # noqa: F401
    from .direct import from_phases  # noqa: F401
    from .rowsum import row_means  # noqa: F401

    DIRECT = True
except ImportError:
    DIRECT = False
