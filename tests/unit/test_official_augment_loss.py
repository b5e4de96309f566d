"""Augmentation, speed perturbation and loss side by side with the
official code (``tests/official_code.py``; skipped without the shared
folder).

* ``AugmentWAV.additive_noise`` (noise, music, babble, babble then music)
  and ``AugmentWAV.reverberate``: the official draws (files, counts, SNRs,
  RIR) are recorded, and ours is given the same clips and SNRs;
* the in-model speed perturbation of the official network (0.9 and 1.1);
* ``loss/aamsoftmax.py`` in float64.
"""

import random

import numpy as np
import pytest
import soundfile as sf
import torch
from official_code import official_module
from speechbrain.lobes.models.ECAPA_TDNN import Classifier

from speechbrain_ext.augment.official import OfficialAugmentation
from speechbrain_ext.augment.speed import SpeedPerturbation
from speechbrain_ext.training.losses import AAMSoftmaxLoss

RATE = 16000
CROP = 24000  # a 1.5 s crop (150 frames)


class RecordingRandom:
    """Python's `random` for the official module, recording its draws."""

    def __init__(self, seed):
        self._rng = random.Random(seed)
        self.sampled, self.snrs, self.chosen = [], [], []

    def random(self):
        return self._rng.random()

    def randint(self, a, b):
        return self._rng.randint(a, b)

    def sample(self, population, k):
        out = self._rng.sample(population, k)
        self.sampled.append(list(out))
        return out

    def uniform(self, a, b):
        value = self._rng.uniform(a, b)
        self.snrs.append(value)
        return value

    def choice(self, seq):
        out = self._rng.choice(seq)
        self.chosen.append(out)
        return out


class GivenClips:
    """Stands in for a ClipBank: hands out the given clips in order."""

    def __init__(self, clips):
        self.clips = list(clips)

    def take(self, n):
        out, self.clips = self.clips[:n], self.clips[n:]
        assert len(out) == n
        return out


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """MUSAN-like noise files (all exactly CROP samples long, or shorter:
    the official loader then wraps them) and RIRs, in the official
    layouts ``musan/<cat>/*/*/*.wav`` and ``rirs/*/*/*.wav``."""
    root = tmp_path_factory.mktemp("sets")
    rng = np.random.default_rng(0)
    levels = {"noise": 0.05, "music": 0.2, "speech": 0.1}
    for cat, level in levels.items():
        folder = root / "musan" / cat / "synthetic" / "part"
        folder.mkdir(parents=True)
        for i in range(9):
            n = CROP if i % 3 else CROP - 7000 - i
            audio = level * (0.2 + rng.random()) * rng.standard_normal(n)
            if i == 4:
                audio *= 1e-3  # a quiet file: the power floor matters
            sf.write(folder / f"{cat}{i}.wav", audio, RATE, subtype="FLOAT")
    for room in ("smallroom", "mediumroom"):
        folder = root / "rirs" / room / "Room001"
        folder.mkdir(parents=True)
        for i in range(3):
            rir = rng.standard_normal(400 + 300 * i) * np.exp(
                -np.arange(400 + 300 * i) / 80.0
            )
            sf.write(folder / f"{room}-{i}.wav", rir, RATE, subtype="FLOAT")
    for name in ("noise", "music", "speech", "rir"):  # ours needs CSVs
        first = next((root / ("rirs" if name == "rir" else "musan")).rglob(
            "*.wav"))
        (root / f"{name}.csv").write_text(f"ID,wav\nx,{first}\n")
    return root


def _speech(rng, n=CROP):
    t = np.arange(n) / RATE
    tone = np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    return 0.1 * tone + 0.01 * rng.standard_normal(n)


def _clip(path, n=CROP):
    """A noise file as the official loader crops it (tiled when short)."""
    audio, _ = sf.read(path)
    return np.resize(audio, n).astype(np.float32)


@pytest.fixture(scope="module")
def official_augment(sets):
    loader = official_module("DatasetLoader")
    return loader, loader.AugmentWAV(
        musan_path=str(sets / "musan"), rir_path=str(sets / "rirs"),
        max_frames=300,
    )


def _ours(sets, conditions, **banks):
    csvs = {f"{n}_csv": str(sets / f"{n}.csv")
            for n in ("noise", "music", "speech", "rir")}
    aug = OfficialAugmentation(**csvs, conditions=conditions, threads=0)
    aug._banks = {name: GivenClips(clips) for name, clips in banks.items()}
    return aug


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("condition", ["noise", "music", "babble", "tv"])
def test_additive_noise_equals_augment_wav(official_augment, sets,
                                           monkeypatch, condition, seed):
    loader, augment = official_augment
    rng = np.random.default_rng(seed)
    speech = _speech(rng)
    draws = RecordingRandom(seed)
    monkeypatch.setattr(loader, "random", draws)
    steps = {"noise": ["noise"], "music": ["music"], "babble": ["speech"],
             "tv": ["speech", "music"]}[condition]
    ref = speech[None].astype(np.float64)
    for cat in steps:
        ref = augment.additive_noise(cat, ref, 150)
    # Ours, given the same clips and SNRs in the same order.
    banks, additions, k = {}, [], 0
    for stage, (cat, files) in enumerate(zip(steps, draws.sampled,
                                             strict=True)):
        banks.setdefault(cat, []).extend(_clip(f) for f in files)
        for _ in files:
            additions.append((stage, cat, draws.snrs[k]))
            k += 1
    aug = _ours(sets, [condition], **banks)
    monkeypatch.setattr(aug, "draw_plan", lambda batch: [
        {"condition": condition, "additions": additions}
    ])
    wav = torch.tensor(speech, dtype=torch.float32)[None]
    out, _ = aug(wav, torch.ones(1))
    scale = np.abs(ref).max()
    np.testing.assert_allclose(out[0].numpy(), ref[0], rtol=0,
                               atol=2e-6 * scale)


@pytest.mark.parametrize("seed", range(3))
def test_reverberation_equals_augment_wav(official_augment, sets,
                                          monkeypatch, seed):
    loader, augment = official_augment
    rng = np.random.default_rng(10 + seed)
    speech = _speech(rng)
    draws = RecordingRandom(seed)
    monkeypatch.setattr(loader, "random", draws)
    ref = augment.reverberate(speech[None], 150)
    rir, _ = sf.read(draws.chosen[0])
    aug = _ours(sets, ["reverb"], rir=[rir.astype(np.float32)])
    # padded next to a longer crop: the reverb is cut to its own length
    batch = torch.zeros(2, 32000)
    batch[0, :CROP] = torch.tensor(speech, dtype=torch.float32)
    aug._banks["rir"].clips.append(np.ones(1, dtype=np.float32))
    monkeypatch.setattr(aug, "draw_plan", lambda batch: [
        {"condition": "reverb", "additions": []}] * 2)
    out, _ = aug(batch, torch.tensor([CROP / 32000, 1.0]))
    np.testing.assert_allclose(out[0, :CROP].numpy(), ref[0], rtol=0,
                               atol=2e-6 * np.abs(ref).max())
    assert torch.all(out[0, CROP:] == 0)


@pytest.mark.parametrize("speed", [0.9, 1.1])
def test_speed_perturbation_equals_the_official_network(speed):
    network = official_module("models.MR_RawNet")
    official = network.SpeedPerturbation()
    wavs = torch.randn(3, 48000, generator=torch.Generator().manual_seed(1))
    want = {0.9: 53120, 1.1: 43520}[speed]  # 3 s at that speed, // 320
    for seed in range(50):  # the official module draws the factor itself
        torch.manual_seed(seed)
        with torch.no_grad():
            ref = official(wavs)
        if ref.shape[1] == want:
            break
    else:
        pytest.fail(f"the official module never drew {speed}")
    ours, lengths = SpeedPerturbation().apply_speed(wavs, torch.ones(3),
                                                    speed)
    assert ours.shape == ref.shape
    # float32 rounding only (the official kernel is built once, ours per
    # call): 1e-6 of the signal's peak
    scale = float(wavs.abs().max())
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6 * scale)
    assert torch.equal(lengths, torch.ones(3))


def test_aam_softmax_loss_equals_official_in_float64():
    aamsoftmax = official_module("loss.aamsoftmax")
    gen = torch.Generator().manual_seed(0)
    n_classes, dim, batch = 50, 16, 64
    official = aamsoftmax.LossFunction(
        nOut=dim, nClasses=n_classes, margin=0.3, scale=30
    ).double()
    weight = torch.randn(n_classes, dim, generator=gen, dtype=torch.float64)
    official.weight.data.copy_(weight)
    labels = torch.randint(0, n_classes, (batch,), generator=gen)
    emb = torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    # some embeddings close to or opposite their class (both margin cases)
    emb[:8] = weight[labels[:8]] * 3
    emb[8:16] = -weight[labels[8:16]]
    classifier = Classifier(dim, lin_blocks=0, out_neurons=n_classes).double()
    classifier.weight.data.copy_(weight)
    loss = AAMSoftmaxLoss(margin=0.3, scale=30)
    emb_a = emb.clone().requires_grad_()
    emb_b = emb.clone().requires_grad_()
    ref, _ = official(emb_a, labels)
    ours = loss(classifier(emb_b[:, None]), labels[:, None])
    assert ours.dtype == torch.float64
    assert abs(ours.item() - ref.item()) < 1e-9
    ref.backward()
    ours.backward()
    torch.testing.assert_close(emb_b.grad, emb_a.grad, rtol=0, atol=1e-9)
