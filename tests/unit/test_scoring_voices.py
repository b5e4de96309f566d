"""VOiCES lists as published: trial keys + enrolment list, read directly."""

import pytest

from speechbrain_ext.scoring import trial_lists
from speechbrain_ext.scoring.trials import TrialListError

SR = "VOiCES/Development_Data/Speaker_Recognition"
LISTS = f"{SR}/sid_dev_lists_and_keys"


def _name(spk, chapter, seg, mic="mc01", room="rm1", noise="none"):
    return (f"Lab41-SRI-VOiCES-{room}-{noise}-sp{spk:04d}-ch{chapter:06d}-"
            f"sg{seg:04d}-{mic}-stu-clo-dg090")


def _write_lists(tmp_path, keys=None, enrol=None):
    """Enrolment of speakers 83 and 3521, three test files, six keys."""
    models = {83: _name(83, 3054, 5), 3521: _name(3521, 170732, 4)}
    enrol_lines = enrol if enrol is not None else [
        f"{m} sid_dev/sp{spk:04d}/{m}.wav" for spk, m in models.items()
    ]
    tests = [
        f"sid_dev/sp0083/{_name(83, 3054, 9, 'mc05', noise='babb')}.wav",
        f"sid_dev/sp3521/{_name(3521, 170732, 7, 'mc12')}.wav",
        f"sid_dev/sp0083/{_name(83, 3054, 12, 'mc07', noise='musi')}.wav",
    ]
    key_lines = keys if keys is not None else [
        f"{m} {t} {'tgt' if f'sp{spk:04d}' in t.split('/')[1] else 'imp'}"
        for spk, m in models.items() for t in tests
    ]
    folder = tmp_path / LISTS
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dev-enroll.lst").write_text("\n".join(enrol_lines) + "\n")
    (folder / "dev-test.lst").write_text("\n".join(tests) + "\n")
    (folder / "dev-trial-keys.lst").write_text("\n".join(key_lines) + "\n")
    return folder / "dev-trial-keys.lst", models, tests


def test_published_lists_give_trials_labels_and_paths(tmp_path):
    keys, models, tests = _write_lists(tmp_path)
    for item in (str(keys), {"path": str(keys), "format": "voices",
                             "name": "voices_dev"}):
        [spec] = trial_lists.trial_specs([item], str(tmp_path))
        assert spec.format == "voices"
        assert spec.audio_folder == str(tmp_path / SR)
        [loaded] = trial_lists.load_trial_lists([spec])
        t = loaded.trials
        assert t.labels.tolist() == [1, 0, 1, 0, 1, 0]
        enrol_83 = f"sid_dev/sp0083/{models[83]}.wav"
        enrol_3521 = f"sid_dev/sp3521/{models[3521]}.wav"
        assert t.enrol.tolist() == [enrol_83] * 3 + [enrol_3521] * 3
        assert t.test.tolist() == tests * 2
        assert t.line_numbers.tolist() == [1, 2, 3, 4, 5, 6]
        assert loaded.enrol[0] == str(tmp_path / SR / enrol_83)
        assert loaded.test[1] == str(tmp_path / SR / tests[1])


def test_voxceleb_lists_are_not_taken_for_voices(tmp_path):
    vox = tmp_path / "veri_test2.txt"
    vox.write_text("1 id1/a/1.wav id1/b/2.wav\n0 id1/a/1.wav id2/c/3.wav\n")
    [spec] = trial_lists.trial_specs([str(vox)], str(tmp_path))
    assert spec.format == "voxceleb" and spec.enrol_list is None
    keys, _, _ = _write_lists(tmp_path)
    with pytest.raises(TrialListError,
                       match=r"veri_test2\.txt:1: label must be tgt"):
        trial_lists.load_trial_lists(trial_lists.trial_specs(
            [{"path": str(vox), "format": "voices",
              "enrol_list": str(keys.parent / "dev-enroll.lst")}],
            str(tmp_path),
        ))
    with pytest.raises(TrialListError, match=r"dev-trial-keys\.lst:1: label"):
        trial_lists.load_trial_lists(trial_lists.trial_specs(
            [{"path": str(keys), "format": "voxceleb"}], str(tmp_path)
        ))


def test_explicit_enrol_list_and_audio_folder(tmp_path):
    keys, models, _ = _write_lists(tmp_path)
    moved = tmp_path / "elsewhere" / "enrol.txt"
    moved.parent.mkdir()
    moved.write_text((keys.parent / "dev-enroll.lst").read_text())
    (keys.parent / "dev-enroll.lst").unlink()
    with pytest.raises(FileNotFoundError, match=r"dev-enroll\.lst not found"
                       r".*'enrol_list'"):
        trial_lists.load_trial_lists(trial_lists.trial_specs([str(keys)], "."))
    [spec] = trial_lists.trial_specs(
        [{"path": str(keys), "enrol_list": str(moved),
          "audio_folder": "/audio"}], str(tmp_path),
    )
    assert spec.enrol_list == str(moved) and spec.audio_folder == "/audio"
    [loaded] = trial_lists.load_trial_lists([spec])
    assert loaded.enrol[-1] == f"/audio/sid_dev/sp3521/{models[3521]}.wav"


@pytest.mark.parametrize("keys,enrol,error", [
    (["m1 a.wav tgt", "m1 b.wav"], None, r"dev-trial-keys\.lst:2: expected 3"),
    (["m1 a.wav tgt", "m1 b.wav target"], None,
     r"dev-trial-keys\.lst:2: label must be tgt .* got 'target'"),
    (["m1 a.wav tgt", "", "m7 b.wav imp"], None,
     r"dev-trial-keys\.lst:3: model 'm7' is not in the enrolment list "
     r".*dev-enroll\.lst"),
    (["m1 a.wav tgt", "m1 b.wav tgt"], None, r"all 2 trials are target"),
    (["m1 a.wav tgt"], ["m1 x.wav", "m1"], r"dev-enroll\.lst:2: expected 2"),
    (["m1 a.wav tgt"], ["m1 x.wav", "m1 y.wav"],
     r"dev-enroll\.lst:2: model 'm1' was given 'x\.wav' on line 1"),
])
def test_errors_name_file_and_line(tmp_path, keys, enrol, error):
    path, _, _ = _write_lists(
        tmp_path, keys=keys, enrol=enrol if enrol else ["m1 x.wav"]
    )
    specs = trial_lists.trial_specs([{"path": str(path), "format": "voices"}],
                               str(tmp_path))
    with pytest.raises(TrialListError, match=error):
        trial_lists.load_trial_lists(specs)


def test_bad_entries(tmp_path):
    keys, _, _ = _write_lists(tmp_path)
    with pytest.raises(ValueError, match="format must be one of"):
        trial_lists.trial_specs([{"path": str(keys), "format": "kaldi"}], ".")
    vox = tmp_path / "v.txt"
    vox.write_text("1 a.wav b.wav\n0 a.wav c.wav\n")
    with pytest.raises(ValueError, match="'enrol_list' is only for VOiCES"):
        trial_lists.trial_specs(
            [{"path": str(vox), "enrol_list": str(keys)}], "."
        )
