"""Res2Net bottleneck with alpha feature-map scaling (AFMS).

``Bottle2neck`` is the residual unit inside every MR-RawNet MRA path:
1x1 conv -> ReLU -> BN, a hierarchical split into ``scale`` groups (each
group but the last is convolved after adding the previous group's output),
1x1 conv -> ReLU -> BN, identity residual, then AFMS.

AFMS rescales the block output: ``x <- (x + alpha) * sigmoid(FC(mean_t x))``
(RawNet2). The time average counts valid frames only.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import torch
from torch import nn

from speechbrain_ext.lobes.channel_gemm import cat_channels, scale_shift
from speechbrain_ext.lobes.fast_conv import (
    DilatedConv1d,
    PointwiseConv1d,
    _use_fast_path_for,
)
from speechbrain_ext.lobes.folding import conv_relu_bn
from speechbrain_ext.lobes.masking import apply_mask, masked_mean


class AFMS(nn.Module):
    """Alpha feature-map scaling.

    Arguments
    ---------
    channels : int
        Number of channels.

    Example
    -------
    >>> afms = AFMS(4)
    >>> afms(torch.randn(2, 4, 10)).shape
    torch.Size([2, 4, 10])
    """

    def __init__(self, channels):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels, 1))
        self.fc = nn.Linear(channels, channels)

    def forward(self, x, mask=None, inplace=False):
        """Scales ``x``.

        Arguments
        ---------
        x : torch.Tensor
            Features ``[B, C, T]``.
        mask : torch.Tensor or None
            ``[B, 1, T]`` mask of valid frames.
        inplace : bool
            Scale ``x`` in place (inference, when the caller owns ``x``):
            no new tensor to allocate.

        Returns
        -------
        torch.Tensor
            ``[B, C, T]``.
        """
        scale = torch.sigmoid(self.fc(masked_mean(x, mask).squeeze(-1)))
        scale = scale.unsqueeze(-1)
        if inplace:
            return x.mul_(scale).add_(self.alpha * scale)
        return scale_shift(x, scale, self.alpha * scale)


class Bottle2neck(nn.Module):
    """Res2Net bottleneck block followed by AFMS (input = output channels).

    Arguments
    ---------
    channels : int
        Input and output channels.
    kernel_size : int
        Kernel of the group convolutions.
    dilation : int
        Dilation of the group convolutions.
    scale : int
        Number of groups.

    Example
    -------
    >>> block = Bottle2neck(8, kernel_size=3, dilation=2, scale=4)
    >>> block(torch.randn(2, 8, 10)).shape
    torch.Size([2, 8, 10])
    """

    def __init__(self, channels, kernel_size=3, dilation=2, scale=4):
        super().__init__()
        width = channels // scale
        self.width = width
        self.conv1 = PointwiseConv1d(channels, width * scale)
        self.bn1 = nn.BatchNorm1d(width * scale)
        self.convs = nn.ModuleList(
            DilatedConv1d(width, width, kernel_size, dilation)
            for _ in range(scale - 1)
        )
        self.bns = nn.ModuleList(
            nn.BatchNorm1d(width) for _ in range(scale - 1)
        )
        self.conv3 = PointwiseConv1d(width * scale, channels)
        self.bn3 = nn.BatchNorm1d(channels)
        self.afms = AFMS(channels)

    def forward(self, x, mask=None):
        """Runs the block.

        Arguments
        ---------
        x : torch.Tensor
            Features ``[B, C, T]``.
        mask : torch.Tensor or None
            ``[B, 1, T]`` mask of valid frames.

        Returns
        -------
        torch.Tensor
            ``[B, C, T]``.
        """
        groups = conv_relu_bn(self.conv1, self.bn1, x)
        return self.finish(self.body(groups, mask), x, mask)

    def body(self, groups, mask=None):
        """The block from the output of ``bn1`` to that of ``bn3``.

        Arguments
        ---------
        groups : torch.Tensor
            ``bn1(relu(conv1(x)))``, ``[B, width * scale, T]``.
        mask : torch.Tensor or None
            ``[B, 1, T]`` mask of valid frames.

        Returns
        -------
        torch.Tensor
            ``bn3(relu(conv3(...)))``, ``[B, channels, T]``.

        Example
        -------
        >>> block = Bottle2neck(8).eval()
        >>> block.body(torch.randn(2, 8, 10)).shape
        torch.Size([2, 8, 10])
        """
        groups = groups.split(self.width, dim=1)
        outputs = []
        y = None
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            y = groups[i] if i == 0 else y + groups[i]
            y = conv_relu_bn(conv, bn, apply_mask(y, mask))
            outputs.append(y)
        outputs.append(groups[-1])
        y = cat_channels(outputs)
        return conv_relu_bn(self.conv3, self.bn3, y)

    def finish(self, y, residual, mask=None):
        """The residual sum and AFMS after ``body``.

        Arguments
        ---------
        y : torch.Tensor
            Output of ``body``, ``[B, channels, T]`` (used as scratch
            memory in CPU inference).
        residual : torch.Tensor
            The block's input (or what stands for it), ``[B, channels, T]``.
        mask : torch.Tensor or None
            ``[B, 1, T]`` mask of valid frames.

        Returns
        -------
        torch.Tensor
            ``afms(y + residual)``.

        Example
        -------
        >>> block = Bottle2neck(8).eval()
        >>> x = torch.randn(2, 8, 10)
        >>> with torch.no_grad():
        ...     y = block.finish(block.body(block.conv1(x).relu()), x)
        >>> y.shape
        torch.Size([2, 8, 10])
        """
        if _use_fast_path_for(y, self.afms):
            # Inference: the sum and the scaling in the block's own output.
            return self.afms(y.add_(residual), mask, inplace=True)
        return self.afms(y + residual, mask)
