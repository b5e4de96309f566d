"""Tests for trial lists and centre crops."""

import os
import re

import numpy as np
import pytest
import torch

from speechbrain_ext.scoring.trials import (
    TrialListError,
    parse_trials,
    read_trials,
)
from speechbrain_ext.scoring.views import DURATION_CONDITIONS, condition_crop

GOOD = (
    "1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav\n"
    "0 id10270/x6uYqmx31kE/00001.wav id10300/ize_eiCFEg0/00003.wav\n"
    "\n"
    "1 id10270/x6uYqmx31kE/00001.wav id10270/GWXujl-xAVM/00017.wav\n"
)


def _write(tmp_path, text, name="veri.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_read_good_list(tmp_path):
    trials = read_trials(_write(tmp_path, GOOD))
    assert trials.labels.tolist() == [1, 0, 1]
    assert trials.line_numbers.tolist() == [1, 2, 4]  # blank line 3 skipped
    assert trials.test[1] == "id10300/ize_eiCFEg0/00003.wav"
    assert set(trials.enrol) == {"id10270/x6uYqmx31kE/00001.wav"}
    assert (trials.n_target, trials.n_nontarget, len(trials)) == (2, 1, 3)
    assert len(trials.utterances()) == 4


@pytest.mark.parametrize(
    "bad_line, match",
    [
        ("1 a.wav\n", "expected 3 fields.*got 2"),
        ("1 a.wav b.wav c.wav\n", "expected 3 fields.*got 4"),
        ("2 a.wav b.wav\n", "label must be 0.*'2'"),
        ("target a.wav b.wav\n", "label must be 0.*'target'"),
        ("-1 a.wav b.wav\n", "label must be 0"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, bad_line, match):
    path = _write(tmp_path, GOOD + bad_line)
    with pytest.raises(TrialListError, match=match) as info:
        read_trials(path)
    assert str(info.value).startswith(f"{path}:5: ")
    assert (info.value.source, info.value.line) == (path, 5)


def test_empty_list_raises(tmp_path):
    path = _write(tmp_path, "\n   \n")
    with pytest.raises(TrialListError, match="no trials") as info:
        read_trials(path)
    assert str(info.value).startswith(path)


def test_single_class_raises_unless_allowed(tmp_path):
    path = _write(tmp_path, "1 a.wav b.wav\n1 a.wav c.wav\n")
    with pytest.raises(TrialListError, match="all 2 trials are target"):
        read_trials(path)
    assert read_trials(path, require_both_classes=False).n_target == 2
    with pytest.raises(TrialListError, match="non-target"):
        parse_trials(["0 a b"], "x")


def test_conditions_table():
    assert DURATION_CONDITIONS == {
        "full": None,
        "1.04s": 16640,
        "2.04s": 32640,
        "5.04s": 80640,
    }


def test_condition_crop_position():
    wav = np.arange(10)
    # start = (10 - 4) // 2 = 3
    np.testing.assert_array_equal(condition_crop(wav, 4), [3, 4, 5, 6])
    # start = (10 - 3) // 2 = 3 (floor)
    np.testing.assert_array_equal(condition_crop(wav, 3), [3, 4, 5])
    np.testing.assert_array_equal(condition_crop(wav, 10), wav)
    assert condition_crop(wav, None) is wav


def test_condition_crop_tiles_short_input():
    wav = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(
        condition_crop(wav, 8), [1, 2, 3, 1, 2, 3, 1, 2]
    )
    np.testing.assert_array_equal(condition_crop(wav, 4), [1, 2, 3, 1])
    np.testing.assert_array_equal(condition_crop(np.array([7]), 3), [7, 7, 7])


def test_condition_crop_torch():
    wav = torch.arange(10.0)
    out = condition_crop(wav, 4)
    assert isinstance(out, torch.Tensor)
    assert out.tolist() == [3.0, 4.0, 5.0, 6.0]
    short = condition_crop(torch.tensor([1.0, 2.0]), 5)
    assert isinstance(short, torch.Tensor)
    assert short.tolist() == [1.0, 2.0, 1.0, 2.0, 1.0]


def test_condition_crop_real_condition_lengths():
    long = np.arange(100_000, dtype=np.float32)
    out = condition_crop(long, DURATION_CONDITIONS["1.04s"])
    assert out.shape == (16640,)
    assert out[0] == (100_000 - 16640) // 2
    short = np.arange(30_000, dtype=np.float32)
    out = condition_crop(short, DURATION_CONDITIONS["5.04s"])
    assert out.shape == (80640,)
    assert out[30_000] == 0 and out[60_000] == 0 and out[-1] == 20639


def test_condition_crop_bad_input():
    with pytest.raises(ValueError, match="1-D"):
        condition_crop(np.zeros((2, 5)), 3)
    with pytest.raises(ValueError, match="empty"):
        condition_crop(np.zeros(0), 3)
    with pytest.raises(ValueError, match="> 0"):
        condition_crop(np.zeros(5), 0)
    with pytest.raises(TypeError, match="int"):
        condition_crop(np.zeros(5), 2.5)


def test_trial_list_resolve_names_line(tmp_path):
    text = "1 a/1.wav a/2.wav\n0 a/1.wav ../../etc/3.wav\n"
    path = _write(tmp_path, text)
    trials = read_trials(path)
    where = re.escape(f"{path}:2: '../../etc/3.wav'")
    with pytest.raises(ValueError, match=f"^{where}"):
        trials.resolve(tmp_path / "data")
    enrol, test = trials.resolve(tmp_path / "data", allow_outside=True)
    assert enrol[0] == str(tmp_path / "data" / "a" / "1.wav")
    assert test[1] == os.path.normpath(str(tmp_path / "../etc/3.wav"))
