"""Conv -> ReLU -> eval BatchNorm folded into one convolution and a clamp
gives the unfused layers' values, and is refolded when weights change."""

import pytest
import torch
from torch import nn

from speechbrain_ext.lobes.fast_conv import (
    DilatedConv1d,
    PointwiseConv1d,
    cpu_kernels,
)
from speechbrain_ext.lobes.folding import conv_relu_bn, folded_conv_bn


def _bn(channels, seed, negative=False):
    gen = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm1d(channels).double().eval()
    bn.running_mean.copy_(torch.randn(channels, generator=gen))
    bn.running_var.copy_(torch.rand(channels, generator=gen) + 0.5)
    bn.weight.data.copy_(torch.rand(channels, generator=gen) + 0.5)
    bn.bias.data.copy_(torch.randn(channels, generator=gen))
    if negative:
        bn.weight.data[0] = -0.7
    return bn


def _unfused(conv, bn, x):
    return bn(torch.relu(nn.Conv1d.forward(conv, x)))


CONVS = [
    lambda: PointwiseConv1d(5, 6),
    lambda: PointwiseConv1d(5, 6, bias=False),
    lambda: DilatedConv1d(5, 6, 3, 2),
    lambda: nn.Conv1d(5, 6, 9, stride=4, padding=4),
]


@pytest.mark.parametrize("make", CONVS)
@pytest.mark.parametrize("mode", ["fast", "stock"])
@pytest.mark.parametrize("batch", [1, 3])
def test_folded_equals_unfused(make, mode, batch):
    torch.manual_seed(0)
    conv, bn = make().double(), _bn(6, 1)
    x = torch.randn(batch, 5, 24, dtype=torch.float64)
    with torch.no_grad(), cpu_kernels(mode):
        assert folded_conv_bn(conv, bn) is not None
        got = conv_relu_bn(conv, bn, x)
    torch.testing.assert_close(got, _unfused(conv, bn, x), rtol=1e-12,
                               atol=1e-12)


def test_negative_scale_runs_unfused():
    conv, bn = PointwiseConv1d(5, 6).double(), _bn(6, 2, negative=True)
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    with torch.no_grad():
        assert folded_conv_bn(conv, bn) is None
        torch.testing.assert_close(conv_relu_bn(conv, bn, x),
                                   _unfused(conv, bn, x))


def test_changed_weights_are_refolded():
    """In-place updates (optimiser steps, load_state_dict) and dtype moves
    invalidate the cached folding."""
    conv, bn = DilatedConv1d(5, 6, 3, 2).double(), _bn(6, 3)
    x = torch.randn(1, 5, 10, dtype=torch.float64)
    with torch.no_grad():
        conv_relu_bn(conv, bn, x)
        bn.running_var.mul_(3.0)
        conv.weight.add_(0.5)
        torch.testing.assert_close(conv_relu_bn(conv, bn, x),
                                   _unfused(conv, bn, x))
        bn.load_state_dict(_bn(6, 4).state_dict())
        torch.testing.assert_close(conv_relu_bn(conv, bn, x),
                                   _unfused(conv, bn, x))
        conv.float(), bn.float()
        torch.testing.assert_close(conv_relu_bn(conv, bn, x.float()),
                                   _unfused(conv, bn, x.float()))


def test_training_and_autograd_run_unfused():
    """Training BatchNorm uses batch statistics; gradients flow as usual."""
    conv, bn = PointwiseConv1d(5, 6).double(), _bn(6, 5)
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    bn.train()
    torch.testing.assert_close(conv_relu_bn(conv, bn, x),
                               bn(torch.relu(conv(x))))
    bn.eval()
    y = conv_relu_bn(conv, bn, x)
    assert y.requires_grad
    y.sum().backward()
    assert conv.weight.grad is not None and bn.weight.grad is not None
