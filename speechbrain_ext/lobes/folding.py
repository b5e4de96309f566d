"""Convolution -> ReLU -> eval BatchNorm in one convolution and one clamp.

MR-RawNet applies BatchNorm *after* the ReLU of most convolutions. In
evaluation mode the BatchNorm is a per-channel affine map ``s * r + t``, and
for ``s > 0``::

    s * relu(z) + t = max(s * z + t, t)

so the scale and shift fold into the convolution's weight and bias and the
ReLU and BatchNorm become one in-place clamp from below at ``t``: one pass
over the output instead of two, and one tensor fewer to allocate. This
removes work on every machine; it is used for inference on the CPU (when
autograd records nothing, as for the ``fast_conv`` kernels) when every
channel's scale is positive (trained BatchNorms almost always are; else the
layers run unfused). The folded weights are cached and recomputed when any
of the tensors they come from changes. Results equal the unfused layers up
to float rounding.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import torch
import torch.nn.functional as F

from speechbrain_ext.lobes.fast_conv import _use_fast_path, conv_with


def _sources(conv, bn):
    """The tensors the folded weights are computed from."""
    return (conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean,
            bn.running_var)


def _fingerprint(tensors):
    """Identity and version of each tensor: changes whenever one does."""
    return tuple(
        None if t is None else (t.data_ptr(), t._version, t.dtype)
        for t in tensors
    ) + (torch.is_inference_mode_enabled(),)


def bn_affine(bn):
    """Per-channel ``(scale, shift)`` with ``bn(x) = x * scale + shift`` for
    an evaluation-mode BatchNorm with running statistics.

    Arguments
    ---------
    bn : torch.nn.BatchNorm1d
        The BatchNorm.

    Returns
    -------
    tuple
        ``(scale [C], shift [C])``.

    Example
    -------
    >>> bn = torch.nn.BatchNorm1d(3).eval()
    >>> x = torch.randn(2, 3, 4)
    >>> scale, shift = bn_affine(bn)
    >>> torch.allclose(bn(x), x * scale[:, None] + shift[:, None])
    True
    """
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


def folded_conv_bn(conv, bn):
    """Weight, bias and clamp floor of ``bn(relu(conv(x)))``, or None.

    Arguments
    ---------
    conv : torch.nn.Conv1d
        The convolution.
    bn : torch.nn.BatchNorm1d
        The BatchNorm after the ReLU, in evaluation mode.

    Returns
    -------
    tuple or None
        ``(weight, bias, floor [C, 1])`` such that the layers equal
        ``clamp(conv_with(x, weight, bias), min=floor)``, or None when a
        BatchNorm scale is not positive.

    Example
    -------
    >>> conv, bn = torch.nn.Conv1d(2, 3, 1), torch.nn.BatchNorm1d(3).eval()
    >>> weight, bias, floor = folded_conv_bn(conv, bn)
    >>> weight.shape, floor.shape
    (torch.Size([3, 2, 1]), torch.Size([3, 1]))
    """
    return _folded(conv, bn, _sources(conv, bn))


def _folded(conv, bn, sources):
    """``folded_conv_bn`` with its source tensors already looked up."""
    key = _fingerprint(sources)
    cached = getattr(bn, "_folded_conv", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    with torch.no_grad():
        scale, shift = bn_affine(bn)
        if bool((scale > 0).all()):
            shape = (-1,) + (1,) * (conv.weight.dim() - 1)
            weight = conv.weight * scale.view(shape)
            bias = shift if conv.bias is None else conv.bias * scale + shift
            folded = (weight, bias, shift.unsqueeze(-1))
        else:
            folded = None
    bn._folded_conv = (key, folded)
    return folded


def conv_relu_bn(conv, bn, x):
    """``bn(relu(conv(x)))``, folded into one convolution when it can be.

    Arguments
    ---------
    conv : torch.nn.Conv1d
        A convolution (``fast_conv`` layers keep their kernel choice).
    bn : torch.nn.BatchNorm1d
        The BatchNorm after the ReLU.
    x : torch.Tensor
        Input ``[B, C_in, T]``.

    Returns
    -------
    torch.Tensor
        ``[B, C_out, T']``.

    Example
    -------
    >>> conv, bn = torch.nn.Conv1d(2, 3, 3, padding=1), torch.nn.BatchNorm1d(3)
    >>> bn = bn.eval()
    >>> x = torch.randn(1, 2, 6)
    >>> with torch.no_grad():
    ...     torch.allclose(conv_relu_bn(conv, bn, x),
    ...                    bn(torch.relu(conv(x))), atol=1e-6)
    True
    """
    sources = None
    if not bn.training and bn.running_var is not None:
        sources = _sources(conv, bn)
    if sources is not None and _use_fast_path(x, *sources):
        folded = _folded(conv, bn, sources)
        if folded is not None:
            weight, bias, floor = folded
            return conv_with(conv, x, weight, bias).clamp_(min=floor)
    return bn(F.relu(conv(x), inplace=True))
