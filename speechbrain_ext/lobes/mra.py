"""Multi-resolution aggregation (MRA) block and its gate.

An MRA block runs three Res2Net bottlenecks on the same input ``x``:

* ``same``: at the input frame rate;
* ``up``: after a stride-2 transposed convolution (twice the rate), then
  average-pooled back;
* ``down``: after average pooling (half the rate), then brought back by a
  stride-2 transposed convolution.

A gate mixes the three paths per channel and the result is added to ``x``.

The gate follows the official network exactly, including its unusual
grouping: the time averages of the three paths are concatenated
(``3C`` values) and reshaped to ``[C, 3]`` by consecutive triples, so
column ``j`` holds channels ``j, j+3, j+6, ...`` of the concatenation. A
shared 1x1 bottleneck scores each column and a softmax across the three
columns gives the weight of path ``j`` for channel ``c``. Grouping one path
per column instead would not reproduce the released checkpoint.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import torch
import torch.nn.functional as F
from torch import nn

from speechbrain_ext.lobes.fast_conv import (
    PairTransposedConv1d,
    PointwiseConv1d,
    _use_fast_path,
    _use_fast_path_for,
    interleave_pairs,
    pointwise_conv1d,
)
from speechbrain_ext.lobes.masking import (
    downsample_mask,
    masked_mean,
    pool_pairs,
    upsample_mask,
)
from speechbrain_ext.lobes.mra_input_product import merged_input_weights
from speechbrain_ext.lobes.res2net import Bottle2neck


class PathGate(nn.Module):
    """Per-channel softmax gate over three equally shaped paths.

    Arguments
    ---------
    channels : int
        Channels of each path.
    bottleneck : int
        Hidden width of the scoring bottleneck.

    Example
    -------
    >>> gate = PathGate(6, 3)
    >>> paths = [torch.randn(2, 6, 5) for _ in range(3)]
    >>> gate(paths).shape
    torch.Size([2, 6, 5])
    """

    def __init__(self, channels, bottleneck):
        super().__init__()
        self.reduce = PointwiseConv1d(channels, bottleneck)
        self.bn = nn.BatchNorm1d(bottleneck)
        self.expand = PointwiseConv1d(bottleneck, channels)

    def weights(self, paths, mask=None):
        """Gate weights ``[B, C, n_paths]`` (softmax over paths).

        Arguments
        ---------
        paths : list of torch.Tensor
            Path outputs, each ``[B, C, T]``.
        mask : torch.Tensor or None
            ``[B, 1, T]`` mask of valid frames.

        Returns
        -------
        torch.Tensor
            Weights that sum to one over the last dimension.
        """
        pooled = torch.cat([masked_mean(p, mask) for p in paths], dim=1)
        pooled = pooled.reshape(pooled.shape[0], -1, len(paths))
        scores = self.expand(self.bn(F.relu(self.reduce(pooled))))
        return scores.softmax(dim=-1)

    def forward(self, paths, mask=None):
        """Mixes the paths.

        Arguments
        ---------
        paths : list of torch.Tensor
            Path outputs, each ``[B, C, T]``.
        mask : torch.Tensor or None
            ``[B, 1, T]`` mask of valid frames.

        Returns
        -------
        torch.Tensor
            ``[B, C, T]``.
        """
        w = self.weights(paths, mask)
        if _use_fast_path_for(paths[0], self):
            # Inference: mixed in the first path's memory (the block's own).
            out = paths[0].mul_(w[:, :, 0:1])
            for j in range(1, len(paths)):
                out = out.addcmul_(paths[j], w[:, :, j : j + 1])
            return out
        out = paths[0] * w[:, :, 0:1]
        for j in range(1, len(paths)):
            out = torch.addcmul(out, paths[j], w[:, :, j : j + 1])
        return out


class MRABlock(nn.Module):
    """Multi-resolution aggregation block (same, finer and coarser paths).

    Arguments
    ---------
    channels : int
        Input and output channels.
    kernel_size : int
        Kernel of the Res2Net group convolutions.
    dilation : int
        Dilation of the Res2Net group convolutions.
    scale : int
        Res2Net groups.
    gate_bottleneck : int or None
        Hidden width of the gate (default ``channels // 2``).

    Example
    -------
    >>> block = MRABlock(8)
    >>> block(torch.randn(2, 8, 6)).shape
    torch.Size([2, 8, 6])
    """

    def __init__(self, channels, kernel_size=3, dilation=2, scale=4,
                 gate_bottleneck=None):
        super().__init__()
        self.same = Bottle2neck(channels, kernel_size, dilation, scale)
        self.up_conv = PairTransposedConv1d(channels, channels)
        self.up = Bottle2neck(channels, kernel_size, dilation, scale)
        self.down = Bottle2neck(channels, kernel_size, dilation, scale)
        self.down_conv = PairTransposedConv1d(channels, channels)
        self.gate = PathGate(channels, gate_bottleneck or channels // 2)

    def forward(self, x, mask=None):
        """Runs the block.

        Arguments
        ---------
        x : torch.Tensor
            Features ``[B, C, T]`` with ``T`` even.
        mask : torch.Tensor or None
            ``[B, 1, T]`` mask with an even number of valid frames.

        Returns
        -------
        torch.Tensor
            ``[B, C, T]``.
        """
        merged = None
        if _use_fast_path(x) and not torch.is_grad_enabled():
            merged = merged_input_weights(self)
        if merged is not None:
            same, up = self._same_and_up_merged(x, mask, *merged)
        else:
            same = self.same(x, mask)
            up = self.up(self.up_conv(x), upsample_mask(mask))
            up = pool_pairs(up)
        down = self.down(pool_pairs(x), downsample_mask(mask))
        down = self.down_conv(down)
        mixed = self.gate([same, up, down], mask)
        if _use_fast_path_for(mixed, self.gate):
            return mixed.add_(x)
        return x + mixed

    def _same_and_up_merged(self, x, mask, weight, bias, floor_same,
                            floor_up):
        """The ``same`` and ``up`` paths from one folded product of ``x``
        (``mra_input_product``); CPU inference only."""
        width = floor_same.shape[0]
        heads = pointwise_conv1d(x, weight, bias)
        same_groups = heads[:, :width].clamp_(min=floor_same)
        up_groups = heads[:, width : 3 * width].clamp_(min=floor_up)
        up_residual = heads[:, 3 * width :]
        same = self.same.finish(self.same.body(same_groups, mask), x, mask)
        up = self.up.body(interleave_pairs(up_groups), upsample_mask(mask))
        up = self.up.finish(pool_pairs(up), up_residual, mask)
        return same, up
