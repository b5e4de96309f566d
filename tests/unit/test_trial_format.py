"""Tests of the one trial-list parser, speechbrain_ext.data.trial_format.

Preparation (``data.trial_csv.read_trial_list``, which decides the speakers
left out of training), downloads (``data.download.count_trials``) and
scoring (``scoring.trials.read_trials``) read lists through it, so a list
one of them accepts the others accept too.
"""

import pytest

from speechbrain_ext.data import download, trial_csv
from speechbrain_ext.data.trial_format import (
    Trial,
    TrialListError,
    parse_trial_lines,
    read_trial_file,
)
from speechbrain_ext.scoring import trials as scoring_trials

GOOD = (
    "1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav\n"
    "\n"
    "0\tid10270/x6uYqmx31kE/00001.wav   id10300/ize_eiCFEg0/00003.wav  \n"
    "   \n"
)


def _write(tmp_path, text, name="veri.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _readers():
    """Every reader of ``label enrol test`` lists, by name."""
    return {
        "parse": read_trial_file,
        "prepare": trial_csv.read_trial_list,
        "download": download.count_trials,
        "scoring": scoring_trials.read_trials,
    }


def test_good_list_blank_lines_and_any_whitespace(tmp_path):
    path = _write(tmp_path, GOOD)
    assert read_trial_file(path) == [
        Trial(1, "id10270/x6uYqmx31kE/00001.wav",
              "id10270/8jEAjG6SegY/00008.wav", 1),
        Trial(0, "id10270/x6uYqmx31kE/00001.wav",
              "id10300/ize_eiCFEg0/00003.wav", 3),
    ]
    assert trial_csv.read_trial_list(path) == [
        (t.label, t.enrol, t.test) for t in read_trial_file(path)
    ]
    assert download.count_trials(path) == 2
    assert scoring_trials.read_trials(path).line_numbers.tolist() == [1, 3]


@pytest.mark.parametrize("reader", sorted(_readers()))
@pytest.mark.parametrize(
    "bad_line, match",
    [
        # 2 fields (unlabelled pairs): refused everywhere, also by
        # preparation, which used to accept them with label None.
        ("a/1.wav b/2.wav\n", "expected 3 fields.*got 2.*unlabelled"),
        ("1 a.wav\n", "expected 3 fields.*got 2"),
        ("1 a.wav b.wav c.wav\n", "expected 3 fields.*got 4"),
        ("2 a.wav b.wav\n", "label must be 0.*'2'"),
        ("-1 a.wav b.wav\n", "label must be 0.*'-1'"),
        ("01 a.wav b.wav\n", "label must be 0.*'01'"),
        ("target a.wav b.wav\n", "label must be 0.*'target'"),
        # No comments: a '#' line is a malformed line like any other.
        ("# label enrol test\n", "expected 3 fields.*got 4"),
        ("# a b\n", "label must be 0.*'#'"),
    ],
)
def test_every_reader_refuses_with_file_and_line(
    tmp_path, reader, bad_line, match
):
    path = _write(tmp_path, GOOD + bad_line)
    with pytest.raises(TrialListError, match=match) as info:
        _readers()[reader](path)
    assert str(info.value).startswith(f"{path}:5: ")
    assert (info.value.source, info.value.line) == (path, 5)


@pytest.mark.parametrize("reader", sorted(_readers()))
def test_every_reader_refuses_an_empty_list(tmp_path, reader):
    path = _write(tmp_path, "\n  \n")
    with pytest.raises(TrialListError, match="no trials") as info:
        _readers()[reader](path)
    assert str(info.value) == f"{path}: the trial list has no trials"


def test_error_is_a_value_error_and_scoring_names_the_same_class():
    assert issubclass(TrialListError, ValueError)
    assert scoring_trials.TrialListError is TrialListError


def test_long_malformed_line_is_quoted_cut():
    with pytest.raises(TrialListError) as info:
        parse_trial_lines(["x" * 1000], "page.html")
    message = str(info.value)
    assert message.startswith("page.html:1: expected 3 fields")
    assert len(message) < 300 and message.endswith("...'")


def test_undecodable_bytes(tmp_path):
    path = tmp_path / "veri.txt"
    path.write_bytes(b"1 a.wav b.wav\n\xff\xfe\n")
    with pytest.raises(UnicodeDecodeError):
        read_trial_file(path)
    with pytest.raises(TrialListError, match=r"veri\.txt:2: expected 3"):
        read_trial_file(path, errors="replace")
