"""``python -m speechbrain_ext.embed``: folders, lists, formats, bad files,
resuming, crops and the ONNX path, against one-by-one PyTorch embeddings."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import ROOT, TINY_KWARGS

from speechbrain_ext import embed
from speechbrain_ext.lobes.mr_rawnet import MRRawNet
from speechbrain_ext.pretrained import write_pretrained_folder
from speechbrain_ext.scoring import audio_files, batching, model_loading
from speechbrain_ext.scoring.views import condition_crop, full_length_view


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("embed_model") / "pretrained"
    return write_pretrained_folder(
        str(out), TINY_KWARGS, MRRawNet(**TINY_KWARGS).state_dict(),
        torch.randn(2, TINY_KWARGS["lin_neurons"]),
    )


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """Mixed formats, rates and channels, one corrupt and one tiny file."""
    root = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    files = {
        "spk1/a.wav": (16000, 1.3, 1, "PCM_16"),
        "spk1/b.flac": (8000, 0.9, 1, "PCM_16"),
        "spk2/c.wav": (44100, 2.1, 2, "FLOAT"),
        "spk2/d.mp3": (22050, 1.7, 1, None),
        "e.WAV": (48000, 0.5, 2, "PCM_24"),
    }
    for rel, (rate, seconds, channels, subtype) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = 0.1 * rng.standard_normal((int(rate * seconds), channels))
        sf.write(str(path), data, rate, subtype=subtype)
    (root / "spk2" / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    sf.write(str(root / "tiny.flac"), np.zeros(100), 16000)
    (root / "notes.txt").write_text("not audio")
    return root


GOOD = ["e.WAV", "spk1/a.wav", "spk1/b.flac", "spk2/c.wav", "spk2/d.mp3"]


def reference(folder, path, crop=None):
    """One-file PyTorch embedding, as the verification recipe computes it."""
    model, _, _ = model_loading.load_embedding_model(folder)
    wav = audio_files.read_waveform(str(path))
    wav = full_length_view(wav) if crop is None else condition_crop(
        wav, crop
    )
    with torch.no_grad():
        return model(wav[None])[0, 0].numpy()


def read_out(out):
    keys = (out / "keys.txt").read_text().splitlines()
    matrix = np.load(out / "embeddings.npy")
    summary = json.loads((out / "summary.json").read_text())
    return keys, matrix, summary


def test_folder_embeds_every_file_and_names_the_bad_ones(folder, audio,
                                                          tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "speechbrain_ext.embed", folder,
           str(audio), str(out), "--noprogressbar", "--batch_size=3"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    keys, matrix, summary = read_out(out)
    assert keys == GOOD
    assert matrix.shape == (5, TINY_KWARGS["lin_neurons"])
    assert matrix.dtype == np.float32
    assert summary["n_files"] == 7 and summary["n_skipped"] == 2
    assert set(summary["skipped"]) == {"spk2/broken.wav", "tiny.flac"}
    assert "shorter than 320" in summary["skipped"]["tiny.flac"]
    assert "skipped spk2/broken.wav" in done.stderr
    assert "embedded 5 of 7 files (2 skipped)" in done.stdout
    # Length-sorted padded batches equal one-by-one embeddings.
    for key, row in zip(keys, matrix, strict=True):
        ref = reference(folder, audio / key)
        assert np.abs(row - ref).max() < 1e-4 * max(1, np.abs(ref).max())


def test_list_file_crop_and_resume(folder, audio, tmp_path, monkeypatch):
    listing = tmp_path / "list.txt"
    listing.write_text(
        "# my files\n"
        + "".join(f"{os.path.relpath(audio / k, tmp_path)}\n" for k in GOOD)
        + f"{audio / 'spk2' / 'missing.wav'}\n"
    )
    out = tmp_path / "out"
    argv = [folder, str(listing), str(out), "--noprogressbar",
            "--batch_size=1", "--crop=0.5", "--num_workers=0"]

    # Interrupt the first run while the fourth file is read.
    real_read, calls = audio_files.read_waveform, []

    def flaky(path, rate=16000):
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_read(path, rate)

    monkeypatch.setattr(audio_files, "read_waveform", flaky)
    with pytest.raises(KeyboardInterrupt):
        embed.main(argv)
    monkeypatch.setattr(audio_files, "read_waveform", real_read)
    cache = out / "cache"
    shards = [p for p in cache.rglob("shard-*.npz")]
    assert shards, "the embeddings computed before the interrupt were lost"

    forward = []
    original = batching.BatchedEmbedder._forward

    def counting(self, wavs):
        forward.append(len(wavs))
        return original(self, wavs)

    monkeypatch.setattr(batching.BatchedEmbedder, "_forward", counting)
    assert embed.main(argv) == 0
    assert sum(forward) == 2  # only the files not embedded before
    keys, matrix, summary = read_out(out)
    assert keys == [os.path.relpath(audio / k, tmp_path) for k in GOOD]
    assert summary["view"] == "crop8000"
    assert list(summary["skipped"].values()) == ["file not found"]
    for key, row in zip(GOOD, matrix, strict=True):
        ref = reference(folder, audio / key, crop=8000)
        assert np.abs(row - ref).max() < 1e-4 * max(1, np.abs(ref).max())


def test_onnx_model_gives_the_same_embeddings(tiny_onnx, audio, tmp_path):
    model_folder, onnx_path, _ = tiny_onnx
    out_pt, out_onnx = tmp_path / "pt", tmp_path / "onnx"
    common = ["--noprogressbar", "--batch_size=4"]
    assert embed.main([str(model_folder), str(audio), str(out_pt),
                       *common]) == 0
    assert embed.main([str(model_folder), str(audio), str(out_onnx),
                       "--onnx", str(onnx_path), "--threads=2", *common]) == 0
    keys_pt, pt, _ = read_out(out_pt)
    keys_onnx, onx, summary = read_out(out_onnx)
    assert keys_pt == keys_onnx == GOOD
    assert summary["onnx"] == str(onnx_path)
    cos = (pt * onx).sum(1) / np.linalg.norm(pt, axis=1) / np.linalg.norm(
        onx, axis=1)
    assert cos.min() >= 0.9999
    # The two back ends never share cache entries.
    assert {p.name for p in (out_pt / "cache").iterdir()} != {
        p.name for p in (out_onnx / "cache").iterdir()
    }
