"""What a verification run embeds: cohort, views needed, audio checks.

The pieces between parsing the trial lists
(:mod:`~speechbrain_ext.scoring.trial_lists`) and extracting the
embeddings (:mod:`~speechbrain_ext.scoring.extract`):

* :func:`read_cohort` reads the AS-norm cohort (a CSV with a ``wav``
  column, or a text list of paths);
* :func:`embedding_needs` says which views of which file are needed (the
  enrolment side at full length, the test side in every condition);
* :func:`audio_lengths` checks every file up front (missing files listed
  with their count, unreadable ones named, too-short ones named).

The trials are then scored by :mod:`~speechbrain_ext.scoring.trial_scores`.

Authors
 * MR-RawNet recipe contributors
"""

import csv
import os

import numpy as np

from speechbrain_ext.data.paths import resolve_path
from speechbrain_ext.scoring.audio_files import (
    AudioFileError,
    _listing,
    file_stamps,
)

__all__ = [
    "MIN_SAMPLES",
    "audio_lengths",
    "embedding_needs",
    "read_cohort",
]


#: Shortest utterance MR-RawNet embeds at full length (20 ms at 16 kHz).
MIN_SAMPLES = 320


def read_cohort(path, audio_folder, size=None, seed=0, allow_outside=False,
                data_root=None):
    """Reads the AS-norm cohort: audio paths of training utterances.

    A ``.csv`` file must have a ``wav`` column (SpeechBrain's training
    CSVs; ``$data_root`` is replaced by ``data_root``). Any other file is a
    text list with one path per line (first field; blank lines and ``#``
    comments skipped). Relative paths are resolved under ``audio_folder``
    (``..`` escapes refused unless ``allow_outside``); absolute paths are
    kept. Duplicates are dropped; if more than ``size`` remain, a random
    subset of ``size`` (seeded) is kept, in file order.

    Arguments
    ---------
    path : str
        Cohort CSV or list.
    audio_folder : str
        Root of relative paths.
    size : int or None
        Most utterances kept (None: all).
    seed : int
        Seed of the subset.
    allow_outside : bool
        Accept relative paths that leave ``audio_folder``.
    data_root : str or None
        Replacement of ``$data_root`` in the CSV (default
        ``audio_folder``).

    Returns
    -------
    list of str
        Absolute audio paths.

    Example
    -------
    >>> d = str(getfixture("tmp_path"))
    >>> p = os.path.join(d, "cohort.txt")
    >>> _ = open(p, "w").write("s1/a.wav\\n# note\\n\\ns2/b.wav\\ns1/a.wav\\n")
    >>> [os.path.relpath(x, d) for x in read_cohort(p, d)]
    ['s1/a.wav', 's2/b.wav']
    """
    entries = []
    if str(path).lower().endswith(".csv"):
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if "wav" not in (reader.fieldnames or []):
                raise ValueError(
                    f"cohort CSV {path} has no 'wav' column (columns: "
                    f"{reader.fieldnames})"
                )
            root = audio_folder if data_root is None else data_root
            for number, row in enumerate(reader, start=2):
                wav = row["wav"].replace("$data_root", os.fspath(root))
                entries.append((wav, f"{path}:{number}"))
    else:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                fields = line.split()
                if fields and not fields[0].startswith("#"):
                    entries.append((fields[0], f"{path}:{number}"))
    paths = []
    for wav, where in entries:
        if os.path.isabs(wav):
            paths.append(os.path.normpath(wav))
        else:
            paths.append(resolve_path(wav, audio_folder, allow_outside, where))
    paths = list(dict.fromkeys(paths))
    if not paths:
        raise ValueError(f"the cohort file {path} lists no utterances")
    if size is not None and len(paths) > int(size):
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(paths), int(size), replace=False))
        paths = [paths[i] for i in keep]
    return paths


def embedding_needs(lists, crop_lengths, cohort=(), cohort_view=None):
    """Which views of which file a run needs.

    Enrolment files need the full view; test files need the view of every
    condition; cohort files need ``cohort_view``.

    Arguments
    ---------
    lists : sequence of LoadedList
        The trial lists.
    crop_lengths : iterable of int or None
        Test-side crop lengths of the conditions (None for full length).
    cohort : sequence of str
        Cohort files.
    cohort_view : int or None
        Crop length of the cohort embeddings.

    Returns
    -------
    dict
        ``path -> list of crop lengths`` (None first).

    Example
    -------
    >>> from speechbrain_ext.scoring.trial_lists import LoadedList, TrialSpec
    >>> from speechbrain_ext.scoring.trials import parse_trials
    >>> t = parse_trials(["1 a b", "0 a c"])
    >>> lists = [LoadedList(TrialSpec("t", "t", "/"), t, ["a", "a"],
    ...                     ["b", "c"])]
    >>> embedding_needs(lists, [None, 16640], ["z"])
    {'a': [None], 'b': [None, 16640], 'c': [None, 16640], 'z': [None]}
    """
    needs = {}

    def add(path, view):
        views = needs.setdefault(path, [])
        if view not in views:
            views.append(view)

    crop_lengths = list(crop_lengths)
    for loaded in lists:
        for path in loaded.enrol:
            add(path, None)
        for path in loaded.test:
            for view in crop_lengths:
                add(path, view)
    for path in cohort:
        add(path, cohort_view)
    return {
        p: sorted(v, key=lambda x: -1 if x is None else x)
        for p, v in needs.items()
    }


def audio_lengths(needs, sample_rate=16000, workers=8, progress=True):
    """Checks every needed file up front and returns its length.

    Missing files are reported all at once (count and first names), then
    headers are read (unreadable files named), then files too short for a
    full-length embedding are named.

    Arguments
    ---------
    needs : Mapping
        ``path -> crop lengths``, see :func:`embedding_needs`.
    sample_rate : int
        Model rate; lengths are converted to it.
    workers : int
        Threads reading headers.
    progress : bool
        Show a progress bar while headers are read.

    Returns
    -------
    stamps : dict
        ``path -> (size, mtime_ns)``.
    lengths : dict
        ``path -> length in samples at sample_rate``.

    Raises
    ------
    AudioFileError
        Missing, unreadable or too-short files.

    Example
    -------
    >>> import soundfile
    >>> wav = os.path.join(str(getfixture("tmp_path")), "a.wav")
    >>> soundfile.write(wav, np.zeros(4000), 8000)
    >>> audio_lengths({wav: [None]}, workers=1)[1][wav]
    8000
    """
    from speechbrain_ext.data.audio_headers import read_audio_headers
    from speechbrain_ext.data.prep_common import PreparationError

    paths = list(needs)
    stamps = file_stamps(paths)
    try:
        headers = read_audio_headers(
            paths, workers=workers, desc="Checking audio",
            progress=progress,
        )
    except PreparationError as err:
        raise AudioFileError(str(err)) from None
    lengths, short = {}, []
    for path, (frames, rate, _) in zip(paths, headers, strict=True):
        lengths[path] = int(round(frames * sample_rate / rate))
        if lengths[path] < MIN_SAMPLES and None in needs[path]:
            short.append(f"{path} ({frames} samples at {rate} Hz)")
        elif frames == 0:
            short.append(f"{path} (empty)")
    if short:
        raise AudioFileError(
            f"{len(short)} audio file(s) too short to embed (MR-RawNet needs "
            f"at least {MIN_SAMPLES} samples at {sample_rate} Hz): "
            f"{_listing(short)}"
        )
    return stamps, lengths
