"""The CPU inference forms of pre-emphasis and of the pooling statistics
equal their training forms, and training keeps the stock computation.

``PreEmphasis`` runs its two-tap filter as two multiply-adds and
``masked_mean_std`` may run a two-pass mean/variance instead of
``torch.var_mean`` when autograd records nothing on the CPU; both must give
the stock result up to float rounding (compared in float64, so only the
summation order can differ), and with autograd on they must be the stock
computation exactly.
"""

import pytest
import torch
import torch.nn.functional as F

from speechbrain_ext.lobes import fast_conv
from speechbrain_ext.lobes.fast_conv import cpu_kernels
from speechbrain_ext.lobes.masking import masked_mean_std
from speechbrain_ext.lobes.preprocess import PreEmphasis


@pytest.fixture(autouse=True)
def _fresh_choices():
    """Each test starts with no timed decisions and the default mode."""
    fast_conv.clear_kernel_choices()
    with cpu_kernels("auto"):
        yield
    fast_conv.clear_kernel_choices()


def _conv_pre_emphasis(layer, x):
    """The official form: reflect pad, then a one-channel convolution."""
    x = F.pad(x.unsqueeze(1), (1, 0), mode="reflect")
    return F.conv1d(x, layer.flipped_filter.to(x.dtype))


@pytest.mark.parametrize("batch", [1, 3])
def test_pre_emphasis_inference_equals_the_convolution(batch):
    layer = PreEmphasis(0.97).double()
    x = torch.randn(batch, 1000, dtype=torch.float64)
    ref = _conv_pre_emphasis(layer, x)
    with torch.no_grad():
        y = layer(x)
    with torch.inference_mode():
        y_inf = layer(x)
    assert y.shape == ref.shape == (batch, 1, 1000)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(y_inf, ref, rtol=1e-12, atol=1e-12)


def test_pre_emphasis_uses_the_stored_filter():
    """A checkpoint's filter (not the constructor's coefficient) is used."""
    layer = PreEmphasis(0.97)
    layer.flipped_filter.copy_(torch.tensor([[[-0.5, 2.0]]]))
    x = torch.randn(2, 50)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), _conv_pre_emphasis(layer, x))


def test_pre_emphasis_with_autograd_is_the_convolution():
    layer = PreEmphasis(0.97)
    x = torch.randn(2, 300, requires_grad=True)
    y = layer(x)
    assert torch.equal(y, _conv_pre_emphasis(layer, x))
    (g,) = torch.autograd.grad(y.square().sum(), x)
    x2 = x.detach().clone().requires_grad_(True)
    (g2,) = torch.autograd.grad(
        _conv_pre_emphasis(layer, x2).square().sum(), x2
    )
    assert torch.equal(g, g2)


@pytest.mark.parametrize("mode", ["fast", "stock", "auto"])
@pytest.mark.parametrize("unbiased", [True, False])
def test_pooling_statistics_in_every_kernel_mode(mode, unbiased):
    x = torch.randn(3, 16, 40, dtype=torch.float64) * 5 + 2
    var, mean = torch.var_mean(x, dim=-1, keepdim=True,
                               correction=int(unbiased))
    ref_std = var.clamp(1e-4, 1e4).sqrt()
    with cpu_kernels(mode), torch.no_grad():
        m, s = masked_mean_std(x, None, unbiased=unbiased)
        m2, s2 = masked_mean_std(x, None, unbiased=unbiased)
    torch.testing.assert_close(m, mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s, ref_std, rtol=1e-12, atol=1e-12)
    # The first call (which times both forms in auto mode) equals later
    # calls bit for bit.
    assert torch.equal(m, m2) and torch.equal(s, s2)


def test_pooling_statistics_with_autograd_are_var_mean():
    x = torch.randn(2, 8, 30, requires_grad=True)
    with cpu_kernels("fast"):
        mean, std = masked_mean_std(x, None)
    var, ref_mean = torch.var_mean(x, dim=-1, keepdim=True, correction=1)
    assert torch.equal(mean, ref_mean)
    assert torch.equal(std, var.clamp(1e-4, 1e4).sqrt())


def test_pooling_statistics_of_one_frame_are_the_stock_ones():
    """A single frame with the unbiased correction takes the stock path
    (NaN, as ``torch.var_mean`` gives, not a division of the two-pass
    form by zero)."""
    x = torch.randn(1, 4, 1)
    with cpu_kernels("fast"), torch.no_grad():
        mean, std = masked_mean_std(x, None)
    var, ref_mean = torch.var_mean(x, dim=-1, keepdim=True, correction=1)
    assert torch.equal(mean, ref_mean)
    torch.testing.assert_close(
        std, var.clamp(1e-4, 1e4).sqrt(), equal_nan=True
    )
