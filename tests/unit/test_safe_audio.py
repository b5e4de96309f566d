"""Unit tests of speechbrain_ext.data.safe_audio (bad files, CSV paths)."""

import logging
import os
import pickle
import struct

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from speechbrain_ext.data.audio_read import BadAudioError, read_checked_crop
from speechbrain_ext.data.crops import crop_window, tile
from speechbrain_ext.data.safe_audio import (
    BadFileTracker,
    EmptyBatch,
    FaultTolerantCollate,
    SkipBadFiles,
    TooManyBadFilesError,
    resolve_csv_paths,
)
from speechbrain_ext.data.samplers import SpeakerBalancedBatchSampler

RATE = 16000


def _signal(n, seed=0):
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype(
        "float32"
    )


def flac_audio_offset(data):
    """Byte offset of the first audio frame of a FLAC file."""
    pos = 4  # "fLaC"
    while True:
        header = data[pos]
        pos += 4 + int.from_bytes(data[pos + 1 : pos + 4], "big")
        if header & 0x80:  # last metadata block
            return pos


def make_bad_files(folder):
    """One file per kind of damage; all but two pass a header check."""
    folder.mkdir(parents=True, exist_ok=True)
    x = _signal(24000)
    bad = {}
    bad["zero_bytes"] = folder / "zero.wav"
    bad["zero_bytes"].write_bytes(b"")
    bad["no_samples"] = folder / "empty.wav"
    sf.write(bad["no_samples"], np.zeros(0), RATE)
    bad["garbage_header"] = folder / "junk.wav"
    sf.write(bad["garbage_header"], x, RATE, subtype="PCM_16")
    data = bytearray(bad["garbage_header"].read_bytes())
    data[:4] = b"JUNK"
    bad["garbage_header"].write_bytes(data)
    bad["rate_8k"] = folder / "rate.wav"
    sf.write(bad["rate_8k"], x, 8000, subtype="PCM_16")
    bad["header_says_8k"] = folder / "lying.wav"
    sf.write(bad["header_says_8k"], x, RATE, subtype="PCM_16")
    data = bytearray(bad["header_says_8k"].read_bytes())
    data[24:28] = struct.pack("<I", 8000)
    bad["header_says_8k"].write_bytes(data)
    bad["truncated_flac"] = folder / "trunc.wav"  # FLAC in a .wav name
    sf.write(bad["truncated_flac"], x, RATE, format="FLAC")
    data = bad["truncated_flac"].read_bytes()
    bad["truncated_flac"].write_bytes(data[: len(data) // 2])
    # A WAV cut short (an interrupted download): libsndfile reads it as a
    # valid shorter file; only its header's data size tells.
    bad["truncated_wav"] = folder / "cut.wav"
    sf.write(bad["truncated_wav"], x, RATE, subtype="PCM_16")
    os.truncate(bad["truncated_wav"], 44 + 2 * 9000)
    bad["corrupt_flac_frames"] = folder / "zeroed.wav"
    sf.write(bad["corrupt_flac_frames"], x, RATE, format="FLAC")
    data = bytearray(bad["corrupt_flac_frames"].read_bytes())
    start = flac_audio_offset(data)
    data[start:] = bytes(len(data) - start)
    bad["corrupt_flac_frames"].write_bytes(data)
    for kind, value in (("nan", np.nan), ("inf", np.inf)):
        y = x.copy()
        y[::1000] = value
        bad[kind] = folder / f"{kind}.wav"
        sf.write(bad[kind], y, RATE, subtype="FLOAT")
    return bad


REASONS = {
    "zero_bytes": "unreadable",
    "no_samples": "no audio samples",
    "garbage_header": "unreadable",
    "rate_8k": "sample rate 8000 Hz",
    "header_says_8k": "sample rate 8000 Hz",
    "truncated_flac": "",  # decoder error or short read
    "truncated_wav": "truncated: its header announces 24000 frames, the "
    "file holds 9000",
    "corrupt_flac_frames": "unreadable",
    "nan": "non-finite",
    "inf": "non-finite",
}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    return make_bad_files(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("kind", sorted(REASONS))
@pytest.mark.parametrize("rng", [None, 0, 1])
def test_every_kind_of_bad_file_raises_bad_audio_error(bad_files, kind, rng):
    path = bad_files[kind]
    with pytest.raises(BadAudioError) as err:
        read_checked_crop(path, 9600, rng=rng)
    assert err.value.path == str(path)
    assert str(path) in str(err.value)
    assert REASONS[kind] in err.value.reason
    # Workers send exceptions through pickling.
    again = pickle.loads(pickle.dumps(err.value))
    assert (again.path, again.reason) == (err.value.path, err.value.reason)


def test_truncated_wav_reads_as_a_shorter_file_without_the_check(bad_files):
    path = str(bad_files["truncated_wav"])
    assert sf.info(path).frames == 9000  # libsndfile does not complain
    assert sf.read(path)[0].shape == (9000,)


def test_truncated_wav_is_counted_by_skip_bad_files(bad_files, tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, _signal(16000), RATE)
    files = [str(bad_files["truncated_wav"]), str(good)]

    class Files(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {"sig": read_checked_crop(files[i], 8000)}

    item = SkipBadFiles(Files(), groups=["a", "a"])[0]
    assert item["files_read"] == 2 and len(item["bad_files"]) == 1
    assert item["bad_files"][0].startswith(f"{files[0]}: truncated")


def test_truncated_flac_passes_a_header_check(bad_files):
    # What data preparation sees: a valid 16 kHz header with 24000 frames.
    info = sf.info(str(bad_files["truncated_flac"]))
    assert (info.samplerate, info.frames) == (RATE, 24000)


@pytest.mark.parametrize("rng", [None, 3, np.random.default_rng(5)])
@pytest.mark.parametrize("frames", [5000, 24000])
def test_good_file_crop_is_the_window_of_a_full_read(tmp_path, rng, frames):
    path = tmp_path / "good.wav"
    sf.write(path, _signal(frames, 1), RATE, subtype="FLOAT")
    rng_copy = rng
    if isinstance(rng, np.random.Generator):
        rng_copy = np.random.default_rng(5)
    got = read_checked_crop(path, 9600, rng=rng)
    start, count = crop_window(frames, 9600, rng_copy)
    full, _ = sf.read(path, dtype="float32")
    expected = tile(full if count < 0 else full[start : start + count], 9600)
    assert got.shape == (9600,) and got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_stereo_is_averaged_and_any_rate_allowed(tmp_path):
    path = tmp_path / "stereo.wav"
    left, right = _signal(4000, 1), _signal(4000, 2)
    sf.write(path, np.stack([left, right], 1), 8000, subtype="FLOAT")
    got = read_checked_crop(path, 4000, sample_rate=None)
    np.testing.assert_allclose(got, (left + right) / 2, atol=1e-7)


class Files(torch.utils.data.Dataset):
    """Items of ``speakers``; indices in ``bad`` raise BadAudioError."""

    def __init__(self, speakers, bad):
        self.speakers = speakers
        self.bad = set(bad)

    def __len__(self):
        return len(self.speakers)

    def __getitem__(self, i):
        if i in self.bad:
            raise BadAudioError(f"/data/{i}.wav", "unreadable")
        return {
            "id": f"u{i}",
            "sig": torch.full((3 + i % 2,), float(i)),
            "spk": self.speakers[i],
        }


def test_bad_item_replaced_by_next_good_file_of_its_speaker():
    speakers = ["a", "b", "a", "a", "b"]
    data = SkipBadFiles(Files(speakers, bad={2, 3}), groups=speakers)
    item = data[2]  # a: 2 bad, 3 bad, then wraps around to 0
    assert item["id"] == "u0" and item["spk"] == "a"
    assert item["bad_files"] == [
        "/data/2.wav: unreadable",
        "/data/3.wav: unreadable",
    ]
    assert item["files_read"] == 3
    assert data[4]["bad_files"] == [] and data[4]["files_read"] == 1
    assert data.candidates(4) == [4, 1]


def test_speaker_without_good_file_gives_an_unusable_item():
    speakers = ["a", "b", "b"]
    data = SkipBadFiles(Files(speakers, bad={0}), groups=speakers)
    item = data[0]
    assert item["unusable"] and item["files_read"] == 1
    limited = SkipBadFiles(Files(speakers, bad={1}), speakers, max_tries=0)
    assert limited[1]["unusable"]
    strict = SkipBadFiles(Files(speakers, bad={1}), speakers, skip=False)
    with pytest.raises(BadAudioError):
        strict[1]


def test_collate_drops_unusable_items_and_keeps_the_counts():
    speakers = ["a", "b", "c"]
    data = SkipBadFiles(Files(speakers, bad={1}), groups=speakers)
    batch = FaultTolerantCollate()([data[0], data[1], data[2]])
    assert len(batch) == 2 and batch.dropped == 1
    assert batch.id == ["u0", "u2"] and batch.spk == ["a", "c"]
    assert batch.files_read == 3
    assert batch.bad_files == ["/data/1.wav: unreadable"]
    assert batch.sig.data.shape == (2, 3)
    empty = FaultTolerantCollate()([data[1]])
    assert isinstance(empty, EmptyBatch) and len(empty) == 0
    assert empty.bad_files == ["/data/1.wav: unreadable"]


def _corpus(folder, n_speakers=4, per_speaker=5):
    """A DynamicItemDataset of real files reading checked crops."""
    rows = {}
    for s in range(n_speakers):
        for u in range(per_speaker):
            path = folder / f"s{s}_{u}.wav"
            sf.write(path, _signal(4000 + 100 * u, s * 10 + u), RATE)
            rows[f"s{s}_{u}"] = {"wav": str(path), "spk_id": f"s{s}"}
    data = DynamicItemDataset(rows)

    def audio(wav):
        return torch.from_numpy(read_checked_crop(wav, 3000, rng=0))

    data.add_dynamic_item(audio, takes=["wav"], provides=["sig"])
    data.set_output_keys(["id", "sig", "spk_id"])
    return data


@pytest.mark.parametrize("workers", [0, 2])
def test_counts_reach_the_main_process_through_workers(tmp_path, workers):
    data = _corpus(tmp_path)
    bad_ids = {"s0_1": "nan", "s2_3": "junk", "s3_0": "8k"}
    for uid, kind in bad_ids.items():
        path = data.data[uid]["wav"]
        if kind == "nan":
            sf.write(path, np.full(4000, np.nan), RATE, subtype="FLOAT")
        elif kind == "junk":
            with open(path, "r+b") as f:
                f.write(b"JUNK")
        else:
            sf.write(path, _signal(4000), 8000)
    speakers = [data.data[i]["spk_id"] for i in data.data_ids]
    sampler = SpeakerBalancedBatchSampler(speakers, 4, seed=0)
    sampler.set_epoch(1)
    loader = torch.utils.data.DataLoader(
        SkipBadFiles(data, groups=speakers),
        batch_sampler=sampler,
        collate_fn=FaultTolerantCollate(),
        num_workers=workers,
    )
    drawn = [data.data_ids[i] for batch in list(sampler) for i in batch]
    bad, files, batches = [], 0, 0
    for batch in loader:
        batches += 1
        bad += batch.bad_files
        files += batch.files_read
        assert len(batch) == 4
        # Labels stay aligned and speakers distinct within the batch.
        assert sorted(batch.spk_id) == sorted(set(batch.spk_id))
        for uid, spk in zip(batch.id, batch.spk_id, strict=True):
            assert uid.split("_")[0] == spk and uid not in bad_ids
    expected_bad = sorted(u for u in drawn if u in bad_ids)
    assert batches == len(sampler)
    named = [os.path.basename(b.split(": ")[0])[:-4] for b in bad]
    assert sorted(named) == expected_bad
    assert files == len(drawn) + len(expected_bad)


def test_tracker_warns_once_and_stops_above_the_fraction(caplog):
    tracker = BadFileTracker(max_fraction=0.1, min_files=20)
    with caplog.at_level(logging.WARNING):
        tracker.update(["/d/a.wav: unreadable"], files_read=10)
        tracker.update(["/d/a.wav: unreadable"], files_read=10)
    assert (tracker.bad, tracker.files) == (2, 20)
    warned = [r for r in caplog.records if "/d/a.wav" in r.getMessage()]
    assert len(warned) == 1
    tracker.update([], files_read=10)
    tracker.update(["/d/b.wav: sample rate 8000 Hz"], files_read=1)  # 3/31
    with pytest.raises(TooManyBadFilesError) as err:  # 4 > 0.1 * 32
        tracker.update(["/d/c.wav: unreadable"], files_read=1)
    message = str(err.value)
    assert "4 of the 32 training audio files" in message
    assert all(f"/d/{n}.wav" in message for n in "abc")
    tracker.reset()
    assert (tracker.bad, tracker.files) == (0, 0)
    strict = BadFileTracker(max_fraction=0.0, min_files=0)
    with pytest.raises(TooManyBadFilesError):
        strict.update(["/d/a.wav: unreadable"], files_read=1000)


def test_csv_paths_must_stay_in_the_data_folders(tmp_path):
    root1, root2 = tmp_path / "vox2", tmp_path / "vox1"
    rows = {
        "a": {"wav": str(root1 / "wav" / "id1" / "s" / "1.wav")},
        "b": {"wav": "wav/id2/s/1.wav"},
        "c": {"wav": str(root2 / "wav" / "x.wav")},
    }
    data = DynamicItemDataset({k: dict(v) for k, v in rows.items()})
    assert resolve_csv_paths(data, f"{root1},{root2}") == 0
    assert data.data["b"]["wav"] == str(root1 / "wav" / "id2" / "s" / "1.wav")

    escapes = [
        str(root1 / "wav" / ".." / ".." / "secret.wav"),
        "../vox1/wav/x.wav",  # inside vox1 only when allowed as a root
        "/etc/passwd",
    ]
    for path in escapes:
        data = DynamicItemDataset(
            {"a": dict(rows["a"]), "b": dict(rows["b"]), "bad": {"wav": path}}
        )
        with pytest.raises(ValueError) as err:
            resolve_csv_paths(data, str(root1), source="train.csv")
        # Line 4 of the CSV: the header, then rows a, b and bad.
        assert "train.csv:4 (ID bad)" in str(err.value)
        assert repr(path) in str(err.value)
        assert resolve_csv_paths(data, str(root1), allow_outside=True) == 1
        assert data.data["bad"]["wav"] == os.path.normpath(
            os.path.join(str(root1), path)
        )
