"""Tests for the synthetic espeak-ng corpus generator."""

import hashlib
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from speechbrain_ext import synthetic
from speechbrain_ext.synthetic import (
    generate_corpus,
    make_trials,
    speaker_params,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
SMALL = dict(
    n_train_speakers=3,
    n_test_speakers=2,
    utts_per_speaker=2,
    sessions_per_speaker=2,
    seed=11,
    min_duration=1.0,
    max_duration=3.0,
    n_noise=2,
    n_music=1,
    n_speech=1,
    n_rooms=1,
    rirs_per_room=2,
    progress=False,
)
CLI_ARGS = [
    "--n_train_speakers", "3", "--n_test_speakers", "2",
    "--utts_per_speaker", "2", "--sessions_per_speaker", "2", "--seed", "11",
    "--min_duration", "1.0", "--max_duration", "3.0", "--n_noise", "2",
    "--n_music", "1", "--n_speech", "1", "--n_rooms", "1",
    "--rirs_per_room", "2", "--quiet",
]


def _digests(folder):
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.sha1(
                    f.read()
                ).hexdigest()
    return out


def _wavs(folder):
    return sorted(
        str(p.relative_to(folder)) for p in pathlib.Path(folder).rglob("*.wav")
    )


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """Corpus A in-process; an unrelated corpus; A again; A via the CLI."""
    base = tmp_path_factory.mktemp("synthetic")
    a = str(base / "a")
    info = generate_corpus(a, **SMALL)
    other = {**SMALL, "seed": 5, "n_train_speakers": 1, "n_speech": 0}
    generate_corpus(str(base / "other"), **other)
    again = str(base / "again")
    generate_corpus(again, **SMALL)
    cli = str(base / "cli")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-m", "speechbrain_ext.synthetic", cli]
        + CLI_ARGS,
        check=True,
        cwd=ROOT,
        env=env,
    )
    return {"a": a, "info": info, "again": again, "cli": cli}


def test_voxceleb_layout(corpora):
    wav_dir = os.path.join(corpora["a"], "wav")
    rel = _wavs(wav_dir)
    assert len(rel) == 5 * 2
    pattern = re.compile(r"^id9\d{4}/[A-Za-z0-9_-]{11}/\d{5}\.wav$")
    assert all(pattern.match(r) for r in rel), rel
    speakers = sorted({r.split("/")[0] for r in rel})
    assert speakers == [f"id9000{i}" for i in range(1, 6)]
    # Two utterances per speaker land in two different sessions.
    for spk in speakers:
        sessions = {r.split("/")[1] for r in rel if r.startswith(spk)}
        assert len(sessions) == 2


def test_audio_is_16k_mono_pcm16(corpora):
    for rel in _wavs(corpora["a"]):
        info = sf.info(os.path.join(corpora["a"], rel))
        assert info.samplerate == 16000, rel
        assert info.channels == 1, rel
        assert info.subtype == "PCM_16", rel
    durations = [
        sf.info(os.path.join(corpora["a"], "wav", r)).duration
        for r in _wavs(os.path.join(corpora["a"], "wav"))
    ]
    assert max(durations) <= 3.0 + 1e-6
    assert min(durations) >= 0.8
    total = corpora["info"]["total_duration_s"]
    assert total == pytest.approx(sum(durations), abs=0.01)


def test_byte_identical_across_runs_and_processes(corpora):
    ref = _digests(corpora["a"])
    assert len(ref) > 15
    assert _digests(corpora["again"]) == ref
    assert _digests(corpora["cli"]) == ref


def test_train_and_test_speakers_are_disjoint(corpora):
    info = corpora["info"]
    train, test = set(info["train_speakers"]), set(info["test_speakers"])
    assert len(train) == 3 and len(test) == 2
    assert not train & test
    with open(os.path.join(corpora["a"], "veri_test.txt")) as f:
        lines = [line.split() for line in f]
    trial_spk = {p.split("/")[0] for line in lines for p in line[1:]}
    assert trial_spk == test


def test_trials_balanced_and_paths_exist(corpora):
    wav_dir = os.path.join(corpora["a"], "wav")
    with open(os.path.join(corpora["a"], "veri_test.txt")) as f:
        lines = [line.split() for line in f]
    labels = [int(line[0]) for line in lines]
    assert labels.count(1) == labels.count(0) > 0
    assert corpora["info"]["n_trials"] == len(lines)
    pairs = set()
    for label, enrol, test in lines:
        assert os.path.isfile(os.path.join(wav_dir, enrol))
        assert os.path.isfile(os.path.join(wav_dir, test))
        same = enrol.split("/")[0] == test.split("/")[0]
        assert same == (label == "1")
        assert enrol != test
        pairs.add(frozenset((enrol, test)))
    assert len(pairs) == len(lines)


def test_make_trials_properties():
    utts = [
        f"id{s}/sess{j % 3}/{j:05d}.wav" for s in range(6) for j in range(6)
    ]
    trials = make_trials(utts, seed=3)
    assert trials == make_trials(utts, seed=3)
    assert trials != make_trials(utts, seed=4)
    targets = [t for t in trials if t[0] == 1]
    # 6 speakers x (15 pairs - 3 same-session pairs) cross-session pairs.
    assert len(targets) == 6 * 12
    assert len(trials) == 2 * len(targets)
    assert all(a.split("/")[1] != b.split("/")[1] for _, a, b in targets)
    assert len({frozenset(t[1:]) for t in trials}) == len(trials)
    assert len(make_trials(utts, n_target=10, seed=0)) == 20


def test_noise_and_rir_sets(corpora):
    root = corpora["a"]
    for cat, count in (("noise", 2), ("music", 1), ("speech", 1)):
        files = _wavs(os.path.join(root, "musan", cat))
        assert len(files) == count, cat
        for rel in files:
            x, sr = sf.read(os.path.join(root, "musan", cat, rel))
            assert sr == 16000 and x.ndim == 1
            assert len(x) >= 5 * sr  # one full 5 s MUSAN chunk at least
            assert np.sqrt(np.mean(x**2)) > 1e-3
    sim = os.path.join(root, "RIRS_NOISES", "simulated_rirs")
    for room_type, (lo, hi) in synthetic.RIR_ROOM_TYPES.items():
        files = _wavs(os.path.join(sim, room_type))
        assert files == [
            "Room001/Room001-00001.wav", "Room001/Room001-00002.wav",
        ]
        assert os.path.isfile(os.path.join(sim, room_type, "rir_list"))
        for rel in files:
            h, sr = sf.read(os.path.join(sim, room_type, rel))
            assert sr == 16000 and h.ndim == 1
            peak = int(np.argmax(np.abs(h)))
            assert peak < 0.02 * sr  # direct path comes first
            # Schroeder decay: time from -5 dB to -25 dB, times 3 = RT60.
            edc = np.cumsum((h[peak:] ** 2)[::-1])[::-1]
            edc_db = 10 * np.log10(edc / edc[0] + 1e-12)
            t5 = np.argmax(edc_db < -5) / sr
            t25 = np.argmax(edc_db < -25) / sr
            rt60 = 3 * (t25 - t5)
            assert 0.6 * lo < rt60 < 1.4 * hi, (room_type, rt60)


def test_cached_run_is_a_noop(corpora):
    root = corpora["a"]
    before = {
        p: os.stat(os.path.join(root, p)).st_mtime_ns
        for p in _digests(root)
    }
    info = generate_corpus(root, **SMALL)
    assert info["generated"] is False
    assert info["train_speakers"] == corpora["info"]["train_speakers"]
    after = {
        p: os.stat(os.path.join(root, p)).st_mtime_ns
        for p in _digests(root)
    }
    assert after == before


def test_changed_args_or_missing_manifest_regenerate(tmp_path):
    kw = dict(
        n_train_speakers=1, n_test_speakers=2, utts_per_speaker=2,
        max_duration=2.0, n_noise=0, n_music=0, n_speech=0, n_rooms=0,
        progress=False,
    )
    out = str(tmp_path / "c")
    generate_corpus(out, **kw)
    ref = _digests(out)
    os.remove(os.path.join(out, "manifest.json"))  # an interrupted run
    assert generate_corpus(out, **kw)["generated"] is True
    assert _digests(out) == ref
    info = generate_corpus(out, **{**kw, "n_train_speakers": 0})
    assert info["generated"] is True
    # Stale speakers of the previous arguments are gone.
    assert sorted(os.listdir(os.path.join(out, "wav"))) == [
        "id90001", "id90002",
    ]
    with open(os.path.join(out, "manifest.json")) as f:
        assert json.load(f)["args"]["n_train_speakers"] == 0


def test_speaker_params_depend_on_seed_and_index_only():
    assert speaker_params(0, 4) == speaker_params(0, 4)
    assert speaker_params(0, 4) != speaker_params(0, 5)
    assert speaker_params(0, 4) != speaker_params(1, 4)
    json.dumps(speaker_params(2, 9))  # JSON-friendly (goes to the manifest)


def _log_spectrum(x, sr=16000, n_fft=512):
    """Long-term log spectrum in 32 log-spaced bands, level-normalised."""
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::128]
    power = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** 2
    energy = power.sum(axis=1)
    power = power[energy > energy.max() * 1e-3]  # speech frames only
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    edges = np.geomspace(100, 7000, 33)
    bands = np.stack(
        [
            power[:, (freqs >= lo) & (freqs < hi)].sum(axis=1)
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        ],
        axis=1,
    )
    spec = np.log(bands.mean(axis=0) + 1e-12)
    return spec - spec.mean()


def _median_f0(x, sr=16000):
    """Median autocorrelation pitch of the voiced 40 ms frames."""
    n = int(0.04 * sr)
    lags = np.arange(int(sr / 400), int(sr / 60))
    f0 = []
    energies = [np.sum(x[i : i + n] ** 2) for i in range(0, len(x) - n, n)]
    floor = 0.1 * max(energies)
    for i, energy in zip(range(0, len(x) - n, n), energies, strict=True):
        if energy < floor:
            continue
        frame = x[i : i + n] - x[i : i + n].mean()
        ac = np.correlate(frame, frame, "full")[n - 1 :]
        if ac[lags].max() > 0.5 * ac[0]:
            f0.append(sr / lags[np.argmax(ac[lags])])
    return float(np.median(f0))


def test_speakers_really_differ(corpora):
    wav_dir = os.path.join(corpora["a"], "wav")
    by_spk = {}
    for rel in _wavs(wav_dir):
        x, _ = sf.read(os.path.join(wav_dir, rel))
        by_spk.setdefault(rel.split("/")[0], []).append(x)
    spec = {s: [_log_spectrum(x) for x in xs] for s, xs in by_spk.items()}
    f0 = {s: [np.log(_median_f0(x)) for x in xs] for s, xs in by_spk.items()}
    spk = sorted(by_spk)
    within_spec = [np.linalg.norm(spec[s][0] - spec[s][1]) for s in spk]
    within_f0 = [abs(f0[s][0] - f0[s][1]) for s in spk]
    between_spec, between_f0 = [], []
    for i, s in enumerate(spk):
        for t in spk[i + 1 :]:
            for a in range(2):
                for b in range(2):
                    between_spec.append(
                        np.linalg.norm(spec[s][a] - spec[t][b])
                    )
                    between_f0.append(abs(f0[s][a] - f0[t][b]))
    # Different speakers: clearly larger spectral and pitch distances than
    # two sessions of the same speaker (on average).
    assert np.mean(between_spec) > 1.5 * np.mean(within_spec)
    assert np.mean(between_f0) > 2.0 * np.mean(within_f0)
