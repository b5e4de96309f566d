"""RIRS_NOISES preparation: the simulated small/medium-room RIR list.

Writes ``rirs.csv`` (columns of :mod:`speechbrain_ext.augment.noise_csv`)
for ``AddReverb`` and the training augmentation; RIRs are referenced in
place, not copied. A fingerprint JSON beside the CSV makes a rerun with
the same inputs and options a no-op, and any change a redo. Nothing is
ever downloaded.

Authors
 * MR-RawNet recipe contributors
"""

import logging
import os
import time

from speechbrain_ext.augment.noise_csv import NOISE_FIELDS, _stat_entries
from speechbrain_ext.data.audio_headers import read_audio_headers
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

RIR_ROOMS = ("smallroom", "mediumroom")
RIRS_LAYOUT = "<RIRS_NOISES>/simulated_rirs/<room>/Room*/*.wav"


def resolve_rirs_folder(rirs_folder):
    """Finds the ``simulated_rirs`` folder of a RIRS_NOISES tree.

    Accepts the ``simulated_rirs`` folder itself, the ``RIRS_NOISES`` root,
    or a folder holding ``RIRS_NOISES/``.

    Arguments
    ---------
    rirs_folder : str
        One of the folders above.

    Returns
    -------
    str
        Absolute path of ``simulated_rirs``.

    Example
    -------
    >>> out = str(getfixture("tmp_path"))
    >>> sim = os.path.join(out, "RIRS_NOISES", "simulated_rirs")
    >>> os.makedirs(sim)
    >>> resolve_rirs_folder(out) == sim
    True
    """
    folder = os.path.abspath(rirs_folder)
    if not os.path.isdir(folder):
        raise PreparationError(
            f"RIRS_NOISES folder {folder} does not exist (expected "
            f"{RIRS_LAYOUT}; "
            f"{download_hint('rirs_noises', os.path.dirname(folder))})"
        )
    for cand in (
        os.path.join(folder, "simulated_rirs"),
        os.path.join(folder, "RIRS_NOISES", "simulated_rirs"),
    ):
        if os.path.isdir(cand):
            return cand
    if os.path.basename(folder) == "simulated_rirs":
        return folder
    raise PreparationError(
        f"No simulated_rirs folder in {folder} (expected {RIRS_LAYOUT}; "
        f"{download_hint('rirs_noises', os.path.dirname(folder))})"
    )


def prepare_rirs(
    rirs_folder,
    save_folder,
    rooms=RIR_ROOMS,
    sample_rate=SAMPLE_RATE,
    workers=8,
    force=False,
):
    """Writes ``rirs.csv`` for ``AddReverb`` from simulated RIRs.

    Columns ``ID, duration, wav, wav_format, wav_opts`` with ID
    ``<room>--<RoomNNN>--<file stem>``, wav the absolute path of the
    original file (no copy), format ``wav`` and empty opts. Files not at
    ``sample_rate`` are skipped with a warning.

    Arguments
    ---------
    rirs_folder : str
        ``RIRS_NOISES`` root (or its parent, or ``simulated_rirs``).
    save_folder : str
        Output folder.
    rooms : sequence of str
        Room-size folders to keep (default small and medium rooms).
    sample_rate : int
        Required sample rate.
    workers : int
        Threads for header reading.
    force : bool
        Prepare even when up to date.

    Returns
    -------
    str
        Path of ``rirs.csv``.

    Example
    -------
    >>> import numpy as np, soundfile as sf
    >>> root = str(getfixture("tmp_path"))
    >>> room = os.path.join(root, "simulated_rirs", "smallroom", "Room001")
    >>> os.makedirs(room)
    >>> sf.write(os.path.join(room, "Room001-00001.wav"),
    ...          np.zeros(800, dtype="float32"), 16000)
    >>> out_dir = str(getfixture("tmp_path_factory").mktemp("d"))
    >>> out = prepare_rirs(root, out_dir, rooms=["smallroom"])
    >>> open(out).read().splitlines()[1].split(",")[:2]
    ['smallroom--Room001--Room001-00001', '0.05']
    """
    rooms = list(rooms)
    if not rooms:
        raise ValueError("No room type given")
    sim = resolve_rirs_folder(rirs_folder)
    absent = [r for r in rooms if not os.path.isdir(os.path.join(sim, r))]
    if absent:
        raise PreparationError(
            "RIR room folder(s) "
            + listing(os.path.join(sim, r) for r in absent)
            + f" do not exist (expected {RIRS_LAYOUT})"
        )
    files = []
    for room in rooms:
        room_dir = os.path.join(sim, room)
        found = []
        for sub in sorted(os.listdir(room_dir)):
            sub_dir = os.path.join(room_dir, sub)
            if sub.startswith("Room") and os.path.isdir(sub_dir):
                found.extend(
                    os.path.join(sub_dir, f)
                    for f in sorted(os.listdir(sub_dir))
                    if f.endswith(".wav") and not f.startswith(".")
                )
        if not found:
            raise PreparationError(
                f"No .wav files in {room_dir}/Room*/ (expected {RIRS_LAYOUT})"
            )
        files.extend(found)
    os.makedirs(save_folder, exist_ok=True)
    csv_file = os.path.join(save_folder, "rirs.csv")
    fp_file = os.path.join(save_folder, "rirs_prepare.json")
    fingerprint = {
        "version": PREP_VERSION,
        "options": {"rooms": rooms, "sample_rate": sample_rate},
        "source": sim,
        "tree": tree_fingerprint(_stat_entries(sim, files)),
    }
    if not force and is_up_to_date(fp_file, fingerprint, [csv_file]):
        logger.info("Skipping RIRs: %s is up to date", csv_file)
        return csv_file
    start = time.time()
    headers = read_audio_headers(files, workers=workers, desc="RIR headers")
    rows, skipped = [], []
    for path, (frames, sr, _) in zip(files, headers, strict=True):
        if sr != sample_rate or frames <= 0:
            skipped.append(path)
            continue
        parts = os.path.relpath(path, sim).split(os.sep)
        uid = "--".join(parts[:-1] + [os.path.splitext(parts[-1])[0]])
        rows.append((uid, repr(frames / sr), path, "wav", ""))
    if skipped:
        logger.warning(
            "Skipped %d RIR file(s) not at %d Hz or empty: %s",
            len(skipped),
            sample_rate,
            listing(skipped),
        )
    if not rows:
        raise PreparationError(
            f"No usable RIR in {sim} ({len(skipped)} skipped)"
        )
    if os.path.exists(fp_file):
        os.remove(fp_file)
    write_csv(csv_file, NOISE_FIELDS, rows)
    summary = {
        "rirs": len(rows),
        "skipped": len(skipped),
        "seconds_taken": round(time.time() - start, 3),
    }
    write_fingerprint(fp_file, fingerprint, summary)
    logger.info("Wrote %s (%d RIRs)", csv_file, len(rows))
    return csv_file
