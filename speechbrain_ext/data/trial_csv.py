"""Trial lists for preparation: their speakers and the scoring CSV.

Preparation reads trial lists (``label enrol test``) through the one
parser, :mod:`speechbrain_ext.data.trial_format`, to leave their speakers
out of training (:func:`trial_speakers`) and to write the CSV of their
unique utterances that the scoring recipe reads (:func:`prepare_trial_csv`,
columns ``ID, duration, wav``).

Authors
 * MR-RawNet recipe contributors
"""

import logging
import os
import time

from speechbrain_ext.data.audio_headers import (
    format_duration,
    read_audio_headers,
)
from speechbrain_ext.data.csv_files import write_csv
from speechbrain_ext.data.fingerprint import (
    PREP_VERSION,
    file_digest,
    is_up_to_date,
    tree_fingerprint,
    write_fingerprint,
)
from speechbrain_ext.data.prep_common import (
    PreparationError,
    listing,
    option_list,
)
from speechbrain_ext.data.trial_format import read_trial_file
from speechbrain_ext.data.voxceleb_layout import (
    SAMPLE_RATE,
    resolve_wav_dir,
    utterance_id,
)

logger = logging.getLogger(__name__)

TRIAL_FIELDS = ["ID", "duration", "wav"]

#: How to get the VoxCeleb1 trial lists, for "does not exist" errors.
TRIALS_HINT = (
    "the VoxCeleb1 lists: `python -m speechbrain_ext.data.download "
    "voxceleb1_trials <folder>` downloads them"
)


def read_trial_list(trial_file):
    """Reads a trial list with lines ``label enrol test``.

    The lines follow the rules of :mod:`speechbrain_ext.data.trial_format`,
    the parser scoring uses too: label 0 or 1, exactly three fields, blank
    lines skipped.

    Arguments
    ---------
    trial_file : str
        Path of the trial list.

    Returns
    -------
    list of tuple
        ``(label, enrol, test)`` with ``label`` the int 0 or 1.

    Raises
    ------
    PreparationError
        The list does not exist (with how to download VoxCeleb's lists).
    TrialListError
        A malformed line (``file:line``) or a list without trials.

    Example
    -------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> t = os.path.join(tmp.name, "trials.txt")
    >>> _ = open(t, "w").write("1 id1/a/1.wav id1/b/2.wav\\n")
    >>> read_trial_list(t)
    [(1, 'id1/a/1.wav', 'id1/b/2.wav')]
    >>> _ = open(t, "w").write("id1/a/1.wav id1/b/2.wav\\n")
    >>> read_trial_list(t)
    Traceback (most recent call last):
    ...
    speechbrain_ext.data.trial_format.TrialListError: ...trials.txt:1: ...
    >>> tmp.cleanup()
    """
    if not os.path.isfile(trial_file):
        raise PreparationError(
            f"Trial list {trial_file} does not exist ({TRIALS_HINT})"
        )
    return [(t.label, t.enrol, t.test) for t in read_trial_file(trial_file)]


def _speaker_of(path):
    """First path component (the speaker) of a relative path."""
    return path.replace("\\", "/").strip("/").split("/")[0]


def trial_speakers(trial_files):
    """Speakers appearing in trial lists (first component of each path).

    Arguments
    ---------
    trial_files : list of str
        Trial lists, lines ``label enrol test``.

    Returns
    -------
    set of str
        The speaker IDs.

    Example
    -------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> t = os.path.join(tmp.name, "trials.txt")
    >>> _ = open(t, "w").write("0 id1/a/1.wav id2/b/2.wav\\n")
    >>> sorted(trial_speakers([t]))
    ['id1', 'id2']
    >>> tmp.cleanup()
    """
    speakers = set()
    for trial_file in trial_files or []:
        for _, enrol, test in read_trial_list(trial_file):
            speakers.add(_speaker_of(enrol))
            speakers.add(_speaker_of(test))
    return speakers


def prepare_trial_csv(
    trial_lists,
    wav_root,
    csv_file,
    side="both",
    sample_rate=SAMPLE_RATE,
    workers=8,
    force=False,
):
    """Writes a CSV of the unique utterances of trial lists for scoring.

    Columns: ``ID, duration, wav`` with ID ``spk--session--utt`` (see
    :func:`~speechbrain_ext.data.voxceleb_layout.utterance_id`, which maps
    trial paths to these IDs), duration in
    seconds from the header and wav an absolute path; rows sorted by ID.
    A fingerprint ``<csv stem>_prepare.json`` beside the CSV makes a rerun
    with the same inputs a no-op.

    Arguments
    ---------
    trial_lists : str or list of str
        Trial lists (lines ``label enrol test``); comma separated allowed.
    wav_root : str
        Root of the trial paths (a folder holding ``wav/`` also works).
    csv_file : str
        Destination CSV.
    side : {"both", "enrol", "test"}
        Which utterances to include.
    sample_rate : int
        Required sample rate; other rates are an error (scoring cannot skip
        utterances).
    workers : int
        Threads for header reading.
    force : bool
        Prepare even if up to date.

    Returns
    -------
    str
        Path of the CSV.

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> root = tmp.name
    >>> os.makedirs(os.path.join(root, "id1", "s"))
    >>> for u in ["1", "2"]:
    ...     p = os.path.join(root, "id1", "s", u + ".wav")
    ...     soundfile.write(p, numpy.zeros(1600), 16000)
    >>> t = os.path.join(root, "trials.txt")
    >>> _ = open(t, "w").write("1 id1/s/1.wav id1/s/2.wav\\n")
    >>> out = prepare_trial_csv(t, root, os.path.join(root, "e.csv"))
    >>> open(out).read().splitlines()[1].split(",")[:2]
    ['id1--s--1', '0.1']
    >>> tmp.cleanup()
    """
    trial_lists = option_list(trial_lists)
    if not trial_lists:
        raise PreparationError("No trial list given")
    if side not in ("both", "enrol", "test"):
        raise ValueError(f"side must be both, enrol or test, not {side!r}")
    root = resolve_wav_dir(wav_root)
    rels = set()
    for t in trial_lists:
        for _, enrol, test in read_trial_list(t):
            if side in ("both", "enrol"):
                rels.add(enrol)
            if side in ("both", "test"):
                rels.add(test)
    rels = sorted(rels)
    paths = [os.path.join(root, r) for r in rels]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise PreparationError(
            f"{len(missing)} trial file(s) missing under {root}: "
            f"{listing(missing)}"
        )
    stats = [os.stat(p) for p in paths]
    fingerprint = {
        "version": PREP_VERSION,
        "options": {"side": side, "sample_rate": sample_rate},
        "wav_root": root,
        "trial_lists": [
            {"path": os.path.abspath(t), "sha1": file_digest(t)}
            for t in trial_lists
        ],
        "tree": tree_fingerprint(
            [
                (rel, path, st.st_size, st.st_mtime_ns)
                for rel, path, st in zip(rels, paths, stats, strict=True)
            ]
        ),
    }
    fp_file = os.path.splitext(csv_file)[0] + "_prepare.json"
    if not force and is_up_to_date(fp_file, fingerprint, [csv_file]):
        logger.info("Skipping preparation: %s is up to date", csv_file)
        return csv_file
    start = time.time()
    headers = read_audio_headers(paths, workers=workers)
    wrong = [
        p for p, h in zip(paths, headers, strict=True) if h[1] != sample_rate
    ]
    if wrong:
        raise PreparationError(
            f"{len(wrong)} trial file(s) not at {sample_rate} Hz: "
            f"{listing(wrong)}"
        )
    rows, seen = [], {}
    for rel, path, (frames, sr, _) in zip(rels, paths, headers, strict=True):
        uid = utterance_id(rel)
        if uid in seen:
            raise PreparationError(
                f"Trial paths {seen[uid]} and {rel} map to the same ID {uid}"
            )
        seen[uid] = rel
        rows.append((uid, format_duration(frames, sr), path))
    rows.sort()
    os.makedirs(os.path.dirname(os.path.abspath(csv_file)), exist_ok=True)
    if os.path.exists(fp_file):
        os.remove(fp_file)
    write_csv(csv_file, TRIAL_FIELDS, rows)
    write_fingerprint(fp_file, fingerprint, {"utterances": len(rows)})
    logger.info(
        "Wrote %s (%d utterances) in %.1f s",
        csv_file,
        len(rows),
        time.time() - start,
    )
    return csv_file
