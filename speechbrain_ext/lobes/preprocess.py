"""Waveform pre-processing of MR-RawNet: pre-emphasis and instance norm.

Both run before the sinc front end and have no trainable effect: the
official network computes them without gradient, so the instance norm's
affine weight and bias stay at their initial values during training (they
still exist in the checkpoint and are loaded). Here they are parameters with
``requires_grad=False``, which keeps them out of the optimiser and out of
DistributedDataParallel's gradient reduction.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import torch
import torch.nn.functional as F
from torch import nn

from speechbrain_ext.lobes.fast_conv import _use_fast_path
from speechbrain_ext.lobes.masking import masked_mean


class PreEmphasis(nn.Module):
    """First-order pre-emphasis ``y[t] = x[t] - coef * x[t-1]``.

    The first sample uses a one-sample reflect pad (``x[-1] := x[1]``), so
    the output has the input's length.

    Arguments
    ---------
    coef : float
        Pre-emphasis coefficient.

    Example
    -------
    >>> PreEmphasis(0.5)(torch.tensor([[1.0, 2.0, 4.0]]))
    tensor([[[0.0000, 1.5000, 3.0000]]])
    """

    def __init__(self, coef=0.97):
        super().__init__()
        self.register_buffer(
            "flipped_filter", torch.tensor([[[-coef, 1.0]]])
        )

    def forward(self, x):
        """Applies pre-emphasis.

        Arguments
        ---------
        x : torch.Tensor
            Waveforms ``[B, T]``.

        Returns
        -------
        torch.Tensor
            ``[B, 1, T]``.
        """
        x = F.pad(x.unsqueeze(1), (1, 0), mode="reflect")
        weight = self.flipped_filter.to(x.dtype)
        if not _use_fast_path(x):
            return F.conv1d(x, weight)
        # CPU inference: the two-tap filter as two multiply-adds, equal to
        # the one-channel convolution up to float rounding and removing its
        # cost (0.5-1.8 ms for 4 s of audio on a 2-core Xeon, against
        # 0.06 ms). Training keeps the convolution, so training runs are
        # unchanged bit for bit.
        w = weight.view(2)
        return torch.addcmul(x[..., 1:] * w[1], x[..., :-1], w[0])


class WaveformInstanceNorm(nn.Module):
    """Per-utterance standardisation of a waveform over its valid samples.

    Equivalent to ``InstanceNorm1d(1, eps, affine=True)`` when nothing is
    padded; with a mask the mean and (biased) variance ignore the padding,
    and the padding is zero on output.

    Arguments
    ---------
    eps : float
        Added to the variance.

    Example
    -------
    >>> norm = WaveformInstanceNorm()
    >>> y = norm(torch.tensor([[[1.0, 3.0, 9.0]]]),
    ...          torch.tensor([[[1.0, 1.0, 0.0]]]))
    >>> y.round(decimals=3)
    tensor([[[-1.,  1.,  0.]]])
    """

    def __init__(self, eps=1e-4):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, x, mask=None):
        """Normalises ``x``.

        Arguments
        ---------
        x : torch.Tensor
            Waveforms ``[B, 1, T]``.
        mask : torch.Tensor or None
            ``[B, 1, T]`` mask of valid samples.

        Returns
        -------
        torch.Tensor
            Normalised waveforms, zero on padding.
        """
        mean = masked_mean(x, mask)
        centred = x - mean
        if mask is not None:
            centred = centred * mask
        var = masked_mean(centred.square(), mask)
        scale = self.weight * torch.rsqrt(var + self.eps)
        y = centred * scale + self.bias
        if mask is not None:
            y = y * mask
        return y
