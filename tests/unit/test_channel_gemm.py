"""The channel matrix products of ``channel_gemm`` and the channel-major
layout they keep.

Values are compared with ``torch.einsum`` references in float32 (where
torch has oneDNN, its kernel is the one run, with the fused leaky ReLU and
residual sum) and float64 (the ``torch.mm`` path); the layers built on the
products give the stock layers' outputs for channel-major batches; and the
whole lobe gives the same embeddings with the channel-major stages as with
torch's stock kernels.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from speechbrain_ext.lobes import channel_gemm, fast_conv, kernel_timing
from speechbrain_ext.lobes.channel_gemm import (
    cat_channels,
    channel_matmul,
    is_channel_major,
    matmul_backend,
    scale_shift,
    to_channel_major,
)
from speechbrain_ext.lobes.fast_conv import (
    DilatedConv1d,
    PairTransposedConv1d,
    cpu_kernels,
    inference_layout,
    pointwise_conv1d,
)
from speechbrain_ext.lobes.mr_rawnet import MRRawNet
from speechbrain_ext.lobes.tcn import TemporalBlock

HAS_ONEDNN = channel_gemm._onednn["usable"]


@pytest.fixture(autouse=True)
def _fresh_choices():
    """Each test starts with no timed decisions and the default mode."""
    fast_conv.clear_kernel_choices()
    with cpu_kernels("auto"):
        yield
    fast_conv.clear_kernel_choices()


class _CountingLinear:
    """Wraps oneDNN's linear op and counts the calls of each form."""

    def __init__(self, op):
        self.op, self.calls = op, []

    def __call__(self, *args):
        self.calls.append(args[3])  # the fused activation
        return self.op(*args)

    def binary(self, *args):
        self.calls.append(args[-1])
        return self.op.binary(*args)


def _reference(weight, x, bias=None, slope=None, residual=None):
    y = torch.einsum("rc,bct->brt", weight, x)
    if bias is not None:
        y = y + bias[:, None]
    if slope is not None:
        y = F.leaky_relu(y, slope)
    return y if residual is None else y + residual


@pytest.mark.parametrize("backend", ["auto", "onednn", "mm"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("channel_major", [False, True])
@pytest.mark.parametrize(
    "bias, slope, residual",
    [(False, None, False), (True, None, False), (False, 0.2, False),
     (False, None, True), (True, 0.2, True), (False, 0.2, True)],
)
def test_channel_matmul_equals_einsum(backend, dtype, batch, channel_major,
                                      bias, slope, residual):
    torch.manual_seed(0)
    weight = torch.randn(6, 4, dtype=dtype)
    x = torch.randn(batch, 4, 9, dtype=dtype)
    b = torch.randn(6, dtype=dtype) if bias else None
    res = torch.randn(batch, 6, 9, dtype=dtype) if residual else None
    if channel_major:
        x = to_channel_major(x)
    with torch.no_grad(), matmul_backend(backend):
        y = channel_matmul(weight, x, b, slope, res)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(
        y, _reference(weight, x, b, slope, res), rtol=tol, atol=tol
    )
    # The output keeps the layout of the input.
    assert is_channel_major(y) == (channel_major or batch == 1)
    assert batch == 1 or channel_major or y.is_contiguous()


@pytest.mark.skipif(not HAS_ONEDNN, reason="torch built without oneDNN")
def test_float32_runs_on_onednn_with_fused_epilogues(monkeypatch):
    counting = _CountingLinear(channel_gemm._LINEAR)
    monkeypatch.setattr(channel_gemm, "_LINEAR", counting)
    weight, x = torch.randn(5, 3), torch.randn(1, 3, 8)
    res = torch.randn(1, 5, 8)
    with torch.no_grad(), matmul_backend("onednn"):
        channel_matmul(weight, x)
        channel_matmul(weight, x, slope=0.1)
        channel_matmul(weight, x, residual=res)
        channel_matmul(weight.double(), x.double())  # float64: torch.mm
    assert counting.calls == ["none", "leaky_relu", "add"]


@pytest.mark.skipif(not HAS_ONEDNN, reason="torch built without oneDNN")
@pytest.mark.parametrize("faster, calls_later", [("mm", 0), ("onednn", 1)])
def test_the_product_backend_is_timed_per_shape(monkeypatch, faster,
                                                 calls_later):
    """oneDNN or torch.mm, whichever timed faster for the product shape;
    the first call hands out the chosen backend's output."""
    counting = _CountingLinear(channel_gemm._LINEAR)
    monkeypatch.setattr(channel_gemm, "_LINEAR", counting)
    slow = {"mm": "_onednn_matmul", "onednn": "_mm_matmul"}[faster]

    def fake_best_of(fn, *args):
        return 1.0 if fn.func.__name__ == slow else 0.5

    monkeypatch.setattr(kernel_timing, "best_of", fake_best_of)
    weight, x = torch.randn(5, 3), torch.randn(1, 3, 8)
    with torch.no_grad():
        first = channel_matmul(weight, x, slope=0.1)
        assert channel_gemm.backend_choices() == {
            (5, 3, 16, "float32"): faster
        }
        counting.calls.clear()
        later = channel_matmul(weight, x, slope=0.1)
        assert len(counting.calls) == calls_later
        assert torch.equal(first, later)
        # Another shape is timed on its own.
        channel_matmul(weight, torch.randn(1, 3, 40))
    assert len(channel_gemm.backend_choices()) == 2
    fast_conv.clear_kernel_choices()  # forgets the backends too
    assert channel_gemm.backend_choices() == {}


def test_a_forced_backend_is_not_timed(monkeypatch):
    def no_timing(*args):
        raise AssertionError("timed")

    monkeypatch.setattr(kernel_timing, "best_of", no_timing)
    weight, x = torch.randn(5, 3), torch.randn(2, 3, 8)
    with torch.no_grad():
        for mode in ("onednn", "mm"):
            with matmul_backend(mode):
                y = channel_matmul(weight, x)
            torch.testing.assert_close(y, _reference(weight, x))
    assert channel_gemm.backend_choices() == {}
    with pytest.raises(ValueError, match="one of"):
        with matmul_backend("blas"):
            pass


def test_a_failing_onednn_falls_back_to_torch_mm(monkeypatch):
    def broken(*args):
        raise RuntimeError("no oneDNN here")

    broken.binary = broken
    monkeypatch.setattr(channel_gemm, "_LINEAR", broken)
    monkeypatch.setitem(channel_gemm._onednn, "usable", True)
    monkeypatch.setitem(channel_gemm._onednn, "failed", set())
    weight, x = torch.randn(5, 3), torch.randn(2, 3, 8)
    with torch.no_grad():
        y = channel_matmul(weight, x, slope=0.3)
    torch.testing.assert_close(
        y, _reference(weight, x, slope=0.3), rtol=1e-5, atol=1e-5
    )
    assert channel_gemm._onednn["failed"] == {torch.float32}


@pytest.mark.skipif(not HAS_ONEDNN, reason="torch built without oneDNN")
def test_a_bfloat16_failure_keeps_float32_on_onednn(monkeypatch):
    # A CPU without bfloat16 support may refuse the bfloat16 product; the
    # float32 products of the same process must still use oneDNN.
    real = channel_gemm._LINEAR

    def bf16_broken(a, *args):
        if a.dtype == torch.bfloat16:
            raise RuntimeError("no bfloat16 here")
        return real(a, *args)

    counting = _CountingLinear(bf16_broken)
    monkeypatch.setattr(channel_gemm, "_LINEAR", counting)
    monkeypatch.setitem(channel_gemm._onednn, "failed", set())
    weight, x = torch.randn(5, 3), torch.randn(1, 3, 8)
    with torch.no_grad(), matmul_backend("onednn"):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y16 = channel_matmul(weight, x)
        y32 = channel_matmul(weight, x)
    torch.testing.assert_close(y16.float()[0], weight @ x[0], rtol=2e-2,
                               atol=5e-2)
    torch.testing.assert_close(y32, _reference(weight, x), rtol=1e-5,
                               atol=1e-5)
    assert channel_gemm._onednn["failed"] == {torch.bfloat16}
    assert counting.calls == ["none", "none"]  # the bf16 try, then float32


@pytest.mark.skipif(not HAS_ONEDNN, reason="torch built without oneDNN")
def test_bfloat16_autocast_multiplies_in_bfloat16():
    torch.manual_seed(1)
    weight, x = torch.randn(8, 16), torch.randn(2, 16, 12)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = channel_matmul(weight, to_channel_major(x))
    assert y.dtype == torch.bfloat16
    ref = _reference(weight, x)
    cos = F.cosine_similarity(y.float().flatten(), ref.flatten(), dim=0)
    assert cos > 0.999


def test_layout_helpers_keep_values_and_layout():
    torch.manual_seed(2)
    a, b = torch.randn(3, 2, 5), torch.randn(3, 4, 5)
    ca, cb = to_channel_major(a), to_channel_major(b)
    assert to_channel_major(ca) is ca
    assert is_channel_major(ca) and not is_channel_major(a)
    cat = cat_channels([ca, cb])
    assert is_channel_major(cat)
    torch.testing.assert_close(cat, torch.cat([a, b], dim=1), rtol=0, atol=0)
    assert cat_channels([a, b]).is_contiguous()
    scale, shift = torch.randn(3, 2, 1), torch.randn(3, 2, 1)
    with torch.no_grad():
        y = scale_shift(ca, scale, shift)
    assert is_channel_major(y)
    torch.testing.assert_close(y, a * scale + shift)


def test_scale_shift_keeps_autograd():
    x = torch.randn(2, 3, 4, requires_grad=True)
    scale = torch.randn(2, 3, 1, requires_grad=True)
    y = scale_shift(x, scale, torch.zeros(2, 3, 1))
    y.sum().backward()
    torch.testing.assert_close(x.grad, scale.expand(2, 3, 4).detach())


def test_inference_layout_only_for_cpu_inference_batches():
    x = torch.randn(2, 3, 4)
    with torch.no_grad():
        assert is_channel_major(inference_layout(x))
        one = x[:1]
        assert inference_layout(one) is one  # batch 1: already both
        with cpu_kernels("stock"):
            assert inference_layout(x) is x
    weight = nn.Parameter(torch.randn(3))
    assert inference_layout(x, weight) is x  # autograd records: training


@pytest.mark.parametrize("layer, stock", [
    (lambda: DilatedConv1d(8, 6, 3, 2), nn.Conv1d.forward),
    (lambda: PairTransposedConv1d(8, 6), nn.ConvTranspose1d.forward),
])
def test_layers_on_channel_major_batches_equal_stock(layer, stock):
    torch.manual_seed(3)
    conv = layer()
    x = to_channel_major(torch.randn(3, 8, 10))
    with torch.no_grad(), cpu_kernels("fast"):
        y = conv(x)
        ref = stock(conv, x.contiguous())
    assert is_channel_major(y)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
def test_fused_pointwise_prelu_residual_equals_the_layers(batch):
    torch.manual_seed(4)
    x, res = torch.randn(batch, 4, 7), torch.randn(batch, 5, 7)
    weight = torch.randn(5, 4, 1)
    prelu = nn.PReLU(init=0.3)
    ref = prelu(F.conv1d(x, weight)) + res
    with torch.no_grad(), cpu_kernels("fast"):
        y = pointwise_conv1d(x, weight, prelu=prelu.weight, residual=res)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    # With autograd on, the stock layers run and the PReLU weight learns.
    y = pointwise_conv1d(x, weight, prelu=prelu.weight, residual=res)
    y.sum().backward()
    assert prelu.weight.grad is not None


def test_temporal_block_fused_equals_stock():
    torch.manual_seed(5)
    block = TemporalBlock(8, 6, dilation=2).eval()
    nn.init.constant_(block.act1.weight, 0.1)
    x = torch.randn(2, 8, 20)
    with torch.no_grad():
        with cpu_kernels("fast"):
            fast = block(x)
        with cpu_kernels("stock"):
            stock = block(x)
    torch.testing.assert_close(fast, stock, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["auto", "fast"])
def test_lobe_batches_equal_stock_kernels(mode):
    """Channel-major stages, fused products: the embeddings of a batch equal
    those of torch's stock kernels (float32 rounding only)."""
    torch.manual_seed(6)
    model = MRRawNet(
        sinc_filters=8, tcn_channels=8, tcn_hidden=6, tcn_repeats=1,
        tcn_blocks=2, channels=8, mra_depths=[1, 1, 1],
        aggregate_channels=12, attention_channels=4, lin_neurons=5,
    ).eval()
    wavs = torch.randn(3, 3200)
    with torch.no_grad():
        with cpu_kernels(mode):
            ours = model(wavs)
        with cpu_kernels("stock"):
            stock = model(wavs)
    torch.testing.assert_close(ours, stock, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sinc_filterbank_as_frame_products_equals_the_convolution(batch,
                                                                  dtype):
    from speechbrain_ext.lobes.sinc import SincFilterbank

    torch.manual_seed(7)
    sinc = SincFilterbank(16, 51, 20).to(dtype)
    x = torch.randn(batch, 1, 2050, dtype=dtype)
    with torch.no_grad():
        ref = F.conv1d(x, sinc.filters(), stride=20)
        with cpu_kernels("fast"):
            y = sinc(x)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(y, ref, rtol=tol, atol=tol)
    # Training: the stock convolution, with gradients to the band edges.
    sinc(x).sum().backward()
    assert sinc.low_hz_.grad is not None


@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_global_layer_norm_in_place_equals_group_norm(offset):
    """The in-place gLN kernel of CPU inference (two-pass variance when the
    mean dominates) gives GroupNorm's output, in the input's memory."""
    from speechbrain_ext.lobes.tcn import GlobalLayerNorm

    torch.manual_seed(8)
    norm = GlobalLayerNorm(6)
    nn.init.normal_(norm.gamma)
    nn.init.normal_(norm.beta)
    x = torch.randn(3, 6, 50) * 2 + offset
    with torch.no_grad():
        ref = norm(x)
        y = x.clone()
        out = norm._in_place(y)
    assert out.data_ptr() == y.data_ptr()
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_global_layer_norm_in_place_with_padding(offset):
    """With a mask, the in-place gLN normalises each utterance over its
    valid frames, as the per-utterance GroupNorm does, and zeroes the
    padding."""
    from speechbrain_ext.lobes.masking import make_mask
    from speechbrain_ext.lobes.tcn import GlobalLayerNorm

    torch.manual_seed(9)
    norm = GlobalLayerNorm(6)
    nn.init.normal_(norm.gamma)
    nn.init.normal_(norm.beta)
    x = torch.randn(3, 6, 40) * 2 + offset
    mask = make_mask(torch.tensor([40, 25, 7]), 40)
    with torch.no_grad():
        ref = norm(x, mask)
        out = norm(x.clone(), mask, inplace=True)
    torch.testing.assert_close(out, ref * mask, rtol=1e-4, atol=1e-4)
    assert bool((out[1, :, 25:] == 0).all())
