"""VoxCeleb data preparation: audio folders or official lists to CSV files.

The training recipe reads ``train.csv`` / ``valid.csv`` with the columns
``ID, duration, wav, spk_id`` and numbers speakers by the sorted list in
``speakers.txt``. The scoring recipe reads a CSV of the unique utterances of
one or more trial lists with the columns ``ID, duration, wav``.

Durations come from the audio file headers (never from decoding), read in
parallel. Every output carries a fingerprint JSON beside it (options, inputs
and a cheap digest of the audio tree); preparation is skipped only when the
fingerprint still matches, so a changed option, trial list or an added file
always triggers a redo.

The module also converts VoxCeleb2 ``.m4a`` files to 16 kHz mono ``.wav``
with the ``ffmpeg`` executable, and has a command line interface::

    python -m speechbrain_ext.data.prepare convert-m4a SRC DST
    python -m speechbrain_ext.data.prepare train --data_folder A,B \\
        --save_folder out --trials t1.txt
    python -m speechbrain_ext.data.prepare trials --trials t1.txt \\
        --wav_root A --csv out/trials.csv

Authors
 * MR-RawNet recipe contributors
"""

import argparse
import collections
import concurrent.futures
import csv
import hashlib
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import time

import soundfile as sf
from tqdm import tqdm

from speechbrain_ext.atomic_files import atomic_write, atomic_write_text
from speechbrain_ext.data.trial_format import read_trial_file
from speechbrain_ext.data.wav_header import truncation_reason, wav_truncation

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
TRAIN_FIELDS = ["ID", "duration", "wav", "spk_id"]
TRIAL_FIELDS = ["ID", "duration", "wav"]
PREP_VERSION = 1
MAX_LISTED = 5
_HEADER_CHUNK = 256
_TRIALS_HINT = (
    "the VoxCeleb1 lists: `python -m speechbrain_ext.data.download "
    "voxceleb1_trials <folder>` downloads them"
)


class PreparationError(RuntimeError):
    """Raised when data preparation cannot produce a valid result.

    Arguments
    ---------
    message : str
        What went wrong, naming the offending folder or files.

    Example
    -------
    >>> str(PreparationError("no audio in /x"))
    'no audio in /x'
    """


def listing(items, limit=MAX_LISTED):
    """Formats the first ``limit`` items and the total count.

    Preparation errors (here and in :mod:`speechbrain_ext.augment.prepare`)
    name the offending files through it.

    Arguments
    ---------
    items : iterable
        What to list (formatted with ``str``).
    limit : int
        How many items to show.

    Returns
    -------
    str
        The items shown, comma separated, then the total when some are
        left out.

    Example
    -------
    >>> listing(["a.wav", "b.wav"])
    'a.wav, b.wav'
    >>> listing(range(7), limit=2)
    '0, 1 ... (7 in total)'
    """
    items = list(items)
    shown = ", ".join(str(x) for x in items[:limit])
    more = f" ... ({len(items)} in total)" if len(items) > limit else ""
    return f"{shown}{more}"


def utterance_id(rel_path):
    """Builds the utterance ID ``spk--session--utt`` from a relative path.

    The last three components of the path are used, so both
    ``id10270/x6uYqmx31kE/00001.wav`` and an absolute path ending like that
    give the same ID. This is how the trial lists map to CSV IDs.

    Arguments
    ---------
    rel_path : str
        Path ``<spk>/<session>/<utt>.<ext>`` (more leading parts allowed).

    Returns
    -------
    str
        The ID, e.g. ``id10270--x6uYqmx31kE--00001``.

    Example
    -------
    >>> utterance_id("id10270/x6uYqmx31kE/00001.wav")
    'id10270--x6uYqmx31kE--00001'
    """
    parts = [p for p in rel_path.replace("\\", "/").split("/") if p]
    if len(parts) < 3:
        raise ValueError(
            f"Expected a path like <spk>/<session>/<utt>.wav, got {rel_path!r}"
        )
    spk, session, name = parts[-3:]
    return f"{spk}--{session}--{os.path.splitext(name)[0]}"


def resolve_wav_dir(folder):
    """Returns the ``wav`` directory of a VoxCeleb data folder.

    A folder holding ``wav/<spk>/<session>/<utt>.wav`` resolves to its
    ``wav`` sub-folder; a folder without a ``wav`` sub-folder is taken to be
    the wav root itself.

    Arguments
    ---------
    folder : str
        The data folder (or the wav root).

    Returns
    -------
    str
        Absolute path of the wav root.

    Example
    -------
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "wav"))
    >>> resolve_wav_dir(root) == os.path.join(root, "wav")
    True
    """
    folder = os.path.abspath(folder)
    if not os.path.isdir(folder):
        raise PreparationError(
            f"Data folder {folder} does not exist (expected the VoxCeleb "
            "layout <folder>/wav/<spk>/<session>/<utt>.wav)"
        )
    wav_dir = os.path.join(folder, "wav")
    return wav_dir if os.path.isdir(wav_dir) else folder


def scan_voxceleb_folder(data_folder):
    """Lists ``<spk>/<session>/<utt>.wav`` files of a VoxCeleb folder.

    Only directory entries are read (plus one ``stat`` per file for the
    change fingerprint); the audio is not opened.

    Arguments
    ---------
    data_folder : str
        Folder with the layout ``wav/<spk>/<session>/<utt>.wav`` (or the
        ``wav`` folder itself).

    Returns
    -------
    list of tuple
        Sorted ``(rel_path, abs_path, size, mtime_ns)`` tuples.

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "wav", "id1", "s1"))
    >>> wav = os.path.join(root, "wav", "id1", "s1", "00001.wav")
    >>> soundfile.write(wav, numpy.zeros(160), 16000)
    >>> [e[0] for e in scan_voxceleb_folder(root)]
    ['id1/s1/00001.wav']
    """
    wav_dir = resolve_wav_dir(data_folder)
    entries = []
    for spk in _sorted_dirs(wav_dir):
        for sess in _sorted_dirs(spk.path):
            with os.scandir(sess.path) as it:
                for f in it:
                    if (
                        f.name.endswith(".wav")
                        and not f.name.startswith(".")
                        and f.is_file()
                    ):
                        st = f.stat()
                        rel = f"{spk.name}/{sess.name}/{f.name}"
                        entries.append(
                            (rel, f.path, st.st_size, st.st_mtime_ns)
                        )
    if not entries:
        raise PreparationError(
            f"No audio found in data folder {data_folder} (looked for "
            f"{wav_dir}/<spk>/<session>/<utt>.wav)"
        )
    entries.sort()
    return entries


def _sorted_dirs(path):
    """Sub-directories of ``path`` as DirEntry objects."""
    with os.scandir(path) as it:
        dirs = [e for e in it if e.is_dir() and not e.name.startswith(".")]
    return sorted(dirs, key=lambda e: e.name)


def _header(path):
    """Reads (frames, samplerate, channels) or the error text of a file.

    A WAV file holding fewer frames than its header announces (libsndfile
    reports the shorter length without a word) is an error too.
    """
    try:
        with sf.SoundFile(path) as f:
            header = f.frames, f.samplerate, f.channels
        cut = wav_truncation(path)
    except Exception as err:  # noqa: BLE001 - reported to the caller
        return str(err)
    if cut is not None:
        return truncation_reason(*cut)
    return header


def _header_chunk(paths):
    """Reads the headers of a chunk of files."""
    return [_header(p) for p in paths]


def read_audio_headers(paths, workers=8, desc="Reading audio headers",
                       progress=True, skip_bad=False):
    """Reads frames and sample rate from audio headers, in parallel.

    Only the header is read (``soundfile.SoundFile(path).frames``), never the
    samples. Threads are used as header reads are I/O bound. A WAV file
    that holds fewer frames than its header announces is unreadable here.

    Arguments
    ---------
    paths : list of str
        Audio files.
    workers : int
        Number of threads.
    desc : str
        Label of the tqdm progress bar.
    progress : bool
        Show the progress bar.
    skip_bad : bool
        Return the reason (a string) in place of the header of a missing
        or unreadable file instead of raising.

    Returns
    -------
    list of tuple
        ``(frames, samplerate, channels)`` per file, in input order.

    Raises
    ------
    PreparationError
        If a file is missing or unreadable (first few listed, with count),
        unless ``skip_bad``.

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> wav = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> soundfile.write(wav, numpy.zeros(8000), 16000)
    >>> read_audio_headers([wav], workers=1)
    [(8000, 16000, 1)]
    """
    paths = list(paths)
    chunks = [
        paths[i : i + _HEADER_CHUNK]
        for i in range(0, len(paths), _HEADER_CHUNK)
    ]
    results = []
    bar = tqdm(
        total=len(paths), desc=desc, unit="file", leave=False,
        disable=not progress,
    )
    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        for part in pool.map(_header_chunk, chunks):
            results.extend(part)
            bar.update(len(part))
    bar.close()
    if skip_bad:
        return [
            r if not isinstance(r, str) or os.path.exists(p) else "missing"
            for p, r in zip(paths, results, strict=True)
        ]
    pairs = zip(paths, results, strict=True)
    bad = [(p, r) for p, r in pairs if isinstance(r, str)]
    if bad:
        missing = [p for p, _ in bad if not os.path.exists(p)]
        if missing:
            raise PreparationError(
                f"{len(missing)} audio file(s) missing: {listing(missing)}"
            )
        raise PreparationError(
            f"{len(bad)} audio file(s) unreadable: "
            + listing(f"{p} ({r})" for p, r in bad)
        )
    return results


def _format_duration(frames, samplerate):
    """Duration in seconds as the shortest exact float text."""
    return repr(frames / samplerate)


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
    >>> t = os.path.join(tempfile.mkdtemp(), "trials.txt")
    >>> _ = open(t, "w").write("1 id1/a/1.wav id1/b/2.wav\\n")
    >>> read_trial_list(t)
    [(1, 'id1/a/1.wav', 'id1/b/2.wav')]
    >>> _ = open(t, "w").write("id1/a/1.wav id1/b/2.wav\\n")
    >>> read_trial_list(t)
    Traceback (most recent call last):
    ...
    speechbrain_ext.data.trial_format.TrialListError: ...trials.txt:1: ...
    """
    if not os.path.isfile(trial_file):
        raise PreparationError(
            f"Trial list {trial_file} does not exist ({_TRIALS_HINT})"
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
    >>> t = os.path.join(tempfile.mkdtemp(), "trials.txt")
    >>> _ = open(t, "w").write("0 id1/a/1.wav id2/b/2.wav\\n")
    >>> sorted(trial_speakers([t]))
    ['id1', 'id2']
    """
    speakers = set()
    for trial_file in trial_files or []:
        for _, enrol, test in read_trial_list(trial_file):
            speakers.add(_speaker_of(enrol))
            speakers.add(_speaker_of(test))
    return speakers


def read_train_list(train_list):
    """Reads an official training list with lines ``spk spk/session/utt.wav``.

    Arguments
    ---------
    train_list : str
        Path of the list.

    Returns
    -------
    list of tuple
        ``(spk_id, rel_path)`` pairs in file order.

    Example
    -------
    >>> import tempfile
    >>> t = os.path.join(tempfile.mkdtemp(), "train_list.txt")
    >>> _ = open(t, "w").write("id00012 id00012/21Uxsk56VDQ/00001.wav\\n")
    >>> read_train_list(t)
    [('id00012', 'id00012/21Uxsk56VDQ/00001.wav')]
    """
    if not os.path.isfile(train_list):
        raise PreparationError(f"Train list {train_list} does not exist")
    pairs = []
    with open(train_list, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise PreparationError(
                    f"{train_list}:{lineno}: expected 'spk spk/session/utt"
                    f".wav', got {line.strip()!r}"
                )
            pairs.append((fields[0], fields[1]))
    if not pairs:
        raise PreparationError(f"Train list {train_list} is empty")
    return pairs


def file_digest(path):
    """SHA-1 of a file's contents.

    Arguments
    ---------
    path : str
        The file.

    Returns
    -------
    str
        Hex digest.

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "x.txt")
    >>> _ = open(p, "w").write("abc")
    >>> file_digest(p)[:8]
    'a9993e36'
    """
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_fingerprint(entries):
    """Cheap fingerprint of a list of files: count, list hash, max mtime.

    Arguments
    ---------
    entries : list of tuple
        ``(name, path, size, mtime_ns)`` tuples, as from
        :func:`scan_voxceleb_folder`.

    Returns
    -------
    dict
        ``{"files": n, "list_sha1": ..., "max_mtime_ns": ...}``.

    Example
    -------
    >>> fp = tree_fingerprint([("a/b/c.wav", "/x/a/b/c.wav", 10, 5)])
    >>> fp["files"], fp["max_mtime_ns"]
    (1, 5)
    """
    h = hashlib.sha1()
    for name, _, size, _ in entries:
        h.update(f"{name}\t{size}\n".encode())
    return {
        "files": len(entries),
        "list_sha1": h.hexdigest(),
        "max_mtime_ns": max((e[3] for e in entries), default=0),
    }


def is_up_to_date(fingerprint_file, fingerprint, outputs):
    """Tells whether outputs exist and were made from the same inputs.

    Arguments
    ---------
    fingerprint_file : str
        JSON written by :func:`write_fingerprint` after the last preparation.
    fingerprint : dict
        JSON-serialisable description of the current options and inputs.
    outputs : list of str
        Files that must all exist.

    Returns
    -------
    bool
        True when preparation can be skipped.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> fp_file = os.path.join(d, "fp.json")
    >>> write_fingerprint(fp_file, {"a": 1})
    >>> is_up_to_date(fp_file, {"a": 1}, [fp_file])
    True
    >>> is_up_to_date(fp_file, {"a": 2}, [fp_file])
    False
    """
    if not all(os.path.isfile(p) for p in outputs):
        return False
    try:
        with open(fingerprint_file, encoding="utf-8") as f:
            stored = json.load(f)
    except (OSError, ValueError):
        return False
    current = json.loads(json.dumps(fingerprint, sort_keys=True))
    return stored.get("fingerprint") == current


def write_fingerprint(fingerprint_file, fingerprint, summary=None):
    """Writes the fingerprint JSON atomically (plus an informative summary).

    Arguments
    ---------
    fingerprint_file : str
        Destination JSON.
    fingerprint : dict
        What :func:`is_up_to_date` compares.
    summary : dict, optional
        Statistics stored for information only (not compared).

    Returns
    -------
    None

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "fp.json")
    >>> write_fingerprint(p, {"x": [1]}, {"files": 3})
    >>> json.load(open(p))["summary"]
    {'files': 3}
    """
    data = {"fingerprint": fingerprint, "summary": summary or {}}
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    write_text(fingerprint_file, text, atomic=True)


def write_text(path, text, atomic=True):
    """Writes a text file, optionally via a temporary file and os.replace.

    Arguments
    ---------
    path : str
        Destination.
    text : str
        Contents.
    atomic : bool
        Write to a temporary file first, then rename over ``path``.

    Returns
    -------
    None

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> write_text(p, "hi\\n")
    >>> open(p).read()
    'hi\\n'
    """
    if atomic:
        atomic_write_text(path, text)
        return
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def write_csv(path, fields, rows, atomic=True):
    """Writes a CSV with a header; refuses to write an empty one.

    Arguments
    ---------
    path : str
        Destination.
    fields : list of str
        Column names.
    rows : list of dict or list of sequence
        Data rows (dicts keyed by ``fields`` or sequences in that order).
    atomic : bool
        Write to a temporary file then ``os.replace``.

    Returns
    -------
    None

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a.csv")
    >>> write_csv(p, ["ID", "duration"], [("u1", "1.5")])
    >>> open(p).read().splitlines()
    ['ID,duration', 'u1,1.5']
    """
    if not rows:
        raise PreparationError(f"Refusing to write an empty CSV: {path}")

    def write(f):
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(fields)
        for row in rows:
            writer.writerow(
                [row[k] for k in fields] if isinstance(row, dict) else row
            )

    if atomic:
        atomic_write(path, write)
        return
    with open(path, "w", encoding="utf-8", newline="") as f:
        write(f)


def _as_list(value):
    """Accepts None, a string (comma separated) or a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.split(",") if v]
    return [str(v) for v in value]


def _list_train_entries(data_folders, train_list, wav_root):
    """Collects (spk, rel, abs, size, mtime) entries and their fingerprint.

    Also returns the ``(spk, path)`` of the train list's missing files.
    """
    entries, inputs, missing = [], {}, []
    if train_list is not None:
        if wav_root is None:
            raise PreparationError("train_list needs wav_root")
        root = resolve_wav_dir(wav_root)
        for spk, rel in read_train_list(train_list):
            path = os.path.join(root, rel)
            try:
                st = os.stat(path)
            except OSError:
                missing.append((spk, path))
                continue
            entries.append((spk, rel, path, st.st_size, st.st_mtime_ns))
        inputs["train_list"] = {
            "path": os.path.abspath(train_list),
            "sha1": file_digest(train_list),
            "wav_root": root,
            "tree": tree_fingerprint([e[1:] for e in entries]),
        }
    else:
        if not data_folders:
            raise PreparationError("Give data_folders or a train_list")
        inputs["data_folders"] = []
        for folder in data_folders:
            scanned = scan_voxceleb_folder(folder)
            entries.extend((e[0].split("/")[0],) + e for e in scanned)
            inputs["data_folders"].append(
                {
                    "path": os.path.abspath(folder),
                    "tree": tree_fingerprint(scanned),
                }
            )
    return entries, inputs, missing


def _check_bad_files(bad, total, max_fraction, min_files, where):
    """Warns about bad files, or raises when there are too many.

    The rule of training's
    :class:`~speechbrain_ext.data.safe_audio.BadFileTracker`: at most
    ``max_fraction`` of the files, counted from at least ``min_files``.
    """
    if not bad:
        return
    named = listing(f"{p} ({reason})" for p, reason in bad)
    if len(bad) > max_fraction * max(total, min_files):
        raise PreparationError(
            f"{len(bad)} file(s) of the {total} {where} are missing or "
            f"unusable, more than max_bad_file_fraction={max_fraction:g} "
            f"(counted from at least bad_file_min_files={min_files}): "
            f"{named}. Fix or remove them, or raise "
            "--max_bad_file_fraction."
        )
    logger.warning(
        "Left out %d missing or unusable file(s) of the %d %s (within "
        "max_bad_file_fraction=%g): %s",
        len(bad),
        total,
        where,
        max_fraction,
        named,
    )


def _split_valid(rows, valid_ratio, seed):
    """Holds out utterances, keeping at least one train file per speaker."""
    if valid_ratio <= 0:
        return rows, []
    n_valid = max(1, round(len(rows) * valid_ratio))
    left = collections.Counter(r[3] for r in rows)
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    chosen = set()
    for i in order:
        if len(chosen) >= n_valid:
            break
        spk = rows[i][3]
        if left[spk] > 1:
            chosen.add(i)
            left[spk] -= 1
    if not chosen:
        raise PreparationError(
            "Cannot hold out validation utterances: every speaker has a "
            "single file (use valid_ratio=0)"
        )
    train = [r for i, r in enumerate(rows) if i not in chosen]
    valid = [r for i, r in enumerate(rows) if i in chosen]
    return train, valid


def prepare_voxceleb_train(
    save_folder,
    data_folders=None,
    trial_lists=None,
    train_list=None,
    wav_root=None,
    valid_ratio=0.0,
    seed=1234,
    sample_rate=SAMPLE_RATE,
    workers=8,
    atomic=True,
    force=False,
    max_bad_file_fraction=0.01,
    bad_file_min_files=500,
):
    """Writes ``train.csv``, ``valid.csv`` and ``speakers.txt``.

    Files come either from data folders in the VoxCeleb layout
    ``wav/<spk>/<session>/<utt>.wav`` or from an official train list (lines
    ``id00012 id00012/21Uxsk56VDQ/00001.wav``, relative to ``wav_root``).
    Speakers of any trial list are excluded.

    Bad audio follows training's policy: a file that is missing,
    unreadable, truncated (a WAV holding fewer frames than its header
    announces), empty or at another sample rate than ``sample_rate`` is
    left out, named in a warning and counted in the summary
    (``excluded_bad`` and ``bad_files``), unless more than
    ``max_bad_file_fraction`` of the files (counted from at least
    ``bad_file_min_files``) are bad: then it is an error listing them.

    CSV columns: ``ID, duration, wav, spk_id`` where ID is
    ``spk--session--utt``, duration is in seconds (exact
    ``frames / sample_rate``) and wav an absolute path. Rows are sorted by
    ID. ``speakers.txt`` holds the sorted training speakers, one per line;
    the line number is the class index. Validation utterances are drawn
    per utterance (deterministic given ``seed``) and never take the last
    file of a speaker, so every validation speaker is a training speaker.

    Preparation is skipped when ``train_prepare.json`` matches the current
    options and inputs (data folder listing, list and trial contents).

    Arguments
    ---------
    save_folder : str
        Where the outputs go (created if needed).
    data_folders : list of str or str, optional
        VoxCeleb folders (comma separated string accepted).
    trial_lists : list of str or str, optional
        Trial lists whose speakers are excluded.
    train_list : str, optional
        Official train list, used instead of scanning ``data_folders``.
    wav_root : str, optional
        Root of the paths in ``train_list``.
    valid_ratio : float
        Fraction of utterances held out in ``valid.csv`` (0, the default
        and the recipe's ``valid_ratio``: no valid.csv, as the official run
        trains on every utterance).
    seed : int
        Seed of the held-out draw.
    sample_rate : int
        Required sample rate.
    workers : int
        Threads for header reading.
    atomic : bool
        Write every output to a temporary file first, then rename it.
    force : bool
        Prepare even when the outputs are up to date.
    max_bad_file_fraction : float
        Largest tolerated fraction of bad files (0: none tolerated).
    bad_file_min_files : int
        Smallest denominator of that fraction.

    Returns
    -------
    dict
        ``train``, ``valid`` (None when ``valid_ratio`` is 0), ``speakers``
        and ``fingerprint`` paths, ``skipped`` (bool) and ``summary``.

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> root = tempfile.mkdtemp()
    >>> for spk in ["id1", "id2"]:
    ...     os.makedirs(os.path.join(root, "wav", spk, "s"))
    ...     for u in range(3):
    ...         p = os.path.join(root, "wav", spk, "s", f"{u:05d}.wav")
    ...         soundfile.write(p, numpy.zeros(1600), 16000)
    >>> out = prepare_voxceleb_train(
    ...     os.path.join(root, "out"), [root], valid_ratio=0.2, workers=1
    ... )
    >>> out["summary"]["train_files"], out["summary"]["valid_files"]
    (5, 1)
    >>> open(out["speakers"]).read().split()
    ['id1', 'id2']
    """
    start = time.time()
    if not 0 <= valid_ratio < 1:
        raise ValueError(f"valid_ratio must be in [0, 1), got {valid_ratio}")
    data_folders = _as_list(data_folders)
    trial_lists = _as_list(trial_lists)
    os.makedirs(save_folder, exist_ok=True)
    paths = {
        "train": os.path.join(save_folder, "train.csv"),
        "valid": (
            os.path.join(save_folder, "valid.csv") if valid_ratio > 0 else None
        ),
        "speakers": os.path.join(save_folder, "speakers.txt"),
        "fingerprint": os.path.join(save_folder, "train_prepare.json"),
    }

    entries, inputs, missing = _list_train_entries(
        data_folders, train_list, wav_root
    )
    trial_fps = []
    for t in trial_lists:
        if not os.path.isfile(t):
            raise PreparationError(
                f"Trial list {t} does not exist ({_TRIALS_HINT})"
            )
        trial_fps.append({"path": os.path.abspath(t), "sha1": file_digest(t)})
    fingerprint = {
        "version": PREP_VERSION,
        "options": {
            "valid_ratio": valid_ratio,
            "seed": seed,
            "sample_rate": sample_rate,
        },
        "inputs": inputs,
        "trial_lists": trial_fps,
    }
    outputs = [p for k, p in paths.items() if k != "fingerprint" and p]
    if not force and is_up_to_date(paths["fingerprint"], fingerprint, outputs):
        with open(paths["fingerprint"], encoding="utf-8") as f:
            summary = json.load(f).get("summary", {})
        logger.info(
            "Skipping preparation: %s is up to date", paths["train"]
        )
        return dict(paths, skipped=True, summary=summary)

    # Exclude trial speakers before touching any header.
    excluded = trial_speakers(trial_lists)
    kept = [e for e in entries if e[0] not in excluded]
    missing = [(p, "missing") for spk, p in missing if spk not in excluded]
    n_excl_spk = len({e[0] for e in entries} & excluded)
    logger.info(
        "Excluded %d speaker(s) (%d file(s)) found in trial lists",
        n_excl_spk,
        len(entries) - len(kept),
    )
    if not kept and not missing:
        raise PreparationError(
            "No training files left after excluding trial-list speakers"
        )

    headers = read_audio_headers(
        [e[2] for e in kept], workers=workers, skip_bad=True
    )
    rows, wrong_sr, empty, bad = [], [], [], list(missing)
    rates = collections.Counter()
    ids = {}
    for entry, header in zip(kept, headers, strict=True):
        spk, rel, path = entry[:3]
        if isinstance(header, str):
            bad.append((path, header))
            continue
        frames, sr, _ = header
        rates[sr] += 1
        if sr != sample_rate:
            wrong_sr.append(path)
            bad.append((path, f"sample rate {sr} Hz, not {sample_rate}"))
            continue
        if frames <= 0:
            empty.append(path)
            bad.append((path, "no audio samples"))
            continue
        uid = utterance_id(rel)
        if uid in ids:
            raise PreparationError(
                f"Duplicate utterance ID {uid}: {ids[uid]} and {path}"
            )
        ids[uid] = path
        rows.append((uid, _format_duration(frames, sr), path, spk))
    if wrong_sr:
        logger.warning(
            "Excluded %d file(s) whose sample rate is not %d Hz: %s",
            len(wrong_sr),
            sample_rate,
            listing(wrong_sr),
        )
    if empty:
        logger.warning(
            "Excluded %d empty file(s): %s", len(empty), listing(empty)
        )
    if not rows and not bad:
        raise PreparationError("No usable training files")
    _check_bad_files(
        bad,
        len(kept) + len(missing),
        max_bad_file_fraction,
        bad_file_min_files,
        "training files",
    )
    if not rows:
        raise PreparationError(
            f"No usable training files ({len(wrong_sr)} with a sample rate "
            f"other than {sample_rate} Hz, {len(empty)} empty)"
        )
    rows.sort()
    train_rows, valid_rows = _split_valid(rows, valid_ratio, seed)
    speakers = sorted({r[3] for r in train_rows})

    # Invalidate first, so an interrupted run is redone next time.
    if os.path.exists(paths["fingerprint"]):
        os.remove(paths["fingerprint"])
    write_csv(paths["train"], TRAIN_FIELDS, train_rows, atomic=atomic)
    stale_valid = os.path.join(save_folder, "valid.csv")
    if paths["valid"]:
        write_csv(paths["valid"], TRAIN_FIELDS, valid_rows, atomic=atomic)
    elif os.path.exists(stale_valid):
        os.remove(stale_valid)
    write_text(paths["speakers"], "".join(s + "\n" for s in speakers), atomic)
    summary = {
        "train_files": len(train_rows),
        "valid_files": len(valid_rows),
        "speakers": len(speakers),
        "excluded_trial_speakers": n_excl_spk,
        "excluded_trial_files": len(entries) - len(kept),
        "excluded_sample_rate": len(wrong_sr),
        "excluded_empty": len(empty),
        "excluded_bad": len(bad),
        "bad_files": [f"{p}: {reason}" for p, reason in sorted(bad)],
        "sample_rates": {str(k): v for k, v in sorted(rates.items())},
        "hours": round(sum(float(r[1]) for r in rows) / 3600, 3),
        "seconds_taken": round(time.time() - start, 3),
    }
    write_fingerprint(paths["fingerprint"], fingerprint, summary)
    logger.info(
        "Prepared %s: %d train / %d valid files, %d speakers in %.1f s",
        save_folder,
        len(train_rows),
        len(valid_rows),
        len(speakers),
        summary["seconds_taken"],
    )
    return dict(paths, skipped=False, summary=summary)


def prepare_trial_csv(
    trial_lists,
    wav_root,
    csv_file,
    side="both",
    sample_rate=SAMPLE_RATE,
    workers=8,
    atomic=True,
    force=False,
):
    """Writes a CSV of the unique utterances of trial lists for scoring.

    Columns: ``ID, duration, wav`` with ID ``spk--session--utt`` (see
    :func:`utterance_id`, which maps trial paths to these IDs), duration in
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
    atomic : bool
        Write to a temporary file first, then rename.
    force : bool
        Prepare even if up to date.

    Returns
    -------
    str
        Path of the CSV.

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "id1", "s"))
    >>> for u in ["1", "2"]:
    ...     p = os.path.join(root, "id1", "s", u + ".wav")
    ...     soundfile.write(p, numpy.zeros(1600), 16000)
    >>> t = os.path.join(root, "trials.txt")
    >>> _ = open(t, "w").write("1 id1/s/1.wav id1/s/2.wav\\n")
    >>> out = prepare_trial_csv(t, root, os.path.join(root, "e.csv"))
    >>> open(out).read().splitlines()[1].split(",")[:2]
    ['id1--s--1', '0.1']
    """
    trial_lists = _as_list(trial_lists)
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
        rows.append((uid, _format_duration(frames, sr), path))
    rows.sort()
    os.makedirs(os.path.dirname(os.path.abspath(csv_file)), exist_ok=True)
    if os.path.exists(fp_file):
        os.remove(fp_file)
    write_csv(csv_file, TRIAL_FIELDS, rows, atomic=atomic)
    write_fingerprint(fp_file, fingerprint, {"utterances": len(rows)})
    logger.info(
        "Wrote %s (%d utterances) in %.1f s",
        csv_file,
        len(rows),
        time.time() - start,
    )
    return csv_file


def _convert_one(ffmpeg, src, dst, sample_rate):
    """Converts one file; returns None or an error text."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = dst + ".part"
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    cmd += ["-i", src, "-vn", "-ac", "1", "-ar", str(sample_rate)]
    cmd += ["-c:a", "pcm_s16le", "-f", "wav", tmp]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.isfile(tmp):
            err = (proc.stderr or "").strip().splitlines()
            return f"{src}: {err[-1] if err else 'rc=' + str(proc.returncode)}"
        os.replace(tmp, dst)
        return None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def convert_m4a_to_wav(
    src_root, dst_root, workers=4, ffmpeg=None, sample_rate=SAMPLE_RATE
):
    """Converts VoxCeleb2 ``aac/<spk>/<sess>/<utt>.m4a`` to 16 kHz mono wav.

    Outputs go to ``<dst_root>/wav/<spk>/<sess>/<utt>.wav`` so ``dst_root``
    can be given as a data folder to :func:`prepare_voxceleb_train`. Files
    already converted are skipped; each conversion writes ``<utt>.wav.part``
    and renames it when ffmpeg succeeded, so an interrupted run never leaves
    a truncated wav.

    Arguments
    ---------
    src_root : str
        Folder holding ``aac/`` (or the ``aac`` folder itself).
    dst_root : str
        Output folder; ``wav/`` is created inside.
    workers : int
        Parallel ffmpeg processes.
    ffmpeg : str, optional
        The ffmpeg executable (default: found on PATH).
    sample_rate : int
        Output sample rate.

    Returns
    -------
    dict
        Counts ``total``, ``converted`` and ``skipped``.

    Example
    -------
    >>> import tempfile
    >>> try:
    ...     convert_m4a_to_wav(tempfile.mkdtemp(), tempfile.mkdtemp(),
    ...                        ffmpeg="/nonexistent/ffmpeg")
    ... except PreparationError as err:
    ...     print("ffmpeg" in str(err))
    True
    """
    exe = shutil.which(ffmpeg or "ffmpeg")
    if exe is None:
        raise PreparationError(
            f"The ffmpeg executable ({ffmpeg or 'ffmpeg'}) was not found; it "
            "is needed to decode VoxCeleb2 .m4a files. Install it (e.g. "
            "'apt-get install ffmpeg' or 'conda install -c conda-forge "
            "ffmpeg') or pass its path."
        )
    src_root = os.path.abspath(src_root)
    if not os.path.isdir(src_root):
        raise PreparationError(
            f"Source folder {src_root} does not exist (expected "
            "aac/<spk>/<session>/<utt>.m4a)"
        )
    aac = os.path.join(src_root, "aac")
    src_dir = aac if os.path.isdir(aac) else src_root
    dst_dir = os.path.join(os.path.abspath(dst_root), "wav")
    jobs, skipped = [], 0
    for dirpath, dirnames, filenames in os.walk(src_dir):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.endswith(".m4a"):
                continue
            src = os.path.join(dirpath, name)
            rel = os.path.relpath(src, src_dir)
            dst = os.path.join(dst_dir, os.path.splitext(rel)[0] + ".wav")
            if os.path.isfile(dst):
                skipped += 1
            else:
                jobs.append((src, dst))
    if not jobs and not skipped:
        raise PreparationError(f"No .m4a files found under {src_dir}")
    start = time.time()
    errors = []
    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        futures = [
            pool.submit(_convert_one, exe, s, d, sample_rate) for s, d in jobs
        ]
        for fut in tqdm(
            concurrent.futures.as_completed(futures),
            total=len(futures),
            desc="Converting m4a",
            unit="file",
            leave=False,
        ):
            err = fut.result()
            if err:
                errors.append(err)
    if errors:
        raise PreparationError(
            f"ffmpeg failed on {len(errors)} file(s): {listing(errors)}"
        )
    logger.info(
        "Converted %d file(s), skipped %d already converted, in %.1f s",
        len(jobs),
        skipped,
        time.time() - start,
    )
    total = len(jobs) + skipped
    return {"total": total, "converted": len(jobs), "skipped": skipped}


def main(argv=None):
    """Command line entry point (``convert-m4a``, ``train``, ``trials``).

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "wav", "id1", "s"))
    >>> for u in "12":
    ...     p = os.path.join(root, "wav", "id1", "s", u + ".wav")
    ...     soundfile.write(p, numpy.zeros(160), 16000)
    >>> main(["train", "--data_folder", root, "--save_folder",
    ...       os.path.join(root, "out"), "--valid_ratio", "0"])
    {...}
    0
    """
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_ext.data.prepare",
        description=__doc__.split("\n")[0],
    )
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert-m4a", help="VoxCeleb2 m4a to 16 kHz wav")
    conv.add_argument("src", help="folder holding aac/")
    conv.add_argument("dst", help="output folder (wav/ is created)")
    conv.add_argument("--workers", type=int, default=4)
    conv.add_argument("--ffmpeg", default=None)
    train = sub.add_parser("train", help="train.csv / valid.csv")
    train.add_argument("--data_folder", action="append", default=[])
    train.add_argument("--train_list", default=None)
    train.add_argument("--wav_root", default=None)
    train.add_argument("--save_folder", required=True)
    train.add_argument("--trials", action="append", default=[])
    train.add_argument("--valid_ratio", type=float, default=0.0)
    train.add_argument("--seed", type=int, default=1234)
    train.add_argument("--workers", type=int, default=8)
    train.add_argument("--force", action="store_true")
    train.add_argument("--max_bad_file_fraction", type=float, default=0.01)
    train.add_argument("--bad_file_min_files", type=int, default=500)
    trials = sub.add_parser("trials", help="enrol/test CSV of trial lists")
    trials.add_argument("--trials", action="append", required=True)
    trials.add_argument("--wav_root", required=True)
    trials.add_argument("--csv", required=True)
    trials.add_argument("--side", default="both")
    trials.add_argument("--workers", type=int, default=8)
    trials.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)

    def _split(values):
        return [v for value in values for v in _as_list(value)]

    if args.command == "convert-m4a":
        counts = convert_m4a_to_wav(
            args.src, args.dst, workers=args.workers, ffmpeg=args.ffmpeg
        )
        print(json.dumps(counts))
    elif args.command == "train":
        out = prepare_voxceleb_train(
            args.save_folder,
            data_folders=_split(args.data_folder),
            trial_lists=_split(args.trials),
            train_list=args.train_list,
            wav_root=args.wav_root,
            valid_ratio=args.valid_ratio,
            seed=args.seed,
            workers=args.workers,
            force=args.force,
            max_bad_file_fraction=args.max_bad_file_fraction,
            bad_file_min_files=args.bad_file_min_files,
        )
        print(json.dumps(out["summary"], sort_keys=True))
    else:
        print(
            prepare_trial_csv(
                _split(args.trials),
                args.wav_root,
                args.csv,
                side=args.side,
                workers=args.workers,
                force=args.force,
            )
        )
    return 0


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    sys.exit(main())
