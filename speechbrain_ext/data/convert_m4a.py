"""VoxCeleb2 ``.m4a`` files to 16 kHz mono ``.wav`` with ffmpeg.

VoxCeleb2 is distributed as AAC in ``.m4a`` files; training reads
``.wav``. :func:`convert_m4a_to_wav` runs the ``ffmpeg`` executable on
every file not yet converted, in parallel, and writes the VoxCeleb layout
that :func:`~speechbrain_ext.data.voxceleb_train.prepare_voxceleb_train`
reads.

Authors
 * MR-RawNet recipe contributors
"""

import concurrent.futures
import logging
import os
import shutil
import subprocess
import time

from tqdm import tqdm

from speechbrain_ext.data.prep_common import PreparationError, listing
from speechbrain_ext.data.voxceleb_layout import SAMPLE_RATE

logger = logging.getLogger(__name__)


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
    can be given as a data folder to
    :func:`~speechbrain_ext.data.voxceleb_train.prepare_voxceleb_train`.
    Files already converted are skipped; each conversion writes
    ``<utt>.wav.part`` and renames it when ffmpeg succeeded, so an
    interrupted run never leaves a truncated wav.

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
    >>> tmp = tempfile.TemporaryDirectory()
    >>> try:
    ...     convert_m4a_to_wav(tmp.name, os.path.join(tmp.name, "out"),
    ...                        ffmpeg="/nonexistent/ffmpeg")
    ... except PreparationError as err:
    ...     print("ffmpeg" in str(err))
    True
    >>> tmp.cleanup()
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
