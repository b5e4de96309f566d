"""Tests of the training recipe's EER monitoring on a trial list."""

import numpy as np
import soundfile as sf
import torch

from speechbrain_ext.training.trial_eer import trial_eer


class Spectrum(torch.nn.Module):
    """Magnitude spectrum as the embedding; records its mode per call."""

    def __init__(self):
        super().__init__()
        self.modes = []
        self.inputs = []

    def forward(self, wavs, lengths):
        self.modes.append(self.training)
        self.inputs.append(wavs[0].clone())
        return torch.fft.rfft(wavs, n=1600).abs()[:, None, :60]


def _corpus(folder, bad=None):
    rng = np.random.default_rng(0)
    for name, f0 in (("a1", 100), ("a2", 100), ("b1", 300), ("b2", 300)):
        t = np.arange(1600) / 16000
        wav = np.sin(2 * np.pi * f0 * t) + 0.01 * rng.normal(size=1600)
        sf.write(folder / f"{name}.wav", wav, 16000)
    if bad:
        (folder / bad).write_bytes(b"RIFF0000WAVEjunk")
    lines = ["1 a1.wav a2.wav", "0 a1.wav b1.wav", "1 b1.wav b2.wav",
             "0 a2.wav b2.wav"]
    (folder / "trials.txt").write_text("\n".join(lines) + "\n")
    return str(folder / "trials.txt")


def test_separable_speakers_score_zero_eer_and_mode_is_restored(tmp_path):
    trials = _corpus(tmp_path)
    model = Spectrum().train()
    out = trial_eer(model, trials, str(tmp_path))
    assert out["eer"] == 0.0 and 0.0 <= out["min_dcf"] <= 1.0
    assert model.modes == [False] * 4 and model.training


def test_bad_file_leaves_its_trials_out(tmp_path, caplog):
    trials = _corpus(tmp_path, bad="a1.wav")
    out = trial_eer(Spectrum(), trials, str(tmp_path))
    assert out is not None and out["eer"] == 0.0
    assert "a1.wav" in caplog.text


def test_too_few_trials_give_none(tmp_path):
    trials = _corpus(tmp_path, bad="b2.wav")
    (tmp_path / "b1.wav").unlink()
    assert trial_eer(Spectrum(), trials, str(tmp_path)) is None


def test_max_seconds_embeds_the_centre_crop(tmp_path):
    trials = _corpus(tmp_path)
    model = Spectrum()
    trial_eer(model, trials, str(tmp_path), max_seconds=0.05)
    full, _ = sf.read(tmp_path / "a1.wav", dtype="float32")
    assert [len(x) for x in model.inputs] == [800] * 4
    np.testing.assert_array_equal(model.inputs[0].numpy(), full[400:1200])
