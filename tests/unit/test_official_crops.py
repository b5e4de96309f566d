"""Test-side and training crops side by side with the official loader.

``DatasetLoader.loadWAV`` and ``train_dataset_loader`` of the official
code (``tests/official_code.py``; skipped when the shared folder is
absent) read the same files as ours:

* test side: the full-length trim (a multiple of 640 samples) and the
  1.04 / 2.04 / 5.04 s centre crops (``eval_frames_for_short`` 100, 200,
  500) on a few hundred random lengths, shorter than the crop, exact
  multiples and longer;
* training: the crop length of every utterance of a batch (a statistical
  comparison over many batches), and a short crop tiled back to 3 s
  sample for sample.
"""

import random

import numpy as np
import pytest
import soundfile as sf
import torch
from official_code import official_module

from speechbrain_ext.augment.pipeline import TrainingPipeline
from speechbrain_ext.data.audio_read import read_checked_crop
from speechbrain_ext.data.crops import TrainingCrops
from speechbrain_ext.scoring.audio_files import read_waveform
from speechbrain_ext.scoring.views import condition_crop, full_length_view

RATE = 16000
FULL = 48000
SHORT_FRAMES = (100, 200, 500)  # eval_frames_for_short: 1.04, 2.04, 5.04 s


@pytest.fixture(scope="module")
def loader():
    return official_module("DatasetLoader")


def _lengths():
    """Random lengths plus the edge cases around every crop length."""
    rng = np.random.default_rng(0)
    lengths = set(rng.integers(640, 120000, 200).tolist())
    for frames in SHORT_FRAMES:
        n = frames * 160 + 640
        lengths |= {n - 1, n, n + 1, n + 640, n // 2, n - 640}
    lengths |= {640 * k for k in range(1, 40, 3)}  # exact multiples
    lengths |= {641, 1279, 1280, 1281}
    return sorted(lengths)


def test_test_side_crops_equal_load_wav(loader, tmp_path):
    rng = np.random.default_rng(1)
    lengths = _lengths()
    assert len(lengths) > 220
    for length in lengths:
        path = tmp_path / f"{length}.wav"
        sf.write(path, rng.uniform(-0.5, 0.5, length), RATE, subtype="FLOAT")
        wav = read_waveform(str(path))
        ref = loader.loadWAV(str(path), 0, evalmode=True)[0]
        np.testing.assert_array_equal(full_length_view(wav), ref, str(length))
        for frames in SHORT_FRAMES:
            ref = loader.loadWAV(str(path), 0, shortmode=frames)[0]
            ours = condition_crop(wav, frames * 160 + 640)
            np.testing.assert_array_equal(ours, ref, f"{length} {frames}")


def _ramp_files(folder, n_files, seconds=4.0):
    """Files holding a strictly increasing ramp: a tiled crop reveals its
    length (the first sample that is lower than the one before)."""
    paths = []
    for i in range(n_files):
        n = int(seconds * RATE) + 997 * i
        path = folder / f"ramp{i}.wav"
        sf.write(path, (np.arange(n) + 1) / (2 * n), RATE, subtype="FLOAT")
        paths.append(path)
    return paths


def _crop_length(tiled):
    """Length of the crop that ``tiled`` repeats (full when no repeat)."""
    drops = np.flatnonzero(np.diff(tiled) < 0)
    return int(drops[0]) + 1 if drops.size else len(tiled)


def _official_dataset(loader, folder, paths):
    listing = folder / "train_list.txt"
    listing.write_text(
        "".join(f"spk{i % 7} {p.name}\n" for i, p in enumerate(paths))
    )
    return loader.train_dataset_loader(
        train_list=str(listing), augment=False, musan_path=str(folder),
        rir_path=str(folder), max_frames=300, train_path=str(folder),
    )


def test_training_crop_lengths_per_utterance_match_official(loader,
                                                            tmp_path):
    """Over 60 batches of 40 the crop lengths have the official
    distribution: drawn per utterance (about half of every batch full, not
    all or nothing), short ones uniform over 1.0, 1.1, ..., 2.9 s.
    Tolerances: the full share within 0.5 +- 0.04 (7 standard errors),
    its spread across batches within [2, 5] utterances (binomial: 3.2;
    one draw per batch: 20), and a two-sample chi-square over the 21
    lengths below its 0.999 quantile (45.3)."""
    paths = _ramp_files(tmp_path, 12)
    dataset = _official_dataset(loader, tmp_path, paths)
    crops = TrainingCrops(3.0, p_short=0.5, sample_rate=RATE,
                          reader=read_checked_crop)
    random.seed(3)  # the official loader draws with `random`
    rng = np.random.default_rng(3)
    official, ours = [], []
    batches, batch = 60, 40
    for b in range(batches):
        indices = [(b * batch + k) % len(paths) for k in range(batch)]
        feats, _ = dataset[indices]
        official.append([_crop_length(row) for row in feats.numpy()])
        ours.append([len(crops(paths[i], rng)) for i in indices])
    lengths = [16000 + 1600 * k for k in range(20)] + [FULL]
    for draws in (official, ours):
        draws = np.array(draws)
        assert set(np.unique(draws)) <= set(lengths)
        full = (draws == FULL).sum(axis=1)
        assert abs(full.mean() / batch - 0.5) < 0.04
        assert 2 <= full.std() <= 5
    counts = np.array(
        [[np.sum(np.array(d) == n) for n in lengths] for d in (official, ours)]
    )
    expected = counts.sum(0, keepdims=True) * counts.sum(1, keepdims=True)
    expected = expected / counts.sum()
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 45.3, counts


@pytest.mark.parametrize("file_samples", [24000, 10000, 23999])
def test_short_crop_is_tiled_back_exactly_as_official(
    loader, tmp_path, monkeypatch, file_samples
):
    """A 1.5 s crop (the whole file, or the file tiled when shorter) tiled
    back to 3.0 s by our pipeline equals the official loader's output."""
    path = tmp_path / "short.wav"
    rng = np.random.default_rng(file_samples)
    sf.write(path, rng.uniform(-0.5, 0.5, file_samples), RATE,
             subtype="FLOAT")
    dataset = _official_dataset(loader, tmp_path, [path])

    class ShortDraw:
        """The official loader's `random`, forced to a 150-frame crop."""

        @staticmethod
        def random():
            return 0.75  # > p: short crop; start 0 for a padded file

        @staticmethod
        def randrange(start, stop, step):
            assert (start, stop, step) == (100, 300, 10)
            return 150

    monkeypatch.setattr(loader, "random", ShortDraw)
    ref = dataset[[0]][0].numpy()[0]

    crops = TrainingCrops(3.0, p_short=1.0, short_seconds=[1.5],
                          sample_rate=RATE, reader=read_checked_crop)
    crop = torch.from_numpy(crops(path, 0))
    assert crop.shape == (24000,)
    batch = torch.zeros(2, FULL)  # padded next to a full crop
    batch[0, :24000] = crop
    out, lengths = TrainingPipeline(full_samples=FULL)(
        batch, torch.tensor([0.5, 1.0])
    )
    np.testing.assert_allclose(out[0].numpy(), ref, rtol=0, atol=1e-7)
    assert torch.equal(lengths, torch.ones(2))
