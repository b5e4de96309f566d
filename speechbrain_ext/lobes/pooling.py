"""Attentive statistics pooling with global context (MR-RawNet flavour).

Given frame features ``h [B, E, T]``:

1. the per-channel mean and standard deviation over valid frames form a
   global context, appended to every frame: ``[h, mean, std]`` (3E);
2. attention: 1x1 conv -> ReLU -> BN -> Tanh -> 1x1 conv, softmax over the
   valid frames, one weight per channel and frame;
3. the weighted mean and standard deviation are concatenated (2E).

Because the context is constant over time, its contribution to the first
attention convolution is computed once per utterance instead of once per
frame: the same function with a third of the work.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import torch
import torch.nn.functional as F
from torch import nn

from speechbrain_ext.lobes.channel_gemm import is_channel_major
from speechbrain_ext.lobes.fast_conv import (
    PointwiseConv1d,
    _use_fast_path_for,
    pointwise_conv1d,
)
from speechbrain_ext.lobes.folding import bn_affine
from speechbrain_ext.lobes.masking import masked_mean_std


class ContextAttentiveStatsPooling(nn.Module):
    """Channel-wise attentive statistics pooling with context.

    Arguments
    ---------
    channels : int
        Feature channels ``E``.
    attention_channels : int
        Hidden width of the attention.

    Example
    -------
    >>> pool = ContextAttentiveStatsPooling(6, 4)
    >>> pool(torch.randn(2, 6, 10)).shape
    torch.Size([2, 12])
    """

    def __init__(self, channels, attention_channels=256):
        super().__init__()
        self.channels = channels
        self.reduce = PointwiseConv1d(3 * channels, attention_channels)
        self.bn = nn.BatchNorm1d(attention_channels)
        self.expand = PointwiseConv1d(attention_channels, channels)

    def attention_logits(self, h, mean, std):
        """Attention logits ``[B, E, T]`` before the softmax.

        Arguments
        ---------
        h : torch.Tensor
            Frame features ``[B, E, T]``.
        mean : torch.Tensor
            Context mean ``[B, E, 1]``.
        std : torch.Tensor
            Context standard deviation ``[B, E, 1]``.

        Returns
        -------
        torch.Tensor
            Logits ``[B, E, T]``.
        """
        e = self.channels
        weight = self.reduce.weight[..., 0]  # [A, 3E]
        context = mean.squeeze(-1) @ weight[:, e : 2 * e].T
        context = context + std.squeeze(-1) @ weight[:, 2 * e :].T
        bias = self.reduce.bias + context  # [B, A]
        a = pointwise_conv1d(h, self.reduce.weight[:, :e], None)
        if (self.bn.training or self.bn.running_var is None
                or not _use_fast_path_for(a, self)):
            a = a + bias.unsqueeze(-1)
            return self.expand(torch.tanh(self.bn(F.relu(a))))
        # CPU inference: the same steps in place, with the BatchNorm as its
        # affine map, so a channel-major batch stays channel-major.
        scale, shift = bn_affine(self.bn)
        a = a.add_(bias.unsqueeze(-1)).relu_()
        a = a.mul_(scale.unsqueeze(-1)).add_(shift.unsqueeze(-1)).tanh_()
        return self.expand(a)

    def forward(self, h, mask=None):
        """Pools ``h`` over time.

        Arguments
        ---------
        h : torch.Tensor
            Frame features ``[B, E, T]``.
        mask : torch.Tensor or None
            ``[B, 1, T]`` mask of valid frames.

        Returns
        -------
        torch.Tensor
            ``[B, 2E]``: attentive mean and standard deviation.
        """
        mean, std = masked_mean_std(h, mask)
        logits = self.attention_logits(h, mean, std)
        if mask is not None:
            logits = logits.masked_fill(mask == 0, float("-inf"))
        if is_channel_major(logits):  # softmax rows are contiguous there
            w = logits.permute(1, 0, 2).softmax(dim=-1).permute(1, 0, 2)
        else:
            w = logits.softmax(dim=-1)
        if _use_fast_path_for(w, self):
            # Inference: h * w and h^2 * w in the weights' memory.
            hw = torch.mul(h, w, out=w)
            mu = hw.sum(dim=-1)
            second = hw.mul_(h).sum(dim=-1)
        else:
            mu = (h * w).sum(dim=-1)
            second = (h.square() * w).sum(dim=-1)
        sigma = (second - mu.square()).clamp(1e-4, 1e4).sqrt()
        return torch.cat([mu, sigma], dim=1)
