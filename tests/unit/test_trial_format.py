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


PAIRS = [
    ("id1/s/00001.wav", "id1/t/00002.wav"),
    ("id1/s/00001.wav", "id2/u/00001.wav"),
]


def _audio_folder(tmp_path):
    """A wav root holding the files of ``PAIRS`` (0.1 s each)."""
    import numpy as np
    import soundfile as sf

    root = tmp_path / "vox" / "wav"
    for rel in sorted({p for pair in PAIRS for p in pair}):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(root / rel), np.zeros(1600), 16000)
    return root.parent


def test_preparation_steps_and_scoring_read_the_same_trials(tmp_path):
    """The trial CSV holds exactly the utterances scoring reads, and the
    speakers left out of training are exactly scoring's speakers."""
    from speechbrain_ext.data.voxceleb_layout import utterance_id

    folder = _audio_folder(tmp_path)
    path = _write(tmp_path, f"1 {' '.join(PAIRS[0])}\n\n"
                  f"0\t{'  '.join(PAIRS[1])}\n")
    scored = scoring_trials.read_trials(path)
    csv_file = trial_csv.prepare_trial_csv(
        path, str(folder), str(tmp_path / "trials.csv"), workers=1
    )
    with open(csv_file) as f:
        ids = [line.split(",")[0] for line in f.read().splitlines()[1:]]
    assert ids == sorted(utterance_id(u) for u in scored.utterances())
    assert trial_csv.trial_speakers([path]) == {
        u.split("/")[0] for u in scored.utterances()
    }


@pytest.mark.parametrize("step", ["trial_csv", "speakers", "train"])
@pytest.mark.parametrize(
    "bad_line, match",
    [("2 id1/s/00001.wav id2/u/00001.wav\n", "label must be 0.*'2'"),
     ("id1/s/00001.wav id2/u/00001.wav\n", "expected 3 fields.*got 2")],
)
def test_preparation_steps_refuse_like_scoring_with_file_and_line(
    tmp_path, step, bad_line, match
):
    """A line scoring refuses stops every preparation step that reads the
    list, with the same ``file:line`` message."""
    from speechbrain_ext.data.voxceleb_train import prepare_voxceleb_train

    folder = _audio_folder(tmp_path)
    path = _write(tmp_path, f"1 {' '.join(PAIRS[0])}\n{bad_line}")
    with pytest.raises(TrialListError, match=match) as scored:
        scoring_trials.read_trials(path)
    steps = {
        "trial_csv": lambda: trial_csv.prepare_trial_csv(
            path, str(folder), str(tmp_path / "t.csv"), workers=1
        ),
        "speakers": lambda: trial_csv.trial_speakers([path]),
        "train": lambda: prepare_voxceleb_train(
            str(tmp_path / "save"), [str(folder)], [path], workers=1
        ),
    }
    with pytest.raises(TrialListError) as prepared:
        steps[step]()
    assert str(prepared.value) == str(scored.value)
    assert str(prepared.value).startswith(f"{path}:2: ")
