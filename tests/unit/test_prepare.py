"""Tests of data preparation (VoxCeleb CSVs, trials, m4a) and its command.

``speechbrain_ext.data.prepare`` (the command line), ``voxceleb_train``,
``trial_csv``, ``convert_m4a`` and the modules they share.
"""

import csv
import logging
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from speechbrain_ext.data import convert_m4a
from speechbrain_ext.data import prepare as P
from speechbrain_ext.data.convert_m4a import convert_m4a_to_wav
from speechbrain_ext.data.csv_files import write_csv
from speechbrain_ext.data.prep_common import PreparationError
from speechbrain_ext.data.trial_csv import prepare_trial_csv
from speechbrain_ext.data.voxceleb_layout import SAMPLE_RATE, utterance_id
from speechbrain_ext.data.voxceleb_train import prepare_voxceleb_train

SR = 16000


def _write(path, frames, sr=SR, seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(frames)).astype("float32"), sr)


def _make_vox(root, layout, sr=SR):
    """layout: {spk: {sess: [frames, ...]}} -> {ID: (path, frames)}"""
    made = {}
    for spk, sessions in layout.items():
        for sess, lengths in sessions.items():
            for i, frames in enumerate(lengths):
                path = os.path.join(root, "wav", spk, sess, f"{i:05d}.wav")
                _write(path, frames, sr, seed=len(made))
                made[f"{spk}--{sess}--{i:05d}"] = (path, frames)
    return made


def _read_csv(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def _layout(n_spk=3, n_sess=2, n_utt=3):
    return {
        f"id{s:05d}": {
            f"sess{j}": [1600 + 37 * (s + j + u) for u in range(n_utt)]
            for j in range(n_sess)
        }
        for s in range(n_spk)
    }


@pytest.fixture
def vox(tmp_path):
    root = str(tmp_path / "vox")
    made = _make_vox(root, _layout())
    return root, made


def test_train_csv_columns_durations_and_trial_exclusion(vox, tmp_path):
    root, made = vox
    trials = tmp_path / "trials.txt"
    trials.write_text(
        "1 id00002/sess0/00000.wav id00002/sess1/00001.wav\n"
        "0 id00002/sess0/00000.wav id09999/x/00001.wav\n"
    )
    out = prepare_voxceleb_train(
        str(tmp_path / "out"), [root], [str(trials)], valid_ratio=0, workers=2
    )
    fields, rows = _read_csv(out["train"])
    assert fields == ["ID", "duration", "wav", "spk_id"]
    assert out["valid"] is None
    expected = {k: v for k, v in made.items() if not k.startswith("id00002")}
    assert [r["ID"] for r in rows] == sorted(expected)
    for row in rows:
        path, frames = expected[row["ID"]]
        assert os.path.isabs(row["wav"])
        assert os.path.samefile(row["wav"], path)
        assert float(row["duration"]) * SR == pytest.approx(frames, abs=1e-6)
        assert row["spk_id"] == row["ID"].split("--")[0]
    speakers = open(out["speakers"]).read().split("\n")
    assert speakers == ["id00000", "id00001", ""]
    assert out["summary"]["excluded_trial_speakers"] == 1
    assert out["summary"]["excluded_trial_files"] == 6
    assert out["summary"]["sample_rates"] == {"16000": 12}


def test_wrong_sample_rate_excluded_and_counted(vox, tmp_path, caplog):
    root, made = vox
    bad = os.path.join(root, "wav", "id00000", "sess0", "09999.wav")
    _write(bad, 800, sr=8000)
    with caplog.at_level(logging.WARNING):
        out = prepare_voxceleb_train(
            str(tmp_path / "out"), root, valid_ratio=0, workers=1
        )
    _, rows = _read_csv(out["train"])
    assert len(rows) == len(made)
    assert "id00000--sess0--09999" not in {r["ID"] for r in rows}
    assert out["summary"]["excluded_sample_rate"] == 1
    assert out["summary"]["sample_rates"] == {"8000": 1, "16000": 18}
    assert any(
        "1 file(s)" in r.message and "16000" in r.message
        for r in caplog.records
    )


def test_valid_split_deterministic_disjoint_and_speaker_safe(tmp_path):
    root = str(tmp_path / "vox")
    layout = _layout(n_spk=4, n_sess=3, n_utt=4)  # 48 files
    layout["id99999"] = {"only": [1600]}  # single-file speaker
    _make_vox(root, layout)

    def run(name, seed):
        out = prepare_voxceleb_train(
            str(tmp_path / name), root, valid_ratio=0.25, seed=seed
        )
        train = [r["ID"] for r in _read_csv(out["train"])[1]]
        valid = [r["ID"] for r in _read_csv(out["valid"])[1]]
        return train, valid

    train, valid = run("a", 1)
    assert len(valid) == round(49 * 0.25)
    assert not set(train) & set(valid)
    assert len(train) + len(valid) == 49
    train_spk = {i.split("--")[0] for i in train}
    assert {i.split("--")[0] for i in valid} <= train_spk
    assert "id99999--only--00000" in train
    assert run("b", 1) == (train, valid)
    assert run("c", 2)[1] != valid
    spk = open(tmp_path / "a" / "speakers.txt").read().split()
    assert spk == sorted(train_spk)


def test_cache_skips_and_redoes_on_changes(vox, tmp_path):
    root, made = vox
    save = str(tmp_path / "out")
    trials = tmp_path / "trials.txt"
    trials.write_text("1 id00000/sess0/00000.wav id00000/sess1/00000.wav\n")
    args = dict(trial_lists=[str(trials)], valid_ratio=0.1, workers=1)
    first = prepare_voxceleb_train(save, [root], **args)
    assert not first["skipped"]
    mtime = os.stat(first["train"]).st_mtime_ns

    again = prepare_voxceleb_train(save, [root], **args)
    assert again["skipped"]
    assert os.stat(first["train"]).st_mtime_ns == mtime
    assert again["summary"] == first["summary"]

    # an option change
    other = prepare_voxceleb_train(save, [root], **dict(args, seed=7))
    assert not other["skipped"]

    # an added file
    _write(os.path.join(root, "wav", "id00001", "new", "00000.wav"), 1600)
    added = prepare_voxceleb_train(save, [root], **dict(args, seed=7))
    assert not added["skipped"]
    ids = {r["ID"] for r in _read_csv(added["train"])[1]}
    ids |= {r["ID"] for r in _read_csv(added["valid"])[1]}
    assert "id00001--new--00000" in ids

    # a changed trial list (now excludes id00001 too)
    trials.write_text("1 id00000/sess0/00000.wav id00001/sess1/00000.wav\n")
    changed = prepare_voxceleb_train(save, [root], **dict(args, seed=7))
    assert not changed["skipped"]
    assert open(changed["speakers"]).read().split() == ["id00002"]

    # a removed output
    os.remove(changed["valid"])
    redo = prepare_voxceleb_train(save, [root], **dict(args, seed=7))
    assert not redo["skipped"] and os.path.isfile(redo["valid"])

    # valid_ratio=0 removes a stale valid.csv
    none = prepare_voxceleb_train(save, [root], **dict(args, valid_ratio=0))
    assert none["valid"] is None
    assert not os.path.exists(os.path.join(save, "valid.csv"))


def test_errors_name_the_problem(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(PreparationError, match="nope"):
        prepare_voxceleb_train(str(tmp_path / "out"), [missing])
    empty = tmp_path / "empty"
    (empty / "wav" / "id1" / "s").mkdir(parents=True)
    with pytest.raises(PreparationError, match="No audio.*empty"):
        prepare_voxceleb_train(str(tmp_path / "out"), [str(empty)])
    # every speaker excluded: raise, never an empty CSV
    root = str(tmp_path / "vox")
    _make_vox(root, {"id1": {"s": [1600, 1600]}})
    trials = tmp_path / "t.txt"
    trials.write_text("1 id1/s/00000.wav id1/s/00001.wav\n")
    with pytest.raises(PreparationError, match="excluding"):
        prepare_voxceleb_train(str(tmp_path / "out"), root, str(trials))
    assert not os.path.exists(tmp_path / "out" / "train.csv")
    with pytest.raises(PreparationError, match="empty CSV"):
        write_csv(str(tmp_path / "x.csv"), ["ID"], [])


def test_train_list_and_missing_files(vox, tmp_path):
    root, made = vox
    lst = tmp_path / "train_list.txt"
    lst.write_text(
        "id00000 id00000/sess0/00000.wav\nid00001 id00001/sess1/00002.wav\n"
    )
    out = prepare_voxceleb_train(
        str(tmp_path / "out"), train_list=str(lst), wav_root=root,
        valid_ratio=0,
    )
    _, rows = _read_csv(out["train"])
    assert [(r["ID"], r["spk_id"]) for r in rows] == [
        ("id00000--sess0--00000", "id00000"),
        ("id00001--sess1--00002", "id00001"),
    ]
    lines = [f"id7 id7/s/{i:05d}.wav" for i in range(7)]
    lst.write_text("\n".join(lines) + "\nid00000 id00000/sess0/00000.wav\n")
    with pytest.raises(PreparationError) as err:
        prepare_voxceleb_train(
            str(tmp_path / "out"), train_list=str(lst), wav_root=root
        )
    msg = str(err.value)
    assert "7 file(s)" in msg and "00000.wav" in msg and "7 in total" in msg
    assert "00006.wav" not in msg  # only the first few are listed


def test_two_folders_and_duplicate_ids(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    _make_vox(a, {"id1": {"s": [1600, 1700]}})
    _make_vox(b, {"id2": {"s": [1800]}})
    out = prepare_voxceleb_train(
        str(tmp_path / "out"), f"{a},{b}", valid_ratio=0
    )
    _, rows = _read_csv(out["train"])
    assert [r["spk_id"] for r in rows] == ["id1", "id1", "id2"]
    assert rows[2]["wav"].startswith(b)
    _make_vox(b, {"id1": {"s": [1600]}})
    with pytest.raises(PreparationError, match="Duplicate.*id1--s--00000"):
        prepare_voxceleb_train(str(tmp_path / "out"), [a, b])


def test_trial_csv_unique_utterances_and_errors(vox, tmp_path):
    root, made = vox
    trials = tmp_path / "trials.txt"
    trials.write_text(
        "1 id00000/sess0/00000.wav id00000/sess1/00001.wav\n"
        "0 id00000/sess0/00000.wav id00001/sess0/00002.wav\n"
    )
    csv_file = str(tmp_path / "out" / "enrol_test.csv")
    prepare_trial_csv(str(trials), root, csv_file)
    fields, rows = _read_csv(csv_file)
    assert fields == ["ID", "duration", "wav"]
    assert [r["ID"] for r in rows] == [
        "id00000--sess0--00000",
        "id00000--sess1--00001",
        "id00001--sess0--00002",
    ]
    for r in rows:
        path, frames = made[r["ID"]]
        assert os.path.samefile(r["wav"], path)
        assert float(r["duration"]) * SR == pytest.approx(frames, abs=1e-6)
    mtime = os.stat(csv_file).st_mtime_ns
    prepare_trial_csv(str(trials), root, csv_file)
    assert os.stat(csv_file).st_mtime_ns == mtime  # cached
    enrol = str(tmp_path / "out" / "enrol.csv")
    prepare_trial_csv(str(trials), root, enrol, side="enrol")
    assert [r["ID"] for r in _read_csv(enrol)[1]] == ["id00000--sess0--00000"]
    assert utterance_id("id00001/sess0/00002.wav") == rows[2]["ID"]

    trials.write_text(
        "".join(f"1 idX/s/{i}.wav idX/s/{i + 100}.wav\n" for i in range(6))
    )
    with pytest.raises(PreparationError) as err:
        prepare_trial_csv(str(trials), root, csv_file)
    assert "12 trial file(s) missing" in str(err.value)
    assert "12 in total" in str(err.value)


def test_convert_m4a_requires_ffmpeg(tmp_path, monkeypatch):
    monkeypatch.setattr(convert_m4a.shutil, "which", lambda *a, **k: None)
    with pytest.raises(PreparationError) as err:
        convert_m4a_to_wav(str(tmp_path), str(tmp_path / "o"))
    assert "ffmpeg" in str(err.value) and "Install" in str(err.value)


FAKE_FFMPEG = """\
#!{python}
import sys, soundfile
args = sys.argv[1:]
src, dst = args[args.index("-i") + 1], args[-1]
assert args[args.index("-ar") + 1] == "16000" and "-ac" in args
if "bad" in src:
    open(dst, "wb").write(b"RIFF partial")
    sys.exit("cannot decode " + src)
data, sr = soundfile.read(src, always_2d=True)
soundfile.write(dst, data.mean(axis=1), sr, format="WAV")
"""


def test_convert_m4a_with_fake_ffmpeg(tmp_path):
    ffmpeg = tmp_path / "bin" / "ffmpeg"
    ffmpeg.parent.mkdir()
    ffmpeg.write_text(FAKE_FFMPEG.format(python=sys.executable))
    ffmpeg.chmod(ffmpeg.stat().st_mode | stat.S_IEXEC)
    src = tmp_path / "vox2"
    for rel in ["id1/s/00001.m4a", "id1/s/00002.m4a", "id2/t/00001.m4a"]:
        path = src / "aac" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        stereo = np.random.default_rng(0).standard_normal((800, 2)) * 0.1
        sf.write(str(path), stereo, SR, format="WAV")
    dst = tmp_path / "out"
    counts = convert_m4a_to_wav(str(src), str(dst), 2, ffmpeg=str(ffmpeg))
    assert counts == {"total": 3, "converted": 3, "skipped": 0}
    info = sf.info(str(dst / "wav" / "id2" / "t" / "00001.wav"))
    assert (info.samplerate, info.channels, info.frames) == (SR, 1, 800)

    bad = src / "aac" / "id3" / "bad" / "00001.m4a"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"x")
    with pytest.raises(PreparationError, match="1 file.*bad"):
        convert_m4a_to_wav(str(src), str(dst), ffmpeg=str(ffmpeg))
    leftovers = os.listdir(dst / "wav" / "id3" / "bad")
    assert leftovers == []  # no truncated wav, no .part
    bad.unlink()
    counts = convert_m4a_to_wav(str(src), str(dst), ffmpeg=str(ffmpeg))
    assert counts == {"total": 3, "converted": 0, "skipped": 3}
    out = prepare_voxceleb_train(str(tmp_path / "csv"), str(dst), None,
                                   valid_ratio=0)
    assert out["summary"]["train_files"] == 3


def test_cli_module_entry_point(vox, tmp_path):
    root, made = vox
    trials = tmp_path / "t.txt"
    trials.write_text("1 id00001/sess0/00000.wav id00001/sess1/00000.wav\n")
    save = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "speechbrain_ext.data.prepare", "train",
        "--data_folder", root, "--save_folder", str(save),
        "--trials", str(trials), "--valid_ratio", "0",
    ]
    repo = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    proc = subprocess.run(
        cmd, cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert '"train_files": 12' in proc.stdout
    assert open(save / "speakers.txt").read().split() == ["id00000", "id00002"]
    assert "Prepared" in proc.stderr
    # bad input: non-zero exit and the folder named
    proc = subprocess.run(
        cmd[:5] + [str(tmp_path / "missing")] + cmd[6:],
        cwd=repo, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0 and "missing" in proc.stderr


def test_wav_paths_with_comma_survive_csv(tmp_path):
    root = str(tmp_path / "a,b")
    _make_vox(root, {"id1": {"s": [1600]}})
    out = prepare_voxceleb_train(str(tmp_path / "o"), [root], valid_ratio=0)
    _, rows = _read_csv(out["train"])
    assert os.path.isfile(rows[0]["wav"]) and "a,b" in rows[0]["wav"]


def test_header_progress_bar_can_be_switched_off(tmp_path, capsys):
    """``--noprogressbar`` reaches the header check (verification recipe)."""
    from speechbrain_ext.scoring.verify import audio_lengths

    wav = str(tmp_path / "a.wav")
    sf.write(wav, np.zeros(8000), 16000)
    audio_lengths({wav: [None]}, workers=1, progress=True)
    assert "Checking audio" in capsys.readouterr().err
    _, lengths = audio_lengths({wav: [None]}, workers=1, progress=False)
    assert lengths[wav] == 8000
    assert capsys.readouterr().err == ""


# Bad audio: one policy with training (max_bad_file_fraction) ------------


def _damage(path, how):
    """Makes a prepared file unreadable or cuts it short (as a broken copy
    or download would)."""
    if how == "unreadable":
        data = bytearray(open(path, "rb").read())
        data[:4] = b"JUNK"
        open(path, "wb").write(bytes(data))
    else:  # truncated: keep the header, lose the second half of the data
        os.truncate(path, 44 + (os.path.getsize(path) - 44) // 2)


def test_bad_files_are_named_skipped_and_counted(vox, tmp_path, caplog):
    root, made = vox
    save = str(tmp_path / "out")
    first = prepare_voxceleb_train(save, [root], valid_ratio=0, workers=1)
    assert first["summary"]["excluded_bad"] == 0
    # After preparation: one file turns unreadable, one is cut short.
    unreadable, _ = made["id00001--sess0--00001"]
    truncated, frames = made["id00002--sess1--00002"]
    _damage(unreadable, "unreadable")
    _damage(truncated, "truncated")
    # libsndfile reports the shorter length without a word.
    assert 0 < sf.info(truncated).frames < frames
    with caplog.at_level(logging.WARNING):
        out = prepare_voxceleb_train(save, [root], valid_ratio=0, workers=1)
    assert not out["skipped"]
    summary = out["summary"]
    assert summary["excluded_bad"] == 2
    assert summary["train_files"] == len(made) - 2
    reasons = dict(b.split(": ", 1) for b in summary["bad_files"])
    assert set(reasons) == {unreadable, truncated}
    assert reasons[truncated].startswith(
        f"truncated: its header announces {frames} frames, the file holds"
    )
    _, rows = _read_csv(out["train"])
    assert {r["wav"] for r in rows}.isdisjoint({unreadable, truncated})
    warning = "\n".join(r.getMessage() for r in caplog.records)
    assert "Left out 2 missing or unusable file(s)" in warning
    assert unreadable in warning and truncated in warning


def test_too_many_bad_files_stop_preparation_naming_them(vox, tmp_path):
    root, made = vox
    path, _ = made["id00000--sess1--00000"]
    _damage(path, "truncated")
    with pytest.raises(PreparationError) as err:
        prepare_voxceleb_train(
            str(tmp_path / "out"), [root], max_bad_file_fraction=0,
            workers=1,
        )
    assert "1 file(s) of the 18 training files" in str(err.value)
    assert f"{path} (truncated" in str(err.value)
    assert "max_bad_file_fraction=0" in str(err.value)
    # The same limit as training: 1 of 18, counted from at least 10 files.
    ok = prepare_voxceleb_train(
        str(tmp_path / "out"), [root], max_bad_file_fraction=0.1,
        bad_file_min_files=10, workers=1,
    )
    assert ok["summary"]["excluded_bad"] == 1


def test_truncated_trial_file_is_an_error(vox, tmp_path):
    root, made = vox
    path, _ = made["id00000--sess0--00000"]
    _damage(path, "truncated")
    trials = tmp_path / "trials.txt"
    trials.write_text("1 id00000/sess0/00000.wav id00000/sess1/00001.wav\n")
    with pytest.raises(PreparationError, match="truncated: its header"):
        prepare_trial_csv(str(trials), root, str(tmp_path / "t.csv"))


def test_cli_defaults_are_the_recipe_defaults(monkeypatch, capsys):
    """The README's separate ``prepare train`` step, run without options,
    must write what the training recipe would, or training redoes it."""
    import yaml

    repo = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    text = open(os.path.join(repo, "hparams", "mr_rawnet.yaml")).read()
    plain = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("valid_ratio", "prep_seed", "sample_rate",
                   "max_bad_file_fraction", "bad_file_min_files"):
            plain[key] = yaml.safe_load(value.split("#")[0])
    seen = {}

    def capture(save_folder, **kwargs):
        seen.update(kwargs)
        return {"summary": {}}

    monkeypatch.setattr(P, "prepare_voxceleb_train", capture)
    assert P.main(["train", "--data_folder", "d", "--save_folder", "s"]) == 0
    capsys.readouterr()
    expected = {
        "valid_ratio": plain["valid_ratio"], "seed": plain["prep_seed"],
        "max_bad_file_fraction": plain["max_bad_file_fraction"],
        "bad_file_min_files": plain["bad_file_min_files"],
    }
    assert {k: seen[k] for k in expected} == expected
    assert SAMPLE_RATE == plain["sample_rate"]
