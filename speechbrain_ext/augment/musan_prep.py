"""MUSAN preparation: the official chunk split and one CSV per category.

MUSAN files are cut into real chunk files (SpeechBrain's CSV reader loads
each row whole, see :mod:`speechbrain_ext.augment.noise_csv`), as in the
official "musan_split": 5 s windows with a 3 s hop (starts 0, 3, 6, ...
while start + 5 s fits; a file shorter than 5 s gives one chunk of its
length), written as 16-bit mono wav under
``<save_folder>/musan_split/<category>/``. Outputs: ``noise.csv``,
``music.csv`` and ``speech.csv``, each with a fingerprint JSON beside it
that makes a rerun with the same inputs and options a no-op, and any
change a redo. Nothing is ever downloaded.

Authors
 * MR-RawNet recipe contributors
"""

import concurrent.futures
import csv
import logging
import os
import shutil
import time

import numpy as np
import soundfile as sf
from tqdm import tqdm

from speechbrain_ext.augment.noise_csv import NOISE_FIELDS, _stat_entries
from speechbrain_ext.data.audio_read import BadAudioError, read_audio
from speechbrain_ext.data.csv_files import write_csv
from speechbrain_ext.data.download import download_hint
from speechbrain_ext.data.fingerprint import (
    PREP_VERSION,
    is_up_to_date,
    tree_fingerprint,
    write_fingerprint,
)
from speechbrain_ext.data.prep_common import PreparationError, listing
from speechbrain_ext.data.voxceleb_layout import SAMPLE_RATE

logger = logging.getLogger(__name__)

MUSAN_CATEGORIES = ("noise", "music", "speech")
MUSAN_LAYOUT = "<musan>/{noise,music,speech}/**/*.wav"


def chunk_bounds(num_frames, chunk, hop):
    """Sample bounds of the chunks of a file (official musan_split rule).

    Chunks start at ``0, hop, 2 * hop, ...`` while ``start + chunk`` fits in
    the file; a file shorter than ``chunk`` gives one chunk of its length.

    Arguments
    ---------
    num_frames : int
        Length of the file in samples.
    chunk : int
        Chunk length in samples.
    hop : int
        Hop between chunk starts in samples.

    Returns
    -------
    list of tuple
        ``(start, stop)`` sample indices.

    Example
    -------
    >>> chunk_bounds(11, 5, 3)
    [(0, 5), (3, 8), (6, 11)]
    >>> chunk_bounds(4, 5, 3)
    [(0, 4)]
    """
    if chunk <= 0 or hop <= 0:
        raise ValueError("chunk and hop must be positive")
    if num_frames <= 0:
        return []
    if num_frames < chunk:
        return [(0, num_frames)]
    return [(s, s + chunk) for s in range(0, num_frames - chunk + 1, hop)]



def _find_wavs(folder):
    """All ``*.wav`` files below ``folder`` (recursive, sorted)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(
            os.path.join(dirpath, f)
            for f in filenames
            if f.endswith(".wav") and not f.startswith(".")
        )
    return sorted(found)


def resolve_musan_folder(musan_folder, categories=MUSAN_CATEGORIES):
    """Finds the folder holding the MUSAN category folders.

    ``musan_folder`` may be the MUSAN root itself or a folder holding
    ``musan/`` (as written by the synthetic noise generator).

    Arguments
    ---------
    musan_folder : str
        MUSAN root or its parent.
    categories : sequence of str
        Category sub-folders that must exist.

    Returns
    -------
    str
        Absolute path of the MUSAN root.

    Example
    -------
    >>> out = str(getfixture("tmp_path"))
    >>> os.makedirs(os.path.join(out, "musan", "noise"))
    >>> resolve_musan_folder(out, ["noise"]).endswith("musan")
    True
    """
    folder = os.path.abspath(musan_folder)
    if not os.path.isdir(folder):
        raise PreparationError(
            f"MUSAN folder {folder} does not exist (expected {MUSAN_LAYOUT}; "
            f"{download_hint('musan', os.path.dirname(folder))})"
        )
    for root in (folder, os.path.join(folder, "musan")):
        if all(os.path.isdir(os.path.join(root, c)) for c in categories):
            return root
    missing = [
        os.path.join(folder, c)
        for c in categories
        if not os.path.isdir(os.path.join(folder, c))
    ]
    raise PreparationError(
        f"MUSAN category folder(s) missing: {listing(missing)} (expected "
        f"{MUSAN_LAYOUT}; {download_hint('musan', os.path.dirname(folder))})"
    )


def _split_one(src, out_base, uid_base, chunk_s, hop_s, sample_rate):
    """Cuts one file into chunk wavs; returns rows or an error text."""
    try:
        info = sf.info(src)
    except Exception as err:  # noqa: BLE001 - reported to the caller
        return f"{src} ({err})"
    if info.samplerate != sample_rate:
        return None
    try:
        mono = read_audio(src)
    except BadAudioError as err:
        return f"{src} ({err.reason})"
    sr = info.samplerate
    bounds = chunk_bounds(
        len(mono), int(round(chunk_s * sr)), int(round(hop_s * sr))
    )
    rows = []
    if bounds:
        os.makedirs(out_base, exist_ok=True)
    for i, (start, stop) in enumerate(bounds):
        out = os.path.join(out_base, f"{i:05d}.wav")
        sf.write(out, np.ascontiguousarray(mono[start:stop]), sr, "PCM_16")
        rows.append(
            (f"{uid_base}--{i:05d}", repr((stop - start) / sr), out, "wav", "")
        )
    return rows


def _csv_files_exist(csv_file):
    """True when every ``wav`` of a prepared CSV exists."""
    try:
        with open(csv_file, encoding="utf-8", newline="") as f:
            return all(os.path.isfile(r["wav"]) for r in csv.DictReader(f))
    except (OSError, KeyError):
        return False


def _check_no_overlap(out_dir, src_dir):
    """Refuses an output folder inside the source or the other way round."""
    a, b = os.path.abspath(out_dir), os.path.abspath(src_dir)
    if os.path.commonpath([a, b]) in (a, b):
        raise PreparationError(
            f"Output folder {a} overlaps the source folder {b}; choose "
            "another save_folder"
        )


def prepare_musan(
    musan_folder,
    save_folder,
    categories=MUSAN_CATEGORIES,
    chunk_seconds=5.0,
    hop_seconds=3.0,
    sample_rate=SAMPLE_RATE,
    workers=4,
    force=False,
):
    """Splits MUSAN into chunk files and writes one CSV per category.

    For category ``c`` the chunks go to ``<save_folder>/musan_split/c/`` and
    the CSV to ``<save_folder>/c.csv`` with columns
    ``ID, duration, wav, wav_format, wav_opts`` (ID
    ``c--<relative path without extension, '/' as '--'>--<chunk index>``,
    duration in seconds, wav absolute, format ``wav``, empty opts): the
    format ``AddNoise(csv_file=...)`` reads. Files not at ``sample_rate``
    are skipped with a warning; multi-channel files are averaged to mono.

    Arguments
    ---------
    musan_folder : str
        MUSAN root (``{noise,music,speech}/**/*.wav``) or a folder holding
        ``musan/``.
    save_folder : str
        Output folder.
    categories : sequence of str
        Categories to prepare.
    chunk_seconds : float
        Chunk length.
    hop_seconds : float
        Hop between chunk starts.
    sample_rate : int
        Required sample rate.
    workers : int
        Threads used to split files.
    force : bool
        Prepare even when up to date.

    Returns
    -------
    dict
        Category name to CSV path.

    Example
    -------
    >>> musan = str(getfixture("tmp_path"))
    >>> os.makedirs(os.path.join(musan, "noise", "x"))
    >>> sf.write(os.path.join(musan, "noise", "x", "n1.wav"),
    ...          np.zeros(16000 * 11, dtype="float32"), 16000)
    >>> out_dir = str(getfixture("tmp_path_factory").mktemp("d"))
    >>> out = prepare_musan(musan, out_dir, ["noise"])
    >>> rows = open(out["noise"]).read().splitlines()
    >>> len(rows) - 1, rows[1].split(",")[:2]
    (3, ['noise--x--n1--00000', '5.0'])
    """
    categories = list(categories)
    if not categories:
        raise ValueError("No MUSAN category given")
    root = resolve_musan_folder(musan_folder, categories)
    os.makedirs(save_folder, exist_ok=True)
    split_root = os.path.join(os.path.abspath(save_folder), "musan_split")
    _check_no_overlap(split_root, root)
    outputs = {}
    for cat in categories:
        src_dir = os.path.join(root, cat)
        files = _find_wavs(src_dir)
        if not files:
            raise PreparationError(
                f"No .wav files in {src_dir} (expected {MUSAN_LAYOUT})"
            )
        csv_file = os.path.join(save_folder, f"{cat}.csv")
        fp_file = os.path.join(save_folder, f"{cat}_prepare.json")
        fingerprint = {
            "version": PREP_VERSION,
            "options": {
                "chunk_seconds": chunk_seconds,
                "hop_seconds": hop_seconds,
                "sample_rate": sample_rate,
            },
            "source": src_dir,
            "tree": tree_fingerprint(_stat_entries(src_dir, files)),
        }
        outputs[cat] = csv_file
        if (
            not force
            and is_up_to_date(fp_file, fingerprint, [csv_file])
            and _csv_files_exist(csv_file)
        ):
            logger.info("Skipping MUSAN %s: %s is up to date", cat, csv_file)
            continue
        start = time.time()
        if os.path.exists(fp_file):
            os.remove(fp_file)
        out_dir = os.path.join(split_root, cat)
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        jobs = []
        for path in files:
            rel = os.path.splitext(os.path.relpath(path, src_dir))[0]
            parts = rel.replace(os.sep, "/").split("/")
            jobs.append(
                (path, os.path.join(out_dir, rel), "--".join([cat] + parts))
            )
        rows, errors, skipped = [], [], []
        with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
            results = pool.map(
                lambda j: _split_one(
                    j[0], j[1], j[2], chunk_seconds, hop_seconds, sample_rate
                ),
                jobs,
            )
            bar = tqdm(results, total=len(jobs), desc=cat, leave=False)
            for job, res in zip(jobs, bar, strict=True):
                if res is None:
                    skipped.append(job[0])
                elif isinstance(res, str):
                    errors.append(res)
                else:
                    rows.extend(res)
        if errors:
            raise PreparationError(
                f"{len(errors)} unreadable MUSAN file(s): {listing(errors)}"
            )
        if skipped:
            logger.warning(
                "Skipped %d MUSAN %s file(s) not at %d Hz: %s",
                len(skipped),
                cat,
                sample_rate,
                listing(skipped),
            )
        if not rows:
            raise PreparationError(
                f"No usable MUSAN {cat} audio in {src_dir} ({len(skipped)} "
                f"file(s) not at {sample_rate} Hz or empty)"
            )
        write_csv(csv_file, NOISE_FIELDS, rows)
        summary = {
            "files": len(files),
            "chunks": len(rows),
            "skipped_sample_rate": len(skipped),
            "seconds_taken": round(time.time() - start, 3),
        }
        write_fingerprint(fp_file, fingerprint, summary)
        logger.info(
            "MUSAN %s: %d files -> %d chunks in %.1f s",
            cat,
            len(files),
            len(rows),
            summary["seconds_taken"],
        )
    return outputs

