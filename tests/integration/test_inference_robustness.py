"""Robustness of the SpeechBrain inference API to awkward audio.

``EncoderClassifier.encode_batch`` and ``SpeakerRecognition.verify_files``
on a pretrained folder either handle each input correctly (a finite
embedding of the right shape) or raise an error that names the problem:
empty, too short, silent, clipped, very long and NaN audio; 8 kHz,
44.1 kHz and stereo files; FLAC and MP3 files; missing paths.

Most cases use a tiny model for speed; a few run on the converted
full-size model (they skip when the shared fixture is absent). The
10-minute file on the full-size model takes minutes on two CPU cores, so
it only runs with ``MR_RAWNET_LONG_TESTS=1``.
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from helpers import ROOT, TINY_KWARGS

from speechbrain_ext.lobes.mr_rawnet import MRRawNet
from speechbrain_ext.pretrained import local_audio, write_pretrained_folder

RATE = 16000
EMB = TINY_KWARGS["lin_neurons"]


def _recognizer(folder, savedir):
    from speechbrain.inference.speaker import SpeakerRecognition

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        return SpeakerRecognition.from_hparams(
            source=str(folder), savedir=str(savedir)
        )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny pretrained folder loaded with ``SpeakerRecognition``."""
    out = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    write_pretrained_folder(
        str(out / "pretrained"), TINY_KWARGS,
        MRRawNet(**TINY_KWARGS).state_dict(),
        torch.randn(3, EMB), ["a", "b", "c"],
    )
    return _recognizer(out / "pretrained", out / "cache")


@pytest.fixture(scope="module")
def full(converted, tmp_path_factory):
    """The converted full-size model loaded with ``SpeakerRecognition``."""
    return _recognizer(converted, tmp_path_factory.mktemp("full_cache"))


def _noise(n, seed=0, channels=None):
    rng = np.random.default_rng(seed)
    shape = (n,) if channels is None else (n, channels)
    return (0.1 * rng.standard_normal(shape)).astype(np.float32)


def _write(path, data, rate=RATE, **kwargs):
    sf.write(str(path), data, rate, **kwargs)
    return str(path)


def _check_embedding(emb, dim):
    assert emb.shape == (1, 1, dim)
    assert bool(torch.isfinite(emb).all())


def _check_verify(rec, path_x, path_y):
    """verify_files gives a finite score that matches encode_batch."""
    score, decision = rec.verify_files(path_x, path_y)
    assert score.shape == (1,) and bool(torch.isfinite(score).all())
    assert bool(decision) == (float(score) > 0.25)
    ex = rec.encode_batch(rec.load_audio(path_x)[None])[0, 0]
    ey = rec.encode_batch(rec.load_audio(path_y)[None])[0, 0]
    expected = torch.nn.functional.cosine_similarity(ex, ey, dim=0)
    assert float(score) == pytest.approx(float(expected), abs=1e-4)
    return float(score)


@pytest.fixture(scope="module")
def ref_wav(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("ref") / "ref.wav", _noise(RATE))


# Empty and too-short audio -----------------------------------------------


def test_empty_waveform_is_refused(tiny):
    for wavs in (torch.zeros(0), torch.zeros(1, 0)):
        with pytest.raises(ValueError, match=r"empty waveforms \(0 samples"):
            tiny.encode_batch(wavs)


def test_empty_batch_is_refused(tiny):
    # A batch of no waveforms (e.g. an empty list stacked by a caller).
    for wavs in (torch.zeros(0, RATE), torch.zeros(0, 0)):
        with pytest.raises(ValueError, match="empty batch"):
            tiny.encode_batch(wavs)
    with pytest.raises(ValueError, match="empty batch"):
        tiny.encode_batch(torch.zeros(0, RATE), torch.zeros(0))


@pytest.mark.parametrize("rate", [16000, 8000, 44100])
def test_empty_file_is_refused(tiny, ref_wav, tmp_path, rate):
    # At other rates SpeechBrain's resampler would fail with an unrelated
    # reshape error; the folder's audio normaliser names the problem.
    path = _write(tmp_path / "empty.wav", np.zeros((0, 2), np.float32), rate)
    with pytest.raises(ValueError, match=rf"empty \(0 samples at {rate} Hz"):
        tiny.verify_files(ref_wav, path)


def test_too_short_audio_is_refused(tiny, ref_wav, tmp_path):
    with pytest.raises(ValueError, match="at least 320 samples"):
        tiny.encode_batch(torch.randn(1, 319))
    path = _write(tmp_path / "short.wav", _noise(300))
    with pytest.raises(ValueError, match=r"at least 320 samples.*rows \[0\]"):
        tiny.verify_files(ref_wav, path)
    # 320 samples (20 ms) is the shortest input accepted.
    _check_embedding(tiny.encode_batch(torch.randn(1, 320)), EMB)
    # An 8 kHz file of 160 samples becomes 320 samples at 16 kHz.
    path = _write(tmp_path / "short8k.wav", _noise(160), 8000)
    _check_verify(tiny, ref_wav, path)


# Silent, clipped and NaN audio --------------------------------------------


def test_silent_audio_gives_finite_embedding(tiny, ref_wav, tmp_path):
    _check_embedding(tiny.encode_batch(torch.zeros(1, RATE)), EMB)
    path = _write(tmp_path / "silent.wav", np.zeros(RATE, np.float32))
    _check_verify(tiny, ref_wav, path)
    # A silent utterance in a padded batch leaves its neighbour unchanged.
    speech = torch.from_numpy(_noise(2 * RATE, seed=1))
    batch = torch.stack([speech, torch.zeros(2 * RATE)])
    both = tiny.encode_batch(batch, torch.tensor([1.0, 0.5]))
    assert bool(torch.isfinite(both).all())
    alone = tiny.encode_batch(speech[None])
    assert torch.allclose(both[0], alone[0], atol=1e-5)


def _square(n, rate=RATE, freq=220.0, gain=4.0):
    t = np.arange(n) / rate
    return np.clip(gain * np.sin(2 * np.pi * freq * t), -1.0, 1.0)


def test_clipped_audio_gives_finite_embedding(tiny, ref_wav, tmp_path):
    clipped = torch.from_numpy(_square(RATE)).float()[None]
    assert float(clipped.abs().max()) == 1.0
    _check_embedding(tiny.encode_batch(clipped), EMB)
    # Float files may hold samples beyond full scale.
    _check_embedding(tiny.encode_batch(3.0 * clipped), EMB)
    pcm = _write(tmp_path / "clip16.wav", _square(RATE), subtype="PCM_16")
    _check_verify(tiny, ref_wav, pcm)
    over = _write(
        tmp_path / "over.wav", 3.0 * _square(RATE), subtype="FLOAT"
    )
    _check_verify(tiny, ref_wav, over)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_and_inf_audio_are_refused(tiny, ref_wav, tmp_path, value):
    wav = torch.randn(2, RATE)
    wav[1, 100] = value
    with pytest.raises(ValueError, match=r"NaN or Inf values \(batch rows"):
        tiny.encode_batch(wav)
    data = _noise(RATE)
    data[100] = value
    # Only float files can hold NaN/Inf.
    path = _write(tmp_path / "nan.wav", data, subtype="FLOAT")
    with pytest.raises(ValueError, match="NaN or Inf samples"):
        tiny.verify_files(ref_wav, path)
    # Also after resampling (checked before it, so it names the file's
    # problem rather than the model's input).
    path = _write(tmp_path / "nan8k.wav", data, 8000, subtype="FLOAT")
    with pytest.raises(ValueError, match="NaN or Inf samples"):
        tiny.verify_files(path, ref_wav)


# Rates, channels and formats -------------------------------------------


@pytest.mark.parametrize("rate", [8000, 44100])
def test_other_rates_and_stereo_are_resampled_and_mixed(tiny, ref_wav,
                                                        tmp_path, rate):
    stereo = _noise(rate, seed=2, channels=2)  # 1 s, different channels
    path = _write(tmp_path / f"s{rate}.wav", stereo, rate)
    loaded = tiny.load_audio(path)
    assert loaded.dim() == 1
    by_hand = torchaudio.functional.resample(
        torch.from_numpy(stereo).mean(dim=1), rate, RATE
    )
    assert abs(len(loaded) - RATE) <= 1
    n = min(len(loaded), len(by_hand))
    # PCM_16 quantisation of each channel, then mixing and resampling.
    assert torch.allclose(loaded[:n], by_hand[:n], atol=2e-4)
    _check_verify(tiny, ref_wav, path)


def test_flac_file_is_read(tiny, ref_wav, tmp_path):
    data = _noise(RATE, seed=3)
    path = _write(tmp_path / "a.flac", data, format="FLAC")
    loaded = tiny.load_audio(path)
    assert torch.allclose(loaded, torch.from_numpy(data), atol=1 / 32768)
    _check_verify(tiny, ref_wav, path)


def _mp3_writable():
    return "MP3" in sf.available_formats()


@pytest.mark.skipif(not _mp3_writable(), reason="libsndfile without MP3")
def test_mp3_file_is_read(tiny, ref_wav, tmp_path):
    # A tone survives lossy coding well enough to compare waveforms.
    t = np.arange(RATE) / RATE
    data = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = _write(tmp_path / "a.mp3", data, format="MP3")
    loaded = tiny.load_audio(path)
    assert abs(len(loaded) - RATE) <= 1152  # at most one MP3 frame
    assert bool(torch.isfinite(loaded).all())
    assert float(loaded.abs().max()) == pytest.approx(0.5, abs=0.1)
    _check_verify(tiny, ref_wav, path)


# Very long audio -------------------------------------------------------


def test_ten_minute_file_on_tiny_model(tiny, ref_wav, tmp_path):
    n = 600 * RATE
    long = _write(tmp_path / "long.flac", _noise(n, seed=4), format="FLAC")
    score, _ = tiny.verify_files(ref_wav, long)
    assert bool(torch.isfinite(score).all())
    # The same score from the file's samples zero-padded in a batch (the
    # model is length-aware, so padding changes nothing).
    loaded = tiny.load_audio(long)
    assert loaded.shape == (n,)
    padded = torch.cat([loaded, torch.zeros(3200)])[None]
    emb = tiny.encode_batch(padded, torch.tensor([n / (n + 3200)]))
    _check_embedding(emb, EMB)
    ref = tiny.encode_batch(tiny.load_audio(ref_wav)[None])
    expected = torch.nn.functional.cosine_similarity(emb, ref, dim=-1)
    assert float(score) == pytest.approx(float(expected), abs=1e-4)


# Missing paths ----------------------------------------------------------


def test_missing_file_errors_name_the_path(tiny, ref_wav, tmp_path):
    missing = str(tmp_path / "missing.wav")
    # In an existing folder (SpeechBrain alone: a RuntimeError from its
    # decoder), on either side, also as a pathlib.Path or relative path.
    for args in ((ref_wav, missing), (missing, ref_wav)):
        with pytest.raises(FileNotFoundError) as err:
            tiny.verify_files(*args)
        assert str(err.value) == f"no audio file at {missing}"
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        tiny.verify_files(ref_wav, tmp_path / "missing.wav")
    relative = os.path.relpath(missing)
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        tiny.verify_files(ref_wav, relative)
    # An absolute path in a missing folder (SpeechBrain alone: an invalid
    # Hugging Face Hub ID).
    nodir = str(tmp_path / "nodir" / "missing.wav")
    with pytest.raises(FileNotFoundError, match=re.escape(nodir)):
        tiny.verify_files(ref_wav, nodir)
    # Other models (another audio normaliser) are left to SpeechBrain.
    from speechbrain.dataio.preprocess import AudioNormalizer

    checked = tiny.audio_normalizer
    try:
        tiny.audio_normalizer = AudioNormalizer(RATE)
        with pytest.raises(RuntimeError, match="missing.wav"):
            tiny.verify_files(ref_wav, missing)
    finally:
        tiny.audio_normalizer = checked
    # local_audio() gives a plain FileNotFoundError and never a lookup.
    for path in (missing, str(tmp_path / "nodir" / "missing.wav")):
        with pytest.raises(FileNotFoundError, match="missing.wav"):
            tiny.verify_files(local_audio(ref_wav), local_audio(path))
    _check_verify(tiny, local_audio(ref_wav), local_audio(ref_wav))


# Converted full-size model ---------------------------------------------


def test_converted_model_edge_cases(full, ref_wav, tmp_path):
    dim = 256
    _check_embedding(full.encode_batch(torch.zeros(1, RATE)), dim)
    clipped = torch.from_numpy(_square(RATE)).float()[None]
    _check_embedding(full.encode_batch(clipped), dim)
    with pytest.raises(ValueError, match="empty"):
        full.encode_batch(torch.zeros(1, 0))
    with pytest.raises(ValueError, match="at least 320 samples"):
        full.encode_batch(torch.randn(1, 319))
    with pytest.raises(ValueError, match="NaN or Inf"):
        full.encode_batch(torch.full((1, RATE), float("nan")))
    path = _write(tmp_path / "silent.wav", np.zeros(RATE, np.float32))
    _check_verify(full, ref_wav, path)
    path = _write(tmp_path / "empty.wav", np.zeros(0, np.float32), 8000)
    with pytest.raises(ValueError, match="empty"):
        full.verify_files(ref_wav, path)


def test_converted_model_reads_resampled_stereo_mp3_and_flac(full, ref_wav,
                                                             tmp_path):
    stereo = _noise(44100, seed=5, channels=2)
    flac = _write(tmp_path / "a.flac", stereo, 44100, format="FLAC")
    _check_verify(full, ref_wav, flac)
    if _mp3_writable():
        mp3 = _write(tmp_path / "a.mp3", stereo, 44100, format="MP3")
        _check_verify(full, ref_wav, mp3)


_LONG_SCRIPT = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np, soundfile as sf, torch
    from speechbrain.inference.speaker import SpeakerRecognition
    torch.set_num_threads(2)
    folder, cache, ref, path = sys.argv[1:5]
    rec = SpeakerRecognition.from_hparams(source=folder, savedir=cache)
    rec.verify_files(ref, ref)  # warm-up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    score, _ = rec.verify_files(ref, path)
    print(json.dumps({
        "seconds": time.perf_counter() - start,
        "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "loaded_gb": before / 1e6,
        "score": float(score),
    }))
""")


@pytest.mark.skipif(
    os.environ.get("MR_RAWNET_LONG_TESTS") != "1",
    reason="several minutes on CPU: set MR_RAWNET_LONG_TESTS=1",
)
def test_ten_minute_file_on_converted_model(converted, ref_wav, tmp_path):
    path = _write(
        tmp_path / "long.flac", _noise(600 * RATE, seed=6), format="FLAC"
    )
    # In a fresh process, so that the peak memory is this file's.
    out = subprocess.run(
        [sys.executable, "-c", _LONG_SCRIPT, str(converted),
         str(tmp_path / "cache"), ref_wav, path],
        capture_output=True, text=True, timeout=1200, check=True,
        cwd=str(ROOT),
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(result)
    assert np.isfinite(result["score"])
    # Measured: about 2.8 GB peak RSS (0.9 GB once loaded) and 50-130 s
    # on 2 busy CPU cores.
    assert result["peak_gb"] < 6.0
    assert result["seconds"] < 900
