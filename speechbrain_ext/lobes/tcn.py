"""Temporal convolutional network (Conv-TasNet style) of the MRFE.

A TCN is ``repeats`` stacks of ``blocks`` residual temporal blocks with
dilations 1, 2, 4, ... Each block is: 1x1 conv -> PReLU -> gLN -> depthwise
dilated conv -> PReLU -> gLN -> 1x1 conv, added to its input. There are no
skip outputs.

Global layer norm (gLN) normalises over channels *and* valid frames of each
utterance. Depthwise convolutions see zeros beyond each utterance's valid
frames, so padding never leaks into valid frames.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import torch
import torch.nn.functional as F
from torch import nn

from speechbrain_ext.lobes.channel_gemm import scale_shift
from speechbrain_ext.lobes.fast_conv import (
    DepthwiseConv1d,
    PointwiseConv1d,
    _run,
    _use_fast_path,
    _use_fast_path_for,
    pointwise_conv1d,
)
from speechbrain_ext.lobes.masking import apply_mask


class GlobalLayerNorm(nn.Module):
    """Layer norm over channels and time, per utterance (gLN).

    Arguments
    ---------
    channels : int
        Number of channels.
    eps : float
        Added to the variance inside the square root.

    Example
    -------
    >>> norm = GlobalLayerNorm(4)
    >>> y = norm(torch.randn(2, 4, 10))
    >>> bool(y.mean(dim=(1, 2)).abs().max() < 1e-5)
    True
    """

    def __init__(self, channels, eps=1e-8):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(1, channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, x, mask=None, inplace=False):
        """Normalises ``x``.

        Arguments
        ---------
        x : torch.Tensor
            Features ``[B, C, T]``.
        mask : torch.Tensor or None
            ``[B, 1, T]`` mask of valid frames.
        inplace : bool
            For CPU inference, the caller hands ``x`` over: it may be
            normalised in its own memory (no new tensor to allocate; padded
            frames set to zero) where that was timed faster than GroupNorm
            for this shape (``fast_conv``'s choice), always when masked.

        Returns
        -------
        torch.Tensor
            Normalised features (padded frames are not meaningful).
        """
        if inplace and _use_fast_path_for(x, self):
            if mask is not None:
                return self._in_place(x, mask)
            # Whichever was timed faster here for this shape: GroupNorm
            # wins on small inputs, the in-place passes on large ones.
            return _run(
                "gln", self.gamma, 1, x, self._group_norm, self._in_place,
                trial=lambda t: self._in_place(t.clone()),
            )
        if mask is None:
            return self._group_norm(x)
        if x.device.type == "cpu":
            return self._per_utterance(x, mask)
        return self._masked(x, mask)

    def _group_norm(self, x):
        """gLN is a one-group GroupNorm: one fused kernel."""
        return F.group_norm(
            x, 1, self.gamma.view(-1), self.beta.view(-1), self.eps
        )

    def _in_place(self, x, mask=None):
        """gLN in ``x``'s memory: the moments of each utterance's valid
        frames from two read-only passes (the exact two-pass variance where
        the mean dominates), then the affine map; padded frames zeroed."""
        views = None
        if mask is None:
            sums = x.sum(dim=(1, 2))
            power = torch.linalg.vector_norm(x, dim=(1, 2))
            counts = torch.full_like(sums, x.shape[1] * x.shape[2])
        else:
            lengths = mask[:, 0].sum(dim=-1).long().tolist()
            views = [x[b, :, :n] for b, n in enumerate(lengths)]
            sums = torch.stack([v.sum() for v in views])
            power = torch.stack([torch.linalg.vector_norm(v) for v in views])
            counts = sums.new_tensor(lengths) * x.shape[1]
        mean = sums / counts
        var = power.square_() / counts - mean.square()
        if bool((mean.square() > 100 * var).any()):  # ill-conditioned
            if views is None:
                var = (x - mean.view(-1, 1, 1)).square_().mean(dim=(1, 2))
            else:
                var = torch.stack([
                    (v - m).square_().mean()
                    for v, m in zip(views, mean, strict=True)
                ])
        scale = self.gamma * torch.rsqrt(var.view(-1, 1, 1) + self.eps)
        shift = self.beta - mean.view(-1, 1, 1) * scale
        x = x.mul_(scale).add_(shift)
        return x if mask is None else x.mul_(mask)

    def _masked(self, x, mask):
        """Masked statistics, vectorised over the batch (GPU path)."""
        count = mask.sum(dim=(1, 2), keepdim=True) * x.shape[1]
        mean = (x * mask).sum(dim=(1, 2), keepdim=True) / count
        dev = (x - mean) * mask
        var = dev.square().sum(dim=(1, 2), keepdim=True) / count
        return self._affine(x, var, mean)

    def _affine(self, x, var, mean):
        """``gamma * (x - mean) / sqrt(var + eps) + beta``, in one pass."""
        scale = self.gamma * torch.rsqrt(var + self.eps)
        return scale_shift(x, scale, self.beta - mean * scale)

    def _per_utterance(self, x, mask):
        """Fused GroupNorm on each utterance's valid frames (CPU path).

        On the CPU a short loop of fused kernels beats masked reductions;
        padded frames are set to zero.
        """
        out = torch.zeros_like(x)
        gamma, beta = self.gamma.view(-1), self.beta.view(-1)
        for b, n in enumerate(mask[:, 0].sum(dim=-1).long().tolist()):
            out[b : b + 1, :, :n] = F.group_norm(
                x[b : b + 1, :, :n], 1, gamma, beta, self.eps
            )
        return out


class TemporalBlock(nn.Module):
    """Residual temporal block with a dilated depthwise convolution.

    Arguments
    ---------
    channels : int
        Input and output channels.
    hidden : int
        Channels inside the block.
    dilation : int
        Dilation of the depthwise convolution (kernel 3, same padding).

    Example
    -------
    >>> block = TemporalBlock(8, 6, dilation=2)
    >>> block(torch.randn(2, 8, 20)).shape
    torch.Size([2, 8, 20])
    """

    def __init__(self, channels, hidden, dilation):
        super().__init__()
        self.expand = PointwiseConv1d(channels, hidden, bias=False)
        self.act1 = nn.PReLU()
        self.norm1 = GlobalLayerNorm(hidden)
        self.depthwise = DepthwiseConv1d(hidden, dilation)
        self.act2 = nn.PReLU()
        self.norm2 = GlobalLayerNorm(hidden)
        self.project = PointwiseConv1d(hidden, channels, bias=False)

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
        if self.act1.weight.numel() == 1:  # fused into the product on CPU
            y = pointwise_conv1d(
                x, self.expand.weight, self.expand.bias, prelu=self.act1.weight
            )
        else:
            y = self.act1(self.expand(x))
        y = self.norm1(y, mask, inplace=True)
        y = self.depthwise(apply_mask(y, mask))
        if self.act2.weight.numel() == 1 and _use_fast_path(
            y, self.act2.weight
        ):
            y = F.leaky_relu_(y, float(self.act2.weight))  # PReLU in place
        else:
            y = self.act2(y)
        y = self.norm2(y, mask, inplace=True)
        return pointwise_conv1d(
            y, self.project.weight, self.project.bias, residual=x
        )


class TCN(nn.Module):
    """Stacks of temporal blocks with dilations ``1, 2, ..., 2**(blocks-1)``.

    Arguments
    ---------
    channels : int
        Input and output channels.
    hidden : int
        Channels inside each block.
    repeats : int
        Number of stacks.
    blocks : int
        Blocks per stack.

    Example
    -------
    >>> tcn = TCN(8, 6, repeats=2, blocks=3)
    >>> tcn(torch.randn(2, 8, 20)).shape
    torch.Size([2, 8, 20])
    """

    def __init__(self, channels, hidden, repeats=3, blocks=4):
        super().__init__()
        self.repeats = nn.ModuleList(
            nn.ModuleList(
                TemporalBlock(channels, hidden, 2**b) for b in range(blocks)
            )
            for _ in range(repeats)
        )

    def forward(self, x, mask=None):
        """Runs every block in order.

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
        for stack in self.repeats:
            for block in stack:
                x = block(x, mask)
        return x
