"""Tests of MUSAN and RIR preparation (speechbrain_ext.augment.prepare)."""

import csv
import logging
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from speechbrain_ext.augment import musan_prep as M
from speechbrain_ext.augment import prepare as A
from speechbrain_ext.augment import rir_prep as R
from speechbrain_ext.data.prep_common import PreparationError

SR = 16000


def _write(path, seconds, sr=SR, seed=0, channels=1):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    n = int(round(seconds * sr))
    rng = np.random.default_rng(seed)
    shape = (n, channels) if channels > 1 else (n,)
    data = np.clip(0.2 * rng.standard_normal(shape), -1, 1)
    sf.write(path, data.astype("float32"), sr, subtype="PCM_16")
    return sf.read(path, dtype="float32")[0]


def _rows(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


@pytest.fixture
def synth(tmp_path):
    """The synthetic layout: <out>/musan/... and <out>/RIRS_NOISES/..."""
    out = tmp_path / "synth"
    signals = {
        "noise/n1": _write(str(out / "musan/noise/n1.wav"), 11.0, seed=1),
        "noise/n2": _write(str(out / "musan/noise/n2.wav"), 4.0, seed=2),
        "music/m1": _write(str(out / "musan/music/m1.wav"), 10.9, seed=3),
        "speech/s1": _write(str(out / "musan/speech/s1.wav"), 5.0, seed=4),
    }
    sim = out / "RIRS_NOISES" / "simulated_rirs"
    for room in ["smallroom", "mediumroom", "largeroom"]:
        for i in range(2):
            _write(str(sim / room / "Room001" / f"Room001-{i:05d}.wav"), 0.25)
    return out, signals


def test_chunk_bounds_follow_musan_split_rule():
    assert M.chunk_bounds(11 * SR, 5 * SR, 3 * SR) == [
        (0, 5 * SR),
        (3 * SR, 8 * SR),
        (6 * SR, 11 * SR),
    ]
    assert len(M.chunk_bounds(11 * SR - 1, 5 * SR, 3 * SR)) == 2
    assert M.chunk_bounds(5 * SR, 5 * SR, 3 * SR) == [(0, 5 * SR)]
    assert M.chunk_bounds(4 * SR, 5 * SR, 3 * SR) == [(0, 4 * SR)]
    assert M.chunk_bounds(0, 5 * SR, 3 * SR) == []


def test_musan_chunks_csv_format_and_content(synth, tmp_path):
    out, signals = synth
    save = tmp_path / "csv"
    csvs = M.prepare_musan(str(out), str(save), workers=2)
    assert sorted(csvs) == ["music", "noise", "speech"]
    fields, noise = _rows(csvs["noise"])
    assert fields == ["ID", "duration", "wav", "wav_format", "wav_opts"]
    assert [r["ID"] for r in noise] == [
        "noise--n1--00000",
        "noise--n1--00001",
        "noise--n1--00002",
        "noise--n2--00000",
    ]
    assert [float(r["duration"]) for r in noise] == [5.0, 5.0, 5.0, 4.0]
    assert all(r["wav_format"] == "wav" and r["wav_opts"] == "" for r in noise)
    chunk, sr = sf.read(noise[1]["wav"], dtype="float32")
    assert sr == SR and os.path.isabs(noise[1]["wav"])
    np.testing.assert_array_equal(chunk, signals["noise/n1"][3 * SR : 8 * SR])
    assert str(save) in noise[1]["wav"]  # chunks are written under save
    _, music = _rows(csvs["music"])
    assert len(music) == 2  # 10.9 s: starts 0 and 3 only
    _, speech = _rows(csvs["speech"])
    assert [float(r["duration"]) for r in speech] == [5.0]


def test_real_musan_nesting_multichannel_and_sample_rate(tmp_path, caplog):
    musan = tmp_path / "musan"
    stereo = _write(str(musan / "noise/free-sound/a.wav"), 6.0, channels=2)
    _write(str(musan / "noise/free-sound/b.wav"), 6.0, sr=8000)
    with caplog.at_level(logging.WARNING):
        csvs = M.prepare_musan(str(musan), str(tmp_path / "o"), ["noise"])
    _, rows = _rows(csvs["noise"])
    assert [r["ID"] for r in rows] == ["noise--free-sound--a--00000"]
    chunk, _ = sf.read(rows[0]["wav"], dtype="float32")
    assert chunk.ndim == 1
    np.testing.assert_allclose(chunk, stereo[: 5 * SR].mean(1), atol=1e-4)
    assert any(
        "Skipped 1 MUSAN noise" in r.message and "b.wav" in r.message
        for r in caplog.records
    )


def test_musan_cache_and_redo(synth, tmp_path):
    out, _ = synth
    save = tmp_path / "csv"
    csvs = M.prepare_musan(str(out), str(save), ["noise"])
    mtime = os.stat(csvs["noise"]).st_mtime_ns
    M.prepare_musan(str(out), str(save), ["noise"])
    assert os.stat(csvs["noise"]).st_mtime_ns == mtime

    M.prepare_musan(str(out), str(save), ["noise"], hop_seconds=6.0)
    _, rows = _rows(csvs["noise"])
    assert [r["ID"] for r in rows] == [
        "noise--n1--00000",
        "noise--n1--00001",
        "noise--n2--00000",
    ]
    # the chunk made with the old hop is gone
    assert not os.path.exists(save / "musan_split/noise/n1/00002.wav")

    _write(str(out / "musan/noise/n3.wav"), 2.0)
    M.prepare_musan(str(out), str(save), ["noise"], hop_seconds=6.0)
    assert "noise--n3--00000" in {r["ID"] for r in _rows(csvs["noise"])[1]}

    os.remove(rows[0]["wav"])  # a lost chunk file triggers a redo
    M.prepare_musan(str(out), str(save), ["noise"], hop_seconds=6.0)
    assert os.path.isfile(rows[0]["wav"])


def test_musan_errors(tmp_path):
    with pytest.raises(PreparationError, match="nowhere.*noise,music"):
        M.prepare_musan(str(tmp_path / "nowhere"), str(tmp_path / "o"))
    (tmp_path / "m" / "noise").mkdir(parents=True)
    with pytest.raises(PreparationError, match="missing.*music"):
        M.prepare_musan(str(tmp_path / "m"), str(tmp_path / "o"))
    with pytest.raises(PreparationError, match="No .wav files in .*noise"):
        M.prepare_musan(str(tmp_path / "m"), str(tmp_path / "o"), ["noise"])
    assert not os.path.exists(tmp_path / "o" / "noise.csv")
    _write(str(tmp_path / "m" / "noise" / "x.wav"), 1.0)
    with pytest.raises(PreparationError, match="overlaps"):
        M.prepare_musan(str(tmp_path / "m"), str(tmp_path / "m" / "noise"),
                        ["noise"])


def test_rirs_small_and_medium_only(synth, tmp_path):
    out, _ = synth
    save = tmp_path / "csv"
    rirs = R.prepare_rirs(str(out), str(save))
    fields, rows = _rows(rirs)
    assert fields == ["ID", "duration", "wav", "wav_format", "wav_opts"]
    assert [r["ID"] for r in rows] == [
        "smallroom--Room001--Room001-00000",
        "smallroom--Room001--Room001-00001",
        "mediumroom--Room001--Room001-00000",
        "mediumroom--Room001--Room001-00001",
    ]
    assert all(float(r["duration"]) == 0.25 for r in rows)
    sim = out / "RIRS_NOISES" / "simulated_rirs"
    assert rows[2]["wav"] == str(sim / "mediumroom/Room001/Room001-00000.wav")
    mtime = os.stat(rirs).st_mtime_ns
    R.prepare_rirs(str(out / "RIRS_NOISES"), str(save))
    assert os.stat(rirs).st_mtime_ns == mtime  # same inputs: cached
    R.prepare_rirs(str(sim), str(save), rooms=["largeroom"])
    assert {r["ID"].split("--")[0] for r in _rows(rirs)[1]} == {"largeroom"}


def test_rirs_errors(tmp_path):
    with pytest.raises(PreparationError, match="absent.*simulated_rirs"):
        R.prepare_rirs(str(tmp_path / "absent"), str(tmp_path / "o"))
    (tmp_path / "R" / "simulated_rirs" / "smallroom").mkdir(parents=True)
    with pytest.raises(PreparationError, match="mediumroom do not exist"):
        R.prepare_rirs(str(tmp_path / "R"), str(tmp_path / "o"))
    with pytest.raises(PreparationError, match="No .wav files.*smallroom"):
        R.prepare_rirs(str(tmp_path / "R"), str(tmp_path / "o"),
                       rooms=["smallroom"])


def test_csvs_drive_speechbrain_addnoise_and_addreverb(synth, tmp_path):
    from speechbrain.augment.time_domain import AddNoise, AddReverb

    out, _ = synth
    csvs = A.prepare_augmentation(
        str(tmp_path / "csv"), musan_folder=str(out), rirs_folder=str(out),
        categories=["noise"], workers=1,
    )
    assert sorted(csvs) == ["noise", "rirs"]
    torch.manual_seed(0)
    clean = torch.zeros(2, 8000)
    clean[:, ::400] = 1.0
    lengths = torch.ones(2)
    noisy = AddNoise(csv_file=csvs["noise"], snr_low=0, snr_high=0)(
        clean, lengths
    )
    assert noisy.shape == clean.shape
    assert not torch.allclose(noisy, clean)
    rev = AddReverb(csv_file=csvs["rirs"])(clean)
    assert rev.shape == clean.shape
    assert not torch.allclose(rev, clean)
