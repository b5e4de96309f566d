"""The ``label enrol test`` trial-list format and its one parser.

VoxCeleb's trial lists (``veri_test2.txt``, ``list_test_hard2.txt``,
``list_test_all2.txt``) and the lists this project writes hold one trial
per line::

    1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav

The rules, the same for data preparation, downloads and scoring:

* fields are separated by any whitespace;
* a line holds exactly three fields: the label, then the enrolment and
  the test path (relative to the audio folder);
* the label is ``1`` (target: same speaker) or ``0`` (non-target);
  nothing else (``-1``, ``2``, ``target``, ``01``) is a label;
* blank lines (also whitespace only) are skipped; there are no comments
  (a ``#`` line is refused like any other malformed line);
* a line with only ``enrol test`` (no label) is refused: no list this
  project reads or downloads has such lines, and scoring needs the label;
* a list without any trial is an error.

Every error is a :class:`TrialListError` that names the file and line.
VOiCES lists have another format, read by
:mod:`speechbrain_ext.scoring.voices` into the same scoring structure.

Authors
 * MR-RawNet recipe contributors
"""

from typing import NamedTuple

__all__ = [
    "LABELS",
    "Trial",
    "TrialListError",
    "parse_trial_lines",
    "read_trial_file",
]

#: The label texts and the label they stand for.
LABELS = {"0": 0, "1": 1}

#: Longest part of a malformed line quoted in an error message.
_QUOTED = 200


class TrialListError(ValueError):
    """A trial list is malformed; the message names the file and line.

    Arguments
    ---------
    source : str
        The trial file (or another name for the text).
    line : int or None
        1-based line number, or None for errors about the whole list.
    message : str
        What is wrong.

    Example
    -------
    >>> str(TrialListError("veri.txt", 3, "bad label"))
    'veri.txt:3: bad label'
    """

    def __init__(self, source, line, message):
        self.source = source
        self.line = line
        where = f"{source}:{line}" if line is not None else f"{source}"
        super().__init__(f"{where}: {message}")


class Trial(NamedTuple):
    """One trial of a list.

    Arguments
    ---------
    label : int
        1 for a target trial, 0 for a non-target trial.
    enrol : str
        Enrolment path, as written in the list.
    test : str
        Test path, as written in the list.
    line : int
        1-based line of the trial in its list.

    Example
    -------
    >>> Trial(1, "a.wav", "b.wav", 3).test
    'b.wav'
    """

    label: int
    enrol: str
    test: str
    line: int


def _quote(line):
    """A malformed line for a message, cut to ``_QUOTED`` characters."""
    text = line.strip()
    if len(text) > _QUOTED:
        text = text[:_QUOTED] + "..."
    return repr(text)


def parse_trial_lines(lines, source="<trials>"):
    """Parses trial lines ``label enrol_path test_path``.

    See the module docstring for the rules.

    Arguments
    ---------
    lines : iterable of str
        The lines of the list.
    source : str
        Name used in error messages (normally the file path).

    Returns
    -------
    list of Trial
        The trials in list order, with their line numbers.

    Raises
    ------
    TrialListError
        A line without exactly three fields or with a label other than
        0/1 (``file:line``), or a list without trials.

    Example
    -------
    >>> parse_trial_lines(["1 a.wav b.wav", "", "0 a.wav c.wav"], "v.txt")
    [Trial(label=1, enrol='a.wav', test='b.wav', line=1),
     Trial(label=0, enrol='a.wav', test='c.wav', line=3)]
    >>> parse_trial_lines(["1 a.wav b.wav", "a.wav c.wav"], "v.txt")
    Traceback (most recent call last):
    ...
    speechbrain_ext.data.trial_format.TrialListError: v.txt:2: expected 3 ...
    >>> parse_trial_lines(["target a.wav b.wav"], "v.txt")
    Traceback (most recent call last):
    ...
    speechbrain_ext.data.trial_format.TrialListError: v.txt:1: label must ...
    """
    trials = []
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            hint = (
                "; lists of unlabelled 'enrol test' pairs are not supported"
                if len(fields) == 2
                else ""
            )
            raise TrialListError(
                source,
                number,
                "expected 3 fields 'label enrol_path test_path', got "
                f"{len(fields)}: {_quote(line)}{hint}",
            )
        label = LABELS.get(fields[0])
        if label is None:
            raise TrialListError(
                source,
                number,
                f"label must be 0 (non-target) or 1 (target), got "
                f"{fields[0][:_QUOTED]!r}",
            )
        trials.append(Trial(label, fields[1], fields[2], number))
    if not trials:
        raise TrialListError(source, None, "the trial list has no trials")
    return trials


def read_trial_file(path, errors="strict"):
    """Reads and parses a trial list file (UTF-8).

    Arguments
    ---------
    path : str or os.PathLike
        The trial list.
    errors : str
        How undecodable bytes are handled (see :func:`open`): ``"strict"``
        raises ``UnicodeDecodeError``, ``"replace"`` lets the line be
        refused by the format check instead.

    Returns
    -------
    list of Trial
        See :func:`parse_trial_lines`; errors name ``path``.

    Example
    -------
    >>> p = getfixture("tmp_path") / "veri.txt"
    >>> _ = p.write_text("1 a/1.wav b/2.wav\\n0 a/1.wav c/3.wav\\n")
    >>> [(t.label, t.test) for t in read_trial_file(p)]
    [(1, 'b/2.wav'), (0, 'c/3.wav')]
    """
    with open(path, encoding="utf-8", errors=errors) as f:
        return parse_trial_lines(f, str(path))
