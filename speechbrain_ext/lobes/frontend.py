"""Multi-resolution feature extractor (MRFE) of MR-RawNet.

Four branches look at the waveform with sinc filters of growing length
(``K * 2**i + 1`` taps) and hop (``K * 2**i * 2 / 5`` samples): 3.2 ms to
25 ms windows, 800 to 100 frames per second with ``K = 50``. Per branch:

1. zero padding of ``K * 2**i / 2`` samples on each side, sinc filterbank;
2. in float32 (or float64), never under autocast: ``log(|x| + 1e-6)``
   minus its mean over the utterance's valid frames;
3. 1x1 convolution to the TCN width, plus (for ``i > 0``) the max-pooled
   TCN output of the finer branch ``i - 1``;
4. a TCN, then a strided convolution -> ReLU -> BatchNorm that brings every
   branch to 100 frames per second.

The four branches are concatenated and fused by a kernel-5 convolution ->
ReLU -> BatchNorm.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import torch
import torch.nn.functional as F
from torch import nn

from speechbrain_ext.lobes.fast_conv import PointwiseConv1d
from speechbrain_ext.lobes.folding import conv_relu_bn
from speechbrain_ext.lobes.masking import (
    apply_mask,
    downsample_mask,
    masked_mean,
    pool_pairs,
)
from speechbrain_ext.lobes.sinc import SincFilterbank
from speechbrain_ext.lobes.tcn import TCN


class ConvReluBN(nn.Module):
    """Convolution -> ReLU -> BatchNorm, with zeroed padding on input.

    Arguments
    ---------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels.
    kernel_size : int
        Kernel size.
    stride : int
        Stride.
    padding : int
        Zero padding on each side.

    Example
    -------
    >>> layer = ConvReluBN(4, 6, kernel_size=5, stride=2, padding=2)
    >>> layer(torch.randn(2, 4, 10)).shape
    torch.Size([2, 6, 5])
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1,
                 padding=0):
        super().__init__()
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, stride, padding
        )
        self.bn = nn.BatchNorm1d(out_channels)

    def forward(self, x, mask=None):
        """Runs the layer.

        Arguments
        ---------
        x : torch.Tensor
            Features ``[B, C, T]``.
        mask : torch.Tensor or None
            ``[B, 1, T]`` mask of valid input frames.

        Returns
        -------
        torch.Tensor
            ``[B, out_channels, T']``.
        """
        if self.conv.kernel_size[0] > 1:
            x = apply_mask(x, mask)
        return conv_relu_bn(self.conv, self.bn, x)


class FrontEndBranch(nn.Module):
    """One resolution of the MRFE: sinc filters, TCN, rate conversion.

    Arguments
    ---------
    index : int
        Branch number ``i``; sets the filter length, hop and strides.
    sinc_filters : int
        Sinc filterbank channels.
    tcn_channels : int
        TCN width (and branch output channels).
    tcn_hidden : int
        Channels inside the temporal blocks.
    tcn_repeats : int
        TCN stacks.
    tcn_blocks : int
        Temporal blocks per stack.
    sinc_base : int
        ``K``: the finest filter has ``K + 1`` taps and a hop of ``2K/5``.
    out_rate_factor : int
        ``M``: the rate-conversion kernel is ``M / 2**i + 1``.

    Example
    -------
    >>> branch = FrontEndBranch(3, 8, 6, 4, 1, 2)
    >>> x, pooled = branch(torch.randn(2, 1, 640))
    >>> x.shape, pooled
    (torch.Size([2, 6, 4]), None)
    """

    def __init__(self, index, sinc_filters, tcn_channels, tcn_hidden,
                 tcn_repeats, tcn_blocks, sinc_base=50, out_rate_factor=16):
        super().__init__()
        span = sinc_base * 2**index
        self.pad = span // 2
        self.hop = span * 2 // 5
        self.sinc = SincFilterbank(sinc_filters, span + 1, self.hop)
        self.proj = PointwiseConv1d(sinc_filters, tcn_channels, bias=False)
        self.tcn = TCN(tcn_channels, tcn_hidden, tcn_repeats, tcn_blocks)
        stride = out_rate_factor // 2 ** (index + 1)
        self.rate = ConvReluBN(
            tcn_channels,
            tcn_channels,
            kernel_size=out_rate_factor // 2**index + 1,
            stride=stride,
            padding=stride,
        )
        self.is_last = index == 3

    def spectral(self, wav, mask):
        """Log-magnitude sinc features with per-utterance mean removal.

        Always computed in the sinc parameters' dtype, outside autocast.

        Arguments
        ---------
        wav : torch.Tensor
            Pre-processed waveform ``[B, 1, T]``, zero beyond valid samples.
        mask : torch.Tensor or None
            ``[B, 1, frames]`` mask at this branch's frame rate.

        Returns
        -------
        torch.Tensor
            ``[B, sinc_filters, frames]``.
        """
        dtype = self.sinc.low_hz_.dtype
        with torch.autocast(device_type=wav.device.type, enabled=False):
            x = F.pad(wav.to(dtype), (self.pad, self.pad))
            x = self.sinc(x)
            if torch.is_grad_enabled():
                x = torch.log(x.abs() + 1e-6)
                return x - masked_mean(x, mask)
            x = x.abs_().add_(1e-6).log_()
            return x.sub_(masked_mean(x, mask))

    def forward(self, wav, mask=None, finer=None):
        """Runs the branch.

        Arguments
        ---------
        wav : torch.Tensor
            Pre-processed waveform ``[B, 1, T]``.
        mask : torch.Tensor or None
            ``[B, 1, frames]`` mask at this branch's frame rate.
        finer : torch.Tensor or None
            Max-pooled TCN output of the finer branch, added after the
            projection.

        Returns
        -------
        tuple
            The branch output at 100 frames per second, and the max-pooled
            TCN output for the next branch (None for the last branch).
        """
        x = self.spectral(wav, mask)
        x = self.proj(x.to(self.proj.weight.dtype))
        if finer is not None:
            x = x + finer if torch.is_grad_enabled() else x.add_(finer)
        x = self.tcn(x, mask)
        pooled = None if self.is_last else pool_pairs(x, "max")
        return self.rate(x, mask), pooled


class MultiResolutionFrontEnd(nn.Module):
    """The four-branch MRFE followed by the fusion convolution.

    Arguments
    ---------
    sinc_filters : int
        Sinc filterbank channels per branch.
    tcn_channels : int
        TCN width per branch.
    tcn_hidden : int
        Channels inside the temporal blocks.
    tcn_repeats : int
        TCN stacks per branch.
    tcn_blocks : int
        Temporal blocks per stack.
    out_channels : int
        Channels after fusion (``C``).

    Example
    -------
    >>> fe = MultiResolutionFrontEnd(8, 6, 4, 1, 2, 10)
    >>> fe(torch.randn(2, 1, 640)).shape
    torch.Size([2, 10, 4])
    """

    #: Sinc hop of the finest branch, in samples (20 = 1.25 ms).
    FINEST_HOP = 20
    #: Samples per output frame (10 ms at 16 kHz).
    OUTPUT_HOP = 160

    def __init__(self, sinc_filters=256, tcn_channels=128, tcn_hidden=96,
                 tcn_repeats=3, tcn_blocks=4, out_channels=256):
        super().__init__()
        self.branches = nn.ModuleList(
            FrontEndBranch(
                i, sinc_filters, tcn_channels, tcn_hidden, tcn_repeats,
                tcn_blocks,
            )
            for i in range(4)
        )
        self.fuse = ConvReluBN(
            4 * tcn_channels, out_channels, kernel_size=5, padding=2
        )

    def forward(self, wav, mask=None):
        """Extracts fused multi-resolution features.

        Arguments
        ---------
        wav : torch.Tensor
            Pre-processed waveform ``[B, 1, T]`` with ``T`` a multiple of
            320, zero beyond each utterance's valid samples.
        mask : torch.Tensor or None
            ``[B, 1, T / 20]`` mask at the finest branch's frame rate.

        Returns
        -------
        torch.Tensor
            ``[B, out_channels, T / 160]``.
        """
        outputs = []
        finer = None
        for i, branch in enumerate(self.branches):
            if i > 0:
                mask = downsample_mask(mask)
            out, finer = branch(wav, mask, finer)
            outputs.append(out)
        # The last branch runs at the output rate, so its mask is the one.
        return self.fuse(torch.cat(outputs, dim=1), mask)
