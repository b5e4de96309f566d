"""Audio durations from file headers, read in parallel.

Preparation never decodes audio to learn its length: it reads the frame
count and sample rate from each header (``soundfile``), in threads, and
checks that a WAV file holds every frame its header announces
(:mod:`speechbrain_ext.data.wav_header`).

Authors
 * MR-RawNet recipe contributors
"""

import concurrent.futures
import os

import soundfile as sf
from tqdm import tqdm

from speechbrain_ext.data.prep_common import PreparationError, listing
from speechbrain_ext.data.wav_header import truncation_reason, wav_truncation

_HEADER_CHUNK = 256


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
    >>> tmp = tempfile.TemporaryDirectory()
    >>> wav = os.path.join(tmp.name, "a.wav")
    >>> soundfile.write(wav, numpy.zeros(8000), 16000)
    >>> read_audio_headers([wav], workers=1)
    [(8000, 16000, 1)]
    >>> tmp.cleanup()
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


def format_duration(frames, samplerate):
    """Duration in seconds as the shortest exact float text.

    The ``duration`` column of every CSV preparation writes.

    Arguments
    ---------
    frames : int
        Number of frames (samples per channel).
    samplerate : int
        Frames per second.

    Returns
    -------
    str
        ``repr(frames / samplerate)``.

    Example
    -------
    >>> format_duration(8000, 16000), format_duration(1, 3)
    ('0.5', '0.3333333333333333')
    """
    return repr(frames / samplerate)
