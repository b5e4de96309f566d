"""ONNX export: onnxruntime reproduces the PyTorch lobe, padding included.

The tiny model is exported once per session (``tiny_onnx`` in conftest);
one full-size export of the converted official-format checkpoint checks the
shared parity cases. Everything skips when onnx / onnxscript /
onnxruntime are not installed (``requirements-deploy.txt``).
"""

import os

import numpy as np
import pytest
import torch

from speechbrain_ext.scoring.model_loading import load_embedding_model

pytest.importorskip("onnxruntime")

from speechbrain_ext.export_onnx import (  # noqa: E402
    LengthMaskedEmbedding,
    OnnxExportError,
    export_model,
    export_onnx,
    graph_friendly_copy,
)
from speechbrain_ext.onnx_runtime import OnnxEmbeddingModel  # noqa: E402

MIN_COSINE = 0.9999


def cosines(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / norms


def padded(wavs):
    """Zero-padded batch and float64 relative lengths of 1-D waveforms."""
    longest = max(len(w) for w in wavs)
    batch = torch.zeros(len(wavs), longest)
    for i, w in enumerate(wavs):
        batch[i, : len(w)] = w
    rel = torch.tensor([len(w) / longest for w in wavs], dtype=torch.float64)
    return batch, rel


def alone(model, wavs):
    """PyTorch float32 embeddings of each utterance on its own."""
    with torch.no_grad():
        return np.concatenate([model.embed(w[None]).numpy() for w in wavs])


@pytest.fixture(scope="module")
def tiny(tiny_onnx):
    folder, path, report = tiny_onnx
    model, _, _ = load_embedding_model(str(folder))
    return model, OnnxEmbeddingModel(str(path), threads=2), report


def test_export_report_and_graph_interface(tiny_onnx, tiny):
    _, path, report = tiny_onnx
    assert report["padded_min_cosine"] >= MIN_COSINE
    assert report["single_cosine"] >= MIN_COSINE
    runner = tiny[1]
    inputs = {i.name: i for i in runner.session.get_inputs()}
    assert inputs["wavs"].type == "tensor(float)"
    assert inputs["wavs"].shape == ["batch", "time"]
    assert inputs["lengths"].shape == ["batch"]
    out = runner.session.get_outputs()[0]
    assert out.name == "embeddings" and out.shape[1] == 5
    assert runner.metadata["sample_rate"] == "16000"
    assert len(runner.metadata["checkpoint_state_sha256"]) == 64


def test_padded_batch_of_16_equals_each_utterance_alone(tiny):
    model, runner, _ = tiny
    gen = torch.Generator().manual_seed(21)
    # 16 lengths never used at export, odd sample counts, 0.02 s to 4.4 s.
    counts = [320, 977, 4801, 16001, 70403, 2222, 12345, 33333,
              640, 8111, 29999, 51234, 1500, 23456, 6400, 44100]
    wavs = [0.1 * torch.randn(n, generator=gen) for n in counts]
    batch, rel = padded(wavs)
    got = runner(batch, rel)[:, 0].numpy()
    ref = alone(model, wavs)
    assert cosines(got, ref).min() >= MIN_COSINE
    assert np.abs(got - ref).max() < 1e-3 * np.abs(ref).max()
    # The same utterances padded in another batch give the same rows.
    sub, sub_rel = padded(wavs[3:6])
    again = runner(sub, sub_rel)[:, 0].numpy()
    assert np.abs(again - got[3:6]).max() < 1e-4 * np.abs(ref).max()


def test_batch_of_one_at_unseen_lengths(tiny):
    model, runner, _ = tiny
    gen = torch.Generator().manual_seed(5)
    for n in (321, 7777, 48000, 160000 + 17):
        wav = 0.1 * torch.randn(1, n, generator=gen)
        got = runner(wav)[:, 0].numpy()
        with torch.no_grad():
            ref = model(wav)[:, 0].numpy()
        assert cosines(got, ref)[0] >= MIN_COSINE, n


def test_runner_checks_input_like_the_lobe(tiny):
    _, runner, _ = tiny
    with pytest.raises(ValueError, match="NaN or Inf"):
        runner(torch.full((1, 1000), float("nan")))
    with pytest.raises(ValueError, match="at least 320 samples"):
        runner(torch.zeros(2, 1000), torch.tensor([1.0, 0.2]))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        runner(torch.zeros(1, 1000), torch.tensor([1.5]))


class _LengthBranching(torch.nn.Module):
    """A lobe-like module with a branch on the values of the lengths."""

    def __init__(self, lobe):
        super().__init__()
        self.lobe = lobe

    def _embed_trimmed(self, wavs, mask, taps):
        if mask.sum() > 20000:  # data-dependent: cannot be traced
            return self.lobe._embed_trimmed(wavs, mask, taps)
        return self.lobe._embed_trimmed(wavs * 2, mask, taps)


def test_length_dependent_branch_is_refused(tiny, tmp_path):
    model, _, _ = tiny
    wrapped = _LengthBranching(model)
    out = tmp_path / "refused.onnx"
    with pytest.raises(OnnxExportError, match="depends on the lengths"):
        export_model(wrapped, str(out))
    assert not out.exists()


def test_graph_friendly_copy_leaves_the_model_alone(tiny):
    model, _, _ = tiny
    before = [type(m) for m in model.modules()]
    copy = graph_friendly_copy(model)
    assert [type(m) for m in model.modules()] == before
    assert not any(
        type(m).__module__.startswith("speechbrain_ext.lobes.fast_conv")
        for m in copy.modules()
    )
    wavs = [torch.randn(3000), torch.randn(1700)]
    batch, rel = padded(wavs)
    with torch.no_grad():
        got = LengthMaskedEmbedding(copy)(batch, rel).numpy()
    assert cosines(got, alone(model, wavs)).min() >= MIN_COSINE


@pytest.mark.skipif(
    os.environ.get("MR_RAWNET_LONG_TESTS") != "1",
    reason="a full-size export takes many minutes on a 2-core CPU: set "
    "MR_RAWNET_LONG_TESTS=1",
)
def test_full_size_export_matches_the_parity_cases(
    converted, official_fixture, tmp_path
):
    """One full-size export (slow: minutes on a CPU)."""
    data = np.load(official_fixture / "parity_cases.npz")
    names = [k[len("wav__"):] for k in data.files if k.startswith("wav__")]
    path = tmp_path / "mr_rawnet.onnx"
    report = export_onnx(str(converted), str(path))
    assert report["padded_min_cosine"] >= MIN_COSINE
    model, _, _ = load_embedding_model(str(converted))
    runner = OnnxEmbeddingModel(str(path), threads=2)
    wavs = [torch.from_numpy(data[f"wav__{n}"]).float() for n in names]
    ref = alone(model, wavs)
    single = np.concatenate([runner(w[None])[:, 0].numpy() for w in wavs])
    assert cosines(single, ref).min() >= MIN_COSINE
    batch, rel = padded(wavs)
    together = runner(batch, rel)[:, 0].numpy()
    assert cosines(together, ref).min() >= MIN_COSINE
    official = np.stack([data[f"emb_fp64__{n}"] for n in names])
    assert cosines(together, official).min() >= 0.9995
