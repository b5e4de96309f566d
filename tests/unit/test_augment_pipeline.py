"""Tests of the official training augmentation (speechbrain_ext.augment).

Noise sets are either white-noise files written here (independent signals,
so the added power of several files is the sum of their powers and SNRs can
be measured to a small tolerance) or the synthetic MUSAN/RIR sets of
``speechbrain_ext.synthetic`` prepared offline by
``speechbrain_ext.augment.prepare``.
"""

import collections
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from speechbrain_ext.augment.clip_bank import ClipBank
from speechbrain_ext.augment.official import CONDITIONS, OfficialAugmentation
from speechbrain_ext.augment.pipeline import TrainingPipeline
from speechbrain_ext.augment.speed import SpeedPerturbation

RATE = 16000


def _write_set(folder, name, n_files, seconds, level, seed):
    """White-noise files of one category and their CSV (AddNoise format).

    The files are longer than the 3 s clips the augmentation reads, so two
    clips of one file start at different random offsets (independent).
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["ID,duration,wav,wav_format,wav_opts"]
    for i in range(n_files):
        path = folder / f"{name}{i}.wav"
        gain = level * (0.3 + rng.random())  # every file at its own level
        audio = gain * rng.standard_normal(int(seconds * RATE))
        sf.write(path, audio.astype("float32"), RATE, subtype="FLOAT")
        rows.append(f"{name}{i},{seconds},{path},wav,")
    csv = folder / f"{name}.csv"
    csv.write_text("\n".join(rows) + "\n")
    return str(csv)


def _write_rirs(folder, delays):
    """Delta RIRs (one per delay) and their CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["ID,duration,wav,wav_format,wav_opts"]
    for d in delays:
        rir = np.zeros(d + 50, dtype="float32")
        rir[d] = 0.5  # scaled to unit energy by the augmentation
        path = folder / f"rir{d}.wav"
        sf.write(path, rir, RATE, subtype="FLOAT")
        rows.append(f"rir{d},{len(rir) / RATE},{path},wav,")
    csv = folder / "rirs.csv"
    csv.write_text("\n".join(rows) + "\n")
    return str(csv)


@pytest.fixture(scope="module")
def white_sets(tmp_path_factory):
    """Independent white-noise noise/music/speech sets and delta RIRs.

    With a negligible power floor (the official 1e-4 is the default), so
    that the measured SNR is the drawn one.
    """
    root = tmp_path_factory.mktemp("white")
    return {
        "noise_csv": _write_set(root / "noise", "noise", 4, 4.0, 0.05, 1),
        "music_csv": _write_set(root / "music", "music", 4, 4.0, 0.2, 2),
        "speech_csv": _write_set(root / "speech", "speech", 8, 4.0, 0.1, 3),
        "rir_csv": _write_rirs(root / "rirs", [0]),
        "power_floor": 1e-8,
    }


@pytest.fixture(scope="module")
def synthetic_sets(tmp_path_factory, synthetic_corpus):
    """The synthetic MUSAN/RIR sets, prepared offline into CSVs."""
    from speechbrain_ext.augment.prepare import prepare_augmentation

    root = tmp_path_factory.mktemp("synthetic")
    info = synthetic_corpus(
        n_train_speakers=0, n_test_speakers=2, utts_per_speaker=2, seed=5,
        max_duration=1.5, n_noise=2, n_music=2, n_speech=3, n_rooms=1,
        rirs_per_room=2,
    )
    csvs = prepare_augmentation(
        str(root / "prepared"),
        musan_folder=info["paths"]["musan_dir"],
        rirs_folder=info["paths"]["rirs_dir"],
        workers=1,
    )
    return {
        "noise_csv": csvs["noise"],
        "music_csv": csvs["music"],
        "speech_csv": csvs["speech"],
        "rir_csv": csvs["rirs"],
    }


def _speech_like(batch, n, seed=0):
    """Random signals with different levels per row."""
    gen = torch.Generator().manual_seed(seed)
    levels = 0.05 + 0.3 * torch.rand(batch, 1, generator=gen)
    return levels * torch.randn(batch, n, generator=gen)


def _snr_db(clean, added):
    return 10 * math.log10(clean.pow(2).mean() / added.pow(2).mean())


def test_one_condition_per_utterance_uniform():
    aug = OfficialAugmentation(
        noise_csv=None, conditions=["clean"]
    )  # plans need no files
    aug.conditions = list(CONDITIONS)  # draw over all six
    plan = aug.draw_plan(3000)
    counts = collections.Counter(p["condition"] for p in plan)
    assert set(counts) == set(CONDITIONS)
    # 500 expected each; 6 standard deviations is about 120.
    assert all(380 < c < 620 for c in counts.values()), counts
    for p in plan:
        adds = p["additions"]
        banks = collections.Counter(b for _, b, _ in adds)
        cond = p["condition"]
        if cond in ("clean", "reverb"):
            assert adds == []
        elif cond in ("babble", "tv"):
            assert 3 <= banks["speech"] <= 7
            assert banks["music"] == (cond == "tv")
        else:
            assert dict(banks) == {cond: 1}


def test_batch_kept_clean_rows_unchanged(white_sets):
    aug = OfficialAugmentation(**white_sets, threads=2, seed=3)
    wavs = _speech_like(24, 4000)
    lengths = torch.ones(24)
    out, out_lengths = aug(wavs, lengths)
    plan = aug.last_plan
    assert out.shape == wavs.shape and out.dtype == wavs.dtype
    assert torch.equal(out_lengths, lengths)
    assert len(plan) == 24
    seen = {p["condition"] for p in plan}
    assert "clean" in seen and len(seen) >= 4
    for row, p in enumerate(plan):
        same = torch.equal(out[row], wavs[row])
        # Delta RIR at 0: reverb rows equal the input up to rounding.
        if p["condition"] == "clean":
            assert same
        elif p["condition"] == "reverb":
            assert torch.allclose(out[row], wavs[row], atol=1e-5)
        else:
            assert not same
    aug.close()


@pytest.mark.parametrize(
    "condition, low, high", [("noise", 0, 15), ("music", 5, 15)]
)
def test_single_file_snr(white_sets, condition, low, high):
    aug = OfficialAugmentation(**white_sets, conditions=[condition], seed=1)
    wavs = _speech_like(16, 8000, seed=2)
    out, _ = aug(wavs, torch.ones(16))
    for row, p in enumerate(aug.last_plan):
        ((stage, bank, snr),) = p["additions"]
        assert bank == condition and low <= snr <= high
        measured = _snr_db(wavs[row], out[row] - wavs[row])
        assert measured == pytest.approx(snr, abs=0.01)


def test_babble_snr_each_file(white_sets):
    aug = OfficialAugmentation(**white_sets, conditions=["babble"], seed=2)
    wavs = _speech_like(16, 16000, seed=3)
    out, _ = aug(wavs, torch.ones(16))
    for row, p in enumerate(aug.last_plan):
        snrs = [s for _, bank, s in p["additions"] if bank == "speech"]
        assert 3 <= len(snrs) <= 7
        assert all(13 <= s <= 20 for s in snrs)
        # Independent files: the powers add up.
        expected = -10 * math.log10(sum(10 ** (-s / 10) for s in snrs))
        measured = _snr_db(wavs[row], out[row] - wavs[row])
        assert measured == pytest.approx(expected, abs=0.3)


def test_padding_stays_zero_and_snr_uses_valid_part(white_sets):
    aug = OfficialAugmentation(**white_sets, conditions=["noise"], seed=4)
    wavs = _speech_like(2, 8000)
    wavs[1, 4000:] = 0.0
    out, _ = aug(wavs, torch.tensor([1.0, 0.5]))
    assert torch.all(out[1, 4000:] == 0)
    snr = aug.last_plan[1]["additions"][0][2]
    measured = _snr_db(wavs[1, :4000], out[1, :4000] - wavs[1, :4000])
    assert measured == pytest.approx(snr, abs=0.01)


def test_reverb_convolves_with_unit_energy_rir(tmp_path):
    rir_csv = _write_rirs(tmp_path, [7])
    aug = OfficialAugmentation(rir_csv=rir_csv, conditions=["reverb"])
    wavs = _speech_like(3, 1000)
    out, _ = aug(wavs, torch.ones(3))
    # A delta at sample 7 delays by 7 samples; its energy is scaled to 1.
    assert torch.allclose(out[:, 7:], wavs[:, :-7], atol=1e-6)
    assert torch.all(out[:, :7].abs() < 1e-6)


def test_speed_perturbation_length_and_labels():
    # Each row is a tone of its own frequency: after a speed change the
    # rows must still be in the same order (labels unchanged) with their
    # frequencies scaled by the factor.
    n = 16000
    t = torch.arange(n) / RATE
    freqs = torch.tensor([300.0, 500.0, 800.0])
    wavs = torch.sin(2 * math.pi * freqs[:, None] * t)
    for speed in (0.9, 1.0, 1.1):
        sp = SpeedPerturbation(speeds=[speed])
        out, lengths = sp(wavs, torch.tensor([1.0, 1.0, 0.5]))
        assert sp.last_speed == speed
        assert out.shape[0] == 3 and out.shape[1] % 320 == 0
        assert 0 <= round(n / speed) - out.shape[1] < 320
        assert lengths[2].item() == pytest.approx(
            min(1.0, n / 2 / speed / out.shape[1]), abs=1e-3
        )
        spectrum = torch.fft.rfft(out).abs()
        peaks = spectrum.argmax(dim=1).float() * RATE / out.shape[1]
        assert torch.allclose(peaks, freqs * speed, rtol=0.01)


def test_speed_draws_one_factor_per_batch():
    sp = SpeedPerturbation(seed=0)
    shapes = collections.Counter(
        sp(torch.randn(4, 16000), torch.ones(4))[0].shape[1] for _ in range(60)
    )
    assert set(shapes) == {17600, 16000, 14400}


def test_pipeline_augments_each_crop_at_its_length_then_tiles():
    seen = []

    def spy(wavs, lengths):
        seen.append((wavs.clone(), lengths.clone()))
        return wavs * 2, lengths

    pipe = TrainingPipeline(augment=spy, full_samples=3200)
    counts = [3200, 800, 1900, 3200]
    wavs = torch.zeros(4, 3200)
    for row, n in enumerate(counts):
        wavs[row, :n] = torch.arange(1, n + 1) + 10000 * row
    lengths = torch.tensor(counts) / 3200
    out, out_lengths = pipe(wavs, lengths)
    # one call, on the crops at their own lengths (padding included)
    assert len(seen) == 1 and torch.equal(seen[0][0], wavs)
    assert torch.equal(seen[0][1], lengths)
    assert out.shape == (4, 3200) and torch.equal(out_lengths, torch.ones(4))
    assert pipe.last_counts.tolist() == counts
    for row, n in enumerate(counts):
        crop = 2 * wavs[row, :n]
        reps = -(-3200 // n)
        assert torch.equal(out[row], crop.repeat(reps)[:3200])


def test_pipeline_tiles_to_the_full_length_and_changes_speed():
    pipe = TrainingPipeline(
        augment=None, speed=SpeedPerturbation(speeds=[1.1]),
        full_samples=48000,
    )
    wavs = torch.randn(2, 32000)  # both crops short (2.0 s)
    out, lengths = pipe(wavs, torch.tensor([1.0, 0.5]))
    assert out.shape == (2, 43520) and torch.equal(lengths, torch.ones(2))
    full = TrainingPipeline(full_samples=48000)(wavs, torch.tensor([1, 0.5]))
    assert torch.equal(full[0][1, :16000], wavs[1, :16000])
    assert torch.equal(full[0][1, 16000:32000], wavs[1, :16000])


def test_works_offline_with_synthetic_sets(synthetic_sets):
    aug = OfficialAugmentation(**synthetic_sets, clip_seconds=1.0, seed=7)
    pipe = TrainingPipeline(aug, SpeedPerturbation(), full_samples=16000)
    conditions = set()
    for _ in range(8):
        wavs = _speech_like(12, 16000)
        lengths = torch.tensor([1.0, 0.5, 0.6] * 4)
        wavs[lengths < 1, 9600:] = 0.0
        wavs[lengths == 0.5, 8000:] = 0.0
        out, lengths = pipe(wavs, lengths)
        assert out.shape[0] == 12 and torch.isfinite(out).all()
        conditions |= {p["condition"] for p in aug.last_plan}
    assert conditions == set(CONDITIONS)
    aug.close()


def test_same_seed_same_augmentation(white_sets):
    outs = []
    for _ in range(2):
        aug = OfficialAugmentation(**white_sets, seed=11, threads=2)
        outs.append(aug(_speech_like(8, 2000), torch.ones(8))[0])
        aug.close()
    assert torch.equal(outs[0], outs[1])


def test_missing_inputs_are_named(tmp_path):
    with pytest.raises(ValueError, match="'babble' needs speech_csv"):
        OfficialAugmentation(conditions=["babble"])
    missing = str(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        OfficialAugmentation(noise_csv=missing, conditions=["noise"])


def test_clip_bank_tiles_and_reads_ahead(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, np.arange(1, 101, dtype="float32") / 100, RATE)
    (tmp_path / "c.csv").write_text(f"ID,wav\na,{path}\n")
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        bank = ClipBank(str(tmp_path / "c.csv"), 250, rng=0, executor=pool)
        clip = bank.take(3)[0]
        assert len(bank._pending) >= 3  # read ahead for the next call
        bank.take(0)
    assert clip.shape == (250,)
    np.testing.assert_allclose(clip[100:200], clip[:100])


def _damage(path, how):
    """Breaks one audio file in place."""
    if how == "garbage":
        path.write_bytes(b"not audio at all" * 10)
    elif how == "nan":
        audio, rate = sf.read(path, dtype="float32")
        audio[::500] = np.nan  # inside every crop (only crops are read)
        sf.write(path, audio, rate, subtype="FLOAT")
    elif how == "missing":
        path.unlink()


@pytest.mark.parametrize("threads", [0, 2])
def test_bad_noise_files_are_skipped_and_named(tmp_path, caplog, threads):
    """Two bad files of 40: warned once each (naming the file and CSV),
    never returned, every clip finite; the other files keep being used."""
    import concurrent.futures

    csv = _write_set(tmp_path / "noise", "noise", 40, 0.5, 0.1, seed=3)
    bad = {
        tmp_path / "noise" / "noise3.wav": "garbage",
        tmp_path / "noise" / "noise17.wav": "nan",
    }
    for path, how in bad.items():
        _damage(path, how)
    pool = concurrent.futures.ThreadPoolExecutor(threads) if threads else None
    bank = ClipBank(csv, clip_samples=4000, rng=0, executor=pool)
    with caplog.at_level("WARNING"):
        clips = bank.take(30) + bank.take(30) + bank.take(40)
    if pool:
        pool.shutdown()
    assert len(clips) == 100
    assert all(c.shape == (4000,) and np.isfinite(c).all() for c in clips)
    assert sorted(bank.bad_files) == sorted(str(p) for p in bad)
    for path in bad:
        warnings = [r for r in caplog.records if str(path) in r.getMessage()]
        assert len(warnings) == 1, warnings
        assert csv in warnings[0].getMessage()
    assert "NaN or Inf" in bank.bad_files[str(tmp_path / "noise/noise17.wav")]


def test_too_many_bad_noise_files_stop_with_the_names(tmp_path):
    csv = _write_set(tmp_path / "noise", "noise", 10, 0.5, 0.1, seed=4)
    for i in (1, 5):
        _damage(tmp_path / "noise" / f"noise{i}.wav", "missing")
    bank = ClipBank(csv, clip_samples=4000, rng=0, max_bad_fraction=0.1)
    with pytest.raises(RuntimeError, match="2 of the 10 files") as err:
        for _ in range(20):
            bank.take(5)
    assert "noise1.wav" in str(err.value) and "noise5.wav" in str(err.value)
    # max_bad_fraction=0 keeps the old behaviour: the first bad file stops.
    strict = ClipBank(csv, clip_samples=4000, rng=0, max_bad_fraction=0)
    with pytest.raises(RuntimeError, match="1 of the 10 files"):
        for _ in range(20):
            strict.take(5)


def test_all_zero_rir_is_bad_and_replaced(tmp_path):
    csv = _write_rirs(tmp_path / "rirs", [5, 9, 13])
    sf.write(tmp_path / "rirs" / "rir9.wav", np.zeros(59, "float32"), RATE)
    aug = OfficialAugmentation(
        rir_csv=csv, conditions=["reverb"], threads=0, seed=0,
        max_bad_fraction=0.5,
    )
    out, _ = aug(torch.randn(8, 1600), torch.ones(8))
    assert torch.isfinite(out).all()
    assert bool((out.abs().sum(dim=1) > 0).all())  # no row silenced
    assert list(aug._banks["rir"].bad_files) == [
        str(tmp_path / "rirs" / "rir9.wav")
    ]


@pytest.mark.parametrize("threads", [0, 2])
def test_saved_random_state_repeats_the_draws_in_a_new_pipeline(
    white_sets, tmp_path, threads
):
    """A resumed run (a new pipeline loading the checkpoint file) draws
    the same conditions, SNRs, noise clips and speeds as the
    uninterrupted one, clips already read ahead included (the crops are
    drawn where items are read: see SeededItems)."""

    def pipeline():
        aug = OfficialAugmentation(
            **white_sets, clip_seconds=0.5, threads=threads, seed=5
        )
        return TrainingPipeline(
            augment=aug, speed=SpeedPerturbation(seed=5), full_samples=8000
        )

    batches = [_speech_like(3, 8000, seed=k) for k in range(8)]
    lengths = torch.tensor([1.0, 0.8, 0.6])
    first = pipeline()
    for wavs in batches[:3]:
        first(wavs, lengths)
    first._save_random_state(tmp_path / "pipe.json")
    expected = [first(w, lengths) for w in batches[3:]]
    first.augment.close()

    resumed = pipeline()
    resumed._load_random_state(tmp_path / "pipe.json")
    got = [resumed(w, lengths) for w in batches[3:]]
    resumed.augment.close()
    for (a, la), (b, lb) in zip(expected, got, strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb)
    # Without the state the same batches are augmented differently.
    fresh = pipeline()
    other = [fresh(w, lengths)[0] for w in batches[3:]]
    fresh.augment.close()
    assert not all(
        a.shape == b.shape and torch.equal(a, b)
        for (a, _), b in zip(expected, other, strict=True)
    )
