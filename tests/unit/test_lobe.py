"""Behaviour of the MR-RawNet lobe on small configurations."""

import pytest
import torch

from speechbrain_ext.lobes.mr_rawnet import MRRawNet


def _randomise_norms(model, seed=0):
    """Gives every BatchNorm non-trivial statistics, as after training."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
            module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=gen) * 0.2)
    return model


@pytest.fixture
def model(tiny_kwargs):
    torch.manual_seed(0)
    return _randomise_norms(MRRawNet(**tiny_kwargs)).double().eval()


def test_output_shape_and_default_lengths(model):
    wavs = torch.randn(3, 3200, dtype=torch.float64)
    out = model(wavs)
    assert out.shape == (3, 1, 5)
    assert torch.equal(out, model(wavs, torch.ones(3, dtype=torch.float64)))


def test_padding_does_not_change_embeddings(model):
    torch.manual_seed(1)
    lengths = [6400, 2240, 960, 4800 + 123]
    singles = [torch.randn(1, n, dtype=torch.float64) for n in lengths]
    total = 8000
    batch = torch.zeros(len(lengths), total, dtype=torch.float64)
    for i, wav in enumerate(singles):
        batch[i, : wav.shape[1]] = wav
    # Garbage in the padding must not matter either.
    batch[1, 2240:] = 5.0
    rel = torch.tensor(lengths, dtype=torch.float64) / total
    with torch.no_grad():
        batched = model(batch, rel)[:, 0]
        for i, wav in enumerate(singles):
            alone = model(wav)[0, 0]
            assert torch.allclose(batched[i], alone, atol=1e-9, rtol=0), i


def test_every_resolution_is_masked(model):
    """Each tap of a padded utterance equals its unpadded value."""
    torch.manual_seed(2)
    wav = torch.randn(1, 1920, dtype=torch.float64)
    padded = torch.cat([wav, torch.randn(1, 3200, dtype=torch.float64)], 1)
    batch = torch.cat([padded, torch.randn(1, 5120, dtype=torch.float64)])
    alone, together = {}, {}
    with torch.no_grad():
        model.embed(wav, None, alone)
        model.embed(batch, torch.tensor([1920 / 5120, 1.0]), together)
    for name in ["mrfe", "stage0", "stage1", "stage2"]:
        frames = alone[name].shape[-1]
        assert frames == 12
        assert torch.allclose(
            together[name][0, :, :frames], alone[name][0], atol=1e-9
        ), name
    assert torch.allclose(together["pooled"][0], alone["pooled"][0])


def test_input_is_trimmed_to_multiple_of_320(model):
    wav = torch.randn(1, 1000, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(model(wav), model(wav[:, :960]))


def test_invalid_inputs_raise_clear_errors(model):
    with pytest.raises(ValueError, match="shape"):
        model(torch.randn(2, 1, 3200))
    bad = torch.randn(2, 3200, dtype=torch.float64)
    bad[1, 5] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or Inf.*\[1\]"):
        model(bad)
    good = torch.randn(2, 3200, dtype=torch.float64)
    for lengths in ([0.0, 1.0], [1.0, 1.5], [float("nan"), 1.0]):
        with pytest.raises(ValueError, match=r"\(0, 1\]"):
            model(good, torch.tensor(lengths))
    with pytest.raises(ValueError, match=r"shape \[2\]"):
        model(good, torch.ones(3))
    with pytest.raises(ValueError, match="at least 320 samples"):
        model(torch.randn(1, 319))
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        model(good, torch.tensor([1.0, 0.05]))


def test_training_gradients_reach_every_trainable_parameter(tiny_kwargs):
    model = MRRawNet(**tiny_kwargs).train()
    out = model(torch.randn(2, 3200))
    out.square().sum().backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None, name
        else:
            assert param.grad is None, name
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"input_norm.weight", "input_norm.bias"}


def test_sinc_front_end_stays_float32_under_autocast(tiny_kwargs):
    model = MRRawNet(**tiny_kwargs).eval()
    seen = []
    branch = model.frontend.branches[0]
    original = branch.spectral

    def spy(wav, mask):
        out = original(wav, mask)
        seen.append(out.dtype)
        return out

    branch.spectral = spy
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 3200))
    assert seen == [torch.float32]
    assert torch.isfinite(out).all()


def test_constructor_rejects_wrong_stage_count(tiny_kwargs):
    tiny_kwargs["mra_depths"] = [1, 1]
    with pytest.raises(ValueError, match="3 stages"):
        MRRawNet(**tiny_kwargs)


def test_masked_global_layer_norm_paths_agree():
    from speechbrain_ext.lobes.masking import make_mask
    from speechbrain_ext.lobes.tcn import GlobalLayerNorm

    torch.manual_seed(3)
    norm = GlobalLayerNorm(4).double()
    norm.gamma.data.uniform_(0.5, 1.5)
    norm.beta.data.normal_()
    x = torch.randn(3, 4, 10, dtype=torch.float64) * 3 + 1
    mask = make_mask(torch.tensor([10, 6, 2]), 10, torch.float64)
    fast = norm._per_utterance(x, mask)
    vectorised = norm._masked(x, mask)
    assert torch.allclose(fast * mask, vectorised * mask, atol=1e-12)
    # Each utterance alone, unpadded, gives the same valid frames.
    alone = norm(x[1:2, :, :6])
    assert torch.allclose(fast[1, :, :6], alone[0], atol=1e-12)
    assert torch.equal(fast[1, :, 6:], torch.zeros(4, 4, dtype=x.dtype))


def test_mixed_lengths_are_embedded_in_groups(model, monkeypatch):
    """In eval mode on the CPU a mixed-length batch is split into groups of
    similar length; the embeddings equal the one padded (masked) batch."""
    from speechbrain_ext.lobes.masking import length_groups

    torch.manual_seed(4)
    counts = torch.tensor([16000, 960, 15680, 3200])
    assert len(length_groups(counts.tolist())) > 1
    batch = torch.randn(4, 16000, dtype=torch.float64)
    seen = []
    original = model._embed_counts

    def spy(wavs, n, taps=None):
        seen.append(n.tolist())
        return original(wavs, n, taps)

    monkeypatch.setattr(model, "_embed_counts", spy)
    with torch.no_grad():
        grouped = model(batch, counts / 16000.0)[:, 0]
        assert sorted(sum(seen, [])) == sorted(counts.tolist())
        assert len(seen) > 1
        seen.clear()
        whole = original(batch, counts)  # one masked batch
    assert torch.allclose(grouped, whole, atol=1e-9, rtol=0)
    model.train()
    seen.clear()
    model(batch, counts / 16000.0)  # training: one batch (BN statistics)
    assert len(seen) == 1


@pytest.mark.parametrize("mode", ["auto", "stock", "fast"])
def test_handed_over_global_layer_norm_equals_group_norm(mode):
    """``inplace=True`` (whichever kernel is timed faster) normalises like
    the one-group GroupNorm, and the first (timing) call leaves nothing
    behind that changes later calls."""
    from speechbrain_ext.lobes import fast_conv
    from speechbrain_ext.lobes.tcn import GlobalLayerNorm

    fast_conv.clear_kernel_choices()
    torch.manual_seed(4)
    norm = GlobalLayerNorm(6).double()
    norm.gamma.data.uniform_(0.5, 1.5)
    norm.beta.data.normal_()
    x = torch.randn(2, 6, 50, dtype=torch.float64) * 3 + 1
    expected = torch.nn.functional.group_norm(
        x, 1, norm.gamma.view(-1), norm.beta.view(-1), norm.eps
    )
    with torch.no_grad(), fast_conv.cpu_kernels(mode):
        first = norm(x.clone(), inplace=True)
        later = norm(x.clone(), inplace=True)
    torch.testing.assert_close(first, expected, rtol=1e-10, atol=1e-10)
    assert torch.equal(first, later)
    fast_conv.clear_kernel_choices()
