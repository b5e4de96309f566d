"""The ``trial_lists`` hyperparameter: the trial lists a run scores.

:func:`trial_specs` turns the hyperparameter (paths, or mappings with a
name, an audio folder, a format and a VOiCES enrolment list) into
:class:`TrialSpec` entries, finding each file as given or under the data
folder (:func:`find_trial_file`); :func:`load_trial_lists` parses them
(VoxCeleb's ``label enrol test`` lists with
:func:`~speechbrain_ext.scoring.trials.read_trials`, VOiCES's published
keys with :mod:`~speechbrain_ext.scoring.voices`) into
:class:`LoadedList` entries with absolute audio paths.

Authors
 * MR-RawNet recipe contributors
"""

import os
import re
from dataclasses import dataclass

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
    "FORMATS",
    "LoadedList",
    "TrialSpec",
    "default_audio_folder",
    "find_trial_file",
    "load_trial_lists",
    "trial_specs",
]


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
    >>> d = str(getfixture("tmp_path"))
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
    >>> d = str(getfixture("tmp_path"))
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
    >>> d = str(getfixture("tmp_path"))
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
    >>> d = str(getfixture("tmp_path"))
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
