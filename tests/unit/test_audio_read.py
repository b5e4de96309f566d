"""Tests of the one audio reader: crops read only their frames, exactly."""

import numpy as np
import pytest
import soundfile as sf

from speechbrain_ext.data.audio_read import read_audio, read_checked_crop


@pytest.fixture
def wav_file(tmp_path):
    data = np.random.default_rng(0).uniform(-0.9, 0.9, 1000).astype("float32")
    path = tmp_path / "utt.flac"
    sf.write(path, data, 16000, subtype="PCM_16")
    full, _ = sf.read(path, dtype="float32")
    return path, full


def test_read_checked_crop_equals_slicing_full_read(wav_file):
    path, full = wav_file
    np.testing.assert_array_equal(read_checked_crop(path, 200), full[400:600])
    np.testing.assert_array_equal(read_checked_crop(path, 999), full[0:999])
    for seed in range(5):
        crop = read_checked_crop(path, 300, rng=np.random.default_rng(seed))
        start = int(np.random.default_rng(seed).integers(0, 700))
        np.testing.assert_array_equal(crop, full[start : start + 300])


def test_read_checked_crop_tiles_short_file(wav_file):
    path, full = wav_file
    out = read_checked_crop(path, 2500, rng=0)
    assert out.shape == (2500,) and out.dtype == np.float32
    np.testing.assert_array_equal(out, np.concatenate([full, full, full[:500]]))
    np.testing.assert_array_equal(read_checked_crop(path, 1000, rng=0), full)


def test_read_checked_crop_reads_only_needed_frames(wav_file, monkeypatch):
    path, full = wav_file
    calls = []
    real_read = sf.SoundFile.read

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    read_checked_crop(path, 100, rng=1)
    assert len(calls) == 1 and calls[0]["frames"] == 100


def test_read_checked_crop_stereo_is_mixed_down(tmp_path):
    data = np.stack([np.full(50, 0.5), np.full(50, -0.25)], axis=1)
    path = tmp_path / "st.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    np.testing.assert_allclose(read_checked_crop(path, 20), np.full(20, 0.125))


def test_read_audio_window_reads_the_frames_asked_for(wav_file):
    path, full = wav_file
    np.testing.assert_array_equal(read_audio(path), full)
    np.testing.assert_array_equal(
        read_audio(path, lambda frames: (10, 5)), full[10:15]
    )
