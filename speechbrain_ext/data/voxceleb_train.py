"""VoxCeleb training data to ``train.csv``, ``valid.csv``, ``speakers.txt``.

The training recipe reads ``train.csv`` / ``valid.csv`` with the columns
``ID, duration, wav, spk_id`` and numbers speakers by the sorted list in
``speakers.txt``. Files come from VoxCeleb data folders
(:func:`~speechbrain_ext.data.voxceleb_layout.scan_voxceleb_folder`) or
from an official train list (:func:`read_train_list`); the speakers of
the trial lists are left out, bad files follow training's policy, and a
fingerprint beside the outputs makes a rerun with the same inputs a no-op.

Authors
 * MR-RawNet recipe contributors
"""

import collections
import json
import logging
import os
import random
import time

from speechbrain_ext.data.audio_headers import (
    format_duration,
    read_audio_headers,
)
from speechbrain_ext.data.csv_files import write_csv, write_text
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
from speechbrain_ext.data.trial_csv import TRIALS_HINT, trial_speakers
from speechbrain_ext.data.voxceleb_layout import (
    SAMPLE_RATE,
    resolve_wav_dir,
    scan_voxceleb_folder,
    utterance_id,
)

logger = logging.getLogger(__name__)

TRAIN_FIELDS = ["ID", "duration", "wav", "spk_id"]


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
    >>> tmp = tempfile.TemporaryDirectory()
    >>> t = os.path.join(tmp.name, "train_list.txt")
    >>> _ = open(t, "w").write("id00012 id00012/21Uxsk56VDQ/00001.wav\\n")
    >>> read_train_list(t)
    [('id00012', 'id00012/21Uxsk56VDQ/00001.wav')]
    >>> tmp.cleanup()
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
    >>> tmp = tempfile.TemporaryDirectory()
    >>> root = tmp.name
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
    >>> tmp.cleanup()
    """
    start = time.time()
    if not 0 <= valid_ratio < 1:
        raise ValueError(f"valid_ratio must be in [0, 1), got {valid_ratio}")
    data_folders = option_list(data_folders)
    trial_lists = option_list(trial_lists)
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
                f"Trial list {t} does not exist ({TRIALS_HINT})"
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
        rows.append((uid, format_duration(frames, sr), path, spk))
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
    write_csv(paths["train"], TRAIN_FIELDS, train_rows)
    stale_valid = os.path.join(save_folder, "valid.csv")
    if paths["valid"]:
        write_csv(paths["valid"], TRAIN_FIELDS, valid_rows)
    elif os.path.exists(stale_valid):
        os.remove(stale_valid)
    write_text(paths["speakers"], "".join(s + "\n" for s in speakers))
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
