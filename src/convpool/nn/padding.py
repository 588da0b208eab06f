"""Padding layers, as ``torch.nn``: ``ZeroPad*d``, ``ConstantPad*d``, ``ReflectionPad*d``,
``ReplicationPad*d``, ``CircularPad*d`` (1-d, 2-d, 3-d).

Forward is :func:`convpool.functional.pad`, backward its adjoint
:func:`convpool.functional.padding.pad_grad`.  ``padding`` is an int (every side) or a
tuple of ``2 * nd`` ints in PyTorch's order, last dim first:
``(left, right, top, bottom, front, back)``, stored as the tuple ``self.padding``.

**Negative padding crops**, as in PyTorch: ``ZeroPad2d((-1, 0, 0, 0))`` drops the first
column.  Per side, a negative amount is cut and a positive one padded:

* constant (zero) and circular: the input is cut first, then padded - so circular
  padding wraps around what is left (PyTorch's rule); a cut larger than the dim is an
  error, and circular padding may be at most the size left after the cut (PyTorch checks
  the uncut size and then reads memory it should not);
* reflect and replicate: the input is padded first, then cut (PyTorch's: the output
  element ``j`` is the padded input's ``j - pad_lo``); reflect padding must be smaller
  than the input size, and the output must keep at least one element per dim.

Inputs: ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``; the constant (zero)
layers, like PyTorch's, pad the last ``nd`` dims of an array of any rank ``>= nd``.
"""

from __future__ import annotations

from ._padding import _CircularPadNd, _ConstantPadNd, _ReflectionPadNd, _ReplicationPadNd, _ZeroPadNd
from ._padding import _PadNd as _PadNd


class ZeroPad1d(_ZeroPadNd):
    """1-d version of zero padding: pads the last dim with zeros.

    Negative padding crops.

    Args:
        padding: an int (every side) or 2 ints, last dim first: ``(left, right)``.

    Shape:
        ``(*, L) -> (*, L_out)``, any number of leading dims, with per padded dim
        ``out = in + pad_lo + pad_hi`` (symmetric for an int, per side otherwise).

    Example:
        >>> nn.ZeroPad1d(2)(np.array([[1.0, 2.0, 3.0]]))
        array([[0., 0., 1., 2., 3., 0., 0.]])
    """

    nd = 1


class ZeroPad2d(_ZeroPadNd):
    """2-d version of zero padding: pads the last 2 dims with zeros.

    Negative padding crops.

    Args:
        padding: an int (every side) or 4 ints, last dim first: ``(left, right, top, bottom)``.

    Shape:
        ``(*, H, W) -> (*, H_out, W_out)``, any number of leading dims, with per padded dim
        ``out = in + pad_lo + pad_hi`` (symmetric for an int, per side otherwise).

    Example:
        >>> nn.ZeroPad2d((1, 1, 2, 0))(np.ones((1, 1, 3, 3))).shape
        (1, 1, 5, 5)
        >>> nn.ZeroPad2d(-1)(np.ones((1, 1, 3, 3))).shape  # crop one on every side
        (1, 1, 1, 1)
    """

    nd = 2


class ZeroPad3d(_ZeroPadNd):
    """3-d version of zero padding: pads the last 3 dims with zeros.

    Negative padding crops.

    Args:
        padding: an int (every side) or 6 ints, last dim first: ``(left, right, top, bottom, front, back)``.

    Shape:
        ``(*, D, H, W) -> (*, D_out, H_out, W_out)``, any number of leading dims, with per padded dim
        ``out = in + pad_lo + pad_hi`` (symmetric for an int, per side otherwise).

    Example:
        >>> nn.ZeroPad3d((1, 1, 2, 0, 0, 1))(np.ones((1, 1, 3, 3, 3))).shape
        (1, 1, 4, 5, 5)
        >>> nn.ZeroPad3d(-1)(np.ones((1, 1, 3, 3, 3))).shape  # crop one on every side
        (1, 1, 1, 1, 1)
    """

    nd = 3


class ConstantPad1d(_ConstantPadNd):
    """1-d version of constant padding: pads the last dim with a constant ``value``.

    Negative padding crops.

    Args:
        padding: an int (every side) or 2 ints, last dim first: ``(left, right)``.
        value: the fill value, a real number.

    Shape:
        ``(*, L) -> (*, L_out)``, any number of leading dims, with per padded dim
        ``out = in + pad_lo + pad_hi`` (symmetric for an int, per side otherwise).

    Example:
        >>> nn.ConstantPad1d((1, 2), 3.5)(np.array([[1.0, 2.0, 3.0]]))
        array([[3.5, 1. , 2. , 3. , 3.5, 3.5]])
    """

    nd = 1


class ConstantPad2d(_ConstantPadNd):
    """2-d version of constant padding: pads the last 2 dims with a constant ``value``.

    Negative padding crops.

    Args:
        padding: an int (every side) or 4 ints, last dim first: ``(left, right, top, bottom)``.
        value: the fill value, a real number.

    Shape:
        ``(*, H, W) -> (*, H_out, W_out)``, any number of leading dims, with per padded dim
        ``out = in + pad_lo + pad_hi`` (symmetric for an int, per side otherwise).

    Example:
        >>> nn.ConstantPad2d((1, 1, 0, 2), 3.5)(np.zeros((1, 1, 2, 2))).shape
        (1, 1, 4, 4)
    """

    nd = 2


class ConstantPad3d(_ConstantPadNd):
    """3-d version of constant padding: pads the last 3 dims with a constant ``value``.

    Negative padding crops.

    Args:
        padding: an int (every side) or 6 ints, last dim first: ``(left, right, top, bottom, front, back)``.
        value: the fill value, a real number.

    Shape:
        ``(*, D, H, W) -> (*, D_out, H_out, W_out)``, any number of leading dims, with per padded dim
        ``out = in + pad_lo + pad_hi`` (symmetric for an int, per side otherwise).

    Example:
        >>> nn.ConstantPad3d((1, 1, 0, 2, 1, 0), 3.5)(np.zeros((1, 1, 2, 2, 2))).shape
        (1, 1, 3, 4, 4)
    """

    nd = 3


class ReflectionPad1d(_ReflectionPadNd):
    """1-d version of reflection padding: pads the last dim with its reflection (edge not repeated).

    Negative padding crops.  Padding must be smaller than the input size.

    Args:
        padding: an int (every side) or 2 ints, last dim first: ``(left, right)``.

    Shape:
        ``(N, C, L) -> (N, C, L_out)``, or unbatched ``(C, L)``, with per dim
        ``out = in + pad_lo + pad_hi`` (symmetric for an int, per side otherwise).

    Example:
        >>> nn.ReflectionPad1d(2)(np.array([[1.0, 2.0, 3.0]]))
        array([[3., 2., 1., 2., 3., 2., 1.]])
    """

    nd = 1


class ReflectionPad2d(_ReflectionPadNd):
    """2-d version of reflection padding: pads the last 2 dims with its reflection (edge not repeated).

    Negative padding crops.  Padding must be smaller than the input size.

    Args:
        padding: an int (every side) or 4 ints, last dim first: ``(left, right, top, bottom)``.

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``, with per dim
        ``out = in + pad_lo + pad_hi`` (symmetric for an int, per side otherwise).

    Example:
        >>> nn.ReflectionPad2d((1, 2, 2, 0))(np.random.rand(1, 2, 4, 4)).shape
        (1, 2, 6, 7)
    """

    nd = 2


class ReflectionPad3d(_ReflectionPadNd):
    """3-d version of reflection padding: pads the last 3 dims with its reflection (edge not repeated).

    Negative padding crops.  Padding must be smaller than the input size.

    Args:
        padding: an int (every side) or 6 ints, last dim first: ``(left, right, top, bottom, front, back)``.

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``, with per dim
        ``out = in + pad_lo + pad_hi`` (symmetric for an int, per side otherwise).

    Example:
        >>> nn.ReflectionPad3d((1, 2, 2, 0, 1, 1))(np.random.rand(1, 2, 4, 4, 4)).shape
        (1, 2, 6, 6, 7)
    """

    nd = 3


class ReplicationPad1d(_ReplicationPadNd):
    """1-d version of replication padding: pads the last dim with copies of its edge.

    Negative padding crops.

    Args:
        padding: an int (every side) or 2 ints, last dim first: ``(left, right)``.

    Shape:
        ``(N, C, L) -> (N, C, L_out)``, or unbatched ``(C, L)``, with per dim
        ``out = in + pad_lo + pad_hi`` (symmetric for an int, per side otherwise).

    Example:
        >>> nn.ReplicationPad1d(2)(np.array([[1.0, 2.0, 3.0]]))
        array([[1., 1., 1., 2., 3., 3., 3.]])
    """

    nd = 1


class ReplicationPad2d(_ReplicationPadNd):
    """2-d version of replication padding: pads the last 2 dims with copies of its edge.

    Negative padding crops.

    Args:
        padding: an int (every side) or 4 ints, last dim first: ``(left, right, top, bottom)``.

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``, with per dim
        ``out = in + pad_lo + pad_hi`` (symmetric for an int, per side otherwise).

    Example:
        >>> nn.ReplicationPad2d((1, 2, 2, 0))(np.random.rand(1, 2, 4, 4)).shape
        (1, 2, 6, 7)
    """

    nd = 2


class ReplicationPad3d(_ReplicationPadNd):
    """3-d version of replication padding: pads the last 3 dims with copies of its edge.

    Negative padding crops.

    Args:
        padding: an int (every side) or 6 ints, last dim first: ``(left, right, top, bottom, front, back)``.

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``, with per dim
        ``out = in + pad_lo + pad_hi`` (symmetric for an int, per side otherwise).

    Example:
        >>> nn.ReplicationPad3d((1, 2, 2, 0, 1, 1))(np.random.rand(1, 2, 4, 4, 4)).shape
        (1, 2, 6, 6, 7)
    """

    nd = 3


class CircularPad1d(_CircularPadNd):
    """1-d version of circular padding: pads the last dim with the input wrapped around.

    Negative padding crops.  Padding must be at most the input size (after any cut).

    Args:
        padding: an int (every side) or 2 ints, last dim first: ``(left, right)``.

    Shape:
        ``(N, C, L) -> (N, C, L_out)``, or unbatched ``(C, L)``, with per dim
        ``out = in + pad_lo + pad_hi`` (symmetric for an int, per side otherwise).

    Example:
        >>> nn.CircularPad1d(2)(np.array([[1.0, 2.0, 3.0]]))
        array([[2., 3., 1., 2., 3., 1., 2.]])
    """

    nd = 1


class CircularPad2d(_CircularPadNd):
    """2-d version of circular padding: pads the last 2 dims with the input wrapped around.

    Negative padding crops.  Padding must be at most the input size (after any cut).

    Args:
        padding: an int (every side) or 4 ints, last dim first: ``(left, right, top, bottom)``.

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``, or unbatched ``(C, H, W)``, with per dim
        ``out = in + pad_lo + pad_hi`` (symmetric for an int, per side otherwise).

    Example:
        >>> nn.CircularPad2d((1, 2, 2, 0))(np.random.rand(1, 2, 4, 4)).shape
        (1, 2, 6, 7)
    """

    nd = 2


class CircularPad3d(_CircularPadNd):
    """3-d version of circular padding: pads the last 3 dims with the input wrapped around.

    Negative padding crops.  Padding must be at most the input size (after any cut).

    Args:
        padding: an int (every side) or 6 ints, last dim first: ``(left, right, top, bottom, front, back)``.

    Shape:
        ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``, or unbatched ``(C, D, H, W)``, with per dim
        ``out = in + pad_lo + pad_hi`` (symmetric for an int, per side otherwise).

    Example:
        >>> nn.CircularPad3d((1, 2, 2, 0, 1, 1))(np.random.rand(1, 2, 4, 4, 4)).shape
        (1, 2, 6, 6, 7)
    """

    nd = 3
