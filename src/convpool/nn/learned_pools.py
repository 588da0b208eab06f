"""Pooling layers with learned parameters: ``GeMPool*d``, ``LSEPool*d``,
``MixedPool*d``, ``GatedPool*d``.

Max and average pooling have nothing to learn; each of these has a scalar (or,
for the gated pool, a small depthwise filter) that lets the network choose,
by gradient descent, how close to max or to average pooling it pools.  The
parameters are :class:`~convpool.nn.Parameter` objects, so optimisers,
``state_dict`` and ``Sequential`` work as for any layer.  One implementation per
family (:mod:`convpool.nn._learned_pools`); see :mod:`convpool.functional.learned_pools`
for the formulas.
"""

from __future__ import annotations

from ._learned_pools import _GatedPoolNd, _GeMPoolNd, _LSEPoolNd, _MixedPoolNd


class GeMPool1d(_GeMPoolNd):
    """1-d generalised-mean (GeM) pooling: ``(mean over the window of max(x, eps)**p) ** (1/p)``.

    A learned, smooth trade-off between average (``p = 1``) and max pooling (``p -> inf``), with a
    gradient to every element (Radenovic, Tolias and Chum, TPAMI 2018).  Padding is left out of the mean.

    Args:
        kernel_size: window size, an int or a 1-tuple; None (default) pools globally.
        stride: step between windows, an int or a 1-tuple (default None: ``kernel_size``).
        padding: an int or one ``(lo, hi)`` pair, at most half the window (default 0).
        p: the power, > 0 (default 3; 1 is average pooling, large ``p`` nears max pooling).
        learn_p: make ``p`` a :class:`Parameter` of shape ``(1,)``, key ``'p'`` (default True).
        eps: the clamp ``max(x, eps)`` that keeps powers and logs finite, > 0 (default 1e-6).
        dtype: floating-point type of a learned ``p`` (default float32).

    Shape:
        ``(N, C, L) -> (N, C, L_out)``, or unbatched ``(C, L)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1`` (1 when global).
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> pool = nn.GeMPool1d()  # global, learned p = 3
        >>> pool(np.random.rand(2, 4, 8)).shape
        (2, 4, 1)
    """

    nd = 1


class GeMPool2d(_GeMPoolNd):
    """2-d generalised-mean (GeM) pooling: ``(mean over the window of max(x, eps)**p) ** (1/p)``.

    A learned, smooth trade-off between average (``p = 1``) and max pooling (``p -> inf``), with a
    gradient to every element (Radenovic, Tolias and Chum, TPAMI 2018).  Padding is left out of the mean.

    Args:
        kernel_size: window size, an int or a pair ``(kH, kW)``; None (default) pools globally.
        stride: step between windows, an int or a pair (default None: ``kernel_size``).
        padding: an int, a pair or two ``(lo, hi)`` pairs, at most half the window (default 0).
        p: the power, > 0 (default 3; 1 is average pooling, large ``p`` nears max pooling).
        learn_p: make ``p`` a :class:`Parameter` of shape ``(1,)``, key ``'p'`` (default True).
        eps: the clamp ``max(x, eps)`` that keeps powers and logs finite, > 0 (default 1e-6).
        dtype: floating-point type of a learned ``p`` (default float32).

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1`` (1 when global).
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> pool = nn.GeMPool2d()  # global, learned p = 3
        >>> pool(np.random.rand(2, 4, 8, 8)).shape
        (2, 4, 1, 1)
    """

    nd = 2


class GeMPool3d(_GeMPoolNd):
    """3-d generalised-mean (GeM) pooling: ``(mean over the window of max(x, eps)**p) ** (1/p)``.

    A learned, smooth trade-off between average (``p = 1``) and max pooling (``p -> inf``), with a
    gradient to every element (Radenovic, Tolias and Chum, TPAMI 2018).  Padding is left out of the mean.

    Args:
        kernel_size: window size, an int or a triple ``(kD, kH, kW)``; None (default) pools globally.
        stride: step between windows, an int or a triple (default None: ``kernel_size``).
        padding: an int, a triple or three ``(lo, hi)`` pairs, at most half the window (default 0).
        p: the power, > 0 (default 3; 1 is average pooling, large ``p`` nears max pooling).
        learn_p: make ``p`` a :class:`Parameter` of shape ``(1,)``, key ``'p'`` (default True).
        eps: the clamp ``max(x, eps)`` that keeps powers and logs finite, > 0 (default 1e-6).
        dtype: floating-point type of a learned ``p`` (default float32).

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1`` (1 when global).
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> pool = nn.GeMPool3d()  # global, learned p = 3
        >>> pool(np.random.rand(1, 4, 4, 8, 8)).shape
        (1, 4, 1, 1, 1)
    """

    nd = 3


class LSEPool1d(_LSEPoolNd):
    """1-d log-mean-exp pooling: ``(1/beta) * log(mean over the window of exp(beta*x))``.

    A smooth maximum with a (learnable) temperature; every element gets its softmax share of the
    gradient (Pinheiro and Collobert, CVPR 2015).  Stable for large ``beta``; padding is left out.

    Args:
        kernel_size: window size, an int or a 1-tuple.
        stride: step between windows, an int or a 1-tuple (default None: ``kernel_size``).
        padding: an int or one ``(lo, hi)`` pair, at most half the window (default 0).
        beta: the inverse temperature, > 0 (default 1; near 0: average, large: max pooling).
        learn_beta: make ``beta`` a :class:`Parameter` of shape ``(1,)``, key ``'beta'`` (default False).
        dtype: floating-point type of a learned ``beta`` (default float32).

    Shape:
        ``(N, C, L) -> (N, C, L_out)``, or unbatched ``(C, L)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1``.
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> pool = nn.LSEPool1d(2, beta=10.0, learn_beta=True)
        >>> pool(np.random.rand(2, 4, 8)).shape
        (2, 4, 4)
    """

    nd = 1


class LSEPool2d(_LSEPoolNd):
    """2-d log-mean-exp pooling: ``(1/beta) * log(mean over the window of exp(beta*x))``.

    A smooth maximum with a (learnable) temperature; every element gets its softmax share of the
    gradient (Pinheiro and Collobert, CVPR 2015).  Stable for large ``beta``; padding is left out.

    Args:
        kernel_size: window size, an int or a pair ``(kH, kW)``.
        stride: step between windows, an int or a pair (default None: ``kernel_size``).
        padding: an int, a pair or two ``(lo, hi)`` pairs, at most half the window (default 0).
        beta: the inverse temperature, > 0 (default 1; near 0: average, large: max pooling).
        learn_beta: make ``beta`` a :class:`Parameter` of shape ``(1,)``, key ``'beta'`` (default False).
        dtype: floating-point type of a learned ``beta`` (default float32).

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1``.
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> pool = nn.LSEPool2d(2, beta=10.0, learn_beta=True)
        >>> pool(np.random.rand(2, 4, 8, 8)).shape
        (2, 4, 4, 4)
    """

    nd = 2


class LSEPool3d(_LSEPoolNd):
    """3-d log-mean-exp pooling: ``(1/beta) * log(mean over the window of exp(beta*x))``.

    A smooth maximum with a (learnable) temperature; every element gets its softmax share of the
    gradient (Pinheiro and Collobert, CVPR 2015).  Stable for large ``beta``; padding is left out.

    Args:
        kernel_size: window size, an int or a triple ``(kD, kH, kW)``.
        stride: step between windows, an int or a triple (default None: ``kernel_size``).
        padding: an int, a triple or three ``(lo, hi)`` pairs, at most half the window (default 0).
        beta: the inverse temperature, > 0 (default 1; near 0: average, large: max pooling).
        learn_beta: make ``beta`` a :class:`Parameter` of shape ``(1,)``, key ``'beta'`` (default False).
        dtype: floating-point type of a learned ``beta`` (default float32).

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1``.
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> pool = nn.LSEPool3d(2, beta=10.0, learn_beta=True)
        >>> pool(np.random.rand(1, 4, 4, 8, 8)).shape
        (1, 4, 2, 4, 4)
    """

    nd = 3


class MixedPool1d(_MixedPoolNd):
    """1-d mixed pooling: ``alpha * max_pool(x) + (1 - alpha) * avg_pool(x)``, ``alpha`` learned.

    The layer learns how much of each pool it wants (Yu et al., RSKT 2014; Lee, Gallagher and Tu,
    AISTATS 2016).  Padding: ignored by the max, left out of the average.

    Args:
        kernel_size: window size, an int or a 1-tuple.
        stride: step between windows, an int or a 1-tuple (default None: ``kernel_size``).
        padding: an int or one ``(lo, hi)`` pair, at most half the window (default 0).
        alpha: the weight of max pooling, in ``[0, 1]`` (default 0.5).
        learn_alpha: make ``alpha`` a :class:`Parameter` of shape ``(1,)``, key ``'alpha'`` (default True);
            clipped to ``[0, 1]`` when used.
        dtype: floating-point type of a learned ``alpha`` (default float32).

    Shape:
        ``(N, C, L) -> (N, C, L_out)``, or unbatched ``(C, L)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1``.
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> pool = nn.MixedPool1d(2)  # alpha = 0.5, learned
        >>> pool(np.random.rand(2, 4, 8)).shape
        (2, 4, 4)
    """

    nd = 1


class MixedPool2d(_MixedPoolNd):
    """2-d mixed pooling: ``alpha * max_pool(x) + (1 - alpha) * avg_pool(x)``, ``alpha`` learned.

    The layer learns how much of each pool it wants (Yu et al., RSKT 2014; Lee, Gallagher and Tu,
    AISTATS 2016).  Padding: ignored by the max, left out of the average.

    Args:
        kernel_size: window size, an int or a pair ``(kH, kW)``.
        stride: step between windows, an int or a pair (default None: ``kernel_size``).
        padding: an int, a pair or two ``(lo, hi)`` pairs, at most half the window (default 0).
        alpha: the weight of max pooling, in ``[0, 1]`` (default 0.5).
        learn_alpha: make ``alpha`` a :class:`Parameter` of shape ``(1,)``, key ``'alpha'`` (default True);
            clipped to ``[0, 1]`` when used.
        dtype: floating-point type of a learned ``alpha`` (default float32).

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1``.
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> pool = nn.MixedPool2d(2)  # alpha = 0.5, learned
        >>> pool(np.random.rand(2, 4, 8, 8)).shape
        (2, 4, 4, 4)
    """

    nd = 2


class MixedPool3d(_MixedPoolNd):
    """3-d mixed pooling: ``alpha * max_pool(x) + (1 - alpha) * avg_pool(x)``, ``alpha`` learned.

    The layer learns how much of each pool it wants (Yu et al., RSKT 2014; Lee, Gallagher and Tu,
    AISTATS 2016).  Padding: ignored by the max, left out of the average.

    Args:
        kernel_size: window size, an int or a triple ``(kD, kH, kW)``.
        stride: step between windows, an int or a triple (default None: ``kernel_size``).
        padding: an int, a triple or three ``(lo, hi)`` pairs, at most half the window (default 0).
        alpha: the weight of max pooling, in ``[0, 1]`` (default 0.5).
        learn_alpha: make ``alpha`` a :class:`Parameter` of shape ``(1,)``, key ``'alpha'`` (default True);
            clipped to ``[0, 1]`` when used.
        dtype: floating-point type of a learned ``alpha`` (default float32).

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1``.
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').

    Example:
        >>> pool = nn.MixedPool3d(2)  # alpha = 0.5, learned
        >>> pool(np.random.rand(1, 4, 4, 8, 8)).shape
        (1, 4, 2, 4, 4)
    """

    nd = 3


class GatedPool1d(_GatedPoolNd):
    """1-d gated pooling: ``g * max_pool(x) + (1 - g) * avg_pool(x)``, ``g = sigmoid(w . window + b)``.

    The gate is a learned depthwise convolution over the pool's own windows, so each window decides
    from its content how max-like its output is (Lee, Gallagher and Tu, AISTATS 2016).  Padding:
    ignored by the max, left out of the average, zeros for the gate.

    Args:
        in_channels: channels of the input, ``C``.
        kernel_size: window size, an int or a 1-tuple.
        stride: step between windows, an int or a 1-tuple (default None: ``kernel_size``).
        padding: an int or one ``(lo, hi)`` pair, at most half the window (default 0).
        dtype: floating-point type of the gate's weight and bias (default float32).

    Shape:
        ``(N, C, L) -> (N, C, L_out)``, or unbatched ``(C, L)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1``.
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').
        Parameters: ``weight`` ``(C, *kernel_size)``, ``bias`` ``(C,)``.

    Example:
        >>> pool = nn.GatedPool1d(4, 2)
        >>> pool(np.random.rand(2, 4, 8).astype(np.float32)).shape
        (2, 4, 4)
    """

    nd = 1


class GatedPool2d(_GatedPoolNd):
    """2-d gated pooling: ``g * max_pool(x) + (1 - g) * avg_pool(x)``, ``g = sigmoid(w . window + b)``.

    The gate is a learned depthwise convolution over the pool's own windows, so each window decides
    from its content how max-like its output is (Lee, Gallagher and Tu, AISTATS 2016).  Padding:
    ignored by the max, left out of the average, zeros for the gate.

    Args:
        in_channels: channels of the input, ``C``.
        kernel_size: window size, an int or a pair ``(kH, kW)``.
        stride: step between windows, an int or a pair (default None: ``kernel_size``).
        padding: an int, a pair or two ``(lo, hi)`` pairs, at most half the window (default 0).
        dtype: floating-point type of the gate's weight and bias (default float32).

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1``.
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').
        Parameters: ``weight`` ``(C, *kernel_size)``, ``bias`` ``(C,)``.

    Example:
        >>> pool = nn.GatedPool2d(4, 2)
        >>> pool(np.random.rand(2, 4, 8, 8).astype(np.float32)).shape
        (2, 4, 4, 4)
    """

    nd = 2


class GatedPool3d(_GatedPoolNd):
    """3-d gated pooling: ``g * max_pool(x) + (1 - g) * avg_pool(x)``, ``g = sigmoid(w . window + b)``.

    The gate is a learned depthwise convolution over the pool's own windows, so each window decides
    from its content how max-like its output is (Lee, Gallagher and Tu, AISTATS 2016).  Padding:
    ignored by the max, left out of the average, zeros for the gate.

    Args:
        in_channels: channels of the input, ``C``.
        kernel_size: window size, an int or a triple ``(kD, kH, kW)``.
        stride: step between windows, an int or a triple (default None: ``kernel_size``).
        padding: an int, a triple or three ``(lo, hi)`` pairs, at most half the window (default 0).
        dtype: floating-point type of the gate's weight and bias (default float32).

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``, with per dim
        ``out = floor((in + pad_lo + pad_hi - kernel_size) / stride) + 1``.
        ``pad_lo = pad_hi = padding`` for an int or a tuple, per dim as given for ``(lo, hi)`` pairs (no 'same').
        Parameters: ``weight`` ``(C, *kernel_size)``, ``bias`` ``(C,)``.

    Example:
        >>> pool = nn.GatedPool3d(4, 2)
        >>> pool(np.random.rand(1, 4, 4, 8, 8).astype(np.float32)).shape
        (1, 4, 2, 4, 4)
    """

    nd = 3
