"""Audio files of an embedding run: stamps, decoding, errors naming them.

:func:`file_stamps` records the size and modification time of every file
(the embedding cache stores them, so an entry whose file has changed since
is recomputed) and lists all the missing files at once;
:func:`read_waveform` decodes a file to the mono waveform the model takes.
Both raise :class:`AudioFileError`, whose message names the offending
files (the first :data:`MAX_LISTED`, then a count).

:func:`read_waveform` reads whole files through the package's one audio
reader (:func:`speechbrain_ext.data.audio_read.read_audio`: any format and
rate soundfile reads, with its checks) and resamples them to the model
rate; the reader's :class:`~speechbrain_ext.data.audio_read.BadAudioError`
becomes an :class:`AudioFileError` naming the file.

Authors
 * MR-RawNet recipe contributors
"""

import os

import torch

from speechbrain_ext.data.audio_read import BadAudioError, read_audio

__all__ = [
    "MAX_LISTED",
    "AudioFileError",
    "file_stamps",
    "read_waveform",
]


#: How many offending files an error message lists.
MAX_LISTED = 10


class AudioFileError(RuntimeError):
    """Audio files are missing, unreadable or unusable; the message names them.

    Arguments
    ---------
    message : str
        What is wrong, with the file names.

    Example
    -------
    >>> str(AudioFileError("2 audio files are missing: a.wav, b.wav"))
    '2 audio files are missing: a.wav, b.wav'
    """


def _listing(items, limit=MAX_LISTED):
    """The first ``limit`` items, comma separated, then a count of the rest."""
    items = list(items)
    shown = ", ".join(str(x) for x in items[:limit])
    more = len(items) - limit
    return shown + (f", ... and {more} more" if more > 0 else "")


def file_stamps(paths):
    """Size and modification time of every file; all missing ones listed.

    Arguments
    ---------
    paths : iterable of str
        Audio files.

    Returns
    -------
    dict
        ``path -> (size_bytes, mtime_ns)``.

    Raises
    ------
    AudioFileError
        If any file is missing (or not a regular file); the message gives
        the count and the first :data:`MAX_LISTED` paths.

    Example
    -------
    >>> path = str(getfixture("tmp_path") / "empty.wav")
    >>> _ = open(path, "wb").close()
    >>> file_stamps([path])[path][0]
    0
    >>> file_stamps([path, "/no/such.wav"])
    Traceback (most recent call last):
    ...
    speechbrain_ext.scoring.audio_files.AudioFileError: 1 of 2 audio files ...
    """
    paths = list(dict.fromkeys(paths))
    stamps, missing = {}, []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            missing.append(path)
            continue
        if not os.path.isfile(path):
            missing.append(path)
            continue
        stamps[path] = (int(st.st_size), int(st.st_mtime_ns))
    if missing:
        raise AudioFileError(
            f"{len(missing)} of {len(paths)} audio files are missing: "
            f"{_listing(missing)}"
        )
    return stamps


def read_waveform(path, sample_rate=16000):
    """Decodes an audio file to a mono float32 waveform at ``sample_rate``.

    Channels are averaged; other sample rates are resampled with
    ``torchaudio.functional.resample``.

    Arguments
    ---------
    path : str
        Audio file.
    sample_rate : int
        Output sample rate.

    Returns
    -------
    torch.Tensor
        1-D float32 waveform.

    Raises
    ------
    AudioFileError
        If the file cannot be used (see
        :func:`~speechbrain_ext.data.audio_read.read_audio`: undecodable,
        empty, cut short or holding NaN/Inf); the message names the file.

    Example
    -------
    >>> import numpy as np
    >>> import soundfile
    >>> path = str(getfixture("tmp_path") / "a.wav")
    >>> soundfile.write(path, np.zeros((800, 2)), 8000)
    >>> read_waveform(path).shape
    torch.Size([1600])
    """
    try:
        wav, rate = read_audio(path, with_rate=True)
    except BadAudioError as err:
        raise AudioFileError(f"cannot use audio file {err}") from err
    wav = torch.from_numpy(wav)
    if rate != sample_rate:
        import torchaudio.functional

        wav = torchaudio.functional.resample(wav, rate, sample_rate)
    return wav.contiguous()
