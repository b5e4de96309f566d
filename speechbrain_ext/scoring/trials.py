"""Verification trial lists.

A trial list has one trial per line, ``label enrol_path test_path``, with
label ``1`` for a target (same speaker) and ``0`` for a non-target trial::

    1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav

The test-side crops of the short-duration protocol are in
:mod:`speechbrain_ext.scoring.views`.

The lines are parsed by :mod:`speechbrain_ext.data.trial_format` (the one
parser, shared with data preparation) and paths are resolved by
:func:`~speechbrain_ext.data.paths.resolve_path`; ``TrialListError`` and
``resolve_path`` are re-exported here for existing callers.

Authors
 * MR-RawNet recipe contributors
"""

from dataclasses import dataclass

import numpy as np

from speechbrain_ext.data.paths import resolve_path
from speechbrain_ext.data.trial_format import TrialListError, parse_trial_lines

__all__ = [
    "TrialList",
    "TrialListError",
    "parse_trials",
    "read_trials",
    "resolve_path",
]

@dataclass(frozen=True)
class TrialList:
    """Parsed trials as parallel arrays.

    Arguments
    ---------
    labels : numpy.ndarray
        int8 array, 1 = target, 0 = non-target.
    enrol : numpy.ndarray
        Enrolment utterance paths (object array of str).
    test : numpy.ndarray
        Test utterance paths (object array of str).
    line_numbers : numpy.ndarray
        1-based line of each trial in ``source`` (int64).
    source : str
        Where the trials were read from (for messages).

    Example
    -------
    >>> t = parse_trials(["1 a.wav b.wav", "0 a.wav c.wav"])
    >>> len(t), t.n_target, t.n_nontarget
    (2, 1, 1)
    >>> t.utterances()
    ['a.wav', 'b.wav', 'c.wav']
    """

    labels: np.ndarray
    enrol: np.ndarray
    test: np.ndarray
    line_numbers: np.ndarray
    source: str = "<trials>"

    def __len__(self):
        """Number of trials."""
        return int(self.labels.size)

    @property
    def n_target(self):
        """Number of target trials."""
        return int(np.count_nonzero(self.labels == 1))

    @property
    def n_nontarget(self):
        """Number of non-target trials."""
        return int(np.count_nonzero(self.labels == 0))

    def utterances(self):
        """Sorted unique utterance paths over both sides.

        Returns
        -------
        list of str
            Every path appearing as enrolment or test, once.
        """
        return sorted(set(self.enrol.tolist()) | set(self.test.tolist()))

    def resolve(self, data_folder, allow_outside=False):
        """Absolute enrolment and test paths under ``data_folder``.

        Arguments
        ---------
        data_folder : str or os.PathLike
            Root of the audio files.
        allow_outside : bool
            Permit paths that leave ``data_folder`` (see
            :func:`~speechbrain_ext.data.paths.resolve_path`).

        Returns
        -------
        enrol : list of str
            Absolute enrolment paths, one per trial.
        test : list of str
            Absolute test paths, one per trial.

        Example
        -------
        >>> t = parse_trials(["1 a.wav b.wav", "0 a.wav ../c.wav"], "v.txt")
        >>> t.resolve("/data", allow_outside=True)[1]
        ['/data/b.wav', '/c.wav']
        >>> t.resolve("/data")
        Traceback (most recent call last):
        ...
        ValueError: v.txt:2: '../c.wav' resolves to '/c.wav', outside ...
        """
        out = ([], [])
        rows = zip(self.enrol, self.test, self.line_numbers, strict=True)
        for e, t, n in rows:
            where = f"{self.source}:{n}"
            out[0].append(resolve_path(e, data_folder, allow_outside, where))
            out[1].append(resolve_path(t, data_folder, allow_outside, where))
        return out


def parse_trials(lines, source="<trials>", require_both_classes=True):
    """Parses trial lines ``label enrol_path test_path`` into a TrialList.

    The lines follow the rules of :mod:`speechbrain_ext.data.trial_format`
    (the parser data preparation uses too): blank lines are skipped, fields
    are separated by any whitespace.

    Arguments
    ---------
    lines : iterable of str
        The lines of the list.
    source : str
        Name used in error messages (normally the file path).
    require_both_classes : bool
        If True (default) a list of only targets or only non-targets is an
        error, since no EER can be computed from it.

    Returns
    -------
    TrialList
        The parsed trials.

    Raises
    ------
    TrialListError
        Wrong field count or a label other than 0/1 (with the line number),
        no trials at all, or only one class.

    Example
    -------
    >>> t = parse_trials(["1 a.wav b.wav", "", "0 a.wav c.wav"], "v.txt")
    >>> t.labels.tolist(), t.test.tolist(), t.line_numbers.tolist()
    ([1, 0], ['b.wav', 'c.wav'], [1, 3])
    >>> parse_trials(["1 a.wav"], "v.txt")
    Traceback (most recent call last):
    ...
    speechbrain_ext.data.trial_format.TrialListError: v.txt:1: expected 3 ...
    """
    trials = parse_trial_lines(lines, source)
    label_arr = np.asarray([t.label for t in trials], dtype=np.int8)
    n_target = int(label_arr.sum())
    if require_both_classes and n_target in (0, label_arr.size):
        only = "target (1)" if n_target else "non-target (0)"
        raise TrialListError(
            source,
            None,
            f"all {label_arr.size} trials are {only}; both classes are "
            "needed to compute EER/minDCF",
        )
    return TrialList(
        labels=label_arr,
        enrol=np.asarray([t.enrol for t in trials], dtype=object),
        test=np.asarray([t.test for t in trials], dtype=object),
        line_numbers=np.asarray([t.line for t in trials], dtype=np.int64),
        source=str(source),
    )


def read_trials(path, require_both_classes=True):
    """Reads a trial list file (UTF-8).

    Arguments
    ---------
    path : str or os.PathLike
        The trial list.
    require_both_classes : bool
        See :func:`parse_trials`.

    Returns
    -------
    TrialList
        The parsed trials, with ``source`` set to ``path``.

    Example
    -------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "veri.txt")
    ...     with open(p, "w") as f:
    ...         _ = f.write("1 a/1.wav b/2.wav\\n0 a/1.wav c/3.wav\\n")
    ...     t = read_trials(p)
    >>> t.enrol.tolist(), t.labels.tolist()
    (['a/1.wav', 'a/1.wav'], [1, 0])
    """
    with open(path, encoding="utf-8") as f:
        return parse_trials(f, str(path), require_both_classes)

