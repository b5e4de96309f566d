"""Finding the trial lists whose speakers training must leave out.

The usual VoxCeleb layout keeps the VoxCeleb1 dev and test speakers in one
``voxceleb1/wav`` folder, so a training run over that folder trains on the
VoxCeleb1-O test speakers unless their trial list is named. The official
run trains on a fixed list of 7,205 speakers that has none of them. The
training recipe therefore looks up every trial list it is given (by
default VoxCeleb1-O, ``veri_test2.txt``) and stops when one is missing:
:func:`find_trial_lists` finds a list given as a path, or by its name in
each data folder and in its ``meta`` sub-folder, and tells in which data
folder its audio lies (for the EER monitoring of the recipe).

Authors
 * MR-RawNet recipe contributors
"""

import os

from speechbrain_ext.data.prep_common import PreparationError
from speechbrain_ext.data.trial_csv import read_trial_list
from speechbrain_ext.data.voxceleb_layout import resolve_wav_dir


class TrialListNotFoundError(PreparationError):
    """A trial list to leave out of training cannot be found.

    Arguments
    ---------
    message : str
        Names the list, the places looked at and the way out.

    Example
    -------
    >>> str(TrialListNotFoundError("no veri_test2.txt"))
    'no veri_test2.txt'
    """


def as_list(value):
    """Accepts None, a comma-separated string or a sequence of strings.

    Arguments
    ---------
    value : None, str or sequence
        The option as read from the hparams or the command line.

    Returns
    -------
    list of str
        The entries, empty ones dropped.

    Example
    -------
    >>> as_list(None), as_list("a.txt,b.txt"), as_list(["c.txt"])
    ([], ['a.txt', 'b.txt'], ['c.txt'])
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value if str(v).strip()]


def _candidates(name, data_folders):
    """Where a trial list named ``name`` may be, in search order."""
    places = [name]
    if not os.path.isabs(name):
        for folder in data_folders:
            places.append(os.path.join(folder, name))
            places.append(os.path.join(folder, "meta", name))
    return places


def audio_root_of(trial_file, data_folders):
    """The wav root of the data folder that holds a trial list's audio.

    Arguments
    ---------
    trial_file : str
        A trial list (``label enrol test``, paths relative to a wav root).
    data_folders : list of str
        Data folders (VoxCeleb layout or wav roots).

    Returns
    -------
    str or None
        The first wav root in which the list's first enrolment file
        exists; None when none has it.

    Example
    -------
    >>> root = getfixture("tmp_path")
    >>> (root / "wav" / "id1" / "s").mkdir(parents=True)
    >>> _ = (root / "wav" / "id1" / "s" / "1.wav").write_bytes(b"")
    >>> _ = (root / "t.txt").write_text("1 id1/s/1.wav id1/s/1.wav\\n")
    >>> audio_root_of(str(root / "t.txt"), [str(root)]) == str(root / "wav")
    True
    """
    first = read_trial_list(trial_file)[0][1]
    for folder in data_folders:
        if not os.path.isdir(folder):
            continue
        root = resolve_wav_dir(folder)
        if os.path.isfile(os.path.join(root, first)):
            return root
    return None


def find_trial_lists(names, data_folders):
    """Finds every trial list; a missing one is an error.

    Arguments
    ---------
    names : list of str
        Paths, or file names looked up in each data folder and in its
        ``meta`` sub-folder (in that order).
    data_folders : list of str
        The training data folders.

    Returns
    -------
    list of dict
        Per list: ``path`` (absolute) and ``audio_folder`` (see
        :func:`audio_root_of`; None when its audio is not in the data
        folders).

    Raises
    ------
    TrialListNotFoundError
        Names the list and every place looked at.

    Example
    -------
    >>> root = getfixture("tmp_path")
    >>> (root / "meta").mkdir()
    >>> _ = (root / "meta" / "t.txt").write_text("1 a/s/1.wav b/s/2.wav\\n")
    >>> [os.path.basename(f["path"]) for f in
    ...  find_trial_lists(["t.txt"], [str(root)])]
    ['t.txt']
    >>> find_trial_lists(["missing.txt"], [str(root)])
    Traceback (most recent call last):
    ...
    speechbrain_ext.data.trial_lists.TrialListNotFoundError: trial list ...
    """
    found = []
    for name in names:
        places = _candidates(name, data_folders)
        path = next((p for p in places if os.path.isfile(p)), None)
        if path is None:
            raise TrialListNotFoundError(
                f"trial list {name!r} not found (looked for "
                + ", ".join(places)
                + "). Training leaves out the speakers of every trial list "
                "it is given, so that they are never trained on: pass "
                "--trial_lists=<path of the list>, or --trial_lists=[] to "
                "train on every speaker of the data folders (then do not "
                "score on lists whose speakers they hold)."
            )
        path = os.path.abspath(path)
        found.append(
            {"path": path, "audio_folder": audio_root_of(path, data_folders)}
        )
    return found
