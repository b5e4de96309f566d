"""VOiCES trial lists as published, read without conversion.

The VOiCES development set (the VOiCES from a Distance Challenge 2019)
comes with its speaker-recognition lists in
``Development_Data/Speaker_Recognition/sid_dev_lists_and_keys/``:

* ``dev-enroll.lst``: one enrolment per line, ``<model_id> <audio path>``;
* ``dev-trial-keys.lst``: one trial per line,
  ``<model_id> <test audio path> <tgt|imp>``;

with audio paths relative to ``Speaker_Recognition/`` (``sid_dev/sp0083/
Lab41-SRI-VOiCES-...wav``). :func:`read_voices_trials` turns the pair into
the :class:`~speechbrain_ext.scoring.trials.TrialList` that VoxCeleb's
``label enrol test`` lists give: label 1 for ``tgt``, 0 for ``imp``, the
enrolment side the model's audio file. Errors name the file and line.

Authors
 * MR-RawNet recipe contributors
"""

import os

import numpy as np

from speechbrain_ext.data.trial_format import TrialListError
from speechbrain_ext.scoring.trials import TrialList

__all__ = [
    "LABELS",
    "default_enrol_list",
    "default_voices_audio_folder",
    "looks_like_voices",
    "parse_enrol_list",
    "parse_voices_trials",
    "read_voices_trials",
]

#: Trial-key labels and the label they become.
LABELS = {"tgt": 1, "imp": 0}


def parse_enrol_list(lines, source="<enrol>"):
    """Reads ``<model_id> <audio path>`` lines.

    Arguments
    ---------
    lines : iterable of str
        The enrolment list.
    source : str
        Its name in error messages.

    Returns
    -------
    dict
        ``model_id -> audio path``.

    Raises
    ------
    TrialListError
        A line without exactly two fields, or a model given two different
        files (``file:line``).

    Example
    -------
    >>> parse_enrol_list(["m1 sid_dev/sp1/a.wav", "", "m2 sid_dev/sp2/b.wav"])
    {'m1': 'sid_dev/sp1/a.wav', 'm2': 'sid_dev/sp2/b.wav'}
    """
    models, first = {}, {}
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise TrialListError(
                source, number,
                "expected 2 fields 'model_id audio_path', got "
                f"{len(fields)}: {line.strip()!r}",
            )
        model, path = fields
        if model in models and models[model] != path:
            raise TrialListError(
                source, number,
                f"model {model!r} was given {models[model]!r} on line "
                f"{first[model]}; one audio file per model is supported",
            )
        models.setdefault(model, path)
        first.setdefault(model, number)
    if not models:
        raise TrialListError(source, None, "the enrolment list is empty")
    return models


def parse_voices_trials(lines, models, source="<keys>",
                        enrol_source="<enrol>", require_both_classes=True):
    """Reads ``<model_id> <test path> <tgt|imp>`` trial-key lines.

    Arguments
    ---------
    lines : iterable of str
        The trial keys.
    models : dict
        ``model_id -> audio path`` (:func:`parse_enrol_list`).
    source : str
        Name of the key file in error messages.
    enrol_source : str
        Name of the enrolment list in error messages.
    require_both_classes : bool
        A list of one class only is an error (no EER).

    Returns
    -------
    TrialList
        Labels, enrolment audio paths, test paths, key-file line numbers.

    Raises
    ------
    TrialListError
        Wrong field count, a label other than tgt/imp, a model missing
        from the enrolment list (``file:line``), or no / one-class trials.

    Example
    -------
    >>> models = {"m1": "sid_dev/sp1/a.wav"}
    >>> t = parse_voices_trials(["m1 sid_dev/sp1/b.wav tgt",
    ...                          "m1 sid_dev/sp2/c.wav imp"], models)
    >>> t.labels.tolist(), t.enrol.tolist()[0], t.test.tolist()[1]
    ([1, 0], 'sid_dev/sp1/a.wav', 'sid_dev/sp2/c.wav')
    >>> parse_voices_trials(["m9 x.wav tgt"], models, "keys.lst", "en.lst")
    Traceback (most recent call last):
    ...
    speechbrain_ext.data.trial_format.TrialListError: keys.lst:1: model 'm9' ...
    """
    labels, enrol, test, numbers = [], [], [], []
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise TrialListError(
                source, number,
                "expected 3 fields 'model_id test_path tgt|imp', got "
                f"{len(fields)}: {line.strip()!r}",
            )
        model, path, key = fields
        if key not in LABELS:
            raise TrialListError(
                source, number,
                f"label must be tgt (target) or imp (impostor), got {key!r}",
            )
        if model not in models:
            raise TrialListError(
                source, number,
                f"model {model!r} is not in the enrolment list "
                f"{enrol_source}",
            )
        labels.append(LABELS[key])
        enrol.append(models[model])
        test.append(path)
        numbers.append(number)
    if not labels:
        raise TrialListError(source, None, "the trial list has no trials")
    label_arr = np.asarray(labels, dtype=np.int8)
    n_target = int(label_arr.sum())
    if require_both_classes and n_target in (0, label_arr.size):
        only = "target (tgt)" if n_target else "impostor (imp)"
        raise TrialListError(
            source, None,
            f"all {label_arr.size} trials are {only}; both classes are "
            "needed to compute EER/minDCF",
        )
    return TrialList(
        labels=label_arr,
        enrol=np.asarray(enrol, dtype=object),
        test=np.asarray(test, dtype=object),
        line_numbers=np.asarray(numbers, dtype=np.int64),
        source=str(source),
    )


def default_enrol_list(key_path):
    """The enrolment list published beside a trial-key list.

    ``dev-trial-keys.lst`` -> ``dev-enroll.lst`` in the same folder.

    Arguments
    ---------
    key_path : str
        The trial-key list.

    Returns
    -------
    str
        The enrolment list's path (it may not exist).

    Example
    -------
    >>> default_enrol_list("/v/sid_dev_lists_and_keys/dev-trial-keys.lst")
    '/v/sid_dev_lists_and_keys/dev-enroll.lst'
    """
    folder, name = os.path.split(os.fspath(key_path))
    stem = name.split("-trial-keys")[0] if "-trial-keys" in name else "dev"
    return os.path.join(folder, f"{stem}-enroll.lst")


def default_voices_audio_folder(key_path):
    """Root of the lists' audio paths: the folder above the lists' folder.

    In the published layout the lists are in
    ``Speaker_Recognition/sid_dev_lists_and_keys/`` and the paths start
    with ``sid_dev/``, relative to ``Speaker_Recognition/``.

    Arguments
    ---------
    key_path : str
        The trial-key list.

    Returns
    -------
    str
        Absolute path of the audio root.

    Example
    -------
    >>> default_voices_audio_folder("/v/SR/sid_dev_lists_and_keys/k.lst")
    '/v/SR'
    """
    lists = os.path.dirname(os.path.abspath(os.fspath(key_path)))
    return os.path.dirname(lists)


def looks_like_voices(path):
    """True when the first trial line ends in ``tgt`` or ``imp``.

    Arguments
    ---------
    path : str
        A trial list of either format.

    Returns
    -------
    bool
        VOiCES trial keys (else VoxCeleb's ``label enrol test``).

    Example
    -------
    >>> p = getfixture("tmp_path") / "k.lst"
    >>> _ = p.write_text("\\nm1 sid_dev/sp1/b.wav imp\\n")
    >>> looks_like_voices(str(p))
    True
    """
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.split()
            if fields:
                return len(fields) == 3 and fields[2] in LABELS
    return False


def read_voices_trials(key_path, enrol_path=None, require_both_classes=True):
    """Reads a published VOiCES trial-key list and its enrolment list.

    Arguments
    ---------
    key_path : str
        ``dev-trial-keys.lst`` (or another list of the same format).
    enrol_path : str or None
        ``dev-enroll.lst``; None: :func:`default_enrol_list`.
    require_both_classes : bool
        See :func:`parse_voices_trials`.

    Returns
    -------
    TrialList
        With ``source`` the key file.

    Raises
    ------
    FileNotFoundError
        No enrolment list (names the path tried and the ``enrol_list``
        key).
    TrialListError
        Malformed lines (file:line).

    Example
    -------
    >>> d = getfixture("tmp_path")
    >>> _ = (d / "dev-enroll.lst").write_text("m1 sid_dev/sp1/a.wav\\n")
    >>> _ = (d / "dev-trial-keys.lst").write_text(
    ...     "m1 sid_dev/sp1/b.wav tgt\\nm1 sid_dev/sp2/c.wav imp\\n")
    >>> read_voices_trials(str(d / "dev-trial-keys.lst")).labels.tolist()
    [1, 0]
    """
    if enrol_path is None:
        enrol_path = default_enrol_list(key_path)
    if not os.path.isfile(enrol_path):
        raise FileNotFoundError(
            f"VOiCES enrolment list {enrol_path} not found for trial keys "
            f"{key_path}; give it with 'enrol_list' in the trial_lists entry"
        )
    with open(enrol_path, encoding="utf-8") as f:
        models = parse_enrol_list(f, str(enrol_path))
    with open(key_path, encoding="utf-8") as f:
        return parse_voices_trials(
            f, models, str(key_path), str(enrol_path), require_both_classes
        )
