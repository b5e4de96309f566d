"""Trial lists, cohort, audio checks and scores of a verification run.

The pieces between reading the configuration and writing the report:

* :func:`trial_specs` and :func:`load_trial_lists` turn the ``trial_lists``
  hyperparameter into parsed, path-resolved lists;
* :func:`read_cohort` reads the AS-norm cohort (a CSV with a ``wav``
  column, or a text list of paths);
* :func:`embedding_needs` says which views of which file are needed (the
  enrolment side at full length, the test side in every condition);
* :func:`audio_lengths` checks every file up front (missing files listed
  with their count, unreadable ones named, too-short ones named);
* :func:`cosine_trial_scores` and :class:`CohortNormaliser` score the
  trials, the latter with AS-norm statistics computed once per utterance
  and view.

Authors
 * MR-RawNet recipe contributors
"""

import csv
import os
import re
from dataclasses import dataclass

import numpy as np

from speechbrain_ext.data.paths import resolve_path
from speechbrain_ext.scoring.extract import (
    AudioFileError,
    _listing,
    file_stamps,
    view_name,
)
from speechbrain_ext.scoring.norm import as_norm_from_stats, cohort_statistics
from speechbrain_ext.scoring.trials import (
    TrialList,
    read_trials,
)
from speechbrain_ext.scoring.voices import (
    default_voices_audio_folder,
    looks_like_voices,
    read_voices_trials,
)

__all__ = [
    "CohortNormaliser",
    "FORMATS",
    "LoadedList",
    "TrialSpec",
    "audio_lengths",
    "cosine_trial_scores",
    "default_audio_folder",
    "embedding_needs",
    "find_trial_file",
    "load_trial_lists",
    "read_cohort",
    "trial_keys",
    "trial_specs",
]

#: Shortest utterance MR-RawNet embeds at full length (20 ms at 16 kHz).
MIN_SAMPLES = 320

#: Trial-list formats: VoxCeleb's ``label enrol test`` and VOiCES's
#: published trial keys + enrolment list (``auto`` tells them apart).
FORMATS = ("auto", "voxceleb", "voices")


@dataclass(frozen=True)
class TrialSpec:
    """One trial list to score.

    Arguments
    ---------
    name : str
        Short name used in file names and tables.
    path : str
        The trial list file.
    audio_folder : str
        Folder the list's audio paths are relative to.
    format : str
        ``voxceleb`` (``label enrol test``) or ``voices`` (trial keys).
    enrol_list : str or None
        VOiCES enrolment list (None: the one beside the keys).

    Example
    -------
    >>> TrialSpec("vox1_o", "/d/meta/veri_test2.txt", "/d/wav").name
    'vox1_o'
    """

    name: str
    path: str
    audio_folder: str
    format: str = "voxceleb"
    enrol_list: str = None


@dataclass(frozen=True)
class LoadedList:
    """A parsed trial list with absolute audio paths.

    Arguments
    ---------
    spec : TrialSpec
        Where it came from.
    trials : TrialList
        The parsed trials.
    enrol : list of str
        Absolute enrolment path of every trial.
    test : list of str
        Absolute test path of every trial.

    Example
    -------
    >>> from speechbrain_ext.scoring.trials import parse_trials
    >>> t = parse_trials(["1 a.wav b.wav", "0 a.wav c.wav"])
    >>> spec = TrialSpec("demo", "t.txt", "/d")
    >>> len(LoadedList(spec, t, *t.resolve("/d")).enrol)
    2
    """

    spec: TrialSpec
    trials: TrialList
    enrol: list
    test: list


def default_audio_folder(data_folder):
    """``<data_folder>/wav`` when it exists (VoxCeleb layout), else itself.

    Arguments
    ---------
    data_folder : str
        The data folder.

    Returns
    -------
    str
        Absolute path of the folder trial paths are relative to.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> default_audio_folder(d) == os.path.abspath(d)
    True
    """
    folder = os.path.abspath(os.fspath(data_folder))
    wav = os.path.join(folder, "wav")
    return wav if os.path.isdir(wav) else folder


def find_trial_file(path, data_folder):
    """Locates a trial list given as a path or relative to the data folder.

    Tried in order: the path itself, ``<data_folder>/<path>`` and
    ``<data_folder>/meta/<path>``.

    Arguments
    ---------
    path : str
        The trial list as configured.
    data_folder : str
        The data folder.

    Returns
    -------
    str
        Absolute path of the existing file.

    Raises
    ------
    FileNotFoundError
        Naming every location tried.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(d, "meta"))
    >>> open(os.path.join(d, "meta", "veri_test2.txt"), "w").close()
    >>> find_trial_file("veri_test2.txt", d).endswith("meta/veri_test2.txt")
    True
    """
    path = os.fspath(path)
    tried = [path]
    if not os.path.isabs(path):
        tried += [
            os.path.join(data_folder, path),
            os.path.join(data_folder, "meta", path),
        ]
    for candidate in tried:
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise FileNotFoundError(
        f"trial list {path!r} not found (tried {', '.join(tried)}); the "
        "VoxCeleb1 lists: `python -m speechbrain_ext.data.download "
        "voxceleb1_trials <data_folder>/meta` downloads them"
    )


def trial_specs(items, data_folder, audio_folder=None):
    """Normalises the ``trial_lists`` hyperparameter.

    Each item is a path, or a mapping with ``path`` and optionally
    ``name`` (default: the file name without extension),
    ``audio_folder`` (default: ``audio_folder``), ``format`` (``auto``,
    the default, ``voxceleb`` or ``voices``) and, for VOiCES,
    ``enrol_list`` (default: ``dev-enroll.lst`` beside ``dev-trial-keys
    .lst``). A VOiCES list's audio folder defaults to the folder above its
    lists folder (``Speaker_Recognition/`` in the published layout).

    Arguments
    ---------
    items : str or sequence
        One item or a list of them.
    data_folder : str
        The data folder (trial files are also looked for there).
    audio_folder : str or None
        Default audio root; None uses :func:`default_audio_folder`.

    Returns
    -------
    list of TrialSpec
        One per list, with unique names.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> for n in ("a.txt", "b.txt"):
    ...     open(os.path.join(d, n), "w").close()
    >>> [s.name for s in trial_specs(["a.txt", {"path": "b.txt",
    ...     "name": "vox1_e"}], d)]
    ['a', 'vox1_e']
    """
    if items is None or isinstance(items, str | os.PathLike | dict):
        items = [] if items is None else [items]
    if not items:
        raise ValueError("no trial lists configured (trial_lists is empty)")
    if audio_folder is None:
        audio_folder = default_audio_folder(data_folder)
    specs, names = [], set()
    for item in items:
        if not isinstance(item, dict):
            item = {"path": item}
        unknown = set(item) - {
            "path", "name", "audio_folder", "format", "enrol_list"
        }
        if "path" not in item or unknown:
            raise ValueError(
                "a trial_lists entry is a path or a mapping with 'path' and "
                "optional 'name', 'audio_folder', 'format' and "
                f"'enrol_list'; got {item!r}"
            )
        path = find_trial_file(item["path"], data_folder)
        fmt = item.get("format") or "auto"
        if fmt not in FORMATS:
            raise ValueError(
                f"trial list {path}: format must be one of {FORMATS}, got "
                f"{fmt!r}"
            )
        if fmt == "auto":
            fmt = "voices" if looks_like_voices(path) else "voxceleb"
        enrol_list = item.get("enrol_list")
        if enrol_list is not None:
            if fmt != "voices":
                raise ValueError(
                    f"trial list {path}: 'enrol_list' is only for VOiCES "
                    "trial keys (format: voices)"
                )
            enrol_list = find_trial_file(enrol_list, os.path.dirname(path))
        name = str(
            item.get("name")
            or os.path.splitext(os.path.basename(path))[0]
        )
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
            raise ValueError(
                f"trial list name {name!r} may only use letters, digits "
                "and _.+-"
            )
        if name in names:
            raise ValueError(
                f"two trial lists are named {name!r}; give them names"
            )
        names.add(name)
        root = item.get("audio_folder") or (
            default_voices_audio_folder(path) if fmt == "voices"
            else audio_folder
        )
        specs.append(
            TrialSpec(name, path, os.path.abspath(root), fmt, enrol_list)
        )
    return specs


def load_trial_lists(specs, allow_outside=False):
    """Parses every list and resolves its audio paths.

    Arguments
    ---------
    specs : sequence of TrialSpec
        The lists.
    allow_outside : bool
        Accept audio paths that leave their audio folder (``..``).

    Returns
    -------
    list of LoadedList
        In the order of ``specs``.

    Raises
    ------
    TrialListError
        Malformed line (file:line), empty list or one-class list; for
        VOiCES also a model missing from the enrolment list.
    ValueError
        A path escapes its audio folder (file:line).

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> p = os.path.join(d, "t.txt")
    >>> _ = open(p, "w").write("1 x/a.wav x/b.wav\\n0 x/a.wav y/c.wav\\n")
    >>> [loaded] = load_trial_lists([TrialSpec("t", p, d)])
    >>> loaded.test[1] == os.path.join(d, "y", "c.wav")
    True
    """
    loaded = []
    for spec in specs:
        if spec.format == "voices":
            trials = read_voices_trials(spec.path, spec.enrol_list)
        else:
            trials = read_trials(spec.path)
        enrol, test = trials.resolve(spec.audio_folder, allow_outside)
        loaded.append(LoadedList(spec, trials, enrol, test))
    return loaded


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
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
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
    >>> import tempfile, soundfile
    >>> wav = os.path.join(tempfile.mkdtemp(), "a.wav")
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


def _unit_stack(keys, embeddings):
    """Unique keys as unit-norm float64 rows, and each key's row."""
    rows, index, vectors = {}, np.empty(len(keys), dtype=np.int64), []
    for i, key in enumerate(keys):
        row = rows.get(key)
        if row is None:
            row = rows[key] = len(vectors)
            vectors.append(embeddings[key])
        index[i] = row
    mat = np.asarray(vectors, dtype=np.float64).reshape(len(vectors), -1)
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    return mat / np.maximum(norms, 1e-12), index


def cosine_trial_scores(enrol_keys, test_keys, embeddings, chunk=65536):
    """Cosine similarity of every trial, in chunks of trials.

    Arguments
    ---------
    enrol_keys : sequence
        Embedding key of each trial's enrolment side.
    test_keys : sequence
        Embedding key of each trial's test side.
    embeddings : Mapping
        ``key -> 1-D embedding``.
    chunk : int
        Trials scored at once (bounds memory on million-trial lists).

    Returns
    -------
    numpy.ndarray
        float64 scores.

    Example
    -------
    >>> emb = {"a": [1.0, 0.0], "b": [2.0, 0.0], "c": [0.0, -3.0]}
    >>> cosine_trial_scores(["a", "a"], ["b", "c"], emb).tolist()
    [1.0, 0.0]
    """
    if len(enrol_keys) != len(test_keys):
        raise ValueError(
            f"{len(enrol_keys)} enrolment keys, {len(test_keys)} test keys"
        )
    enrol, e_idx = _unit_stack(enrol_keys, embeddings)
    test, t_idx = _unit_stack(test_keys, embeddings)
    scores = np.empty(len(enrol_keys))
    for start in range(0, len(scores), chunk):
        stop = start + chunk
        scores[start:stop] = np.einsum(
            "ij,ij->i", enrol[e_idx[start:stop]], test[t_idx[start:stop]]
        )
    return scores


class CohortNormaliser:
    """AS-norm with cohort statistics computed once per embedding key.

    Arguments
    ---------
    cohort : array-like
        ``(n_cohort, dim)`` cohort embeddings.
    topk : int
        Highest cohort scores kept per utterance.

    Example
    -------
    >>> cohort = [[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.1]]
    >>> emb = {"a": [1.0, 0.2], "b": [0.9, 0.1], "c": [-0.3, 1.0]}
    >>> norm = CohortNormaliser(cohort, topk=3)
    >>> raw = cosine_trial_scores(["a", "a"], ["b", "c"], emb)
    >>> out = norm(raw, ["a", "a"], ["b", "c"], emb)
    >>> bool(out[0] > out[1]), len(norm.stats)
    (True, 3)
    """

    def __init__(self, cohort, topk):
        self.cohort = np.asarray(cohort, dtype=np.float64)
        if self.cohort.ndim != 2 or not len(self.cohort):
            raise ValueError("the cohort must be a non-empty (n, dim) array")
        if not 1 < int(topk) <= len(self.cohort):
            raise ValueError(
                f"cohort top-k must be in [2, {len(self.cohort)}] (the "
                f"cohort size), got {topk}"
            )
        self.topk = int(topk)
        self.stats = {}

    def _stats(self, keys, embeddings):
        """Mean and std arrays for ``keys``, computing new ones once."""
        new = [k for k in dict.fromkeys(keys) if k not in self.stats]
        if new:
            mat = np.asarray([embeddings[k] for k in new], dtype=np.float64)
            mean, std = cohort_statistics(mat, self.cohort, self.topk)
            self.stats.update(zip(new, zip(mean, std, strict=True),
                                  strict=True))
        pairs = np.asarray([self.stats[k] for k in keys])
        return pairs[:, 0], pairs[:, 1]

    def cohort_means(self, keys, embeddings):
        """Mean of the top-k cohort scores of each key (a quality measure).

        Arguments
        ---------
        keys : sequence
            Embedding keys.
        embeddings : Mapping
            ``key -> 1-D embedding``.

        Returns
        -------
        numpy.ndarray
            ``[len(keys)]`` float64 means, the same statistics AS-norm uses.

        Example
        -------
        >>> norm = CohortNormaliser([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], 2)
        >>> norm.cohort_means(["a"], {"a": [1.0, 0.0]}).tolist()
        [0.5]
        """
        return self._stats(keys, embeddings)[0]

    def __call__(self, scores, enrol_keys, test_keys, embeddings):
        """Normalises trial scores.

        Arguments
        ---------
        scores : array-like
            Raw cosine scores.
        enrol_keys : sequence
            Enrolment embedding key of each trial.
        test_keys : sequence
            Test embedding key of each trial.
        embeddings : Mapping
            ``key -> 1-D embedding``.

        Returns
        -------
        numpy.ndarray
            AS-norm scores.
        """
        mu_e, sd_e = self._stats(enrol_keys, embeddings)
        mu_t, sd_t = self._stats(test_keys, embeddings)
        return as_norm_from_stats(scores, mu_e, sd_e, mu_t, sd_t)


def trial_keys(loaded, crop_length):
    """Embedding keys of the two sides of every trial of a list.

    Arguments
    ---------
    loaded : LoadedList
        The list.
    crop_length : int or None
        Test-side crop length of the condition.

    Returns
    -------
    enrol : list of tuple
        ``(path, "full")`` per trial.
    test : list of tuple
        ``(path, view name)`` per trial.

    Example
    -------
    >>> from speechbrain_ext.scoring.trials import parse_trials
    >>> t = parse_trials(["1 a b", "0 a c"])
    >>> ll = LoadedList(TrialSpec("t", "t", "/"), t, ["a", "a"], ["b", "c"])
    >>> trial_keys(ll, 16640)[1]
    [('b', 'crop16640'), ('c', 'crop16640')]
    """
    test_view = view_name(crop_length)
    return (
        [(p, "full") for p in loaded.enrol],
        [(p, test_view) for p in loaded.test],
    )
