"""The MRA block's folded input product equals the layers as written."""

import pytest
import torch

from speechbrain_ext.lobes import mra
from speechbrain_ext.lobes.channel_gemm import to_channel_major
from speechbrain_ext.lobes.fast_conv import cpu_kernels
from speechbrain_ext.lobes.masking import make_mask
from speechbrain_ext.lobes.mra import MRABlock
from speechbrain_ext.lobes.mra_input_product import merged_input_weights


def _block(channels=8, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    block = MRABlock(channels).to(dtype).eval()
    for module in block.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_(0, 0.3)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.3)
    return block


def _unmerged(block, x, mask, monkeypatch):
    """The block's layers as written: autograd on (the parameters need
    gradients), so no inference shortcut at all."""
    with monkeypatch.context() as patch:
        patch.setattr(mra, "merged_input_weights", lambda blk: None)
        with torch.enable_grad():
            return block(x.clone(), mask).detach()


@pytest.mark.parametrize("mode", ["stock", "fast", "auto"])
@pytest.mark.parametrize("batch, channel_major", [(1, False), (3, False),
                                                  (3, True)])
def test_merged_product_equals_the_layers(mode, batch, channel_major,
                                          monkeypatch):
    block = _block()
    x = torch.randn(batch, 8, 12, dtype=torch.float64)
    if channel_major:
        x = to_channel_major(x)
    frames = torch.tensor([12, 8, 4][:batch])
    mask = None if batch == 1 else make_mask(frames, 12, torch.float64)
    calls = []
    real = mra.merged_input_weights
    monkeypatch.setattr(mra, "merged_input_weights",
                        lambda blk: calls.append(1) or real(blk))
    with cpu_kernels(mode), torch.inference_mode():
        merged = block(x.clone(), mask)
    assert calls, "the merged product was not used"
    with cpu_kernels(mode):
        expected = _unmerged(block, x, mask, monkeypatch)
    valid = torch.ones_like(merged) if mask is None else mask.expand_as(merged)
    torch.testing.assert_close(merged * valid, expected * valid, rtol=1e-10,
                               atol=1e-10)


def test_a_non_positive_batchnorm_scale_falls_back(monkeypatch):
    block = _block()
    block.up.bn1.weight.data[0] = -0.5
    assert merged_input_weights(block) is None
    x = torch.randn(1, 8, 10, dtype=torch.float64)
    with torch.inference_mode():
        out = block(x.clone())
    ref = _unmerged(block, x, None, monkeypatch)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_training_mode_and_autograd_do_not_use_it():
    block = _block().train()
    assert merged_input_weights(block) is None
    block.eval()
    x = torch.randn(1, 8, 10, dtype=torch.float64, requires_grad=True)
    block(x).sum().backward()  # autograd on: the layers as written
    assert x.grad is not None
    assert block.up_conv.weight.grad is not None


def test_the_cached_weights_follow_a_changed_weight(monkeypatch):
    block = _block()
    x = torch.randn(1, 8, 10, dtype=torch.float64)
    with torch.inference_mode():
        block(x.clone())
    with torch.no_grad():
        block.up_conv.weight.mul_(1.5)
        block.same.bn1.running_var.mul_(2.0)
    with torch.inference_mode():
        merged = block(x.clone())
    expected = _unmerged(block, x, None, monkeypatch)
    torch.testing.assert_close(merged, expected, rtol=1e-10, atol=1e-10)


def test_float32_matches_the_layers_closely(monkeypatch):
    block = _block(channels=16, dtype=torch.float32)
    x = torch.randn(2, 16, 20)
    mask = make_mask(torch.tensor([20, 14]), 20)
    with torch.inference_mode():
        merged = block(x.clone(), mask)
    expected = _unmerged(block, x, mask, monkeypatch)
    valid = mask.expand_as(merged)
    torch.testing.assert_close(merged * valid, expected * valid, rtol=1e-4,
                               atol=1e-4)
