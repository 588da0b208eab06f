"""Parameter-free pools from the literature: ``SoftPool*d``, ``StochasticPool*d``,
``BlurPool*d``, ``MaxBlurPool*d``, ``SpatialPyramidPool*d``.

Nothing to learn, but each does something max and average pooling cannot: keep every
element's gradient (SoftPool), regularise (stochastic), downsample without aliasing
(BlurPool) or turn any input size into a fixed-length vector (pyramid pooling).  One
implementation per family (:mod:`convpool.nn._published_pools`); see
:mod:`convpool.functional.published_pools` for the formulas.
"""

from __future__ import annotations

from ._published_pools import _BlurPoolNd, _MaxBlurPoolNd, _SoftPoolNd, _SpatialPyramidPoolNd, _StochasticPoolNd


class SoftPool1d(_SoftPoolNd):
    """1-d SoftPool: the softmax-weighted mean ``sum(exp(x) * x) / sum(exp(x))`` of each window.

    Between average and max pooling: large values dominate, yet every element contributes and gets a
    gradient (Stergiou, Poppe and Kalliatakis, ICCV 2021).  No overflow: the window's max is subtracted.

    Args:
        kernel_size: window size, an int or a 1-tuple.
        stride: step between windows, an int or a 1-tuple (default None: ``kernel_size``).

    Shape:
        ``(N, C, L) -> (N, C, L_out)``, or unbatched ``(C, L)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1`` with no padding (``pad_lo = pad_hi = 0``).

    Example:
        >>> nn.SoftPool1d(2)(np.random.rand(2, 4, 8)).shape
        (2, 4, 4)
    """

    nd = 1


class SoftPool2d(_SoftPoolNd):
    """2-d SoftPool: the softmax-weighted mean ``sum(exp(x) * x) / sum(exp(x))`` of each window.

    Between average and max pooling: large values dominate, yet every element contributes and gets a
    gradient (Stergiou, Poppe and Kalliatakis, ICCV 2021).  No overflow: the window's max is subtracted.

    Args:
        kernel_size: window size, an int or a pair ``(kH, kW)``.
        stride: step between windows, an int or a pair (default None: ``kernel_size``).

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1`` with no padding (``pad_lo = pad_hi = 0``).

    Example:
        >>> nn.SoftPool2d(2)(np.random.rand(2, 4, 8, 8)).shape
        (2, 4, 4, 4)
    """

    nd = 2


class SoftPool3d(_SoftPoolNd):
    """3-d SoftPool: the softmax-weighted mean ``sum(exp(x) * x) / sum(exp(x))`` of each window.

    Between average and max pooling: large values dominate, yet every element contributes and gets a
    gradient (Stergiou, Poppe and Kalliatakis, ICCV 2021).  No overflow: the window's max is subtracted.

    Args:
        kernel_size: window size, an int or a triple ``(kD, kH, kW)``.
        stride: step between windows, an int or a triple (default None: ``kernel_size``).

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1`` with no padding (``pad_lo = pad_hi = 0``).

    Example:
        >>> nn.SoftPool3d(2)(np.random.rand(1, 4, 4, 8, 8)).shape
        (1, 4, 2, 4, 4)
    """

    nd = 3


class StochasticPool1d(_StochasticPoolNd):
    """1-d stochastic pooling: each window outputs one of its elements, drawn by value (non-negative input).

    In training an element's probability is proportional to its value (a window of zeros: uniform, output 0);
    in evaluation (``.eval()``) the output is the expectation ``sum(x**2) / sum(x)``.  A regulariser with no
    hyper-parameter (Zeiler and Fergus, ICLR 2013); the gradient goes to the drawn element.  Draws come from
    convpool's generator (:func:`convpool.manual_seed`); a negative input is a ValueError.

    Args:
        kernel_size: window size, an int or a 1-tuple.
        stride: step between windows, an int or a 1-tuple (default None: ``kernel_size``).

    Shape:
        ``(N, C, L) -> (N, C, L_out)``, or unbatched ``(C, L)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1`` with no padding (``pad_lo = pad_hi = 0``).

    Example:
        >>> pool = nn.StochasticPool1d(2)
        >>> pool(np.random.rand(2, 4, 8)).shape  # training: sampled
        (2, 4, 4)
        >>> pool.eval()(np.random.rand(2, 4, 8)).shape  # evaluation: the expectation
        (2, 4, 4)
    """

    nd = 1


class StochasticPool2d(_StochasticPoolNd):
    """2-d stochastic pooling: each window outputs one of its elements, drawn by value (non-negative input).

    In training an element's probability is proportional to its value (a window of zeros: uniform, output 0);
    in evaluation (``.eval()``) the output is the expectation ``sum(x**2) / sum(x)``.  A regulariser with no
    hyper-parameter (Zeiler and Fergus, ICLR 2013); the gradient goes to the drawn element.  Draws come from
    convpool's generator (:func:`convpool.manual_seed`); a negative input is a ValueError.

    Args:
        kernel_size: window size, an int or a pair ``(kH, kW)``.
        stride: step between windows, an int or a pair (default None: ``kernel_size``).

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1`` with no padding (``pad_lo = pad_hi = 0``).

    Example:
        >>> pool = nn.StochasticPool2d(2)
        >>> pool(np.random.rand(2, 4, 8, 8)).shape  # training: sampled
        (2, 4, 4, 4)
        >>> pool.eval()(np.random.rand(2, 4, 8, 8)).shape  # evaluation: the expectation
        (2, 4, 4, 4)
    """

    nd = 2


class StochasticPool3d(_StochasticPoolNd):
    """3-d stochastic pooling: each window outputs one of its elements, drawn by value (non-negative input).

    In training an element's probability is proportional to its value (a window of zeros: uniform, output 0);
    in evaluation (``.eval()``) the output is the expectation ``sum(x**2) / sum(x)``.  A regulariser with no
    hyper-parameter (Zeiler and Fergus, ICLR 2013); the gradient goes to the drawn element.  Draws come from
    convpool's generator (:func:`convpool.manual_seed`); a negative input is a ValueError.

    Args:
        kernel_size: window size, an int or a triple ``(kD, kH, kW)``.
        stride: step between windows, an int or a triple (default None: ``kernel_size``).

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1`` with no padding (``pad_lo = pad_hi = 0``).

    Example:
        >>> pool = nn.StochasticPool3d(2)
        >>> pool(np.random.rand(1, 4, 4, 8, 8)).shape  # training: sampled
        (1, 4, 2, 4, 4)
        >>> pool.eval()(np.random.rand(1, 4, 4, 8, 8)).shape  # evaluation: the expectation
        (1, 4, 2, 4, 4)
    """

    nd = 3


class BlurPool1d(_BlurPoolNd):
    """1-d BlurPool: anti-aliased downsampling, a binomial low-pass filter per channel, then subsampling.

    The filter is row ``filt_size - 1`` of Pascal's triangle, normalised, as an outer product over the
    spatial dims (``filt_size=3``: ``[1, 2, 1] / 4``); fixed, not in the state dict.  Blurring before
    subsampling keeps the output nearly shift-invariant (Zhang, ICML 2019).

    Args:
        channels: channels of the input, ``C``.
        filt_size: filter size per dim, >= 1 (default 3; 1 is plain subsampling ``x[..., ::stride]``).
        stride: subsampling factor, a positive int (default 2).
        pad_mode: 'reflect' (default, as Zhang), 'replicate', 'zeros' or 'circular'.

    Shape:
        ``(N, C, L) -> (N, C, L_out)``, or unbatched ``(C, L)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - filt_size) / stride) + 1 = floor((in - 1) / stride) + 1``
        with ``pad_lo = (filt_size - 1) // 2`` and ``pad_hi = filt_size // 2`` in ``pad_mode``.

    Example:
        >>> nn.BlurPool1d(4)(np.random.rand(2, 4, 8)).shape
        (2, 4, 4)
    """

    nd = 1


class BlurPool2d(_BlurPoolNd):
    """2-d BlurPool: anti-aliased downsampling, a binomial low-pass filter per channel, then subsampling.

    The filter is row ``filt_size - 1`` of Pascal's triangle, normalised, as an outer product over the
    spatial dims (``filt_size=3``: ``[1, 2, 1] / 4``); fixed, not in the state dict.  Blurring before
    subsampling keeps the output nearly shift-invariant (Zhang, ICML 2019).

    Args:
        channels: channels of the input, ``C``.
        filt_size: filter size per dim, >= 1 (default 3; 1 is plain subsampling ``x[..., ::stride]``).
        stride: subsampling factor, a positive int (default 2).
        pad_mode: 'reflect' (default, as Zhang), 'replicate', 'zeros' or 'circular'.

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - filt_size) / stride) + 1 = floor((in - 1) / stride) + 1``
        with ``pad_lo = (filt_size - 1) // 2`` and ``pad_hi = filt_size // 2`` in ``pad_mode``.

    Example:
        >>> nn.BlurPool2d(4)(np.random.rand(2, 4, 8, 8)).shape
        (2, 4, 4, 4)
    """

    nd = 2


class BlurPool3d(_BlurPoolNd):
    """3-d BlurPool: anti-aliased downsampling, a binomial low-pass filter per channel, then subsampling.

    The filter is row ``filt_size - 1`` of Pascal's triangle, normalised, as an outer product over the
    spatial dims (``filt_size=3``: ``[1, 2, 1] / 4``); fixed, not in the state dict.  Blurring before
    subsampling keeps the output nearly shift-invariant (Zhang, ICML 2019).

    Args:
        channels: channels of the input, ``C``.
        filt_size: filter size per dim, >= 1 (default 3; 1 is plain subsampling ``x[..., ::stride]``).
        stride: subsampling factor, a positive int (default 2).
        pad_mode: 'reflect' (default, as Zhang), 'replicate', 'zeros' or 'circular'.

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - filt_size) / stride) + 1 = floor((in - 1) / stride) + 1``
        with ``pad_lo = (filt_size - 1) // 2`` and ``pad_hi = filt_size // 2`` in ``pad_mode``.

    Example:
        >>> nn.BlurPool3d(4)(np.random.rand(1, 4, 4, 8, 8)).shape
        (1, 4, 2, 4, 4)
    """

    nd = 3


class MaxBlurPool1d(_MaxBlurPoolNd):
    """1-d anti-aliased max pooling: max pooling at stride 1, then a :class:`BlurPool1d` blur and subsampling.

    Zhang's ``MaxPool(k, stride=1)`` followed by ``BlurPool(stride)`` (ICML 2019), as one layer.

    Args:
        channels: channels of the input, ``C``.
        kernel_size: the max pool's window, an int or a 1-tuple (default 2).
        stride: subsampling factor of the blur, a positive int (default 2).
        filt_size: blur filter size per dim, >= 1 (default 3).
        pad_mode: the blur's padding, 'reflect' (default), 'replicate', 'zeros' or 'circular'.

    Shape:
        ``(N, C, L) -> (N, C, L_out)``, or unbatched ``(C, L)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1`` with no padding of the max
        pool (``pad_lo = pad_hi = 0``; the blur pads to keep its size).

    Example:
        >>> nn.MaxBlurPool1d(4)(np.random.rand(2, 4, 8)).shape
        (2, 4, 4)
    """

    nd = 1


class MaxBlurPool2d(_MaxBlurPoolNd):
    """2-d anti-aliased max pooling: max pooling at stride 1, then a :class:`BlurPool2d` blur and subsampling.

    Zhang's ``MaxPool(k, stride=1)`` followed by ``BlurPool(stride)`` (ICML 2019), as one layer.

    Args:
        channels: channels of the input, ``C``.
        kernel_size: the max pool's window, an int or a pair ``(kH, kW)`` (default 2).
        stride: subsampling factor of the blur, a positive int (default 2).
        filt_size: blur filter size per dim, >= 1 (default 3).
        pad_mode: the blur's padding, 'reflect' (default), 'replicate', 'zeros' or 'circular'.

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1`` with no padding of the max
        pool (``pad_lo = pad_hi = 0``; the blur pads to keep its size).

    Example:
        >>> nn.MaxBlurPool2d(4)(np.random.rand(2, 4, 8, 8)).shape
        (2, 4, 4, 4)
    """

    nd = 2


class MaxBlurPool3d(_MaxBlurPoolNd):
    """3-d anti-aliased max pooling: max pooling at stride 1, then a :class:`BlurPool3d` blur and subsampling.

    Zhang's ``MaxPool(k, stride=1)`` followed by ``BlurPool(stride)`` (ICML 2019), as one layer.

    Args:
        channels: channels of the input, ``C``.
        kernel_size: the max pool's window, an int or a triple ``(kD, kH, kW)`` (default 2).
        stride: subsampling factor of the blur, a positive int (default 2).
        filt_size: blur filter size per dim, >= 1 (default 3).
        pad_mode: the blur's padding, 'reflect' (default), 'replicate', 'zeros' or 'circular'.

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1`` with no padding of the max
        pool (``pad_lo = pad_hi = 0``; the blur pads to keep its size).

    Example:
        >>> nn.MaxBlurPool3d(4)(np.random.rand(1, 4, 4, 8, 8)).shape
        (1, 4, 2, 4, 4)
    """

    nd = 3


class SpatialPyramidPool1d(_SpatialPyramidPoolNd):
    """1-d spatial pyramid pooling: adaptive pooling to ``l`` bins per dim for each level ``l``, concatenated.

    A fixed-length vector from an input of any size, pooled at several scales (He, Zhang, Ren and Sun,
    ECCV 2014).  Level 1 is global pooling; a level larger than a spatial size is a ValueError.

    Args:
        levels: bins per spatial dim of each level, positive ints (default ``(1, 2, 4)``).
        mode: 'max' (default, as He et al.) or 'avg'.

    Shape:
        ``(N, C, L) -> (N, C * sum(l**1 for l in levels))``; each level's block is its
        ``(N, C, l)`` output flattened (channel-major).

    Example:
        >>> spp = nn.SpatialPyramidPool1d((1, 2, 4))
        >>> spp(np.random.rand(2, 4, 8)).shape  # 4 * (1 + 2 + 4)
        (2, 28)
    """

    nd = 1


class SpatialPyramidPool2d(_SpatialPyramidPoolNd):
    """2-d spatial pyramid pooling: adaptive pooling to ``l`` bins per dim for each level ``l``, concatenated.

    A fixed-length vector from an input of any size, pooled at several scales (He, Zhang, Ren and Sun,
    ECCV 2014).  Level 1 is global pooling; a level larger than a spatial size is a ValueError.

    Args:
        levels: bins per spatial dim of each level, positive ints (default ``(1, 2, 4)``).
        mode: 'max' (default, as He et al.) or 'avg'.

    Shape:
        ``(N, C, H, W) -> (N, C * sum(l**2 for l in levels))``; each level's block is its
        ``(N, C, l, l)`` output flattened (channel-major).

    Example:
        >>> spp = nn.SpatialPyramidPool2d((1, 2, 4))
        >>> spp(np.random.rand(2, 4, 8, 8)).shape  # 4 * (1 + 4 + 16)
        (2, 84)
    """

    nd = 2


class SpatialPyramidPool3d(_SpatialPyramidPoolNd):
    """3-d spatial pyramid pooling: adaptive pooling to ``l`` bins per dim for each level ``l``, concatenated.

    A fixed-length vector from an input of any size, pooled at several scales (He, Zhang, Ren and Sun,
    ECCV 2014).  Level 1 is global pooling; a level larger than a spatial size is a ValueError.

    Args:
        levels: bins per spatial dim of each level, positive ints (default ``(1, 2, 4)``).
        mode: 'max' (default, as He et al.) or 'avg'.

    Shape:
        ``(N, C, D, H, W) -> (N, C * sum(l**3 for l in levels))``; each level's block is its
        ``(N, C, l, l, l)`` output flattened (channel-major).

    Example:
        >>> spp = nn.SpatialPyramidPool3d((1, 2, 4))
        >>> spp(np.random.rand(1, 4, 4, 8, 8)).shape  # 4 * (1 + 8 + 64)
        (1, 292)
    """

    nd = 3
